//! `specgate-runtime` (`specgate oci`) in front of the real runtime: the
//! command line passed through, the chain over the engine's config.json,
//! denials where engines read them, and real engines (podman, containerd)
//! using it. The engine tests need root, runc, podman and containerd, as
//! CI has; without them they fail rather than skip.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A link named `specgate-runtime` to the binary under test, a policy file
/// and an audit log, in a directory of their own.
pub(super) struct Wrapper {
    pub(super) dir: tempfile::TempDir,
}

impl Wrapper {
    /// Plugins by crate name, each with its settings as TOML (`{ ... }`).
    pub(super) fn new(plugins: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(specgate_bin(), dir.path().join("specgate-runtime")).unwrap();
        let mut policy = format!(
            "audit-log = \"{}\"\n",
            dir.path().join("audit.jsonl").display()
        );
        for (name, settings) in plugins {
            policy.push_str(&format!(
                "[[plugin]]\npath = \"{}\"\nsettings = {settings}\n",
                plugin(name).display()
            ));
        }
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        Wrapper { dir }
    }

    pub(super) fn link(&self) -> PathBuf {
        self.dir.path().join("specgate-runtime")
    }

    pub(super) fn policy(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// The wrapper through its link, with the policy and a cache.
    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(self.link());
        self.environment(&mut cmd);
        cmd
    }

    pub(super) fn environment(&self, cmd: &mut Command) {
        cmd.env("SPECGATE_POLICY", self.policy())
            .env("SPECGATE_CACHE_DIR", shared_cache())
            .env_remove("SPECGATE_RUNTIME")
            .env_remove("SPECGATE_LOG");
    }

    /// A script that sets the wrapper's environment, then becomes it:
    /// conmon gives the runtime an almost empty environment, so podman
    /// cannot pass SPECGATE_POLICY on.
    pub(super) fn script(&self) -> PathBuf {
        let path = self.dir.path().join("runtime.sh");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexport SPECGATE_POLICY='{}' SPECGATE_CACHE_DIR='{}'\nexec '{}' \"$@\"\n",
                self.policy().display(),
                shared_cache().display(),
                self.link().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A stand-in runtime that writes its argv, one per line, to `argv`.
    pub(super) fn recording_runtime(&self) -> PathBuf {
        let path = self.dir.path().join("recording-runc");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{{ printf '%s\\n' \"$0\"; for a; do printf '%s\\n' \"$a\"; done; }} > '{}'\n",
                self.argv_file().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub(super) fn argv_file(&self) -> PathBuf {
        self.dir.path().join("argv")
    }

    /// What the stand-in runtime was called with, if it was.
    pub(super) fn recorded_argv(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.argv_file()).ok()?;
        Some(text.lines().map(str::to_string).collect())
    }

    /// The audit log's records.
    pub(super) fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A wrapper refusal: exit status 1 and the reason on stderr's last line,
/// after the cache's compile progress, if the plugins were not cached yet.
pub(super) trait Refused {
    fn refused(&self) -> &str;
}

impl Refused for Outcome {
    #[track_caller]
    fn refused(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected exit 1, got {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        let (last, before) = lines.split_last().expect("a reason on stderr");
        assert!(
            before
                .iter()
                .all(|l| l.starts_with("specgate: compiling plugin ")),
            "{self:#?}"
        );
        last
    }
}

/// A bundle whose config.json is what `specgate spec` gives for `args`
/// on `rootfs`, with `annotations`, mode 0640, as an engine leaves it.
pub(super) fn bundle(rootfs: &Path, annotations: &[&str], args: &[&str]) -> tempfile::TempDir {
    let mut cmd = specgate();
    cmd.args(["spec", "--no-default-policy", "--rootfs"])
        .arg(rootfs);
    for annotation in annotations {
        cmd.args(["--annotation", annotation]);
    }
    let mut config = run(cmd.arg("--").args(args)).config();
    // The files specgate's own runs put in their bundle (hosts,
    // resolv.conf) are not in this one.
    config["mounts"].as_array_mut().unwrap().retain(|m| {
        !m["source"]
            .as_str()
            .unwrap_or("")
            .starts_with("/run/specgate/")
    });
    // Engines' fields specgate does not model must survive.
    config["process"]["engineField"] = serde_json::json!({"kept": true});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    dir
}

pub(super) fn read_config(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

/// The path of an engine's executable, or a failure saying what to
/// install.
pub(super) fn engine(name: &str, package: &str) -> PathBuf {
    let path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    path.unwrap_or_else(|| panic!("{name} is missing: install Debian's {package} (.ci/setup does)"))
}

#[test]
fn other_commands_reach_the_runtime_exactly_as_given() {
    let wrapper = Wrapper::new(&[("hostile", "{ behavior = \"deny\" }")]);
    let runtime = wrapper.recording_runtime();
    let args = [
        "--root",
        "/run/x",
        "--log=/dev/null",
        "--log-format",
        "json",
        "state",
        "abc",
    ];
    let out = run(wrapper
        .command()
        .env("SPECGATE_RUNTIME", &runtime)
        .args(args));
    assert_eq!(out.success(), "", "nothing of specgate's on stdout");
    let mut expected = vec![runtime.display().to_string()];
    expected.extend(args.iter().map(|a| a.to_string()));
    assert_eq!(wrapper.recorded_argv().unwrap(), expected);
    assert!(wrapper.audit().is_empty(), "only creations are audited");
}

#[test]
fn create_runs_the_chain_over_the_bundle_then_hands_over() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sh"]);
    let wrapper = Wrapper::new(&[("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }")]);
    let runtime = wrapper.recording_runtime();
    let pid_file = bundle.path().join("init.pid");
    let args = [
        "--log".as_ref(),
        "/dev/null".as_ref(),
        "create".as_ref(),
        "-b".as_ref(),
        bundle.path().as_os_str(),
        "--pid-file".as_ref(),
        pid_file.as_os_str(),
        "--console-socket=/run/console.sock".as_ref(),
        "ctr-1".as_ref(),
    ];
    let out = run(wrapper
        .command()
        .env("SPECGATE_RUNTIME", &runtime)
        .args(args));
    assert_eq!(out.success(), "");
    let mut expected = vec![runtime.display().to_string()];
    expected.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
    assert_eq!(wrapper.recorded_argv().unwrap(), expected);

    let config = read_config(bundle.path());
    for set in ["bounding", "effective", "permitted"] {
        let caps = cap_set(&config, set);
        assert!(!caps.contains(&"CAP_CHOWN".to_string()), "{set}: {caps:?}");
        assert!(caps.contains(&"CAP_KILL".to_string()), "{set}: {caps:?}");
    }
    assert_eq!(config["process"]["engineField"]["kept"], true);
    let mode = std::fs::metadata(bundle.path().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);

    let audit = wrapper.audit();
    assert_eq!(audit.len(), 1);
    let record = &audit[0];
    assert_eq!(record["run_id"], "ctr-1");
    assert_eq!(record["command"], serde_json::json!(["sh"]));
    assert_eq!(record["rootfs"], rootfs.path().display().to_string());
    assert_eq!(record["runtime"], runtime.display().to_string());
    assert_eq!(record["denial"], serde_json::Value::Null);
    assert_eq!(record["exit_status"], serde_json::Value::Null);
    assert_eq!(record["changes"][0]["plugin"], "drop-capabilities");
    let written = std::fs::read(bundle.path().join("config.json")).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&written));
    assert_eq!(record["config_sha256"], digest);
}

/// After a chain, the runtime must not inherit a child of the wrapper's,
/// and nothing the wrapper started may outlive the hand-over.
#[test]
fn the_runtime_inherits_no_child_and_nothing_stays_behind() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sh"]);
    let wrapper = Wrapper::new(&[("drop-capabilities", "{}")]);
    let children = wrapper.dir.path().join("children");
    let runtime = wrapper.dir.path().join("runtime");
    // Builtins and a redirection only: the shell starts no child of its
    // own before reading its list.
    std::fs::write(
        &runtime,
        format!(
            "#!/bin/sh\nread -r kids < /proc/$$/task/$$/children\nprintf '%s' \"$kids\" > '{}'\n",
            children.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = format!("held-{}", std::process::id());
    run(wrapper
        .command()
        .env("SPECGATE_RUNTIME", &runtime)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg(&id))
    .success();
    assert_eq!(std::fs::read_to_string(&children).unwrap(), "");
    // Anything the wrapper started would carry its command line.
    wait_until(10, || processes_with(&id).is_empty());
    assert_eq!(processes_with(&id), Vec::<String>::new());
}

/// The wrapper spreads its work over the CPUs it may use, but the runtime
/// it becomes, and so the container, must get the engine's mask whole.
#[test]
fn the_runtime_inherits_the_engines_cpu_mask() {
    let allowed = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .to_string()
    };
    let ours = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sh"]);
    let wrapper = Wrapper::new(&[
        ("drop-capabilities", "{}"),
        ("require-namespaces", "{}"),
        ("deny-privileged", "{}"),
    ]);
    let status = wrapper.dir.path().join("status");
    let runtime = wrapper.dir.path().join("runtime");
    std::fs::write(
        &runtime,
        format!(
            "#!/bin/sh
exec cat /proc/self/status > '{}'
",
            status.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A helper thread that ends before its creator looks at it is the
    // case that went wrong: it takes many creates to meet.
    for round in 0..20 {
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .args(["create", "--bundle"])
            .arg(bundle.path())
            .arg(format!("mask-{round}")))
        .success();
        let theirs = allowed(&std::fs::read_to_string(&status).unwrap());
        assert_eq!(theirs, ours, "create {round}");
    }
}

#[test]
fn a_denial_fails_create_with_the_reason_where_engines_read_it() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(
        rootfs.path(),
        &["specgate.test/deny=not on this node"],
        &["sh"],
    );
    let before = std::fs::read(bundle.path().join("config.json")).unwrap();
    let wrapper = Wrapper::new(&[("hostile", "{ behavior = \"deny-annotation\" }")]);
    let runtime = wrapper.recording_runtime();
    for (format, log_name) in [("json", "log.json"), ("text", "log.txt")] {
        let log = wrapper.dir.path().join(log_name);
        let out = run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .arg("--log")
            .arg(&log)
            .arg(format!("--log-format={format}"))
            .args(["create", "--bundle"])
            .arg(bundle.path())
            .arg("denied-1"));
        let line = out.refused();
        let reason = "validate: denied: annotation specgate.test/deny: not on this node";
        assert!(line.starts_with("specgate: plugin hostile ("), "{line}");
        assert!(line.ends_with(reason), "{line}");
        let logged = std::fs::read_to_string(&log).unwrap();
        if format == "json" {
            let entry: serde_json::Value = serde_json::from_str(logged.trim_end()).unwrap();
            assert_eq!(entry["level"], "error");
            assert_eq!(entry["msg"], line);
            assert!(entry["time"].as_str().unwrap().ends_with('Z'));
        } else {
            assert!(logged.starts_with("time=\""), "{logged}");
            assert!(
                logged.contains(&format!("level=error msg=\"{line}\"")),
                "{logged}"
            );
        }
    }
    assert_eq!(wrapper.recorded_argv(), None, "the runtime never ran");
    assert_eq!(
        std::fs::read(bundle.path().join("config.json")).unwrap(),
        before
    );
    let audit = wrapper.audit();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["exit_status"], 1);
    assert!(
        audit[0]["denial"]
            .as_str()
            .unwrap()
            .ends_with("not on this node")
    );
}

#[test]
fn the_plugins_see_the_specs_annotations() {
    // The same chain lets an unannotated container through.
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &["io.kubernetes.pod.name=web"], &["sh"]);
    let wrapper = Wrapper::new(&[("hostile", "{ behavior = \"deny-annotation\" }")]);
    let runtime = wrapper.recording_runtime();
    let out = run(wrapper
        .command()
        .env("SPECGATE_RUNTIME", &runtime)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg("allowed-1"));
    out.success();
    assert!(wrapper.recorded_argv().is_some());
}

#[test]
fn the_runtime_is_never_specgate_itself() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sh"]);
    let wrapper = Wrapper::new(&[]);
    // Named as a path, and found in PATH under runc's name.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(specgate_bin(), bin.path().join("runc")).unwrap();
    for (runtime, path) in [
        (Some(specgate_bin().as_os_str()), None),
        (None, Some(bin.path())),
    ] {
        let wrapper_command = || {
            let mut cmd = wrapper.command();
            if let Some(runtime) = runtime {
                cmd.env("SPECGATE_RUNTIME", runtime);
            }
            if let Some(path) = path {
                cmd.env("PATH", path);
            }
            cmd
        };
        let out = run(wrapper_command()
            .args(["create", "--bundle"])
            .arg(bundle.path())
            .arg("loop-1"));
        let line = out.failure(1);
        assert!(line.contains("is specgate itself"), "{line}");
        let out = run(wrapper_command().args(["state", "loop-1"]));
        assert!(out.failure(1).contains("is specgate itself"));
    }
}

#[test]
fn an_ambiguous_command_line_is_refused_not_guessed() {
    let wrapper = Wrapper::new(&[]);
    let runtime = wrapper.recording_runtime();
    let out = run(wrapper.command().env("SPECGATE_RUNTIME", &runtime).args([
        "--brand-new-flag",
        "x",
        "create",
        "id",
    ]));
    assert_eq!(
        out.failure(1),
        "specgate: unknown global flag `--brand-new-flag`: cannot tell whether it takes a value; write it `--brand-new-flag=VALUE`"
    );
    assert_eq!(wrapper.recorded_argv(), None);
}

#[test]
fn runc_runs_the_changed_spec() {
    // `specgate oci` is the link's behaviour under specgate's own name.
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["grep", "CapBnd", "/proc/self/status"]);
    let wrapper = Wrapper::new(&[(
        "drop-capabilities",
        "{ capabilities = [\"CAP_CHOWN\", \"CAP_KILL\"] }",
    )]);
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(specgate_bin());
    wrapper.environment(&mut cmd);
    let out = run(cmd
        .arg("oci")
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(format!("specgate-wrapper-{}", std::process::id())));
    let line = out.success().trim().to_string();
    let mask = u64::from_str_radix(line.trim_start_matches("CapBnd:").trim(), 16).unwrap();
    assert_eq!(mask & 1, 0, "CAP_CHOWN (bit 0) is dropped: {line}");
    assert_eq!(mask & (1 << 5), 0, "CAP_KILL (bit 5) is dropped: {line}");
    assert_ne!(mask & (1 << 1), 0, "CAP_DAC_OVERRIDE stays: {line}");
}

/// podman on the wrapper, with its state in a directory of its own.
fn podman(wrapper: &Wrapper, state: &Path, rootfs: &Path, extra: &[&str]) -> Outcome {
    let mut cmd = Command::new(engine("podman", "podman"));
    cmd.arg("--root")
        .arg(state.join("root"))
        .arg("--runroot")
        .arg(state.join("runroot"))
        .arg("--tmpdir")
        .arg(state.join("tmp"))
        .args(["--storage-driver", "vfs", "--cgroup-manager=cgroupfs"])
        .arg("--runtime")
        .arg(wrapper.script())
        .args(["run", "--rm", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(extra)
        .arg("--rootfs")
        .arg(rootfs)
        .args(["sh", "-c", "grep CapEff /proc/self/status"]);
    run(&mut cmd)
}

#[test]
fn podman_runs_containers_through_the_chain() {
    let rootfs = specgate_tests::busybox_rootfs();
    let state = tempfile::tempdir().unwrap();
    let wrapper = Wrapper::new(&[
        ("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }"),
        ("hostile", "{ behavior = \"deny-annotation\" }"),
    ]);
    let out = podman(&wrapper, state.path(), rootfs.path(), &[]);
    let line = out.success().trim().to_string();
    let mask = u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).unwrap();
    assert_eq!(mask & 1, 0, "CAP_CHOWN (bit 0) is dropped: {line}");
    assert_ne!(mask & (1 << 5), 0, "CAP_KILL stays: {line}");

    // Pod annotations reach the plugins: this one refuses, and podman
    // shows its reason.
    let out = podman(
        &wrapper,
        state.path(),
        rootfs.path(),
        &["--annotation", "specgate.test/deny=quarantined image"],
    );
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("specgate: plugin hostile (",)
            && out
                .stderr
                .contains("validate: denied: annotation specgate.test/deny: quarantined image"),
        "{out:#?}"
    );
    let records = wrapper.audit();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[1]["exit_status"], 1);
}

/// A containerd of the test's own, killed when dropped.
pub(super) struct Containerd {
    pub(super) dir: tempfile::TempDir,
    daemon: std::process::Child,
}

impl Containerd {
    /// Starts containerd with the wrapper's environment, which it passes
    /// to its shims and they to the runtime.
    pub(super) fn start(wrapper: &Wrapper) -> Self {
        Self::start_with(
            wrapper,
            tempfile::tempdir().unwrap(),
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
    }

    /// Starts containerd in `dir` (its root, state and socket are made
    /// there) with `extra` in its configuration: top-level keys first,
    /// then tables (the CRI plugin's, say).
    pub(super) fn start_with(wrapper: &Wrapper, dir: tempfile::TempDir, extra: &str) -> Self {
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n{extra}\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("sock").display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(engine("containerd", "containerd"));
        wrapper.environment(&mut cmd);
        let daemon = cmd
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("containerd.log")).unwrap())
            .spawn()
            .unwrap();
        let containerd = Containerd { dir, daemon };
        let started = std::time::Instant::now();
        while !containerd
            .ctr()
            .arg("version")
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                started.elapsed().as_secs() < 20,
                "containerd did not start: {}",
                std::fs::read_to_string(containerd.dir.path().join("containerd.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        containerd
    }

    pub(super) fn ctr(&self) -> Command {
        let mut cmd = Command::new(engine("ctr", "containerd"));
        cmd.arg("--address").arg(self.dir.path().join("sock"));
        cmd
    }

    /// `ctr run --rm` on the wrapper.
    fn run(&self, wrapper: &Wrapper, rootfs: &Path, id: &str, extra: &[&str]) -> Outcome {
        let mut cmd = self.ctr();
        cmd.args(["run", "--rm", "--runc-binary"])
            .arg(wrapper.link())
            .arg("--runc-root")
            .arg(self.dir.path().join("runc"))
            .args(extra)
            .arg("--rootfs")
            .arg(rootfs)
            .args([id, "/bin/sh", "-c", "grep CapEff /proc/self/status"]);
        run(&mut cmd)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn containerd_runs_containers_through_the_chain() {
    let rootfs = specgate_tests::busybox_rootfs();
    let wrapper = Wrapper::new(&[
        ("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }"),
        ("hostile", "{ behavior = \"deny-annotation\" }"),
    ]);
    let containerd = Containerd::start(&wrapper);
    let out = containerd.run(&wrapper, rootfs.path(), "allowed", &[]);
    let line = out.success().trim().to_string();
    let mask = u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).unwrap();
    assert_eq!(mask & 1, 0, "CAP_CHOWN (bit 0) is dropped: {line}");
    assert_ne!(mask & (1 << 5), 0, "CAP_KILL stays: {line}");

    let out = containerd.run(
        &wrapper,
        rootfs.path(),
        "denied",
        &["--annotation", "specgate.test/deny=quarantined image"],
    );
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr
            .contains("validate: denied: annotation specgate.test/deny: quarantined image"),
        "{out:#?}"
    );
    let listed = run(containerd.ctr().args(["containers", "list", "--quiet"]));
    assert_eq!(listed.success().trim(), "", "nothing was left created");
    assert_eq!(wrapper.audit().len(), 2);
}
