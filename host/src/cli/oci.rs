//! `specgate oci` (or the binary called as `specgate-runtime`): an OCI
//! runtime in front of the real one, as nvidia-container-runtime is, so
//! that podman, containerd, CRI-O and Kubernetes run their containers
//! through the policy chain.
//!
//! It takes runc's command line. On `create` and `run` it passes the
//! bundle's config.json through the chain, writes the result back, appends
//! the audit record, then replaces itself with the real runtime, given the
//! arguments exactly as received; every other command goes straight to
//! the runtime. Nothing is ever printed on stdout, which engines parse.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{ChainArgs, Cli, LoadedChain};
use crate::policy::{self, Policy, Report, audit};
use crate::runtime::{BundleConfig, Runtime, RuntimeError};

/// The name that makes the binary behave as `specgate oci`.
pub const RUNTIME_NAME: &str = "specgate-runtime";

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "SPECGATE_POLICY";

/// The environment variable naming the real runtime, over the policy
/// file's `runtime`.
pub const RUNTIME_ENV: &str = "SPECGATE_RUNTIME";

/// runc's exit status for a failed command.
const EXIT_RUNTIME_FAILURE: u8 = 1;

/// Global flags that take a value: runc's, and crun's beyond them.
const VALUED_GLOBALS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "criu",
    "rootless",
    "log-level",
    "cgroup-manager",
];

/// Global flags that take none.
const BOOLEAN_GLOBALS: &[&str] = &["debug", "systemd-cgroup", "help", "h", "version", "v"];

/// Flags of `create` and `run` that take a value.
const VALUED_CREATE: &[&str] = &["bundle", "b", "console-socket", "pid-file", "preserve-fds"];

/// The runtime's log format, for the denial written to `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// What specgate needs to know of a runtime command line; the arguments
/// themselves go to the runtime unchanged.
#[derive(Debug, Default, PartialEq, Eq)]
struct Invocation {
    /// `--log`: where the runtime logs.
    log: Option<PathBuf>,
    /// `--log-format json`.
    json_log: bool,
    /// The command, when there is one (`--version` alone has none).
    command: Option<String>,
    /// `--bundle`/`-b` of `create` and `run`.
    bundle: Option<PathBuf>,
    /// The container id of `create` and `run`.
    id: Option<String>,
}

impl Invocation {
    /// Whether the command creates a container: the policy's moment.
    fn creates(&self) -> bool {
        matches!(self.command.as_deref(), Some("create" | "run"))
    }

    fn log_format(&self) -> LogFormat {
        if self.json_log {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// A flag token: its name without dashes and its `=value`, if any. Go's
/// flag package, which runc uses, takes `-name` and `--name` alike.
fn flag(arg: &OsStr) -> Option<(&str, Option<&str>)> {
    let text = arg.to_str()?;
    let name = text
        .strip_prefix("--")
        .or_else(|| text.strip_prefix('-'))
        .filter(|n| !n.is_empty())?;
    Some(match name.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (name, None),
    })
}

/// Reads a runtime command line: the global flags (those known to take a
/// value consume the next argument unless written `--flag=value`), the
/// command, and for `create` and `run` the bundle and the container id.
///
/// An unknown global flag written without `=` fails: whether it takes a
/// value decides which argument is the command, and a wrong guess would
/// let a `create` through unchecked.
fn scan(args: &[OsString]) -> Result<Invocation> {
    let mut inv = Invocation::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            inv.command = rest.next().map(|a| a.to_string_lossy().into_owned());
            break;
        }
        let Some((name, inline)) = flag(arg) else {
            inv.command = Some(arg.to_string_lossy().into_owned());
            break;
        };
        if VALUED_GLOBALS.contains(&name) {
            let value = match inline {
                Some(value) => OsString::from(value),
                None => rest
                    .next()
                    .cloned()
                    .with_context(|| format!("flag needs an argument: -{name}"))?,
            };
            match name {
                "log" => inv.log = Some(PathBuf::from(value)),
                "log-format" => inv.json_log = value == "json",
                _ => {}
            }
        } else if !BOOLEAN_GLOBALS.contains(&name) && inline.is_none() {
            bail!(
                "unknown global flag `{}`: cannot tell whether it takes a value; write it `{}=VALUE`",
                arg.to_string_lossy(),
                arg.to_string_lossy()
            );
        }
    }
    if !inv.creates() {
        return Ok(inv);
    }
    let mut flags_done = false;
    while let Some(arg) = rest.next() {
        if !flags_done && arg == "--" {
            flags_done = true;
            continue;
        }
        match flag(arg).filter(|_| !flags_done) {
            Some(("config" | "f", _)) => bail!(
                "{} --config: not supported; the policy reads BUNDLE/config.json",
                inv.command.as_deref().unwrap_or_default()
            ),
            Some((name, inline)) if VALUED_CREATE.contains(&name) => {
                let value = match inline {
                    Some(value) => OsString::from(value),
                    None => rest.next().cloned().with_context(|| {
                        format!(
                            "{}: flag needs an argument: -{name}",
                            inv.command.as_deref().unwrap_or_default()
                        )
                    })?,
                };
                // The last one wins, as with Go's flags.
                if name == "bundle" || name == "b" {
                    inv.bundle = Some(PathBuf::from(value));
                }
            }
            Some(_) => {}
            None if inv.id.is_none() => inv.id = Some(arg.to_string_lossy().into_owned()),
            None => {}
        }
    }
    Ok(inv)
}

/// Runs `specgate oci ARGS`: on success it does not return, the process
/// having become the runtime. A failure is reported on stderr and in the
/// runtime's log, and gives runc's exit status 1.
pub(super) fn run(cli: &Cli, args: &[OsString]) -> Result<u8> {
    let inv = match scan(args) {
        Ok(inv) => inv,
        Err(error) => {
            report(None, &error);
            return Ok(EXIT_RUNTIME_FAILURE);
        }
    };
    let error = match prepare(cli, &inv) {
        Ok(runtime) => {
            let error = std::process::Command::new(runtime.program())
                .arg0(runtime.program())
                .args(args)
                .exec();
            anyhow::Error::new(error).context(format!(
                "cannot execute the runtime {}",
                runtime.program().display()
            ))
        }
        Err(error) => error,
    };
    report(Some(&inv), &error);
    Ok(EXIT_RUNTIME_FAILURE)
}

/// The policy file: `SPECGATE_POLICY`, else the default when it exists.
fn policy_path() -> Option<PathBuf> {
    match std::env::var_os(POLICY_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => Some(PathBuf::from(policy::file::DEFAULT_PATH)).filter(|p| p.exists()),
    }
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

/// Everything before handing over: for `create` and `run`, the chain over
/// the bundle's config.json, written back and audited. Returns the
/// runtime to become.
fn prepare(cli: &Cli, inv: &Invocation) -> Result<Runtime> {
    let policy = policy_path();
    if !inv.creates() {
        // Only the runtime's name matters here: a chain that stopped
        // loading must not strand running containers.
        let from_policy = match &policy {
            Some(path) => Policy::load_runtime(path)?,
            None => None,
        };
        return resolve_runtime(from_policy);
    }
    let command = inv.command.as_deref().unwrap_or_default();
    let Some(id) = inv.id.as_deref() else {
        bail!("{command}: the container id is missing");
    };
    // Until the hand-over this thread keeps its CPU and the helpers the
    // others, so that none waits behind another with a CPU idle.
    let staying = crate::sys::stay_here();
    // Built on the other core while this one reads the policy and starts
    // on config.json; wasted, but not waited for, if the policy names no
    // plugin.
    crate::policy::engine::warm_up(super::ALLOCATION);
    let chain_args = ChainArgs {
        policy,
        no_default_policy: false,
        policy_mode: None,
        audit_log: None,
        plugins: Vec::new(),
        plugin_settings: Vec::new(),
        plugin_timeout: None,
        plugin_memory: None,
    };
    let bundle = std::path::absolute(inv.bundle.as_deref().unwrap_or(Path::new(".")))
        .context("cannot resolve the bundle's path")?;
    // The engine's config is read while the plugins load: neither needs
    // the other, and each is a good part of the wrapper's time.
    let (chain, config) = LoadedChain::load(cli, &chain_args, || BundleConfig::read(&bundle))?;
    let runtime = resolve_runtime(chain.runtime.clone())?;
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
    // Without a holder, the exec would first tear down this process's
    // memory (the plugins', the parsed config), and the engine would wait
    // for that too. Starting one takes two clones and a wait: a helper
    // does it while the chain runs.
    let (outcome, held) = crate::sys::alongside(vec![crate::sys::hold_memory_until_exec], || {
        gate(&chain, &config, id, &mut record)
    });
    if let [Some(Err(error))] = held.as_slice() {
        tracing::debug!("the exec tears down the memory itself: {error}");
    }
    // The runtime's own status is never seen: specgate becomes the
    // runtime. The container's record is its `start`; one that specgate
    // stopped ends here.
    if outcome.is_err() {
        record.end(EXIT_RUNTIME_FAILURE);
    }
    if let Some(log) = &chain.audit_log {
        record
            .append(log)
            .with_context(|| format!("audit log {}", log.display()))?;
    }
    let report = outcome?;
    staying
        .release()
        .context("cannot give the runtime the engine's CPU mask back")?;
    // The process becomes the runtime next: freeing the plugins'
    // instances, the loaded plugins and the parsed config would only
    // delay it.
    std::mem::forget((report, chain, config));
    Ok(runtime)
}

/// The chain over the engine's spec, and the result written back.
fn gate(
    chain: &LoadedChain,
    config: &BundleConfig,
    id: &str,
    record: &mut audit::Record,
) -> Result<Report> {
    let mut spec = config.spec().clone();
    let report = chain.run_recorded(&mut spec, id, record)?;
    record.config_sha256 = Some(config.write_back(&spec)?);
    Ok(report)
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

    fn scan_str(args: &[&str]) -> Result<Invocation> {
        scan(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn containerds_create_is_read_through_its_global_flags() {
        let inv = scan_str(&[
            "--root",
            "/run/containerd/runc/k8s.io",
            "--log",
            "/run/containerd/task/log.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/run/containerd/task/abc",
            "--pid-file",
            "/run/containerd/task/abc/init.pid",
            "abc",
        ])
        .unwrap();
        assert_eq!(
            inv,
            Invocation {
                log: Some("/run/containerd/task/log.json".into()),
                json_log: true,
                command: Some("create".into()),
                bundle: Some("/run/containerd/task/abc".into()),
                id: Some("abc".into()),
            }
        );
        assert!(inv.creates());
    }

    #[test]
    fn flags_are_read_in_every_form_go_accepts() {
        let inv = scan_str(&[
            "-root=/r",
            "--log=/l",
            "-log-format=text",
            "--debug",
            "run",
            "-b=/b1",
            "--console-socket",
            "/s.sock",
            "-d",
            "--keep",
            "id1",
        ])
        .unwrap();
        assert_eq!(inv.log.as_deref(), Some(Path::new("/l")));
        assert_eq!(inv.log_format(), LogFormat::Text);
        assert_eq!(inv.command.as_deref(), Some("run"));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b1")));
        assert_eq!(inv.id.as_deref(), Some("id1"));

        let inv = scan_str(&["create", "-b", "/b2", "--bundle=/b3", "id2"]).unwrap();
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b3")), "last wins");
        let inv = scan_str(&["create", "--pid-file", "p", "--", "-odd-id"]).unwrap();
        assert_eq!(inv.id.as_deref(), Some("-odd-id"));
        assert_eq!(inv.bundle, None, "the current directory");
    }

    #[test]
    fn other_commands_are_only_named() {
        for (args, command) in [
            (&["--root", "/r", "state", "abc"][..], Some("state")),
            (&["kill", "abc", "KILL"], Some("kill")),
            (&["features"], Some("features")),
            (&["--version"], None),
            (&[], None),
            (&["--log", "/l", "--", "delete"], Some("delete")),
        ] {
            let inv = scan_str(args).unwrap();
            assert_eq!(inv.command.as_deref(), command, "{args:?}");
            assert!(!inv.creates());
            assert_eq!(inv.bundle, None);
        }
        // `exec --bundle` is not create's: nothing to check.
        let inv = scan_str(&["exec", "--process", "p.json", "abc"]).unwrap();
        assert_eq!(inv.id, None);
    }

    #[test]
    fn an_ambiguous_command_line_is_refused() {
        let err = scan_str(&["--new-flag", "x", "create", "id"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown global flag `--new-flag`: cannot tell"),
            "{err}"
        );
        // Written with `=`, it is unambiguous.
        let inv = scan_str(&["--new-flag=x", "create", "id"]).unwrap();
        assert_eq!(inv.command.as_deref(), Some("create"));
        let err = scan_str(&["--root"]).unwrap_err();
        assert_eq!(err.to_string(), "flag needs an argument: -root");
        let err = scan_str(&["create", "--bundle"]).unwrap_err();
        assert_eq!(err.to_string(), "create: flag needs an argument: -bundle");
        let err = scan_str(&["create", "--config", "other.json", "id"]).unwrap_err();
        assert!(err.to_string().contains("--config: not supported"), "{err}");
    }

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
