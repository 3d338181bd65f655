//! Drops a configured list of capabilities from every set.
//!
//! Settings: `capabilities`, comma-separated names (with or without
//! `CAP_`, any case); default: a set that lets a container escape or
//! attack the host (CAP_SYS_ADMIN, CAP_NET_RAW, CAP_SYS_PTRACE,
//! CAP_SYS_MODULE, CAP_MKNOD).

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "capabilities-policy", path: "../../wit");

const DEFAULT_DROP: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_NET_RAW",
    "CAP_SYS_PTRACE",
    "CAP_SYS_MODULE",
    "CAP_MKNOD",
];

static DROP: OnceLock<Vec<String>> = OnceLock::new();

struct DropCapabilities;

impl exports::specgate::policy::plugin::Guest for DropCapabilities {
    fn describe() -> Info {
        Info {
            name: "drop-capabilities".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "drops a configured list of capabilities from every set".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let drop = settings
            .list("capabilities")
            .map(|names| names.iter().map(|n| canonical_capability(n)).collect())
            .unwrap_or_else(|| DEFAULT_DROP.iter().map(|n| n.to_string()).collect());
        settings.finish()?;
        let _ = DROP.set(drop);
        Ok(())
    }
}

impl exports::specgate::policy::capabilities::Guest for DropCapabilities {
    fn adjust(container: Container) -> Result<Vec<CapabilityChange>, Denial> {
        let drop = DROP.get().map(Vec::as_slice).unwrap_or_default();
        let changes: Vec<_> = drop
            .iter()
            .filter(|name| container.has_capability(name))
            .map(|name| drop_capability(name))
            .collect();
        if !changes.is_empty() {
            log::debug(&format!("dropping {} capabilities", changes.len()));
        }
        Ok(changes)
    }
}

export!(DropCapabilities);
