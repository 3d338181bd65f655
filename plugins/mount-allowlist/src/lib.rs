//! Validator: denies a bind mount whose host source is not under one of
//! the configured prefixes.
//!
//! Settings: `prefixes`, comma-separated absolute host paths (default:
//! none, so every bind mount is denied). Sources are compared after
//! resolving `.` and `..`, component by component, so `/srv/data/../etc`
//! is not under `/srv/data` and `/srv/database` is not under `/srv/data`.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

specgate_sdk::bindings!(world: "validator", path: "../../wit");

static PREFIXES: OnceLock<Vec<PathBuf>> = OnceLock::new();

struct MountAllowlist;

/// Resolves `.` and `..` without touching any file system: the plugin has
/// none, and the host re-checks sources against the real one.
fn normalize(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

impl exports::specgate::policy::plugin::Guest for MountAllowlist {
    fn describe() -> Info {
        Info {
            name: "mount-allowlist".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "denies bind mounts whose host source is not under configured prefixes"
                .into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let prefixes = settings
            .parsed_list("prefixes", "an absolute path", normalize)
            .unwrap_or_default();
        settings.finish()?;
        let _ = PREFIXES.set(prefixes);
        Ok(())
    }
}

impl exports::specgate::policy::validate::Guest for MountAllowlist {
    fn check(container: Container) -> Result<(), Denial> {
        let prefixes = PREFIXES.get().map(Vec::as_slice).unwrap_or_default();
        for mount in container.bind_mounts() {
            let source = mount.source.as_deref().unwrap_or_default();
            let allowed = normalize(source)
                .is_some_and(|source| prefixes.iter().any(|prefix| source.starts_with(prefix)));
            if !allowed {
                return Err(deny(format!(
                    "bind mount of host path `{source}` at `{}` is not under an allowed prefix",
                    mount.destination
                )));
            }
        }
        Ok(())
    }
}

export!(MountAllowlist);
