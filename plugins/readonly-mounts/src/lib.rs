//! Makes every bind mount read-only, except allow-listed destinations.
//!
//! Settings: `allow`, comma-separated container destinations whose bind
//! mounts may stay writable (default: none).
//!
//! A mount counts as read-only as the host judges it (the last of `ro`
//! and `rw` wins), so `ro,rw` is made read-only too. A runtime remounts a
//! bind with exactly the flags its options set, clearing the source's
//! own: a bind whose options set none kept the source's `nosuid`,
//! `nodev` and `noexec`, which this plugin cannot see, so it sets all
//! three with `ro` (the change would otherwise loosen them). A recursive
//! bind's submounts are made read-only too (`rro`).

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
        let allow = allow.iter().map(|d| clean_path(d)).collect();
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
            .filter(|m| !m.is_read_only() && !allow.contains(&clean_path(&m.destination)))
            .map(|m| {
                let mut options: Vec<String> = m
                    .options
                    .iter()
                    .filter(|o| *o != "rw" && *o != "rrw")
                    .cloned()
                    .collect();
                if !m.sets_flags() {
                    options.extend(["nosuid", "nodev", "noexec"].map(String::from));
                }
                options.push("ro".to_string());
                if m.options.iter().any(|o| o == "rbind") {
                    options.push("rro".to_string());
                }
                set_mount_options(&clean_path(&m.destination), options)
            })
            .collect())
    }
}

export!(ReadonlyMounts);
