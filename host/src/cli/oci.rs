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

/// A command's flags as runc 1.1 to 1.3 and crun define them: those that
/// take a value, and those that do not. Aliases are mapped to one name.
struct CommandFlags {
    valued: &'static [&'static str],
    boolean: &'static [&'static str],
}

/// `create` (crun adds `--no-subreaper`).
const CREATE_FLAGS: CommandFlags = CommandFlags {
    valued: &[
        "bundle",
        "console-socket",
        "pidfd-socket",
        "pid-file",
        "preserve-fds",
    ],
    boolean: &["no-pivot", "no-new-keyring", "no-subreaper"],
};

/// `run`.
const RUN_FLAGS: CommandFlags = CommandFlags {
    valued: &[
        "bundle",
        "console-socket",
        "pidfd-socket",
        "pid-file",
        "preserve-fds",
    ],
    boolean: &[
        "detach",
        "keep",
        "no-subreaper",
        "no-pivot",
        "no-new-keyring",
    ],
};

/// `restore` (crun adds `--tcp-close` and `--network-lock`).
const RESTORE_FLAGS: CommandFlags = CommandFlags {
    valued: &[
        "console-socket",
        "image-path",
        "work-path",
        "manage-cgroups-mode",
        "bundle",
        "pid-file",
        "empty-ns",
        "lsm-profile",
        "lsm-mount-context",
    ],
    boolean: &[
        "tcp-established",
        "ext-unix-sk",
        "shell-job",
        "file-locks",
        "detach",
        "no-subreaper",
        "no-pivot",
        "auto-dedup",
        "lazy-pages",
        "tcp-close",
        "network-lock",
    ],
};

/// `exec`.
const EXEC_FLAGS: CommandFlags = CommandFlags {
    valued: &[
        "console-socket",
        "pidfd-socket",
        "cwd",
        "env",
        "user",
        "additional-gids",
        "process",
        "pid-file",
        "process-label",
        "apparmor",
        "cap",
        "preserve-fds",
        "cgroup",
    ],
    boolean: &["tty", "detach", "no-new-privs", "ignore-paused"],
};

/// A flag's one-letter alias as its name.
fn unalias(name: &str) -> &str {
    match name {
        "b" => "bundle",
        "d" => "detach",
        "e" => "env",
        "t" => "tty",
        "u" => "user",
        "g" => "additional-gids",
        "p" => "process",
        "c" => "cap",
        other => other,
    }
}

/// The runtime's log format, for the denial written to `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// What specgate needs to know of a runtime command line; the arguments
/// themselves go to the runtime unchanged (but for an exec's process
/// file, see [`exec`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct Invocation {
    /// `--log`: where the runtime logs.
    log: Option<PathBuf>,
    /// `--log-format json`.
    json_log: bool,
    /// The global flags but the log's, as given: what asking the runtime
    /// about the container (`state`) needs.
    globals: Vec<OsString>,
    /// The command, when there is one (`--version` alone has none).
    command: Option<String>,
    /// `--bundle`/`-b` of `create`, `run` and `restore`.
    bundle: Option<PathBuf>,
    /// The container id of a gated command.
    id: Option<String>,
    /// A gated command's flags that take a value, by name, in order.
    values: Vec<(&'static str, OsString)>,
    /// Its flags that take none, by name, with the value given
    /// (`--tty=false`), in order.
    switches: Vec<(&'static str, bool)>,
    /// `exec`'s command, after the container id.
    args: Vec<String>,
    /// Where `exec --process`'s value is: the argument's index, and
    /// whether it is written `--process=FILE`.
    process_at: Option<(usize, bool)>,
}

impl Invocation {
    /// Whether the command creates a container: the policy's moment.
    fn creates(&self) -> bool {
        matches!(self.command.as_deref(), Some("create" | "run" | "restore"))
    }

    /// Whether the command starts a process in a container: gated, with
    /// or without a policy file.
    fn gated(&self) -> bool {
        self.creates() || self.command.as_deref() == Some("exec")
    }

    fn log_format(&self) -> LogFormat {
        if self.json_log {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }

    /// The last value of a flag that takes one.
    fn value(&self, name: &str) -> Option<&OsStr> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// Every value of a repeatable flag, in order.
    fn all_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a OsStr> + 'a {
        self.values
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The last value of a flag that takes none, if it was given.
    fn switch(&self, name: &str) -> Option<bool> {
        self.switches
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
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

/// A boolean flag's `=value`, as Go's `strconv.ParseBool` reads it.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads a runtime command line: the global flags (those known to take a
/// value consume the next argument unless written `--flag=value`), the
/// command, and for the gated commands (`create`, `run`, `restore`,
/// `exec`) their flags, the container id and `exec`'s command.
///
/// An unknown flag written without `=` fails: whether it takes a value
/// decides which argument is the command, or the container id, and a
/// wrong guess would let a container through unchecked. So does a gated
/// command without exactly one container id, where runc's reading and
/// crun's could differ.
fn scan(args: &[OsString]) -> Result<Invocation> {
    let mut inv = Invocation::default();
    let mut at = 0;
    while at < args.len() {
        let arg = &args[at];
        at += 1;
        if arg == "--" {
            inv.command = args.get(at).map(|a| a.to_string_lossy().into_owned());
            at += 1;
            break;
        }
        let Some((name, inline)) = flag(arg) else {
            inv.command = Some(arg.to_string_lossy().into_owned());
            break;
        };
        if VALUED_GLOBALS.contains(&name) {
            let value = match inline {
                Some(value) => OsString::from(value),
                None => {
                    let value = args
                        .get(at)
                        .cloned()
                        .with_context(|| format!("flag needs an argument: -{name}"))?;
                    at += 1;
                    if !matches!(name, "log" | "log-format") {
                        inv.globals.push(arg.clone());
                        inv.globals.push(value.clone());
                    }
                    value
                }
            };
            match name {
                "log" => inv.log = Some(PathBuf::from(value)),
                "log-format" => inv.json_log = value == "json",
                _ if inline.is_some() => inv.globals.push(arg.clone()),
                _ => {}
            }
        } else if !BOOLEAN_GLOBALS.contains(&name) && inline.is_none() {
            bail!(
                "unknown global flag `{}`: cannot tell whether it takes a value; write it `{}=VALUE`",
                arg.to_string_lossy(),
                arg.to_string_lossy()
            );
        } else {
            inv.globals.push(arg.clone());
        }
    }
    let flags = match inv.command.as_deref() {
        Some("create") => CREATE_FLAGS,
        Some("run") => RUN_FLAGS,
        Some("restore") => RESTORE_FLAGS,
        Some("exec") => EXEC_FLAGS,
        _ => return Ok(inv),
    };
    let command = inv.command.clone().unwrap_or_default();
    // runc reorders `create`, `run` and `restore`'s arguments, so flags
    // may follow the id; `exec`'s flags end at the id, the rest being the
    // command (runc's SkipArgReorder, crun's in-order parsing).
    let reorders = command != "exec";
    let mut positional: Vec<OsString> = Vec::new();
    let mut flags_done = false;
    while at < args.len() {
        let index = at;
        let arg = &args[at];
        at += 1;
        if flags_done || (!reorders && !positional.is_empty()) {
            positional.push(arg.clone());
            continue;
        }
        if arg == "--" {
            flags_done = true;
            continue;
        }
        let Some((name, inline)) = flag(arg) else {
            positional.push(arg.clone());
            continue;
        };
        let name = unalias(name);
        if matches!(name, "config" | "f") && command != "exec" {
            bail!("{command} --config: not supported; the policy reads BUNDLE/config.json");
        }
        if let Some(known) = flags.valued.iter().find(|f| **f == name) {
            let value = match inline {
                Some(value) => OsString::from(value),
                None => {
                    let value = args
                        .get(at)
                        .cloned()
                        .with_context(|| format!("{command}: flag needs an argument: -{name}"))?;
                    at += 1;
                    value
                }
            };
            if *known == "process" {
                inv.process_at = Some(if inline.is_some() {
                    (index, true)
                } else {
                    (index + 1, false)
                });
            }
            inv.values.push((*known, value));
        } else if let Some(known) = flags.boolean.iter().find(|f| **f == name) {
            let value = match inline {
                None => true,
                Some(value) => parse_bool(value).with_context(|| {
                    format!("{command}: invalid boolean value `{value}` for -{name}")
                })?,
            };
            inv.switches.push((*known, value));
        } else if inline.is_none() {
            bail!(
                "{command}: unknown flag `{}`: cannot tell whether it takes a value; write it `{}=VALUE`",
                arg.to_string_lossy(),
                arg.to_string_lossy()
            );
        }
    }
    let mut positional = positional.into_iter();
    inv.id = positional
        .next()
        .map(|id| id.to_string_lossy().into_owned());
    if inv.id.is_none() {
        bail!("{command}: the container id is missing");
    }
    inv.args = positional
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if reorders && !inv.args.is_empty() {
        bail!(
            "{command}: one container id expected, got {}",
            1 + inv.args.len()
        );
    }
    inv.bundle = inv.value("bundle").map(PathBuf::from);
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
    let error = match prepare(cli, &inv, args) {
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

/// The chain's settings in wrapper mode: the policy file's, nothing else.
fn chain_args(policy: Option<PathBuf>) -> ChainArgs {
    ChainArgs {
        no_default_policy: policy.is_none(),
        policy,
        policy_mode: None,
        audit_log: None,
        plugins: Vec::new(),
        plugin_settings: Vec::new(),
        plugin_timeout: None,
        plugin_memory: None,
    }
}

/// Everything before handing over: for `create`, `run` and `restore`, the
/// chain over the bundle's config.json, written back and audited; for
/// `exec`, the check of its process (see [`exec`]). Returns what to
/// become.
fn prepare(cli: &Cli, inv: &Invocation, received: &[OsString]) -> Result<Handover> {
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
        return exec::prepare(cli, inv, received, id, chain_args(Some(policy)));
    }
    // Built on another thread while this one reads the policy and starts
    // on config.json; wasted, but not waited for, if the policy names no
    // plugin.
    crate::policy::engine::warm_up(super::ALLOCATION);
    let chain_args = chain_args(Some(policy));
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
    let outcome = gate(&chain, &config, inv, id, &mut record);
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
                globals: ["--root", "/run/containerd/runc/k8s.io", "--systemd-cgroup"]
                    .map(OsString::from)
                    .to_vec(),
                command: Some("create".into()),
                bundle: Some("/run/containerd/task/abc".into()),
                id: Some("abc".into()),
                values: vec![
                    ("bundle", "/run/containerd/task/abc".into()),
                    ("pid-file", "/run/containerd/task/abc/init.pid".into()),
                ],
                ..Invocation::default()
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
    }

    /// Each flag of the gated commands that takes a value, in each form
    /// runc accepts, before the id and (but for `exec`) after it: the id
    /// is the container's, never a flag's value.
    #[test]
    fn every_valued_flag_is_skipped_with_its_value() {
        for (command, flags) in [
            ("create", &CREATE_FLAGS),
            ("run", &RUN_FLAGS),
            ("restore", &RESTORE_FLAGS),
            ("exec", &EXEC_FLAGS),
        ] {
            for name in flags.valued {
                let tail: &[&str] = if command == "exec" { &["sh"] } else { &[] };
                let long = format!("--{name}");
                let single = format!("-{name}");
                let inline = format!("--{name}=/v/{name}");
                let shapes: Vec<Vec<&str>> = vec![
                    vec![command, &long, "/value-not-id", "the-id"],
                    vec![command, &single, "/value-not-id", "the-id"],
                    vec![command, &inline, "the-id"],
                    vec![
                        "--root",
                        "/r",
                        command,
                        &long,
                        "-looks-like-a-flag",
                        "the-id",
                    ],
                ];
                for mut shape in shapes {
                    shape.extend(tail);
                    let inv = scan_str(&shape).unwrap_or_else(|e| panic!("{shape:?}: {e}"));
                    assert_eq!(inv.id.as_deref(), Some("the-id"), "{shape:?}");
                    assert!(inv.value(name).is_some(), "{shape:?}");
                }
                if command != "exec" {
                    let after = [command, "the-id", &long, "/value-not-id"];
                    let inv = scan_str(&after).unwrap();
                    assert_eq!(inv.id.as_deref(), Some("the-id"), "{after:?}");
                    assert_eq!(inv.value(name), Some(OsStr::new("/value-not-id")));
                }
            }
            for name in flags.boolean {
                let tail: &[&str] = if command == "exec" { &["sh"] } else { &[] };
                for form in [
                    format!("--{name}"),
                    format!("-{name}"),
                    format!("--{name}=false"),
                ] {
                    let mut shape = vec![command, form.as_str(), "the-id"];
                    shape.extend(tail);
                    let inv = scan_str(&shape).unwrap_or_else(|e| panic!("{shape:?}: {e}"));
                    assert_eq!(inv.id.as_deref(), Some("the-id"), "{shape:?}");
                    assert_eq!(inv.switch(name), Some(!form.ends_with("=false")));
                }
            }
        }
    }

    #[test]
    fn the_pidfd_socket_is_not_taken_for_the_container_id() {
        let inv = scan_str(&[
            "--root",
            "/run/runc",
            "run",
            "--pidfd-socket",
            "/run/pidfd.sock",
            "--bundle",
            "/b",
            "web-1",
        ])
        .unwrap();
        assert_eq!(inv.id.as_deref(), Some("web-1"));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b")));
        let inv = scan_str(&["exec", "--pidfd-socket", "/s", "--detach", "web-1", "ps"]).unwrap();
        assert_eq!(inv.id.as_deref(), Some("web-1"));
        assert_eq!(inv.args, ["ps"]);
    }

    #[test]
    fn execs_flags_end_at_the_container_id() {
        // podman's (conmon's) and containerd's command lines.
        let inv = scan_str(&[
            "--root",
            "/run/runc",
            "--log",
            "/l",
            "exec",
            "--pid-file",
            "/p",
            "--process",
            "/run/exec.json",
            "--detach",
            "--preserve-fds=2",
            "c1",
        ])
        .unwrap();
        assert_eq!(inv.id.as_deref(), Some("c1"));
        assert_eq!(inv.process_at, Some((8, false)));
        assert_eq!(inv.value("process"), Some(OsStr::new("/run/exec.json")));
        assert_eq!(inv.globals, ["--root", "/run/runc"]);
        // After the id, `--cap` is the command's own argument.
        let inv = scan_str(&[
            "exec",
            "-c",
            "CAP_KILL",
            "--cap=CAP_CHOWN",
            "-u",
            "0:0",
            "-e",
            "A=1",
            "-t",
            "c1",
            "sh",
            "--cap",
            "CAP_SYS_ADMIN",
        ])
        .unwrap();
        let caps: Vec<&OsStr> = inv.all_values("cap").collect();
        assert_eq!(caps, ["CAP_KILL", "CAP_CHOWN"]);
        assert_eq!(inv.args, ["sh", "--cap", "CAP_SYS_ADMIN"]);
        assert_eq!(inv.value("user"), Some(OsStr::new("0:0")));
        assert_eq!(inv.switch("tty"), Some(true));
        let inv = scan_str(&["exec", "-p=/x.json", "--", "-c1"]).unwrap();
        assert_eq!(inv.id.as_deref(), Some("-c1"));
        assert_eq!(inv.process_at, Some((1, true)));
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
        // A flag of a newer runtime: its value could be the id.
        let err = scan_str(&["create", "--new-socket", "/s", "id"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("create: unknown flag `--new-socket`: cannot tell"),
            "{err}"
        );
        let inv = scan_str(&["create", "--new-socket=/s", "id"]).unwrap();
        assert_eq!(inv.id.as_deref(), Some("id"));
        let err = scan_str(&["exec", "--brand-new", "x", "id", "sh"]).unwrap_err();
        assert!(err.to_string().starts_with("exec: unknown flag"), "{err}");
        // runc and crun would read two ids differently, or not at all.
        let err = scan_str(&["create", "a", "b"]).unwrap_err();
        assert_eq!(err.to_string(), "create: one container id expected, got 2");
        let err = scan_str(&["restore", "--image-path", "/i"]).unwrap_err();
        assert_eq!(err.to_string(), "restore: the container id is missing");
        let err = scan_str(&["run", "--detach=maybe", "id"]).unwrap_err();
        assert!(err.to_string().contains("invalid boolean value"), "{err}");
    }

    #[test]
    fn restore_is_gated_and_other_commands_are_not() {
        let inv = scan_str(&[
            "restore",
            "--image-path",
            "/ckpt",
            "--work-path",
            "/work",
            "--manage-cgroups-mode",
            "soft",
            "--empty-ns",
            "network",
            "--lsm-profile",
            "apparmor:x",
            "--tcp-established",
            "-d",
            "--bundle",
            "/b",
            "r1",
        ])
        .unwrap();
        assert!(inv.creates() && inv.gated());
        assert_eq!(inv.id.as_deref(), Some("r1"));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b")));
        for command in ["update", "checkpoint", "pause", "ps", "events", "delete"] {
            let inv = scan_str(&[command, "--anything", "x", "id"]).unwrap();
            assert!(!inv.gated(), "{command}");
        }
        assert!(scan_str(&["exec", "id", "sh"]).unwrap().gated());
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
