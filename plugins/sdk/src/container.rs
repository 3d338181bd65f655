//! Questions plugins ask of the container view.

use crate::types::{CapabilitySet, Container, Mount, Namespace, NamespaceKind};

impl Container {
    /// The capabilities in one set.
    pub fn capability_set(&self, set: CapabilitySet) -> &[String] {
        let caps = &self.capabilities;
        match set {
            CapabilitySet::Bounding => &caps.bounding,
            CapabilitySet::Effective => &caps.effective,
            CapabilitySet::Inheritable => &caps.inheritable,
            CapabilitySet::Permitted => &caps.permitted,
            CapabilitySet::Ambient => &caps.ambient,
        }
    }

    /// The sets that hold a capability (given with or without `CAP_`).
    pub fn sets_holding(&self, name: &str) -> Vec<CapabilitySet> {
        let name = crate::canonical_capability(name);
        crate::ALL_SETS
            .into_iter()
            .filter(|set| self.capability_set(*set).contains(&name))
            .collect()
    }

    /// Whether a capability is in any set.
    pub fn has_capability(&self, name: &str) -> bool {
        !self.sets_holding(name).is_empty()
    }

    /// The container's namespace of a kind; none when it shares the host's.
    pub fn namespace(&self, kind: NamespaceKind) -> Option<&Namespace> {
        self.namespaces.iter().find(|ns| ns.kind == kind)
    }

    /// Whether the container gets a new namespace of this kind (neither
    /// the host's nor one joined by path).
    pub fn has_new_namespace(&self, kind: NamespaceKind) -> bool {
        self.namespace(kind).is_some_and(|ns| ns.path.is_none())
    }

    /// The bind mounts, which expose host paths.
    pub fn bind_mounts(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter().filter(|m| m.is_bind())
    }

    /// The value of an annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Mount {
    /// Whether this mount binds a host path.
    pub fn is_bind(&self) -> bool {
        self.kind.as_deref() == Some("bind")
            || self.options.iter().any(|o| o == "bind" || o == "rbind")
    }

    /// Whether this mount is read-only.
    pub fn is_read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}
