//! Supervising a container's process, with or without an OCI runtime:
//! forwarding specgate's signals to it, relaying its terminal, and
//! waiting for it.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::console;
use super::error::RunError;
use super::stdio::{self, Event, Hold, StdioConfig};
use crate::sys::StdFd;

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

/// Forwards caught signals to the process that passes them on to the
/// container (the foreground runtime, or the container's init), and
/// resizes the container's terminal on SIGWINCH.
pub(super) struct Forwarder {
    target: Arc<Mutex<Option<Pid>>>,
}

impl Forwarder {
    pub(super) fn start(signals: OwnedFd, resizer: Option<Arc<console::Resizer>>) -> Self {
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
    pub(super) fn set(&self, pid: Option<Pid>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    }
}

/// Whether the spec gives the container a terminal.
pub(super) fn has_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Relays the container's terminal, keys too with `-i`, until `wait`
/// says the container ended, and returns what `wait` returned.
pub(super) fn relay_terminal<T>(
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

/// Starts a relay thread.
pub(super) fn spawn_relay<T: Send + 'static>(
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
pub(super) fn wait_child(child: &mut Child, forwarder: &Forwarder) -> Result<ExitStatus, RunError> {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    forwarder.set(Some(pid));
    super::gc::injected_panic("wait-runtime");
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
pub(super) fn wait_init(pid: Pid, forwarder: &Forwarder) -> Result<u8, RunError> {
    super::gc::injected_panic("wait-container");
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
