//! What an operator allows one plugin beyond restricting.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

use super::change::Grant;
use super::view::namespace_name;

/// The widening changes a plugin may make. Empty by default: a plugin may
/// only restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Capabilities it may add.
    pub add_capabilities: Vec<String>,
    /// Host path prefixes it may bind into the container.
    pub bind_sources: Vec<PathBuf>,
    /// Filesystem types other than tmpfs, mqueue and devpts it may mount.
    pub mount_types: Vec<String>,
    /// Whether it may loosen a mount's options.
    pub mount_options: bool,
    /// Host namespaces (`network`, `pid`, ...) it may share.
    pub host_namespaces: Vec<String>,
    /// Whether it may join namespaces by path.
    pub join_namespaces: bool,
    /// Whether it may set user-namespace id mappings.
    pub id_mappings: bool,
}

impl Grants {
    /// Whether these grants allow a widening change.
    pub fn allow(&self, grant: &Grant) -> bool {
        match grant {
            Grant::AddCapability(cap) => self.add_capabilities.iter().any(|c| c == cap),
            Grant::BindSource(source) => self.allows_bind(source),
            Grant::MountType(kind) => self.mount_types.iter().any(|k| k == kind),
            Grant::MountOptions => self.mount_options,
            Grant::HostNamespace(kind) => self
                .host_namespaces
                .iter()
                .any(|k| k == namespace_name(*kind)),
            Grant::JoinNamespaces => self.join_namespaces,
            Grant::IdMappings => self.id_mappings,
        }
    }

    /// A source is allowed when, with its links resolved, it lies under a
    /// granted prefix, also resolved: neither `..` nor a symlink can lead
    /// a granted path elsewhere. A source that cannot be resolved (a
    /// dangling link, a missing path) is not allowed. This is the first
    /// look; what is mounted is decided by [`Grants::pin_bind`].
    fn allows_bind(&self, source: &Path) -> bool {
        self.granting_prefix(source).is_ok()
    }

    /// The source resolved, and the granted prefix (resolved) it lies
    /// under.
    fn granting_prefix(&self, source: &Path) -> Result<(PathBuf, PathBuf), String> {
        let resolved = std::fs::canonicalize(source)
            .map_err(|e| format!("bind source {}: cannot be resolved: {e}", source.display()))?;
        self.bind_sources
            .iter()
            .filter_map(|prefix| std::fs::canonicalize(prefix).ok())
            .find(|prefix| resolved.starts_with(prefix))
            .map(|prefix| (resolved.clone(), prefix))
            .ok_or_else(|| {
                format!(
                    "bind source {} resolves to {}, under no granted prefix",
                    source.display(),
                    resolved.display()
                )
            })
    }

    /// Resolves a granted bind source once, and opens what it resolves
    /// to: the container gets exactly the object opened here, whatever
    /// happens to the path afterwards (see `runtime::pin`).
    ///
    /// The source's links are resolved, and the result must lie under a
    /// granted prefix (also resolved). Then the prefix is opened, and the
    /// rest of the path below it, both with no link allowed anywhere
    /// (`RESOLVE_NO_SYMLINKS`) and the rest kept beneath the prefix by the
    /// kernel (`RESOLVE_BENEATH`): a link or directory swapped in between
    /// the resolution and the opening fails the open, and the change is
    /// refused, rather than leading it elsewhere.
    pub fn pin_bind(&self, source: &Path) -> Result<PinnedSource, String> {
        let (resolved, prefix) = self.granting_prefix(source)?;
        let raced = |e: nix::Error| match e {
            nix::Error::ELOOP | nix::Error::EXDEV | nix::Error::ENOENT | nix::Error::ENOTDIR => {
                format!(
                    "bind source {} changed while it was checked (it no longer resolves to {} \
                     without links); refused",
                    source.display(),
                    resolved.display()
                )
            }
            e => format!("bind source {}: cannot be opened: {e}", source.display()),
        };
        let how = |resolve: ResolveFlag| {
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                .resolve(resolve | ResolveFlag::RESOLVE_NO_SYMLINKS)
        };
        let prefix_fd =
            nix::fcntl::openat2(nix::fcntl::AT_FDCWD, &prefix, how(ResolveFlag::empty()))
                .map_err(raced)?;
        let below = resolved
            .strip_prefix(&prefix)
            .ok()
            .filter(|rest| !rest.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fd = nix::fcntl::openat2(&prefix_fd, below, how(ResolveFlag::RESOLVE_BENEATH))
            .map_err(raced)?;
        Ok(PinnedSource {
            source: source.to_path_buf(),
            resolved,
            fd,
        })
    }
}

/// A granted bind source, opened once when its change was checked: the
/// runtime mounts this object, never the path again.
#[derive(Debug)]
pub struct PinnedSource {
    /// The source as the change wrote it.
    pub source: PathBuf,
    /// What it resolved to when it was opened.
    pub resolved: PathBuf,
    /// The object, opened `O_PATH`.
    pub fd: OwnedFd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_granted_by_default() {
        let grants = Grants::default();
        assert!(!grants.allow(&Grant::AddCapability("CAP_NET_ADMIN".into())));
        assert!(!grants.allow(&Grant::BindSource("/".into())));
        assert!(!grants.allow(&Grant::JoinNamespaces));
    }

    #[test]
    fn bind_prefixes_match_whole_components_after_resolving_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::create_dir(dir.path().join("database")).unwrap();
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let grants = Grants {
            bind_sources: vec![data.clone()],
            ..Grants::default()
        };
        assert!(grants.allow(&Grant::BindSource(data.join("sub"))));
        assert!(!grants.allow(&Grant::BindSource(dir.path().join("database"))));
        assert!(!grants.allow(&Grant::BindSource(data.join("escape"))));
        // A dangling link, or a missing path, is never granted.
        std::os::unix::fs::symlink(data.join("nowhere"), data.join("dangling")).unwrap();
        assert!(!grants.allow(&Grant::BindSource(data.join("dangling"))));
        assert!(!grants.allow(&Grant::BindSource(data.join("missing"))));
    }

    #[test]
    fn a_pinned_source_is_the_object_the_path_resolved_to() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("real")).unwrap();
        std::os::unix::fs::symlink("real", data.join("link")).unwrap();
        let grants = Grants {
            bind_sources: vec![data.clone()],
            ..Grants::default()
        };
        let pinned = grants.pin_bind(&data.join("link")).unwrap();
        assert_eq!(pinned.resolved, data.canonicalize().unwrap().join("real"));
        let opened = nix::sys::stat::fstat(&pinned.fd).unwrap();
        let real = std::fs::metadata(data.join("real")).unwrap();
        assert_eq!((opened.st_dev, opened.st_ino), (real.dev(), real.ino()));
        // The prefix itself may be bound.
        assert_eq!(
            grants.pin_bind(&data).unwrap().resolved,
            data.canonicalize().unwrap()
        );
        // A link out of the prefix is refused, naming where it leads.
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let err = grants.pin_bind(&data.join("escape")).unwrap_err();
        assert!(
            err.ends_with("resolves to /etc, under no granted prefix"),
            "{err}"
        );
    }
}
