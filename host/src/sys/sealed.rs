//! A sealed, in-memory copy of specgate's own executable, for the
//! container's init to run (CVE-2019-5736). A process in the container
//! that can reach its init's `/proc/PID/exe` must never reach the host's
//! binary through it: it could hold that file open and rewrite it once
//! nothing runs it, and the host's next `specgate` would run its code as
//! root. runc has exec'd a sealed memfd copy of itself since 2019; this
//! is the same: the copy lives in an anonymous memory file whose seals
//! forbid any write, growth or shrinking, and the seals themselves are
//! sealed.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use super::SysError;

/// The seals on the copy: no write, no growth, no shrinking, and no
/// removal or change of the seals.
pub const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// `MFD_EXEC` (Linux 6.3): asks for an executable memfd where
/// `vm.memfd_noexec` would otherwise make new ones non-executable.
const MFD_EXEC: libc::c_uint = 0x0010;

/// specgate's own executable as the container's init may run it, ready
/// for `execveat(fd, "", ..., AT_EMPTY_PATH)`, through something no
/// process can write: where specgate may mount, the file seen through a
/// detached, read-only overlayfs mount (runc's choice since 1.2: a few
/// system calls, where a copy reads the whole binary, 70 MB for a debug
/// build); else a sealed memfd copy. `dummy` is an empty-enough directory
/// the overlay needs as its second lower layer (below the binary's own,
/// so it can mask nothing).
pub fn protected_self(dummy: &Path) -> Result<OwnedFd, SysError> {
    match overlay_self(dummy) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            tracing::debug!("no read-only overlay of specgate's executable, a sealed copy: {e}");
            sealed_self()
        }
    }
}

/// Copies `/proc/self/exe` into a sealed, close-on-exec memfd and returns
/// it, ready for `execveat(fd, "", ..., AT_EMPTY_PATH)`.
pub fn sealed_self() -> Result<OwnedFd, SysError> {
    sealed_copy(Path::new("/proc/self/exe"))
}

/// The new mount API's flags (linux/mount.h), which libc does not name.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

/// A directory as an overlayfs lower layer: `:`, `,` and `\` escaped.
fn lower_layer(path: &Path) -> Option<std::ffi::CString> {
    let text = path.to_str()?;
    let mut escaped = String::new();
    for c in text.chars() {
        if matches!(c, ':' | ',' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    std::ffi::CString::new(escaped).ok()
}

/// Takes a descriptor a system call returned, or its errno.
///
/// # Safety
///
/// `rc` must be the return value of a system call that makes a new
/// descriptor, taken right after the call: when it is not negative, it
/// is then an open descriptor that nothing else owns.
unsafe fn owned(rc: libc::c_long) -> nix::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    if rc < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: by the caller's contract, the kernel just returned this
    // descriptor to this process: it is open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// `/proc/self/exe` through a read-only overlayfs mount that is attached
/// nowhere: lower layers the binary's directory and `dummy`, no upper,
/// so the filesystem itself refuses every write (EROFS), and nothing can
/// be copied up.
fn overlay_self(dummy: &Path) -> Result<OwnedFd, SysError> {
    use std::os::fd::AsRawFd;
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| SysError {
        call: "readlink",
        path: "/proc/self/exe".into(),
        errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let fail = |call: &'static str| {
        let path = exe.clone();
        move |errno: nix::Error| SysError { call, path, errno }
    };
    // Replaced on disk since it started (an upgrade): the file there
    // now is not the one running.
    if exe.to_string_lossy().ends_with(" (deleted)") {
        return Err(fail("readlink")(nix::Error::ENOENT));
    }
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(fail("readlink")(nix::Error::EINVAL));
    };
    let lowers = lower_layer(dir)
        .zip(lower_layer(dummy))
        .map(|(top, bottom)| {
            let mut joined = top.into_bytes();
            joined.push(b':');
            joined.extend(bottom.into_bytes());
            std::ffi::CString::new(joined).unwrap_or_default()
        })
        .ok_or_else(|| fail("overlay lowerdir")(nix::Error::EINVAL))?;
    // SAFETY: fsopen reads the NUL-terminated name, a static string, and
    // returns a new descriptor, taken at once.
    let context = unsafe {
        owned(libc::syscall(
            libc::SYS_fsopen,
            c"overlay".as_ptr(),
            FSOPEN_CLOEXEC,
        ))
    }
    .map_err(fail("fsopen(overlay)"))?;
    let set = |key: &std::ffi::CStr, value: &std::ffi::CStr| {
        // SAFETY: fsconfig reads the two NUL-terminated strings, alive
        // for the call, on a descriptor of ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if rc < 0 {
            Err(nix::Error::last())
        } else {
            Ok(())
        }
    };
    set(c"lowerdir", &lowers).map_err(fail("fsconfig(lowerdir)"))?;
    // Inode numbers are not needed; left on, the kernel may log about them.
    let _ = set(c"xino", c"off");
    // SAFETY: a command with no pointers, on a descriptor of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("fsconfig(create)")(nix::Error::last()));
    }
    // SAFETY: integers only, on a descriptor of ours; fsmount returns a
    // new descriptor, taken at once.
    let mount = unsafe {
        owned(libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        ))
    }
    .map_err(fail("fsmount"))?;
    let file = nix::fcntl::openat(
        &mount,
        name,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(fail("openat"))?;
    // The same file as the one running, as far as a stat tells (overlayfs
    // maps device numbers, not sizes).
    let ours = nix::sys::stat::stat("/proc/self/exe").map_err(fail("stat"))?;
    let theirs = nix::sys::stat::fstat(&file).map_err(fail("fstat"))?;
    if ours.st_size != theirs.st_size || theirs.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(fail("overlay of the executable")(nix::Error::ESTALE));
    }
    Ok(file)
}

/// Copies the file at `path` into a sealed, close-on-exec memfd.
pub fn sealed_copy(path: &Path) -> Result<OwnedFd, SysError> {
    let fail = |call: &'static str| {
        move |errno: nix::Error| SysError {
            call,
            path: path.to_path_buf(),
            errno,
        }
    };
    let io = |call: &'static str| {
        move |e: std::io::Error| SysError {
            call,
            path: path.to_path_buf(),
            errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    };
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let memfd = match memfd_create(c"specgate", flags | MFdFlags::from_bits_retain(MFD_EXEC)) {
        // A kernel before 6.3 does not know MFD_EXEC: its memfds are
        // executable anyway.
        Err(nix::Error::EINVAL) => memfd_create(c"specgate", flags),
        other => other,
    }
    .map_err(fail("memfd_create"))?;
    let mut source = std::fs::File::open(path).map_err(io("open"))?;
    let mut copy = std::fs::File::from(memfd);
    let copied = std::io::copy(&mut source, &mut copy).map_err(io("copy into a memfd"))?;
    let expected = source.metadata().map_err(io("stat"))?.len();
    if copied != expected {
        return Err(fail("copy into a memfd")(nix::Error::EIO));
    }
    fcntl(&copy, FcntlArg::F_ADD_SEALS(SEALS)).map_err(fail("fcntl(F_ADD_SEALS)"))?;
    Ok(OwnedFd::from(copy))
}

/// The seals on a memfd.
#[cfg(test)]
pub fn seals(fd: &OwnedFd) -> nix::Result<SealFlag> {
    fcntl(fd, FcntlArg::F_GET_SEALS).map(SealFlag::from_bits_retain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn the_overlay_view_is_the_binary_and_read_only() {
        let dummy = tempfile::tempdir().unwrap();
        let fd = overlay_self(dummy.path()).unwrap();
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
        let error = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
        assert_eq!(
            lower_layer(Path::new("/a:b,c\\d")).unwrap().as_bytes(),
            b"/a\\:b\\,c\\\\d"
        );
    }

    #[test]
    fn the_copy_is_whole_and_cannot_be_changed() {
        let fd = sealed_self().unwrap();
        assert!(seals(&fd).unwrap().contains(SEALS));
        let mut copy = std::fs::File::from(fd);
        let mut bytes = Vec::new();
        copy.rewind().unwrap();
        copy.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, std::fs::read("/proc/self/exe").unwrap());
        // Not through this descriptor, nor through a fresh open of it,
        // as `/proc/PID/exe` would give a process that sees it.
        copy.rewind().unwrap();
        assert!(copy.write_all(b"\x7fELF").is_err());
        assert!(copy.set_len(0).is_err());
        assert!(copy.set_len(bytes.len() as u64 + 1).is_err());
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        let reopened = std::fs::OpenOptions::new().write(true).open(&path);
        if let Ok(mut reopened) = reopened {
            assert!(reopened.write_all(b"x").is_err());
        }
        assert!(
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .is_err()
        );
        assert!(
            fcntl(
                &copy,
                FcntlArg::F_ADD_SEALS(SealFlag::empty() | SealFlag::F_SEAL_SEAL)
            )
            .is_err()
        );
    }
}
