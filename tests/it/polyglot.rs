//! The example plugins written in Python (`deny-commands`, componentize-py)
//! and JavaScript (`tmpfs`, jco) against `wit/` alone: they load under the
//! default limits, read their settings, log through the host, and act on
//! real runs. `.ci/setup` builds them; without it these tests fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use specgate::policy::{Allocation, Entry, Grants, Limits, Mode, OnError, PluginHost};

use crate::util::*;

/// The Python validator, compiled into the shared cache once for all the
/// tests here: compiling an interpreter takes seconds, and tests running
/// side by side would otherwise each compile it.
pub(crate) fn deny_commands() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| compiled("deny-commands"))
}

/// The JavaScript mounts plugin, compiled once like `deny_commands`.
pub(crate) fn tmpfs() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| compiled("tmpfs"))
}

fn compiled(name: &str) -> PathBuf {
    let path = plugin(name);
    run(specgate().args(["plugin", "compile"]).arg(&path)).success();
    path
}

/// `specgate run` in a fresh busybox rootfs with `plugins` and settings.
fn run_in_busybox(
    name: &str,
    plugins: &[&PathBuf],
    settings: &[&str],
    args: &[&str],
) -> (Outcome, tempfile::TempDir) {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut cmd = specgate();
    cmd.args(["run", "--name", name, "--rootfs"])
        .arg(rootfs.path());
    for path in plugins {
        cmd.arg("--plugin").arg(path);
    }
    for setting in settings {
        cmd.args(["--plugin-setting", setting]);
    }
    cmd.arg("--").args(args);
    (run(&mut cmd), rootfs)
}

/// `specgate spec` with `plugins`, settings and extra options.
fn spec(plugins: &[&PathBuf], settings: &[&str], extra: &[&str], args: &[&str]) -> Outcome {
    let mut cmd = specgate();
    cmd.args(extra).arg("spec");
    for path in plugins {
        cmd.arg("--plugin").arg(path);
    }
    for setting in settings {
        cmd.args(["--plugin-setting", setting]);
    }
    cmd.arg("--").args(args);
    run(&mut cmd)
}

/// The mount at `destination` in a config.json.
fn mount<'c>(config: &'c serde_json::Value, destination: &str) -> Vec<&'c serde_json::Value> {
    config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["destination"] == destination)
        .collect()
}

#[test]
fn the_python_validator_refuses_a_listed_command_and_runs_nothing() {
    let (out, rootfs) = run_in_busybox(
        "specgate-test-python-deny",
        &[deny_commands()],
        &["deny-commands.commands=wget, touch"],
        &["touch", "/tmp/ran"],
    );
    let line = out.failure(125);
    let prefix = format!(
        "specgate: plugin deny-commands ({}): ",
        deny_commands().display()
    );
    assert_eq!(
        line.strip_prefix(&prefix),
        Some("validate: denied: command `touch` is not allowed"),
        "{line}"
    );
    assert!(!rootfs.path().join("tmp/ran").exists());
}

#[test]
fn the_python_validator_matches_the_basename_and_exact_paths() {
    let denied = spec(
        &[deny_commands()],
        &["deny-commands.commands=nc"],
        &[],
        &["/usr/bin/nc", "-l"],
    );
    assert!(
        denied
            .failure(125)
            .ends_with("validate: denied: command `/usr/bin/nc` is not allowed")
    );
    // An absolute path in the list names that file only.
    let other_path = spec(
        &[deny_commands()],
        &["deny-commands.commands=/usr/bin/nc"],
        &[],
        &["/bin/nc"],
    );
    other_path.config();
}

#[test]
fn the_python_validators_default_list_refuses_network_tools() {
    let out = spec(&[deny_commands()], &[], &[], &["socat", "-", "tcp:x:1"]);
    assert!(
        out.failure(125)
            .ends_with("validate: denied: command `socat` is not allowed")
    );
}

#[test]
fn the_python_validator_lets_other_commands_run() {
    let (out, _rootfs) = run_in_busybox(
        "specgate-test-python-allow",
        &[deny_commands()],
        &["deny-commands.commands=wget,touch"],
        &["echo", "allowed"],
    );
    assert_eq!(out.success(), "allowed\n");
}

#[test]
fn the_python_validator_refuses_unknown_and_malformed_settings() {
    let out = spec(
        &[deny_commands()],
        &["deny-commands.commands=bin/nc", "deny-commands.colour=red"],
        &[],
        &["/bin/true"],
    );
    assert!(
        out.failure(125).ends_with(
            "configure: invalid settings: setting `commands`: `bin/nc` is neither a name \
             nor an absolute path; unknown setting `colour`"
        ),
        "{out:#?}"
    );
}

#[test]
fn the_python_validator_logs_through_the_host() {
    let out = spec(
        &[deny_commands()],
        &["deny-commands.commands=nc"],
        &["--log-level", "specgate::plugin=debug"],
        &["/bin/true"],
    );
    out.config();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("denying nc") && l.contains("plugin=\"deny-commands\"")),
        "{}",
        out.stderr
    );
}

#[test]
fn the_javascript_tmpfs_is_added_to_the_spec() {
    let out = spec(
        &[tmpfs()],
        &["tmpfs.path=/scratch", "tmpfs.size=8m", "tmpfs.mode=700"],
        &["--log-level", "specgate::plugin=info"],
        &["/bin/sh"],
    );
    let config = out.config();
    let mounts = mount(&config, "/scratch");
    assert_eq!(mounts.len(), 1, "{config:#}");
    assert_eq!(mounts[0]["type"], "tmpfs");
    assert_eq!(mounts[0]["source"], "tmpfs");
    assert_eq!(
        strings::<Vec<String>>(&mounts[0]["options"]),
        ["nosuid", "nodev", "size=8m", "mode=700"]
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("adding a tmpfs at /scratch") && l.contains("plugin=\"tmpfs\"")),
        "{}",
        out.stderr
    );
}

#[test]
fn the_javascript_tmpfs_is_mounted_inside_the_container() {
    let (out, rootfs) = run_in_busybox(
        "specgate-test-js-tmpfs",
        &[tmpfs()],
        &["tmpfs.path=/scratch", "tmpfs.size=8m"],
        &[
            "sh",
            "-c",
            "echo kept > /scratch/file && cat /scratch/file && grep ' /scratch ' /proc/mounts",
        ],
    );
    let stdout = out.success();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("kept"));
    let fields: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    assert_eq!(fields[..3], ["tmpfs", "/scratch", "tmpfs"], "{stdout}");
    let options: Vec<&str> = fields[3].split(',').collect();
    for option in ["rw", "nosuid", "nodev", "size=8192k"] {
        assert!(options.contains(&option), "{option} missing: {stdout}");
    }
    // The file lived in the tmpfs, not in the rootfs under it.
    assert!(!rootfs.path().join("scratch/file").exists());
}

#[test]
fn the_javascript_tmpfs_leaves_an_existing_mount_alone() {
    let before = spec(&[], &[], &[], &["/bin/sh"]).config();
    let after = spec(&[tmpfs()], &["tmpfs.path=/dev"], &[], &["/bin/sh"]).config();
    assert_eq!(mount(&after, "/dev"), mount(&before, "/dev"));
}

#[test]
fn the_javascript_plugin_refuses_bad_settings() {
    let out = spec(
        &[tmpfs()],
        &["tmpfs.path=scratch", "tmpfs.size=lots", "tmpfs.sise=8m"],
        &[],
        &["/bin/sh"],
    );
    assert!(
        out.failure(125).ends_with(
            "configure: invalid settings: setting `path`: `scratch` is not an absolute path; \
             setting `size`: `lots` is not a size (e.g. 64m); unknown setting `sise`"
        ),
        "{out:#?}"
    );
}

#[test]
fn python_and_javascript_plugins_share_a_chain_with_rust_ones() {
    let (out, _rootfs) = run_in_busybox(
        "specgate-test-polyglot-chain",
        &[&plugin("drop-capabilities"), tmpfs(), deny_commands()],
        &["tmpfs.path=/work", "deny-commands.commands=wget"],
        &["sh", "-c", "grep -c ' /work tmpfs ' /proc/mounts"],
    );
    assert_eq!(out.success(), "1\n");
}

/// Runs one plugin in-process under `limits`; the error message on failure.
fn run_under(path: &Path, name: &str, limits: Limits) -> Result<(), String> {
    let host = PluginHost::new(Some(shared_cache()), limits.clone(), Allocation::Pooled)
        .expect("plugin host");
    let loaded = host.load(name, path).map_err(|e| e.to_string())?;
    let entry = Entry {
        plugin: &loaded,
        settings: vec![],
        grants: Grants::default(),
        limits,
        on_error: OnError::Deny,
    };
    let mut spec = specgate::spec::default_spec("test", &["/bin/sh".into()]);
    host.run_chain(&[entry], &mut spec, "test", Mode::Enforce)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_default_limits_fit_both_and_tighter_ones_stop_them() {
    assert_eq!(
        run_under(deny_commands(), "deny-commands", Limits::default()),
        Ok(())
    );
    assert_eq!(run_under(tmpfs(), "tmpfs", Limits::default()), Ok(()));
    // componentize-py's component holds 14 core instances.
    let few_instances = Limits {
        instances: 13,
        ..Limits::default()
    };
    let err = run_under(deny_commands(), "deny-commands", few_instances).unwrap_err();
    assert!(err.contains("instance count too high"), "{err}");
    // jco's function table has 7 688 elements.
    let small_tables = Limits {
        table_elements: 4096,
        ..Limits::default()
    };
    let err = run_under(tmpfs(), "tmpfs", small_tables).unwrap_err();
    assert!(
        err.ends_with("exceeded the limit on instances, tables or table elements"),
        "{err}"
    );
}
