//! The run's watcher: a process that shares specgate's memory (clone
//! with `CLONE_VM`) and outlives it.
//!
//! Sharing instead of forking copies no page tables, and the caller's
//! later writes take no copy-on-write faults. The price is that the
//! watcher runs on the starting thread's thread-local state: until it
//! execs or exits it makes raw system calls only, through `syscall(2)`, on
//! a stack of its own that is never unmapped, reading only memory that
//! is never freed. No libc wrapper runs there that might take a lock,
//! allocate, or note a cancellation point in that thread's state. It
//! starts with every signal blocked, so no handler of specgate's runs on
//! its stack and no call of its fails with EINTR.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use super::{SysError, err};

/// The watcher's stack: it calls nothing but the kernel.
const STACK: usize = 64 * 1024;

/// The byte a run that ended well sends its watcher.
pub const STAND_DOWN: u8 = b'x';

/// Starts a watcher that waits on `socket` (one end of a connected unix
/// stream socket pair whose other end only the caller holds) and, if the
/// caller goes away without sending [`STAND_DOWN`] first, execs `program`
/// with `argv` to clean up after it. A run that ends well sends the byte
/// and the watcher exits without ever exec'ing: the common path costs no
/// process start.
///
/// Any other byte may carry descriptors (SCM_RIGHTS) the cleanup needs
/// that would not outlive the caller: the watcher keeps them, without
/// close-on-exec, and the cleanup inherits them, from 3 up in the order
/// sent (a run's network namespace, which its DEL must enter even when
/// the container, its last other holder, has exited).
///
/// The watcher holds nothing of the caller's: stdin is `socket`, stdout and
/// stderr `/dev/null` (so `specgate run | head` sees end of file when
/// specgate ends), every other descriptor is closed, and it is in a
/// process group of its own (a terminal's ^C is for the run, not for it).
pub fn start_watcher(
    socket: OwnedFd,
    program: CString,
    argv: Vec<CString>,
) -> Result<(), SysError> {
    let devnull = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(err("open", Path::new("/dev/null")))?;
    // Everything the watcher reads is leaked: it may read it after this
    // process has freed all it owns, up to its very exit.
    let mut pointers: Vec<*const libc::c_char> = argv
        .into_iter()
        .map(|a| a.into_raw().cast_const())
        .collect();
    pointers.push(std::ptr::null());
    let mut environment: Vec<*const libc::c_char> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let mut pair = name.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            CString::new(pair).ok()
        })
        .map(|pair| pair.into_raw().cast_const())
        .collect();
    environment.push(std::ptr::null());
    let watch = Box::leak(Box::new(Watch {
        socket: socket.as_raw_fd(),
        devnull: devnull.as_raw_fd(),
        program: program.into_raw(),
        argv: pointers.leak().as_ptr(),
        environment: environment.leak().as_ptr(),
    }));
    let stack = map_stack()?;
    // SAFETY: the stack is fresh memory that is never unmapped, `watch`
    // lives forever, and `watch_then_clean_up` makes raw system calls
    // only.
    unsafe { clone_vm(watch_then_clean_up, stack, std::ptr::from_mut(watch).cast()) }?;
    // The watcher has its own copies of `socket` and `devnull`: this
    // process's are closed on return.
    Ok(())
}

/// What the watcher needs, prepared before it starts.
struct Watch {
    socket: libc::c_int,
    devnull: libc::c_int,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    environment: *const *const libc::c_char,
}

/// The watcher's body. With every signal blocked none of its calls fails
/// (a receive cannot be interrupted); the exec of the cleanup, which may,
/// comes only once this process is gone.
extern "C" fn watch_then_clean_up(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the leaked `Watch` of `start_watcher`.
    let watch = unsafe { &*arg.cast::<Watch>() };
    // SAFETY: raw system calls on descriptors of this process's own table,
    // on memory that is never freed and on locals of its own stack (the
    // message a receive fills in); the block ends in execve or
    // exit_group, never returning.
    unsafe {
        libc::syscall(libc::SYS_dup2, watch.socket, 0);
        libc::syscall(libc::SYS_dup2, watch.devnull, 1);
        libc::syscall(libc::SYS_dup2, watch.devnull, 2);
        libc::syscall(libc::SYS_setpgid, 0, 0);
        libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0);
        let mut byte = 0u8;
        let mut stood_down = false;
        // Room for the descriptors of one message; those received land
        // from 3 up, as nothing else is open there.
        let mut control = [0u64; 8];
        loop {
            let mut iov = libc::iovec {
                iov_base: (&raw mut byte).cast::<libc::c_void>(),
                iov_len: 1,
            };
            let mut message = libc::msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: &raw mut iov,
                msg_iovlen: 1,
                msg_control: (&raw mut control).cast::<libc::c_void>(),
                msg_controllen: std::mem::size_of_val(&control),
                msg_flags: 0,
            };
            if libc::syscall(libc::SYS_recvmsg, 0, &raw mut message, 0) != 1 {
                break;
            }
            if byte == STAND_DOWN {
                stood_down = true;
                break;
            }
        }
        if !stood_down {
            let none = 0u64;
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &raw const none,
                std::ptr::null_mut::<u64>(),
                std::mem::size_of::<u64>(),
            );
            libc::syscall(
                libc::SYS_execve,
                watch.program,
                watch.argv,
                watch.environment,
            );
        }
        // Standing down is success; an execve that failed is not.
        libc::syscall(libc::SYS_exit_group, if stood_down { 0 } else { 127 });
    }
    0
}

/// Maps the watcher's stack and returns its top. It is never unmapped.
fn map_stack() -> Result<*mut libc::c_void, SysError> {
    // SAFETY: an anonymous private mapping with no address hint, checked
    // below.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(err("mmap", Path::new("/proc/self/exe"))(nix::Error::last()));
    }
    Ok(stack.cast::<u8>().wrapping_add(STACK).cast())
}

/// Starts `body(arg)` in a child that shares this process's memory, with
/// every signal blocked, on `stack` (its top).
///
/// # Safety
/// `stack` must be the top of `STACK` bytes that stay mapped for the
/// child's life, and `body` must keep to raw system calls on memory that
/// outlives the child.
unsafe fn clone_vm(
    body: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    stack: *mut libc::c_void,
    arg: *mut libc::c_void,
) -> Result<nix::unistd::Pid, SysError> {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let here = Path::new("/proc/self/exe");
    let mut before = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut before),
    )
    .map_err(err("pthread_sigmask", here))?;
    // SAFETY: the caller vouches for `stack`, `body` and `arg`.
    let pid = unsafe { libc::clone(body, stack, libc::CLONE_VM | libc::SIGCHLD, arg) };
    let cloned = nix::Error::result(pid).map(nix::unistd::Pid::from_raw);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    cloned.map_err(err("clone", here))
}
