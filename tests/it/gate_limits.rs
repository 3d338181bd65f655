//! The gate's bounds, tried as an attacker would: a granted bind source
//! swapped for the host's `/etc` while it is checked (with runc, through
//! `specgate run` and `specgate-runtime`), validators pushed to fail
//! open, a component of many memories, floods of empty log lines, plugin
//! text that would forge or erase lines of a trace. The runs need root,
//! runc and busybox-static, as CI has; without them they fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::util::*;

/// Writes a policy file in a temporary directory.
fn policy(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), text).unwrap();
    dir
}

fn policy_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("policy.toml")
}

fn spec_with_policy(dir: &tempfile::TempDir) -> Outcome {
    run(specgate()
        .arg("spec")
        .arg("--policy")
        .arg(policy_file(dir))
        .args(["--", "/bin/true"]))
}

/// Asserts that a `specgate spec` succeeded with a config.json on
/// stdout, and returns it.
#[track_caller]
fn config_of(out: &Outcome) -> serde_json::Value {
    serde_json::from_str(out.success()).expect("stdout is not JSON")
}

/// A flood plugin entry named `name`, with its settings (TOML, `{...}`)
/// and the rest of its table.
fn flood(name: &str, settings: &str, rest: &str) -> String {
    format!(
        "[[plugin]]\nname = {name:?}\npath = {:?}\nsettings = {settings}\n{rest}",
        plugin("flood")
    )
}

/// Whether a text holds any control character other than the newline
/// that ends its lines.
fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

// --- Check, then use: a granted source is mounted as it was checked. ---

/// A granted directory holding `marker`, and `link` in it pointing at
/// that directory; a thread flips `link` between the directory and the
/// host's `/etc` (each flip an atomic rename) until dropped.
struct FlippingLink {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    flipper: Option<std::thread::JoinHandle<u64>>,
}

impl FlippingLink {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("granted");
        std::fs::create_dir(&granted).unwrap();
        std::fs::write(granted.join("marker"), "granted\n").unwrap();
        std::os::unix::fs::symlink(&granted, dir.path().join("link")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (link, next, halt) = (
            dir.path().join("link"),
            dir.path().join(".next"),
            stop.clone(),
        );
        let flipper = std::thread::spawn(move || {
            let mut flips = 0u64;
            while !halt.load(Ordering::Relaxed) {
                let target: &Path = if flips.is_multiple_of(2) {
                    Path::new("/etc")
                } else {
                    &granted
                };
                let _ = std::fs::remove_file(&next);
                std::os::unix::fs::symlink(target, &next).unwrap();
                std::fs::rename(&next, &link).unwrap();
                flips += 1;
                // A short pause, so that the runs get a share of the CPUs.
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            flips
        });
        FlippingLink {
            dir,
            stop,
            flipper: Some(flipper),
        }
    }

    fn prefix(&self) -> &Path {
        self.dir.path()
    }

    fn link(&self) -> PathBuf {
        self.dir.path().join("link")
    }

    /// Stops flipping; returns how many flips were made.
    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.flipper.take().map_or(0, |f| f.join().unwrap())
    }
}

impl Drop for FlippingLink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The policy binding `link` at /host (hostile's `bind-host`), granted
/// the prefix that holds it.
fn bind_policy(flipping: &FlippingLink) -> tempfile::TempDir {
    policy(&format!(
        "[[plugin]]\npath = {:?}\nsettings = {{ behavior = \"bind-host\", source = {:?} }}\n\
         grants = {{ bind-sources = [{:?}] }}\n",
        plugin("hostile"),
        flipping.link(),
        flipping.prefix()
    ))
}

/// What one raced run gave: the container listed only the granted
/// directory, or specgate refused the change before anything ran.
/// Anything else (the host's `/etc` in the container above all) fails
/// the test.
#[derive(Debug, Default)]
struct Tally {
    mounted: usize,
    refused: usize,
}

impl Tally {
    #[track_caller]
    fn add(&mut self, round: usize, out: &Outcome, refused_code: i32) {
        match out.code {
            Some(0) => {
                assert_eq!(
                    out.stdout, "marker\n",
                    "round {round}: the container saw something else than the granted directory: {out:#?}"
                );
                self.mounted += 1;
            }
            Some(code) if code == refused_code => {
                assert!(
                    [
                        "under no granted prefix",
                        "changed while it was checked",
                        "is not granted"
                    ]
                    .iter()
                    .any(|reason| out.stderr.contains(reason)),
                    "round {round}: refused for another reason: {out:#?}"
                );
                assert!(!out.stdout.contains("passwd"), "round {round}: {out:#?}");
                self.refused += 1;
            }
            _ => panic!("round {round}: {out:#?}"),
        }
    }
}

const ROUNDS: usize = 200;

/// `ROUNDS` runs of `specgate run` (with `isolation`) listing /host
/// while the link flips.
fn race_specgate_run(isolation: &str) {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut flipping = FlippingLink::start();
    let dir = bind_policy(&flipping);
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        let out = run(specgate()
            .args(["run", "--isolation", isolation, "--rootfs"])
            .arg(rootfs.path())
            .arg("--policy")
            .arg(policy_file(&dir))
            .args(["--", "ls", "/host"]));
        tally.add(round, &out, 125);
    }
    let flips = flipping.stop();
    eprintln!("{ROUNDS} runs ({isolation}), {flips} flips: {tally:?}");
    assert!(
        tally.mounted > 0,
        "no run got the granted directory: {tally:?}"
    );
}

#[test]
fn a_link_flipped_to_etc_is_never_mounted_by_specgate_run() {
    race_specgate_run("oci");
}

#[test]
fn a_link_flipped_to_etc_is_never_mounted_under_chroot_isolation() {
    race_specgate_run("chroot");
}

/// The mounts of this (the host's) mount namespace at or under `path`.
fn host_mounts_under(path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| {
            line.split(' ')
                .nth(4)
                .is_some_and(|point| point.starts_with(&path))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn a_link_flipped_to_etc_is_never_mounted_through_the_wrapper() {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut flipping = FlippingLink::start();
    let dir = bind_policy(&flipping);
    std::os::unix::fs::symlink(specgate_bin(), dir.path().join("specgate-runtime")).unwrap();
    let runc_root = tempfile::tempdir().unwrap();

    // The engine's bundle: a config.json as `specgate spec` makes it,
    // without the files specgate's own runs add.
    let mut config = config_of(&run(specgate()
        .args(["spec", "--no-default-policy", "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "ls", "/host"])));
    config["mounts"].as_array_mut().unwrap().retain(|m| {
        !m["source"]
            .as_str()
            .unwrap_or("")
            .starts_with("/run/specgate/")
    });
    let config = serde_json::to_vec_pretty(&config).unwrap();
    let bundle = tempfile::tempdir().unwrap();

    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        // The wrapper writes its changes back: each round starts from
        // the engine's config again.
        std::fs::write(bundle.path().join("config.json"), &config).unwrap();
        let id = format!("specgate-gate-limits-{}-{round}", std::process::id());
        let out = run(
            std::process::Command::new(dir.path().join("specgate-runtime"))
                .env("SPECGATE_POLICY", policy_file(&dir))
                .env("SPECGATE_CACHE_DIR", shared_cache())
                .env("SPECGATE_RUNTIME", "runc")
                .env_remove("SPECGATE_LOG")
                .arg(format!("--root={}", runc_root.path().display()))
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(&id),
        );
        tally.add(round, &out, 1);
        // The pinned source was mounted in the runtime's own namespace
        // only: the host sees nothing mounted in the bundle.
        assert_eq!(
            host_mounts_under(bundle.path()),
            Vec::<String>::new(),
            "round {round}"
        );
    }
    let flips = flipping.stop();
    eprintln!("{ROUNDS} wrapped runs, {flips} flips: {tally:?}");
    assert!(
        tally.mounted > 0,
        "no run got the granted directory: {tally:?}"
    );
}

#[test]
fn a_dangling_or_missing_source_is_refused_at_check_time() {
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(data.path().join("nowhere"), data.path().join("dangling")).unwrap();
    for source in [data.path().join("dangling"), data.path().join("missing")] {
        let dir = policy(&format!(
            "[[plugin]]\npath = {:?}\nsettings = {{ behavior = \"bind-host\", source = {source:?} }}\n\
             grants = {{ bind-sources = [{:?}] }}\n",
            plugin("hostile"),
            data.path()
        ));
        let line = spec_with_policy(&dir).failure(125).to_string();
        assert!(line.contains("is not granted"), "{line}");
    }
}

#[test]
fn bind_prefixes_that_are_not_absolute_and_clean_fail_the_policy_file() {
    for prefix in ["", "srv/data", "/srv/../etc", "/srv//data"] {
        let dir = policy(&format!(
            "[[plugin]]\npath = {:?}\ngrants = {{ bind-sources = [{prefix:?}] }}\n",
            plugin("hostile")
        ));
        let line = spec_with_policy(&dir).failure(125).to_string();
        assert!(
            line.starts_with(&format!(
                "specgate: policy file {}:3:28: plugin hostile: bind-sources prefix {prefix:?}",
                policy_file(&dir).display()
            )),
            "{prefix:?}: {line}"
        );
    }
}

// --- Validators are the final word. ---

#[test]
fn a_validator_fails_the_run_whatever_its_on_error() {
    for (mode, problem) in [
        ("validator-trap", "panicked: flood's validator panics"),
        ("validator-memory", "exceeded the memory limit of 16 MiB"),
        ("validator-loop", "exceeded the call time limit"),
    ] {
        let dir = policy(&flood(
            "flood",
            &format!("{{ mode = {mode:?} }}"),
            "on-error = \"skip\"\nmemory = \"16m\"\ntimeout = \"200ms\"\n",
        ));
        let line = spec_with_policy(&dir).failure(125).to_string();
        assert!(line.contains(": validate: "), "{mode}: {line}");
        assert!(line.contains(problem), "{mode}: {line}");
        assert!(
            line.ends_with(
                "(on-error = \"skip\" does not apply to a plugin that exports validate: \
                 its failure always fails the run)"
            ),
            "{mode}: {line}"
        );
    }
}

#[test]
fn a_skipped_plugins_validator_still_judges_the_container() {
    let dir = policy(&flood(
        "flood",
        "{ mode = \"trap-then-deny\" }",
        "on-error = \"skip\"\n",
    ));
    let out = spec_with_policy(&dir);
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.stderr
            .contains("skipping the plugin (on-error = \"skip\"): plugin flood"),
        "{out:#?}"
    );
    assert!(
        out.stderr
            .trim_end()
            .ends_with("validate: denied: flood's validator refuses every container"),
        "{out:#?}"
    );
}

/// Four plugins of just under 1 MiB of changes each fill the view to
/// near its 4 MiB bound.
fn fillers(count: usize) -> String {
    (1..=count)
        .map(|n| {
            flood(
                &format!("fill-{n}"),
                &format!(
                    "{{ mode = \"large-changes\", count = 90, size = 10000, tag = \"t{n}\" }}"
                ),
                "",
            )
        })
        .collect()
}

#[test]
fn a_hook_returns_a_bounded_number_of_bytes() {
    let dir = policy(&flood(
        "big",
        "{ mode = \"large-changes\", count = 200, size = 10000 }",
        "",
    ));
    let line = spec_with_policy(&dir).failure(125).to_string();
    assert!(line.starts_with("specgate: plugin big ("), "{line}");
    assert!(
        line.contains("mounts: returned ")
            && line.ends_with("bytes of changes, over the limit of 1048576 bytes"),
        "{line}"
    );
}

#[test]
fn no_plugin_grows_the_container_past_what_the_next_can_read() {
    let dir = policy(&fillers(5));
    let line = spec_with_policy(&dir).failure(125).to_string();
    assert!(line.starts_with("specgate: plugin fill-5 ("), "{line}");
    assert!(
        line.contains(": mounts: its changes make the container's view ")
            && line.contains("over the limit of 4194304 bytes"),
        "{line}"
    );
    // Four fit, and the chain goes on.
    config_of(&spec_with_policy(&policy(&fillers(4))));
}

#[test]
fn earlier_plugins_cannot_push_a_skippable_validator_into_failing_open() {
    // deny-privileged, skippable and with little memory, after plugins
    // that fill the view: it fails, and its failure stops the run.
    let dir = policy(&format!(
        "{}[[plugin]]\npath = {:?}\non-error = \"skip\"\nmemory = \"2m\"\n",
        fillers(4),
        plugin("deny-privileged")
    ));
    let out = run(specgate()
        .arg("spec")
        .arg("--policy")
        .arg(policy_file(&dir))
        .args(["--cap-add", "CAP_SYS_ADMIN", "--", "/bin/true"]));
    assert_eq!(out.code, Some(125), "{out:#?}");
    assert!(
        out.stderr.contains("plugin deny-privileged (")
            && out
                .stderr
                .contains("does not apply to a plugin that exports validate"),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");
}

// --- Limits that add up. ---

/// `component` with `count` more memories of `pages` 64 KiB pages each:
/// one core module holding a memory, appended to the component and
/// instantiated `count` times. The plugin never uses them; they are
/// allocated when it is instantiated.
fn with_memories(component: &[u8], count: u32, pages: u32) -> Vec<u8> {
    fn leb(mut n: u32, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn read_leb(bytes: &[u8], at: &mut usize) -> u32 {
        let (mut n, mut shift) = (0u32, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            n |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(payload.len() as u32, out);
        out.extend_from_slice(payload);
    }
    // The new module's index: after every core module the component
    // defines at its top level (section 1).
    let mut modules = 0;
    let mut at = 8;
    while at < component.len() {
        let id = component[at];
        at += 1;
        let size = read_leb(component, &mut at) as usize;
        if id == 1 {
            modules += 1;
        }
        at += size;
    }
    let mut memory = Vec::new();
    memory.push(1); // one memory
    memory.push(0); // limits: a minimum only
    leb(pages, &mut memory);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(5, &memory, &mut module);
    let mut instances = Vec::new();
    leb(count, &mut instances);
    for _ in 0..count {
        instances.push(0); // instantiate
        leb(modules, &mut instances);
        instances.push(0); // no arguments
    }
    let mut out = component.to_vec();
    section(1, &module, &mut out);
    section(2, &instances, &mut out);
    out
}

#[test]
fn memory_is_limited_over_all_of_a_plugins_memories() {
    let original = std::fs::read(plugin("flood")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 60 memories of 1 MiB: each far below the 16 MiB limit, 60 MiB in
    // all.
    let many = dir.path().join("many_memories.wasm");
    std::fs::write(&many, with_memories(&original, 60, 16)).unwrap();
    let policy_of = |path: &Path| {
        policy(&format!(
            "[[plugin]]\npath = {path:?}\nmemory = \"16m\"\nsettings = {{ mode = \"quiet\" }}\n"
        ))
    };
    let line = spec_with_policy(&policy_of(&many)).failure(125).to_string();
    assert!(
        line.starts_with("specgate: plugin many-memories (")
            && line.ends_with("instantiate: exceeded the memory limit of 16 MiB"),
        "{line}"
    );
    // Eight of them fit beside the plugin's own.
    let few = dir.path().join("few_memories.wasm");
    std::fs::write(&few, with_memories(&original, 8, 16)).unwrap();
    config_of(&spec_with_policy(&policy_of(&few)));
}

#[test]
fn empty_log_lines_are_not_free() {
    let dir = policy(&flood(
        "flood",
        "{ mode = \"empty-logs\", count = 300000 }",
        "",
    ));
    let line = spec_with_policy(&dir).failure(125).to_string();
    assert!(
        line.ends_with(
            "capabilities: exceeded the output limit of 1 MiB (log messages, stdout or stderr)"
        ),
        "{line}"
    );
    // A few empty lines are fine.
    let dir = policy(&flood(
        "flood",
        "{ mode = \"empty-logs\", count = 100 }",
        "",
    ));
    config_of(&spec_with_policy(&dir));
}

// --- No control character reaches a reader. ---

#[test]
fn a_plugin_cannot_forge_or_erase_lines_of_a_trace() {
    let dir = policy(&format!(
        "mode = \"monitor\"\n{}[[plugin]]\npath = {:?}\n",
        flood("flood", "{ mode = \"forge\" }", ""),
        plugin("readonly-mounts")
    ));
    let out = run(specgate()
        .args(["plugin", "trace", "--policy"])
        .arg(policy_file(&dir))
        .args(["--", "/bin/sh"]));
    let text = out.success();
    assert!(!has_control(text), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    // One block per plugin, one verdict: the forged block is inside the
    // verdict's line, escaped.
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("plugin flood ("), "{text}");
    assert_eq!(lines[1], "  (no changes)", "{text}");
    assert!(lines[2].starts_with("plugin readonly-mounts ("), "{text}");
    assert_eq!(lines[3], "  (no changes)", "{text}");
    let verdict = lines
        .iter()
        .find(|l| l.starts_with("would deny: plugin flood ("))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        verdict.ends_with(
            "validate: denied: ok\\nplugin readonly-mounts (/usr/lib/specgate/readonly_mounts.wasm)\\n  (no changes)\\n\\u{1b}[1A\\u{1b}[2K\\r\\u{9b}2K"
        ),
        "{verdict}"
    );

    // The JSON trace's strings hold no control character either, once
    // decoded.
    let out = run(specgate()
        .args(["plugin", "trace", "--json", "--policy"])
        .arg(policy_file(&dir)));
    let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    let would_deny = json["would_deny"][0].as_str().unwrap();
    assert!(!has_control(would_deny), "{would_deny:?}");
    assert!(would_deny.contains("denied: ok\\nplugin"), "{would_deny}");

    // Enforced, the denial is one line on stderr.
    let enforced = policy(&flood("flood", "{ mode = \"forge\" }", ""));
    let line = spec_with_policy(&enforced).failure(125).to_string();
    assert!(!has_control(&line), "{line:?}");
}

#[test]
fn plugin_inspect_escapes_what_describe_says() {
    let out = run(specgate()
        .args(["plugin", "inspect", "--compile"])
        .arg(plugin("flood")));
    let text = out.success();
    assert!(!has_control(text), "{text:?}");
    let description = text
        .lines()
        .find(|l| l.starts_with("description:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        description.ends_with("floods the host's limitsok\\nplugin readonly-mounts (/usr/lib/specgate/readonly_mounts.wasm)\\n  (no changes)\\n\\u{1b}[1A\\u{1b}[2K\\r\\u{9b}2K"),
        "{description}"
    );
    let out = run(specgate()
        .args(["plugin", "inspect", "--json", "--compile"])
        .arg(plugin("flood")));
    let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    assert!(!has_control(json["description"].as_str().unwrap()));
}
