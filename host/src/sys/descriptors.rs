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
