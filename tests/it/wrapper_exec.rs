//! Every way into a container through `specgate-runtime`: `exec` held to
//! what the container was allowed at create, `restore` gated as `create`,
//! no policy meaning no new container (while existing ones can still be
//! stopped and removed), and config.json files the runtime would read
//! otherwise refused. Real plugins, real runc, podman and containerd; a
//! script stands in for the runtime where a test must see whether it was
//! called.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::wrapper::{Containerd, Refused, Wrapper, bundle, engine, read_config};
use crate::util::*;

/// A stand-in runtime: `state` answers with `bundle`; any other command
/// writes its argv to the wrapper's argv file, and the file given to
/// `--process` to `process.json` beside it.
fn fake_runtime(wrapper: &Wrapper, bundle: &Path) -> PathBuf {
    let dir = wrapper.dir.path();
    let path = dir.join("fake-runc");
    let script = format!(
        r#"#!/bin/sh
for a; do
  if [ "$a" = state ]; then printf '{{"ociVersion":"1.0.2","id":"x","status":"running","bundle":"%s"}}' '{bundle}'; exit 0; fi
done
{{ printf '%s\n' "$0"; for a; do printf '%s\n' "$a"; done; }} > '{argv}'
next=
for a; do
  if [ -n "$next" ]; then cat "$a" > '{process}'; next=; fi
  case "$a" in
    --process|-p) next=1 ;;
    --process=*) cat "${{a#--process=}}" > '{process}' ;;
  esac
done
"#,
        bundle = bundle.display(),
        argv = wrapper.argv_file().display(),
        process = dir.join("process.json").display(),
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Forgets the last call the stand-in runtime recorded.
fn forget_calls(wrapper: &Wrapper) {
    let _ = std::fs::remove_file(wrapper.argv_file());
}

fn written_process(wrapper: &Wrapper) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(wrapper.dir.path().join("process.json")).unwrap())
        .unwrap()
}

/// A container created through the wrapper (the stand-in records it), as
/// an engine creates one before it execs in it.
fn created(wrapper: &Wrapper, runtime: &Path, bundle: &Path, id: &str) {
    run(wrapper
        .command()
        .env("SPECGATE_RUNTIME", runtime)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id))
    .success();
    forget_calls(wrapper);
}

/// A bundle whose process has `noNewPrivileges`, as engines set it.
fn exec_bundle(rootfs: &Path) -> tempfile::TempDir {
    let bundle = bundle(rootfs, &[], &["sh"]);
    let mut config = read_config(bundle.path());
    config["process"]["noNewPrivileges"] = true.into();
    std::fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    bundle
}

fn exec_policy() -> Wrapper {
    Wrapper::new(&[
        ("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }"),
        ("deny-privileged", "{}"),
    ])
}

#[test]
fn exec_flags_asking_for_more_never_reach_the_runtime() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = exec_bundle(rootfs.path());
    let wrapper = exec_policy();
    let runtime = fake_runtime(&wrapper, bundle.path());
    created(&wrapper, &runtime, bundle.path(), "c1");
    let log = wrapper.dir.path().join("log.json");
    let exec = |flags: &[&str]| {
        forget_calls(&wrapper);
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "exec"])
            .args(flags)
            .args(["c1", "sh", "-c", "true"]))
    };

    // deny-privileged refuses, with its reason, where engines read it.
    let out = exec(&["--cap", "CAP_SYS_ADMIN"]);
    let line = out.refused();
    assert!(
        line.starts_with("specgate: plugin deny-privileged (")
            && line.ends_with("validate: denied: privileged: the container holds CAP_SYS_ADMIN"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None, "the runtime never ran");
    let logged = std::fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(logged.lines().last().unwrap()).unwrap();
    assert_eq!(entry["msg"], line);

    // What the policy dropped at create it drops again: asked for by
    // name, the exec is refused rather than run with less than asked.
    let out = exec(&["-c", "CAP_CHOWN"]);
    let line = out.refused();
    assert!(
        line.starts_with("specgate: exec c1: the process would hold more than the policy lets this container have: CAP_CHOWN in the bounding set"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None);
    let out = exec(&["--no-new-privs=false"]);
    assert!(out.refused().ends_with("noNewPrivileges off"), "{out:#?}");
    assert_eq!(wrapper.recorded_argv(), None);

    // runc adds `--cap` to the ambient set too, which the container's
    // process does not have.
    let out = exec(&["--cap", "CAP_KILL"]);
    assert!(
        out.refused().ends_with("CAP_KILL in the ambient set"),
        "{out:#?}"
    );
    assert_eq!(wrapper.recorded_argv(), None);

    // Within the container's, the command line goes on unchanged.
    let out = exec(&["--env", "A=1", "--cwd", "/tmp", "--tty=false"]);
    out.success();
    let argv = wrapper.recorded_argv().expect("the runtime ran");
    assert_eq!(
        argv[1..],
        [
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "exec",
            "--env",
            "A=1",
            "--cwd",
            "/tmp",
            "--tty=false",
            "c1",
            "sh",
            "-c",
            "true"
        ]
    );

    let records = wrapper.audit();
    let execs: Vec<_> = records
        .iter()
        .filter(|r| r["command"] == serde_json::json!(["sh", "-c", "true"]))
        .collect();
    assert_eq!(execs.len(), 5, "{records:#?}");
    assert!(
        execs[0]["denial"]
            .as_str()
            .unwrap()
            .ends_with("the container holds CAP_SYS_ADMIN")
    );
    assert_eq!(execs[4]["denial"], serde_json::Value::Null);
}

#[test]
fn an_exec_process_file_is_held_to_the_container() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = exec_bundle(rootfs.path());
    let wrapper = exec_policy();
    let runtime = fake_runtime(&wrapper, bundle.path());
    created(&wrapper, &runtime, bundle.path(), "c2");
    let config = read_config(bundle.path());
    // The engine's process file, as containerd builds it from the spec
    // it stored before the chain: CAP_CHOWN is back, and more.
    let mut process = config["process"].clone();
    process["args"] = serde_json::json!(["id"]);
    process["noNewPrivileges"] = false.into();
    process["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .extend(["CAP_CHOWN".into(), "CAP_SYSLOG".into()]);
    process["capabilities"]["effective"]
        .as_array_mut()
        .unwrap()
        .push("CAP_CHOWN".into());
    let file = wrapper.dir.path().join("exec.json");
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let before = std::fs::read(&file).unwrap();
    let exec = |process: &Path| {
        forget_calls(&wrapper);
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .args(["exec", "--pid-file", "/run/x.pid", "--process"])
            .arg(process)
            .args(["--detach", "c2"]))
    };
    exec(&file).success();
    let argv = wrapper.recorded_argv().expect("the runtime ran");
    assert_eq!(
        argv[1..5],
        ["exec", "--pid-file", "/run/x.pid", "--process"]
    );
    assert!(argv[5].starts_with("/proc/self/fd/"), "{argv:?}");
    assert_eq!(argv[6..], ["--detach", "c2"]);
    let given = written_process(&wrapper);
    let bounding: Vec<String> = strings(&given["capabilities"]["bounding"]);
    assert!(!bounding.contains(&"CAP_CHOWN".to_string()), "{bounding:?}");
    assert!(
        !bounding.contains(&"CAP_SYSLOG".to_string()),
        "{bounding:?}"
    );
    assert!(bounding.contains(&"CAP_KILL".to_string()), "{bounding:?}");
    assert_eq!(
        given["capabilities"]["effective"],
        config["process"]["capabilities"]["effective"]
    );
    assert_eq!(given["noNewPrivileges"], true);
    assert_eq!(given["engineField"]["kept"], true);
    assert_eq!(given["args"], serde_json::json!(["id"]));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the engine's file is left alone"
    );

    // Asking for CAP_SYS_ADMIN: refused with the plugin's reason.
    process["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push("CAP_SYS_ADMIN".into());
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let line = exec(&file).refused().to_string();
    assert!(
        line.ends_with("the container holds CAP_SYS_ADMIN"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None);

    // Root in a container whose process is not.
    let mut root = config["process"].clone();
    root["user"] = serde_json::json!({"uid": 0, "gid": 0});
    let mut unprivileged = read_config(bundle.path());
    unprivileged["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    std::fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&unprivileged).unwrap(),
    )
    .unwrap();
    std::fs::write(&file, serde_json::to_vec(&root).unwrap()).unwrap();
    let line = exec(&file).refused().to_string();
    assert!(
        line.ends_with("the process would run as uid 0; the container's runs as uid 1000"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None);

    // A process file the runtime would read otherwise.
    let doubled = r#"{"cwd":"/","args":["id"],"user":{"uid":1000,"gid":1000},"Capabilities":{"bounding":["CAP_SYS_ADMIN"]}}"#;
    std::fs::write(&file, doubled).unwrap();
    let line = exec(&file).refused().to_string();
    assert!(
        line.contains("key /Capabilities differs only in case"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None);
}

#[test]
fn exec_in_a_container_the_runtime_does_not_know_fails() {
    let wrapper = exec_policy();
    let state = tempfile::tempdir().unwrap();
    let out = run(wrapper.command().arg("--root").arg(state.path()).args([
        "exec",
        "no-such-container",
        "true",
    ]));
    let line = out.refused();
    assert!(
        line.starts_with("specgate: exec no-such-container: cannot find the container's bundle"),
        "{line}"
    );
}

#[test]
fn restore_is_gated_as_create() {
    let rootfs = specgate_tests::busybox_rootfs();
    let denied = bundle(
        rootfs.path(),
        &["specgate.test/deny=not restored here"],
        &["sh"],
    );
    let wrapper = Wrapper::new(&[
        ("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }"),
        ("hostile", "{ behavior = \"deny-annotation\" }"),
    ]);
    let runtime = wrapper.recording_runtime();
    let restore = |bundle: &Path, extra: &[&str], id: &str| {
        forget_calls(&wrapper);
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .args(["restore", "--image-path", "/ckpt", "--work-path", "/work"])
            .args(extra)
            .arg("--bundle")
            .arg(bundle)
            .arg(id))
    };
    let line = restore(denied.path(), &["--detach"], "r1")
        .refused()
        .to_string();
    assert!(
        line.ends_with("annotation specgate.test/deny: not restored here"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None, "the runtime never ran");

    let allowed = bundle(rootfs.path(), &[], &["sh"]);
    restore(allowed.path(), &["--tcp-established"], "r2").success();
    let argv = wrapper.recorded_argv().expect("the runtime ran");
    assert_eq!(argv[1], "restore");
    assert_eq!(argv.last().unwrap(), "r2");
    let config = read_config(allowed.path());
    assert!(!cap_set(&config, "bounding").contains(&"CAP_CHOWN".to_string()));
    assert_eq!(wrapper.audit().last().unwrap()["run_id"], "r2");

    // Another LSM profile than config.json's would undo the check.
    let line = restore(
        allowed.path(),
        &["--lsm-profile", "apparmor:unconfined"],
        "r3",
    )
    .refused()
    .to_string();
    assert!(
        line.contains("restore --lsm-profile apparmor:unconfined: not the label"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None);
}

/// The wrapper with no policy at all: no SPECGATE_POLICY, and the
/// default file absent.
fn without_policy(wrapper: &Wrapper) -> Command {
    let mut cmd = Command::new(wrapper.link());
    cmd.env_remove("SPECGATE_POLICY")
        .env_remove("SPECGATE_NO_POLICY")
        .env_remove("SPECGATE_RUNTIME")
        .env("SPECGATE_CACHE_DIR", shared_cache())
        .env_remove("SPECGATE_LOG");
    cmd
}

#[test]
fn without_a_policy_nothing_starts_but_containers_can_be_stopped() {
    assert!(
        !Path::new("/etc/specgate/policy.toml").exists(),
        "this test needs /etc/specgate/policy.toml absent: move it away to run it"
    );
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sleep", "100"]);
    let wrapper = Wrapper::new(&[]);
    let recording = wrapper.recording_runtime();
    for command in [
        &["create", "--bundle"][..],
        &["run", "--bundle"],
        &["restore", "--image-path", "/i", "--bundle"],
    ] {
        let out = run(without_policy(&wrapper)
            .env("SPECGATE_RUNTIME", &recording)
            .args(command)
            .arg(bundle.path())
            .arg("np-1"));
        assert_eq!(
            out.refused(),
            format!(
                "specgate: {}: no policy: /etc/specgate/policy.toml does not exist and SPECGATE_POLICY is not set; install a policy (one with no plugin lets every container through) or set SPECGATE_NO_POLICY=1 to run containers unchecked",
                command[0]
            )
        );
    }
    let out = run(without_policy(&wrapper)
        .env("SPECGATE_RUNTIME", &recording)
        .args(["exec", "np-1", "sh"]));
    assert!(out.refused().contains("exec: no policy"), "{out:#?}");
    // Named but missing: the same.
    let out = run(without_policy(&wrapper)
        .env("SPECGATE_POLICY", "/nonexistent/policy.toml")
        .env("SPECGATE_RUNTIME", &recording)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg("np-1"));
    assert!(
        out.refused()
            .starts_with("specgate: policy file /nonexistent/policy.toml"),
        "{out:#?}"
    );
    assert_eq!(wrapper.recorded_argv(), None, "the runtime never ran");
    // The operator's explicit word lets it through.
    run(without_policy(&wrapper)
        .env("SPECGATE_NO_POLICY", "1")
        .env("SPECGATE_RUNTIME", &recording)
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg("np-1"))
    .success();
    assert!(wrapper.recorded_argv().is_some());

    // A container runc runs anyway is still seen, killed and deleted
    // through the wrapper, with no policy and with a missing one.
    let state = tempfile::tempdir().unwrap();
    let id = format!("specgate-np-{}", std::process::id());
    let status = Command::new(engine("runc", "runc"))
        .arg("--root")
        .arg(state.path())
        .args(["run", "--detach", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let through = |policy: Option<&str>, args: &[&str]| {
        let mut cmd = without_policy(&wrapper);
        if let Some(policy) = policy {
            cmd.env("SPECGATE_POLICY", policy);
        }
        run(cmd
            .arg("--root")
            .arg(state.path())
            .args(&args[..1])
            .arg(&id)
            .args(&args[1..]))
    };
    let out = through(None, &["state"]);
    let state_json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    assert_eq!(state_json["status"], "running");
    through(Some("/nonexistent/policy.toml"), &["kill", "KILL"]).success();
    wait_until(10, || {
        through(None, &["state"]).stdout.contains("\"stopped\"")
    });
    assert!(through(None, &["state"]).stdout.contains("\"stopped\""));
    through(None, &["delete"]).success();
    let out = through(None, &["state"]);
    assert_ne!(out.code, Some(0), "deleted: {out:#?}");
}

#[test]
fn a_config_json_the_runtime_would_read_otherwise_is_refused() {
    let rootfs = specgate_tests::busybox_rootfs();
    let wrapper = Wrapper::new(&[("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }")]);
    let runtime = wrapper.recording_runtime();
    let create = |bundle: &Path| {
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .args(["create", "--bundle"])
            .arg(bundle)
            .arg("odd-1"))
    };
    // `Process` beside `process`: runc reads one, the plugins the other.
    let beside = bundle(rootfs.path(), &[], &["sh"]);
    let mut config = read_config(beside.path());
    config["Process"] = config["process"].clone();
    config["Process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_SYS_ADMIN"]);
    let path = beside.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let line = create(beside.path()).refused().to_string();
    assert!(
        line.contains("config.json: not a valid OCI runtime config: key /Process differs only in case from `process`"),
        "{line}"
    );
    // `capabilities` given twice: Go merges the second into the first.
    let twice = bundle(rootfs.path(), &[], &["sh"]);
    let path = twice.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "\"process\": {",
        "\"process\": {\n    \"capabilities\": {\"effective\": [\"CAP_SYS_ADMIN\"]},",
        1,
    );
    std::fs::write(&path, &text).unwrap();
    let line = create(twice.path()).refused().to_string();
    assert!(
        line.contains("key /process/capabilities is given twice"),
        "{line}"
    );
    assert_eq!(wrapper.recorded_argv(), None, "the runtime never ran");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

/// podman on the wrapper with its state in `state`.
fn podman(wrapper: &Wrapper, state: &Path) -> Command {
    let mut cmd = Command::new(engine("podman", "podman"));
    cmd.arg("--root")
        .arg(state.join("root"))
        .arg("--runroot")
        .arg(state.join("runroot"))
        .arg("--tmpdir")
        .arg(state.join("tmp"))
        .args(["--storage-driver", "vfs", "--cgroup-manager=cgroupfs"])
        .arg("--runtime")
        .arg(wrapper.script());
    cmd
}

/// Removes a podman container when dropped.
struct PodmanContainer<'a> {
    wrapper: &'a Wrapper,
    state: &'a Path,
    name: String,
}

impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = podman(self.wrapper, self.state)
            .args(["rm", "--force", "--time", "0"])
            .arg(&self.name)
            .output();
    }
}

fn effective_mask(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {out:?}"));
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).unwrap()
}

#[test]
fn podman_exec_keeps_the_drop_and_privileged_is_refused() {
    let rootfs = specgate_tests::busybox_rootfs();
    let state = tempfile::tempdir().unwrap();
    let wrapper = exec_policy();
    let name = format!("specgate-exec-{}", std::process::id());
    let out = run(podman(&wrapper, state.path())
        .args(["run", "--detach", "--name", &name, "--network", "none"])
        // This machine's hard limits are below podman's defaults.
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["sleep", "1000"]));
    let _container = PodmanContainer {
        wrapper: &wrapper,
        state: state.path(),
        name: name.clone(),
    };
    out.success();

    let out = run(podman(&wrapper, state.path()).args([
        "exec",
        &name,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    let mask = effective_mask(out.success());
    assert_eq!(mask & 1, 0, "CAP_CHOWN (bit 0) stays dropped: {mask:x}");
    assert_ne!(mask & (1 << 5), 0, "CAP_KILL stays: {mask:x}");

    let out = run(podman(&wrapper, state.path()).args(["exec", "--privileged", &name, "true"]));
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stderr
            .contains("validate: denied: privileged: the container holds CAP_SYS_ADMIN"),
        "{out:#?}"
    );
    let records = wrapper.audit();
    assert!(
        records.iter().any(|r| r["denial"]
            .as_str()
            .is_some_and(|d| d.ends_with("the container holds CAP_SYS_ADMIN"))),
        "{records:#?}"
    );
}

/// Kills and removes a containerd task and container when dropped.
struct CtrTask<'a> {
    containerd: &'a Containerd,
    id: String,
}

impl Drop for CtrTask<'_> {
    fn drop(&mut self) {
        let _ = self
            .containerd
            .ctr()
            .args(["task", "kill", "--signal", "SIGKILL"])
            .arg(&self.id)
            .output();
        let _ = self
            .containerd
            .ctr()
            .args(["task", "delete", "--force"])
            .arg(&self.id)
            .output();
        let _ = self
            .containerd
            .ctr()
            .args(["container", "delete"])
            .arg(&self.id)
            .output();
    }
}

#[test]
fn ctr_exec_keeps_what_the_policy_dropped() {
    let rootfs = specgate_tests::busybox_rootfs();
    let wrapper = exec_policy();
    let containerd = Containerd::start(&wrapper);
    let id = "exec-target";
    let out = run(containerd
        .ctr()
        .args(["run", "--detach", "--null-io", "--runc-binary"])
        .arg(wrapper.link())
        .arg("--runc-root")
        .arg(containerd.dir.path().join("runc"))
        .arg("--rootfs")
        .arg(rootfs.path())
        .args([id, "/bin/sleep", "1000"]));
    let _task = CtrTask {
        containerd: &containerd,
        id: id.to_string(),
    };
    out.success();
    // containerd builds the exec from the spec it stored, before the
    // chain: CAP_CHOWN is in it.
    let out = run(containerd.ctr().args([
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "/bin/grep",
        "CapEff",
        "/proc/self/status",
    ]));
    let mask = effective_mask(out.success());
    assert_eq!(mask & 1, 0, "CAP_CHOWN (bit 0) stays dropped: {mask:x}");
    assert_ne!(mask & (1 << 5), 0, "CAP_KILL stays: {mask:x}");
    let records = wrapper.audit();
    let exec = records
        .iter()
        .find(|r| r["command"] == serde_json::json!(["/bin/grep", "CapEff", "/proc/self/status"]))
        .unwrap_or_else(|| panic!("no exec record: {records:#?}"));
    assert_eq!(exec["run_id"], id);
    assert!(
        exec["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"].as_str().unwrap().contains("CAP_CHOWN")),
        "{exec:#}"
    );
}

#[test]
fn a_valued_flag_is_never_taken_for_the_container_id() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = bundle(rootfs.path(), &[], &["sh"]);
    let wrapper = Wrapper::new(&[("drop-capabilities", "{ capabilities = [\"CAP_CHOWN\"] }")]);
    let runtime = wrapper.recording_runtime();
    // runc 1.2's socket flag, before the id and, reordered, after it.
    for (round, args) in [
        [
            "--pidfd-socket",
            "/run/pidfd.sock",
            "--bundle",
            "BUNDLE",
            "ctr-a",
        ],
        [
            "--bundle",
            "BUNDLE",
            "ctr-b",
            "--pidfd-socket",
            "/run/pidfd.sock",
        ],
        ["--preserve-fds", "0", "-b", "BUNDLE", "ctr-c"],
    ]
    .iter()
    .enumerate()
    {
        let args: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(|a| {
                if *a == "BUNDLE" {
                    bundle.path().as_os_str()
                } else {
                    std::ffi::OsStr::new(a)
                }
            })
            .collect();
        run(wrapper
            .command()
            .env("SPECGATE_RUNTIME", &runtime)
            .arg("create")
            .args(&args))
        .success();
        let records = wrapper.audit();
        assert_eq!(records.len(), round + 1);
        assert_eq!(
            records[round]["run_id"],
            ["ctr-a", "ctr-b", "ctr-c"][round],
            "{args:?}"
        );
    }
}
