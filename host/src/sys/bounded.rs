//! Reading a host file the caller named (an env file, a seccomp profile,
//! a CNI configuration, the policy file) without trusting what is there:
//! it must be a regular file no larger than a bound, and is read with
//! that bound. A FIFO would hang the run and `/dev/zero` would grow it
//! without end; both are refused before a byte is read.

use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The bound on a configuration file specgate reads: 4 MiB, far above
/// any real env file, seccomp profile, CNI configuration or policy.
pub const CONFIG_LIMIT: u64 = 4 << 20;

/// Reads the regular file at `path`, of at most `limit` bytes. Opened
/// non-blocking, so that a FIFO or a device is refused at once instead of
/// waiting for a writer; the error says what the file is or how large
/// it is, never what it holds.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    let too_large = || {
        Error::new(
            ErrorKind::FileTooLarge,
            format!("larger than the limit of {limit} bytes"),
        )
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // One byte past the bound tells a file that grew since the stat.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_to_string(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_under_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "A=1\n").unwrap();
        assert_eq!(read_bounded_to_string(&path, 4).unwrap(), "A=1\n");
        let error = read_bounded(&path, 3).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::FileTooLarge);
        assert_eq!(error.to_string(), "larger than the limit of 3 bytes");
    }

    #[test]
    fn a_fifo_a_device_and_a_directory_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer ever comes: a blocking open would hang here.
        let error = read_bounded(&fifo, CONFIG_LIMIT).unwrap_err();
        assert_eq!(error.to_string(), "not a regular file (a FIFO)");
        let error = read_bounded(Path::new("/dev/zero"), CONFIG_LIMIT).unwrap_err();
        assert_eq!(error.to_string(), "not a regular file (a character device)");
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(
            read_bounded(&link, CONFIG_LIMIT).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let error = read_bounded(dir.path(), CONFIG_LIMIT).unwrap_err();
        assert_eq!(error.to_string(), "not a regular file (a directory)");
    }
}
