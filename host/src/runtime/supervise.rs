//! Supervising a container's process, with or without an OCI runtime:
//! forwarding specgate's signals to it, relaying its terminal, waiting
//! for it, and the guardian that cleans up if specgate is killed first.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::console;
use super::error::RunError;
use super::oci::Runtime;
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
    injected_panic("wait-runtime");
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
    injected_panic("wait-container");
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

/// The guardian of a run: a watcher process, started with the run,
/// in its own process group, waiting for this process to end. If
/// specgate ends without dropping its [`Guardian`] (SIGKILL, a crash that
/// does not unwind), the watcher execs `specgate guard`, which deletes the
/// run's runtime state and bundle: a killed specgate's container dies a
/// moment later instead of lingering until `specgate gc`. A run that ends
/// normally tells the watcher so, and no cleanup process ever starts.
///
/// A panic on the thread that started it, while it stands, is not a
/// normal end: unwinding would run the run's destructors, which remove
/// the bundle (that the cleanup needs to find the run) while a container
/// the panic left running lives on, and then tell the watcher all is
/// well. The panic is reported, and the process aborts at once instead,
/// leaving everything to the watcher's cleanup.
///
/// It is started before specgate enters its own mount namespace, so it sees
/// no mounts in the bundle.
#[derive(Debug)]
pub struct Guardian {
    /// Never closed: the watcher goes when this process is gone, and its
    /// end of file is the sign (see `sys::start_watcher`).
    socket: &'static std::os::unix::net::UnixStream,
}

/// This process's end of its guardian's socket, once one started.
static SOCKET: std::sync::OnceLock<&'static std::os::unix::net::UnixStream> =
    std::sync::OnceLock::new();

/// Hands the run's network namespace to its watcher, which keeps it for
/// the cleanup: a run killed after its container exited (the namespace's
/// other holder) would otherwise take the namespace with it, and DEL
/// could no longer remove what the plugins made for the interfaces in it
/// (bridge finds the addresses whose masquerade rules it removes there).
/// Without a guardian (a library caller), nothing to do.
pub fn hand_over_namespace(netns: std::os::fd::BorrowedFd<'_>) {
    use std::os::fd::AsFd;
    if let Some(socket) = SOCKET.get()
        && let Err(e) = crate::sys::send_fd(socket.as_fd(), netns, "n")
    {
        tracing::debug!("cannot hand the network namespace to the guardian: {e}");
    }
}

impl Guardian {
    /// Starts the guardian of run `id` with `bundle`.
    /// A run without a runtime (`--isolation chroot`) has no runtime
    /// state: the bundle is all there is to remove.
    pub fn start(
        runtime: Option<&Runtime>,
        id: &str,
        bundle: &Path,
    ) -> Result<Self, crate::sys::SysError> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, watchers) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|errno| crate::sys::SysError {
            call: "socketpair",
            path: bundle.to_path_buf(),
            errno,
        })?;
        let arg = |s: &std::ffi::OsStr| {
            CString::new(s.as_bytes()).unwrap_or_else(|_| CString::from(c"-"))
        };
        let program = CString::from(c"/proc/self/exe");
        let mut argv = vec![program.clone(), CString::from(c"guard")];
        if let Some(runtime) = runtime {
            argv.push(CString::from(c"--runtime"));
            argv.push(arg(runtime.program().as_os_str()));
            // The runtime's flags too: its state directory (`--root`)
            // above all, or the guardian's delete would look in the wrong
            // place.
            for flag in runtime.flags() {
                argv.push(arg(std::ffi::OsStr::new(&format!("--runtime-flag={flag}"))));
            }
        }
        argv.push(arg(std::ffi::OsStr::new(id)));
        argv.push(arg(bundle.as_os_str()));
        crate::sys::start_watcher(watchers, program, argv)?;
        let socket: &'static std::os::unix::net::UnixStream =
            Box::leak(Box::new(std::os::unix::net::UnixStream::from(ours)));
        // One run per process: the first guardian is the one its
        // networks are handed to.
        let _ = SOCKET.set(socket);
        abort_on_panic();
        Ok(Guardian { socket })
    }
}

impl Drop for Guardian {
    /// The run cleaned up after itself: the watcher stands down (and goes
    /// once this process is gone). Dropped while unwinding a panic, it
    /// does not: the run did not end well.
    fn drop(&mut self) {
        GUARDED.with(|guarded| guarded.set(false));
        if !std::thread::panicking() {
            let _ = (&mut self.socket).write_all(&[crate::sys::STAND_DOWN]);
        }
    }
}

thread_local! {
    /// Whether a [`Guardian`] this thread started stands.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes a panic on this thread, while its guardian stands, abort the
/// process once the panic is reported (see [`Guardian`]).
fn abort_on_panic() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            if GUARDED.try_with(std::cell::Cell::get).unwrap_or(false) {
                std::process::abort();
            }
        }));
    });
    GUARDED.with(|guarded| guarded.set(true));
}

/// In debug builds, panics when `SPECGATE_TEST_PANIC` names `point`: the
/// tests' way to see what a panic there leaves. Release builds have no
/// such variable, nor any code for it.
#[inline]
pub fn injected_panic(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("SPECGATE_TEST_PANIC").is_some_and(|p| p == point) {
        panic!("SPECGATE_TEST_PANIC={point}");
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
