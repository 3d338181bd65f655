//! Checking and applying the changes hooks return.
//!
//! Each change is checked for form (absolute paths, known capabilities,
//! non-empty sets), classified as restricting or widening, tied to the
//! field of the spec it touches (for ownership), then applied.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxCapabilities, LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, Mount as OciMount,
    Spec,
};

use super::bindings::types::{
    CapabilityChange, CapabilityTarget, IdMapping, MountChange, NamespaceChange, NamespaceKind,
};
use super::reach;
use super::view::{cap_set, namespace_name, namespace_type};
use crate::spec::caps::{self, CapSet};

/// Whether a change can only take power away from the container, or can
/// give it some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Drops a capability, adds a namespace, or changes mounts so that no
    /// path in the container reaches more than before (see
    /// [`super::reach`]).
    Restricting,
    /// Adds a capability, shares or joins a namespace, binds a host path,
    /// maps ids, loosens or uncovers a mount: allowed only by every one of
    /// these grants (never empty).
    Widening(Vec<Grant>),
}

impl Effect {
    /// The first grant a widening change needs that `allowed` does not
    /// give; `None` when every one is given (or none is needed).
    pub fn missing(&self, allowed: impl Fn(&Grant) -> bool) -> Option<&Grant> {
        match self {
            Effect::Restricting => None,
            Effect::Widening(needs) => needs.iter().find(|g| !allowed(g)),
        }
    }

    /// The grants that allow it, as written in a policy file, for audit
    /// records and traces; `None` for a restricting change.
    pub fn grants(&self) -> Option<String> {
        match self {
            Effect::Restricting => None,
            Effect::Widening(needs) => Some(
                needs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }
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
    /// `mount-options = true`: loosening a mount's effective flags,
    /// uncovering what a mount hides, adding a mount that allows
    /// set-user-id programs or devices, an option the host does not model.
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
    /// The mount at a destination, by its clean path: two spellings of
    /// one destination are one field.
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
    /// Restricting, or widening and the grants it needs.
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

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that a
/// description can never break a line or drive a terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Refuses text holding control characters, naming the first.
fn no_controls(what: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "{what} holds a control character (U+{:04X})",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// An absolute path with no `.` or `..` and no empty component.
fn clean_absolute(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    no_controls("the path", path)?;
    if !path.starts_with('/') {
        return Err("the path is not absolute".into());
    }
    if crate::spec::path::clean(path) != path {
        return Err("the path is not clean (it has `.`, `..`, `//` or a trailing `/`)".into());
    }
    Ok(())
}

fn check_options(options: &[String]) -> Result<(), String> {
    for option in options {
        no_controls(&format!("mount option `{}`", printable(option)), option)?;
    }
    // The runtimes pass MS_REMOUNT to mount(2): no new mount is made, and
    // the one already at the destination (the rootfs, a host submount of
    // the default rootfs, the host's /proc) changes its flags instead.
    if options.iter().any(|o| o == "remount") {
        return Err(
            "mount option `remount` changes the mount already at the destination instead of making this one".into(),
        );
    }
    match options
        .iter()
        .find(|o| o.is_empty() || o.contains([',', '\0']) || o.trim() != o.as_str())
    {
        Some(bad) => Err(format!("mount option `{bad}` is malformed")),
        None => Ok(()),
    }
}

/// Whether a spec's mount is at `destination` (clean), however the spec
/// spells it.
fn at(mount: &OciMount, destination: &str) -> bool {
    crate::spec::path::clean(&mount.destination().to_string_lossy()) == destination
}

fn find_mount<'a>(mounts: &'a [OciMount], destination: &str) -> Option<&'a OciMount> {
    mounts.iter().find(|m| at(m, destination))
}

/// Applies a mount action to a list of mounts: what [`Checked::apply`]
/// does, and what the model judges.
fn apply_mounts(mounts: &mut Vec<OciMount>, action: &Action) {
    match action {
        Action::AddMount(mount) => mounts.push(mount.clone()),
        Action::RemoveMount(destination) => mounts.retain(|m| !at(m, destination)),
        Action::SetMountOptions(destination, options) => {
            if let Some(mount) = mounts.iter_mut().find(|m| at(m, destination)) {
                mount.set_options(Some(options.clone()));
            }
        }
        _ => {}
    }
}

/// Checks a mount change against the spec.
pub fn check_mount(spec: &Spec, change: &MountChange) -> CheckResult {
    let (description, action) = mount_action(change)?;
    judge_mount(spec, description, action)
}

/// Checks a mount change's form, independent of any spec, and turns it
/// into an action.
fn mount_action(change: &MountChange) -> Result<(String, Action), Rejected> {
    match change {
        MountChange::Remove(destination) => {
            let description = format!("remove the mount at {}", printable(destination));
            clean_absolute(destination)
                .map_err(|r| reject(description.clone(), format!("destination: {r}")))?;
            Ok((description, Action::RemoveMount(destination.clone())))
        }
        MountChange::SetOptions(set) => {
            let description = format!(
                "set the options of the mount at {} to [{}]",
                printable(&set.destination),
                printable(&set.options.join(","))
            );
            clean_absolute(&set.destination)
                .map_err(|r| reject(description.clone(), format!("destination: {r}")))?;
            check_options(&set.options).map_err(|r| reject(description.clone(), r))?;
            Ok((
                description,
                Action::SetMountOptions(set.destination.clone(), set.options.clone()),
            ))
        }
        MountChange::Add(mount) => {
            let description = format!(
                "add a {} mount of {} at {} [{}]",
                printable(mount.kind.as_deref().unwrap_or("default")),
                printable(mount.source.as_deref().unwrap_or("nothing")),
                printable(&mount.destination),
                printable(&mount.options.join(","))
            );
            let fail = |reason: String| reject(description.clone(), reason);
            clean_absolute(&mount.destination).map_err(|r| fail(format!("destination: {r}")))?;
            // A mount on `/` would be judged to hide every path, while a
            // runtime mounts the rootfs itself there and hides nothing.
            if mount.destination == "/" {
                return Err(fail(
                    "destination: a mount cannot replace the root filesystem".into(),
                ));
            }
            if let Some(source) = &mount.source {
                no_controls("the source", source).map_err(&fail)?;
            }
            if let Some(kind) = &mount.kind
                && (kind.is_empty()
                    || !kind
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
            {
                return Err(fail(format!(
                    "mount type `{}` is malformed",
                    printable(kind)
                )));
            }
            check_options(&mount.options).map_err(&fail)?;
            let entry = reach::Entry {
                destination: mount.destination.clone(),
                kind: mount.kind.clone(),
                source: mount.source.clone(),
                options: mount.options.clone(),
            };
            if entry.is_bind() {
                let source = mount.source.as_deref().unwrap_or_default();
                clean_absolute(source).map_err(|r| fail(format!("bind source: {r}")))?;
            } else if mount.kind.is_none() {
                return Err(fail("a mount that is not a bind needs a type".into()));
            }
            let mut oci = OciMount::default();
            oci.set_destination(PathBuf::from(&mount.destination));
            oci.set_typ(mount.kind.clone());
            // A filesystem without a source takes its type as one, as
            // runc's and podman's defaults do: /proc/mounts then shows
            // `tmpfs`, not an empty field.
            let source = match &mount.source {
                None if !entry.is_bind() => mount.kind.clone(),
                source => source.clone(),
            };
            oci.set_source(source.map(PathBuf::from));
            oci.set_options(Some(mount.options.clone()));
            Ok((description, Action::AddMount(oci)))
        }
    }
}

/// Checks a mount action against the spec as it stands, and classifies
/// it by what the container reaches before and after.
fn judge_mount(spec: &Spec, description: String, action: Action) -> CheckResult {
    let before: &[OciMount] = spec.mounts().as_deref().unwrap_or_default();
    let mut needs = Vec::new();
    // A tmpfs the container's user may write, over a path a set-user-id
    // program reads, lets that user plant what the program trusts: only
    // root may be given one without a grant.
    let as_user = spec.process().as_ref().is_some_and(|p| p.user().uid() != 0);
    let user_tmpfs = |entry: &reach::Entry| {
        as_user && entry.kind.as_deref() == Some("tmpfs") && entry.writable_by_users()
    };
    let destination = match &action {
        Action::AddMount(mount) => {
            let destination = mount.destination().to_string_lossy().into_owned();
            if find_mount(before, &destination).is_some() {
                return Err(reject(
                    description,
                    "a mount already exists at that destination; remove it first",
                ));
            }
            let entry = reach::Entry::from_oci(mount);
            match entry.object() {
                reach::Object::Bind { source, .. } => {
                    needs.push(Grant::BindSource(PathBuf::from(source)));
                }
                reach::Object::Kernel { kind, .. } => needs.push(Grant::MountType(kind)),
                reach::Object::Fresh { .. } | reach::Object::Root => {}
            }
            // A new mount must refuse set-user-id programs and devices,
            // and hold no option the model does not know.
            let inert = reach::RUNTIMES
                .iter()
                .all(|runtime| entry.layers(*runtime).top.inert());
            if !inert || !entry.unknown_options().is_empty() || user_tmpfs(&entry) {
                needs.push(Grant::MountOptions);
            }
            destination
        }
        Action::RemoveMount(destination) => {
            if find_mount(before, destination).is_none() {
                return Err(reject(description, "there is no mount at that destination"));
            }
            destination.clone()
        }
        Action::SetMountOptions(destination, options) => {
            let Some(existing) = find_mount(before, destination) else {
                return Err(reject(description, "there is no mount at that destination"));
            };
            let was = reach::Entry::from_oci(existing);
            let now = reach::Entry {
                options: options.clone(),
                ..was.clone()
            };
            if was.is_bind() != now.is_bind() {
                return Err(reject(
                    description,
                    "options cannot turn a mount into a bind mount or back",
                ));
            }
            let known_before = was.unknown_options();
            if now
                .unknown_options()
                .iter()
                .any(|o| !known_before.contains(o))
                || user_tmpfs(&now) && !user_tmpfs(&was)
            {
                needs.push(Grant::MountOptions);
            }
            destination.clone()
        }
        _ => unreachable!("only mount actions are judged here"),
    };
    if !matches!(action, Action::AddMount(_)) {
        let mut after = before.to_vec();
        apply_mounts(&mut after, &action);
        // A later mount never vouches for an earlier one: where a runtime
        // follows a link in the rootfs, a mount the model sees covered
        // lands elsewhere. The change must be no wider in the tree as it
        // stands when each mount is made.
        let prefixes = (1..before.len()).find_map(|k| {
            let mut after = before[..k].to_vec();
            apply_mounts(&mut after, &action);
            reach::Table::new(&after).wider_than(&reach::Table::new(&before[..k]))
        });
        if let Some(widened) = reach::Table::new(&after)
            .wider_than(&reach::Table::new(before))
            .or(prefixes)
        {
            tracing::debug!(
                change = %description,
                path = %widened.path,
                runtime = ?widened.runtime,
                "widening: {}",
                widened.why
            );
            if !needs.contains(&Grant::MountOptions) {
                needs.push(Grant::MountOptions);
            }
        }
    }
    Ok(Checked {
        description,
        effect: if needs.is_empty() {
            Effect::Restricting
        } else {
            Effect::Widening(needs)
        },
        fields: vec![Field::Mount(destination)],
        action,
    })
}

impl Checked {
    /// Checks the change again against the spec as the changes before it
    /// left it: a change is judged by what it does where it applies.
    pub fn recheck(self, spec: &Spec) -> CheckResult {
        match self.action {
            Action::AddMount(_) | Action::RemoveMount(_) | Action::SetMountOptions(..) => {
                judge_mount(spec, self.description, self.action)
            }
            _ => Ok(self),
        }
    }
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
        printable(&target.name),
        if add { "to" } else { "from" },
        sets.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        if sets.len() == 1 { "" } else { "s" },
    );
    let Some(cap) = caps::parse_canonical(&target.name) else {
        return Err(reject(
            description,
            format!("`{}` is not a known capability", printable(&target.name)),
        ));
    };
    if sets.is_empty() {
        return Err(reject(description, "no capability set named"));
    }
    Ok(Checked {
        effect: if add {
            Effect::Widening(vec![Grant::AddCapability(target.name.clone())])
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
            let description = format!("join the {name} namespace at `{}`", printable(&join.path));
            clean_absolute(&join.path).map_err(|r| reject(description.clone(), r))?;
            Ok(Checked {
                description,
                effect: Effect::Widening(vec![Grant::JoinNamespaces]),
                fields: vec![Field::Namespace(name)],
                action: Action::Namespace(join.kind, Some(Some(PathBuf::from(&join.path)))),
            })
        }
        NamespaceChange::ShareHost(kind) => {
            let name = namespace_name(*kind);
            Ok(Checked {
                description: format!("share the host's {name} namespace"),
                effect: Effect::Widening(vec![Grant::HostNamespace(*kind)]),
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
                effect: Effect::Widening(vec![Grant::IdMappings]),
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
            Action::AddMount(_) | Action::RemoveMount(_) | Action::SetMountOptions(..) => {
                apply_mounts(spec.mounts_mut().get_or_insert_default(), &self.action);
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
    use crate::policy::bindings::types::{CapabilitySet, Mount, MountOptions, NamespaceJoin};

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
            Effect::Widening(vec![Grant::AddCapability("CAP_NET_ADMIN".into())])
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
            Effect::Widening(vec![
                Grant::BindSource("/srv/data".into()),
                Grant::MountOptions
            ])
        );
        let mut tmpfs = Mount {
            destination: "/scratch".into(),
            kind: Some("tmpfs".into()),
            source: Some("tmpfs".into()),
            options: vec!["nosuid".into(), "nodev".into(), "size=1m".into()],
        };
        let checked = check_mount(&spec(), &MountChange::Add(tmpfs.clone())).unwrap();
        assert_eq!(checked.effect, Effect::Restricting);
        tmpfs.options = vec!["size=1m".into()];
        let checked = check_mount(&spec(), &MountChange::Add(tmpfs)).unwrap();
        assert_eq!(checked.effect, Effect::Widening(vec![Grant::MountOptions]));
    }

    #[test]
    fn a_filesystem_without_a_source_takes_its_type_as_one() {
        let source_of = |kind: &str, source: Option<&str>| {
            let mount = Mount {
                destination: "/scratch".into(),
                kind: Some(kind.into()),
                source: source.map(Into::into),
                options: vec!["nosuid".into(), "nodev".into()],
            };
            match check_mount(&spec(), &MountChange::Add(mount))
                .unwrap()
                .action
            {
                Action::AddMount(oci) => oci.source().clone(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(source_of("tmpfs", None), Some("tmpfs".into()));
        assert_eq!(source_of("tmpfs", Some("scratch")), Some("scratch".into()));
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
            &MountChange::Add(bind("/srv", "/srv", &["rbind", "rw", "nosuid", "nodev"])),
        )
        .unwrap()
        .apply(&mut spec);
        let ro = check_mount(
            &spec,
            &set_options("/srv", &["rbind", "nosuid", "nodev", "ro"]),
        )
        .unwrap();
        assert_eq!(ro.effect, Effect::Restricting);
        ro.apply(&mut spec);
        let rw = check_mount(
            &spec,
            &set_options("/srv", &["rbind", "nosuid", "nodev", "rw"]),
        )
        .unwrap();
        assert_eq!(rw.effect, Effect::Widening(vec![Grant::MountOptions]));
    }

    fn set_options(destination: &str, options: &[&str]) -> MountChange {
        MountChange::SetOptions(MountOptions {
            destination: destination.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        })
    }

    fn with(mounts: &[Mount]) -> Spec {
        let mut spec = spec();
        for mount in mounts {
            check_mount(&spec, &MountChange::Add(mount.clone()))
                .unwrap()
                .apply(&mut spec);
        }
        spec
    }

    fn effect(spec: &Spec, change: MountChange) -> Effect {
        check_mount(spec, &change).unwrap().effect
    }

    const LOOSER: Effect = Effect::Restricting;

    fn widening() -> Effect {
        Effect::Widening(vec![Grant::MountOptions])
    }

    #[test]
    fn the_last_option_wins() {
        let sys = ["nosuid", "noexec", "nodev", "ro"];
        let spec = spec();
        for appended in [&["rw"][..], &["ro", "rw"], &["suid"], &["dev"], &["exec"]] {
            let mut options = sys.to_vec();
            options.extend(appended);
            assert_eq!(
                effect(&spec, set_options("/sys", &options)),
                widening(),
                "{appended:?}"
            );
        }
        let mut options = sys.to_vec();
        options.extend(["rw", "ro", "noatime"]);
        assert_eq!(effect(&spec, set_options("/sys", &options)), LOOSER);
    }

    #[test]
    fn recursive_forms_count_and_are_not_enough_alone() {
        let spec = with(&[bind("/srv", "/data", &["rbind", "ro", "nosuid", "nodev"])]);
        for options in [
            &["rbind", "ro", "nosuid", "nodev", "rrw"][..],
            &["rbind", "ro", "nosuid", "nodev", "rsuid"],
            // Not read-only under chroot isolation, which ignores `rro`.
            &["rbind", "rro", "nosuid", "nodev"],
        ] {
            assert_eq!(effect(&spec, set_options("/data", options)), widening());
        }
        let options = ["rbind", "ro", "nosuid", "nodev", "rro", "rnosuid"];
        assert_eq!(effect(&spec, set_options("/data", &options)), LOOSER);
    }

    #[test]
    fn read_only_on_a_bind_that_kept_its_sources_flags_must_set_them_all() {
        let spec = with(&[bind("/srv", "/data", &["rbind", "rw"])]);
        assert_eq!(
            effect(&spec, set_options("/data", &["rbind", "ro"])),
            widening()
        );
        let all = ["rbind", "nosuid", "nodev", "noexec", "ro"];
        assert_eq!(effect(&spec, set_options("/data", &all)), LOOSER);
    }

    #[test]
    fn bind_to_rbind_and_back_widen() {
        let spec = with(&[bind("/srv", "/data", &["bind", "ro", "nosuid", "nodev"])]);
        let options = ["rbind", "ro", "nosuid", "nodev"];
        assert_eq!(effect(&spec, set_options("/data", &options)), widening());
    }

    #[test]
    fn removals_that_uncover_something_widen() {
        let mut spec = with(&[
            bind("/srv", "/data", &["rbind", "rw", "nosuid", "nodev"]),
            bind("/srv/sub", "/data/sub", &["rbind", "ro", "nosuid", "nodev"]),
        ]);
        crate::spec::use_host_rootfs(&mut spec);
        for destination in ["/data/sub", "/data", "/run", "/tmp", "/proc", "/sys"] {
            assert_eq!(
                effect(&spec, MountChange::Remove(destination.into())),
                widening(),
                "{destination}"
            );
        }
        // /dev/shm and /dev/mqueue hide only the fresh /dev tmpfs.
        for destination in ["/dev/shm", "/dev/mqueue"] {
            assert_eq!(
                effect(&spec, MountChange::Remove(destination.into())),
                LOOSER,
                "{destination}"
            );
        }
    }

    #[test]
    fn new_mounts_must_refuse_setuid_and_devices_and_hold_known_options() {
        let tmpfs = |options: &[&str]| Mount {
            destination: "/scratch".into(),
            kind: Some("tmpfs".into()),
            source: Some("tmpfs".into()),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        let spec = spec();
        for options in [
            &["nosuid"][..],
            &["nodev"],
            &["nosuid", "nodev", "suid"],
            &["nosuid", "nodev", "tmpcopyup"],
        ] {
            let change = MountChange::Add(tmpfs(options));
            assert_eq!(effect(&spec, change), widening(), "{options:?}");
        }
        let change = MountChange::Add(tmpfs(&["nosuid", "nodev", "size=1m", "mode=700"]));
        assert_eq!(effect(&spec, change), LOOSER);
        let unknown = set_options("/dev/shm", &["nosuid", "nodev", "noexec", "huh"]);
        assert_eq!(effect(&spec, unknown), widening());
    }

    #[test]
    fn destinations_must_be_clean_in_every_change_and_match_the_specs_spelling() {
        let mut spec = spec();
        let mut mount = OciMount::default();
        mount.set_destination("/data/".into());
        mount.set_typ(Some("tmpfs".into()));
        mount.set_options(Some(vec!["nosuid".into(), "nodev".into()]));
        spec.mounts_mut().get_or_insert_default().push(mount);
        for unclean in ["/data/", "//data", "/x/../data", "/data/."] {
            let err = check_mount(&spec, &MountChange::Remove(unclean.into())).unwrap_err();
            assert!(err.reason.starts_with("destination:"), "{unclean}: {err:?}");
            let err = check_mount(&spec, &set_options(unclean, &["ro"])).unwrap_err();
            assert!(err.reason.starts_with("destination:"), "{unclean}: {err:?}");
        }
        let checked = check_mount(&spec, &set_options("/data", &["nosuid", "nodev", "ro"]));
        let checked = checked.unwrap();
        assert_eq!(checked.fields, [Field::Mount("/data".into())]);
        let add = check_mount(&spec, &MountChange::Add(bind("/srv", "/data", &["rbind"])));
        assert!(add.unwrap_err().reason.contains("already exists"));
    }

    #[test]
    fn a_tmpfs_a_user_may_write_needs_a_grant_unless_the_container_runs_as_root() {
        let tmpfs = |options: &[&str]| {
            MountChange::Add(Mount {
                destination: "/etc".into(),
                kind: Some("tmpfs".into()),
                source: Some("tmpfs".into()),
                options: options.iter().map(|o| o.to_string()).collect(),
            })
        };
        let root = spec();
        assert_eq!(effect(&root, tmpfs(&["nosuid", "nodev"])), LOOSER);
        let mut user = spec();
        if let Some(process) = user.process_mut() {
            let mut who = process.user().clone();
            who.set_uid(1000);
            process.set_user(who);
        }
        for options in [
            &["nosuid", "nodev"][..],
            &["nosuid", "nodev", "mode=1777"],
            &["nosuid", "nodev", "mode=755", "uid=1000"],
            &["nosuid", "nodev", "mode=775", "mode=bad"],
        ] {
            assert_eq!(effect(&user, tmpfs(options)), widening(), "{options:?}");
        }
        let kept = tmpfs(&["nosuid", "nodev", "mode=1777", "mode=755"]);
        assert_eq!(effect(&user, kept), LOOSER);
        let opened = set_options("/dev", &["nosuid", "strictatime", "mode=1777"]);
        assert_eq!(effect(&user, opened), widening());
    }

    #[test]
    fn each_change_is_judged_where_it_applies() {
        let tmpfs = |destination: &str| Mount {
            destination: destination.into(),
            kind: Some("tmpfs".into()),
            source: Some("tmpfs".into()),
            options: vec!["nosuid".into(), "nodev".into()],
        };
        // /dev/x hides /dev/x/m by name. Loosening the hidden tmpfs needs
        // a grant all the same (a later mount never vouches for an
        // earlier one); removing what hides it passes against the
        // untouched spec, but not once the loosening (granted) is applied.
        let mut spec = with(&[tmpfs("/dev/x/m"), tmpfs("/dev/x")]);
        let loosen = check_mount(&spec, &set_options("/dev/x/m", &["suid", "dev"])).unwrap();
        let uncover = check_mount(&spec, &MountChange::Remove("/dev/x".into())).unwrap();
        assert_eq!(loosen.effect, widening());
        assert_eq!(uncover.effect, LOOSER);
        loosen.apply(&mut spec);
        assert_eq!(uncover.recheck(&spec).unwrap().effect, widening());
    }

    #[test]
    fn control_characters_are_refused_and_escaped() {
        let spec = spec();
        let err = check_mount(
            &spec,
            &MountChange::Remove("/sys\n(no changes)\u{1b}[2K".into()),
        )
        .unwrap_err();
        assert_eq!(
            err.description,
            r"remove the mount at /sys\n(no changes)\u{1b}[2K"
        );
        assert_eq!(
            err.reason,
            "destination: the path holds a control character (U+000A)"
        );
        let err = check_mount(&spec, &set_options("/sys", &["ro", "rw\u{85}"])).unwrap_err();
        assert_eq!(
            err.reason,
            r"mount option `rw\u{85}` holds a control character (U+0085)"
        );
        let mut mount = bind("/srv\r", "/data", &["rbind", "nosuid", "nodev"]);
        let err = check_mount(&spec, &MountChange::Add(mount.clone())).unwrap_err();
        assert_eq!(err.reason, "the source holds a control character (U+000D)");
        mount.source = Some("/srv".into());
        mount.kind = Some("bind\t".into());
        assert!(check_mount(&spec, &MountChange::Add(mount)).is_err());
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
            Effect::Widening(vec![Grant::HostNamespace(NamespaceKind::Network)])
        );
        checked.apply(&mut spec);
        assert!(has_namespace(&spec, NamespaceKind::Network).is_none());
        check_namespace(&spec, &NamespaceChange::Create(NamespaceKind::Network))
            .unwrap()
            .apply(&mut spec);
        assert!(has_namespace(&spec, NamespaceKind::Network).is_some());
    }

    fn tmpfs(destination: &str, options: &[&str]) -> MountChange {
        MountChange::Add(Mount {
            destination: destination.into(),
            kind: Some("tmpfs".into()),
            source: Some("tmpfs".into()),
            options: options.iter().map(|o| o.to_string()).collect(),
        })
    }

    /// `remount` makes no new mount: the runtimes remount what is already
    /// at the destination (the host's /run or /proc on the default
    /// rootfs) with the entry's flags, read-write.
    #[test]
    fn remount_is_refused_in_every_change() {
        let mut spec = spec();
        crate::spec::use_host_rootfs(&mut spec);
        for change in [
            set_options("/run", &["nosuid", "nodev", "mode=1777", "remount"]),
            tmpfs("/home", &["remount", "nosuid", "nodev"]),
        ] {
            let rejected = check_mount(&spec, &change).unwrap_err();
            assert!(rejected.reason.contains("`remount`"), "{}", rejected.reason);
        }
    }

    /// A mount on `/` would hide every path from the model, and so vouch
    /// for any later change; the runtimes hide nothing with it.
    #[test]
    fn nothing_may_be_mounted_on_the_root() {
        let mut spec = spec();
        crate::spec::use_host_rootfs(&mut spec);
        let rejected = check_mount(&spec, &tmpfs("/", &["nosuid", "nodev"])).unwrap_err();
        assert!(
            rejected.reason.contains("root filesystem"),
            "{}",
            rejected.reason
        );
    }

    /// A mount whose destination passes through a link in the rootfs
    /// (`/var/run -> /run`) lands outside a later mount that covers it by
    /// name: that later mount does not make loosening or removing it safe.
    #[test]
    fn a_later_mount_does_not_vouch_for_an_earlier_one() {
        let mut spec = with(&[bind(
            "/srv/app",
            "/var/run/app",
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )]);
        check_mount(&spec, &tmpfs("/var", &["nosuid", "nodev"]))
            .unwrap()
            .apply(&mut spec);
        let loosen = set_options(
            "/var/run/app",
            &["rbind", "rw", "suid", "dev", "exec", "rshared"],
        );
        assert_eq!(effect(&spec, loosen), widening());
        let remove = MountChange::Remove("/var/run/app".into());
        assert_eq!(effect(&spec, remove), widening());
    }
}
