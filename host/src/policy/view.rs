//! The read-only view of a container that hooks receive, built from the
//! spec as it stands after the user's options and earlier plugins.

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::bindings::types::{
    CapabilitySet, CapabilitySets, Container, IdMapping, Mount, Namespace, NamespaceKind,
};
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
