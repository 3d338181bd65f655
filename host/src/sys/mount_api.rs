//! The parts of the new mount API (Linux 5.2, 5.12) that nix does not
//! wrap: read-only trees in one step, and detached copies of a tree
//! taken by path or by descriptor and attached elsewhere, with which
//! `runtime::pin` mounts an object it opened, never its path again.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{SysError, err};

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

/// A detached copy of the mount tree at the object `fd` is open on (an
/// `O_PATH` descriptor will do), with every mount below it: open_tree
/// with `AT_EMPTY_PATH | OPEN_TREE_CLONE | AT_RECURSIVE`. No path is
/// resolved, so nothing done to any path since `fd` was opened changes
/// what is copied. The object must be in this thread's mount namespace;
/// the copy can then be attached in another with
/// [`attach_tree`]. `path` only names the object in
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
