//! `process.capabilities`: all five sets, applied as runc applies them.
//! The bounding set is cut first, while the process is still root;
//! keep-caps lets the permitted set survive the switch to the container's
//! user, after which effective, permitted and inheritable are set at
//! once and the ambient set raised.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use oci_spec::runtime::LinuxCapabilities;

use super::error::InitError;

/// The five sets, as the kernel names their capabilities.
#[derive(Debug, Default)]
pub struct Sets {
    bounding: HashSet<Capability>,
    effective: HashSet<Capability>,
    permitted: HashSet<Capability>,
    inheritable: HashSet<Capability>,
    ambient: HashSet<Capability>,
}

/// The spec's sets; a capability this kernel does not know is dropped
/// with a debug line, as runc does.
pub fn sets(caps: Option<&LinuxCapabilities>) -> Sets {
    let Some(caps) = caps else {
        return Sets::default();
    };
    let known = caps::runtime::thread_all_supported();
    let convert = |set: &Option<HashSet<oci_spec::runtime::Capability>>| -> HashSet<Capability> {
        set.iter()
            .flatten()
            .filter_map(|c| {
                let name = crate::spec::caps::name(*c);
                let cap = name
                    .parse::<Capability>()
                    .ok()
                    .filter(|c| known.contains(c));
                if cap.is_none() {
                    tracing::debug!("capability {name} unknown to this kernel, skipped");
                }
                cap
            })
            .collect()
    };
    Sets {
        bounding: convert(caps.bounding()),
        effective: convert(caps.effective()),
        permitted: convert(caps.permitted()),
        inheritable: convert(caps.inheritable()),
        ambient: convert(caps.ambient()),
    }
}

fn cap_error(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> InitError {
    move |e| InitError::Capabilities {
        what,
        message: e.to_string(),
    }
}

/// Cuts the bounding set down to the spec's.
pub fn apply_bounding(sets: &Sets) -> Result<(), InitError> {
    for cap in caps::runtime::thread_all_supported() {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(cap_error("bounding"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable, then raises the ambient
/// set (which needs each capability permitted and inheritable).
pub fn apply(sets: &Sets) -> Result<(), InitError> {
    // Effective first, from the permitted set keep-caps preserved: it
    // brings back CAP_SETPCAP, which setting inheritable may need.
    let effective = sets
        .effective
        .intersection(&sets.permitted)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &effective).map_err(cap_error("effective"))?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable).map_err(cap_error("inheritable"))?;
    caps::set(None, CapSet::Permitted, &sets.permitted).map_err(cap_error("permitted"))?;
    caps::clear(None, CapSet::Ambient).map_err(cap_error("ambient"))?;
    for cap in &sets.ambient {
        caps::raise(None, CapSet::Ambient, *cap).map_err(cap_error("ambient"))?;
    }
    Ok(())
}
