//! The bundle: a private directory per run holding config.json (and the
//! default rootfs's mount point), removed when the run ends.
//!
//! The state directory and each bundle are reached through directory
//! handles opened without following links, and the bundle's files are
//! removed relative to them: even a state directory someone else could
//! write in (refused, but refused by a check a racing user might beat)
//! could not turn a swapped link into a removal outside the bundle.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

/// Errors creating or writing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Another run uses the same container id.
    #[error("container name `{0}` is already in use (bundle {1} exists)")]
    InUse(String, PathBuf),
    /// The state directory is not the caller's alone.
    #[error(transparent)]
    NotPrivate(#[from] super::NoRuntimeDir),
    /// A file operation failed.
    #[error("bundle {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A bundle directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    /// The state directory holding it, opened without following a link.
    state: OwnedFd,
    /// The bundle's name in `state`.
    name: OsString,
    /// The bundle directory itself, which its files are written in; none
    /// for a bundle adopted only to be removed.
    handle: Option<OwnedFd>,
    mount_points: Vec<PathBuf>,
}

/// Opens a directory entry of `dir` without following a link.
fn open_dir_at(dir: impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the state directory `path` (its last component not through a
/// link) and checks, on the open handle, that it is the caller's alone.
fn open_state_dir(path: &Path) -> Result<OwnedFd, BundleError> {
    let io = |source: nix::Error| BundleError::Io {
        path: path.to_path_buf(),
        source: source.into(),
    };
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let stat = nix::sys::stat::fstat(&fd).map_err(io)?;
    let uid = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        BundleError::NotPrivate(super::NoRuntimeDir::NotPrivate {
            path: path.to_path_buf(),
            why,
            uid,
        })
    };
    if stat.st_uid != uid {
        return Err(refuse(format!("owned by uid {}", stat.st_uid)));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(refuse(format!("mode {:04o}", stat.st_mode & 0o7777)));
    }
    if stat.st_mode & 0o077 != 0 {
        // Others could look, not write: nothing in it is theirs, and it
        // is closed to them from now on.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(io)?;
    }
    Ok(fd)
}

impl Bundle {
    /// Creates `state_dir/id` with mode 0700 (and `state_dir`, 0700, if
    /// missing), holding the owner file that `specgate gc` reads: it is
    /// made under a hidden name and renamed into place whole. A state
    /// directory that is a link, or is not the caller's with no access
    /// for others, is refused.
    pub fn create(state_dir: &Path, id: &str) -> Result<Self, BundleError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Io { path, source }
        };
        let nix_io = |path: &Path| {
            let path = path.to_path_buf();
            move |source: nix::Error| BundleError::Io {
                path,
                source: source.into(),
            }
        };
        match fs::DirBuilder::new().mode(0o700).create(state_dir) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // `/run` for root; never a caller's runtime directory,
                // which was checked to exist.
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(state_dir)
                    .map_err(io(state_dir))?;
            }
            other => other.map_err(io(state_dir))?,
        }
        let state = open_state_dir(state_dir)?;
        let dir = state_dir.join(id);
        if nix::sys::stat::fstatat(&state, id, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
            return Err(BundleError::InUse(id.to_string(), dir));
        }
        let staging_name = format!(".{id}.{}", std::process::id());
        let staging_path = state_dir.join(&staging_name);
        nix::sys::stat::mkdirat(
            &state,
            staging_name.as_str(),
            Mode::from_bits_truncate(0o700),
        )
        .map_err(nix_io(&staging_path))?;
        // Removed on failure, through the same handles.
        let mut staging = Bundle {
            dir: staging_path.clone(),
            state,
            name: OsString::from(&staging_name),
            handle: None,
            mount_points: Vec::new(),
        };
        let owner_path = staging_path.join(super::owner::OWNER_FILE);
        let staging_dir =
            open_dir_at(&staging.state, staging.name.as_os_str()).map_err(nix_io(&staging_path))?;
        let owner = openat(
            &staging_dir,
            super::owner::OWNER_FILE,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(nix_io(&owner_path))?;
        fs::File::from(owner)
            .write_all(super::owner::owner_record().as_bytes())
            .map_err(io(&owner_path))?;
        // The same directory once renamed: its files are made through it.
        staging.handle = Some(staging_dir);
        match nix::fcntl::renameat2(
            &staging.state,
            staging_name.as_str(),
            &staging.state,
            id,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                let mut bundle = staging;
                bundle.dir = dir;
                bundle.name = OsString::from(id);
                Ok(bundle)
            }
            Err(nix::Error::EEXIST) => Err(BundleError::InUse(id.to_string(), dir)),
            Err(e) => Err(io(&dir)(std::io::Error::from(e))),
        }
    }

    /// Takes charge of an existing bundle (a dead run's), to remove it;
    /// its state directory must be the caller's alone.
    pub fn adopt(dir: PathBuf) -> Result<Self, BundleError> {
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(BundleError::Io {
                path: dir,
                source: ErrorKind::InvalidInput.into(),
            });
        };
        Ok(Bundle {
            state: open_state_dir(parent)?,
            name: name.to_os_string(),
            dir,
            handle: None,
            mount_points: Vec::new(),
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes config.json atomically: a reader sees the old file or the
    /// whole new one.
    pub fn write_config(&self, json: &str) -> Result<PathBuf, BundleError> {
        self.write_file("config.json", json.as_bytes(), 0o600)
    }

    /// Writes a file of the bundle atomically, with `mode`: the files
    /// bound into the container (hosts, resolv.conf) must be readable by
    /// its users.
    pub fn write_file(&self, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, BundleError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(name);
        let io = |source: std::io::Error| BundleError::Io {
            path: path.clone(),
            source,
        };
        let handle = self.handle()?;
        // Made under a fresh hidden name, never through a link, then
        // renamed over `name`.
        let (temporary, file) = loop {
            let temporary = format!(
                ".write-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            match openat(
                handle,
                temporary.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => break (temporary, fs::File::from(fd)),
                Err(nix::Error::EEXIST) => continue,
                Err(e) => return Err(io(e.into())),
            }
        };
        let written = file
            .set_permissions(fs::Permissions::from_mode(mode))
            .and_then(|()| (&file).write_all(bytes))
            .and_then(|()| {
                nix::fcntl::renameat(handle, temporary.as_str(), handle, name).map_err(Into::into)
            });
        if let Err(e) = written {
            let _ = nix::unistd::unlinkat(handle, temporary.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(io(e));
        }
        Ok(path)
    }

    /// The bundle directory's handle.
    fn handle(&self) -> Result<&OwnedFd, BundleError> {
        self.handle.as_ref().ok_or_else(|| BundleError::Io {
            path: self.dir.clone(),
            source: std::io::Error::new(
                ErrorKind::Unsupported,
                "an adopted bundle is only removed",
            ),
        })
    }

    /// Creates an empty directory in the bundle that something will be
    /// mounted on: it is unmounted before the bundle is removed.
    pub fn mount_point(&mut self, name: &str) -> Result<PathBuf, BundleError> {
        let path = self.empty_dir(name)?;
        self.mount_points.push(path.clone());
        Ok(path)
    }

    /// Records a mount made on `path`, a file or directory of the bundle:
    /// it is unmounted before the bundle is removed.
    pub fn track_mount(&mut self, path: PathBuf) {
        self.mount_points.push(path);
    }

    /// Creates an empty directory in the bundle, mode 0700, that only the
    /// runtime mounts on, in the container's mount namespace: specgate's
    /// own view of it stays empty.
    pub fn empty_dir(&self, name: &str) -> Result<PathBuf, BundleError> {
        let path = self.dir.join(name);
        nix::sys::stat::mkdirat(self.handle()?, name, Mode::from_bits_truncate(0o700)).map_err(
            |e| BundleError::Io {
                path: path.clone(),
                source: e.into(),
            },
        )?;
        Ok(path)
    }

    /// Removes the bundle's entries and then the bundle, every call
    /// relative to a handle: the bundle opened from the state directory
    /// without following a link (a link in its place is left alone, and
    /// so is all it points to), its entries unlinked in it, links as
    /// links, directories only when empty.
    fn remove(&self) {
        let bundle = match open_dir_at(&self.state, &self.name) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return,
            Err(e) => {
                tracing::warn!(bundle = %self.dir.display(), "bundle not removed: {e}");
                return;
            }
        };
        let listed = bundle
            .try_clone()
            .map(|fd| cap_std::fs::Dir::from_std_file(fs::File::from(fd)))
            .and_then(|dir| dir.entries());
        let mut names: Vec<OsString> = match listed {
            Ok(entries) => entries.flatten().map(|entry| entry.file_name()).collect(),
            Err(e) => {
                tracing::warn!(bundle = %self.dir.display(), "bundle not removed: {e}");
                return;
            }
        };
        // The owner file goes last: a run killed while its bundle is
        // removed leaves one that still names its dead owner, for its
        // guard or gc to finish, not one they take for another's.
        names.sort_by_key(|name| name == super::owner::OWNER_FILE);
        for name in names {
            let removed = match nix::unistd::unlinkat(
                &bundle,
                name.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            ) {
                Err(nix::Error::EISDIR) => {
                    nix::unistd::unlinkat(&bundle, name.as_os_str(), UnlinkatFlags::RemoveDir)
                }
                other => other,
            };
            if let Err(e) = removed {
                tracing::warn!(path = %self.dir.join(&name).display(), "bundle entry not removed: {e}");
            }
        }
        if let Err(e) =
            nix::unistd::unlinkat(&self.state, self.name.as_os_str(), UnlinkatFlags::RemoveDir)
        {
            tracing::warn!(bundle = %self.dir.display(), "bundle not removed: {e}");
        }
    }
}

impl Drop for Bundle {
    /// Unmounts what the bundle holds, then removes its files and empty
    /// directories one by one. Never a recursive removal: whatever is
    /// still mounted in the bundle (the host's root, say) is left alone.
    fn drop(&mut self) {
        for mount_point in &self.mount_points {
            if let Err(e) = crate::sys::detach(mount_point)
                && e.errno != nix::Error::EINVAL
            {
                tracing::warn!("{e}");
            }
        }
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bundles_are_private_exclusive_and_removed() {
        let state = tempfile::tempdir().unwrap();
        let bundle = Bundle::create(state.path(), "abc").unwrap();
        let mode = fs::metadata(bundle.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(matches!(
            Bundle::create(state.path(), "abc"),
            Err(BundleError::InUse(..))
        ));
        let config = bundle.write_config("{}").unwrap();
        assert_eq!(fs::read_to_string(&config).unwrap(), "{}");
        let mode = fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let hosts = bundle.write_file("hosts", b"127.0.0.1 x\n", 0o644).unwrap();
        let mode = fs::metadata(&hosts).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        bundle.write_file("hosts", b"::1 x\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&hosts).unwrap(), "::1 x\n");
        let dir = bundle.dir().to_path_buf();
        drop(bundle);
        assert!(!dir.exists());
    }

    /// A directory with files a cleanup must never touch.
    fn victim() -> tempfile::TempDir {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("id_ed25519"), "key").unwrap();
        fs::write(outside.path().join("notes.txt"), "notes").unwrap();
        fs::create_dir(outside.path().join("empty")).unwrap();
        outside
    }

    fn assert_untouched(outside: &Path) {
        for name in ["id_ed25519", "notes.txt", "empty"] {
            assert!(outside.join(name).exists(), "{name} was removed");
        }
    }

    #[test]
    fn a_bundle_swapped_for_a_link_is_left_and_what_it_points_to_too() {
        let state = tempfile::tempdir().unwrap();
        let outside = victim();
        let bundle = Bundle::create(state.path(), "abc").unwrap();
        bundle.write_config("{}").unwrap();
        fs::rename(bundle.dir(), state.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), bundle.dir()).unwrap();
        // Files are still made in the bundle, wherever it went.
        bundle.write_file("notes.txt", b"mine", 0o644).unwrap();
        bundle.empty_dir("rootfs").unwrap();
        assert_eq!(
            fs::read_to_string(state.path().join("moved/notes.txt")).unwrap(),
            "mine"
        );
        assert!(!outside.path().join("rootfs").exists());
        let dir = bundle.dir().to_path_buf();
        drop(bundle);
        assert_untouched(outside.path());
        assert_eq!(
            fs::read_to_string(outside.path().join("notes.txt")).unwrap(),
            "notes"
        );
        assert!(fs::symlink_metadata(&dir).unwrap().file_type().is_symlink());
    }

    #[test]
    fn links_in_a_bundle_are_removed_as_links() {
        let state = tempfile::tempdir().unwrap();
        let outside = victim();
        let bundle = Bundle::create(state.path(), "abc").unwrap();
        let config = bundle.write_config("{}").unwrap();
        fs::remove_file(&config).unwrap();
        std::os::unix::fs::symlink(outside.path().join("notes.txt"), &config).unwrap();
        std::os::unix::fs::symlink(outside.path(), bundle.dir().join("rootfs")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("empty"), bundle.dir().join("e")).unwrap();
        let dir = bundle.dir().to_path_buf();
        drop(bundle);
        assert_untouched(outside.path());
        assert!(!dir.exists());
    }

    #[test]
    fn a_state_directory_others_may_write_or_a_link_to_one_is_refused() {
        let state = tempfile::tempdir().unwrap();
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let error = Bundle::create(state.path(), "abc").unwrap_err();
        assert!(matches!(error, BundleError::NotPrivate(_)), "{error}");
        assert!(error.to_string().contains("mode 1777"), "{error}");
        assert!(!state.path().join("abc").exists());

        let other = tempfile::tempdir().unwrap();
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(state.path(), Some(65534), None).unwrap();
        let error = Bundle::create(state.path(), "abc").unwrap_err();
        assert!(error.to_string().contains("owned by uid 65534"), "{error}");

        let link = other.path().join("state");
        let mine = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(mine.path(), &link).unwrap();
        assert!(Bundle::create(&link, "abc").is_err());
        assert!(!mine.path().join("abc").exists());

        // Readable by others, writable by none but its owner: closed.
        fs::set_permissions(mine.path(), fs::Permissions::from_mode(0o755)).unwrap();
        drop(Bundle::create(mine.path(), "abc").unwrap());
        let mode = fs::metadata(mine.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
