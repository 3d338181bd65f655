//! The runc-compatible wrapper (`specgate oci`, or the binary called as
//! `specgate-runtime`): an OCI runtime in front of the real one, as
//! nvidia-container-runtime is, so that podman, containerd, CRI-O and
//! Kubernetes run their containers through the policy chain.
//!
//! It takes runc's command line. On `create`, `run` and `restore` it
//! passes the bundle's config.json through the chain, writes the result
//! back, appends the audit record, then replaces itself with the real
//! runtime, given the arguments exactly as received; `exec` is held to
//! what the container was allowed (see [`exec`]); every other command goes
//! straight to the runtime. Without a policy file the gated commands fail.
//! Nothing is ever printed on stdout, which engines parse.
//!
//! The flow, top to bottom: the command line ([`invocation`]), the policy
//! file and the runtime, the chain over config.json (or an exec's check,
//! [`exec`]), the audit record, then the runtime. A failure is an
//! [`Error`], reported as runc reports one ([`report`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

mod error;
mod exec;
mod invocation;
mod names;
mod report;

use crate::policy::setup::{self, ChainSetup, LoadedChain, PolicySource};
use crate::policy::{self, Policy, Report, audit};
use crate::runtime::{BundleConfig, Runtime, RuntimeError};
use error::{EXIT_RUNTIME_FAILURE, Error};
use invocation::{Invocation, scan};
pub use names::RUNTIME_NAME;
use names::{NO_POLICY_ENV, POLICY_ENV, RUNTIME_ENV};
pub use report::Failure;

/// Runs the wrapper over runc's command line `args`: on success it does
/// not return, the process having become the runtime. What it returns is
/// the failure, for the caller to report ([`Failure::report`]) and exit
/// with ([`Failure::status`]).
pub fn run(cache_dir: Option<PathBuf>, args: &[OsString]) -> Failure {
    let inv = match scan(args) {
        Ok(inv) => inv,
        Err(error) => return Failure::new(None, error),
    };
    let error = match prepare(cache_dir, &inv, args) {
        Ok(handover) => {
            let source = std::process::Command::new(handover.runtime.program())
                .arg0(handover.runtime.program())
                .args(handover.args.as_deref().unwrap_or(args))
                .exec();
            Error::Execute {
                program: handover.runtime.program().to_path_buf(),
                source,
            }
        }
        Err(error) => error,
    };
    Failure::new(Some(&inv), error)
}

/// The policy file: `SPECGATE_POLICY`, else the default when it exists.
fn policy_path() -> Option<PathBuf> {
    match std::env::var_os(POLICY_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => Some(PathBuf::from(policy::file::DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// The policy file of a gated command. Without one the command fails,
/// unless [`NO_POLICY_ENV`] says to go on unchecked (`None`).
fn required_policy(command: &str) -> Result<Option<PathBuf>, Error> {
    if let Some(path) = policy_path() {
        return Ok(Some(path));
    }
    if std::env::var_os(NO_POLICY_ENV).is_some_and(|v| v == "1") {
        return Ok(None);
    }
    Err(Error::NoPolicy {
        command: command.to_string(),
    })
}

/// The real runtime: `SPECGATE_RUNTIME`, else the policy's, else `runc`.
fn resolve_runtime(from_policy: Option<String>) -> Result<Runtime, Error> {
    let name = std::env::var(RUNTIME_ENV)
        .ok()
        .filter(|n| !n.is_empty())
        .or(from_policy)
        .unwrap_or_else(|| "runc".to_string());
    let runtime = Runtime::resolve(&name, Vec::new()).map_err(|e| match e {
        RuntimeError::NotFound(name) => Error::RuntimeNotFound { name },
        other => other.into(),
    })?;
    runtime.refuse_self()?;
    Ok(runtime)
}

/// The runtime to become, and the arguments to give it when they are not
/// the ones received (an exec's process file, replaced by the one checked).
struct Handover {
    runtime: Runtime,
    args: Option<Vec<OsString>>,
}

/// The chain in wrapper mode: the policy file's, nothing else.
fn chain_setup(cache_dir: Option<PathBuf>, policy: PathBuf) -> ChainSetup {
    ChainSetup::new(PolicySource::File(policy), cache_dir)
}

/// Everything before handing over: for `create`, `run` and `restore`, the
/// chain over the bundle's config.json, written back and audited; for
/// `exec`, the check of its process (see [`exec`]). Returns what to
/// become.
fn prepare(
    cache_dir: Option<PathBuf>,
    inv: &Invocation,
    received: &[OsString],
) -> Result<Handover, Error> {
    let command = inv.command.as_deref().unwrap_or_default();
    if !inv.gated() {
        // Only the runtime's name matters here: a policy that is missing,
        // unreadable or no longer loads must not strand running
        // containers.
        let from_policy = match policy_path() {
            Some(path) => Policy::load_runtime(&path).unwrap_or_else(|error| {
                tracing::warn!("{error}; passing `{command}` to the default runtime");
                None
            }),
            None => None,
        };
        return Ok(Handover {
            runtime: resolve_runtime(from_policy)?,
            args: None,
        });
    }
    let Some(policy) = required_policy(command)? else {
        tracing::warn!("{command}: no policy file and {NO_POLICY_ENV}=1: not checked");
        return Ok(Handover {
            runtime: resolve_runtime(None)?,
            args: None,
        });
    };
    let Some(id) = inv.id.as_deref() else {
        return Err(Error::NoId {
            command: command.to_string(),
        });
    };
    if command == "exec" {
        let runtime = resolve_runtime(Policy::load_runtime(&policy)?)?;
        let setup = chain_setup(cache_dir, policy);
        let args = exec::prepare(&setup, &runtime, inv, received, id)?;
        return Ok(Handover { runtime, args });
    }
    // Built on the other core while this one reads the policy and starts
    // on config.json; wasted, but not waited for, if the policy names no
    // plugin.
    crate::policy::engine::warm_up(setup::ALLOCATION);
    let setup = chain_setup(cache_dir, policy);
    let bundle = std::path::absolute(inv.bundle.as_deref().unwrap_or(Path::new(".")))
        .map_err(Error::BundlePath)?;
    // The engine's config is read while the plugins load: neither needs
    // the other, and each is a good part of the wrapper's time.
    let (chain, config) = setup.load(|| BundleConfig::read(&bundle))?;
    let runtime = resolve_runtime(chain.runtime().map(str::to_string))?;
    let config = config?;

    let spec = config.spec();
    let rootfs = spec
        .root()
        .as_ref()
        .map_or_else(|| bundle.join("rootfs"), |root| bundle.join(root.path()));
    let mut record = chain.record(
        id,
        spec.process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default(),
        rootfs.display().to_string(),
        runtime.program().display().to_string(),
    );
    let outcome = gate(&chain, &config, inv, id, &mut record);
    // The runtime's own status is never seen: specgate becomes the
    // runtime. The container's record is its `start`; one that specgate
    // stopped ends here.
    if outcome.is_err() {
        record.end(EXIT_RUNTIME_FAILURE);
    }
    if let Some(log) = chain.audit_log() {
        record.append(log).map_err(|source| Error::Audit {
            path: log.to_path_buf(),
            source,
        })?;
    }
    let report = outcome?;
    // The process becomes the runtime next: freeing the plugins'
    // instances, the loaded plugins and the parsed config would only
    // delay it.
    std::mem::forget((report, chain, config));
    Ok(Handover {
        runtime,
        args: None,
    })
}

/// The chain over the engine's spec, and the result written back.
fn gate(
    chain: &LoadedChain,
    config: &BundleConfig,
    inv: &Invocation,
    id: &str,
    record: &mut audit::Record,
) -> Result<Report, Error> {
    let mut spec = config.spec().clone();
    let report = chain.run_recorded(&mut spec, id, record)?;
    check_restore_labels(inv, &spec).inspect_err(|e| record.denial = Some(error::line(e)))?;
    // Granted bind sources are mounted as they were checked, in a mount
    // namespace of this thread's own that the runtime, exec'd from it,
    // inherits (docs/design-notes.md, "Pinned bind sources").
    let bundle = config.path().parent().unwrap_or(Path::new("."));
    crate::runtime::pin::attach(bundle, "specgate-pinned-", &mut spec, &report.pins)?;
    record.config_sha256 = Some(config.write_back(&spec)?);
    Ok(report)
}

/// `restore --lsm-profile TYPE:NAME` and `--lsm-mount-context` replace the
/// labels config.json gives: they must be the ones the chain passed.
fn check_restore_labels(inv: &Invocation, spec: &oci_spec::runtime::Spec) -> Result<(), Error> {
    let process = spec.process().as_ref();
    if let Some(profile) = inv.value("lsm-profile") {
        let profile = profile.to_string_lossy();
        let (kind, name) = profile
            .split_once(':')
            .ok_or_else(|| Error::ProfileForm(profile.to_string()))?;
        let expected = match kind {
            "apparmor" => process.and_then(|p| p.apparmor_profile().clone()),
            "selinux" => process.and_then(|p| p.selinux_label().clone()),
            _ => {
                return Err(Error::ProfileType {
                    profile: profile.to_string(),
                    kind: kind.to_string(),
                });
            }
        };
        if expected.as_deref() != Some(name) {
            return Err(Error::ProfileLabel {
                profile: profile.to_string(),
                expected: expected.unwrap_or_else(|| "none".into()),
            });
        }
    }
    if let Some(context) = inv.value("lsm-mount-context") {
        let expected = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
        if expected.as_deref().map(OsStr::new) != Some(context) {
            return Err(Error::MountLabel {
                context: context.to_string_lossy().into_owned(),
                expected: expected.unwrap_or_else(|| "none".into()),
            });
        }
    }
    Ok(())
}
