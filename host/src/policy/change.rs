//! Checking and applying the changes hooks return.
//!
//! Each change is checked for form (absolute paths, known capabilities,
//! non-empty sets), classified as restricting or widening, tied to the
//! field of the spec it touches (for ownership), then applied.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCapabilities, LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, Mount as OciMount,
    Spec,
};

use super::bindings::types::{
    CapabilityChange, CapabilityTarget, IdMapping, Mount, MountChange, NamespaceChange,
    NamespaceKind,
};
use super::view::{cap_set, namespace_name, namespace_type};
use crate::spec::caps::{self, CapSet};

/// Whether a change can only take power away from the container, or can
/// give it some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Drops a capability, adds a namespace, makes a mount stricter,
    /// removes a mount.
    Restricting,
    /// Adds a capability, shares or joins a namespace, binds a host path,
    /// maps ids: allowed only by a grant.
    Widening(Grant),
}

/// The grant a widening change needs, as written in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `add-capabilities = ["CAP_..."]`.
    AddCapability(String),
    /// `bind-sources = ["/prefix"]`.
    BindSource(PathBuf),
    /// `mount-types = ["proc"]`: a kernel filesystem other than tmpfs.
    MountType(String),
    /// `mount-options = true`: loosening a mount's options.
    MountOptions,
    /// `host-namespaces = ["network"]`.
    HostNamespace(NamespaceKind),
    /// `join-namespaces = true`.
    JoinNamespaces,
    /// `id-mappings = true`.
    IdMappings,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::AddCapability(cap) => write!(f, "add-capabilities = [\"{cap}\"]"),
            Grant::BindSource(path) => write!(f, "bind-sources = [\"{}\"]", path.display()),
            Grant::MountType(kind) => write!(f, "mount-types = [\"{kind}\"]"),
            Grant::MountOptions => f.write_str("mount-options = true"),
            Grant::HostNamespace(kind) => {
                write!(f, "host-namespaces = [\"{}\"]", namespace_name(*kind))
            }
            Grant::JoinNamespaces => f.write_str("join-namespaces = true"),
            Grant::IdMappings => f.write_str("id-mappings = true"),
        }
    }
}

/// A field of the spec that a change touches: the first plugin to change
/// a field owns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// One capability in one set.
    Capability(CapSet, String),
    /// The mount at a destination.
    Mount(String),
    /// One kind of namespace.
    Namespace(&'static str),
    /// The user-namespace id mappings.
    IdMappings,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Capability(set, cap) => write!(f, "{cap} in the {} set", set.name()),
            Field::Mount(dest) => write!(f, "the mount at {dest}"),
            Field::Namespace(kind) => write!(f, "the {kind} namespace"),
            Field::IdMappings => f.write_str("the id mappings"),
        }
    }
}

/// A change, checked and classified, ready to apply.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The change as a person would write it.
    pub description: String,
    /// Restricting, or widening and the grant it needs.
    pub effect: Effect,
    /// The fields it touches.
    pub fields: Vec<Field>,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    AddMount(OciMount),
    RemoveMount(String),
    SetMountOptions(String, Vec<String>),
    Capabilities {
        add: bool,
        cap: oci_spec::runtime::Capability,
        sets: Vec<CapSet>,
    },
    Namespace(NamespaceKind, Option<Option<PathBuf>>),
    IdMappings(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>),
}

/// A change that is malformed or cannot apply to this spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The change as a person would write it.
    pub description: String,
    /// Why.
    pub reason: String,
}

type CheckResult = Result<Checked, Rejected>;

fn reject(description: String, reason: impl Into<String>) -> Rejected {
    Rejected {
        description,
        reason: reason.into(),
    }
}

/// Options that make a mount stricter: losing one loosens it.
const STRICT_OPTIONS: [&str; 4] = ["ro", "nosuid", "nodev", "noexec"];
/// Propagation that lets mounts leak between host and container.
const LEAKY_PROPAGATION: [&str; 2] = ["shared", "rshared"];
/// Filesystem kinds that start empty and expose nothing of the host.
const EMPTY_KINDS: [&str; 3] = ["tmpfs", "mqueue", "devpts"];

fn is_bind(kind: Option<&str>, options: &[String]) -> bool {
    kind == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind")
}

/// An absolute path with no `.` or `..` and no empty component.
fn clean_absolute(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path is not absolute");
    };
    if !rest.is_empty() && rest.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err("the path is not clean (it has `.`, `..` or `//`)");
    }
    Ok(())
}

fn check_options(options: &[String]) -> Result<(), String> {
    match options
        .iter()
        .find(|o| o.is_empty() || o.contains([',', '\0']) || o.trim() != o.as_str())
    {
        Some(bad) => Err(format!("mount option `{bad}` is malformed")),
        None => Ok(()),
    }
}

fn find_mount<'a>(spec: &'a Spec, destination: &str) -> Option<&'a OciMount> {
    spec.mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new(destination))
}

/// Checks a mount change against the spec.
pub fn check_mount(spec: &Spec, change: &MountChange) -> CheckResult {
    match change {
        MountChange::Add(mount) => check_add_mount(spec, mount),
        MountChange::Remove(destination) => {
            let description = format!("remove the mount at {destination}");
            if find_mount(spec, destination).is_none() {
                return Err(reject(description, "there is no mount at that destination"));
            }
            Ok(Checked {
                description,
                effect: Effect::Restricting,
                fields: vec![Field::Mount(destination.clone())],
                action: Action::RemoveMount(destination.clone()),
            })
        }
        MountChange::SetOptions(set) => {
            let description = format!(
                "set the options of the mount at {} to [{}]",
                set.destination,
                set.options.join(",")
            );
            let Some(existing) = find_mount(spec, &set.destination) else {
                return Err(reject(description, "there is no mount at that destination"));
            };
            check_options(&set.options).map_err(|r| reject(description.clone(), r))?;
            let before = existing.options().clone().unwrap_or_default();
            let kind = existing.typ().as_deref();
            if is_bind(kind, &before) != is_bind(kind, &set.options) {
                return Err(reject(
                    description,
                    "options cannot turn a mount into a bind mount or back",
                ));
            }
            let has = |opts: &[String], o: &str| opts.iter().any(|x| x == o);
            let loosens = STRICT_OPTIONS
                .iter()
                .any(|o| has(&before, o) && !has(&set.options, o))
                || LEAKY_PROPAGATION
                    .iter()
                    .any(|o| has(&set.options, o) && !has(&before, o));
            Ok(Checked {
                description,
                effect: if loosens {
                    Effect::Widening(Grant::MountOptions)
                } else {
                    Effect::Restricting
                },
                fields: vec![Field::Mount(set.destination.clone())],
                action: Action::SetMountOptions(set.destination.clone(), set.options.clone()),
            })
        }
    }
}

fn check_add_mount(spec: &Spec, mount: &Mount) -> CheckResult {
    let description = format!(
        "add a {} mount of {} at {} [{}]",
        mount.kind.as_deref().unwrap_or("default"),
        mount.source.as_deref().unwrap_or("nothing"),
        mount.destination,
        mount.options.join(",")
    );
    let fail = |reason: String| reject(description.clone(), reason);
    clean_absolute(&mount.destination).map_err(|r| fail(format!("destination: {r}")))?;
    if let Some(kind) = &mount.kind
        && (kind.is_empty()
            || !kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    {
        return Err(fail(format!("mount type `{kind}` is malformed")));
    }
    check_options(&mount.options).map_err(fail)?;
    if find_mount(spec, &mount.destination).is_some() {
        return Err(fail(
            "a mount already exists at that destination; remove it first".into(),
        ));
    }
    let bind = is_bind(mount.kind.as_deref(), &mount.options);
    let effect = if bind {
        let source = mount.source.as_deref().unwrap_or_default();
        clean_absolute(source).map_err(|r| fail(format!("bind source: {r}")))?;
        Effect::Widening(Grant::BindSource(PathBuf::from(source)))
    } else {
        match mount.kind.as_deref() {
            Some(kind) if EMPTY_KINDS.contains(&kind) => Effect::Restricting,
            Some(kind) => Effect::Widening(Grant::MountType(kind.to_string())),
            None => return Err(fail("a mount that is not a bind needs a type".into())),
        }
    };
    let mut oci = OciMount::default();
    oci.set_destination(PathBuf::from(&mount.destination));
    oci.set_typ(mount.kind.clone());
    oci.set_source(mount.source.as_ref().map(PathBuf::from));
    oci.set_options(Some(mount.options.clone()));
    Ok(Checked {
        description,
        effect,
        fields: vec![Field::Mount(mount.destination.clone())],
        action: Action::AddMount(oci),
    })
}

/// Checks a capability change.
pub fn check_capability(change: &CapabilityChange) -> CheckResult {
    let (add, target): (bool, &CapabilityTarget) = match change {
        CapabilityChange::Add(t) => (true, t),
        CapabilityChange::Drop(t) => (false, t),
    };
    let sets: Vec<CapSet> = target.sets.iter().map(|s| cap_set(*s)).collect();
    let description = format!(
        "{} {} {} the {} set{}",
        if add { "add" } else { "drop" },
        target.name,
        if add { "to" } else { "from" },
        sets.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        if sets.len() == 1 { "" } else { "s" },
    );
    let Some(cap) = caps::parse_canonical(&target.name) else {
        return Err(reject(
            description,
            format!("`{}` is not a known capability", target.name),
        ));
    };
    if sets.is_empty() {
        return Err(reject(description, "no capability set named"));
    }
    Ok(Checked {
        effect: if add {
            Effect::Widening(Grant::AddCapability(target.name.clone()))
        } else {
            Effect::Restricting
        },
        fields: sets
            .iter()
            .map(|s| Field::Capability(*s, target.name.clone()))
            .collect(),
        description,
        action: Action::Capabilities { add, cap, sets },
    })
}

fn has_namespace(spec: &Spec, kind: NamespaceKind) -> Option<&LinuxNamespace> {
    let typ = namespace_type(kind);
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|ns| ns.typ() == typ)
}

/// Checks a namespace change.
pub fn check_namespace(spec: &Spec, change: &NamespaceChange) -> CheckResult {
    match change {
        NamespaceChange::Create(kind) => {
            let name = namespace_name(*kind);
            let description = format!("create a new {name} namespace");
            let was_new = has_namespace(spec, *kind).is_some_and(|ns| ns.path().is_none());
            Ok(Checked {
                description,
                effect: Effect::Restricting,
                fields: if was_new {
                    vec![]
                } else {
                    vec![Field::Namespace(name)]
                },
                action: Action::Namespace(*kind, Some(None)),
            })
        }
        NamespaceChange::Join(join) => {
            let name = namespace_name(join.kind);
            let description = format!("join the {name} namespace at `{}`", join.path);
            clean_absolute(&join.path).map_err(|r| reject(description.clone(), r))?;
            Ok(Checked {
                description,
                effect: Effect::Widening(Grant::JoinNamespaces),
                fields: vec![Field::Namespace(name)],
                action: Action::Namespace(join.kind, Some(Some(PathBuf::from(&join.path)))),
            })
        }
        NamespaceChange::ShareHost(kind) => {
            let name = namespace_name(*kind);
            Ok(Checked {
                description: format!("share the host's {name} namespace"),
                effect: Effect::Widening(Grant::HostNamespace(*kind)),
                fields: vec![Field::Namespace(name)],
                action: Action::Namespace(*kind, None),
            })
        }
        NamespaceChange::MapIds(maps) => {
            let render = |m: &[IdMapping]| {
                m.iter()
                    .map(|m| format!("{}:{}:{}", m.container_id, m.host_id, m.size))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let description = format!(
                "map uids [{}] and gids [{}]",
                render(&maps.uid_mappings),
                render(&maps.gid_mappings)
            );
            let convert = |m: &[IdMapping]| -> Result<Vec<LinuxIdMapping>, String> {
                m.iter()
                    .map(|m| {
                        if m.size == 0 {
                            return Err("an id mapping has size 0".to_string());
                        }
                        LinuxIdMappingBuilder::default()
                            .container_id(m.container_id)
                            .host_id(m.host_id)
                            .size(m.size)
                            .build()
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            };
            let uids = convert(&maps.uid_mappings).map_err(|r| reject(description.clone(), r))?;
            let gids = convert(&maps.gid_mappings).map_err(|r| reject(description.clone(), r))?;
            Ok(Checked {
                description,
                effect: Effect::Widening(Grant::IdMappings),
                fields: vec![Field::IdMappings],
                action: Action::IdMappings(uids, gids),
            })
        }
    }
}

impl Checked {
    /// Applies the change to the spec.
    pub fn apply(self, spec: &mut Spec) {
        match self.action {
            Action::AddMount(mount) => spec.mounts_mut().get_or_insert_default().push(mount),
            Action::RemoveMount(destination) => {
                if let Some(mounts) = spec.mounts_mut() {
                    mounts.retain(|m| m.destination() != Path::new(&destination));
                }
            }
            Action::SetMountOptions(destination, options) => {
                if let Some(mount) = spec
                    .mounts_mut()
                    .iter_mut()
                    .flatten()
                    .find(|m| m.destination() == Path::new(&destination))
                {
                    mount.set_options(Some(options));
                }
            }
            Action::Capabilities { add, cap, sets } => {
                let process = spec.process_mut().get_or_insert_default();
                let mut all = process.capabilities().clone().unwrap_or_else(empty_caps);
                for set in sets {
                    let mut current = caps::get(&all, set);
                    if add {
                        current.insert(cap);
                    } else {
                        current.remove(&cap);
                    }
                    caps::put(&mut all, set, current);
                }
                process.set_capabilities(Some(all));
            }
            Action::Namespace(kind, target) => {
                let typ = namespace_type(kind);
                let linux = spec.linux_mut().get_or_insert_default();
                let namespaces = linux.namespaces_mut().get_or_insert_default();
                namespaces.retain(|ns| ns.typ() != typ);
                if let Some(path) = target {
                    let mut ns = LinuxNamespace::default();
                    ns.set_typ(typ);
                    ns.set_path(path);
                    namespaces.push(ns);
                }
            }
            Action::IdMappings(uids, gids) => {
                let linux = spec.linux_mut().get_or_insert_default();
                linux.set_uid_mappings(Some(uids));
                linux.set_gid_mappings(Some(gids));
            }
        }
    }
}

fn empty_caps() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    for set in CapSet::ALL {
        caps::put(&mut caps, set, HashSet::new());
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bindings::types::{CapabilitySet, MountOptions, NamespaceJoin};

    fn spec() -> Spec {
        crate::spec::default_spec("test", &["/bin/true".into()])
    }

    fn bind(source: &str, destination: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.into(),
            kind: Some("bind".into()),
            source: Some(source.into()),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn dropping_a_capability_restricts_and_applies() {
        let mut spec = spec();
        let checked = check_capability(&CapabilityChange::Drop(CapabilityTarget {
            name: "CAP_CHOWN".into(),
            sets: vec![CapabilitySet::Bounding, CapabilitySet::Effective],
        }))
        .unwrap();
        assert_eq!(checked.effect, Effect::Restricting);
        assert_eq!(
            checked.description,
            "drop CAP_CHOWN from the bounding, effective sets"
        );
        checked.apply(&mut spec);
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert!(!caps::names(&caps, CapSet::Bounding).contains(&"CAP_CHOWN".to_string()));
        assert!(caps::names(&caps, CapSet::Permitted).contains(&"CAP_CHOWN".to_string()));
    }

    #[test]
    fn unknown_capabilities_and_empty_sets_are_rejected() {
        let foo = check_capability(&CapabilityChange::Drop(CapabilityTarget {
            name: "CAP_FOO".into(),
            sets: vec![CapabilitySet::Bounding],
        }))
        .unwrap_err();
        assert_eq!(foo.reason, "`CAP_FOO` is not a known capability");
        let none = check_capability(&CapabilityChange::Add(CapabilityTarget {
            name: "CAP_NET_RAW".into(),
            sets: vec![],
        }))
        .unwrap_err();
        assert_eq!(none.reason, "no capability set named");
    }

    #[test]
    fn adding_a_capability_needs_a_grant() {
        let checked = check_capability(&CapabilityChange::Add(CapabilityTarget {
            name: "CAP_NET_ADMIN".into(),
            sets: vec![CapabilitySet::Bounding],
        }))
        .unwrap();
        assert_eq!(
            checked.effect,
            Effect::Widening(Grant::AddCapability("CAP_NET_ADMIN".into()))
        );
    }

    #[test]
    fn mount_destinations_must_be_clean_and_absolute() {
        for bad in ["relative/path", "", "/a/../b", "/a/./b", "/a//b"] {
            let mut mount = bind("/srv", bad, &["rbind"]);
            mount.kind = Some("tmpfs".into());
            let err = check_mount(&spec(), &MountChange::Add(mount)).unwrap_err();
            assert!(
                err.reason.starts_with("destination:"),
                "{bad}: {}",
                err.reason
            );
        }
    }

    #[test]
    fn bind_mounts_widen_and_tmpfs_restricts() {
        let bind = check_mount(
            &spec(),
            &MountChange::Add(bind("/srv/data", "/data", &["rbind"])),
        )
        .unwrap();
        assert_eq!(
            bind.effect,
            Effect::Widening(Grant::BindSource("/srv/data".into()))
        );
        let tmpfs = Mount {
            destination: "/scratch".into(),
            kind: Some("tmpfs".into()),
            source: Some("tmpfs".into()),
            options: vec!["size=1m".into()],
        };
        let checked = check_mount(&spec(), &MountChange::Add(tmpfs)).unwrap();
        assert_eq!(checked.effect, Effect::Restricting);
    }

    #[test]
    fn existing_destinations_are_not_silently_replaced() {
        let err = check_mount(
            &spec(),
            &MountChange::Add(bind("/srv", "/proc", &["rbind"])),
        )
        .unwrap_err();
        assert!(err.reason.contains("already exists"));
    }

    #[test]
    fn read_only_restricts_and_read_write_widens() {
        let mut spec = spec();
        check_mount(
            &spec,
            &MountChange::Add(bind("/srv", "/srv", &["rbind", "rw"])),
        )
        .unwrap()
        .apply(&mut spec);
        let ro = check_mount(
            &spec,
            &MountChange::SetOptions(MountOptions {
                destination: "/srv".into(),
                options: vec!["rbind".into(), "ro".into()],
            }),
        )
        .unwrap();
        assert_eq!(ro.effect, Effect::Restricting);
        ro.apply(&mut spec);
        let rw = check_mount(
            &spec,
            &MountChange::SetOptions(MountOptions {
                destination: "/srv".into(),
                options: vec!["rbind".into(), "rw".into()],
            }),
        )
        .unwrap();
        assert_eq!(rw.effect, Effect::Widening(Grant::MountOptions));
    }

    #[test]
    fn namespace_joins_need_an_absolute_path() {
        let err = check_namespace(
            &spec(),
            &NamespaceChange::Join(NamespaceJoin {
                kind: NamespaceKind::Network,
                path: String::new(),
            }),
        )
        .unwrap_err();
        assert_eq!(err.reason, "the path is empty");
    }

    #[test]
    fn sharing_the_host_namespace_removes_it() {
        let mut spec = spec();
        let checked =
            check_namespace(&spec, &NamespaceChange::ShareHost(NamespaceKind::Network)).unwrap();
        assert_eq!(
            checked.effect,
            Effect::Widening(Grant::HostNamespace(NamespaceKind::Network))
        );
        checked.apply(&mut spec);
        assert!(has_namespace(&spec, NamespaceKind::Network).is_none());
        check_namespace(&spec, &NamespaceChange::Create(NamespaceKind::Network))
            .unwrap()
            .apply(&mut spec);
        assert!(has_namespace(&spec, NamespaceKind::Network).is_some());
    }
}
