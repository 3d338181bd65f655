//! Makes every bind mount read-only, except allow-listed destinations.
//!
//! Settings: `allow`, comma-separated container destinations whose bind
//! mounts may stay writable (default: none).

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "mounts-policy", path: "../../wit");

static ALLOW: OnceLock<Vec<String>> = OnceLock::new();

struct ReadonlyMounts;

impl exports::specgate::policy::plugin::Guest for ReadonlyMounts {
    fn describe() -> Info {
        Info {
            name: "readonly-mounts".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "makes every bind mount read-only except allow-listed destinations".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let allow = settings.list("allow").unwrap_or_default();
        if let Some(bad) = allow.iter().find(|d| !d.starts_with('/')) {
            settings.error(format!("setting `allow`: `{bad}` is not an absolute path"));
        }
        settings.finish()?;
        let _ = ALLOW.set(allow);
        Ok(())
    }
}

impl exports::specgate::policy::mounts::Guest for ReadonlyMounts {
    fn adjust(container: Container) -> Result<Vec<MountChange>, Denial> {
        let allow = ALLOW.get().map(Vec::as_slice).unwrap_or_default();
        Ok(container
            .bind_mounts()
            .filter(|m| !m.is_read_only() && !allow.contains(&m.destination))
            .map(|m| {
                let mut options: Vec<String> =
                    m.options.iter().filter(|o| *o != "rw").cloned().collect();
                options.push("ro".to_string());
                set_mount_options(&m.destination, options)
            })
            .collect())
    }
}

export!(ReadonlyMounts);
