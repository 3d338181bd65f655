//! Property tests of mount-change classification against an independent
//! oracle.
//!
//! The oracle shares nothing with [`super::reach`]: it builds a concrete
//! host (a root and submounts, each with its own flags and propagation),
//! then mounts the container's tree step by step as each runtime would
//! (runc's option rules written out here; chroot's read by the chroot
//! runtime's own option parser), and resolves probe paths to what they
//! reach: a filesystem, a path in it, and the flags on the way. Every
//! change the classifier calls restricting must leave every probe no
//! wider, on every host drawn.

use std::collections::BTreeSet;

use nix::mount::MsFlags;
use oci_spec::runtime::{Mount as OciMount, Spec};
use proptest::prelude::*;

use super::bindings::types::{Mount, MountChange, MountOptions};
use super::change::{Effect, check_mount};
use crate::runtime::chroot::mounts::parse_options;

/// Flags in the oracle's order: ro, nosuid, nodev, noexec.
type Bits = [bool; 4];

#[derive(Debug, Clone)]
struct HostMount {
    at: Vec<String>,
    flags: Bits,
    /// 0 private, 1 slave, 2 shared, as the container's namespace sees it.
    propagation: u8,
}

/// A host: its root mount first, then submounts, parents before children.
#[derive(Debug, Clone)]
struct Host {
    mounts: Vec<HostMount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fs {
    Host(usize),
    Fresh(String),
    Kernel(String),
}

#[derive(Debug, Clone)]
struct Live {
    at: Vec<String>,
    fs: Fs,
    root: Vec<String>,
    flags: Bits,
    propagation: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rt {
    Runc,
    Chroot,
}

#[derive(Debug, Clone)]
enum Rootfs {
    /// The host's `/`, recursively read-only.
    HostRoot,
    /// An image at a host path.
    Image(String, bool),
}

fn components(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." {
            out.pop();
        } else {
            out.push(part.to_string());
        }
    }
    out
}

fn prefix_of(outer: &[String], inner: &[String]) -> bool {
    inner.len() >= outer.len() && inner[..outer.len()] == *outer
}

impl Host {
    /// The host mount holding `path`.
    fn holding(&self, path: &[String]) -> usize {
        let mut best = 0;
        for (i, m) in self.mounts.iter().enumerate() {
            if prefix_of(&m.at, path) && m.at.len() >= self.mounts[best].at.len() {
                best = i;
            }
        }
        best
    }

    /// A host path as a tree: the mount holding it and every submount
    /// below it when recursive, each as (mountpoint relative to `path`,
    /// host mount, path inside that mount).
    fn tree(&self, path: &[String], recursive: bool) -> Vec<(Vec<String>, usize, Vec<String>)> {
        let top = self.holding(path);
        let mut out = vec![(vec![], top, path[self.mounts[top].at.len()..].to_vec())];
        if recursive {
            for (i, m) in self.mounts.iter().enumerate() {
                if m.at.len() > path.len() && prefix_of(path, &m.at) {
                    out.push((m.at[path.len()..].to_vec(), i, vec![]));
                }
            }
        }
        out
    }
}

/// runc's reading of options: flag bits set last-wins (any set bit makes
/// runc remount a bind with exactly those), recursive attributes, and
/// propagation in order.
struct RuncOptions {
    set: u32,
    rec_set: u8,
    rec_clear: u8,
    propagation: Vec<(u8, bool)>,
}

fn runc_options(options: &[String]) -> RuncOptions {
    let mut out = RuncOptions {
        set: 0,
        rec_set: 0,
        rec_clear: 0,
        propagation: vec![],
    };
    let pairs: &[(&str, &str, u32)] = &[
        ("ro", "rw", 0),
        ("nosuid", "suid", 1),
        ("nodev", "dev", 2),
        ("noexec", "exec", 3),
        ("sync", "async", 4),
        ("mand", "nomand", 5),
        ("noatime", "atime", 6),
        ("nodiratime", "diratime", 7),
        ("relatime", "norelatime", 8),
        ("strictatime", "nostrictatime", 9),
        ("iversion", "noiversion", 10),
        ("lazytime", "nolazytime", 11),
        ("silent", "loud", 12),
        ("dirsync", "", 13),
    ];
    let recursive: &[(&str, &str, u8)] = &[
        ("rro", "rrw", 0),
        ("rnosuid", "rsuid", 1),
        ("rnodev", "rdev", 2),
        ("rnoexec", "rexec", 3),
    ];
    for o in options {
        if let Some((on, _, bit)) = pairs.iter().find(|(on, off, _)| o == on || o == off) {
            if o == on {
                out.set |= 1 << bit;
            } else {
                out.set &= !(1 << bit);
            }
        } else if let Some((on, _, bit)) = recursive.iter().find(|(on, off, _)| o == on || o == off)
        {
            if o == on {
                out.rec_set |= 1 << bit;
                out.rec_clear &= !(1 << bit);
            } else {
                out.rec_clear |= 1 << bit;
                out.rec_set &= !(1 << bit);
            }
        } else {
            let (rec, name) = match o.strip_prefix('r') {
                Some(rest) if ["private", "shared", "slave", "unbindable"].contains(&rest) => {
                    (true, rest)
                }
                _ => (false, o.as_str()),
            };
            match name {
                "private" | "unbindable" => out.propagation.push((0, rec)),
                "slave" => out.propagation.push((1, rec)),
                "shared" => out.propagation.push((2, rec)),
                _ => {}
            }
        }
    }
    out
}

/// Whether runc reads an option itself rather than handing it to the
/// filesystem.
fn runc_knows(option: &str) -> bool {
    let parsed = runc_options(&[option.to_string()]);
    parsed.set != 0
        || parsed.rec_set != 0
        || parsed.rec_clear != 0
        || !parsed.propagation.is_empty()
        || matches!(
            option,
            "rw" | "suid"
                | "dev"
                | "exec"
                | "async"
                | "nomand"
                | "atime"
                | "diratime"
                | "norelatime"
                | "nostrictatime"
                | "noiversion"
                | "nolazytime"
                | "loud"
                | "bind"
                | "rbind"
                | "defaults"
        )
}

fn propagate(current: u8, change: u8) -> u8 {
    match change {
        0 => 0,
        1 => current.min(1),
        _ => 2,
    }
}

fn chroot_bits(flags: MsFlags) -> Bits {
    [
        flags.contains(MsFlags::MS_RDONLY),
        flags.contains(MsFlags::MS_NOSUID),
        flags.contains(MsFlags::MS_NODEV),
        flags.contains(MsFlags::MS_NOEXEC),
    ]
}

fn chroot_propagation(flags: &[MsFlags]) -> Vec<(u8, bool)> {
    flags
        .iter()
        .map(|f| {
            let level = if f.contains(MsFlags::MS_SHARED) {
                2
            } else if f.contains(MsFlags::MS_SLAVE) {
                1
            } else {
                0
            };
            (level, f.contains(MsFlags::MS_REC))
        })
        .collect()
}

/// The container's mounts, in the order they were made.
fn build(host: &Host, rootfs: &Rootfs, mounts: &[OciMount], rt: Rt) -> Vec<Live> {
    let mut live = Vec::new();
    let (root_path, read_only) = match rootfs {
        Rootfs::HostRoot => (vec![], true),
        Rootfs::Image(path, ro) => (components(path), *ro),
    };
    for (at, index, root) in host.tree(&root_path, true) {
        let m = &host.mounts[index];
        let mut flags = m.flags;
        if matches!(rootfs, Rootfs::HostRoot) || (read_only && at.is_empty()) {
            flags[0] |= read_only;
        }
        live.push(Live {
            at,
            fs: Fs::Host(index),
            root,
            flags,
            propagation: m.propagation.min(1),
        });
    }
    for m in mounts {
        let dest = components(&m.destination().to_string_lossy());
        let options = m.options().clone().unwrap_or_default();
        let kind = m.typ().clone().unwrap_or_default();
        let bind = kind == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        let runc = runc_options(&options);
        let chroot = parse_options(&options);
        let start = live.len();
        if bind {
            let source = components(
                &m.source()
                    .as_ref()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let recursive = options.iter().any(|o| o == "rbind");
            for (rel, index, root) in host.tree(&source, recursive) {
                let h = &host.mounts[index];
                let mut at = dest.clone();
                at.extend(rel);
                live.push(Live {
                    at,
                    fs: Fs::Host(index),
                    root,
                    flags: h.flags,
                    propagation: h.propagation.min(1),
                });
            }
            match rt {
                Rt::Runc => {
                    if runc.set != 0 {
                        live[start].flags = std::array::from_fn(|i| runc.set & (1 << i) != 0);
                    }
                }
                Rt::Chroot => {
                    let remount = chroot.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
                    if !remount.is_empty() {
                        let asked = chroot_bits(remount);
                        let had = live[start].flags;
                        live[start].flags = [
                            asked[0],
                            asked[1] || had[1],
                            asked[2] || had[2],
                            asked[3] || had[3],
                        ];
                    }
                }
            }
        } else {
            let bits = match rt {
                Rt::Runc => std::array::from_fn(|i| runc.set & (1 << i) != 0),
                Rt::Chroot => chroot_bits(chroot.flags),
            };
            let fs = if ["tmpfs", "devpts", "mqueue"].contains(&kind.as_str()) {
                Fs::Fresh(format!("{kind}@/{}", dest.join("/")))
            } else {
                let data: BTreeSet<&String> = options.iter().filter(|o| !runc_knows(o)).collect();
                Fs::Kernel(format!("{kind}:{:?}:{data:?}", m.source()))
            };
            live.push(Live {
                at: dest,
                fs,
                root: vec![],
                flags: bits,
                propagation: 0,
            });
        }
        let made = start..live.len();
        if rt == Rt::Runc {
            for i in made.clone() {
                for bit in 0..4 {
                    if runc.rec_set & (1 << bit) != 0 {
                        live[i].flags[bit] = true;
                    }
                    if runc.rec_clear & (1 << bit) != 0 {
                        live[i].flags[bit] = false;
                    }
                }
            }
        }
        if bind {
            let changes = match rt {
                Rt::Runc => runc.propagation.clone(),
                Rt::Chroot => chroot_propagation(&chroot.propagation),
            };
            for (change, recursive) in changes {
                for i in made.clone() {
                    if i == start || recursive {
                        live[i].propagation = propagate(live[i].propagation, change);
                    }
                }
            }
        }
    }
    live
}

/// The mount a path resolves to, by index.
fn resolve(live: &[Live], path: &[String]) -> usize {
    live.iter()
        .rposition(|l| prefix_of(&l.at, path))
        .unwrap_or(0)
}

/// What a path reaches: the filesystem, the path inside it.
fn object(live: &[Live], path: &[String]) -> (Fs, Vec<String>) {
    let l = &live[resolve(live, path)];
    let mut inside = l.root.clone();
    inside.extend_from_slice(&path[l.at.len()..]);
    (l.fs.clone(), inside)
}

fn no_looser(after: &Bits, before: &Bits) -> bool {
    (0..4).all(|i| after[i] || !before[i])
}

/// The first probe where `after` reaches more than `before`.
fn widened(before: &[Live], after: &[Live]) -> Option<String> {
    let mut probes: BTreeSet<Vec<String>> = BTreeSet::new();
    for l in before.iter().chain(after) {
        probes.insert(l.at.clone());
        let mut below = l.at.clone();
        below.push("q".into());
        probes.insert(below);
    }
    for probe in probes {
        let b = &before[resolve(before, &probe)];
        let a = &after[resolve(after, &probe)];
        let (a_obj, b_obj) = (object(after, &probe), object(before, &probe));
        if a_obj == b_obj {
            let propagation_ok = !matches!(a.fs, Fs::Host(_)) || a.propagation <= b.propagation;
            if no_looser(&a.flags, &b.flags) && propagation_ok {
                continue;
            }
            return Some(format!("/{}: same object, looser flags", probe.join("/")));
        }
        if let Fs::Fresh(_) = a.fs {
            if a.flags[1] && a.flags[2] {
                continue;
            }
            let visible = before.iter().enumerate().any(|(i, l)| {
                l.fs == a.fs && resolve(before, &l.at) == i && no_looser(&a.flags, &l.flags)
            });
            if visible {
                continue;
            }
        }
        return Some(format!(
            "/{}: {:?} became {:?}",
            probe.join("/"),
            b_obj,
            a_obj
        ));
    }
    None
}

fn spec_with(rootfs: &Rootfs, mounts: Vec<OciMount>) -> Spec {
    let mut spec = crate::spec::default_spec("oracle", &["/bin/true".into()]);
    match rootfs {
        Rootfs::HostRoot => crate::spec::set_rootfs(&mut spec, "rootfs".as_ref(), true),
        Rootfs::Image(path, ro) => crate::spec::set_rootfs(&mut spec, path.as_ref(), *ro),
    }
    spec.set_mounts(Some(mounts));
    spec
}

const OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "noatime",
    "relatime",
    "size=1m",
    "mode=755",
    "hidepid=2",
    "weird",
    "defaults",
    "iversion",
    "dirsync",
    "tmpcopyup",
    "uid=1000",
];

fn path_strategy(words: &'static [&'static str], min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(words), min..=3)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn spelled(path: String, how: u8) -> String {
    match how {
        0 => format!("{path}/"),
        1 => format!("/{path}"),
        2 => format!("{path}/."),
        _ => path,
    }
}

const DESTS: &[&str] = &["a", "b", "run", "tmp"];
const HOST_PATHS: &[&str] = &["a", "b", "srv"];

fn options_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(OPTIONS).prop_map(String::from), 0..6)
}

fn mount_strategy() -> impl Strategy<Value = Mount> {
    (
        0..8u8,
        path_strategy(DESTS, 1),
        path_strategy(HOST_PATHS, 0),
        options_strategy(),
    )
        .prop_map(|(kind, destination, source, mut options)| {
            let (kind, source) = match kind {
                0 => (Some("bind"), source),
                1 => {
                    options.insert(0, "rbind".into());
                    (None, source)
                }
                2 | 3 => (Some("tmpfs"), "tmpfs".into()),
                4 => (Some("proc"), "proc".into()),
                5 => (Some("mqueue"), "mqueue".into()),
                6 => (Some("sysfs"), "sysfs".into()),
                _ => (Some("devpts"), "devpts".into()),
            };
            Mount {
                destination,
                kind: kind.map(String::from),
                source: Some(source),
                options,
            }
        })
}

fn oci(mount: &Mount, spelling: u8) -> OciMount {
    let mut oci = OciMount::default();
    oci.set_destination(spelled(mount.destination.clone(), spelling).into());
    oci.set_typ(mount.kind.clone());
    oci.set_source(mount.source.as_ref().map(Into::into));
    oci.set_options(Some(mount.options.clone()));
    oci
}

#[derive(Debug, Clone)]
enum Step {
    Add(Mount),
    Remove(usize, u8),
    SetOptions(usize, Vec<String>),
    /// The mount's own options with a few appended: changes that read as
    /// restricting.
    Append(usize, Vec<String>),
}

fn host_strategy() -> impl Strategy<Value = Host> {
    let flags = || prop::array::uniform4(any::<bool>());
    (
        flags(),
        prop::collection::vec((path_strategy(HOST_PATHS, 1), flags(), 0..3u8), 0..5),
    )
        .prop_map(|(root, subs)| {
            let mut mounts = vec![HostMount {
                at: vec![],
                flags: root,
                propagation: 1,
            }];
            let mut seen = BTreeSet::new();
            let mut subs: Vec<_> = subs
                .into_iter()
                .filter(|(p, _, _)| seen.insert(p.clone()))
                .collect();
            subs.sort_by_key(|(p, _, _)| components(p).len());
            for (path, flags, propagation) in subs {
                mounts.push(HostMount {
                    at: components(&path),
                    flags,
                    propagation,
                });
            }
            Host { mounts }
        })
}

fn rootfs_strategy() -> impl Strategy<Value = Rootfs> {
    prop_oneof![
        Just(Rootfs::HostRoot),
        (path_strategy(HOST_PATHS, 1), any::<bool>()).prop_map(|(p, ro)| Rootfs::Image(p, ro)),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        mount_strategy().prop_map(Step::Add),
        (any::<usize>(), 0..4u8).prop_map(|(i, how)| Step::Remove(i, how)),
        (any::<usize>(), options_strategy()).prop_map(|(i, o)| Step::SetOptions(i, o)),
        (any::<usize>(), options_strategy()).prop_map(|(i, o)| Step::Append(i, o)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn restricting_changes_never_widen_any_probe(
        host in host_strategy(),
        rootfs in rootfs_strategy(),
        base in prop::collection::vec((mount_strategy(), 0..6u8), 0..6),
        scratch in any::<bool>(),
        steps in prop::collection::vec(step_strategy(), 1..5),
    ) {
        let mut mounts: Vec<OciMount> = Vec::new();
        if scratch && matches!(rootfs, Rootfs::HostRoot) {
            for dest in ["/tmp", "/var/tmp", "/run"] {
                mounts.push(oci(&Mount {
                    destination: dest.into(),
                    kind: Some("tmpfs".into()),
                    source: Some("tmpfs".into()),
                    options: vec!["nosuid".into(), "nodev".into(), "mode=1777".into()],
                }, 9));
            }
        }
        mounts.extend(base.iter().map(|(m, how)| oci(m, *how)));
        let mut spec = spec_with(&rootfs, mounts);
        for step in steps {
            let existing: Vec<String> = spec
                .mounts()
                .iter()
                .flatten()
                .map(|m| components(&m.destination().to_string_lossy()).join("/"))
                .map(|p| format!("/{p}"))
                .collect();
            let pick = |i: usize| existing.get(i % existing.len().max(1)).cloned();
            let change = match step {
                Step::Add(m) => MountChange::Add(m),
                Step::Remove(i, how) => match pick(i) {
                    Some(d) => MountChange::Remove(if how == 0 { format!("{d}/") } else { d }),
                    None => continue,
                },
                Step::SetOptions(i, options) => match pick(i) {
                    Some(destination) => MountChange::SetOptions(MountOptions { destination, options }),
                    None => continue,
                },
                Step::Append(i, appended) => match pick(i) {
                    Some(destination) => {
                        let mounts = spec.mounts().clone().unwrap_or_default();
                        let mut options = mounts
                            .iter()
                            .find(|m| components(&m.destination().to_string_lossy()) == components(&destination))
                            .and_then(|m| m.options().clone())
                            .unwrap_or_default();
                        options.extend(appended.into_iter().take(2));
                        MountChange::SetOptions(MountOptions { destination, options })
                    }
                    None => continue,
                },
            };
            let Ok(checked) = check_mount(&spec, &change) else { continue };
            let restricting = checked.effect == Effect::Restricting;
            let before = spec.clone();
            checked.apply(&mut spec);
            if !restricting {
                continue;
            }
            for rt in [Rt::Runc, Rt::Chroot] {
                let b = build(&host, &rootfs, before.mounts().as_deref().unwrap_or_default(), rt);
                let a = build(&host, &rootfs, spec.mounts().as_deref().unwrap_or_default(), rt);
                let wider = widened(&b, &a);
                prop_assert!(
                    wider.is_none(),
                    "{change:?} was called restricting, but under {rt:?}: {}",
                    wider.unwrap_or_default()
                );
            }
        }
    }
}
