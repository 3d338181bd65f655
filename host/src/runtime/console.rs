//! The container's terminal: the runtime makes the pseudo-terminal inside
//! the container and passes its master to specgate through a unix socket
//! (`--console-socket`, one message carrying the descriptor); specgate
//! relays it to its own stdio, puts its own terminal in raw mode while
//! the container runs, and keeps the sizes in step.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, OnceLock, Weak};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::sys::{self, StdFd};

/// The console socket's name in the bundle, which is private (0700):
/// nobody else can connect to it.
pub const SOCKET_NAME: &str = "console.sock";

/// Errors receiving the container's terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The socket could not be made.
    #[error("console socket {}: {source}", path.display())]
    Bind {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Receiving the terminal failed.
    #[error("receiving the container's terminal on {}: {source}", path.display())]
    Receive {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime started the container without sending its terminal.
    #[error("the runtime sent no terminal on {}", path.display())]
    NoTerminal {
        /// The socket.
        path: PathBuf,
    },
}

/// The socket a runtime sends the container's terminal on; removed with
/// the bundle.
#[derive(Debug)]
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens on [`SOCKET_NAME`] in the bundle `dir`.
    pub fn bind(dir: &Path) -> Result<Self, ConsoleError> {
        let path = dir.join(SOCKET_NAME);
        let bind_err = |source| ConsoleError::Bind {
            path: path.clone(),
            source,
        };
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            // A socket's address holds at most 107 bytes: a longer path
            // is reached through a descriptor of the bundle instead.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                let dir_fd = std::fs::File::open(dir).map_err(bind_err)?;
                let short = format!(
                    "/proc/self/fd/{}/{SOCKET_NAME}",
                    std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
                );
                UnixListener::bind(short).map_err(bind_err)?
            }
            Err(e) => return Err(bind_err(e)),
        };
        Ok(ConsoleSocket { listener, path })
    }

    /// Waits for the runtime to send the terminal: the master of the
    /// container's pseudo-terminal. None when `runtime` exits without
    /// sending it (it failed; its log says why).
    pub fn receive(&self, runtime: &mut Child) -> Result<Option<OwnedFd>, ConsoleError> {
        let receive_err = |source| ConsoleError::Receive {
            path: self.path.clone(),
            source,
        };
        loop {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(20u8)) {
                Ok(0) | Err(nix::Error::EINTR) => {}
                Ok(_) => break,
                Err(e) => return Err(receive_err(e.into())),
            }
            // A runtime that failed before connecting never will.
            if runtime.try_wait().map_err(receive_err)?.is_some() {
                let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                    return Ok(None);
                }
                break;
            }
        }
        let (stream, _) = self.listener.accept().map_err(receive_err)?;
        let received = sys::receive_fd(stream.as_fd()).map_err(|e| receive_err(e.into()))?;
        Ok(received.map(|(master, name)| {
            tracing::debug!("the container's terminal: {name}");
            master
        }))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Specgate's own terminal, if any of its standard streams is one: whose
/// size the container's takes.
pub(crate) fn our_terminal() -> Option<BorrowedFd<'static>> {
    [StdFd::In, StdFd::Out, StdFd::Err]
        .into_iter()
        .map(StdFd::fd)
        .find(|fd| nix::unistd::isatty(fd).unwrap_or(false))
}

/// The size of specgate's terminal, for the spec's `process.consoleSize`:
/// the runtime gives it to the container's terminal before the command
/// starts.
pub fn our_size() -> Option<oci_spec::runtime::Box> {
    let size = sys::window_size(our_terminal()?).ok()?;
    if size.ws_row == 0 || size.ws_col == 0 {
        return None;
    }
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(size.ws_row))
        .width(u64::from(size.ws_col))
        .build()
        .ok()
}

/// Gives the container's terminal, `master`, the size of ours.
pub(crate) fn copy_size(master: BorrowedFd<'_>) {
    let Some(ours) = our_terminal() else {
        return;
    };
    match sys::window_size(ours) {
        Ok(size) => {
            if let Err(e) = sys::set_window_size(master, &size) {
                tracing::debug!("resizing the container's terminal: {e}");
            }
        }
        Err(e) => tracing::debug!("reading our terminal's size: {e}"),
    }
}

/// Resizes the container's terminal when ours changes size (SIGWINCH);
/// does nothing before the terminal arrives or once it is closed.
#[derive(Debug, Default)]
pub(crate) struct Resizer {
    master: OnceLock<Weak<OwnedFd>>,
}

impl Resizer {
    /// The container's terminal to resize from now on.
    pub fn attach(&self, master: &Arc<OwnedFd>) {
        let _ = self.master.set(Arc::downgrade(master));
    }

    /// Gives the container's terminal our size.
    pub fn resize(&self) {
        if let Some(master) = self.master.get().and_then(Weak::upgrade) {
            copy_size(master.as_fd());
        }
    }
}

/// Our terminal in raw mode: keys reach the container's terminal as they
/// are typed, and its line discipline, not ours, handles them (Ctrl-C
/// becomes the container's SIGINT). The saved mode comes back when this
/// is dropped: on every return, error or panic of the run.
#[derive(Debug)]
pub(crate) struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    /// Puts specgate's stdin in raw mode, when it is a terminal.
    pub fn enter() -> Option<Self> {
        let fd = StdFd::In.fd();
        if !nix::unistd::isatty(fd).unwrap_or(false) {
            return None;
        }
        let saved = match tcgetattr(fd) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!("cannot read our terminal's mode: {e}");
                return None;
            }
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if let Err(e) = tcsetattr(fd, SetArg::TCSANOW, &raw) {
            tracing::warn!("cannot put our terminal in raw mode: {e}");
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved) {
            tracing::warn!("cannot restore our terminal's mode: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-terminal pair: (master, slave).
    fn pty() -> (OwnedFd, OwnedFd) {
        let pair = nix::pty::openpty(None, None).unwrap();
        (pair.master, pair.slave)
    }

    #[test]
    fn a_resizer_follows_the_terminal_it_is_given() {
        let resizer = Resizer::default();
        // Before a terminal arrives, nothing to do.
        resizer.resize();
        let (master, _slave) = pty();
        let master = Arc::new(master);
        resizer.attach(&master);
        resizer.resize();
        drop(master);
        // Once it is closed, nothing either.
        resizer.resize();
    }

    #[test]
    fn window_sizes_go_through_the_master() {
        let (master, slave) = pty();
        let size = libc::winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_window_size(master.as_fd(), &size).unwrap();
        let seen = sys::window_size(slave.as_fd()).unwrap();
        assert_eq!((seen.ws_row, seen.ws_col), (33, 101));
    }

    #[test]
    fn the_terminal_arrives_through_the_socket() {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let socket = ConsoleSocket::bind(dir.path()).unwrap();
        // A runtime that sends the master, as runc does, then exits.
        let mut runtime = std::process::Command::new("true").spawn().unwrap();
        let (master, _slave) = pty();
        let client = std::os::unix::net::UnixStream::connect(socket.path()).unwrap();
        let fds = [master.as_raw_fd()];
        sendmsg::<()>(
            client.as_raw_fd(),
            &[std::io::IoSlice::new(b"/dev/ptmx")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let received = socket.receive(&mut runtime).unwrap().unwrap();
        let size = libc::winsize {
            ws_row: 7,
            ws_col: 9,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_window_size(received.as_fd(), &size).unwrap();
        assert_eq!(sys::window_size(master.as_fd()).unwrap().ws_col, 9);
    }

    #[test]
    fn a_runtime_that_exits_without_a_terminal_sends_none() {
        let dir = tempfile::tempdir().unwrap();
        let socket = ConsoleSocket::bind(dir.path()).unwrap();
        let mut runtime = std::process::Command::new("false").spawn().unwrap();
        assert!(socket.receive(&mut runtime).unwrap().is_none());
    }

    #[test]
    fn a_long_bundle_path_still_gets_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("b".repeat(120));
        std::fs::create_dir(&long).unwrap();
        let socket = ConsoleSocket::bind(&long).unwrap();
        assert!(long.join(SOCKET_NAME).exists());
        drop(socket);
    }
}
