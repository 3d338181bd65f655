//! Helpers that build the typed changes a hook returns.

use crate::types::{
    CapabilityChange, CapabilitySet, CapabilityTarget, IdMapping, IdMappings, Mount, MountChange,
    MountOptions, NamespaceChange, NamespaceJoin, NamespaceKind,
};

/// Every capability set: dropping from all of them removes a capability
/// for good.
pub const ALL_SETS: [CapabilitySet; 5] = [
    CapabilitySet::Bounding,
    CapabilitySet::Effective,
    CapabilitySet::Inheritable,
    CapabilitySet::Permitted,
    CapabilitySet::Ambient,
];

/// The sets a capability must be in to be usable by a root process,
/// without passing it across `execve` to unprivileged programs.
pub const USABLE_SETS: [CapabilitySet; 3] = [
    CapabilitySet::Bounding,
    CapabilitySet::Effective,
    CapabilitySet::Permitted,
];

/// Drops a capability from every set.
pub fn drop_capability(name: &str) -> CapabilityChange {
    CapabilityChange::Drop(CapabilityTarget {
        name: crate::canonical_capability(name),
        sets: ALL_SETS.to_vec(),
    })
}

/// Adds a capability to the bounding, effective and permitted sets.
/// Widening: the operator must grant it to the plugin.
pub fn add_capability(name: &str) -> CapabilityChange {
    CapabilityChange::Add(CapabilityTarget {
        name: crate::canonical_capability(name),
        sets: USABLE_SETS.to_vec(),
    })
}

/// Adds a mount.
pub fn add_mount(mount: Mount) -> MountChange {
    MountChange::Add(mount)
}

/// Adds a tmpfs at `destination` with the given options. Restricting
/// only with `nosuid` and `nodev` among them: a tmpfs that allows
/// set-user-id programs or devices needs the `mount-options` grant.
pub fn add_tmpfs(destination: &str, options: &[&str]) -> MountChange {
    MountChange::Add(Mount {
        destination: destination.to_string(),
        kind: Some("tmpfs".to_string()),
        source: Some("tmpfs".to_string()),
        options: options.iter().map(|o| o.to_string()).collect(),
    })
}

/// Bind-mounts a host path into the container, read-only (its submounts
/// too) unless `writable`, refusing set-user-id programs and devices.
/// Widening: the operator must grant the source prefix to the plugin; a
/// bind that allowed set-user-id programs or devices would need
/// `mount-options` too.
pub fn add_bind_mount(source: &str, destination: &str, writable: bool) -> MountChange {
    let mut options = vec!["rbind", "nosuid", "nodev"];
    options.extend(if writable {
        &["rw"][..]
    } else {
        &["ro", "rro"][..]
    });
    MountChange::Add(Mount {
        destination: destination.to_string(),
        kind: Some("bind".to_string()),
        source: Some(source.to_string()),
        options: options.into_iter().map(String::from).collect(),
    })
}

/// Removes the mount at `destination`.
pub fn remove_mount(destination: &str) -> MountChange {
    MountChange::Remove(destination.to_string())
}

/// Replaces the options of the mount at `destination`.
pub fn set_mount_options(destination: &str, options: Vec<String>) -> MountChange {
    MountChange::SetOptions(MountOptions {
        destination: destination.to_string(),
        options,
    })
}

/// Gives the container a new namespace of this kind.
pub fn create_namespace(kind: NamespaceKind) -> NamespaceChange {
    NamespaceChange::Create(kind)
}

/// Places the container in an existing namespace. Widening.
pub fn join_namespace(kind: NamespaceKind, path: &str) -> NamespaceChange {
    NamespaceChange::Join(NamespaceJoin {
        kind,
        path: path.to_string(),
    })
}

/// Shares the host's namespace of this kind. Widening.
pub fn share_host_namespace(kind: NamespaceKind) -> NamespaceChange {
    NamespaceChange::ShareHost(kind)
}

/// Replaces the user-namespace id mappings. Widening.
pub fn map_ids(uid_mappings: Vec<IdMapping>, gid_mappings: Vec<IdMapping>) -> NamespaceChange {
    NamespaceChange::MapIds(IdMappings {
        uid_mappings,
        gid_mappings,
    })
}

/// A path cleaned lexically as the host cleans the spec's destinations
/// (`.`, empty components and a trailing `/` dropped, `..` taking the
/// previous component away), so that a plugin matches mounts and lists
/// as the host does: the host refuses any other spelling in a change.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}
