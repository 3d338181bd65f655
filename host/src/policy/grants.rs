//! What an operator allows one plugin beyond restricting.

use std::path::{Path, PathBuf};

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
    /// a granted path elsewhere. A source that does not exist is compared
    /// as written (it was already refused if it had `..`), and the bind
    /// itself then fails.
    fn allows_bind(&self, source: &Path) -> bool {
        let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let source = resolve(source);
        self.bind_sources
            .iter()
            .any(|prefix| source.starts_with(resolve(prefix)))
    }
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
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(dir.path().join("database")).unwrap();
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let grants = Grants {
            bind_sources: vec![data.clone()],
            ..Grants::default()
        };
        assert!(grants.allow(&Grant::BindSource(data.join("sub"))));
        assert!(!grants.allow(&Grant::BindSource(dir.path().join("database"))));
        assert!(!grants.allow(&Grant::BindSource(data.join("escape"))));
    }
}
