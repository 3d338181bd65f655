//! What a container reaches through its mounts: the one model every mount
//! change is judged by.
//!
//! The container's tree is its rootfs with the spec's mounts laid on it in
//! order; a path resolves to the last mount whose destination holds it (a
//! later mount hides what an earlier one put beneath it). What the path
//! reaches is that mount's object (a host tree bound in, a fresh private
//! filesystem, a kernel filesystem, the rootfs) and how it may be used is
//! that mount's effective flags, in one of two layers: the mount itself,
//! and the host's submounts a recursive bind brings along.
//!
//! Effective flags are what the runtime leaves after applying the options
//! in order (the last of `ro` and `rw` wins), and runtimes differ:
//!
//! - runc (and `specgate-runtime` under an engine) remounts a bind with
//!   exactly the flags the options set, dropping the source's own, but
//!   only when an option sets a flag; recursive forms (`rro`, `rnosuid`,
//!   ...) are applied last, to the mount and all its submounts, whatever
//!   their place among the options.
//! - specgate's chroot isolation keeps the source's `nosuid`, `nodev` and
//!   `noexec` on a bind remount and ignores the recursive forms.
//!
//! A flag is therefore set, clear, or the host's (whatever the source's
//! mount has, which the model cannot know): a change is no wider only if
//! it is no wider for every host and under both runtimes.
//!
//! A change is restricting only if, for every path, the path reaches the
//! same object with flags no looser, or reaches a fresh private
//! filesystem (tmpfs, devpts, mqueue) that gives nothing of the host:
//! one with `nosuid` and `nodev`, or one the container could already use,
//! as freely, where it is mounted. Paths are compared region by region:
//! between two destinations nothing changes what a path resolves to.
//! Identity is by mount, not by host path: two mounts of overlapping host
//! paths are two objects, which can only make the model stricter.
//!
//! Destinations are compared lexically, after cleaning: the runtime also
//! follows symbolic links in the rootfs, which can move where a mount
//! lands but not what it is, and an uncovered region is no wider only
//! when what it uncovers is a fresh filesystem whose paths hold no links
//! the container did not make.

use std::cmp::Ordering;

use oci_spec::runtime::Mount as OciMount;

use crate::spec::path::clean;

/// A runtime the spec may be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc, and runtimes that read options as runc does.
    Runc,
    /// specgate's own chroot isolation.
    Chroot,
}

/// Every runtime a spec may be handed to: a change must be no wider
/// under each.
pub const RUNTIMES: [Runtime; 2] = [Runtime::Runc, Runtime::Chroot];

/// How far one restricting flag (`ro`, `nosuid`, ...) holds on one layer
/// of one mount, ordered from loosest to strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The flag is off.
    Clear,
    /// The flag is whatever the host's mount has: unknown, but the same
    /// for the same object.
    Host,
    /// The flag is on.
    Set,
}

/// The effective flags of one layer of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// Read-only.
    pub read_only: Level,
    /// Set-user-id bits ignored.
    pub nosuid: Level,
    /// Device files unusable.
    pub nodev: Level,
    /// Programs cannot be executed.
    pub noexec: Level,
    /// How freely mounts propagate between the host and this layer, for
    /// each propagation the host's mount may have (private, slave,
    /// shared: 0, 1, 2): 0 none, 1 from the host, 2 both ways.
    pub propagation: [u8; 3],
}

impl Flags {
    const HOST: Flags = Flags {
        read_only: Level::Host,
        nosuid: Level::Host,
        nodev: Level::Host,
        noexec: Level::Host,
        propagation: [0, 1, 2],
    };

    fn levels(&self) -> [Level; 4] {
        [self.read_only, self.nosuid, self.nodev, self.noexec]
    }

    fn level_mut(&mut self, bit: usize) -> &mut Level {
        match bit {
            0 => &mut self.read_only,
            1 => &mut self.nosuid,
            2 => &mut self.nodev,
            _ => &mut self.noexec,
        }
    }

    /// Whether these flags, on the same object, allow no more than
    /// `before`: every flag at least as strict, propagation no freer.
    pub fn no_wider_than(&self, before: &Flags) -> bool {
        self.levels()
            .iter()
            .zip(before.levels())
            .all(|(after, before)| after.cmp(&before) != Ordering::Less)
            && self
                .propagation
                .iter()
                .zip(before.propagation)
                .all(|(after, before)| *after <= before)
    }

    /// Whether set-user-id programs and device files are both refused.
    pub fn inert(&self) -> bool {
        self.nosuid == Level::Set && self.nodev == Level::Set
    }

    fn propagate(&mut self, change: Propagation) {
        self.propagation = match change {
            Propagation::Private => [0; 3],
            Propagation::Shared => [2; 3],
            // Making a private mount a slave leaves it private.
            Propagation::Slave => self.propagation.map(|p| p.min(1)),
        };
    }
}

/// The effective flags of a mount: of the mount itself, and of the
/// submounts it brings along (a recursive bind's host submounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// The mount itself.
    pub top: Flags,
    /// Its submounts, if it can have any.
    pub sub: Option<Flags>,
}

impl Layers {
    /// Whether each layer allows no more than the same layer of `before`.
    pub fn no_wider_than(&self, before: &Layers) -> bool {
        self.top.no_wider_than(&before.top)
            && match (&self.sub, &before.sub) {
                (Some(after), Some(before)) => after.no_wider_than(before),
                (None, None) => true,
                _ => false,
            }
    }
}

/// What a mount gives the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// The rootfs, where no mount covers it.
    Root,
    /// A host path, with its submounts when recursive.
    Bind {
        /// The source as the spec names it.
        source: String,
        /// `rbind`.
        recursive: bool,
    },
    /// A private filesystem that starts empty and holds nothing of the
    /// host: tmpfs, devpts (a new instance), mqueue (the container's IPC
    /// namespace's queues, reachable by system calls anyway).
    Fresh {
        /// Its type.
        kind: String,
    },
    /// A kernel filesystem (proc, sysfs, cgroup, ...), as its options
    /// present it.
    Kernel {
        /// Its type.
        kind: String,
        /// Its source.
        source: Option<String>,
        /// The options the kernel reads, sorted.
        data: Vec<String>,
    },
}

/// A mount's place and object: two mounts with the same identity give
/// the same paths the same things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its clean destination (`/` for the rootfs).
    pub destination: String,
    /// What it mounts.
    pub object: Object,
}

/// Filesystem types that start empty and give nothing of the host.
pub const FRESH_KINDS: [&str; 3] = ["tmpfs", "devpts", "mqueue"];

/// Options the model knows for one filesystem type: sizes and modes of a
/// fresh filesystem's root, which give the container nothing.
fn known_data(kind: &str, option: &str) -> bool {
    let key = option.split_once('=').map_or(option, |(key, _)| key);
    match kind {
        "tmpfs" => {
            matches!(
                key,
                "size" | "nr_blocks" | "nr_inodes" | "mode" | "uid" | "gid" | "huge" | "mpol"
            ) && option.contains('=')
                || matches!(option, "inode32" | "inode64" | "noswap")
        }
        "devpts" => {
            matches!(key, "ptmxmode" | "mode" | "gid" | "uid" | "max") && option.contains('=')
                || option == "newinstance"
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    Private,
    Slave,
    Shared,
}

/// What one option does, as runc reads it.
#[derive(Debug, Clone, Copy)]
enum Opt {
    /// Sets (`true`) or clears a flag of the mount itself. Bits 0-3 are
    /// ro, nosuid, nodev, noexec; the others only decide whether a bind
    /// is remounted. `chroot`: whether specgate's chroot knows it too.
    Flag { bit: u8, on: bool, chroot: bool },
    /// `defaults`: nothing.
    Nothing,
    /// Sets or clears a flag of the mount and all its submounts, after
    /// the rest: runc only. Bits above 3 are access times.
    Recursive { bit: u8, on: bool },
    /// A propagation change, of the submounts too when recursive.
    Propagation(Propagation, bool),
    /// `bind` or `rbind`: read by [`Entry::object`].
    Bind,
}

fn option(name: &str) -> Option<Opt> {
    let flag = |bit, on, chroot| Some(Opt::Flag { bit, on, chroot });
    let recursive = |bit, on| Some(Opt::Recursive { bit, on });
    let propagation = |p, r| Some(Opt::Propagation(p, r));
    match name {
        "ro" => flag(0, true, true),
        "rw" => flag(0, false, true),
        "nosuid" => flag(1, true, true),
        "suid" => flag(1, false, true),
        "nodev" => flag(2, true, true),
        "dev" => flag(2, false, true),
        "noexec" => flag(3, true, true),
        "exec" => flag(3, false, true),
        "sync" => flag(4, true, true),
        "async" => flag(4, false, true),
        "dirsync" => flag(5, true, true),
        "mand" => flag(6, true, true),
        "nomand" => flag(6, false, true),
        "noatime" => flag(7, true, true),
        "atime" => flag(7, false, true),
        "nodiratime" => flag(8, true, true),
        "diratime" => flag(8, false, true),
        "relatime" => flag(9, true, true),
        "norelatime" => flag(9, false, true),
        "strictatime" => flag(10, true, true),
        "nostrictatime" => flag(10, false, true),
        "iversion" => flag(11, true, false),
        "noiversion" => flag(11, false, false),
        "lazytime" => flag(12, true, false),
        "nolazytime" => flag(12, false, false),
        "silent" => flag(13, true, false),
        "loud" => flag(13, false, false),
        // Not `remount`: it turns the mount into a remount of whatever is
        // already at the destination, which no flag describes; unknown,
        // it is widening.
        "defaults" => Some(Opt::Nothing),
        "rro" => recursive(0, true),
        "rrw" => recursive(0, false),
        "rnosuid" => recursive(1, true),
        "rsuid" => recursive(1, false),
        "rnodev" => recursive(2, true),
        "rdev" => recursive(2, false),
        "rnoexec" => recursive(3, true),
        "rexec" => recursive(3, false),
        "rnoatime" => recursive(4, true),
        "ratime" => recursive(4, false),
        "rnodiratime" => recursive(5, true),
        "rdiratime" => recursive(5, false),
        "rrelatime" => recursive(6, true),
        "rnorelatime" => recursive(6, false),
        "rstrictatime" => recursive(7, true),
        "rnostrictatime" => recursive(7, false),
        "private" | "unbindable" => propagation(Propagation::Private, false),
        "rprivate" | "runbindable" => propagation(Propagation::Private, true),
        "slave" => propagation(Propagation::Slave, false),
        "rslave" => propagation(Propagation::Slave, true),
        "shared" => propagation(Propagation::Shared, false),
        "rshared" => propagation(Propagation::Shared, true),
        "bind" | "rbind" => Some(Opt::Bind),
        _ => None,
    }
}

/// Options as one runtime reads them, the last of each pair winning.
#[derive(Debug, Default)]
struct Parsed {
    /// Flags set on the mount itself.
    set: u16,
    /// Recursive flags set and cleared (runc only).
    recursive_set: u8,
    recursive_clear: u8,
    /// Propagation changes, in order, and whether each is recursive.
    propagation: Vec<(Propagation, bool)>,
}

fn parse(options: &[String], runtime: Runtime) -> Parsed {
    let mut parsed = Parsed::default();
    for name in options {
        match option(name) {
            Some(Opt::Flag { bit, on, chroot }) if chroot || runtime == Runtime::Runc => {
                if on {
                    parsed.set |= 1 << bit;
                } else {
                    parsed.set &= !(1 << bit);
                }
            }
            Some(Opt::Recursive { bit, on }) if runtime == Runtime::Runc => {
                if on {
                    parsed.recursive_set |= 1 << bit;
                    parsed.recursive_clear &= !(1 << bit);
                } else {
                    parsed.recursive_clear |= 1 << bit;
                    parsed.recursive_set &= !(1 << bit);
                }
            }
            Some(Opt::Propagation(change, recursive)) => {
                parsed.propagation.push((change, recursive));
            }
            _ => {}
        }
    }
    parsed
}

/// Whether `path` is `dest` or lies below it (both clean).
pub fn within(dest: &str, path: &str) -> bool {
    dest == "/"
        || path
            .strip_prefix(dest)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One mount as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its destination, clean.
    pub destination: String,
    /// Its type.
    pub kind: Option<String>,
    /// Its source.
    pub source: Option<String>,
    /// Its options, in order.
    pub options: Vec<String>,
}

impl Entry {
    /// Reads a spec's mount.
    pub fn from_oci(mount: &OciMount) -> Self {
        Entry {
            destination: clean(&mount.destination().to_string_lossy()),
            kind: mount.typ().clone(),
            source: mount
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned()),
            options: mount.options().clone().unwrap_or_default(),
        }
    }

    /// Whether it binds a host path (as runc and chroot decide).
    pub fn is_bind(&self) -> bool {
        self.kind.as_deref() == Some("bind")
            || self.options.iter().any(|o| o == "bind" || o == "rbind")
    }

    /// What it mounts.
    pub fn object(&self) -> Object {
        let kind = self.kind.clone().unwrap_or_default();
        if self.is_bind() {
            return Object::Bind {
                source: self.source.clone().unwrap_or_default(),
                recursive: self.options.iter().any(|o| o == "rbind"),
            };
        }
        if FRESH_KINDS.contains(&kind.as_str()) {
            return Object::Fresh { kind };
        }
        let mut data: Vec<String> = self
            .options
            .iter()
            .filter(|o| option(o).is_none())
            .cloned()
            .collect();
        data.sort();
        Object::Kernel {
            kind,
            source: self.source.clone(),
            data,
        }
    }

    /// Its identity.
    pub fn identity(&self) -> Identity {
        Identity {
            destination: self.destination.clone(),
            object: self.object(),
        }
    }

    /// The options the model does not know: for a kernel filesystem they
    /// are part of what it is, and any of them may widen.
    pub fn unknown_options(&self) -> Vec<&str> {
        let kind = self.kind.as_deref().unwrap_or_default();
        let bind = self.is_bind();
        self.options
            .iter()
            .filter(|o| option(o).is_none() && (bind || !known_data(kind, o)))
            .map(String::as_str)
            .collect()
    }

    /// Whether a user other than root may write a tmpfs's root: its mode
    /// (tmpfs's default is 1777) lets group or others write, or `uid=` or
    /// `gid=` gives it to someone else. Such a tmpfs over a path a
    /// set-user-id program reads (`/etc`) lets that user plant what the
    /// program trusts.
    pub fn writable_by_users(&self) -> bool {
        let last = |key: &str| {
            self.options
                .iter()
                .rev()
                .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
        };
        let mode = last("mode").map_or(Some(0o1777), |m| u32::from_str_radix(m, 8).ok());
        let owner = |key: &str| last(key).is_some_and(|id| id != "0");
        mode.is_none_or(|m| m & 0o022 != 0) || owner("uid") || owner("gid")
    }

    /// Its effective flags under `runtime`.
    pub fn layers(&self, runtime: Runtime) -> Layers {
        let parsed = parse(&self.options, runtime);
        let level = |bit: u8| {
            if parsed.set & (1 << bit) != 0 {
                Level::Set
            } else {
                Level::Clear
            }
        };
        let kind = self.kind.as_deref().unwrap_or_default();
        let object = self.object();
        let mut layers = match &object {
            Object::Bind { recursive, .. } => {
                // A bind keeps its source's flags unless an option sets a
                // flag, which makes the runtime remount it.
                let mut top = Flags::HOST;
                let remount = match runtime {
                    Runtime::Runc => parsed.set & !(1 << 14),
                    Runtime::Chroot => parsed.set,
                };
                if remount != 0 {
                    top.read_only = level(0);
                    for bit in 1..4 {
                        *top.level_mut(usize::from(bit)) = match runtime {
                            Runtime::Runc => level(bit),
                            // chroot keeps the source's flags on remount.
                            Runtime::Chroot => level(bit).max(Level::Host),
                        };
                    }
                }
                Layers {
                    top,
                    sub: recursive.then_some(Flags::HOST),
                }
            }
            Object::Fresh { .. } | Object::Kernel { .. } | Object::Root => {
                let top = Flags {
                    read_only: level(0),
                    nosuid: level(1),
                    nodev: level(2),
                    noexec: level(3),
                    propagation: [0; 3],
                };
                // Where the kernel refuses a new sysfs or cgroup, chroot
                // binds the host's tree, read-only when asked.
                let host_tree =
                    runtime == Runtime::Chroot && matches!(kind, "sysfs" | "cgroup" | "cgroup2");
                Layers {
                    top,
                    sub: host_tree.then_some(Flags {
                        read_only: top.read_only,
                        propagation: [0; 3],
                        ..Flags::HOST
                    }),
                }
            }
        };
        for bit in 0..4u8 {
            let level = if parsed.recursive_set & (1 << bit) != 0 {
                Level::Set
            } else if parsed.recursive_clear & (1 << bit) != 0 {
                Level::Clear
            } else {
                continue;
            };
            *layers.top.level_mut(usize::from(bit)) = level;
            if let Some(sub) = &mut layers.sub {
                *sub.level_mut(usize::from(bit)) = level;
            }
        }
        if matches!(object, Object::Bind { .. }) {
            for (change, recursive) in &parsed.propagation {
                layers.top.propagate(*change);
                if let (true, Some(sub)) = (recursive, &mut layers.sub) {
                    sub.propagate(*change);
                }
            }
        }
        layers
    }
}

/// The rootfs's layers: the same before and after any change, and the
/// host's.
const ROOT: Layers = Layers {
    top: Flags::HOST,
    sub: Some(Flags::HOST),
};

/// One mount as the model judges it: its identity, and its layers under
/// each runtime (in [`RUNTIMES`] order).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Judged {
    identity: Identity,
    layers: [Layers; 2],
}

impl Judged {
    fn new(entry: &Entry) -> Self {
        Judged {
            identity: entry.identity(),
            layers: RUNTIMES.map(|runtime| entry.layers(runtime)),
        }
    }
}

/// A spec's mounts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    entries: Vec<Judged>,
    root: Judged,
}

impl Table {
    /// The mounts of a spec.
    pub fn new<'a>(mounts: impl IntoIterator<Item = &'a OciMount>) -> Self {
        Table {
            entries: mounts
                .into_iter()
                .map(|m| Judged::new(&Entry::from_oci(m)))
                .collect(),
            root: Judged {
                identity: Identity {
                    destination: "/".into(),
                    object: Object::Root,
                },
                layers: [ROOT; 2],
            },
        }
    }

    /// What `path` reaches under `runtime`, and how: the last mount whose
    /// destination holds it, else the rootfs.
    fn at(&self, path: &str, runtime: usize) -> (&Identity, &Layers) {
        let judged = self
            .entries
            .iter()
            .rev()
            .find(|e| within(&e.identity.destination, path))
            .unwrap_or(&self.root);
        (&judged.identity, &judged.layers[runtime])
    }

    /// The first path where `self` reaches more than `before`, with why;
    /// `None` when no path does, under any runtime.
    pub fn wider_than(&self, before: &Table) -> Option<Widened> {
        let mut points: Vec<&str> = std::iter::once("/")
            .chain(self.entries.iter().map(|e| e.identity.destination.as_str()))
            .chain(
                before
                    .entries
                    .iter()
                    .map(|e| e.identity.destination.as_str()),
            )
            .collect();
        points.sort_unstable();
        points.dedup();
        for (index, runtime) in RUNTIMES.into_iter().enumerate() {
            for point in &points {
                let (was, was_layers) = before.at(point, index);
                let (now, now_layers) = self.at(point, index);
                let widened = |why: &str| {
                    Some(Widened {
                        path: point.to_string(),
                        runtime,
                        why: why.to_string(),
                    })
                };
                if now == was {
                    if !now_layers.no_wider_than(was_layers) {
                        return widened("its flags or propagation are looser");
                    }
                    continue;
                }
                if let Object::Fresh { .. } = now.object {
                    if now_layers.top.inert() {
                        continue;
                    }
                    // The same fresh filesystem, already in reach where it
                    // is mounted, gives nothing new elsewhere.
                    let (seen, seen_layers) = before.at(&now.destination, index);
                    if seen == now && now_layers.top.no_wider_than(&seen_layers.top) {
                        continue;
                    }
                    return widened("it reaches a filesystem that allows set-user-id or devices");
                }
                return widened(match now.object {
                    Object::Root => "it uncovers the rootfs",
                    Object::Bind { .. } => "it reaches a host path it did not reach",
                    _ => "it reaches a filesystem it did not reach",
                });
            }
        }
        None
    }
}

/// Where and why a change widens what the container reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widened {
    /// A container path that reaches more.
    pub path: String,
    /// The runtime under which it does.
    pub runtime: Runtime,
    /// How.
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dest: &str, kind: &str, source: &str, options: &[&str]) -> Entry {
        Entry {
            destination: dest.into(),
            kind: Some(kind.into()),
            source: Some(source.into()),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn the_last_of_ro_and_rw_wins() {
        // No flag left set: not remounted, the source's flags stay.
        let ro_rw = entry("/data", "bind", "/srv", &["rbind", "ro", "rw"]);
        for runtime in RUNTIMES {
            assert_eq!(ro_rw.layers(runtime).top.read_only, Level::Host);
        }
        let ro_rw = entry("/data", "bind", "/srv", &["rbind", "ro", "nosuid", "rw"]);
        for runtime in RUNTIMES {
            assert_eq!(ro_rw.layers(runtime).top.read_only, Level::Clear);
        }
        let rw_ro = entry("/data", "bind", "/srv", &["rbind", "rw", "ro"]);
        assert_eq!(rw_ro.layers(Runtime::Runc).top.read_only, Level::Set);
    }

    #[test]
    fn recursive_forms_apply_last_in_runc_and_not_at_all_in_chroot() {
        let e = entry("/data", "bind", "/srv", &["rbind", "rro", "rw"]);
        let runc = e.layers(Runtime::Runc);
        assert_eq!(runc.top.read_only, Level::Set);
        assert_eq!(runc.sub.map(|s| s.read_only), Some(Level::Set));
        let chroot = e.layers(Runtime::Chroot);
        assert_eq!(chroot.top.read_only, Level::Host);
    }

    #[test]
    fn a_bind_without_set_flags_keeps_the_hosts() {
        let e = entry("/data", "bind", "/srv", &["rbind", "rw"]);
        assert_eq!(e.layers(Runtime::Runc).top, Flags::HOST);
        let noexec = entry("/data", "bind", "/srv", &["rbind", "noexec"]);
        assert_eq!(noexec.layers(Runtime::Runc).top.nosuid, Level::Clear);
        assert_eq!(noexec.layers(Runtime::Chroot).top.nosuid, Level::Host);
    }

    #[test]
    fn clean_paths() {
        assert!(within("/", "/x"));
        assert!(within("/a", "/a/b"));
        assert!(!within("/a", "/ab"));
    }
}
