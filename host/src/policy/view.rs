//! The read-only view of a container that hooks receive, built from the
//! spec as it stands after the user's options and earlier plugins.

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::bindings::types::{
    CapabilityChange, CapabilitySet, CapabilitySets, Container, IdMapping, Mount, MountChange,
    Namespace, NamespaceChange, NamespaceKind,
};
use super::limits::ITEM_COST;
use crate::spec::caps::{self, CapSet};

/// Builds the view of `spec` given to every hook.
pub fn container(spec: &Spec, id: &str) -> Container {
    let process = spec.process().as_ref();
    let linux = spec.linux().as_ref();
    let caps = process
        .and_then(|p| p.capabilities().clone())
        .map(|c| CapabilitySets {
            bounding: caps::names(&c, CapSet::Bounding),
            effective: caps::names(&c, CapSet::Effective),
            inheritable: caps::names(&c, CapSet::Inheritable),
            permitted: caps::names(&c, CapSet::Permitted),
            ambient: caps::names(&c, CapSet::Ambient),
        })
        .unwrap_or(CapabilitySets {
            bounding: vec![],
            effective: vec![],
            inheritable: vec![],
            permitted: vec![],
            ambient: vec![],
        });
    let mut annotations: Vec<(String, String)> = spec
        .annotations()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.sort();
    Container {
        id: id.to_string(),
        args: process.and_then(|p| p.args().clone()).unwrap_or_default(),
        env: process.and_then(|p| p.env().clone()).unwrap_or_default(),
        cwd: process
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_else(|| "/".into()),
        uid: process.map(|p| p.user().uid()).unwrap_or(0),
        gid: process.map(|p| p.user().gid()).unwrap_or(0),
        hostname: spec.hostname().clone(),
        readonly_rootfs: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        annotations,
        mounts: spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| Mount {
                destination: m.destination().display().to_string(),
                kind: m.typ().clone(),
                source: m.source().as_ref().map(|s| s.display().to_string()),
                options: m.options().clone().unwrap_or_default(),
            })
            .collect(),
        capabilities: caps,
        namespaces: linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .map(|ns| Namespace {
                kind: namespace_kind(ns.typ()),
                path: ns.path().as_ref().map(|p| p.display().to_string()),
            })
            .collect(),
        uid_mappings: linux
            .map(|l| id_mappings(l.uid_mappings()))
            .unwrap_or_default(),
        gid_mappings: linux
            .map(|l| id_mappings(l.gid_mappings()))
            .unwrap_or_default(),
    }
}

fn id_mappings(mappings: &Option<Vec<LinuxIdMapping>>) -> Vec<IdMapping> {
    mappings
        .iter()
        .flatten()
        .map(|m| IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        })
        .collect()
}

/// The contract's namespace kind for an OCI namespace type.
pub fn namespace_kind(typ: LinuxNamespaceType) -> NamespaceKind {
    match typ {
        LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
        LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
        LinuxNamespaceType::Mount => NamespaceKind::Mount,
        LinuxNamespaceType::Network => NamespaceKind::Network,
        LinuxNamespaceType::Pid => NamespaceKind::Pid,
        LinuxNamespaceType::Time => NamespaceKind::Time,
        LinuxNamespaceType::User => NamespaceKind::User,
        LinuxNamespaceType::Uts => NamespaceKind::Uts,
    }
}

/// The OCI namespace type for a contract namespace kind.
pub fn namespace_type(kind: NamespaceKind) -> LinuxNamespaceType {
    match kind {
        NamespaceKind::Cgroup => LinuxNamespaceType::Cgroup,
        NamespaceKind::Ipc => LinuxNamespaceType::Ipc,
        NamespaceKind::Mount => LinuxNamespaceType::Mount,
        NamespaceKind::Network => LinuxNamespaceType::Network,
        NamespaceKind::Pid => LinuxNamespaceType::Pid,
        NamespaceKind::Time => LinuxNamespaceType::Time,
        NamespaceKind::User => LinuxNamespaceType::User,
        NamespaceKind::Uts => LinuxNamespaceType::Uts,
    }
}

/// The namespace kind's name, as in messages and settings.
pub fn namespace_name(kind: NamespaceKind) -> &'static str {
    match kind {
        NamespaceKind::Cgroup => "cgroup",
        NamespaceKind::Ipc => "ipc",
        NamespaceKind::Mount => "mount",
        NamespaceKind::Network => "network",
        NamespaceKind::Pid => "pid",
        NamespaceKind::Time => "time",
        NamespaceKind::User => "user",
        NamespaceKind::Uts => "uts",
    }
}

/// The spec's capability set for a contract capability set.
pub fn cap_set(set: CapabilitySet) -> CapSet {
    match set {
        CapabilitySet::Bounding => CapSet::Bounding,
        CapabilitySet::Effective => CapSet::Effective,
        CapabilitySet::Inheritable => CapSet::Inheritable,
        CapabilitySet::Permitted => CapSet::Permitted,
        CapabilitySet::Ambient => CapSet::Ambient,
    }
}

/// What a value passed to or from a plugin weighs against the limits on
/// views and changes ([`Limits::view_bytes`], [`Limits::changes_bytes`]):
/// the length of every string, plus [`ITEM_COST`] for every string, list
/// element and record, so that neither long strings nor many empty ones
/// come free.
///
/// [`Limits::view_bytes`]: super::limits::Limits::view_bytes
/// [`Limits::changes_bytes`]: super::limits::Limits::changes_bytes
pub trait Weight {
    /// The value's weight in bytes.
    fn weight(&self) -> usize;
}

impl Weight for String {
    fn weight(&self) -> usize {
        ITEM_COST.saturating_add(self.len())
    }
}

impl<T: Weight> Weight for Option<T> {
    fn weight(&self) -> usize {
        self.as_ref().map_or(0, Weight::weight)
    }
}

impl<T: Weight> Weight for [T] {
    fn weight(&self) -> usize {
        self.iter()
            .fold(ITEM_COST, |sum, item| sum.saturating_add(item.weight()))
    }
}

impl<T: Weight> Weight for Vec<T> {
    fn weight(&self) -> usize {
        self.as_slice().weight()
    }
}

impl<A: Weight, B: Weight> Weight for (A, B) {
    fn weight(&self) -> usize {
        self.0.weight().saturating_add(self.1.weight())
    }
}

/// Records of numbers and enums: one item each.
macro_rules! flat {
    ($($t:ty),*) => {$(
        impl Weight for $t {
            fn weight(&self) -> usize {
                ITEM_COST
            }
        }
    )*};
}
flat!(IdMapping, CapabilitySet, NamespaceKind);

impl Weight for Mount {
    fn weight(&self) -> usize {
        [
            ITEM_COST,
            self.destination.weight(),
            self.kind.weight(),
            self.source.weight(),
            self.options.weight(),
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}

impl Weight for Namespace {
    fn weight(&self) -> usize {
        ITEM_COST.saturating_add(self.path.weight())
    }
}

impl Weight for Container {
    fn weight(&self) -> usize {
        let caps = &self.capabilities;
        [
            ITEM_COST,
            self.id.weight(),
            self.args.weight(),
            self.env.weight(),
            self.cwd.weight(),
            self.hostname.weight(),
            self.annotations.weight(),
            self.mounts.weight(),
            caps.bounding.weight(),
            caps.effective.weight(),
            caps.inheritable.weight(),
            caps.permitted.weight(),
            caps.ambient.weight(),
            self.namespaces.weight(),
            self.uid_mappings.weight(),
            self.gid_mappings.weight(),
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}

impl Weight for MountChange {
    fn weight(&self) -> usize {
        ITEM_COST.saturating_add(match self {
            MountChange::Add(mount) => mount.weight(),
            MountChange::Remove(destination) => destination.weight(),
            MountChange::SetOptions(set) => set
                .destination
                .weight()
                .saturating_add(set.options.weight()),
        })
    }
}

impl Weight for CapabilityChange {
    fn weight(&self) -> usize {
        let (CapabilityChange::Add(target) | CapabilityChange::Drop(target)) = self;
        ITEM_COST
            .saturating_add(target.name.weight())
            .saturating_add(target.sets.weight())
    }
}

impl Weight for NamespaceChange {
    fn weight(&self) -> usize {
        ITEM_COST.saturating_add(match self {
            NamespaceChange::Create(_) | NamespaceChange::ShareHost(_) => ITEM_COST,
            NamespaceChange::Join(join) => join.path.weight(),
            NamespaceChange::MapIds(maps) => maps
                .uid_mappings
                .weight()
                .saturating_add(maps.gid_mappings.weight()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_and_long_ones_both_weigh() {
        let empty = MountChange::SetOptions(super::super::bindings::types::MountOptions {
            destination: String::new(),
            options: vec![String::new(); 1000],
        });
        assert!(empty.weight() > 1000 * ITEM_COST);
        let long = MountChange::Remove("x".repeat(1 << 20));
        assert!(long.weight() > 1 << 20);
        let spec = crate::spec::default_spec("weight", &["/bin/true".into()]);
        let view = container(&spec, "weight");
        let base = view.weight();
        let mut bigger = view.clone();
        bigger.env.push("A=".repeat(1000));
        assert_eq!(bigger.weight(), base + ITEM_COST + 2000);
    }
}
