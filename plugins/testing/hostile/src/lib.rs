//! Test-only: a plugin that misbehaves on purpose, to show the host stops
//! it cleanly and stays usable.
//!
//! Settings: `behavior`, one of `loop`, `sleep`, `memory`, `recursion`,
//! `panic`, `flood`, `log-flood`, `print-flood`, `bad-mount`,
//! `bad-capability`, `bad-join`, `deny`, `add-capability` (the
//! `capability` setting, default CAP_NET_ADMIN), `share-host-network`,
//! `bind-host` (binds the `source` setting at /host), `join-network`
//! (joins /proc/1/ns/net), `map-ids`, `mount-proc` (a second proc at
//! /proc2), `loosen-sys` (drops `ro` from /sys), `deny-annotation`
//! (refuses a container carrying the annotation named by the `annotation`
//! setting, default `specgate.test/deny`, giving the annotation's value as
//! the reason: containerd passes a pod's annotations on only when they
//! match its `pod_annotations`, such as `specgate.io/*`), `well-behaved`
//! (default).
//! Each acts in the hook named by its effect: mount changes in `mounts`,
//! namespace changes in `namespaces`, a verdict on the final container in
//! `validate`, everything else in `capabilities`.
//!
//! Attacks on the gate's model of mounts, each a mount change that looks
//! harmless and is not: `append-options` sets the options of the mount
//! at the `destination` setting (used as written, so `/data/` respells
//! `/data`) to its own followed by the `options` setting (`ro,rw` is
//! read-write); `remove-mount` removes the mount at `destination`;
//! `make-recursive` turns the bind at `destination` into a recursive one.
//! `destination` defaults to /sys, `options` to `rw`.

use std::sync::OnceLock;

specgate_sdk::bindings!(world: "policy", path: "../../../wit");

static BEHAVIOR: OnceLock<String> = OnceLock::new();
static CAPABILITY: OnceLock<String> = OnceLock::new();
static SOURCE: OnceLock<String> = OnceLock::new();
static DESTINATION: OnceLock<String> = OnceLock::new();
static OPTIONS: OnceLock<Vec<String>> = OnceLock::new();
static ANNOTATION: OnceLock<String> = OnceLock::new();

/// The annotation `deny-annotation` refuses unless the `annotation`
/// setting names another.
const DENY_ANNOTATION: &str = "specgate.test/deny";

const BEHAVIORS: &[&str] = &[
    "loop",
    "sleep",
    "memory",
    "recursion",
    "panic",
    "flood",
    "log-flood",
    "print-flood",
    "bad-mount",
    "bad-capability",
    "bad-join",
    "deny",
    "add-capability",
    "share-host-network",
    "bind-host",
    "join-network",
    "map-ids",
    "mount-proc",
    "loosen-sys",
    "deny-annotation",
    "well-behaved",
    // Attacks on the model of mounts.
    "append-options",
    "remove-mount",
    "make-recursive",
];

fn behavior() -> &'static str {
    BEHAVIOR.get().map(String::as_str).unwrap_or("well-behaved")
}

/// Recursion the optimiser cannot turn into a loop (the result passes
/// through `black_box` after the call), with frames small enough that the
/// engine's native stack limit is reached before the shadow stack in
/// linear memory runs out.
#[inline(never)]
#[allow(unconditional_recursion, reason = "a stack overflow is the point")]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)).wrapping_add(depth)
}

struct Hostile;

impl exports::specgate::policy::plugin::Guest for Hostile {
    fn describe() -> Info {
        Info {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "misbehaves on purpose, for the host's tests".into(),
        }
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        let mut settings = Settings::new(settings);
        let behavior = settings.string("behavior").unwrap_or("well-behaved".into());
        if !BEHAVIORS.contains(&behavior.as_str()) {
            settings.error(format!("setting `behavior`: unknown `{behavior}`"));
        }
        let capability = settings
            .string("capability")
            .unwrap_or("CAP_NET_ADMIN".into());
        let source = settings.string("source").unwrap_or("/srv".into());
        let destination = settings.string("destination").unwrap_or("/sys".into());
        let options = settings.list("options").unwrap_or(vec!["rw".into()]);
        let annotation = settings
            .string("annotation")
            .unwrap_or(DENY_ANNOTATION.into());
        settings.finish()?;
        let _ = ANNOTATION.set(annotation);
        let _ = DESTINATION.set(destination);
        let _ = OPTIONS.set(options);
        let _ = BEHAVIOR.set(behavior);
        let _ = CAPABILITY.set(capability);
        let _ = SOURCE.set(source);
        Ok(())
    }
}

impl exports::specgate::policy::capabilities::Guest for Hostile {
    fn adjust(_container: Container) -> Result<Vec<CapabilityChange>, Denial> {
        match behavior() {
            "loop" => loop {
                std::hint::black_box(());
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(vec![])
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                std::hint::black_box(recurse(0));
                Ok(vec![])
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            "flood" => Ok((0..100_000).map(|_| drop_capability("CAP_CHOWN")).collect()),
            "log-flood" => {
                let line = "x".repeat(1 << 20);
                for _ in 0..100 {
                    log::info(&line);
                }
                Ok(vec![])
            }
            "print-flood" => {
                let line = "y".repeat(1 << 20);
                for _ in 0..100 {
                    println!("{line}");
                }
                Ok(vec![])
            }
            "bad-capability" => Ok(vec![drop_capability("CAP_FOO")]),
            "deny" => Err(deny("hostile plugin refuses every container")),
            "add-capability" => Ok(vec![add_capability(
                CAPABILITY
                    .get()
                    .map(String::as_str)
                    .unwrap_or("CAP_NET_ADMIN"),
            )]),
            _ => Ok(vec![]),
        }
    }
}

impl exports::specgate::policy::mounts::Guest for Hostile {
    fn adjust(container: Container) -> Result<Vec<MountChange>, Denial> {
        match behavior() {
            "mount-proc" => Ok(vec![add_mount(Mount {
                destination: "/proc2".into(),
                kind: Some("proc".into()),
                source: Some("proc".into()),
                options: vec!["nosuid".into(), "nodev".into(), "noexec".into()],
            })]),
            "loosen-sys" => Ok(container
                .mounts
                .iter()
                .filter(|m| m.destination == "/sys")
                .map(|m| {
                    let options = m.options.iter().filter(|o| *o != "ro").cloned().collect();
                    set_mount_options("/sys", options)
                })
                .collect()),
            "bad-mount" => Ok(vec![add_tmpfs("relative/path", &[])]),
            "bind-host" => Ok(vec![add_bind_mount(
                SOURCE.get().map(String::as_str).unwrap_or("/srv"),
                "/host",
                false,
            )]),
            behavior => Ok(model_attack(behavior, &container)),
        }
    }
}

/// The attacks on the gate's model of mounts: changes a reader of words
/// would call restricting.
fn model_attack(behavior: &str, container: &Container) -> Vec<MountChange> {
    let destination = DESTINATION.get().map(String::as_str).unwrap_or("/sys");
    let options = OPTIONS.get().cloned().unwrap_or_default();
    let target = destination.trim_end_matches('/');
    let target = if target.is_empty() { "/" } else { target };
    let existing = container
        .mounts
        .iter()
        .find(|m| m.destination.trim_end_matches('/') == target);
    match (behavior, existing) {
        ("append-options", Some(mount)) => {
            let mut all = mount.options.clone();
            all.extend(options);
            vec![set_mount_options(destination, all)]
        }
        ("remove-mount", _) => vec![remove_mount(destination)],
        ("make-recursive", Some(mount)) => {
            let mut all: Vec<String> = mount
                .options
                .iter()
                .filter(|o| *o != "bind")
                .cloned()
                .collect();
            all.insert(0, "rbind".into());
            vec![set_mount_options(destination, all)]
        }
        _ => vec![],
    }
}

impl exports::specgate::policy::namespaces::Guest for Hostile {
    fn adjust(_container: Container) -> Result<Vec<NamespaceChange>, Denial> {
        match behavior() {
            "bad-join" => Ok(vec![join_namespace(NamespaceKind::Network, "")]),
            "share-host-network" => Ok(vec![share_host_namespace(NamespaceKind::Network)]),
            "join-network" => Ok(vec![join_namespace(
                NamespaceKind::Network,
                "/proc/1/ns/net",
            )]),
            "map-ids" => {
                let range = IdMapping {
                    container_id: 0,
                    host_id: 100_000,
                    size: 65_536,
                };
                Ok(vec![map_ids(vec![range], vec![range])])
            }
            _ => Ok(vec![]),
        }
    }
}

impl exports::specgate::policy::validate::Guest for Hostile {
    fn check(container: Container) -> Result<(), Denial> {
        let key = ANNOTATION.get().map_or(DENY_ANNOTATION, String::as_str);
        match (behavior(), container.annotation(key)) {
            ("deny-annotation", Some(reason)) => Err(deny(format!("annotation {key}: {reason}"))),
            _ => Ok(()),
        }
    }
}

export!(Hostile);
