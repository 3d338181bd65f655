//! Where runs keep their state, and the check that it is private to the
//! caller.

use std::path::{Path, PathBuf};

/// An unprivileged caller has no place for runtime state, or one that
/// is not private to it.
#[derive(Debug, thiserror::Error)]
pub enum NoRuntimeDir {
    /// Neither XDG_RUNTIME_DIR nor /run/user/UID.
    #[error(
        "XDG_RUNTIME_DIR is not set and /run/user/{uid} is not a directory of yours: set XDG_RUNTIME_DIR to a private directory you own (a systemd-logind login session sets it)"
    )]
    Unset {
        /// The caller's uid.
        uid: u32,
    },
    /// The directory is not the caller's alone: another user could
    /// plant or swap what runs delete there.
    #[error(
        "runtime state directory {}: {why}; it must be a directory owned by uid {uid} that no one else may enter (mode 0700)",
        path.display()
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// The caller's uid.
        uid: u32,
    },
}

/// Checks that `path` is a directory (not a link to one) owned by `uid`
/// that no one else may enter, as the XDG base directory specification
/// requires of `$XDG_RUNTIME_DIR` (mode 0700; logind makes
/// `/run/user/UID` so): no one else can then plant, swap, remove or
/// watch what is in it.
pub fn check_private_dir(path: &Path, uid: u32) -> Result<(), NoRuntimeDir> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| NoRuntimeDir::NotPrivate {
        path: path.to_path_buf(),
        why,
        uid,
    };
    let metadata = std::fs::symlink_metadata(path).map_err(|e| refuse(e.to_string()))?;
    if metadata.file_type().is_symlink() {
        return Err(refuse("a symbolic link".into()));
    }
    if !metadata.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    if metadata.uid() != uid {
        return Err(refuse(format!("owned by uid {}", metadata.uid())));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(refuse(format!("mode {:04o}", metadata.mode() & 0o7777)));
    }
    Ok(())
}

/// Where an unprivileged caller keeps runtime state, as podman finds it:
/// `$XDG_RUNTIME_DIR`, else `/run/user/UID`; none for root, whose state
/// is under `/run`. Either must be the caller's own, closed to others.
fn user_runtime_dir() -> Result<Option<PathBuf>, NoRuntimeDir> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(None);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        check_private_dir(&dir, uid.as_raw())?;
        return Ok(Some(dir));
    }
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {
            check_private_dir(&dir, uid.as_raw())?;
            Ok(Some(dir))
        }
        _ => Err(NoRuntimeDir::Unset { uid: uid.as_raw() }),
    }
}

/// The state directory: `/run/specgate` for root, else
/// `$XDG_RUNTIME_DIR/specgate`. Bundles are made in it only once it is
/// found private to the caller ([`super::bundle::Bundle::create`]).
pub fn state_dir() -> Result<PathBuf, NoRuntimeDir> {
    Ok(user_runtime_dir()?.map_or_else(
        || PathBuf::from("/run/specgate"),
        |dir| dir.join("specgate"),
    ))
}

/// The runtime's global flags that the caller's identity needs: for an
/// unprivileged caller, runc's state directory (`--root`) under
/// `$XDG_RUNTIME_DIR`, runc's own default, given explicitly so that a run,
/// its guardian and `specgate gc` agree even where runc would not find it
/// (XDG_RUNTIME_DIR unset, /run/user/UID used).
pub fn caller_flags() -> Result<Vec<String>, NoRuntimeDir> {
    Ok(user_runtime_dir()?
        .map(|dir| vec![format!("--root={}", dir.join("runc").display())])
        .unwrap_or_default())
}
