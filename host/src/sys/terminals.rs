//! Terminal ioctls nix does not wrap: window sizes and the controlling
//! terminal.

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
