//! The names the wrapper answers to and the environment it reads: the
//! contract with the engines and the operator that configures them.

/// The name that makes the binary behave as `specgate oci`.
pub const RUNTIME_NAME: &str = "specgate-runtime";

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "SPECGATE_POLICY";

/// The environment variable naming the real runtime, over the policy
/// file's `runtime`.
pub const RUNTIME_ENV: &str = "SPECGATE_RUNTIME";

/// The environment variable that, set to `1`, lets gated commands through
/// unchecked when there is no policy file: the operator's explicit choice,
/// which an engine clearing the environment cannot make by accident.
pub const NO_POLICY_ENV: &str = "SPECGATE_NO_POLICY";
