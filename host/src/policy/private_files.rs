//! Files of the plugin cache's private directory, by name under its
//! descriptor: opened never through a link and checked to be ours alone,
//! written whole through a fresh temporary file and a rename.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// Removes a file of the directory.
pub(super) fn remove_at(dir: &OwnedFd, name: &str) -> std::io::Result<()> {
    Ok(nix::unistd::unlinkat(
        dir,
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )?)
}

/// Opens a file of the directory for reading, refusing a link, and
/// checks that it is a regular file of ours that only we may write.
pub(super) fn open_file(dir: &OwnedFd, name: &str) -> std::io::Result<fs::File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    let file = fs::File::from(fd);
    let meta = file.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "owner uid {}, mode {:o}: not ours alone",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(file)
}

/// Writes a file of the directory whole: a fresh temporary file (0600,
/// never a link) filled by `fill`, then renamed over `name`.
pub(super) fn replace(
    dir: &OwnedFd,
    prefix: &str,
    name: &str,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (temporary, mut file) = create_temporary(dir, prefix)?;
    let written = fill(&mut file)
        .and_then(|()| Ok(nix::fcntl::renameat(dir, temporary.as_str(), dir, name)?));
    if written.is_err() {
        let _ = remove_at(dir, &temporary);
    }
    written
}

/// A new file with a name no one else has used, `prefix` first.
fn create_temporary(dir: &OwnedFd, prefix: &str) -> std::io::Result<(String, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    loop {
        let name = format!(
            "{prefix}{:x}-{nanos:x}-{:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match openat(
            dir,
            name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((name, fs::File::from(fd))),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
