//! Test-only: a plugin built against `specgate:policy@0.1.1`, the version
//! after the examples' 0.1.0, using what 0.1.1 adds (`host.log-enabled`).
//! It drops one capability from every set: the `capability` setting,
//! `CAP_NET_BIND_SERVICE` by default.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "capabilities-policy",
    path: "../../../wit/0.1.1",
});

use exports::specgate::policy::{capabilities, plugin};
use specgate::policy::host::{self, Level};
use specgate::policy::types::{
    CapabilityChange, CapabilitySet, CapabilityTarget, Container, Denial,
};

thread_local! {
    static CAPABILITY: RefCell<String> = RefCell::new("CAP_NET_BIND_SERVICE".to_string());
}

struct NewerContract;

impl plugin::Guest for NewerContract {
    fn describe() -> plugin::Info {
        plugin::Info {
            name: "newer-contract".into(),
            version: "0.1.1".into(),
            description: "built against specgate:policy@0.1.1".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        for (key, value) in settings {
            match key.as_str() {
                "capability" => CAPABILITY.with(|c| *c.borrow_mut() = value),
                _ => return Err(format!("unknown setting `{key}`")),
            }
        }
        Ok(())
    }
}

impl capabilities::Guest for NewerContract {
    fn adjust(container: Container) -> Result<Vec<CapabilityChange>, Denial> {
        let name = CAPABILITY.with(|c| c.borrow().clone());
        if host::log_enabled(Level::Debug) {
            host::log(
                Level::Debug,
                &format!("dropping {name} from container {}", container.id),
            );
        }
        Ok(vec![CapabilityChange::Drop(CapabilityTarget {
            name,
            sets: vec![
                CapabilitySet::Bounding,
                CapabilitySet::Effective,
                CapabilitySet::Inheritable,
                CapabilitySet::Permitted,
                CapabilitySet::Ambient,
            ],
        })])
    }
}

export!(NewerContract);
