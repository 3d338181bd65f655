//! Descriptors: the standard streams, descriptors inherited at an
//! agreed number, close-on-exec for the rest, and passing one over a
//! unix socket (SCM_RIGHTS).

use std::path::Path;

use super::{SysError, err};

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

/// Takes ownership of a descriptor this process inherited at a number
/// agreed with its parent (as `chroot-init` does its error pipe and
/// spec); none when that number was not open when the process started,
/// or was taken already.
pub fn inherited_fd(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut inherited = INHERITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = inherited.iter().position(|&open| open == fd)?;
    inherited.swap_remove(at);
    // SAFETY: the descriptor was open before any code of this program ran
    // (see `note_inherited`), so no object of the program opened it, and
    // none can have closed it without owning it; it leaves the list as it
    // is taken, so it is owned once.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The descriptors from 3 up that the process inherited across its
/// exec, as `note_inherited` found them; each is handed out once.
static INHERITED: std::sync::Mutex<Vec<std::os::fd::RawFd>> = std::sync::Mutex::new(Vec::new());

/// Lists the inherited descriptors, before `main`: every descriptor open
/// then and not close-on-exec came through the exec (the loader closes
/// what it opens, and what the listing opens is close-on-exec).
extern "C" fn note_inherited() {
    let Ok(listing) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let found = listing
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &std::os::fd::RawFd| {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } == 0
        })
        .collect();
    *INHERITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = found;
}

// SAFETY: a pointer to a function taking no arguments and returning
// nothing, which is what the loader calls an `.init_array` entry as.
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_INHERITED: extern "C" fn() = note_inherited;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Only what was open before the program ran is handed out: a
    /// descriptor the process opened itself, close-on-exec or not, never
    /// is, so it cannot end up owned twice.
    #[test]
    fn only_descriptors_inherited_at_start_are_handed_out() {
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(inherited_fd(file.as_raw_fd()).is_none());
        let plain = nix::unistd::dup(&file).expect("dup");
        let flags = nix::fcntl::fcntl(&plain, nix::fcntl::FcntlArg::F_GETFD).expect("flags");
        assert_eq!(flags, 0, "dup gives a descriptor without close-on-exec");
        assert!(inherited_fd(plain.as_raw_fd()).is_none());
        assert!(inherited_fd(0).is_none() && inherited_fd(2).is_none());
    }
}
