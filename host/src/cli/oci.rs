//! `specgate oci` (or the binary called as `specgate-runtime`): an OCI
//! runtime in front of the real one, as nvidia-container-runtime is, so
//! that podman, containerd, CRI-O and Kubernetes run their containers
//! through the policy chain.
//!
//! It takes runc's command line. On `create`, `run` and `restore` it
//! passes the bundle's config.json through the chain, writes the result
//! back, appends the audit record, then replaces itself with the real
//! runtime, given the arguments exactly as received; `exec` is held to
//! what the container was allowed (see [`exec`]); every other command goes
//! straight to the runtime. Without a policy file the gated commands fail.
//! Nothing is ever printed on stdout, which engines parse.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

mod exec;
mod invocation;

use crate::policy::setup::{self, ChainSetup, LoadedChain, PolicySource};
use crate::policy::{self, Policy, Report, audit};
use crate::runtime::{BundleConfig, Runtime, RuntimeError};
use invocation::{EXIT_RUNTIME_FAILURE, Invocation, LogFormat, scan};

/// The name that makes the binary behave as `specgate oci`.
pub const RUNTIME_NAME: &str = "specgate-runtime";

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "SPECGATE_POLICY";

/// The environment variable naming the real runtime, over the policy
/// file's `runtime`.
pub const RUNTIME_ENV: &str = "SPECGATE_RUNTIME";

/// Runs `specgate oci ARGS`: on success it does not return, the process
/// having become the runtime. A failure is reported on stderr and in the
/// runtime's log, and gives runc's exit status 1.
pub(super) fn run(cache_dir: Option<PathBuf>, args: &[OsString]) -> Result<u8> {
    let inv = match scan(args) {
        Ok(inv) => inv,
        Err(error) => {
            report(None, &error);
            return Ok(EXIT_RUNTIME_FAILURE);
        }
    };
    let error = match prepare(cache_dir, &inv, args) {
        Ok(handover) => {
            let error = std::process::Command::new(handover.runtime.program())
                .arg0(handover.runtime.program())
                .args(handover.args.as_deref().unwrap_or(args))
                .exec();
            anyhow::Error::new(error).context(format!(
                "cannot execute the runtime {}",
                handover.runtime.program().display()
            ))
        }
        Err(error) => error,
    };
    report(Some(&inv), &error);
    Ok(EXIT_RUNTIME_FAILURE)
}

/// The environment variable that, set to `1`, lets gated commands through
/// unchecked when there is no policy file: the operator's explicit choice,
/// which an engine clearing the environment cannot make by accident.
pub const NO_POLICY_ENV: &str = "SPECGATE_NO_POLICY";

/// The policy file: `SPECGATE_POLICY`, else the default when it exists.
fn policy_path() -> Option<PathBuf> {
    match std::env::var_os(POLICY_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => Some(PathBuf::from(policy::file::DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// The policy file of a gated command. Without one the command fails,
/// unless [`NO_POLICY_ENV`] says to go on unchecked (`None`).
fn required_policy(command: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = policy_path() {
        return Ok(Some(path));
    }
    if std::env::var_os(NO_POLICY_ENV).is_some_and(|v| v == "1") {
        return Ok(None);
    }
    bail!(
        "{command}: no policy: {} does not exist and {POLICY_ENV} is not set; install a policy \
         (one with no plugin lets every container through) or set {NO_POLICY_ENV}=1 to run \
         containers unchecked",
        policy::file::DEFAULT_PATH
    )
}

/// The real runtime: `SPECGATE_RUNTIME`, else the policy's, else `runc`.
fn resolve_runtime(from_policy: Option<String>) -> Result<Runtime> {
    let name = std::env::var(RUNTIME_ENV)
        .ok()
        .filter(|n| !n.is_empty())
        .or(from_policy)
        .unwrap_or_else(|| "runc".to_string());
    let runtime = Runtime::resolve(&name, Vec::new()).map_err(|e| match e {
        RuntimeError::NotFound(name) => anyhow::anyhow!(
            "runtime `{name}`: not found (set `runtime` in the policy file, or {RUNTIME_ENV})"
        ),
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
) -> Result<Handover> {
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
        bail!("{command}: the container id is missing");
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
        .context("cannot resolve the bundle's path")?;
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
        record
            .append(log)
            .with_context(|| format!("audit log {}", log.display()))?;
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
) -> Result<Report> {
    let mut spec = config.spec().clone();
    let report = chain.run_recorded(&mut spec, id, record)?;
    check_restore_labels(inv, &spec).inspect_err(|e| record.denial = Some(format!("{e:#}")))?;
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
fn check_restore_labels(inv: &Invocation, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(profile) = inv.value("lsm-profile") {
        let profile = profile.to_string_lossy();
        let (kind, name) = profile
            .split_once(':')
            .with_context(|| format!("restore --lsm-profile {profile}: expected TYPE:NAME"))?;
        let expected = match kind {
            "apparmor" => process.and_then(|p| p.apparmor_profile().clone()),
            "selinux" => process.and_then(|p| p.selinux_label().clone()),
            _ => bail!("restore --lsm-profile {profile}: unknown type `{kind}`"),
        };
        if expected.as_deref() != Some(name) {
            bail!(
                "restore --lsm-profile {profile}: not the label config.json gives the process ({})",
                expected.unwrap_or_else(|| "none".into())
            );
        }
    }
    if let Some(context) = inv.value("lsm-mount-context") {
        let expected = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
        if expected.as_deref().map(OsStr::new) != Some(context) {
            bail!(
                "restore --lsm-mount-context {}: not the mount label config.json gives ({})",
                context.to_string_lossy(),
                expected.unwrap_or_else(|| "none".into())
            );
        }
    }
    Ok(())
}

/// Reports a failure as runc does: on stderr, and in the `--log` file in
/// the runtime's log format, where engines read the reason they show.
fn report(inv: Option<&Invocation>, error: &anyhow::Error) {
    let message = format!("specgate: {error:#}");
    eprintln!("{message}");
    let Some((log, format)) = inv.and_then(|i| Some((i.log.as_ref()?, i.log_format()))) else {
        return;
    };
    let line = log_line(format, &audit::now(), &message);
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("specgate: runtime log {}: {e}", log.display());
    }
}

/// One error line in runc's log format (logrus's JSON or text).
fn log_line(format: LogFormat, time: &str, message: &str) -> String {
    match format {
        LogFormat::Json => {
            let value = serde_json::json!({ "level": "error", "msg": message, "time": time });
            format!("{value}\n")
        }
        LogFormat::Text => {
            let quoted = serde_json::Value::from(message).to_string();
            format!("time=\"{time}\" level=error msg={quoted}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_logged_as_runc_logs() {
        let json = log_line(
            LogFormat::Json,
            "2024-01-01T00:00:00.000Z",
            "specgate: plugin x: \"no\"",
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["msg"], "specgate: plugin x: \"no\"");
        assert_eq!(value["time"], "2024-01-01T00:00:00.000Z");
        assert!(json.ends_with('\n'));
        assert_eq!(
            log_line(LogFormat::Text, "2024-01-01T00:00:00.000Z", "a \"b\"\nc"),
            "time=\"2024-01-01T00:00:00.000Z\" level=error msg=\"a \\\"b\\\"\\nc\"\n"
        );
    }
}
