//! `--isolation chroot`: the same spec run by specgate itself, without an
//! OCI runtime. A probe in a busybox rootfs must see the same container
//! as under runc (`--isolation oci`) from the same options.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use crate::util::*;

/// What the probe prints: identity, capabilities, no_new_privs, seccomp
/// mode and what the filter (with the capabilities) refuses, hostname,
/// limits, then each mount's destination and options.
const PROBE: &str = "id; hostname; \
    grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; \
    unshare -U true 2>&1; echo unshare $?; mount -t tmpfs t /tmp 2>&1; echo mount $?; \
    ulimit -n; grep -E '^Max (open files|processes|core)' /proc/self/limits; \
    touch /sys/fs/cgroup/specgate-probe 2>&1; echo cgroup-write $?; \
    echo mounts; awk '{print $2, $4, $3}' /proc/self/mounts";

/// Runs `specgate run --isolation ISOLATION OPTIONS -- ARGS` in `rootfs`.
fn run_isolated(isolation: &str, rootfs: &Path, options: &[&str], args: &[&str]) -> Outcome {
    run(specgate()
        .args([
            "run",
            "--no-default-policy",
            "--isolation",
            isolation,
            "--rootfs",
        ])
        .arg(rootfs)
        .args(options)
        .arg("--")
        .args(args))
}

/// The probe's report, its mounts as a set of destinations with the
/// options that matter (ro/rw, nosuid, nodev, noexec), and for
/// /sys/fs/cgroup its filesystem type too: on a cgroup v1 host a fresh
/// tmpfs under both, never the host's. Below it, what a cgroup v1 host
/// shows differs by design: runc fills the tmpfs with the container's
/// own hierarchies, chroot isolation leaves it empty.
fn probe_report(stdout: &str) -> (Vec<String>, BTreeSet<String>) {
    let (head, mounts) = stdout.split_once("mounts\n").expect("probe output");
    let mounts = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (dest, options, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            if dest.starts_with("/sys/fs/cgroup/") {
                return None;
            }
            let kept: Vec<&str> = options
                .split(',')
                .filter(|o| matches!(*o, "ro" | "rw" | "nosuid" | "nodev" | "noexec"))
                .collect();
            if dest == "/sys/fs/cgroup" {
                return Some(format!("{dest} {} {fstype}", kept.join(",")));
            }
            Some(format!("{dest} {}", kept.join(",")))
        })
        .collect();
    (head.lines().map(str::to_string).collect(), mounts)
}

/// A busybox rootfs with the mount points a run needs already there: a
/// root mapped in a user namespace may not create them in a rootfs the
/// host's root owns (under runc as under chroot).
fn rootfs_for_a_user_namespace() -> tempfile::TempDir {
    let rootfs = specgate_tests::busybox_rootfs();
    for file in ["etc/hosts", "etc/resolv.conf"] {
        std::fs::write(rootfs.path().join(file), "").unwrap();
    }
    std::fs::create_dir(rootfs.path().join("data")).unwrap();
    rootfs
}

fn assert_same_container(options: &[&str]) {
    let rootfs = rootfs_for_a_user_namespace();
    let args = ["sh", "-c", PROBE];
    let oci = run_isolated("oci", rootfs.path(), options, &args);
    let chroot = run_isolated("chroot", rootfs.path(), options, &args);
    let (oci_head, oci_mounts) = probe_report(oci.success());
    let (chroot_head, chroot_mounts) = probe_report(chroot.success());
    assert_eq!(chroot_head, oci_head, "with {options:?}");
    assert_eq!(chroot_mounts, oci_mounts, "with {options:?}");
    assert!(
        chroot_mounts
            .iter()
            .any(|m| m.starts_with("/sys/fs/cgroup "))
    );
    // What the container wrote there, if anything, is not the host's.
    assert!(!Path::new("/sys/fs/cgroup/specgate-probe").exists());
}

/// A user namespace of the container's own, mapped onto subordinate ids.
const PRIVATE_USERNS: [&str; 6] = [
    "--userns",
    "private",
    "--uidmap",
    "0:100000:65536",
    "--gidmap",
    "0:100000:65536",
];

#[test]
fn chroot_and_runc_give_the_same_container_by_default() {
    assert_same_container(&["--hostname", "probe"]);
}

#[test]
fn chroot_and_runc_give_the_same_restricted_container() {
    let rootfs_volume = tempfile::tempdir().unwrap();
    std::fs::write(rootfs_volume.path().join("f"), "data\n").unwrap();
    let volume = format!("{}:/data:ro", rootfs_volume.path().display());
    let restricted = [
        &[
            "--hostname",
            "probe",
            "--user",
            "nobody",
            "--cap-drop",
            "all",
            "--cap-add",
            "CAP_NET_BIND_SERVICE",
            "--security-opt",
            "no-new-privileges",
            "--ulimit",
            "nofile=100:200",
            "--read-only",
            "-v",
            &volume,
        ][..],
        &PRIVATE_USERNS,
    ]
    .concat();
    assert_same_container(&restricted);
}

#[test]
fn exit_statuses_match_runcs() {
    let rootfs = specgate_tests::busybox_rootfs();
    let cases: [(&[&str], &[&str], i32); 5] = [
        (&[], &["true"], 0),
        (&[], &["sh", "-c", "exit 42"], 42),
        (&[], &["nonexistent-command"], 127),
        (&[], &["/etc"], 126),
        // Not the PID namespace's init, which SIGKILL from inside spares.
        (&["--pid", "host"], &["sh", "-c", "kill -9 $$"], 137),
    ];
    for (options, args, code) in cases {
        for isolation in ["oci", "chroot"] {
            let out = run_isolated(isolation, rootfs.path(), options, args);
            assert_eq!(out.code, Some(code), "{isolation} {args:?}: {out:#?}");
        }
    }
}

#[test]
fn stdin_stdout_and_stderr_are_relayed() {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut child = specgate()
        .args(["run", "-i", "--isolation", "chroot", "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "tr a-z A-Z; echo err >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn sigterm_to_specgate_reaches_the_container() {
    let rootfs = specgate_tests::busybox_rootfs();
    assert_sigterm_reaches_the_container(
        specgate()
            .args(["run", "--isolation", "chroot", "--rootfs"])
            .arg(rootfs.path()),
        "\n",
    );
}

#[test]
fn nothing_is_left_behind() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-chroot-leftovers";
    for args in [&["true"][..], &["sh", "-c", "exit 7"]] {
        let out = run(specgate()
            .args(["run", "--isolation", "chroot", "--name", name, "--rootfs"])
            .arg(rootfs.path())
            .arg("--")
            .args(args));
        assert!(matches!(out.code, Some(0 | 7)), "{out:#?}");
        let bundle = Path::new("/run/specgate").join(name);
        assert!(!bundle.exists(), "{} was left behind", bundle.display());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = rootfs.path().to_string_lossy();
        assert!(
            !mountinfo.contains(root.as_ref()),
            "mounts of {root} left in the host's mount table:\n{mountinfo}"
        );
    }
}

#[test]
fn the_hosts_root_is_the_default_rootfs_read_only() {
    let out = run(specgate().args([
        "run",
        "--isolation",
        "chroot",
        "--",
        "sh",
        "-c",
        "test -x /bin/sh && ! touch /specgate-probe 2>/dev/null && echo read-only",
    ]));
    assert_eq!(out.success(), "read-only\n");
}

#[test]
fn a_terminal_without_one_on_stdin() {
    let rootfs = specgate_tests::busybox_rootfs();
    let args = [
        "sh",
        "-c",
        "test -t 0 && test -t 1 && test -t 2 && tty && test -c /dev/console; exit 3",
    ];
    for isolation in ["oci", "chroot"] {
        let out = run(specgate()
            .args(["run", "-t", "--isolation", isolation, "--rootfs"])
            .arg(rootfs.path())
            .arg("--")
            .args(args)
            .stdin(Stdio::null()));
        assert_eq!(out.code, Some(3), "{isolation}: {out:#?}");
        // In the container's own devpts; lines end with CR LF.
        assert_eq!(out.stdout, "/dev/pts/0\r\n", "{isolation}");
        assert_eq!(out.stderr, "", "{isolation}");
    }
}

#[test]
fn a_terminal_follows_ours_and_takes_our_keys() {
    let rootfs = specgate_tests::busybox_rootfs();
    let pty = nix::pty::openpty(None, None).unwrap();
    let (status, text) = crate::stdio::resize_and_type(
        specgate()
            .args(["run", "-t", "-i", "--isolation", "chroot", "--rootfs"])
            .arg(rootfs.path()),
        &pty,
    );
    assert!(status.success());
    assert!(text.contains("hello\r\ngot hello\r\n"), "{text:?}");
}

#[test]
fn a_setup_failure_is_125_and_named() {
    // A user the user namespace does not map: refused in the container,
    // before the command runs.
    let rootfs = rootfs_for_a_user_namespace();
    let options = [
        "--userns",
        "private",
        "--uidmap",
        "0:100000:1000",
        "--gidmap",
        "0:100000:1000",
        "--user",
        "5000",
    ];
    let out = run_isolated("chroot", rootfs.path(), &options, &["true"]);
    assert_eq!(
        out.failure(125),
        "specgate: process.user uid 5000 gid 0: setresuid: EINVAL: Invalid argument \
         (is it mapped in the user namespace?)"
    );
}

#[test]
fn a_killed_specgates_container_goes_with_it() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-chroot-sigkill";
    let mut child = specgate()
        .args(["run", "--isolation", "chroot", "--name", name, "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "echo $$; exec sleep 100"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The container's init, pid 1 in its namespace: found on the host by
    // its parent, specgate.
    assert_eq!(line, "1\n");
    // The shell has said its pid, but may not have exec'd sleep yet.
    wait_until(10, || sleeping_child(child.id()).is_some());
    let init = sleeping_child(child.id()).expect("the container's init among specgate's children");
    child.kill().unwrap();
    child.wait().unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(10, || {
        !bundle.exists() && !Path::new(&format!("/proc/{init}/cmdline")).exists()
    });
    assert!(!bundle.exists(), "{} was left behind", bundle.display());
    let cmdline = std::fs::read_to_string(format!("/proc/{init}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.starts_with("sleep\0"),
        "the container's init {init} outlived specgate"
    );
}

#[test]
fn a_namespace_given_by_path_is_joined() {
    let rootfs = specgate_tests::busybox_rootfs();
    // A network namespace held by a process of its own (util-linux's
    // unshare, which every Debian has).
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("util-linux unshare");
    let path = format!("/proc/{}/ns/net", holder.id());
    let started = std::time::Instant::now();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let wanted = loop {
        let link = std::fs::read_link(&path).unwrap();
        if link != host || started.elapsed().as_secs() > 10 {
            break link;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let network = format!("ns:{path}");
    for extra in [&[][..], &PRIVATE_USERNS] {
        let mut options = vec!["--network", network.as_str()];
        options.extend_from_slice(extra);
        let out = run_isolated(
            "chroot",
            rootfs.path(),
            &options,
            &["readlink", "/proc/self/ns/net"],
        );
        assert_eq!(
            out.success().trim(),
            wanted.to_string_lossy(),
            "{options:?}"
        );
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// Whether the host's /sys/fs/cgroup is the unified (v2) hierarchy.
fn host_cgroup2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .unwrap()
        .filesystem_type()
        == nix::sys::statfs::CGROUP2_SUPER_MAGIC
}

#[test]
fn the_hosts_cgroup_tree_is_out_of_reach() {
    let rootfs = specgate_tests::busybox_rootfs();
    // On a cgroup v1 host, an empty tmpfs of the container's own; on a
    // v2 host, its own cgroup namespace's tree, read-only.
    let probe = format!("specgate-probe-{}", std::process::id());
    let out = run_isolated(
        "chroot",
        rootfs.path(),
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "echo x > /sys/fs/cgroup/{probe} 2>/dev/null; \
                 awk '$2 == \"/sys/fs/cgroup\" {{print $3}}' /proc/self/mounts; \
                 ls /sys/fs/cgroup | grep -v {probe} | wc -l"
            ),
        ],
    );
    let lines: Vec<&str> = out.success().lines().collect();
    if host_cgroup2() {
        assert_eq!(lines.first(), Some(&"cgroup2"), "{out:#?}");
    } else {
        assert_eq!(lines, ["tmpfs", "0"], "{out:#?}");
    }
    assert!(
        !Path::new("/sys/fs/cgroup").join(&probe).exists(),
        "the container wrote {probe} in the host's /sys/fs/cgroup"
    );
}

/// The host's specgate binary, as a process in the container could
/// reach it through `/proc/PID/exe`, is never the file on disk as such:
/// the container's init runs it through a read-only overlay, or a sealed
/// in-memory copy (CVE-2019-5736).
#[test]
fn the_containers_init_never_runs_specgates_file_as_such() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let before = sha256_of(specgate_bin());
    // The command is whatever the container's init runs, through its
    // own `/proc/self/exe`: specgate's `guard`, which waits on stdin
    // (the host's root is the rootfs: the binary's libraries are there).
    let needle = format!("guard sg-sealed-{} /nonexistent", std::process::id());
    let mut args = vec!["/proc/self/exe".to_string()];
    args.extend(needle.split(' ').map(str::to_string));
    let mut child = specgate()
        .args(["run", "-i", "--isolation", "chroot", "--"])
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let found = || {
        pids_with(&needle).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with(b"/proc/self/exe\0guard\0"))
        })
    };
    wait_until(20, || found().is_some());
    let pid = found().expect("the container's process");
    let exe = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&exe).unwrap();
    // The attack: hold the executable, let its process end, then open it
    // for writing.
    let held = nix::fcntl::open(
        exe.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    // Not the host's file: a sealed memfd copy, or the file seen through
    // a read-only overlayfs mount attached nowhere.
    let filesystem = nix::sys::statfs::fstatfs(&held).unwrap().filesystem_type();
    let memfd = target.to_string_lossy().starts_with("/memfd:specgate");
    assert!(
        memfd || filesystem == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC,
        "the container runs {} ({filesystem:?})",
        target.display()
    );
    assert_ne!(
        std::fs::metadata(&exe).unwrap().dev(),
        std::fs::metadata(specgate_bin()).unwrap().dev(),
        "the container runs specgate's own file"
    );
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()));
    if let Ok(mut file) = reopened {
        assert!(
            std::io::Write::write_all(&mut file, b"#!").is_err(),
            "the copy could be written"
        );
    }
    assert_eq!(sha256_of(specgate_bin()), before);
}

/// Sharing the host's PID namespace, the container sees specgate, its
/// parent: it cannot open its executable for writing either.
#[test]
fn a_container_cannot_open_specgates_executable_for_writing() {
    let rootfs = specgate_tests::busybox_rootfs();
    let before = sha256_of(specgate_bin());
    let out = run_isolated(
        "chroot",
        rootfs.path(),
        &["--pid", "host"],
        &[
            "sh",
            "-c",
            "for pid in $PPID 1; do \
               if true 2>/dev/null >>/proc/$pid/exe; then echo opened $pid; else echo refused $pid; fi; \
             done",
        ],
    );
    let lines: Vec<&str> = out.success().lines().collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert!(lines.iter().all(|l| l.starts_with("refused ")), "{out:#?}");
    assert_eq!(sha256_of(specgate_bin()), before);
}

/// Kills a process a failed test left behind, so that it does not
/// outlive the test either.
fn kill_leftover(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Whether a process is alive: it exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// `--pid host`: the command backgrounds a `setsid` child, which leaves
/// the container's init behind, in a session of its own. It dies with
/// the run, whether the run ends or specgate is killed.
#[test]
fn what_a_container_sharing_the_hosts_pid_namespace_left_dies_with_the_run() {
    let rootfs = specgate_tests::busybox_rootfs();
    for killed in [false, true] {
        let name = format!("sg-pidhost-{}-{killed}", std::process::id());
        let mut child = specgate()
            .args([
                "run",
                "--isolation",
                "chroot",
                "--pid",
                "host",
                "--name",
                &name,
            ])
            .arg("--rootfs")
            .arg(rootfs.path())
            .args([
                "--",
                "sh",
                "-c",
                if killed {
                    "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 1000"
                } else {
                    "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"
                },
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let left: u32 = line.trim().parse().expect("the background child's pid");
        if killed {
            // Still running: its specgate is killed.
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        if !killed {
            assert!(status.success(), "{status}");
        }
        wait_until(20, || !alive(left));
        let survived = alive(left);
        if survived {
            kill_leftover(left);
        }
        assert!(
            !survived,
            "the container's background process {left} outlived the run (killed: {killed})"
        );
        let bundle = Path::new("/run/specgate").join(&name);
        wait_until(10, || !bundle.exists());
        assert!(!bundle.exists(), "{} was left behind", bundle.display());
    }
}

/// With a user switch (`-u 1000`), which clears the kernel's
/// parent-death signal, the container still dies with a killed specgate.
#[test]
fn a_killed_specgates_container_goes_with_it_after_a_user_switch() {
    let rootfs = specgate_tests::busybox_rootfs();
    let name = format!("sg-sigkill-user-{}", std::process::id());
    let mut child = specgate()
        .args([
            "run",
            "--isolation",
            "chroot",
            "-u",
            "1000",
            "--name",
            &name,
        ])
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "id -u; exec sleep 1000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "1000\n");
    wait_until(20, || sleeping_child(child.id()).is_some());
    let init = sleeping_child(child.id()).expect("the container's init among specgate's children");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(20, || !alive(init));
    let survived = alive(init);
    if survived {
        kill_leftover(init);
    }
    assert!(!survived, "the container's init {init} outlived specgate");
    let bundle = Path::new("/run/specgate").join(&name);
    wait_until(10, || !bundle.exists());
    assert!(!bundle.exists(), "{} was left behind", bundle.display());
}

/// The child of `parent` (its main thread's) running `sleep`: a
/// container's init under chroot isolation once its shell exec'd.
fn sleeping_child(parent: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with("sleep\0"))
        })
}
