//! Removing what dead runs left behind: a run whose specgate was killed
//! (SIGKILL, a power cut) cannot clean up after itself, so each bundle
//! names its owner, and `specgate gc` deletes the runtime state and the
//! bundle of every run whose owner is gone.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::bundle::{Bundle, BundleError};
use super::oci::Runtime;
use crate::network;

/// The file in a bundle that names the run's owner.
pub const OWNER_FILE: &str = "owner";

/// This process, as an owner record: its pid and its start time, so that
/// a reused pid is not mistaken for the owner.
pub fn owner_record() -> String {
    let pid = std::process::id();
    format!("{pid} {}\n", start_time(pid).unwrap_or_default())
}

/// A live process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat); none when it does not exist or is a zombie (dead,
/// not yet reaped by its parent).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the owner recorded in a bundle is still running. Bundles are
/// renamed into place with their owner file already written, so a bundle
/// without one is not specgate's and is left alone.
fn owner_alive(bundle: &Path) -> bool {
    let Ok(record) = std::fs::read_to_string(bundle.join(OWNER_FILE)) else {
        return true;
    };
    let mut fields = record.split_whitespace();
    let pid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
    let started: Option<u64> = fields.next().and_then(|s| s.parse().ok());
    match (pid, started) {
        (Some(pid), Some(started)) => start_time(pid) == Some(started),
        _ => false,
    }
}

/// The guardian of a run: a `specgate guard` process, started with the
/// run, in its own process group, waiting for this process to end. If
/// specgate ends without dropping its [`Guardian`] (SIGKILL, a crash that
/// does not unwind), the guard deletes the run's runtime state and
/// bundle: a killed specgate's container dies a moment later instead of
/// lingering until `specgate gc`. A run that ends normally tells the
/// guard so, and the guard exits without cleaning up.
///
/// A panic on the thread that started it, while it stands, is not a
/// normal end: unwinding would run the run's destructors, which remove
/// the bundle (that the cleanup needs to find the run) while a container
/// the panic left running lives on, and then tell the guard all is
/// well. The panic is reported, and the process aborts at once instead,
/// leaving everything to the guard's cleanup.
///
/// It is started before specgate enters its own mount namespace, so it sees
/// no mounts in the bundle.
#[derive(Debug)]
pub struct Guardian {
    /// Never closed: the guard's end of file is the sign that this
    /// process is gone.
    socket: &'static std::os::unix::net::UnixStream,
}

/// The byte a run that ended well sends its guard.
const STAND_DOWN: u8 = b'x';

/// This process's end of its guardian's socket, once one started.
static SOCKET: std::sync::OnceLock<&'static std::os::unix::net::UnixStream> =
    std::sync::OnceLock::new();

/// Hands the run's network namespace to its guard, which keeps it for
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
    /// Starts the guardian of run `id` with `bundle`: this program again,
    /// as `specgate guard`, with one end of a socket pair as its stdin
    /// and the other end, close-on-exec, kept here for the rest of this
    /// process's life. stdout and stderr are `/dev/null` (so `specgate
    /// run | head` sees end of file when specgate ends), and the guard
    /// closes whatever else it inherited before it waits.
    /// A run without a runtime (`--isolation chroot`) has no runtime
    /// state: the bundle is all there is to remove.
    pub fn start(
        runtime: Option<&Runtime>,
        id: &str,
        bundle: &Path,
    ) -> Result<Self, crate::sys::SysError> {
        use std::os::unix::net::UnixStream;
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let failed = |call, e: std::io::Error| crate::sys::SysError {
            call,
            path: bundle.to_path_buf(),
            errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        // Both ends close-on-exec: the guard gets its own as stdin.
        let (ours, guards) = UnixStream::pair().map_err(|e| failed("socketpair", e))?;
        let mut guard = Command::new("/proc/self/exe");
        guard.arg("guard");
        if let Some(runtime) = runtime {
            guard.arg("--runtime").arg(runtime.program());
            // The runtime's flags too: its state directory (`--root`)
            // above all, or the guardian's delete would look in the wrong
            // place.
            for flag in runtime.flags() {
                guard.arg(format!("--runtime-flag={flag}"));
            }
        }
        guard
            .arg(id)
            .arg(bundle)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(guards)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A terminal's ^C is for the run, not for it.
            .process_group(0);
        // Never waited for: it outlives this process, or exits once told
        // to stand down, a moment before this process does.
        guard
            .spawn()
            .map_err(|e| failed("spawn specgate guard", e))?;
        drop(guard);
        let socket: &'static UnixStream = Box::leak(Box::new(ours));
        // One run per process: the first guardian is the one its
        // networks are handed to.
        let _ = SOCKET.set(socket);
        abort_on_panic();
        Ok(Guardian { socket })
    }
}

impl Drop for Guardian {
    /// The run cleaned up after itself: the guard stands down and exits.
    /// Dropped while unwinding a panic, it does not: the run did not end
    /// well.
    fn drop(&mut self) {
        GUARDED.with(|guarded| guarded.set(false));
        if !std::thread::panicking() {
            let _ = (&mut self.socket).write_all(&[STAND_DOWN]);
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

/// The guardian's side: waits on stdin, the socket whose other end the
/// run's specgate holds, until specgate stands down (then exits) or is
/// gone (end of file); then removes the run if its owner is gone: its
/// container, its networks (from the records of their ADDs, see
/// [`network::cache`]), its bundle. A stdin that is no socket is read to
/// its end.
pub fn guard(runtime: Option<&Runtime>, id: &str, bundle: &Path) {
    close_inherited();
    let Some(netns) = wait_for_owner() else {
        return;
    };
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

/// Closes every descriptor but stdin, stdout and stderr: what the guard
/// inherited beyond them is the run's caller's, not the guard's to keep
/// open for as long as the run lasts. Called first thing, while nothing
/// in this process owns a descriptor there.
fn close_inherited() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let numbers: Vec<std::os::fd::RawFd> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor is closed by now: it is not open,
    // and taking it gives nothing.
    for fd in numbers {
        drop(crate::sys::inherited_fd(fd));
    }
}

/// Waits until the run's specgate stands down (`None`) or is gone, and
/// returns the network namespace it handed over, if any.
fn wait_for_owner() -> Option<Option<std::os::fd::OwnedFd>> {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::{AsFd, AsRawFd};
    let stdin = std::io::stdin();
    let mut netns = None;
    loop {
        let mut byte = [0u8; 1];
        match recv(stdin.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK) {
            Ok(0) => return Some(netns),
            Ok(_) if byte[0] == STAND_DOWN => return None,
            // A message that may carry a descriptor: a network namespace
            // is kept (the last one sent), anything else is closed.
            Ok(_) => match crate::sys::receive_fd(stdin.as_fd()) {
                Ok(Some((fd, _))) if is_network_namespace(&fd) => netns = Some(fd),
                Ok(_) => {}
                Err(nix::Error::EINTR) => {}
                Err(_) => return Some(netns),
            },
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::ENOTSOCK) => {
                let mut rest = Vec::new();
                let _ = stdin.lock().read_to_end(&mut rest);
                return Some(netns);
            }
            Err(_) => return Some(netns),
        }
    }
}

/// Whether `fd` is open on a network namespace.
fn is_network_namespace(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|link| link.to_str().is_some_and(|l| l.starts_with("net:[")))
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
    if runtime.is_some() {
        wait_for_create(bundle);
    }
    if let Some(Err(e)) = runtime.map(|r| r.delete_own(id, bundle)) {
        tracing::debug!("cleanup: {e}");
    }
    networks.release();
    super::chroot::cgroup::kill_recorded(bundle);
    Bundle::adopt(bundle.to_path_buf()).map(drop)
}

/// How long a cleanup waits for a runtime's `create` that a killed run
/// left running before it deletes anyway.
const CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits, up to [`CREATE_WAIT`], until no runtime creates a container
/// from `bundle`: a `create` (or a detached `run`) the killed run started
/// goes on without it, and a delete that came first would find nothing
/// and leave the container it makes. A foreground `run` lasts as long as
/// its container and is not waited for: deleting the container ends it.
fn wait_for_create(bundle: &Path) {
    let started = std::time::Instant::now();
    while creating(bundle) {
        if started.elapsed() > CREATE_WAIT {
            tracing::warn!(
                "a runtime still creates from {} after {CREATE_WAIT:?}; deleting anyway",
                bundle.display()
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether a process other than this one runs a runtime's `create`, or a
/// detached `run`, with `--bundle` `bundle`.
fn creating(bundle: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let me = std::process::id().to_string();
    let bundle = bundle.as_os_str().as_bytes();
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            name != me.as_str() && name.as_encoded_bytes().iter().all(u8::is_ascii_digit)
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|cmdline| {
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let from_bundle = args
                .windows(2)
                .any(|pair| pair[0] == b"--bundle" && pair[1] == bundle);
            from_bundle
                && args
                    .iter()
                    .any(|&arg| arg == b"create" || arg == b"--detach")
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_owner_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OWNER_FILE), owner_record()).unwrap();
        assert!(owner_alive(dir.path()));
        std::fs::write(
            dir.path().join(OWNER_FILE),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        assert!(!owner_alive(dir.path()));
    }
}
