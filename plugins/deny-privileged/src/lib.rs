//! Validator: denies privileged containers, those holding CAP_SYS_ADMIN
//! in any set, sharing the host's pid or network namespace, or joining
//! an existing namespace by path (`/proc/1/ns/net` is the host's).
//!
//! Settings: `capabilities` (default `CAP_SYS_ADMIN`),
//! `host-namespaces` (default `pid,network`) and `namespace-paths`, the
//! namespace files the container may join (default: none), all
//! comma-separated.

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "validator", path: "../../wit");

struct Config {
    capabilities: Vec<String>,
    host_namespaces: Vec<NamespaceKind>,
    namespace_paths: Vec<String>,
}

/// An absolute path cleaned as the host cleans paths, so that no
/// spelling of a path escapes the list; `None` when it is not absolute.
fn clean(path: &str) -> Option<String> {
    path.starts_with('/').then(|| clean_path(path))
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct DenyPrivileged;

impl exports::specgate::policy::plugin::Guest for DenyPrivileged {
    fn describe() -> Info {
        Info {
            name: "deny-privileged".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "denies CAP_SYS_ADMIN, the host's pid or network namespace, and joined namespaces"
                    .into(),
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
        let namespace_paths = settings
            .parsed_list("namespace-paths", "an absolute path", clean)
            .unwrap_or_default();
        settings.finish()?;
        let _ = CONFIG.set(Config {
            capabilities,
            host_namespaces,
            namespace_paths,
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
        for namespace in &container.namespaces {
            let Some(path) = &namespace.path else {
                continue;
            };
            let allowed = clean(path).is_some_and(|p| config.namespace_paths.contains(&p));
            if !allowed {
                return Err(deny(format!(
                    "privileged: the container joins the {} namespace at `{path}`, \
                     which `namespace-paths` does not allow",
                    namespace_kind_name(namespace.kind)
                )));
            }
        }
        Ok(())
    }
}

export!(DenyPrivileged);
