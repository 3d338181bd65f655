//! The kernel-facing calls specgate makes itself, behind one seam: every
//! `unsafe` block of the crate is in this module, including the two that
//! map machine code wasmtime compiled.

pub mod bounded;
pub mod chroot;
mod mount_api;
pub mod sealed;
mod sharers;

pub use mount_api::clone_tree_of;
pub use sharers::{STAND_DOWN, start_watcher};

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// A failed system call, naming the call and the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{call} {}: {errno}", path.display())]
pub struct SysError {
    /// The call, e.g. `mount --rbind`.
    pub call: &'static str,
    /// The path it acted on.
    pub path: std::path::PathBuf,
    /// The kernel's answer.
    pub errno: nix::Error,
}

fn err<'a>(call: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> SysError + 'a {
    move |errno| SysError {
        call,
        path: path.to_path_buf(),
        errno,
    }
}

/// Moves this process into a mount namespace of its own, whose mounts
/// receive the host's but never propagate back. Mounts made afterwards
/// vanish with the process, however it ends.
pub fn private_mount_namespace() -> Result<(), SysError> {
    let root = Path::new("/");
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare(CLONE_NEWNS)", root))?;
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(err("mount --make-rslave", root))
}

/// Binds `source` and every mount below it at `target`.
pub fn rbind(source: &Path, target: &Path) -> Result<(), SysError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("mount --rbind", target))
}

/// Detaches the mount at `target` and everything below it.
pub fn detach(target: &Path) -> Result<(), SysError> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
        .map_err(err("umount --lazy", target))
}

/// The kernel's `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `target` and every mount below it read-only, in one
/// step (mount_setattr, Linux 5.12): a plain remount would leave the
/// submounts writable.
pub fn make_recursively_read_only(target: &Path) -> Result<(), SysError> {
    let path = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| err("mount_setattr", target)(nix::Error::EINVAL))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a fully
    // initialised `struct mount_attr` whose size is passed alongside; both
    // outlive the call, and the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err("mount_setattr(MOUNT_ATTR_RDONLY)", target)(
            nix::Error::last(),
        ))
    }
}

/// The write end of the pipe signal handlers report to; -1 before
/// [`catch_signals`].
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn report_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; `byte` is a live local and
        // the length matches it. A full pipe drops the signal, which only
        // happens if hundreds arrive before the reader wakes.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Catches `signals`, which are then read, one byte each, from the
/// returned pipe instead of acting on the process.
pub fn catch_signals(
    signals: &[nix::sys::signal::Signal],
) -> Result<std::os::fd::OwnedFd, SysError> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    use std::os::fd::IntoRawFd;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(err("pipe2", Path::new("signal pipe")))?;
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(err("fcntl(O_NONBLOCK)", Path::new("signal pipe")))?;
    // The write end stays open for the life of the process: handlers may
    // run at any time.
    SIGNAL_PIPE.store(write.into_raw_fd(), std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(report_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in signals {
        // SAFETY: the handler only calls write(2), which is
        // async-signal-safe, and reads an atomic.
        unsafe { sigaction(*signal, &action) }.map_err(err("sigaction", Path::new("/")))?;
    }
    Ok(read)
}

/// Whether this process may create a user namespace: a child made for
/// the purpose tries unshare(CLONE_NEWUSER) and exits with its errno (0
/// on success). A child, because a multi-threaded process (specgate runs
/// relay and plugin threads) can never unshare its own user namespace.
pub fn probe_user_namespace() -> Result<(), nix::Error> {
    // SAFETY: the child of a multi-threaded process may only make
    // async-signal-safe calls; it makes two raw system calls (unshare,
    // _exit) on no shared state, and never returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(nix::Error::last()),
        // SAFETY: as for the fork above; the block ends in _exit.
        0 => unsafe {
            let code = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code)
        },
        _ => loop {
            match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => {
                    return Err(nix::Error::from_raw(errno));
                }
                Ok(_) => return Err(nix::Error::ECHILD),
            }
        },
    }
}

/// Makes this process the reaper of its orphaned descendants: a detached
/// runtime leaves the container's init behind, and it must come back to
/// us to be waited for.
pub fn become_subreaper() -> Result<(), SysError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(err("prctl(PR_SET_CHILD_SUBREAPER)", Path::new("/")))
}

/// Standard input, output and error: open for the whole life of the
/// process (specgate never closes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdFd {
    /// Descriptor 0.
    In = 0,
    /// Descriptor 1.
    Out = 1,
    /// Descriptor 2.
    Err = 2,
}

impl StdFd {
    /// The descriptor, borrowed for the life of the process.
    pub fn fd(self) -> std::os::fd::BorrowedFd<'static> {
        // SAFETY: descriptors 0, 1 and 2 stay allocated for the life of the
        // process: specgate never closes them, and a closed one is only an
        // invalid descriptor that calls report as EBADF, never memory.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self as std::os::fd::RawFd) }
    }
}

nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// The size of the terminal `fd` refers to (TIOCGWINSZ).
pub fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<libc::winsize> {
    use std::os::fd::AsRawFd;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer,
    // which points at a live, properly aligned local of that type; a
    // descriptor that is not a terminal only makes the call fail.
    unsafe { tiocgwinsz(fd.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// Sets the size of the terminal `fd` refers to (TIOCSWINSZ); the kernel
/// sends SIGWINCH to the terminal's foreground process group.
pub fn set_window_size(fd: std::os::fd::BorrowedFd<'_>, size: &libc::winsize) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ only reads one `struct winsize` through the
    // pointer, which comes from a live reference.
    unsafe { tiocswinsz(fd.as_raw_fd(), size) }?;
    Ok(())
}

/// Receives one message on a connected unix socket and the one
/// descriptor it carries (SCM_RIGHTS), as OCI runtimes send a terminal's
/// master through `--console-socket`; also returns the message's text
/// (the runtime's name for the descriptor). None when the message holds
/// no descriptor. Descriptors beyond the first are closed.
pub fn receive_fd(
    socket: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<Option<(std::os::fd::OwnedFd, String)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut name = [0u8; 4096];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (length, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let message = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                fds.extend(received);
            }
        }
        (message.bytes, fds)
    };
    let mut owned = fds.into_iter().map(|fd| {
        // SAFETY: the kernel installed each descriptor of an SCM_RIGHTS
        // message in our table during this recvmsg, and nothing else
        // knows of it: it is ours to own, and to close.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let first = owned.next();
    // The rest are dropped, hence closed.
    owned.for_each(drop);
    let text = String::from_utf8_lossy(&name[..length.min(name.len())]).into_owned();
    Ok(first.map(|fd| (fd, text)))
}

/// Maps a precompiled component from `path` and makes its machine code
/// runnable. The caller vouches for the file: it must come from
/// `precompile_component` of an engine of this wasmtime version and
/// configuration (wasmtime checks the version and configuration itself,
/// not that the code is its own).
pub fn map_trusted_component(
    engine: &wasmtime::Engine,
    path: &Path,
) -> wasmtime::Result<wasmtime::component::Component> {
    // SAFETY: the caller guarantees the file is wasmtime's own output and
    // unchanged (the plugin cache checks its digest in a private
    // directory); wasmtime refuses other versions and configurations.
    unsafe { wasmtime::component::Component::deserialize_file(engine, path) }
}

/// Loads a precompiled component from bytes the caller vouches for, as
/// [`map_trusted_component`] does from a file.
pub fn load_trusted_component(
    engine: &wasmtime::Engine,
    bytes: &[u8],
) -> wasmtime::Result<wasmtime::component::Component> {
    // SAFETY: the caller guarantees the bytes are `precompile_component`'s
    // output on this engine.
    unsafe { wasmtime::component::Component::deserialize(engine, bytes) }
}

/// A file mapped read-only into memory, all its pages populated at once:
/// reading a cache entry this way costs no copy and no page fault per
/// page, where a read into a fresh buffer costs both.
#[derive(Debug)]
pub struct MappedFile {
    addr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

impl MappedFile {
    /// Maps `file` whole; `None` for an empty file, which has nothing to
    /// map.
    pub fn new(file: &std::fs::File) -> std::io::Result<Option<Self>> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap};
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        let Some(size) = std::num::NonZeroUsize::new(len) else {
            return Ok(None);
        };
        // SAFETY: a fresh private read-only mapping at an address the
        // kernel picks: it aliases no Rust object. Its bytes can change
        // under us only if the file is written in place, which the plugin
        // cache never does (entries are replaced by rename), and readers
        // check a digest over them anyway.
        let addr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
                file,
                0,
            )
        }?;
        Ok(Some(MappedFile { addr, len }))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as
        // `self`, which the returned slice borrows.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this address and
        // length, and no slice of it outlives `self`.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.addr, self.len) } {
            tracing::debug!("munmap: {e}");
        }
    }
}

/// Takes ownership of a descriptor this process inherited at a number
/// agreed with its parent (as `chroot-init` does its error pipe and
/// spec); none when that number is not open.
pub fn inherited_fd(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded) and, by the
    // agreement with the parent that exec'd us, nothing else in this
    // process owns it: it is taken once, at start.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Marks every descriptor from `first` up close-on-exec, so that the
/// container's command inherits only its standard streams.
pub fn cloexec_from(first: std::os::fd::RawFd) -> Result<(), SysError> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only
    // sets a flag on descriptors, which no Rust object can observe.
    let rc = unsafe {
        libc::close_range(
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err(
            "close_range(CLOSE_RANGE_CLOEXEC)",
            Path::new("/proc/self/fd"),
        )(nix::Error::last()))
    }
}

/// Sets the domain name of the UTS namespace (nix has no wrapper).
pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe the live bytes of `name`,
    // which the kernel only reads.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::Error::result(rc).map(drop)
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A detached copy of the mount tree at `path` (open_tree with
/// OPEN_TREE_CLONE; with its submounts when `recursive`), to attach later
/// with [`attach_tree`], from another mount namespace: a bind mount's
/// source, taken while its path can still be reached.
pub fn clone_tree(path: &Path, recursive: bool) -> Result<std::os::fd::OwnedFd, SysError> {
    use std::os::fd::FromRawFd;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| err("open_tree", path)(nix::Error::EINVAL))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call; the kernel only reads it.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    if fd < 0 {
        return Err(err("open_tree", path)(nix::Error::last()));
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) })
}

/// Attaches the detached tree `tree` (from [`clone_tree`]) on the file
/// or directory `target` is open on (move_mount).
pub fn attach_tree(
    tree: std::os::fd::BorrowedFd<'_>,
    target: std::os::fd::BorrowedFd<'_>,
    path: &Path,
) -> Result<(), SysError> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are borrowed, hence open, for the call;
    // the empty path is a static NUL-terminated string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(err("move_mount", path)(nix::Error::last()))
    }
}

nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);

/// Makes the terminal `fd` is open on the controlling terminal of this
/// process, which must lead a session without one (TIOCSCTTY).
pub fn set_controlling_terminal(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the
    // terminal from another session), no pointer; a descriptor that is
    // not a terminal only makes the call fail.
    unsafe { tiocsctty(fd.as_raw_fd(), 0) }?;
    Ok(())
}

/// Sends `fd` over a connected unix socket (SCM_RIGHTS) with `name` as
/// the message, as an OCI runtime sends a terminal's master.
pub fn send_fd(
    socket: std::os::fd::BorrowedFd<'_>,
    fd: std::os::fd::BorrowedFd<'_>,
    name: &str,
) -> nix::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}
