//! Running a container with an OCI runtime: the bundle, the runtime
//! driver, signals, exit status and cleanup.

pub mod bundle;
pub mod chroot;
pub mod config;
pub mod console;
pub mod gc;
pub mod oci;
pub mod stdio;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

pub use bundle::Bundle;
pub use config::BundleConfig;
pub use oci::{RunStdio, Runtime, RuntimeError};
pub use stdio::StdioConfig;

use crate::sys::{self, StdFd};
use stdio::{Event, Hold};

/// The signals forwarded to the container, as podman and buildah do: to
/// the foreground runtime, which passes them to the container's init.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Errors of a run, outside the container itself.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A run without a runtime (`--isolation chroot`) failed.
    #[error(transparent)]
    Chroot(#[from] chroot::ChrootError),
    /// The bundle could not be made.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// The container's standard streams could not be set up.
    #[error(transparent)]
    Stdio(#[from] stdio::StdioError),
    /// The container's terminal could not be received.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    /// A relay thread could not start.
    #[error("cannot start relaying the container's {stream}: {source}")]
    Relay {
        /// The stream.
        stream: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime's pid file could not be read.
    #[error("pid file {}: {source}", path.display())]
    PidFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for the runtime or the container failed.
    #[error("waiting for process {pid}: {errno}")]
    Wait {
        /// Its pid.
        pid: i32,
        /// Why.
        errno: nix::Error,
    },
}

impl RunError {
    /// The exit status this error gives: 126 or 127 when the command
    /// could not run, else 125.
    pub fn status(&self) -> u8 {
        match self {
            RunError::Runtime(RuntimeError::Command { status, .. }) => *status,
            RunError::Chroot(error) => error.status(),
            _ => 125,
        }
    }
}

/// The state directory: `/run/specgate` for root, else
/// `$XDG_RUNTIME_DIR/specgate`.
pub fn state_dir() -> PathBuf {
    if !nix::unistd::geteuid().is_root()
        && let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir.join("specgate");
    }
    PathBuf::from("/run/specgate")
}

/// Makes the host's root, read-only, the container's root: bound at
/// `mount_point` inside specgate's own mount namespace, so the mount
/// disappears with specgate however it ends.
pub fn bind_host_root(mount_point: &Path) -> Result<(), RunError> {
    sys::private_mount_namespace()?;
    sys::rbind(Path::new("/"), mount_point)?;
    sys::make_recursively_read_only(mount_point)?;
    Ok(())
}

/// Forwards caught signals to the process that passes them on to the
/// container (the foreground runtime, or the container's init), and
/// resizes the container's terminal on SIGWINCH.
struct Forwarder {
    target: Arc<Mutex<Option<Pid>>>,
}

impl Forwarder {
    fn start(signals: OwnedFd, resizer: Option<Arc<console::Resizer>>) -> Self {
        let target: Arc<Mutex<Option<Pid>>> = Arc::new(Mutex::new(None));
        let shared = target.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(signals);
            let mut byte = [0u8; 1];
            while pipe.read_exact(&mut byte).is_ok() {
                let Ok(signal) = Signal::try_from(i32::from(byte[0])) else {
                    continue;
                };
                if signal == Signal::SIGWINCH {
                    if let Some(resizer) = &resizer {
                        resizer.resize();
                    }
                    continue;
                }
                // Sent under the lock: once `set` cleared the target, no
                // signal goes to its pid, which may be reused.
                let target = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(pid) = *target {
                    let _ = kill(pid, signal);
                }
            }
        });
        Forwarder { target }
    }

    /// Where signals go from now on; none drops them.
    fn set(&self, pid: Option<Pid>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    }
}

/// Whether the spec gives the container a terminal.
fn has_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Runs the container of `bundle`, whose config.json is `spec`, under
/// `id`, and returns its exit status: its own code, or 128+N for signal
/// N. The runtime's state is deleted on every path.
///
/// Without a terminal, one foreground `runtime run` does it all: it
/// forwards our signals to the container and deletes it at the end, and
/// costs two runtime invocations less than create, start and delete
/// (measured in bench/run.py when this was chosen: 1.23x raw `runc run`
/// against 1.54x). Its streams
/// are pipes specgate relays ([`stdio`]). With a terminal
/// (`process.terminal`), the runtime detaches once it has sent the
/// terminal ([`console`]): specgate reaps the container's init itself, as
/// its subreaper, signals it directly, and deletes the container.
/// Runs that need work between create and start (networking) will need
/// create, start and delete.
pub fn run(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    spec: &Spec,
    stdio: StdioConfig,
) -> Result<u8, RunError> {
    if has_terminal(spec) {
        run_with_terminal(runtime, id, bundle, stdio)
    } else {
        run_with_pipes(runtime, id, bundle, spec, stdio)
    }
}

fn run_with_pipes(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    spec: &Spec,
    config: StdioConfig,
) -> Result<u8, RunError> {
    let forwarder = Forwarder::start(sys::catch_signals(&FORWARDED)?, None);
    let pipes = stdio::Pipes::new(config, stdio::container_root(spec))?;
    let exited = Arc::new(Event::new()?);
    // The relays start before the runtime: a thread that cannot start
    // then leaves no container behind.
    if let Some(stdin) = pipes.stdin {
        let stop = exited.clone();
        spawn_relay("stdin", move || stdio::relay_input(stdin, &stop))?;
    }
    let stdout = {
        let (src, exited) = (pipes.stdout, exited.clone());
        spawn_relay("stdout", move || {
            stdio::relay_output(src, StdFd::Out.fd(), Hold::Nothing, &exited, "stdout")
        })
    };
    let stderr = {
        let (src, exited) = (pipes.stderr, exited.clone());
        let hold = Hold::UntilExists(bundle.dir().join(oci::PID_FILE));
        spawn_relay("stderr", move || {
            stdio::relay_output(src, StdFd::Err.fd(), hold, &exited, "stderr")
        })
    };
    let (stdout, stderr) = match (stdout, stderr) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(e), _) | (_, Err(e)) => {
            exited.fire();
            return Err(e);
        }
    };
    let ends = RunStdio {
        stdin: pipes.container_stdin,
        stdout: pipes.container_stdout,
        stderr: pipes.container_stderr,
    };
    let spawned = runtime.spawn_run(id, bundle.dir(), ends, None);
    let status = spawned
        .map_err(RunError::from)
        .and_then(|mut child| wait_child(&mut child, &forwarder));
    exited.fire();
    let _ = stdout.join();
    let held = stderr.join().unwrap_or_default();
    let outcome = runtime.run_outcome(id, bundle.dir(), status?);
    if outcome.is_ok() {
        // Not the runtime's error, which is reported from its log: show
        // it.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
    } else if let Err(e) = runtime.delete(id, bundle.dir()) {
        // A failed `run` may leave the container created.
        tracing::debug!("delete after a failed run: {e}");
    }
    Ok(outcome?)
}

fn run_with_terminal(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    config: StdioConfig,
) -> Result<u8, RunError> {
    let resizer = Arc::new(console::Resizer::default());
    let mut signals = FORWARDED.to_vec();
    signals.push(Signal::SIGWINCH);
    let forwarder = Forwarder::start(sys::catch_signals(&signals)?, Some(resizer.clone()));
    // The detached runtime leaves the container's init to us.
    sys::become_subreaper()?;
    let socket = console::ConsoleSocket::bind(bundle.dir())?;
    // The runtime's own stderr: its error, reported from its log, is not
    // shown twice.
    let (runtime_stderr, runtime_stderr_end) = stdio::pipe("runtime's stderr")?;
    let runtime_exited = Arc::new(Event::new()?);
    let captured = {
        let exited = runtime_exited.clone();
        spawn_relay("runtime's stderr", move || {
            stdio::relay_output(
                runtime_stderr,
                StdFd::Err.fd(),
                Hold::Everything,
                &exited,
                "runtime's stderr",
            )
        })?
    };
    let null = || {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(stdio::StdioError::DevNull)
    };
    let ends = RunStdio {
        stdin: null()?,
        stdout: null()?,
        stderr: runtime_stderr_end,
    };
    let spawned = runtime.spawn_run(id, bundle.dir(), ends, Some(console::SOCKET_NAME));
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            runtime_exited.fire();
            return Err(e.into());
        }
    };
    // Signals go to the runtime while it starts the container.
    forwarder.set(Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)).into());
    let master = socket.receive(&mut child).map(|master| {
        // Sized at once: the container may already be starting.
        master.map(|master| {
            let master = Arc::new(master);
            resizer.attach(&master);
            console::copy_size(master.as_fd());
            master
        })
    });
    let status = wait_child(&mut child, &forwarder);
    runtime_exited.fire();
    let held = captured.join().unwrap_or_default();
    // From here on, the container exists until deleted.
    let container = Created {
        runtime,
        id,
        bundle: bundle.dir(),
    };
    let started = runtime.start_outcome(id, bundle.dir(), status?);
    if started.is_ok() || runtime.logged_error(id, bundle.dir()).is_none() {
        // Not the runtime's error, which is reported from its log.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
    }
    started?;
    let master = master?.ok_or_else(|| console::ConsoleError::NoTerminal {
        path: socket.path().to_path_buf(),
    })?;
    let init = read_pid(&bundle.dir().join(oci::PID_FILE))?;
    forwarder.set(Some(init));

    // Raw mode only when keys go to the container: else Ctrl-C must stay
    // specgate's SIGINT, forwarded.
    let raw = config.stdin.then(console::RawMode::enter).flatten();
    let exited = Arc::new(Event::new()?);
    // Stops the input relay when the container ends, or when nobody reads
    // its output any more: then the terminal closes, and the container
    // sees it hang up, as it would its own terminal.
    let stop_input = Arc::new(Event::new()?);
    if config.stdin {
        let (master, stop) = (master.clone(), stop_input.clone());
        spawn_relay("stdin", move || stdio::relay_input(master, &stop))?;
    }
    let output = {
        let (stop, exited) = (stop_input.clone(), exited.clone());
        spawn_relay("terminal", move || {
            let held =
                stdio::relay_output(master, StdFd::Out.fd(), Hold::Nothing, &exited, "terminal");
            stop.fire();
            held
        })?
    };
    let status = wait_init(init, &forwarder)?;
    exited.fire();
    let _ = output.join();
    stop_input.fire();
    drop(raw);
    drop(container);
    Ok(status)
}

/// A created container, deleted when dropped.
struct Created<'a> {
    runtime: &'a Runtime,
    id: &'a str,
    bundle: &'a Path,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.runtime.delete(self.id, self.bundle) {
            tracing::warn!("{e}");
        }
    }
}

/// Starts a relay thread.
fn spawn_relay<T: Send + 'static>(
    stream: &'static str,
    relay: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(format!("relay {stream}"))
        .spawn(relay)
        .map_err(|source| RunError::Relay { stream, source })
}

/// Waits for the runtime's process to exit, forwarding signals to it
/// meanwhile. They stop going to it before it is reaped, so none can
/// reach a process that reuses its pid.
fn wait_child(child: &mut Child, forwarder: &Forwarder) -> Result<ExitStatus, RunError> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    forwarder.set(Some(pid));
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    // Any other error (ECHILD: already reaped, its status kept by
    // `child`) leaves it to `child.wait`.
    while let Err(nix::Error::EINTR) = waitid(Id::Pid(pid), flags) {}
    forwarder.set(None);
    loop {
        match child.wait() {
            Ok(status) => return Ok(status),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RunError::Wait {
                    pid: pid.as_raw(),
                    errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        }
    }
}

/// Waits for the container's init, which the detached runtime left to
/// us, and returns its status: its code, or 128+N for signal N.
fn wait_init(pid: Pid, forwarder: &Forwarder) -> Result<u8, RunError> {
    let wait_err = |errno| RunError::Wait {
        pid: pid.as_raw(),
        errno,
    };
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(wait_err(e)),
            Ok(_) => break,
        }
    }
    forwarder.set(None);
    loop {
        match waitpid(pid, None) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(wait_err(e)),
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as u8),
            Ok(_) => continue,
        }
    }
}

/// The pid the runtime wrote in its pid file.
fn read_pid(path: &Path) -> Result<Pid, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::PidFile {
        path: path.to_path_buf(),
        source,
    })?;
    text.trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| RunError::PidFile {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a pid: {:?}", text.trim()),
            ),
        })
}
