//! runc's command line, read as runc and crun read it: the global flags,
//! the command, its flags and the container id, without knowing every
//! flag's meaning; a command line that could be read two ways is refused.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::error::Error;

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
pub(super) enum LogFormat {
    /// logrus's text.
    Text,
    /// logrus's JSON.
    Json,
}

/// What specgate needs to know of a runtime command line; the arguments
/// themselves go to the runtime unchanged (but for an exec's process
/// file, see [`super::exec`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Invocation {
    /// `--log`: where the runtime logs.
    pub(super) log: Option<PathBuf>,
    /// `--log-format json`.
    pub(super) json_log: bool,
    /// The global flags but the log's, as given: what asking the runtime
    /// about the container (`state`) needs.
    pub(super) globals: Vec<OsString>,
    /// The command, when there is one (`--version` alone has none).
    pub(super) command: Option<String>,
    /// `--bundle`/`-b` of `create`, `run` and `restore`.
    pub(super) bundle: Option<PathBuf>,
    /// The container id of a gated command.
    pub(super) id: Option<String>,
    /// A gated command's flags that take a value, by name, in order.
    pub(super) values: Vec<(&'static str, OsString)>,
    /// Its flags that take none, by name, with the value given
    /// (`--tty=false`), in order.
    pub(super) switches: Vec<(&'static str, bool)>,
    /// `exec`'s command, after the container id.
    pub(super) args: Vec<String>,
    /// Where `exec --process`'s value is: the argument's index, and
    /// whether it is written `--process=FILE`.
    pub(super) process_at: Option<(usize, bool)>,
}

impl Invocation {
    /// Whether the command creates a container: the policy's moment.
    pub(super) fn creates(&self) -> bool {
        matches!(self.command.as_deref(), Some("create" | "run" | "restore"))
    }

    /// Whether the command starts a process in a container: gated, with
    /// or without a policy file.
    pub(super) fn gated(&self) -> bool {
        self.creates() || self.command.as_deref() == Some("exec")
    }

    pub(super) fn log_format(&self) -> LogFormat {
        if self.json_log {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }

    /// The last value of a flag that takes one.
    pub(super) fn value(&self, name: &str) -> Option<&OsStr> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// Every value of a repeatable flag, in order.
    pub(super) fn all_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a OsStr> + 'a {
        self.values
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The last value of a flag that takes none, if it was given.
    pub(super) fn switch(&self, name: &str) -> Option<bool> {
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
pub(super) fn scan(args: &[OsString]) -> Result<Invocation, Error> {
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
                        .ok_or_else(|| Error::GlobalValueMissing(name.to_string()))?;
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
            return Err(Error::UnknownGlobal(arg.to_string_lossy().into_owned()));
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
            return Err(Error::ConfigFlag { command });
        }
        if let Some(known) = flags.valued.iter().find(|f| **f == name) {
            let value = match inline {
                Some(value) => OsString::from(value),
                None => {
                    let value = args.get(at).cloned().ok_or_else(|| Error::ValueMissing {
                        command: command.clone(),
                        flag: name.to_string(),
                    })?;
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
                Some(value) => parse_bool(value).ok_or_else(|| Error::InvalidBool {
                    command: command.clone(),
                    value: value.to_string(),
                    flag: name.to_string(),
                })?,
            };
            inv.switches.push((*known, value));
        } else if inline.is_none() {
            return Err(Error::UnknownFlag {
                command,
                flag: arg.to_string_lossy().into_owned(),
            });
        }
    }
    let mut positional = positional.into_iter();
    inv.id = positional
        .next()
        .map(|id| id.to_string_lossy().into_owned());
    if inv.id.is_none() {
        return Err(Error::NoId { command });
    }
    inv.args = positional
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if reorders && !inv.args.is_empty() {
        return Err(Error::Ids {
            command,
            count: 1 + inv.args.len(),
        });
    }
    inv.bundle = inv.value("bundle").map(PathBuf::from);
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn scan_str(args: &[&str]) -> Result<Invocation, Error> {
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
}
