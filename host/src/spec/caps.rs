//! Capability names and sets over oci-spec's types.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use oci_spec::runtime::{Capability, LinuxCapabilities};

/// One of the five capability sets of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapSet {
    /// The bounding set.
    Bounding,
    /// The effective set.
    Effective,
    /// The inheritable set.
    Inheritable,
    /// The permitted set.
    Permitted,
    /// The ambient set.
    Ambient,
}

impl CapSet {
    /// Every set.
    pub const ALL: [CapSet; 5] = [
        CapSet::Bounding,
        CapSet::Effective,
        CapSet::Inheritable,
        CapSet::Permitted,
        CapSet::Ambient,
    ];

    /// The set's name, as in config.json.
    pub fn name(self) -> &'static str {
        match self {
            CapSet::Bounding => "bounding",
            CapSet::Effective => "effective",
            CapSet::Inheritable => "inheritable",
            CapSet::Permitted => "permitted",
            CapSet::Ambient => "ambient",
        }
    }
}

/// The canonical name of a capability, e.g. `CAP_NET_RAW`. A table, not
/// formatting: every hook's view of the container names each capability
/// of all five sets.
pub fn name(cap: Capability) -> &'static str {
    match cap {
        Capability::AuditControl => "CAP_AUDIT_CONTROL",
        Capability::AuditRead => "CAP_AUDIT_READ",
        Capability::AuditWrite => "CAP_AUDIT_WRITE",
        Capability::BlockSuspend => "CAP_BLOCK_SUSPEND",
        Capability::Bpf => "CAP_BPF",
        Capability::CheckpointRestore => "CAP_CHECKPOINT_RESTORE",
        Capability::Chown => "CAP_CHOWN",
        Capability::DacOverride => "CAP_DAC_OVERRIDE",
        Capability::DacReadSearch => "CAP_DAC_READ_SEARCH",
        Capability::Fowner => "CAP_FOWNER",
        Capability::Fsetid => "CAP_FSETID",
        Capability::IpcLock => "CAP_IPC_LOCK",
        Capability::IpcOwner => "CAP_IPC_OWNER",
        Capability::Kill => "CAP_KILL",
        Capability::Lease => "CAP_LEASE",
        Capability::LinuxImmutable => "CAP_LINUX_IMMUTABLE",
        Capability::MacAdmin => "CAP_MAC_ADMIN",
        Capability::MacOverride => "CAP_MAC_OVERRIDE",
        Capability::Mknod => "CAP_MKNOD",
        Capability::NetAdmin => "CAP_NET_ADMIN",
        Capability::NetBindService => "CAP_NET_BIND_SERVICE",
        Capability::NetBroadcast => "CAP_NET_BROADCAST",
        Capability::NetRaw => "CAP_NET_RAW",
        Capability::Perfmon => "CAP_PERFMON",
        Capability::Setgid => "CAP_SETGID",
        Capability::Setfcap => "CAP_SETFCAP",
        Capability::Setpcap => "CAP_SETPCAP",
        Capability::Setuid => "CAP_SETUID",
        Capability::SysAdmin => "CAP_SYS_ADMIN",
        Capability::SysBoot => "CAP_SYS_BOOT",
        Capability::SysChroot => "CAP_SYS_CHROOT",
        Capability::SysModule => "CAP_SYS_MODULE",
        Capability::SysNice => "CAP_SYS_NICE",
        Capability::SysPacct => "CAP_SYS_PACCT",
        Capability::SysPtrace => "CAP_SYS_PTRACE",
        Capability::SysRawio => "CAP_SYS_RAWIO",
        Capability::SysResource => "CAP_SYS_RESOURCE",
        Capability::SysTime => "CAP_SYS_TIME",
        Capability::SysTtyConfig => "CAP_SYS_TTY_CONFIG",
        Capability::Syslog => "CAP_SYSLOG",
        Capability::WakeAlarm => "CAP_WAKE_ALARM",
    }
}

/// Parses a capability name in any case, with or without `CAP_`.
pub fn parse(name: &str) -> Option<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).ok()
}

/// Parses a capability name exactly as plugins must write it: canonical,
/// `CAP_` and upper case.
pub fn parse_canonical(name: &str) -> Option<Capability> {
    name.strip_prefix("CAP_")
        .filter(|bare| {
            bare.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .and_then(|bare| Capability::from_str(bare).ok())
}

/// The capabilities in one set (empty when the set is absent).
pub fn get(caps: &LinuxCapabilities, set: CapSet) -> HashSet<Capability> {
    set_of(caps, set).clone().unwrap_or_default()
}

fn set_of(caps: &LinuxCapabilities, set: CapSet) -> &Option<HashSet<Capability>> {
    match set {
        CapSet::Bounding => caps.bounding(),
        CapSet::Effective => caps.effective(),
        CapSet::Inheritable => caps.inheritable(),
        CapSet::Permitted => caps.permitted(),
        CapSet::Ambient => caps.ambient(),
    }
}

/// Replaces one set.
pub fn put(caps: &mut LinuxCapabilities, set: CapSet, value: HashSet<Capability>) {
    let value = Some(value);
    match set {
        CapSet::Bounding => caps.set_bounding(value),
        CapSet::Effective => caps.set_effective(value),
        CapSet::Inheritable => caps.set_inheritable(value),
        CapSet::Permitted => caps.set_permitted(value),
        CapSet::Ambient => caps.set_ambient(value),
    };
}

/// Every capability, in kernel number order (`CAP_CHOWN` is 0).
const BY_NUMBER: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bounding set of the default spec, for tests.
#[cfg(test)]
pub(crate) fn default_bounding() -> HashSet<Capability> {
    let spec = super::default_spec("id", &["true".into()]);
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .unwrap_or_default();
    get(&caps, CapSet::Bounding)
}

/// Every capability the running kernel knows (`ALL` in `--cap-add`), as
/// podman counts them: up to /proc/sys/kernel/cap_last_cap.
pub fn all() -> HashSet<Capability> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(BY_NUMBER.len() - 1);
    BY_NUMBER
        .iter()
        .take(last + 1)
        .filter_map(|bare| Capability::from_str(bare).ok())
        .collect()
}

/// One `--cap-add`/`--cap-drop` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapArg {
    /// `ALL`.
    All,
    /// One capability.
    One(Capability),
}

impl FromStr for CapArg {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.trim().eq_ignore_ascii_case("all") {
            return Ok(CapArg::All);
        }
        parse(value)
            .map(CapArg::One)
            .ok_or_else(|| format!("unknown capability `{value}`"))
    }
}

impl fmt::Display for CapArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapArg::All => f.write_str("ALL"),
            CapArg::One(cap) => f.write_str(name(*cap)),
        }
    }
}

/// A capability both added and dropped: podman refuses it too, since
/// neither order would say what the user meant.
#[derive(Debug, thiserror::Error)]
#[error("--cap-add {0} and --cap-drop {0}: a capability cannot be both added and dropped")]
pub struct CapConflict(pub String);

/// The process's capabilities after `--cap-add` and `--cap-drop`, as
/// podman computes them: `--cap-drop ALL` keeps only what is added,
/// `--cap-add ALL` keeps everything but what is dropped, otherwise the
/// current set plus additions minus drops.
///
/// Bounding, effective and permitted get the result; inheritable and
/// ambient stay empty (CVE-2022-27651). A user other than root keeps only
/// the bounding set, as buildah does: without ambient capabilities, an
/// unprivileged process loses effective and permitted ones at `execve`
/// anyway, so granting them would only mislead.
pub fn apply(
    caps: &mut LinuxCapabilities,
    add: &[CapArg],
    drop: &[CapArg],
    root: bool,
) -> Result<(), CapConflict> {
    for arg in add {
        if let CapArg::One(cap) = arg
            && drop.contains(arg)
        {
            return Err(CapConflict(name(*cap).to_string()));
        }
    }
    let ones = |args: &[CapArg]| -> HashSet<Capability> {
        args.iter()
            .filter_map(|a| match a {
                CapArg::One(cap) => Some(*cap),
                CapArg::All => None,
            })
            .collect()
    };
    let result: HashSet<Capability> = if drop.contains(&CapArg::All) {
        if add.contains(&CapArg::All) {
            all()
        } else {
            ones(add)
        }
    } else {
        let mut set = if add.contains(&CapArg::All) {
            all()
        } else {
            let mut set = get(caps, CapSet::Bounding);
            set.extend(ones(add));
            set
        };
        for cap in ones(drop) {
            set.remove(&cap);
        }
        set
    };
    put(caps, CapSet::Bounding, result.clone());
    let granted = if root { result } else { HashSet::new() };
    put(caps, CapSet::Effective, granted.clone());
    put(caps, CapSet::Permitted, granted);
    put(caps, CapSet::Inheritable, HashSet::new());
    put(caps, CapSet::Ambient, HashSet::new());
    Ok(())
}

/// The names in one set, sorted.
pub fn names(caps: &LinuxCapabilities, set: CapSet) -> Vec<String> {
    let mut names: Vec<&str> = set_of(caps, set)
        .iter()
        .flatten()
        .map(|c| name(*c))
        .collect();
    names.sort_unstable();
    names.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_table_agrees_with_the_kernel_and_config_json() {
        for known in ::caps::all() {
            let cap = parse_canonical(&known.to_string()).expect("oci-spec names it");
            assert_eq!(name(cap), known.to_string());
            assert_eq!(serde_json::to_value(cap).unwrap(), name(cap));
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse("net_raw"), Some(Capability::NetRaw));
        assert_eq!(parse("CAP_SYS_ADMIN"), Some(Capability::SysAdmin));
        assert_eq!(name(Capability::NetBindService), "CAP_NET_BIND_SERVICE");
        assert_eq!(parse("CAP_FOO"), None);
        assert_eq!(parse_canonical("CAP_NET_RAW"), Some(Capability::NetRaw));
        assert_eq!(parse_canonical("net_raw"), None);
        assert_eq!(parse_canonical("CAP_net_raw"), None);
    }

    fn defaults() -> LinuxCapabilities {
        let mut caps = LinuxCapabilities::default();
        let set: HashSet<Capability> = [Capability::Chown, Capability::Kill].into();
        for s in CapSet::ALL {
            put(&mut caps, s, set.clone());
        }
        caps
    }

    fn args(values: &[&str]) -> Vec<CapArg> {
        values.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn added_and_dropped_capabilities_reach_three_sets_and_never_the_other_two() {
        let mut caps = defaults();
        apply(&mut caps, &args(&["net_raw"]), &args(&["CAP_KILL"]), true).unwrap();
        let expected = vec!["CAP_CHOWN".to_string(), "CAP_NET_RAW".to_string()];
        for set in [CapSet::Bounding, CapSet::Effective, CapSet::Permitted] {
            assert_eq!(names(&caps, set), expected, "{set:?}");
        }
        assert!(names(&caps, CapSet::Inheritable).is_empty());
        assert!(names(&caps, CapSet::Ambient).is_empty());
    }

    #[test]
    fn all_works_both_ways() {
        let mut caps = defaults();
        apply(&mut caps, &args(&["sys_admin"]), &args(&["ALL"]), true).unwrap();
        assert_eq!(names(&caps, CapSet::Bounding), ["CAP_SYS_ADMIN"]);
        let mut caps = defaults();
        apply(&mut caps, &args(&["all"]), &args(&["CAP_SYS_ADMIN"]), true).unwrap();
        let bounding = names(&caps, CapSet::Bounding);
        assert!(bounding.len() > 30);
        assert!(!bounding.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn a_user_other_than_root_keeps_only_the_bounding_set() {
        let mut caps = defaults();
        apply(&mut caps, &args(&["NET_BIND_SERVICE"]), &[], false).unwrap();
        assert_eq!(names(&caps, CapSet::Bounding).len(), 3);
        assert!(names(&caps, CapSet::Effective).is_empty());
        assert!(names(&caps, CapSet::Permitted).is_empty());
    }

    #[test]
    fn unknown_and_conflicting_capabilities_are_refused() {
        assert_eq!(
            "CAP_FOO".parse::<CapArg>(),
            Err("unknown capability `CAP_FOO`".into())
        );
        let error = apply(
            &mut defaults(),
            &args(&["NET_RAW"]),
            &args(&["net_raw"]),
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("CAP_NET_RAW"), "{error}");
    }
}
