//! Running a container with an OCI runtime: the bundle, the runtime
//! driver, signals, exit status and cleanup.

pub mod bundle;
pub mod chroot;
pub mod config;
pub mod console;
pub mod gc;
pub mod oci;
pub mod owner;
pub mod pin;
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

use crate::network::{self, Networks};
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
    /// The container's networks could not be configured.
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// The run's start could not be audited: the container does not start
    /// unrecorded.
    #[error("audit log {}: {source}", path.display())]
    Audit {
        /// The audit log.
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

/// An unprivileged caller has no place for runtime state, or one that
/// is not private to it.
#[derive(Debug, thiserror::Error)]
pub enum NoRuntimeDir {
    /// Neither XDG_RUNTIME_DIR nor /run/user/UID.
    #[error(
        "XDG_RUNTIME_DIR is not set and /run/user/{uid} is not a directory of yours: set XDG_RUNTIME_DIR to a private directory you own (a systemd-logind login session sets it)"
    )]
    Unset {
        /// The caller's uid.
        uid: u32,
    },
    /// The directory is not the caller's alone: another user could
    /// plant or swap what runs delete there.
    #[error(
        "runtime state directory {}: {why}; it must be a directory owned by uid {uid} that no one else may enter (mode 0700)",
        path.display()
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// The caller's uid.
        uid: u32,
    },
}

/// Checks that `path` is a directory (not a link to one) owned by `uid`
/// that no one else may enter, as the XDG base directory specification
/// requires of `$XDG_RUNTIME_DIR` (mode 0700; logind makes
/// `/run/user/UID` so): no one else can then plant, swap, remove or
/// watch what is in it.
pub fn check_private_dir(path: &Path, uid: u32) -> Result<(), NoRuntimeDir> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| NoRuntimeDir::NotPrivate {
        path: path.to_path_buf(),
        why,
        uid,
    };
    let metadata = std::fs::symlink_metadata(path).map_err(|e| refuse(e.to_string()))?;
    if metadata.file_type().is_symlink() {
        return Err(refuse("a symbolic link".into()));
    }
    if !metadata.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    if metadata.uid() != uid {
        return Err(refuse(format!("owned by uid {}", metadata.uid())));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(refuse(format!("mode {:04o}", metadata.mode() & 0o7777)));
    }
    Ok(())
}

/// Where an unprivileged caller keeps runtime state, as podman finds it:
/// `$XDG_RUNTIME_DIR`, else `/run/user/UID`; none for root, whose state
/// is under `/run`. Either must be the caller's own, closed to others.
fn user_runtime_dir() -> Result<Option<PathBuf>, NoRuntimeDir> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(None);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        check_private_dir(&dir, uid.as_raw())?;
        return Ok(Some(dir));
    }
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {
            check_private_dir(&dir, uid.as_raw())?;
            Ok(Some(dir))
        }
        _ => Err(NoRuntimeDir::Unset { uid: uid.as_raw() }),
    }
}

/// The state directory: `/run/specgate` for root, else
/// `$XDG_RUNTIME_DIR/specgate`. Bundles are made in it only once it is
/// found private to the caller ([`bundle::Bundle::create`]).
pub fn state_dir() -> Result<PathBuf, NoRuntimeDir> {
    Ok(user_runtime_dir()?.map_or_else(
        || PathBuf::from("/run/specgate"),
        |dir| dir.join("specgate"),
    ))
}

/// The runtime's global flags that the caller's identity needs: for an
/// unprivileged caller, runc's state directory (`--root`) under
/// `$XDG_RUNTIME_DIR`, runc's own default, given explicitly so that a run,
/// its guardian and `specgate gc` agree even where runc would not find it
/// (XDG_RUNTIME_DIR unset, /run/user/UID used).
pub fn caller_flags() -> Result<Vec<String>, NoRuntimeDir> {
    Ok(user_runtime_dir()?
        .map(|dir| vec![format!("--root={}", dir.join("runc").display())])
        .unwrap_or_default())
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
/// `id`, joined to `networks`, and returns its exit status: its own code,
/// or 128+N for signal N. The runtime's state is deleted, and the
/// networks removed, on every path.
///
/// Without a terminal or networks, one foreground `runtime run` does it
/// all: it forwards our signals to the container and deletes it at the
/// end, and costs two runtime invocations less than create, start and
/// delete (measured in bench/run.py when this was chosen: 1.23x raw
/// `runc run` against 1.54x). Its streams are pipes specgate relays
/// ([`stdio`]). With a terminal (`process.terminal`), the runtime
/// detaches once it has sent the terminal ([`console`]): specgate reaps
/// the container's init itself, as its subreaper, signals it directly,
/// and deletes the container. Networks are added between the runtime's
/// create and start, which then replace its run: the container's init,
/// orphaned by create, is reaped and signalled the same way, and the
/// networks are removed after the container is deleted.
///
/// `starting` is called, with the networks joined, once nothing but the
/// start of the container's process remains: before the runtime is
/// started without networks, between the networks' ADD and the runtime's
/// start with them. Its error stops the run before the container's
/// process runs.
pub fn run(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    spec: &Spec,
    stdio: StdioConfig,
    networks: &Networks,
    starting: Starting<'_>,
) -> Result<u8, RunError> {
    if networks.is_empty() {
        starting(&[])?;
    }
    let outcome = match (has_terminal(spec), networks.is_empty()) {
        (true, _) => run_with_terminal(runtime, id, bundle, stdio, networks, starting),
        (false, true) => run_with_pipes(runtime, id, bundle, spec, stdio),
        (false, false) => {
            run_with_pipes_and_networks(runtime, id, bundle, spec, stdio, networks, starting)
        }
    };
    outcome.map_err(|error| name_clash(runtime, id, bundle.dir(), error))
}

/// A runtime that failed to make the container because its id is taken
/// by a container of someone else's (`runc run` says "container with id
/// exists"): the run fails naming the clash. That container was never
/// touched ([`Runtime::delete_own`]).
fn name_clash(runtime: &Runtime, id: &str, bundle: &Path, error: RunError) -> RunError {
    if !matches!(
        error,
        RunError::Runtime(RuntimeError::Failed { .. } | RuntimeError::Command { .. })
    ) {
        return error;
    }
    match runtime.check_own(id, bundle) {
        Err(taken @ RuntimeError::NameTaken { .. }) => taken.into(),
        _ => error,
    }
}

/// What [`run`] calls right before the container's process can start.
pub type Starting<'a> = &'a mut dyn FnMut(&[network::Joined<'_>]) -> Result<(), RunError>;

/// The relays of a run without a terminal: specgate's stdin to the
/// container, its stdout and stderr back. Finished (when the container's
/// processes are gone) explicitly or when dropped.
struct PipeRelays {
    exited: Arc<Event>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl PipeRelays {
    /// Makes the pipes and starts relaying; returns the container's ends,
    /// for the runtime. The relays start before the runtime: a thread
    /// that cannot start then leaves no container behind. What the
    /// runtime writes on stderr before the container exists (its pid
    /// file) is held back: see [`Hold::UntilExists`].
    fn start(
        config: StdioConfig,
        spec: &Spec,
        bundle: &Bundle,
    ) -> Result<(Self, RunStdio), RunError> {
        let pipes = stdio::Pipes::new(config, stdio::container_root(spec))?;
        let mut relays = PipeRelays {
            exited: Arc::new(Event::new()?),
            stdout: None,
            stderr: None,
        };
        if let Some(stdin) = pipes.stdin {
            let stop = relays.exited.clone();
            spawn_relay("stdin", move || stdio::relay_input(stdin, &stop))?;
        }
        let (src, exited) = (pipes.stdout, relays.exited.clone());
        relays.stdout = Some(spawn_relay("stdout", move || {
            stdio::relay_output(src, StdFd::Out.fd(), Hold::Nothing, &exited, "stdout")
        })?);
        let (src, exited) = (pipes.stderr, relays.exited.clone());
        let hold = Hold::UntilExists(bundle.dir().join(oci::PID_FILE));
        relays.stderr = Some(spawn_relay("stderr", move || {
            stdio::relay_output(src, StdFd::Err.fd(), hold, &exited, "stderr")
        })?);
        let ends = RunStdio {
            stdin: pipes.container_stdin,
            stdout: pipes.container_stdout,
            stderr: pipes.container_stderr,
        };
        Ok((relays, ends))
    }

    /// Drains what is left, once the runtime or the container's init
    /// exited, and returns what stderr held back.
    fn finish(&mut self) -> Vec<u8> {
        self.exited.fire();
        if let Some(stdout) = self.stdout.take() {
            let _ = stdout.join();
        }
        self.stderr
            .take()
            .map(|stderr| stderr.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for PipeRelays {
    fn drop(&mut self) {
        self.finish();
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
    let (mut relays, ends) = PipeRelays::start(config, spec, bundle)?;
    let spawned = runtime.spawn_run(id, bundle.dir(), ends, None);
    let status = spawned
        .map_err(RunError::from)
        .and_then(|mut child| wait_child(&mut child, &forwarder));
    let held = relays.finish();
    let outcome = runtime.run_outcome(id, bundle.dir(), status?);
    if outcome.is_ok() {
        // Not the runtime's error, which is reported from its log: show
        // it.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
    } else if let Err(e) = runtime.delete_own(id, bundle.dir()) {
        // A failed `run` may leave the container created.
        tracing::debug!("delete after a failed run: {e}");
    }
    Ok(outcome?)
}

fn run_with_pipes_and_networks(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    spec: &Spec,
    config: StdioConfig,
    networks: &Networks,
    starting: Starting<'_>,
) -> Result<u8, RunError> {
    // Declared first, so dropped last: DEL comes after the container is
    // deleted, on every path.
    let _attached: network::Attached;
    let forwarder = Forwarder::start(sys::catch_signals(&FORWARDED)?, None);
    // `create` exits once the container exists, leaving its init to us.
    sys::become_subreaper()?;
    let (mut relays, ends) = PipeRelays::start(config, spec, bundle)?;
    let spawned = runtime.spawn_create(id, bundle.dir(), ends, None);
    let status = spawned
        .map_err(RunError::from)
        .and_then(|mut child| wait_child(&mut child, &forwarder));
    // From here on, the container may exist until deleted; deleting it
    // ends its processes, and with them the relays.
    let container = Created {
        runtime,
        id,
        bundle: bundle.dir(),
    };
    let created =
        status.and_then(|status| Ok(runtime.start_outcome("create", id, bundle.dir(), status)?));
    if let Err(e) = created {
        drop(container);
        let held = relays.finish();
        if runtime.logged_error("create", id, bundle.dir()).is_none() {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
        }
        return Err(e);
    }
    let init = read_pid(&bundle.dir().join(oci::PID_FILE))?;
    // A signal while the networks are added ends the created container:
    // start then fails, and everything is undone.
    forwarder.set(Some(init));
    _attached = networks.attach(id, init.as_raw(), bundle.dir())?;
    starting(&_attached.joined())?;
    runtime.start(id, bundle.dir())?;
    let status = wait_init(init, &forwarder)?;
    gc::injected_panic("container-exited");
    let held = relays.finish();
    let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
    drop(container);
    Ok(status)
}

fn run_with_terminal(
    runtime: &Runtime,
    id: &str,
    bundle: &Bundle,
    config: StdioConfig,
    networks: &Networks,
    starting: Starting<'_>,
) -> Result<u8, RunError> {
    // Declared first, so dropped last: DEL comes after the container is
    // deleted, on every path.
    let _attached: network::Attached;
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
    // With networks, they are added between create and start.
    let (command, spawned) = if networks.is_empty() {
        let spawned = runtime.spawn_run(id, bundle.dir(), ends, Some(console::SOCKET_NAME));
        ("run", spawned)
    } else {
        let spawned = runtime.spawn_create(id, bundle.dir(), ends, Some(console::SOCKET_NAME));
        ("create", spawned)
    };
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
    let started = runtime.start_outcome(command, id, bundle.dir(), status?);
    if started.is_ok() || runtime.logged_error(command, id, bundle.dir()).is_none() {
        // Not the runtime's error, which is reported from its log.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &held);
    }
    started?;
    let master = master?.ok_or_else(|| console::ConsoleError::NoTerminal {
        path: socket.path().to_path_buf(),
    })?;
    let init = read_pid(&bundle.dir().join(oci::PID_FILE))?;
    forwarder.set(Some(init));
    if !networks.is_empty() {
        _attached = networks.attach(id, init.as_raw(), bundle.dir())?;
        starting(&_attached.joined())?;
        runtime.start(id, bundle.dir())?;
    }

    let status = relay_terminal(master, config, || wait_init(init, &forwarder))??;
    drop(container);
    Ok(status)
}

/// Relays the container's terminal, keys too with `-i`, until `wait`
/// says the container ended, and returns what `wait` returned.
fn relay_terminal<T>(
    master: Arc<OwnedFd>,
    config: StdioConfig,
    wait: impl FnOnce() -> T,
) -> Result<T, RunError> {
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
    let status = wait();
    exited.fire();
    let _ = output.join();
    stop_input.fire();
    drop(raw);
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
        match self.runtime.delete_own(self.id, self.bundle) {
            Ok(()) => {}
            // Someone else's container under our id: reported by `run`.
            Err(e @ RuntimeError::NameTaken { .. }) => tracing::debug!("{e}"),
            Err(e) => tracing::warn!("{e}"),
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
    gc::injected_panic("wait-runtime");
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
    gc::injected_panic("wait-container");
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
