//! Validator: denies privileged containers, those holding CAP_SYS_ADMIN
//! in any set or sharing the host's pid or network namespace.
//!
//! Settings: `capabilities` (default `CAP_SYS_ADMIN`) and
//! `host-namespaces` (default `pid,network`), comma-separated.

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "validator", path: "../../wit");

struct Config {
    capabilities: Vec<String>,
    host_namespaces: Vec<NamespaceKind>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct DenyPrivileged;

impl exports::specgate::policy::plugin::Guest for DenyPrivileged {
    fn describe() -> Info {
        Info {
            name: "deny-privileged".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "denies CAP_SYS_ADMIN and the host's pid or network namespace".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let capabilities = settings
            .list("capabilities")
            .map(|names| names.iter().map(|n| canonical_capability(n)).collect())
            .unwrap_or_else(|| vec!["CAP_SYS_ADMIN".to_string()]);
        let host_namespaces = settings
            .parsed_list("host-namespaces", "a namespace kind", parse_namespace_kind)
            .unwrap_or_else(|| vec![NamespaceKind::Pid, NamespaceKind::Network]);
        settings.finish()?;
        let _ = CONFIG.set(Config {
            capabilities,
            host_namespaces,
        });
        Ok(())
    }
}

impl exports::specgate::policy::validate::Guest for DenyPrivileged {
    fn check(container: Container) -> Result<(), Denial> {
        let config = CONFIG
            .get()
            .ok_or_else(|| deny("deny-privileged was not configured"))?;
        for cap in &config.capabilities {
            if container.has_capability(cap) {
                return Err(deny(format!("privileged: the container holds {cap}")));
            }
        }
        for kind in &config.host_namespaces {
            if container.namespace(*kind).is_none() {
                return Err(deny(format!(
                    "privileged: the container shares the host's {} namespace",
                    namespace_kind_name(*kind)
                )));
            }
        }
        Ok(())
    }
}

export!(DenyPrivileged);
