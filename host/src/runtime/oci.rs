//! Driving an OCI runtime (runc, crun, ...) as a subprocess through its
//! command line: run, or create and start, and delete. The container's exit status comes from
//! waiting on a process (the foreground runtime's, or the container's
//! init), never from polling state.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Errors from the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime's executable does not exist.
    #[error("--runtime {0}: not found (is it installed and in PATH?)")]
    NotFound(String),
    /// The runtime could not be started.
    #[error("cannot execute the runtime {}: {source}", program.display())]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime failed a command; `message` is its own error text.
    #[error("{} {command} {id}: {message}", program.display())]
    Failed {
        /// The executable.
        program: PathBuf,
        /// `run`, `delete`, ...
        command: &'static str,
        /// The container id.
        id: String,
        /// What the runtime said.
        message: String,
    },
    /// The runtime is specgate itself: handing it the container would
    /// loop.
    #[error(
        "the runtime {} is specgate itself; name the real one (`runtime` in the policy file, or SPECGATE_RUNTIME)",
        .0.display()
    )]
    IsSpecgate(PathBuf),
    /// The container id is taken by a container this run did not
    /// create (podman's, or one made with the runtime directly): it is
    /// left alone.
    #[error(
        "container name `{id}` is already in use by a container of {} with bundle {} that this run did not create; choose another --name",
        program.display(),
        bundle.display()
    )]
    NameTaken {
        /// The executable.
        program: PathBuf,
        /// The container id.
        id: String,
        /// The bundle the runtime's state records for it.
        bundle: PathBuf,
    },
    /// The command in the container could not be run.
    #[error("{message}")]
    Command {
        /// 126 (cannot be invoked) or 127 (not found).
        status: u8,
        /// What the runtime said.
        message: String,
    },
}

/// The file, in the bundle, where the runtime writes the container's
/// init pid once the container has started.
pub const PID_FILE: &str = "init.pid";

/// The runtime's standard streams for a run.
#[derive(Debug)]
pub struct RunStdio {
    /// Its stdin.
    pub stdin: OwnedFd,
    /// Its stdout.
    pub stdout: OwnedFd,
    /// Its stderr.
    pub stderr: OwnedFd,
}

/// An OCI runtime and the global flags to pass it.
#[derive(Debug, Clone)]
pub struct Runtime {
    program: PathBuf,
    flags: Vec<String>,
    /// `--no-new-keyring` on run: a rootless container keeps the
    /// caller's session keyring, as buildah runs it (the kernel's key
    /// quota is per user, and every run would spend some).
    no_new_keyring: bool,
}

impl Runtime {
    /// Finds the runtime: a path is taken as is, a name is looked up in
    /// PATH.
    pub fn resolve(name: &str, flags: Vec<String>) -> Result<Self, RuntimeError> {
        let program = if name.contains('/') {
            Some(PathBuf::from(name)).filter(|p| is_executable(p))
        } else {
            // Without PATH (conmon calls `delete` with an almost empty
            // environment), the usual directories, as execvp(3) does.
            let path = std::env::var_os("PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| crate::spec::DEFAULT_PATH.into());
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| is_executable(p))
        };
        let program = program.ok_or_else(|| RuntimeError::NotFound(name.to_string()))?;
        Ok(Runtime {
            program,
            flags,
            no_new_keyring: false,
        })
    }

    /// The runtime's executable.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The global flags passed on every call.
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    /// Adds `flags` the user's own do not already set (by name).
    pub fn with_flags(mut self, flags: Vec<String>) -> Self {
        let name = |f: &str| f.split('=').next().unwrap_or_default().to_string();
        for flag in flags {
            if !self.flags.iter().any(|f| name(f) == name(&flag)) {
                self.flags.push(flag);
            }
        }
        self
    }

    /// Runs containers rootless, as buildah does: `--rootless=true`
    /// (unless the user's flags say otherwise), so that the runtime
    /// neither guesses nor touches cgroups it cannot write, and
    /// `--no-new-keyring`.
    pub fn rootless(mut self) -> Self {
        self = self.with_flags(vec!["--rootless=true".into()]);
        self.no_new_keyring = true;
        self
    }

    /// Fails when the runtime is the running executable (through a link
    /// or a copy under the same inode): `specgate-runtime` installed as
    /// `runc` early in PATH would otherwise exec itself forever.
    pub fn refuse_self(&self) -> Result<(), RuntimeError> {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata("/proc/self/exe");
        let theirs = std::fs::metadata(&self.program);
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) if ours.dev() == theirs.dev() && ours.ino() == theirs.ino() => {
                Err(RuntimeError::IsSpecgate(self.program.clone()))
            }
            _ => Ok(()),
        }
    }

    fn command(&self, log: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        let mut log_arg = OsString::from("--log=");
        log_arg.push(log);
        cmd.arg(log_arg).arg("--log-format=json").args(&self.flags);
        cmd
    }

    /// Starts `runtime run`, which creates and starts the container, with
    /// `stdio` as the runtime's standard streams. Without a console
    /// socket the runtime stays in the foreground: the container's
    /// streams are relayed from `stdio`, signals sent to the runtime
    /// reach the container, and the runtime exits with it and deletes it.
    /// With `console_socket` (a name in the bundle, where the runtime
    /// runs) the runtime sends the container's terminal there and
    /// detaches: it exits once the container runs, leaving its init
    /// process to whoever reaps orphans, and the container to delete.
    /// Returns the runtime's process.
    pub fn spawn_run(
        &self,
        id: &str,
        bundle: &Path,
        stdio: RunStdio,
        console_socket: Option<&str>,
    ) -> Result<std::process::Child, RuntimeError> {
        self.spawn("run", id, bundle, stdio, console_socket)
    }

    /// Starts `runtime create`, which creates the container without
    /// starting its command, and exits, leaving the container's init
    /// (which keeps `stdio`, or the terminal sent to `console_socket`) to
    /// whoever reaps orphans: [`Runtime::start`] then starts it.
    pub fn spawn_create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: RunStdio,
        console_socket: Option<&str>,
    ) -> Result<std::process::Child, RuntimeError> {
        self.spawn("create", id, bundle, stdio, console_socket)
    }

    fn spawn(
        &self,
        command: &str,
        id: &str,
        bundle: &Path,
        stdio: RunStdio,
        console_socket: Option<&str>,
    ) -> Result<std::process::Child, RuntimeError> {
        let log = bundle.join("runtime.log");
        let mut cmd = self.command(&log);
        cmd.arg(command)
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join(PID_FILE));
        if self.no_new_keyring {
            cmd.arg("--no-new-keyring");
        }
        if let Some(socket) = console_socket {
            if command == "run" {
                cmd.arg("--detach");
            }
            cmd.arg("--console-socket").arg(socket);
        }
        cmd.arg(id)
            .current_dir(bundle)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        // The command, and with it the container's ends of the streams,
        // is dropped on return: the relay then sees their end of file.
        cmd.spawn().map_err(|source| RuntimeError::Spawn {
            program: self.program.clone(),
            source,
        })
    }

    /// Starts the command of a created container.
    pub fn start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        let log = bundle.join("runtime.log");
        let mut cmd = self.command(&log);
        cmd.arg("start").arg(id);
        self.finish(cmd, "start", id, &log)
    }

    /// The outcome of a detached `run` or a `create` (`command`, see
    /// [`Runtime::spawn_run`]): the container runs, or exists, when the
    /// runtime exited with success and logged no error.
    pub fn start_outcome(
        &self,
        command: &'static str,
        id: &str,
        bundle: &Path,
        status: std::process::ExitStatus,
    ) -> Result<(), RuntimeError> {
        if let Some(error) = self.logged_error(command, id, bundle) {
            return Err(error);
        }
        if status.success() {
            return Ok(());
        }
        Err(RuntimeError::Failed {
            program: self.program.clone(),
            command,
            id: id.to_string(),
            message: format!("exited with {status}"),
        })
    }

    /// The error the runtime logged in the bundle, if it did, for its
    /// `command`.
    pub fn logged_error(
        &self,
        command: &'static str,
        id: &str,
        bundle: &Path,
    ) -> Option<RuntimeError> {
        let message = last_error(&bundle.join("runtime.log"))?;
        if let Some(status) = command_status(&message) {
            return Some(RuntimeError::Command { status, message });
        }
        Some(RuntimeError::Failed {
            program: self.program.clone(),
            command,
            id: id.to_string(),
            message,
        })
    }

    /// The outcome of a foreground run: the runtime's exit status is the
    /// container's (128+N for signal N), unless the runtime logged an
    /// error, in which case the run failed before the command ran.
    pub fn run_outcome(
        &self,
        id: &str,
        bundle: &Path,
        status: std::process::ExitStatus,
    ) -> Result<u8, RuntimeError> {
        use std::os::unix::process::ExitStatusExt;
        if let Some(error) = self.logged_error("run", id, bundle) {
            return Err(error);
        }
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code as u8,
            (None, Some(signal)) => 128 + signal as u8,
            (None, None) => 125,
        })
    }

    /// The bundle the runtime's state records for container `id`; none
    /// when the runtime has no such container.
    pub fn state_bundle(&self, id: &str) -> Result<Option<PathBuf>, RuntimeError> {
        let output = Command::new(&self.program)
            .args(&self.flags)
            .arg("state")
            .arg(id)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            // runc and crun both say so, in their own words.
            if stderr.contains("does not exist") || stderr.contains("not exist") {
                return Ok(None);
            }
            return Err(RuntimeError::Failed {
                program: self.program.clone(),
                command: "state",
                id: id.to_string(),
                message: stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no state")
                    .to_string(),
            });
        }
        let state: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|e| RuntimeError::Failed {
                program: self.program.clone(),
                command: "state",
                id: id.to_string(),
                message: format!("unreadable state: {e}"),
            })?;
        Ok(Some(PathBuf::from(
            state["bundle"].as_str().unwrap_or_default(),
        )))
    }

    /// Fails with [`RuntimeError::NameTaken`] when the runtime has a
    /// container `id` whose bundle is not `bundle`; none at all is fine.
    pub fn check_own(&self, id: &str, bundle: &Path) -> Result<bool, RuntimeError> {
        match self.state_bundle(id)? {
            None => Ok(false),
            Some(theirs) if same_directory(&theirs, bundle) => Ok(true),
            Some(theirs) => Err(RuntimeError::NameTaken {
                program: self.program.clone(),
                id: id.to_string(),
                bundle: theirs,
            }),
        }
    }

    /// Deletes the container `id` if, and only if, it is the one made
    /// from `bundle`: the runtime's state must name that bundle. A
    /// container of someone else's under the same id (a name clash, a
    /// dead run's id reused) is never touched.
    pub fn delete_own(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        if self.check_own(id, bundle)? {
            self.delete(id, bundle)
        } else {
            Ok(())
        }
    }

    /// Deletes the container's runtime state, killing what is left,
    /// whoever made it: callers check it is theirs first
    /// ([`Runtime::delete_own`]).
    fn delete(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        let log = bundle.join("runtime.log");
        let mut cmd = self.command(&log);
        cmd.arg("delete").arg("--force").arg(id);
        self.finish(cmd, "delete", id, &log)
    }

    fn finish(
        &self,
        mut cmd: Command,
        command: &'static str,
        id: &str,
        log: &Path,
    ) -> Result<(), RuntimeError> {
        let output = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| RuntimeError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let message = last_error(log)
            .or_else(|| {
                let stderr = String::from_utf8_lossy(&output.stderr);
                stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("exited with {}", output.status));
        if let Some(status) = command_status(&message) {
            return Err(RuntimeError::Command { status, message });
        }
        Err(RuntimeError::Failed {
            program: self.program.clone(),
            command,
            id: id.to_string(),
            message,
        })
    }
}

/// Whether two paths name the same directory: the same path, or the
/// same inode.
fn same_directory(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.is_dir() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The last error the runtime wrote to its JSON log.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        (entry["level"] == "error")
            .then(|| entry["msg"].as_str().map(str::to_string))
            .flatten()
    })
}

/// podman's statuses for a command that cannot run: 127 when it is not
/// found, 126 when it cannot be invoked.
fn command_status(message: &str) -> Option<u8> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("executable file not found")
        || lower.contains("no such file or directory") && lower.contains("exec")
    {
        Some(127)
    } else if lower.contains("permission denied") && lower.contains("exec")
        || lower.contains("is a directory")
    {
        Some(126)
    } else {
        None
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_failures_map_to_podmans_statuses() {
        assert_eq!(
            command_status(
                "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
            ),
            Some(127)
        );
        assert_eq!(command_status("exec /etc: permission denied"), Some(126));
        assert_eq!(command_status("cgroup: something else"), None);
    }

    #[test]
    fn the_users_flags_win_over_added_ones() {
        let runtime = Runtime::resolve("/bin/sh", vec!["--root=/mine".into()])
            .unwrap()
            .with_flags(vec!["--root=/default".into(), "--systemd-cgroup".into()])
            .rootless();
        assert_eq!(
            runtime.flags(),
            ["--root=/mine", "--systemd-cgroup", "--rootless=true"]
        );
        assert!(runtime.no_new_keyring);
    }

    #[test]
    fn a_missing_runtime_is_named() {
        let err = Runtime::resolve("/nonexistent/runc", vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--runtime /nonexistent/runc: not found (is it installed and in PATH?)"
        );
    }
}
