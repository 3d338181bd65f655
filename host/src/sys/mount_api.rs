//! The parts of the new mount API (Linux 5.2) that act on descriptors
//! rather than paths, which nix does not wrap: what `runtime::pin` needs
//! to mount an object it opened, never its path again.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{SysError, err};

const OPEN_TREE_CLONE: libc::c_uint = 1;

/// A detached copy of the mount tree at the object `fd` is open on (an
/// `O_PATH` descriptor will do), with every mount below it: open_tree
/// with `AT_EMPTY_PATH | OPEN_TREE_CLONE | AT_RECURSIVE`. No path is
/// resolved, so nothing done to any path since `fd` was opened changes
/// what is copied. The object must be in this thread's mount namespace;
/// the copy can then be attached in another with
/// [`attach_tree`](super::attach_tree). `path` only names the object in
/// errors.
pub fn clone_tree_of(fd: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, SysError> {
    let flags = OPEN_TREE_CLONE
        | libc::AT_EMPTY_PATH as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint
        | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: the descriptor is borrowed, hence open, for the call; the
    // empty path is a static NUL-terminated string the kernel only reads.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if tree < 0 {
        return Err(err("open_tree(OPEN_TREE_CLONE)", path)(nix::Error::last()));
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as std::os::fd::RawFd) })
}
