//! What this process may do and is: whether it may create a user
//! namespace, the reaper of its orphans, the domain name of its UTS
//! namespace.

use std::path::Path;

use super::{SysError, err};

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

/// Sets the domain name of the UTS namespace (nix has no wrapper).
pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe the live bytes of `name`,
    // which the kernel only reads.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::Error::result(rc).map(drop)
}
