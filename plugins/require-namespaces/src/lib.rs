//! Ensures the container gets new namespaces of the configured kinds.
//!
//! Settings: `namespaces`, comma-separated kinds (default: pid, ipc, uts,
//! network). A kind shared with the host or joined by path is replaced by
//! a new one.

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "namespaces-policy", path: "../../wit");

const DEFAULT_KINDS: [NamespaceKind; 4] = [
    NamespaceKind::Pid,
    NamespaceKind::Ipc,
    NamespaceKind::Uts,
    NamespaceKind::Network,
];

static KINDS: OnceLock<Vec<NamespaceKind>> = OnceLock::new();

struct RequireNamespaces;

impl exports::specgate::policy::plugin::Guest for RequireNamespaces {
    fn describe() -> Info {
        Info {
            name: "require-namespaces".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "ensures new pid, ipc, uts and network namespaces (configurable)".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let kinds = settings
            .parsed_list("namespaces", "a namespace kind", parse_namespace_kind)
            .unwrap_or_else(|| DEFAULT_KINDS.to_vec());
        settings.finish()?;
        let _ = KINDS.set(kinds);
        Ok(())
    }
}

impl exports::specgate::policy::namespaces::Guest for RequireNamespaces {
    fn adjust(container: Container) -> Result<Vec<NamespaceChange>, Denial> {
        let kinds = KINDS.get().map(Vec::as_slice).unwrap_or(&DEFAULT_KINDS);
        Ok(kinds
            .iter()
            .filter(|kind| !container.has_new_namespace(**kind))
            .map(|kind| create_namespace(*kind))
            .collect())
    }
}

export!(RequireNamespaces);
