//! Plugins that misbehave on purpose: each is stopped with a clear error
//! and exit 125, and the host stays usable afterwards.

use std::time::{Duration, Instant};

use specgate::policy::{Allocation, Entry, Grants, Limits, Mode, OnError, PluginHost};

use crate::util::*;

/// Runs `specgate spec` with the hostile plugin in `behavior`, asserts a
/// one-line failure naming the plugin, and returns what follows its path.
fn hostile(behavior: &str, extra: &[&str]) -> String {
    let path = plugin("hostile");
    let mut cmd = specgate();
    cmd.arg("spec")
        .arg("--plugin")
        .arg(&path)
        .args(["--plugin-setting", &format!("hostile.behavior={behavior}")])
        .args(extra)
        .args(["--", "/bin/true"]);
    let outcome = run(&mut cmd);
    let line = outcome.failure(125);
    let prefix = format!("specgate: plugin hostile ({}): ", path.display());
    line.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"))
        .to_string()
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let started = Instant::now();
    let message = hostile("loop", &["--plugin-timeout", "200ms"]);
    assert_eq!(
        message,
        "capabilities: exceeded the call time limit of 200ms"
    );
    // The plugin would loop forever: finishing at all is the point; the
    // bound only keeps a regression from hanging the suite.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_plugin_sleeping_in_a_host_call_is_stopped_too() {
    let started = Instant::now();
    let message = hostile("sleep", &["--plugin-timeout", "200ms"]);
    assert_eq!(
        message,
        "capabilities: exceeded the call time limit of 200ms"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    assert_eq!(
        hostile("memory", &[]),
        "capabilities: exceeded the memory limit of 64 MiB"
    );
    assert_eq!(
        hostile("memory", &["--plugin-memory", "16m"]),
        "capabilities: exceeded the memory limit of 16 MiB"
    );
}

#[test]
fn deep_recursion_overflows_the_wasm_stack() {
    assert_eq!(
        hostile("recursion", &[]),
        "capabilities: stack overflow (runaway recursion)"
    );
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let message = hostile("panic", &[]);
    assert!(message.starts_with("capabilities: panicked: "), "{message}");
    assert!(
        message.contains("hostile plugin panics on purpose"),
        "{message}"
    );
}

#[test]
fn too_many_changes_are_refused() {
    assert_eq!(
        hostile("flood", &[]),
        "capabilities: returned 100000 changes, over the limit of 4096"
    );
}

#[test]
fn a_log_flood_hits_the_output_limit() {
    assert_eq!(
        hostile("log-flood", &[]),
        "capabilities: exceeded the output limit of 1 MiB (log messages, stdout or stderr)"
    );
}

#[test]
fn a_stdout_flood_hits_the_output_limit() {
    assert_eq!(
        hostile("print-flood", &[]),
        "capabilities: exceeded the output limit of 1 MiB (log messages, stdout or stderr)"
    );
}

#[test]
fn a_relative_mount_destination_is_refused() {
    assert_eq!(
        hostile("bad-mount", &[]),
        "mounts: change 0 (add a tmpfs mount of tmpfs at relative/path []): \
         destination: the path is not absolute"
    );
}

#[test]
fn an_unknown_capability_is_refused() {
    assert_eq!(
        hostile("bad-capability", &[]),
        "capabilities: change 0 (drop CAP_FOO from the bounding, effective, inheritable, \
         permitted, ambient sets): `CAP_FOO` is not a known capability"
    );
}

#[test]
fn an_empty_namespace_path_is_refused() {
    assert_eq!(
        hostile("bad-join", &[]),
        "namespaces: change 0 (join the network namespace at ``): the path is empty"
    );
}

#[test]
fn a_denial_stops_the_run_with_the_plugins_reason() {
    assert_eq!(
        hostile("deny", &[]),
        "capabilities: denied: hostile plugin refuses every container"
    );
}

#[test]
fn bad_settings_are_refused_by_configure() {
    assert_eq!(
        hostile("bogus", &[]),
        "configure: invalid settings: setting `behavior`: unknown `bogus`"
    );
}

/// Also checks that nothing of one run's instance reaches the next,
/// under the pool that reuses memories: the plugin keeps its behaviour
/// in a static set once, which a memory not reset would carry over, from
/// `flood` and `bad-mount` (which return normally) as from the traps.
#[test]
fn the_host_stays_usable_after_each_failure() {
    let limits = Limits {
        call_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let host = PluginHost::new(Some(shared_cache()), limits.clone(), Allocation::Pooled)
        .expect("plugin host");
    assert_eq!(
        host.allocation(),
        Allocation::Pooled,
        "the pool was not reserved"
    );
    let hostile = host.load("hostile", &plugin("hostile")).expect("load");
    let entry = |behavior: &str| Entry {
        plugin: &hostile,
        settings: vec![("behavior".into(), behavior.into())],
        grants: Grants::default(),
        limits: limits.clone(),
        on_error: OnError::Deny,
    };
    for behavior in [
        "loop",
        "sleep",
        "memory",
        "recursion",
        "panic",
        "flood",
        "log-flood",
        "bad-mount",
    ] {
        let mut spec = specgate::spec::default_spec("test", &["/bin/true".into()]);
        let err = host
            .run_chain(&[entry(behavior)], &mut spec, "test", Mode::Enforce)
            .expect_err(behavior);
        assert!(err.to_string().starts_with("plugin hostile ("), "{err}");

        let mut spec = specgate::spec::default_spec("test", &["/bin/true".into()]);
        host.run_chain(&[entry("well-behaved")], &mut spec, "test", Mode::Enforce)
            .unwrap_or_else(|e| panic!("after {behavior}: {e}"));
    }
}
