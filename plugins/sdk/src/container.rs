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

    /// Whether the last of `on` and `off` among the options is `on`;
    /// `None` when neither appears.
    fn last(&self, on: &str, off: &str) -> Option<bool> {
        self.options
            .iter()
            .rev()
            .find(|o| *o == on || *o == off)
            .map(|o| o == on)
    }

    /// Whether the runtime remounts this mount with exactly the flags its
    /// options set. A bind is remounted only when some option sets a flag
    /// (`ro`, `nosuid`, `noatime`, ...); otherwise it keeps its source's
    /// flags, whatever they are on the host. Any other mount is made with
    /// its options' flags.
    pub fn sets_flags(&self) -> bool {
        const SETTING: [(&str, &str); 13] = [
            ("ro", "rw"),
            ("nosuid", "suid"),
            ("nodev", "dev"),
            ("noexec", "exec"),
            ("sync", "async"),
            ("mand", "nomand"),
            ("noatime", "atime"),
            ("nodiratime", "diratime"),
            ("relatime", "norelatime"),
            ("strictatime", "nostrictatime"),
            ("iversion", "noiversion"),
            ("lazytime", "nolazytime"),
            ("silent", "loud"),
        ];
        !self.is_bind()
            || self.options.iter().any(|o| o == "dirsync")
            || SETTING
                .iter()
                .any(|(on, off)| self.last(on, off) == Some(true))
    }

    /// Whether this mount is read-only, as the host judges it: options
    /// apply in order and the last wins (`ro,rw` is read-write); runc
    /// applies the recursive forms (`rro`, `rrw`) after the rest, and
    /// specgate's chroot isolation ignores them; a bind whose options set
    /// no flag keeps its source's, which may be writable. Read-only only
    /// when it is so under every runtime.
    pub fn is_read_only(&self) -> bool {
        let plain = self.sets_flags() && self.last("ro", "rw") == Some(true);
        let runc = self.last("rro", "rrw").unwrap_or(plain);
        runc && plain
    }
}
