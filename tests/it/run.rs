//! `specgate run` with the real runtime (runc): these need root and runc,
//! as CI has; without them they fail rather than skip.

use std::path::{Path, PathBuf};

use crate::util::*;

fn specgate_run(
    rootfs: Option<&Path>,
    plugins: &[&str],
    settings: &[&str],
    args: &[&str],
) -> Outcome {
    let mut cmd = specgate();
    cmd.arg("run");
    if let Some(rootfs) = rootfs {
        cmd.arg("--rootfs").arg(rootfs);
    }
    with_chain(&mut cmd, plugins, settings).arg("--").args(args);
    run(&mut cmd)
}

/// Starts `specgate run --name NAME --rootfs ROOTFS [--plugin P]... --
/// ARGS` and waits until its container runs; returns specgate and the
/// run's bundle.
fn start_run(
    name: &str,
    rootfs: &Path,
    plugins: &[&str],
    args: &[&str],
) -> (std::process::Child, PathBuf) {
    let mut cmd = specgate();
    cmd.args(["run", "--name", name, "--rootfs"]).arg(rootfs);
    let child = with_chain(&mut cmd, plugins, &[])
        .arg("--")
        .args(args)
        .spawn()
        .unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(20, || bundle.join("init.pid").exists());
    (child, bundle)
}

/// No bundle of this run is left in the state directory.
fn assert_no_bundle(name: &str) {
    let bundle = Path::new("/run/specgate").join(name);
    assert!(!bundle.exists(), "{} was left behind", bundle.display());
}

#[test]
fn echo_in_a_busybox_rootfs() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = specgate_run(Some(rootfs.path()), &[], &[], &["echo", "hello"]);
    assert_eq!(out.success(), "hello\n");
}

#[test]
fn the_containers_exit_code_is_specgates() {
    let rootfs = specgate_tests::busybox_rootfs();
    for code in [0, 1, 42] {
        let out = specgate_run(
            Some(rootfs.path()),
            &[],
            &[],
            &["sh", "-c", &format!("exit {code}")],
        );
        assert_eq!(out.code, Some(code), "{out:#?}");
    }
}

#[test]
fn sigterm_to_specgate_reaches_the_container() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-sigterm";
    assert_sigterm_reaches_the_container(
        specgate()
            .args(["run", "--name", name, "--rootfs"])
            .arg(rootfs.path()),
        "\n",
    );
    assert_no_bundle(name);
}

#[test]
fn a_missing_command_is_127_and_a_directory_126() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = specgate_run(Some(rootfs.path()), &[], &[], &["nonexistent-command"]);
    assert_eq!(out.code, Some(127), "{out:#?}");
    assert!(out.stderr.contains("specgate: "), "{out:#?}");
    let out = specgate_run(Some(rootfs.path()), &[], &[], &["/etc"]);
    assert_eq!(out.code, Some(126), "{out:#?}");
}

#[test]
fn a_missing_runtime_is_125_and_named() {
    let out = run(specgate().args(["run", "--runtime", "/nonexistent/runc", "--", "true"]));
    assert_eq!(
        out.failure(125),
        "specgate: --runtime /nonexistent/runc: not found (is it installed and in PATH?)"
    );
}

#[test]
fn the_default_rootfs_is_the_hosts_root_read_only() {
    let out = specgate_run(
        None,
        &[],
        &[],
        &[
            "sh",
            "-c",
            "test -x /bin/sh && ! touch /usr/specgate-test 2>/dev/null && touch /tmp/ok && echo fine",
        ],
    );
    assert_eq!(out.success(), "fine\n");
    assert!(!Path::new("/usr/specgate-test").exists());
}

#[test]
fn a_plugins_capability_drop_is_visible_inside() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-capability-drop";
    let mut cmd = specgate();
    cmd.args(["run", "--name", name, "--rootfs"])
        .arg(rootfs.path())
        .arg("--plugin")
        .arg(plugin("drop-capabilities"))
        .args([
            "--plugin-setting",
            "drop-capabilities.capabilities=CAP_KILL,CAP_CHOWN",
        ])
        .args(["--", "grep", "CapEff", "/proc/self/status"]);
    let out = run(&mut cmd);
    // The 11 defaults less CAP_KILL (5) and CAP_CHOWN (0).
    let expected =
        (1u64 << 1 | 1 << 3 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 18 | 1 << 31)
            .to_string();
    let shown = out
        .success()
        .trim()
        .trim_start_matches("CapEff:")
        .trim()
        .to_string();
    assert_eq!(
        u64::from_str_radix(&shown, 16).unwrap().to_string(),
        expected
    );
    assert_no_bundle(name);
}

#[test]
fn a_running_container_leaves_the_epoch_ticker_asleep() {
    // Plugin deadlines need the engine's epoch to advance every 5 ms, but
    // only while plugins run: specgate stays up as long as its container.
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-ticker-asleep";
    let (mut child, _) = start_run(name, rootfs.path(), &["drop-capabilities"], &["sleep", "3"]);
    let tasks = PathBuf::from(format!("/proc/{}/task", child.id()));
    let ticker = std::fs::read_dir(&tasks)
        .unwrap()
        .flatten()
        .map(|task| task.path())
        .find(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == "specgate-epoch")
        });
    let wakeups = |task: &Path| -> u64 {
        std::fs::read_to_string(task.join("status"))
            .unwrap()
            .lines()
            .filter(|line| line.contains("ctxt_switches"))
            .filter_map(|line| line.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    };
    let woken = ticker.as_deref().map(|task| {
        let before = wakeups(task);
        std::thread::sleep(std::time::Duration::from_millis(500));
        wakeups(task) - before
    });
    assert!(child.wait().unwrap().success());
    assert_no_bundle(name);
    let woken = woken.expect("specgate has no epoch thread: did the plugin load?");
    // Ticking, it would have woken about 100 times.
    assert!(woken <= 2, "the epoch thread woke {woken} times in 500 ms");
}

#[test]
fn a_denial_runs_nothing_and_leaves_nothing() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-denial";
    let marker = rootfs.path().join("tmp/ran");
    let out = run(specgate()
        .args(["run", "--name", name, "--rootfs"])
        .arg(rootfs.path())
        .arg("--plugin")
        .arg(plugin("deny-privileged"))
        .args(["--plugin-setting", "deny-privileged.capabilities=CAP_CHOWN"])
        .args(["--", "touch", "/tmp/ran"]));
    assert!(
        out.failure(125)
            .ends_with("validate: denied: privileged: the container holds CAP_CHOWN")
    );
    assert!(!marker.exists());
    assert_no_bundle(name);
}

#[test]
fn a_name_in_use_is_refused() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-name-clash";
    let (mut first, _) = start_run(name, rootfs.path(), &[], &["sleep", "3"]);
    let out = run(specgate()
        .args(["run", "--name", name, "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "true"]));
    assert!(
        out.failure(125)
            .contains(&format!("container name `{name}` is already in use"))
    );
    assert!(first.wait().unwrap().success());
    assert_no_bundle(name);
}

#[test]
fn a_killed_specgates_container_goes_with_it() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-sigkill";
    let (mut child, bundle) = start_run(name, rootfs.path(), &[], &["sleep", "100"]);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(10, || !bundle.exists());
    assert_no_bundle(name);
    let state = std::process::Command::new("runc")
        .args(["state", name])
        .output()
        .unwrap();
    assert!(!state.status.success(), "runc still has {name}");
}

#[test]
fn only_a_killed_run_starts_its_cleanup() {
    let rootfs = specgate_tests::busybox_rootfs();
    // A runtime that records who called it, and at which scheduling
    // policy (field 41 of its stat), then is the real runc.
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("callers");
    let spy = recording_runc(
        bin.path(),
        &format!(
            "{{ tr '\\0' ' ' < /proc/$PPID/cmdline; echo \" policy=$(cut -d' ' -f41 /proc/$$/stat)\"; }} >> '{}'",
            log.display()
        ),
    );
    let spied = |name: &str| {
        let mut cmd = specgate();
        cmd.args(["run", "--name", name, "--runtime"])
            .arg(&spy)
            .arg("--rootfs")
            .arg(rootfs.path());
        cmd
    };
    let cleanups = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|caller| caller.contains(" guard "))
            .map(str::to_string)
            .collect()
    };

    // A run that ends well: its watcher stands down and goes, and no
    // cleanup ever calls the runtime.
    let name = "specgate-test-stand-down";
    run(spied(name).args(["--", "true"])).success();
    wait_until(10, || processes_with(name).is_empty());
    assert!(
        processes_with(name).is_empty(),
        "the watcher of {name} is still running"
    );
    assert!(
        cleanups().is_empty(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // A killed run: its cleanup calls the runtime, which the log shows.
    let name = "specgate-test-cleanup-called";
    let mut child = spied(name).args(["--", "sleep", "100"]).spawn().unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(20, || bundle.join("init.pid").exists());
    // The watcher: specgate's program, but not specgate.
    let watchers: Vec<String> = pids_with(name)
        .into_iter()
        .filter(|&pid| pid != child.id())
        .map(|pid| PathBuf::from(format!("/proc/{pid}")))
        .filter(|proc| std::fs::read_link(proc.join("exe")).is_ok_and(|exe| exe == specgate_bin()))
        .filter_map(|proc| std::fs::read_to_string(proc.join("stat")).ok())
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(10, || !bundle.exists());
    assert_no_bundle(name);
    assert_eq!(watchers.len(), 1, "{watchers:?}");
    // Its cleanup runs at the normal policy (SCHED_OTHER, 0).
    let cleanups = cleanups();
    assert!(
        !cleanups.is_empty(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    for cleanup in &cleanups {
        assert!(cleanup.ends_with(" policy=0"), "{cleanup}");
    }
}

#[test]
fn gc_removes_the_leftovers_of_dead_runs() {
    // A run whose specgate and guardian both died: its bundle names an
    // owner that no longer exists.
    let name = "specgate-test-gc";
    let bundle = Path::new("/run/specgate").join(name);
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("owner"), "0 0\n").unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let out = run(specgate().arg("gc"));
    assert!(out.success().lines().any(|l| l == name), "{out:#?}");
    assert_no_bundle(name);
}

#[test]
fn a_panic_while_runc_runs_is_cleaned_up_by_the_guard() {
    use std::os::unix::process::ExitStatusExt;
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-panic";
    // The debug build panics on the main thread once the foreground
    // `runc run` started; the container then runs with nobody waiting.
    let out = specgate()
        .env("SPECGATE_TEST_PANIC", "wait-runtime")
        .args(["run", "--name", name, "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "sleep", "100"])
        .output()
        .unwrap();
    // Reported, then aborted: no destructor ran to tell the watcher the
    // run ended well.
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("panicked") && stderr.contains("SPECGATE_TEST_PANIC=wait-runtime"),
        "{stderr}"
    );
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(30, || !bundle.exists());
    assert_no_bundle(name);
    let state = std::process::Command::new("runc")
        .args(["state", name])
        .output()
        .unwrap();
    assert!(!state.status.success(), "runc still has {name}");
}

/// A container made with plain runc, with its own bundle, under `name`;
/// deleted when dropped.
struct PlainRuncContainer {
    name: String,
    _bundle: tempfile::TempDir,
}

impl PlainRuncContainer {
    fn start(name: &str) -> Self {
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = specgate_tests::busybox_rootfs();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(rootfs.path())
            .arg(bundle.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(status.success());
        let status = std::process::Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(bundle.path())
            .status()
            .expect("runc");
        assert!(status.success());
        let path = bundle.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
        std::fs::write(&path, config.to_string()).unwrap();
        let status = std::process::Command::new("runc")
            .args(["run", "--detach", "--bundle"])
            .arg(bundle.path())
            .arg(name)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "runc run --detach {name}: {status}");
        PlainRuncContainer {
            name: name.to_string(),
            _bundle: bundle,
        }
    }

    /// Its status in runc's state.
    fn status(&self) -> String {
        let out = std::process::Command::new("runc")
            .args(["state", &self.name])
            .output()
            .unwrap();
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        state["status"].as_str().unwrap_or("gone").to_string()
    }
}

impl Drop for PlainRuncContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runc")
            .args(["delete", "--force", &self.name])
            .status();
    }
}

/// A name that runc already has for a container specgate did not create
/// (podman's, or one made with plain runc): the run fails saying so, and
/// neither the run's cleanup nor `specgate gc` deletes that container.
#[test]
fn a_container_specgate_did_not_create_is_never_deleted() {
    let name = format!("sg-clash-{}", std::process::id());
    let theirs = PlainRuncContainer::start(&name);
    assert_eq!(theirs.status(), "running");
    let rootfs = specgate_tests::busybox_rootfs();
    for options in [&[][..], &["-t"]] {
        let out = run(specgate()
            .args(["run", "--name", &name])
            .args(options)
            .arg("--rootfs")
            .arg(rootfs.path())
            .args(["--", "true"])
            .stdin(std::process::Stdio::null()));
        let error = out.failure(125);
        assert!(
            error.contains(&format!("container name `{name}` is already in use"))
                && error.contains("that this run did not create"),
            "{options:?}: {error}"
        );
        assert_eq!(theirs.status(), "running", "{options:?}");
        assert_no_bundle(&name);
    }
    // A dead run's bundle under the same name: gc removes the bundle,
    // not runc's container.
    let bundle = Path::new("/run/specgate").join(&name);
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("owner"), "0 0\n").unwrap();
    let out = run(specgate().arg("gc"));
    assert!(out.success().lines().any(|l| l == name), "{out:#?}");
    assert_no_bundle(&name);
    assert_eq!(theirs.status(), "running");
    // The guardian of such a run, whose specgate is gone (its stdin
    // closed at once): the same.
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("owner"), "0 0\n").unwrap();
    let runc = which("runc");
    let out = run(specgate()
        .args(["guard", "--runtime"])
        .arg(&runc)
        .arg(&name)
        .arg(&bundle)
        .stdin(std::process::Stdio::null()));
    out.success();
    assert_no_bundle(&name);
    assert_eq!(theirs.status(), "running");
}

/// A program's path, found in PATH, as the guardian is given it.
fn which(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not in PATH"))
}

/// Runs `specgate run ARGS -- true`, failing the test if it has not
/// ended within a minute (a FIFO read would block it for ever).
fn run_bounded(args: &[&std::ffi::OsStr]) -> Outcome {
    use std::io::Read;
    let mut child = specgate()
        .arg("run")
        .args(args)
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_within(&mut child, std::time::Duration::from_secs(60));
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// What the caller passes in: a hostname that is not one, and host files
/// that are not regular files of a bounded size (a FIFO no one writes
/// to, a link to /dev/zero, a 5 MiB file), fail at once, naming the
/// option and what is wrong, and leave nothing behind.
#[test]
fn inputs_are_validated_and_host_files_bounded() {
    use std::ffi::OsStr;
    let rootfs = specgate_tests::busybox_rootfs();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let zero = dir.path().join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    let cni = dir.path().join("cni");
    std::fs::create_dir(&cni).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cni.join("10-zero.conf")).unwrap();
    let seccomp = format!("seccomp={}", fifo.display());
    let long = "a".repeat(65);
    let name = format!("sg-inputs-{}", std::process::id());
    let os = |s: &'static str| OsStr::new(s);
    let cases: Vec<(Vec<&OsStr>, String)> = vec![
        (
            vec![os("--hostname"), os("x\n203.0.113.9 github.com")],
            r#"--hostname "x\n203.0.113.9 github.com": not a valid hostname"#.to_string(),
        ),
        (
            vec![os("--hostname"), OsStr::new(&long)],
            format!("--hostname \"{long}\": not a valid hostname"),
        ),
        (
            vec![os("--env-file"), fifo.as_os_str()],
            "not a regular file (a FIFO)".into(),
        ),
        (
            vec![os("--env-file"), zero.as_os_str()],
            "not a regular file (a character device)".into(),
        ),
        (
            vec![os("--env-file"), big.as_os_str()],
            "larger than the limit of 4194304 bytes".into(),
        ),
        (
            vec![os("--security-opt"), OsStr::new(&seccomp)],
            "not a regular file (a FIFO)".into(),
        ),
        (
            vec![
                os("--network"),
                os("private"),
                os("--cni-config-dir"),
                cni.as_os_str(),
            ],
            "not a regular file (a character device)".into(),
        ),
    ];
    for (options, expected) in cases {
        let mut args = vec![os("--no-default-policy"), os("--name"), OsStr::new(&name)];
        args.extend(&options);
        args.extend([os("--rootfs"), rootfs.path().as_os_str()]);
        let out = run_bounded(&args);
        let error = out.failure(125);
        assert!(error.contains(&expected), "{options:?}: {error}");
        assert!(!error.contains('\0'), "{options:?}: {error}");
        assert_no_bundle(&name);
    }
    // The policy file, which --no-default-policy would not read.
    for (policy, expected) in [
        (&fifo, "not a regular file (a FIFO)"),
        (&zero, "not a regular file (a character device)"),
    ] {
        let out = run_bounded(&[
            os("--policy"),
            policy.as_os_str(),
            os("--name"),
            OsStr::new(&name),
            os("--rootfs"),
            rootfs.path().as_os_str(),
        ]);
        assert_eq!(out.code, Some(125), "{out:#?}");
        assert!(out.stderr.contains(expected), "{out:#?}");
        assert_no_bundle(&name);
    }
}
