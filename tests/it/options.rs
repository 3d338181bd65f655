//! The run options, as `specgate spec` turns them into a config.json:
//! every config checked against the OCI schema, the defaults compared
//! with podman's and with `runc spec`, and every malformed flag refused
//! before anything is touched.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::util::{cap_set, namespace_types, run, specgate};

/// `specgate spec` with container options, for `-- command`.
fn spec(options: &[&str], command: &[&str]) -> Value {
    spec_outcome(options, command).config()
}

fn spec_outcome(options: &[&str], command: &[&str]) -> crate::util::Outcome {
    let mut cmd = specgate();
    cmd.arg("spec").args(options).arg("--").args(command);
    run(&mut cmd)
}

/// A JSON array's strings, as a set.
fn strings(value: &Value) -> BTreeSet<String> {
    crate::util::strings(value)
}

fn env(config: &Value) -> Vec<String> {
    crate::util::strings(&config["process"]["env"])
}

fn mount<'c>(config: &'c Value, destination: &str) -> Option<&'c Value> {
    config["mounts"]
        .as_array()?
        .iter()
        .find(|m| m["destination"] == destination)
}

const PODMAN_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

const PODMAN_MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/devices/virtual/powercap",
];

const PODMAN_READONLY: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_defaults_are_podmans() {
    let config = spec(&[], &["sh"]);
    for set_name in ["bounding", "effective", "permitted"] {
        let caps: BTreeSet<String> = cap_set(&config, set_name).into_iter().collect();
        assert_eq!(caps, set(&PODMAN_CAPS), "{set_name}");
    }
    assert!(cap_set(&config, "inheritable").is_empty());
    assert!(cap_set(&config, "ambient").is_empty());
    assert_eq!(
        strings(&config["linux"]["maskedPaths"]),
        set(&PODMAN_MASKED)
    );
    assert_eq!(
        strings(&config["linux"]["readonlyPaths"]),
        set(&PODMAN_READONLY)
    );
    for destination in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/etc/hosts",
        "/etc/resolv.conf",
    ] {
        assert!(mount(&config, destination).is_some(), "{destination}");
    }
    assert_eq!(
        namespace_types(&config),
        ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    );
    assert_eq!(config["process"]["cwd"], "/");
    assert_eq!(config["process"]["user"]["uid"], 0);
    assert!(env(&config).iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(config["root"]["readonly"], true);
    assert!(config["linux"]["seccomp"]["syscalls"].is_array());
    let hostname = config["hostname"].as_str().unwrap_or_default();
    assert_eq!(hostname.len(), 12);
    assert!(env(&config).contains(&format!("HOSTNAME={hostname}")));
}

#[test]
fn the_defaults_differ_from_runc_spec_only_where_intended() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .status()
        .expect("runc must be installed (.ci/setup installs it)");
    assert!(status.success());
    let runc: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let ours = spec(&[], &["sh"]);

    // Capabilities: podman's 11 instead of runc's 3. Programs that
    // install packages or change users need CHOWN, DAC_OVERRIDE, FOWNER,
    // FSETID, SETFCAP, SETGID, SETPCAP, SETUID and SYS_CHROOT; podman
    // dropped AUDIT_WRITE (4.0) and so do we. runc also fills ambient,
    // which we keep empty (CVE-2022-27651).
    let intended_added = set(&[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ]);
    let intended_removed = set(&["CAP_AUDIT_WRITE"]);
    for set_name in ["bounding", "effective", "permitted"] {
        let a = strings(&ours["process"]["capabilities"][set_name]);
        let b = strings(&runc["process"]["capabilities"][set_name]);
        let added: BTreeSet<String> = a.difference(&b).cloned().collect();
        let removed: BTreeSet<String> = b.difference(&a).cloned().collect();
        assert!(added.is_subset(&intended_added), "{set_name}: {added:?}");
        assert!(
            removed.is_subset(&intended_removed),
            "{set_name}: {removed:?}"
        );
    }
    assert!(cap_set(&ours, "ambient").is_empty());

    // Masked paths: podman's list adds /proc/interrupts (interrupt
    // counts leak host activity), /sys/fs/selinux and powercap (energy
    // counters, a side channel); /proc/asound is read-only instead of
    // masked, as in podman.
    let a = strings(&ours["linux"]["maskedPaths"]);
    let b = strings(&runc["linux"]["maskedPaths"]);
    let added: BTreeSet<String> = a.difference(&b).cloned().collect();
    let removed: BTreeSet<String> = b.difference(&a).cloned().collect();
    assert!(
        added.is_subset(&set(&[
            "/proc/interrupts",
            "/sys/fs/selinux",
            "/sys/devices/virtual/powercap"
        ])),
        "{added:?}"
    );
    assert!(removed.is_subset(&set(&["/proc/asound"])), "{removed:?}");
    let a = strings(&ours["linux"]["readonlyPaths"]);
    let b = strings(&runc["linux"]["readonlyPaths"]);
    let added: BTreeSet<String> = a.difference(&b).cloned().collect();
    assert!(b.is_subset(&a));
    assert!(added.is_subset(&set(&["/proc/asound"])), "{added:?}");

    // Mounts: runc's seven, plus the host's /etc/hosts and
    // /etc/resolv.conf copied into the bundle (name resolution works in
    // the container) and, for the embedded rootfs only, tmpfs where
    // programs write on a read-only root.
    let destinations = |config: &Value| -> BTreeSet<String> {
        config["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["destination"].as_str().map(str::to_string))
            .collect()
    };
    let a = destinations(&ours);
    let b = destinations(&runc);
    assert!(
        b.is_subset(&a),
        "runc mounts we lack: {:?}",
        b.difference(&a)
    );
    let added: BTreeSet<String> = a.difference(&b).cloned().collect();
    assert!(
        added.is_subset(&set(&[
            "/etc/hosts",
            "/etc/resolv.conf",
            "/tmp",
            "/var/tmp",
            "/run"
        ])),
        "{added:?}"
    );

    // Namespaces: runc's, plus cgroup (a container should not see the
    // host's cgroup tree), as podman on cgroup v2.
    let a: BTreeSet<String> = namespace_types(&ours).into_iter().collect();
    let b: BTreeSet<String> = namespace_types(&runc).into_iter().collect();
    assert!(b.is_subset(&a));
    assert!(a.difference(&b).all(|t| t == "cgroup"));

    // A seccomp filter and clamped rlimits, which runc's example lacks:
    // podman's behaviour.
    assert!(ours["linux"]["seccomp"].is_object());
    assert!(runc["linux"]["seccomp"].is_null());
}

#[test]
fn environment_options() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, "# settings\nFROM_FILE=1\nBOTH=file\n").unwrap();
    let mut cmd = specgate();
    cmd.env("SPECGATE_TEST_HOST_VALUE", "from-host")
        .arg("spec")
        .args([
            "--env-file",
            file.to_str().unwrap(),
            "-e",
            "BOTH=flag",
            "--env",
            "SPECGATE_TEST_HOST_VALUE",
            "-t",
            "--",
            "sh",
        ]);
    let config = run(&mut cmd).config();
    let env = env(&config);
    for expected in [
        "FROM_FILE=1",
        "BOTH=flag",
        "SPECGATE_TEST_HOST_VALUE=from-host",
        "TERM=xterm",
    ] {
        assert!(env.contains(&expected.to_string()), "{expected}: {env:?}");
    }
    assert_eq!(config["process"]["terminal"], true);
    let config = spec(&["--tty=false"], &["sh"]);
    assert_eq!(config["process"]["terminal"], false);
    assert!(!self::env(&config).iter().any(|e| e.starts_with("TERM=")));
}

#[test]
fn capability_options() {
    let config = spec(
        &["--cap-add", "net_raw", "--cap-drop", "CAP_CHOWN"],
        &["sh"],
    );
    let caps = cap_set(&config, "effective");
    assert!(caps.contains(&"CAP_NET_RAW".to_string()));
    assert!(!caps.contains(&"CAP_CHOWN".to_string()));
    let config = spec(&["--cap-drop", "all", "--cap-add", "sys_time"], &["sh"]);
    assert_eq!(cap_set(&config, "bounding"), ["CAP_SYS_TIME"]);
    // Another user than root keeps the bounding set only.
    let config = spec(&["--user", "1000"], &["sh"]);
    assert_eq!(cap_set(&config, "bounding").len(), 11);
    assert!(cap_set(&config, "effective").is_empty());
    assert_eq!(config["process"]["user"]["uid"], 1000);
}

#[test]
fn namespace_options() {
    let config = spec(
        &[
            "--network",
            "host",
            "--ipc=host",
            "--uts",
            "host",
            "--cgroupns",
            "host",
        ],
        &["sh"],
    );
    assert_eq!(namespace_types(&config), ["pid", "mount"]);
    assert!(config["hostname"].is_null());
    let config = spec(
        &[
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:100000:65536",
            "--hostname",
            "web",
        ],
        &["sh"],
    );
    assert!(namespace_types(&config).contains(&"user".to_string()));
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], 100000);
    assert_eq!(config["hostname"], "web");
    let config = spec(&["--network", "ns:/proc/1/ns/net"], &["sh"]);
    let net = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "network")
        .unwrap();
    assert_eq!(net["path"], "/proc/1/ns/net");
}

#[test]
fn mount_options() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().to_str().unwrap();
    let config = spec(
        &[
            "-v",
            &format!("{source}:/data:ro"),
            "--mount",
            &format!("type=bind,source={source},destination=/more"),
            "--tmpfs",
            "/scratch:size=1m",
            "--shm-size",
            "128m",
            "--add-host",
            "db:10.0.0.2",
        ],
        &["sh"],
    );
    let data = mount(&config, "/data").expect("the volume");
    assert_eq!(data["source"], source);
    assert!(strings(&data["options"]).contains("ro"));
    assert!(mount(&config, "/more").is_some());
    assert_eq!(mount(&config, "/scratch").unwrap()["type"], "tmpfs");
    assert!(strings(&mount(&config, "/dev/shm").unwrap()["options"]).contains("size=134217728"));
    let config = spec(&["--no-hosts"], &["sh"]);
    assert!(mount(&config, "/etc/hosts").is_none());
}

#[test]
fn resource_and_security_options() {
    let config = spec(
        &[
            "--ulimit",
            "nofile=100:200",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "mask=/proc/version",
            "--annotation",
            "org.example/owner=web",
        ],
        &["sh"],
    );
    let nofile = config["process"]["rlimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "RLIMIT_NOFILE")
        .unwrap()
        .clone();
    assert_eq!(
        (nofile["soft"].as_u64(), nofile["hard"].as_u64()),
        (Some(100), Some(200))
    );
    let resources = &config["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 64 << 20);
    assert_eq!(resources["cpu"]["quota"], 50_000);
    assert_eq!(resources["pids"]["limit"], 50);
    assert_eq!(config["process"]["noNewPrivileges"], true);
    assert!(config["linux"]["seccomp"].is_null());
    assert!(strings(&config["linux"]["maskedPaths"]).contains("/proc/version"));
    assert_eq!(config["annotations"]["org.example/owner"], "web");
}

#[test]
fn rootless_isolation_changes_the_spec_as_buildah_does() {
    let config = spec(&["--isolation", "rootless"], &["sh"]);
    let types = namespace_types(&config);
    assert!(types.contains(&"user".to_string()));
    assert!(!types.contains(&"network".to_string()));
    assert_eq!(mount(&config, "/sys").unwrap()["type"], "bind");
    assert!(config["linux"]["resources"].is_null());
}

#[test]
fn malformed_flags_are_refused_naming_the_flag_and_the_value() {
    let cases: [(&[&str], &str); 12] = [
        (&["-v", "a"], "'a'"),
        (&["--ulimit", "nofile=x"], "nofile=x"),
        (&["--add-host", "foo"], "foo"),
        (&["--cap-add", "CAP_FOO"], "CAP_FOO"),
        (&["--cpus", "-1"], "-1"),
        (&["--uidmap", "0:x:1"], "0:x:1"),
        (&["--mount", "type=bogus"], "type=bogus"),
        (&["--network", "a,,b"], "a,,b"),
        (&["--security-opt", "bogus"], "bogus"),
        (&["--tmpfs", "relative"], "relative"),
        (&["--memory", "lots"], "lots"),
        (&["--pid", "sideways"], "sideways"),
    ];
    for (args, value) in cases {
        let outcome = spec_outcome(args, &["sh"]);
        let line = outcome.failure(125);
        assert!(
            line.contains(args[0]) && line.contains(value),
            "{args:?}: {line}"
        );
    }
    for (args, names) in [
        (
            &["--cap-add", "NET_RAW", "--cap-drop", "net_raw"][..],
            "CAP_NET_RAW",
        ),
        (&["--pid", "host", "--userns", "private"][..], "--pid host"),
        (
            &["--uts", "host", "--hostname", "web"][..],
            "--hostname web",
        ),
        (&["-w", "relative"][..], "--workdir relative"),
        (
            &["-v", "/nonexistent-source-dir:/data"][..],
            "/nonexistent-source-dir",
        ),
        (&["-v", "/tmp:relative"][..], "relative"),
        (&["--env-file", "/nonexistent/env"][..], "/nonexistent/env"),
    ] {
        let outcome = spec_outcome(args, &["sh"]);
        let line = outcome.failure(125);
        assert!(line.contains(names), "{args:?}: {line}");
    }
    let outcome = run(specgate().args(["run", "--"]));
    assert!(outcome.failure(125).contains("command must be specified"));
}

#[test]
fn an_unknown_user_or_group_is_named() {
    let rootfs = specgate_tests::busybox_rootfs();
    let root = rootfs.path().to_str().unwrap();
    let line = spec_outcome(&["--rootfs", root, "--user", "nosuchuser"], &["sh"])
        .failure(125)
        .to_string();
    assert!(line.contains("nosuchuser"), "{line}");
    let line = spec_outcome(&["--rootfs", root, "--user", "0:nosuchgroup"], &["sh"])
        .failure(125)
        .to_string();
    assert!(line.contains("nosuchgroup"), "{line}");
}

/// `specgate run --rootfs ROOTFS OPTIONS -- COMMAND` (root and runc, as
/// in CI).
fn run_in(rootfs: &std::path::Path, options: &[&str], command: &[&str]) -> crate::util::Outcome {
    let mut cmd = specgate();
    cmd.arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(options)
        .arg("--")
        .args(command);
    run(&mut cmd)
}

#[test]
fn options_reach_the_container() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run_in(
        rootfs.path(),
        &[
            "--user",
            "nobody",
            "--workdir",
            "/work/deep",
            "-e",
            "GREETING=hi",
            "--hostname",
            "box",
            "--ulimit",
            "nofile=123:456",
            "--add-host",
            "db.internal:10.1.2.3",
        ],
        &[
            "sh",
            "-c",
            "id -u; id -G; pwd; echo $GREETING $HOME; hostname; ulimit -n; grep db.internal /etc/hosts",
        ],
    );
    let stdout = out.success();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "65534");
    assert_eq!(
        lines[1].split(' ').collect::<BTreeSet<_>>(),
        ["10", "65534"].into()
    );
    assert_eq!(lines[2], "/work/deep");
    assert_eq!(lines[3], "hi /home/nobody");
    assert_eq!(lines[4], "box");
    assert_eq!(lines[5], "123");
    assert!(lines[6].starts_with("10.1.2.3") && lines[6].ends_with("db.internal"));
    assert!(rootfs.path().join("work/deep").is_dir());
}

#[test]
fn capabilities_and_seccomp_reach_the_container() {
    let rootfs = specgate_tests::busybox_rootfs();
    let status = |options: &[&str]| {
        let out = run_in(
            rootfs.path(),
            options,
            &["grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status"],
        );
        out.success().to_string()
    };
    // CAP_NET_RAW is bit 13, CAP_CHOWN bit 0.
    let default = status(&[]);
    assert!(default.contains("Seccomp:\t2"), "{default}");
    let caps = |text: &str| {
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:\t"))
            .unwrap()
            .to_string();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    let changed = status(&[
        "--cap-add",
        "net_raw",
        "--cap-drop",
        "chown",
        "--security-opt",
        "seccomp=unconfined",
    ]);
    assert_eq!(caps(&changed), (caps(&default) | 1 << 13) & !1);
    assert!(changed.contains("Seccomp:\t0"), "{changed}");
}

#[test]
fn a_missing_command_is_127_and_one_that_cannot_run_is_126() {
    let rootfs = specgate_tests::busybox_rootfs();
    let line = run_in(rootfs.path(), &[], &["no-such-command"])
        .failure(127)
        .to_string();
    assert!(line.contains("no-such-command"), "{line}");
    std::fs::write(rootfs.path().join("bin/data"), "not a program").unwrap();
    let line = run_in(rootfs.path(), &[], &["data"])
        .failure(126)
        .to_string();
    assert!(line.contains("data"), "{line}");
}

#[test]
fn a_read_only_rootfs_and_a_volume() {
    let rootfs = specgate_tests::busybox_rootfs();
    let volume = tempfile::tempdir().unwrap();
    let out = run_in(
        rootfs.path(),
        &[
            "--read-only",
            "-v",
            &format!("{}:/data", volume.path().display()),
        ],
        &[
            "sh",
            "-c",
            "echo x > /data/file && ! touch /etc/nope 2>/dev/null && echo ok",
        ],
    );
    assert_eq!(out.success(), "ok\n");
    assert!(volume.path().join("file").exists());
    assert!(!rootfs.path().join("etc/nope").exists());
}

#[test]
fn id_maps_give_the_container_a_user_namespace() {
    let rootfs = specgate_tests::busybox_rootfs();
    // A rootfs for a user namespace belongs to the ids its root maps to,
    // as podman's storage makes it.
    let chown = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(rootfs.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let out = run_in(
        rootfs.path(),
        &["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
        &["sh", "-c", "id -u; cat /proc/self/uid_map"],
    );
    let stdout = out.success();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", "100000", "65536"]);
}
