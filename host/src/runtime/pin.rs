//! Granted bind sources, mounted as they were checked.
//!
//! A bind source allowed by a `bind-sources` grant is opened once, when
//! its change is checked ([`Grants::pin_bind`]): the descriptor is the
//! object the check saw. A runtime given the path would resolve it again
//! when it mounts, and a link or directory swapped in between would give
//! the container something else (the host's `/etc`). So specgate mounts
//! each pinned object itself, from its descriptor (open_tree with
//! `OPEN_TREE_CLONE`, then move_mount), on an empty file or directory of
//! the bundle, in a mount namespace of this thread's own, and hands the
//! runtime that path: a path of a root-owned private directory, which no
//! one else can change, whose mount exists only in specgate's namespace
//! and in the copies the runtime's processes inherit. The host never sees
//! it, and it vanishes with them.
//!
//! [`Grants::pin_bind`]: crate::policy::Grants::pin_bind

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use crate::policy::grants::PinnedSource;
use crate::sys::{self, SysError};

/// Errors mounting pinned sources.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A mount system call failed.
    #[error("granted bind source {}: {source}", pinned.display())]
    Sys {
        /// The source, as the change wrote it.
        pinned: PathBuf,
        /// What failed.
        source: SysError,
    },
    /// specgate could not get a mount namespace of its own.
    #[error(
        "granted bind sources are mounted by specgate in a mount namespace of its own, \
         which needs CAP_SYS_ADMIN: {0}"
    )]
    Namespace(#[source] SysError),
    /// A mount point could not be made.
    #[error("mount point {} for a granted bind source: {source}", path.display())]
    MountPoint {
        /// The mount point.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Mounts every pinned source that a bind mount of `spec` uses on
/// `dir/{prefix}N` (N from 0) and points those mounts there; returns the
/// mount points, to unmount before they are removed. Nothing is done, and
/// nothing returned, when no bind mount uses a pinned source.
///
/// The copies are taken first, in the mount namespace the sources were
/// opened in (open_tree copies only mounts of the caller's namespace);
/// then this thread moves to a namespace of its own ([`sys::private_mount_namespace`])
/// and attaches them there. So it must run on the thread that then
/// starts the runtime, before anything else on it leaves the namespace
/// the chain ran in.
pub fn attach(
    dir: &Path,
    prefix: &str,
    spec: &mut Spec,
    pins: &[PinnedSource],
) -> Result<Vec<PathBuf>, PinError> {
    let mut planned = Vec::new();
    for (index, mount) in spec.mounts().iter().flatten().enumerate() {
        if !is_bind(mount) {
            continue;
        }
        let Some(pin) = mount
            .source()
            .as_ref()
            .and_then(|source| pins.iter().find(|pin| pin.source == *source))
        else {
            continue;
        };
        let tree =
            sys::clone_tree_of(pin.fd.as_fd(), &pin.resolved).map_err(|source| PinError::Sys {
                pinned: pin.source.clone(),
                source,
            })?;
        let is_dir = nix::sys::stat::fstat(&pin.fd)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(|errno| PinError::Sys {
                pinned: pin.source.clone(),
                source: SysError {
                    call: "fstat",
                    path: pin.resolved.clone(),
                    errno,
                },
            })?;
        planned.push((index, pin, tree, is_dir));
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    sys::private_mount_namespace().map_err(PinError::Namespace)?;
    let mut mount_points = Vec::with_capacity(planned.len());
    let mounts = spec.mounts_mut().get_or_insert_default();
    for (n, (index, pin, tree, is_dir)) in planned.into_iter().enumerate() {
        let path = dir.join(format!("{prefix}{n}"));
        let target = mount_point(&path, is_dir)?;
        sys::attach_tree(tree.as_fd(), target.as_fd(), &path).map_err(|source| PinError::Sys {
            pinned: pin.source.clone(),
            source,
        })?;
        mount_points.push(path.clone());
        mounts[index].set_source(Some(path));
    }
    Ok(mount_points)
}

/// An empty directory (0700) or file (0600) at `path`, opened `O_PATH`
/// without following a link: one left by an earlier attempt on the same
/// bundle is used again if it is of the right kind.
fn mount_point(path: &Path, is_dir: bool) -> Result<std::os::fd::OwnedFd, PinError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| PinError::MountPoint {
        path: path.to_path_buf(),
        source,
    };
    let made = if is_dir {
        std::fs::DirBuilder::new().mode(0o700).create(path)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map(drop)
    };
    match made {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
        _ => {}
    }
    let target = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let kind = nix::sys::stat::fstat(&target)
        .map_err(|e| io(e.into()))?
        .st_mode
        & libc::S_IFMT;
    let wanted = if is_dir { libc::S_IFDIR } else { libc::S_IFREG };
    if kind != wanted {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists, and is not an empty mount point of the right kind",
        )));
    }
    Ok(target)
}
