//! Running a container with an OCI runtime: the bundle, the runtime
//! driver, signals, exit status and cleanup.

pub mod bundle;
pub mod config;
pub mod gc;
pub mod oci;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use bundle::Bundle;
pub use config::BundleConfig;
pub use oci::{Runtime, RuntimeError};

use crate::sys;

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
    /// The bundle could not be made.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// Waiting for the runtime failed.
    #[error("waiting for the runtime's process {pid}: {errno}")]
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

/// Forwards caught signals to the runtime process once it runs.
struct Forwarder {
    target: Arc<AtomicI32>,
}

impl Forwarder {
    fn start(signals: OwnedFd) -> Self {
        let target = Arc::new(AtomicI32::new(0));
        let shared = target.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(signals);
            let mut byte = [0u8; 1];
            while pipe.read_exact(&mut byte).is_ok() {
                let pid = shared.load(Ordering::SeqCst);
                if let (true, Ok(signal)) = (pid > 0, Signal::try_from(i32::from(byte[0]))) {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
        });
        Forwarder { target }
    }
}

/// Runs the container of `bundle` (config.json written) under `id` and
/// returns its exit status: its own code, or 128+N for signal N. The
/// runtime's state is deleted on every path.
///
/// With nothing to do between create and start, one foreground
/// `runtime run` does it all: it forwards our signals to the container
/// and deletes it at the end, and costs two runtime invocations less than
/// create, start and delete (1.23x raw `runc run` instead of 1.54x in
/// bench/run.py). Runs that need work between create and start
/// (networking) will need those three steps.
pub fn run(runtime: &Runtime, id: &str, bundle: &Bundle) -> Result<u8, RunError> {
    let forwarder = Forwarder::start(sys::catch_signals(&FORWARDED)?);
    let mut child = runtime.spawn_run(id, bundle.dir())?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    forwarder.target.store(pid, Ordering::SeqCst);
    let status = loop {
        match child.wait() {
            Ok(status) => break status,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RunError::Wait {
                    pid,
                    errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        }
    };
    forwarder.target.store(0, Ordering::SeqCst);
    let outcome = runtime.run_outcome(id, bundle.dir(), status);
    if outcome.is_err() {
        // A failed `run` may leave the container created.
        if let Err(e) = runtime.delete(id, bundle.dir()) {
            tracing::debug!("delete after a failed run: {e}");
        }
    }
    Ok(outcome?)
}
