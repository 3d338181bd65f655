//! `process.terminal`: the container's terminal, made as runc makes it,
//! inside the container's own devpts (so `tty` names a device the
//! container can see), bound at /dev/console, and its master sent to
//! specgate, which relays it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use oci_spec::runtime::Spec;

use super::error::{InitError, sys};

/// Makes the container's terminal, sends its master on `socket`, and
/// makes it this process's controlling terminal and standard streams.
/// Runs after the switch of root, while still root.
pub fn attach(spec: &Spec, socket: BorrowedFd<'_>) -> Result<(), InitError> {
    let ptmx = Path::new("/dev/ptmx");
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open", ptmx))?;
    grantpt(&master).map_err(sys("grantpt", ptmx))?;
    unlockpt(&master).map_err(sys("unlockpt", ptmx))?;
    let name = PathBuf::from(ptsname_r(&master).map_err(sys("ptsname", ptmx))?);
    let slave: OwnedFd = nix::fcntl::open(
        &name,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("open", &name))?;
    if let Some(size) = spec.process().as_ref().and_then(|p| p.console_size()) {
        let size = libc::winsize {
            ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        crate::sys::set_window_size(master.as_fd(), &size).map_err(sys("TIOCSWINSZ", &name))?;
    }
    bind_console(&name)?;
    crate::sys::send_fd(socket, master.as_fd(), &name.to_string_lossy())
        .map_err(sys("sendmsg", Path::new("terminal master")))?;
    drop(master);
    nix::unistd::setsid().map_err(sys("setsid", &name))?;
    crate::sys::set_controlling_terminal(slave.as_fd()).map_err(sys("TIOCSCTTY", &name))?;
    nix::unistd::dup2_stdin(&slave).map_err(sys("dup2", &name))?;
    nix::unistd::dup2_stdout(&slave).map_err(sys("dup2", &name))?;
    nix::unistd::dup2_stderr(&slave).map_err(sys("dup2", &name))?;
    Ok(())
}

/// Binds the terminal at /dev/console, as runc does; skipped when the
/// container has no /dev of its own to make it in.
fn bind_console(slave: &Path) -> Result<(), InitError> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() && std::fs::File::create(console).is_err() {
        return Ok(());
    }
    mount(
        Some(slave),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("mount --bind", console))
}
