//! A test plugin that tries to get past the gate's limits, for the host's
//! tests (`tests/it/gate_limits.rs`). Its `mode` setting picks how:
//!
//! - `large-changes`: the `mounts` hook adds `count` tmpfs mounts (nosuid,
//!   nodev, noexec: restricting), each at a destination about `size`
//!   bytes long under `/flood/TAG` (`tag` setting), to grow the container
//!   past what a later plugin can read.
//! - `empty-logs`: the `capabilities` hook logs `count` empty messages.
//! - `forge`: the `validate` hook's denial reason holds newlines and
//!   terminal escapes that would forge a `(no changes)` block and erase
//!   the line it is printed on; `describe` always holds them.
//! - `validator-trap`, `validator-memory`, `validator-loop`: the
//!   `validate` hook panics, allocates without end, or never returns.
//! - `trap-then-deny`: the `mounts` hook panics, and `validate` denies
//!   every container.
//! - `quiet` (default): does nothing.

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "policy", path: "../../../wit");

static MODE: OnceLock<String> = OnceLock::new();
static COUNT: OnceLock<usize> = OnceLock::new();
static SIZE: OnceLock<usize> = OnceLock::new();
static TAG: OnceLock<String> = OnceLock::new();

const MODES: &[&str] = &[
    "large-changes",
    "empty-logs",
    "forge",
    "validator-trap",
    "validator-memory",
    "validator-loop",
    "trap-then-deny",
    "quiet",
];

/// Text that, printed as it is, ends the line, prints a fake block for
/// another plugin, then moves the cursor up and erases a line.
const FORGED: &str = "ok\nplugin readonly-mounts (/usr/lib/specgate/readonly_mounts.wasm)\n  (no changes)\n\u{1b}[1A\u{1b}[2K\r\u{9b}2K";

fn mode() -> &'static str {
    MODE.get().map(String::as_str).unwrap_or("quiet")
}

struct Flood;

impl exports::specgate::policy::plugin::Guest for Flood {
    /// Forged whatever the settings: `plugin inspect` calls `describe`
    /// without configuring the plugin.
    fn describe() -> Info {
        Info {
            name: "flood".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: format!("floods the host's limits{FORGED}"),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let mode = settings.string("mode").unwrap_or("quiet".into());
        if !MODES.contains(&mode.as_str()) {
            settings.error(format!("setting `mode`: unknown `{mode}`"));
        }
        let number = |settings: &mut Settings, key: &str, default: usize| match settings
            .string(key)
            .map(|v| v.parse::<usize>())
        {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                settings.error(format!("setting `{key}`: not a number"));
                default
            }
        };
        let count = number(&mut settings, "count", 1000);
        let size = number(&mut settings, "size", 1000);
        let tag = settings.string("tag").unwrap_or("a".into());
        settings.finish()?;
        let _ = MODE.set(mode);
        let _ = COUNT.set(count);
        let _ = SIZE.set(size);
        let _ = TAG.set(tag);
        Ok(())
    }
}

impl exports::specgate::policy::capabilities::Guest for Flood {
    fn adjust(_container: Container) -> Result<Vec<CapabilityChange>, Denial> {
        if mode() == "empty-logs" {
            for _ in 0..COUNT.get().copied().unwrap_or(0) {
                log::info("");
            }
        }
        Ok(vec![])
    }
}

impl exports::specgate::policy::mounts::Guest for Flood {
    fn adjust(_container: Container) -> Result<Vec<MountChange>, Denial> {
        match mode() {
            "large-changes" => {
                let tag = TAG.get().map(String::as_str).unwrap_or("a");
                let size = SIZE.get().copied().unwrap_or(0);
                // Components of at most 200 bytes: long, but each a name a
                // file system would take.
                let long: Vec<String> = (0..size.div_ceil(201)).map(|_| "f".repeat(200)).collect();
                let long = long.join("/");
                Ok((0..COUNT.get().copied().unwrap_or(0))
                    .map(|n| {
                        add_tmpfs(
                            &format!("/flood/{tag}/{n}/{long}"),
                            &["nosuid", "nodev", "noexec", "size=4k"],
                        )
                    })
                    .collect())
            }
            "trap-then-deny" => panic!("flood panics in its mounts hook"),
            _ => Ok(vec![]),
        }
    }
}

impl exports::specgate::policy::namespaces::Guest for Flood {
    fn adjust(_container: Container) -> Result<Vec<NamespaceChange>, Denial> {
        Ok(vec![])
    }
}

impl exports::specgate::policy::validate::Guest for Flood {
    fn check(_container: Container) -> Result<(), Denial> {
        match mode() {
            "forge" => Err(deny(FORGED)),
            "validator-trap" => panic!("flood's validator panics"),
            "validator-memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "validator-loop" => loop {
                std::hint::black_box(());
            },
            "trap-then-deny" => Err(deny("flood's validator refuses every container")),
            _ => Ok(()),
        }
    }
}

export!(Flood);
