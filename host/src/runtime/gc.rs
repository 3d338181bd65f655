//! Removing what dead runs left behind: a run whose specgate was killed
//! (SIGKILL, a power cut) cannot clean up after itself, so each bundle
//! names its owner, and `specgate gc` deletes the runtime state and the
//! bundle of every run whose owner is gone.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::bundle::{Bundle, BundleError};
use super::oci::Runtime;
use super::owner::owner_alive;
use crate::network;

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

/// The network namespace a killed run handed its watcher, which the
/// cleanup inherits at descriptor 3 (see `sys::start_watcher`).
fn inherited_namespace() -> Option<std::os::fd::OwnedFd> {
    let link = std::fs::read_link("/proc/self/fd/3").ok()?;
    link.to_str()?
        .starts_with("net:[")
        .then(|| crate::sys::inherited_fd(3))
        .flatten()
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
    /// The run cleaned up after itself: the watcher stands down and
    /// exits. Dropped while unwinding a panic, it
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

/// The guardian's side: waits for end of file on stdin, then removes the
/// run if its owner is gone: its container, its networks (from the
/// records of their ADDs, see [`network::cache`]), its bundle.
pub fn guard(runtime: Option<&Runtime>, id: &str, bundle: &Path) {
    let netns = inherited_namespace();
    let mut byte = [0u8; 1];
    while matches!(std::io::stdin().read(&mut byte), Ok(n) if n > 0) {}
    if bundle.is_dir()
        && !owner_alive(bundle)
        && let Err(e) = remove_run(
            runtime,
            id,
            bundle,
            network::Leftovers::of(&network::ResultCache::default(), id, netns),
        )
    {
        tracing::warn!("guard: {e}");
    }
}

/// Removes a dead run: its container (when it is the run's own), then
/// its networks, then what a chroot run left in its cgroup, then its
/// bundle, which goes last so that a cleanup killed on the way leaves
/// what the next one needs to find the rest. `networks` must be taken
/// ([`network::Leftovers::of`]) before the container goes, which would end
/// its namespace: DEL then removes the interfaces inside it and what the
/// plugins made for them outside. Fails when the bundle is not one
/// specgate can adopt.
fn remove_run(
    runtime: Option<&Runtime>,
    id: &str,
    bundle: &Path,
    networks: network::Leftovers,
) -> Result<(), BundleError> {
    if let Some(Err(e)) = runtime.map(|r| r.delete_own(id, bundle)) {
        tracing::debug!("cleanup: {e}");
    }
    networks.release();
    super::chroot::cgroup::kill_recorded(bundle);
    Bundle::adopt(bundle.to_path_buf()).map(drop)
}

/// Deletes the runtime state and the bundle of every dead run under
/// `state_dir`; returns the ids removed.
pub fn collect(state_dir: &Path, runtime: &Runtime) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let dir: PathBuf = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !dir.is_dir() || owner_alive(&dir) {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        let networks = network::Leftovers::of(&network::ResultCache::default(), &id, None);
        if networks.added_elsewhere() {
            tracing::warn!(
                "gc: {id}: its networks were added in another network namespace; run `specgate gc` there"
            );
            continue;
        }
        if let Err(e) = remove_run(Some(runtime), &id, &dir, networks) {
            tracing::warn!("gc: {e}");
            continue;
        }
        removed.push(id);
    }
    // Records whose run is gone but whose DEL failed or never ran.
    for networks in network::Leftovers::orphans(&network::ResultCache::default(), state_dir) {
        if networks.added_elsewhere() {
            continue;
        }
        let id = networks.container_id().map(str::to_string);
        if networks.release()
            && let Some(id) = id
            && !removed.contains(&id)
        {
            removed.push(id);
        }
    }
    removed
}
