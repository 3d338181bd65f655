//! The wrapper's failures. Each message is the one engines show their
//! users and find in the runtime's log, with the causes after it.

use std::path::PathBuf;

use nix::errno::Errno;

use super::names::{NO_POLICY_ENV, POLICY_ENV, RUNTIME_ENV};
use crate::policy::PluginError;
use crate::policy::file::{DEFAULT_PATH, PolicyFileError};
use crate::policy::setup::ChainError;
use crate::runtime::RuntimeError;
use crate::runtime::config::ConfigError;
use crate::runtime::pin::PinError;

/// runc's exit status for a failed command.
pub const EXIT_RUNTIME_FAILURE: u8 = 1;

/// Why the wrapper did not become the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A global flag's value is missing.
    #[error("flag needs an argument: -{0}")]
    GlobalValueMissing(String),
    /// A global flag that could take the next argument, or not.
    #[error(
        "unknown global flag `{0}`: cannot tell whether it takes a value; write it `{0}=VALUE`"
    )]
    UnknownGlobal(String),
    /// `--config` names another file than the one the chain reads.
    #[error("{command} --config: not supported; the policy reads BUNDLE/config.json")]
    ConfigFlag { command: String },
    /// A command's flag's value is missing.
    #[error("{command}: flag needs an argument: -{flag}")]
    ValueMissing { command: String, flag: String },
    /// A boolean flag's `=value` that Go does not read.
    #[error("{command}: invalid boolean value `{value}` for -{flag}")]
    InvalidBool {
        command: String,
        value: String,
        flag: String,
    },
    /// A command's flag that could take the next argument, or not.
    #[error(
        "{command}: unknown flag `{flag}`: cannot tell whether it takes a value; write it `{flag}=VALUE`"
    )]
    UnknownFlag { command: String, flag: String },
    /// A gated command without its container id.
    #[error("{command}: the container id is missing")]
    NoId { command: String },
    /// A gated command with more than one id.
    #[error("{command}: one container id expected, got {count}")]
    Ids { command: String, count: usize },
    /// A gated command without a policy file.
    #[error(
        "{command}: no policy: {} does not exist and {} is not set; install a policy \
         (one with no plugin lets every container through) or set {}=1 to run \
         containers unchecked",
        DEFAULT_PATH,
        POLICY_ENV,
        NO_POLICY_ENV
    )]
    NoPolicy { command: String },
    /// The runtime named is nowhere.
    #[error(
        "runtime `{name}`: not found (set `runtime` in the policy file, or {})",
        RUNTIME_ENV
    )]
    RuntimeNotFound { name: String },
    /// The runtime named cannot be used.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The runtime could not be executed.
    #[error("cannot execute the runtime {}", program.display())]
    Execute {
        program: PathBuf,
        source: std::io::Error,
    },
    /// The policy file (for the runtime it names).
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    /// The bundle's path.
    #[error("cannot resolve the bundle's path")]
    BundlePath(#[source] std::io::Error),
    /// The chain could not be assembled.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// config.json or a process file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin refused or failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A granted bind source could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The audit record could not be written.
    #[error("audit log {}", path.display())]
    Audit {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `restore --lsm-profile` not written `TYPE:NAME`.
    #[error("restore --lsm-profile {0}: expected TYPE:NAME")]
    ProfileForm(String),
    /// `restore --lsm-profile` of a type not known.
    #[error("restore --lsm-profile {profile}: unknown type `{kind}`")]
    ProfileType { profile: String, kind: String },
    /// `restore --lsm-profile` other than config.json's, after the chain.
    #[error(
        "restore --lsm-profile {profile}: not the label config.json gives the process ({expected})"
    )]
    ProfileLabel { profile: String, expected: String },
    /// `restore --lsm-mount-context` other than config.json's.
    #[error(
        "restore --lsm-mount-context {context}: not the mount label config.json gives ({expected})"
    )]
    MountLabel { context: String, expected: String },
    /// `exec --process`'s file.
    #[error("exec --process")]
    ProcessFile(#[source] ConfigError),
    /// The container's config.json has no process for the exec to start from.
    #[error("exec {id}: {} has no process to build the exec's from", config.display())]
    NoBaseProcess { id: String, config: PathBuf },
    /// `runtime state` failed.
    #[error(
        "exec {id}: cannot find the container's bundle: {} state {id}: {said}",
        program.display()
    )]
    State {
        id: String,
        program: PathBuf,
        said: String,
    },
    /// `runtime state` said something else than a state.
    #[error("exec {id}: {} state {id} gave no bundle", program.display())]
    StateJson {
        id: String,
        program: PathBuf,
        source: serde_json::Error,
    },
    /// The runtime's state names a bundle relative to nothing known.
    #[error("exec {id}: the runtime's state names a relative bundle, {}", bundle.display())]
    RelativeBundle { id: String, bundle: PathBuf },
    /// `exec` without a command (nor a process file).
    #[error("exec: the command is missing")]
    NoCommand,
    /// `exec --cap` of no capability.
    #[error("exec --cap {0}: not a capability")]
    Cap(String),
    /// `exec --user`.
    #[error("exec --user {spec}")]
    User { spec: String, source: GoIntError },
    /// `exec --additional-gids`.
    #[error("exec --additional-gids {gid}")]
    AdditionalGid { gid: String, source: GoIntError },
    /// The chain took the exec's process away.
    #[error("the policy chain left the exec no process")]
    NoDecidedProcess,
    /// The container's config.json has no process to hold the exec's to.
    #[error("exec {id}: {} has no process to hold the exec's to", config.display())]
    NoCeiling { id: String, config: PathBuf },
    /// The exec's process asks for what cannot be taken from it.
    #[error("exec {id}")]
    Ceiling { id: String, source: Ceiling },
    /// A process built from flags that the check had to change.
    #[error(
        "exec {id}: the process would hold more than the policy lets this container have: {changed}"
    )]
    MoreThanAllowed { id: String, changed: String },
    /// The decided process file's JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The process file is not a JSON object.
    #[error("exec --process: the file is not a JSON object")]
    ProcessNotObject,
    /// The process file's `capabilities` is not an object.
    #[error("exec --process: `capabilities` is not an object")]
    CapabilitiesNotObject,
    /// The checked process could not be handed to the runtime.
    #[error("exec --process {}", path.display())]
    Seal { path: PathBuf, source: SealError },
    /// `--process` was not where the reader found it.
    #[error("exec: --process was not found on the command line")]
    ProcessArgMissing,
}

impl Error {
    /// The exit status: runc's for a failed command, whatever failed.
    pub fn status(&self) -> u8 {
        EXIT_RUNTIME_FAILURE
    }
}

/// An id runc would not read.
#[derive(Debug, thiserror::Error)]
pub enum GoIntError {
    /// Not a number in the base.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A negative additional gid.
    #[error("`{0}`: additional gids must be positive")]
    Negative(String),
}

/// What an exec's process asks for that cannot be taken from it.
#[derive(Debug, thiserror::Error)]
pub enum Ceiling {
    /// Root, for a container that runs as another user.
    #[error("the process would run as uid 0; the container's runs as uid {0}")]
    RootUser(u32),
    /// Group 0, which the container's process does not have.
    #[error("the process would have group 0, which the container's process does not")]
    RootGroup,
    /// Another AppArmor profile or SELinux label.
    #[error("the process asks for the {what} `{ours}`; the container's process has `{theirs}`")]
    Label {
        what: &'static str,
        ours: String,
        theirs: String,
    },
}

/// Why the checked process could not be put in a sealed memfd.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `memfd_create`.
    #[error("memfd_create")]
    Create(#[source] Errno),
    /// Writing it.
    #[error("cannot write the memfd")]
    Write(#[source] std::io::Error),
    /// Sealing it.
    #[error("cannot seal the memfd")]
    Seal(#[source] Errno),
    /// Moving it above the descriptors passed on.
    #[error("cannot place the memfd")]
    Place(#[source] Errno),
}

/// An error and its causes on one line, each after the one it explains:
/// the form engines show and the audit record keeps.
pub fn line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        line.push_str(": ");
        line.push_str(&error.to_string());
        cause = error.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line is anyhow's alternate form, which engines and audit
    /// records have always been given.
    #[test]
    fn a_failure_reads_as_its_causes_in_order() {
        let failures = [
            Error::Seal {
                path: "/run/exec.json".into(),
                source: SealError::Place(Errno::EMFILE),
            },
            Error::Audit {
                path: "/var/log/specgate.jsonl".into(),
                source: std::io::Error::from_raw_os_error(28),
            },
            Error::Ceiling {
                id: "c1".into(),
                source: Ceiling::RootUser(1000),
            },
            Error::User {
                spec: "x:0".into(),
                source: GoIntError::NotANumber("x".into()),
            },
            Error::NoId {
                command: "create".into(),
            },
        ];
        for failure in failures {
            let line = line(&failure);
            assert_eq!(line, format!("{:#}", anyhow::Error::new(failure)));
        }
        let error = Error::Ceiling {
            id: "c1".into(),
            source: Ceiling::RootUser(1000),
        };
        assert_eq!(
            line(&error),
            "exec c1: the process would run as uid 0; the container's runs as uid 1000"
        );
        assert_eq!(error.status(), EXIT_RUNTIME_FAILURE);
    }
}
