//! Signals delivered to specgate as bytes on a pipe, so that a thread
//! can wait for them with the rest of its work instead of in a handler.

use std::path::Path;

use super::{SysError, err};

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
