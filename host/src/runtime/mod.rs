//! Running a container: this file is the OCI runtime driver (create or
//! run, networks, start, delete, exit status); its modules hold the
//! bundle, the runtime's command line, the run without a runtime
//! ([`chroot`]), supervision ([`supervise`]) and cleanup ([`gc`]).

pub mod bundle;
pub mod chroot;
pub mod config;
pub mod console;
mod dirs;
mod error;
pub mod gc;
pub mod oci;
pub mod owner;
pub mod pin;
pub mod stdio;
pub mod supervise;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

pub use bundle::Bundle;
pub use config::BundleConfig;
pub use dirs::{NoRuntimeDir, caller_flags, state_dir};
pub use error::RunError;
pub use oci::{RunStdio, Runtime, RuntimeError};
pub use stdio::StdioConfig;

use crate::network::{self, Networks};
use crate::sys::{self, StdFd};
use stdio::{Event, Hold};
use supervise::{
    FORWARDED, Forwarder, has_terminal, relay_terminal, spawn_relay, wait_child, wait_init,
};

/// Makes the host's root, read-only, the container's root: bound at
/// `mount_point` inside specgate's own mount namespace, so the mount
/// disappears with specgate however it ends.
pub fn bind_host_root(mount_point: &Path) -> Result<(), RunError> {
    sys::private_mount_namespace()?;
    sys::rbind(Path::new("/"), mount_point)?;
    sys::make_recursively_read_only(mount_point)?;
    Ok(())
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
