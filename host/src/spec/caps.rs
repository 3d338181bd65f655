//! Capability names and sets over oci-spec's types.

use std::collections::HashSet;
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

/// The canonical name of a capability, e.g. `CAP_NET_RAW`.
pub fn name(cap: Capability) -> String {
    format!("CAP_{cap}")
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
    let value = match set {
        CapSet::Bounding => caps.bounding(),
        CapSet::Effective => caps.effective(),
        CapSet::Inheritable => caps.inheritable(),
        CapSet::Permitted => caps.permitted(),
        CapSet::Ambient => caps.ambient(),
    };
    value.clone().unwrap_or_default()
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

/// The names in one set, sorted.
pub fn names(caps: &LinuxCapabilities, set: CapSet) -> Vec<String> {
    let mut names: Vec<String> = get(caps, set).into_iter().map(name).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
