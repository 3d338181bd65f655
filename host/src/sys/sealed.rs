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

/// Copies `/proc/self/exe` into a sealed, close-on-exec memfd and returns
/// it, ready for `execveat(fd, "", ..., AT_EMPTY_PATH)`.
pub fn sealed_self() -> Result<OwnedFd, SysError> {
    sealed_copy(Path::new("/proc/self/exe"))
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
pub fn seals(fd: &OwnedFd) -> nix::Result<SealFlag> {
    fcntl(fd, FcntlArg::F_GET_SEALS).map(SealFlag::from_bits_retain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

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
