//! The bundle: a private directory per run holding config.json (and the
//! default rootfs's mount point), removed when the run ends.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors creating or writing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Another run uses the same container id.
    #[error("container name `{0}` is already in use (bundle {1} exists)")]
    InUse(String, PathBuf),
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
    mount_points: Vec<PathBuf>,
}

impl Bundle {
    /// Creates `state_dir/id` with mode 0700 (and `state_dir`, 0700, if
    /// missing), holding the owner file that `specgate gc` reads: it is
    /// made under a hidden name and renamed into place whole.
    pub fn create(state_dir: &Path, id: &str) -> Result<Self, BundleError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io(state_dir))?;
        let dir = state_dir.join(id);
        if dir.exists() {
            return Err(BundleError::InUse(id.to_string(), dir));
        }
        let staging = Bundle {
            dir: state_dir.join(format!(".{id}.{}", std::process::id())),
            mount_points: Vec::new(),
        };
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.dir)
            .map_err(io(&staging.dir))?;
        let owner = staging.dir.join(super::gc::OWNER_FILE);
        fs::write(&owner, super::gc::owner_record()).map_err(io(&owner))?;
        match nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &staging.dir,
            nix::fcntl::AT_FDCWD,
            &dir,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                let mut bundle = staging;
                bundle.dir = dir;
                Ok(bundle)
            }
            Err(nix::Error::EEXIST) => Err(BundleError::InUse(id.to_string(), dir)),
            Err(e) => Err(io(&dir)(std::io::Error::from(e))),
        }
    }

    /// Takes charge of an existing bundle (a dead run's), to remove it.
    pub fn adopt(dir: PathBuf) -> Self {
        Bundle {
            dir,
            mount_points: Vec::new(),
        }
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
        let path = self.dir.join(name);
        let io = |source| BundleError::Io {
            path: path.clone(),
            source,
        };
        let mut file = tempfile::Builder::new()
            .prefix(".write-")
            .permissions(fs::Permissions::from_mode(mode))
            .tempfile_in(&self.dir)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.persist(&path).map_err(|e| io(e.error))?;
        Ok(path)
    }

    /// Creates an empty directory in the bundle that something will be
    /// mounted on: it is unmounted before the bundle is removed.
    pub fn mount_point(&mut self, name: &str) -> Result<PathBuf, BundleError> {
        let path = self.empty_dir(name)?;
        self.mount_points.push(path.clone());
        Ok(path)
    }

    /// Creates an empty directory in the bundle, mode 0700, that only the
    /// runtime mounts on, in the container's mount namespace: specgate's
    /// own view of it stays empty.
    pub fn empty_dir(&self, name: &str) -> Result<PathBuf, BundleError> {
        let path = self.dir.join(name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| BundleError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(path)
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
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(bundle = %self.dir.display(), "bundle not removed: {e}");
                return;
            }
        };
        // The owner file goes last: a run killed while its bundle is
        // removed leaves one that still names its dead owner, for its
        // guard or gc to finish, not one they take for another's.
        let mut entries: Vec<fs::DirEntry> = entries.flatten().collect();
        entries.sort_by_key(|entry| entry.file_name() == super::gc::OWNER_FILE);
        for entry in entries {
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => fs::remove_dir(&path),
                _ => fs::remove_file(&path),
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), "bundle entry not removed: {e}");
            }
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            tracing::warn!(bundle = %self.dir.display(), "bundle not removed: {e}");
        }
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
        assert_eq!(fs::read_to_string(config).unwrap(), "{}");
        let dir = bundle.dir().to_path_buf();
        drop(bundle);
        assert!(!dir.exists());
    }
}
