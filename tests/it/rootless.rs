//! `specgate run --isolation rootless` as an unprivileged user, with the
//! real runtime (runc): each test makes a user of its own, with
//! subordinate ids, runs the real binary as it through setpriv, and
//! removes the user. These need root (to make users), runc, setpriv and
//! newuidmap/newgidmap (Debian's `uidmap`), as CI has; without them they
//! fail rather than skip.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// Fails the test when the setuid helpers of a multi-id mapping are
/// missing, rather than testing the single mapping by accident.
fn assert_uidmap_tools() {
    for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: install Debian's uidmap (.ci/setup does)"
        );
    }
}

/// A directory owned by `uid`/`gid`, mode 0700, removed when dropped.
fn owned_dir(uid: u32, gid: u32) -> tempfile::TempDir {
    let dir = private_tempdir();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    dir
}

/// A busybox rootfs owned by `uid`/`gid`, as an image it unpacked itself
/// would be: the runtime, as the container's root, creates the mount
/// points it lacks (/etc/hosts).
fn owned_rootfs(uid: u32, gid: u32) -> tempfile::TempDir {
    let rootfs = specgate_tests::busybox_rootfs();
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(rootfs.path())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "chown -R {}: {status}",
        rootfs.path().display()
    );
    rootfs
}

/// The test user's login, as a session gives it: its own
/// XDG_RUNTIME_DIR, HOME and XDG_CACHE_HOME.
struct Session {
    uid: u32,
    gid: u32,
    runtime_dir: tempfile::TempDir,
    home: tempfile::TempDir,
    /// The user made for the session; none for a uid no file names.
    /// Last, so that it is removed after its directories.
    user: Option<TestUser>,
}

impl Session {
    /// A session of a user made for it, with subordinate ids.
    fn new() -> Self {
        assert_uidmap_tools();
        let user = TestUser::new();
        Session {
            uid: user.uid,
            gid: user.gid,
            runtime_dir: owned_dir(user.uid, user.gid),
            home: owned_dir(user.uid, user.gid),
            user: Some(user),
        }
    }

    /// A session of a uid that neither /etc/passwd nor any other NSS
    /// source names (as for a uid from a directory service that is not
    /// reachable, or a container engine's arbitrary uid), with the gid of
    /// the same number.
    fn of_unnamed_uid() -> Self {
        let uid = (60_000 + std::process::id() % 5_000..)
            .find(|&uid| {
                nix::unistd::User::from_uid(uid.into()).unwrap().is_none()
                    && nix::unistd::Group::from_gid(uid.into()).unwrap().is_none()
            })
            .unwrap();
        Session {
            uid,
            gid: uid,
            runtime_dir: owned_dir(uid, uid),
            home: owned_dir(uid, uid),
            user: None,
        }
    }

    /// The user made for the session.
    fn user(&self) -> &TestUser {
        self.user.as_ref().expect("a session of a user made for it")
    }

    /// A busybox rootfs of the session's user.
    fn rootfs(&self) -> tempfile::TempDir {
        owned_rootfs(self.uid, self.gid)
    }

    /// A directory of the session's user, mode 0700.
    fn dir(&self) -> tempfile::TempDir {
        owned_dir(self.uid, self.gid)
    }

    /// setpriv as the session's user, its groups as a login gives them
    /// (none beyond its own for a uid without an entry); `env -i` and
    /// PATH=`path` follow.
    fn setpriv(&self, path: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg(if self.user.is_some() {
                "--init-groups"
            } else {
                "--clear-groups"
            })
            .args(["env", "-i"])
            .arg(format!("PATH={path}"));
        cmd
    }

    /// `specgate ARGS` as the test user, with `path` as PATH and the
    /// session's environment, nothing of ours.
    fn command_with_path(&self, path: &str, args: &[&str]) -> Command {
        let mut cmd = self.setpriv(path);
        cmd.arg(format!("HOME={}", self.home.path().display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                self.runtime_dir.path().display()
            ))
            .arg(format!(
                "XDG_CACHE_HOME={}",
                self.home.path().join(".cache").display()
            ))
            .arg(specgate_bin())
            .args(args);
        cmd
    }

    /// `specgate ARGS` as the test user.
    fn command(&self, args: &[&str]) -> Command {
        self.command_with_path(
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            args,
        )
    }

    /// `specgate run --isolation rootless --rootfs ROOTFS ARGS` as the
    /// test user.
    fn run(&self, rootfs: &Path, args: &[&str]) -> Outcome {
        let mut full = vec![
            "run",
            "--no-default-policy",
            "--isolation",
            "rootless",
            "--rootfs",
            rootfs.to_str().unwrap(),
        ];
        full.extend_from_slice(args);
        run(&mut self.command(&full))
    }

    fn specgate_state(&self) -> PathBuf {
        self.runtime_dir.path().join("specgate")
    }

    fn runc_state(&self) -> PathBuf {
        self.runtime_dir.path().join("runc")
    }

    /// No bundle in specgate's state directory, no container in runc's.
    fn assert_nothing_left(&self) {
        for dir in [self.specgate_state(), self.runc_state()] {
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
        }
    }
}

/// The lines of /proc/self/uid_map or gid_map, as numbers.
fn id_map(text: &str) -> Vec<[u32; 3]> {
    text.lines()
        .map(|line| {
            let fields: Vec<u32> = line
                .split_whitespace()
                .map(|f| f.parse().unwrap())
                .collect();
            [fields[0], fields[1], fields[2]]
        })
        .collect()
}

#[test]
fn the_callers_uid_is_root_and_its_subordinate_ids_the_rest() {
    let session = Session::new();
    let user = session.user();
    let rootfs = session.rootfs();
    let out = session.run(
        rootfs.path(),
        &[
            "--",
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; echo --; cat /proc/self/gid_map",
        ],
    );
    let text = out.success();
    let (ids, maps) = text
        .split_once('\n')
        .and_then(|(u, rest)| rest.split_once('\n').map(|(g, maps)| ((u, g), maps)))
        .unwrap();
    assert_eq!(ids, ("0", "0"), "{text}");
    let (uid_map, gid_map) = maps.split_once("--\n").unwrap();
    assert_eq!(
        id_map(uid_map),
        vec![[0, user.uid, 1], [1, user.subuid.0, user.subuid.1]]
    );
    assert_eq!(
        id_map(gid_map),
        vec![[0, user.gid, 1], [1, user.subgid.0, user.subgid.1]]
    );
    session.assert_nothing_left();
    assert!(
        session.runc_state().is_dir(),
        "runc kept no state under XDG_RUNTIME_DIR/runc"
    );
}

/// A uid no file names: glibc asks every NSS source after `files` in
/// nsswitch.conf (libnss-systemd on Debian, sss or ldap on managed
/// hosts), where a statically linked specgate crashed. newuidmap maps
/// subordinate ids only for a user it can name, so the run maps the
/// caller's own ids and says why.
#[test]
fn a_uid_no_file_names_runs_with_its_own_ids_and_a_warning() {
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap();
    let passwd = nsswitch
        .lines()
        .find_map(|l| l.strip_prefix("passwd:"))
        .expect("a passwd line in /etc/nsswitch.conf");
    assert!(
        passwd.split_whitespace().any(|source| source != "files"),
        "/etc/nsswitch.conf asks only files for users ({passwd}): install libnss-systemd (.ci/setup does), so that lookups go past /etc/passwd"
    );
    let session = Session::of_unnamed_uid();
    let rootfs = session.rootfs();
    let out = session.run(
        rootfs.path(),
        &[
            "--",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    let text = out.success();
    let (id, maps) = text.split_once('\n').unwrap();
    assert_eq!(id, "0", "{out:#?}");
    assert_eq!(
        id_map(maps),
        vec![[0, session.uid, 1], [0, session.gid, 1]],
        "{out:#?}"
    );
    assert!(
        out.stderr
            .contains(&format!("uid {} has no user name", session.uid)),
        "{out:#?}"
    );
    session.assert_nothing_left();
    // The other commands that look the caller up do not crash either.
    let spec = run(&mut session.command(&[
        "spec",
        "--no-default-policy",
        "--isolation",
        "rootless",
        "--rootfs",
        rootfs.path().to_str().unwrap(),
    ]));
    assert_eq!(
        spec.config()["linux"]["uidMappings"][0]["hostID"],
        session.uid
    );
}

#[test]
fn exit_codes_pass_through() {
    let session = Session::new();
    let rootfs = session.rootfs();
    for code in [0, 3, 42] {
        let out = session.run(rootfs.path(), &["--", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.code, Some(code), "{out:#?}");
    }
    let missing = session.run(rootfs.path(), &["--", "/bin/no-such-command"]);
    missing.failure(127);
    // With a terminal, the container's init is reaped by specgate itself.
    let terminal = session.run(rootfs.path(), &["-t", "--", "sh", "-c", "exit 5"]);
    assert_eq!(terminal.code, Some(5), "{terminal:#?}");
    session.assert_nothing_left();
}

#[test]
fn a_plugin_acts_in_a_rootless_run() {
    const CAP_CHOWN: u64 = 1;
    let session = Session::new();
    let rootfs = session.rootfs();
    let effective = |out: &Outcome| {
        let text = out.success();
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap_or_else(|| panic!("no CapEff in {text}"));
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    let plain = session.run(rootfs.path(), &["--", "cat", "/proc/self/status"]);
    assert_ne!(
        effective(&plain) & CAP_CHOWN,
        0,
        "root in the container has CAP_CHOWN"
    );
    let plugin = plugin("drop-capabilities");
    let dropped = session.run(
        rootfs.path(),
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--plugin-setting",
            "drop-capabilities.capabilities=CAP_CHOWN",
            "--",
            "cat",
            "/proc/self/status",
        ],
    );
    assert_eq!(effective(&dropped) & CAP_CHOWN, 0, "{dropped:#?}");
    // The compiled plugin is cached in the user's XDG_CACHE_HOME.
    let cache = session.home.path().join(".cache/specgate");
    assert!(
        std::fs::read_dir(&cache).is_ok_and(|mut e| e.next().is_some()),
        "nothing cached in {}",
        cache.display()
    );
    session.assert_nothing_left();
}

#[test]
fn a_file_made_in_a_bound_directory_is_the_users_on_the_host() {
    let session = Session::new();
    let user = session.user();
    let rootfs = session.rootfs();
    let shared = session.dir();
    let volume = format!("{}:/data", shared.path().display());
    session
        .run(
            rootfs.path(),
            &["-v", &volume, "--", "sh", "-c", "echo made > /data/file"],
        )
        .success();
    let meta = std::fs::metadata(shared.path().join("file")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
    session.assert_nothing_left();
}

#[test]
fn the_hosts_root_is_the_default_rootfs_read_only() {
    let session = Session::new();
    let out = run(&mut session.command(&[
        "run",
        "--no-default-policy",
        "--isolation",
        "rootless",
        "--",
        "sh",
        "-c",
        "id -u; echo ok > /tmp/scratch && cat /tmp/scratch; touch /specgate-rootless-test",
    ]));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert_eq!(out.stdout, "0\nok\n");
    assert!(out.stderr.contains("Read-only file system"), "{out:#?}");
    assert!(!Path::new("/specgate-rootless-test").exists());
    session.assert_nothing_left();
}

#[test]
fn without_newuidmap_only_the_callers_ids_are_mapped() {
    let session = Session::new();
    let user = session.user();
    let rootfs = session.rootfs();
    // A PATH with runc alone: runc looks newuidmap and newgidmap up in
    // PATH, as specgate does.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let runc = Command::new("sh")
        .args(["-c", "command -v runc"])
        .output()
        .unwrap();
    let runc = String::from_utf8(runc.stdout).unwrap();
    assert!(
        !runc.trim().is_empty(),
        "runc is not installed (.ci/setup installs it)"
    );
    std::os::unix::fs::symlink(runc.trim(), bin.path().join("runc")).unwrap();
    let out = run(&mut session.command_with_path(
        bin.path().to_str().unwrap(),
        &[
            "run",
            "--no-default-policy",
            "--isolation",
            "rootless",
            "--rootfs",
            rootfs.path().to_str().unwrap(),
            "--",
            "cat",
            "/proc/self/uid_map",
            "/proc/self/gid_map",
        ],
    ));
    assert_eq!(
        id_map(out.success()),
        vec![[0, user.uid, 1], [0, user.gid, 1]]
    );
    assert!(
        out.stderr
            .contains("newuidmap and newgidmap not found in PATH"),
        "{out:#?}"
    );
    session.assert_nothing_left();
}

#[test]
fn the_spec_is_valid_and_rootless() {
    let session = Session::new();
    let user = session.user();
    let rootfs = session.rootfs();
    let out = run(&mut session.command(&[
        "spec",
        "--no-default-policy",
        "--isolation",
        "rootless",
        "--rootfs",
        rootfs.path().to_str().unwrap(),
    ]));
    let config = out.config();
    assert!(namespace_types(&config).contains(&"user".to_string()));
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], user.uid);
    assert_eq!(config["linux"]["uidMappings"][1]["hostID"], user.subuid.0);
    assert!(config["linux"]["resources"].is_null(), "{config:#}");
    let mounts: Vec<&str> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/dev/pts") && mounts.contains(&"/sys"));
}

#[test]
fn a_killed_runs_guardian_cleans_up_in_the_users_state() {
    let session = Session::new();
    let rootfs = session.rootfs();
    let name = "specgate-test-rootless-killed";
    let mut child = session
        .command(&[
            "run",
            "--no-default-policy",
            "--isolation",
            "rootless",
            "--name",
            name,
            "--rootfs",
            rootfs.path().to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bundle = session.specgate_state().join(name);
    let container = session.runc_state().join(name);
    wait_until(20, || bundle.join("init.pid").exists());
    assert!(
        container.exists(),
        "runc's state is not in {}",
        container.display()
    );
    // setpriv and env exec: the child is specgate itself.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(20, || !bundle.exists() && !container.exists());
    session.assert_nothing_left();
    let gc = run(&mut session.command(&["gc"]));
    assert_eq!(gc.success(), "");
}

#[test]
fn without_a_runtime_dir_the_error_says_what_to_set() {
    let session = Session::new();
    let rootfs = session.rootfs();
    let mut cmd = session.setpriv("/usr/bin:/bin:/usr/sbin:/sbin");
    cmd.arg(specgate_bin())
        .args(["run", "--no-default-policy", "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "true"]);
    let out = run(&mut cmd);
    let stderr = out.failure(125);
    assert!(stderr.contains("XDG_RUNTIME_DIR is not set"), "{stderr}");
}

#[test]
fn disabled_user_namespaces_are_named() {
    // user.max_user_namespaces is per user namespace: set to 0 in one of
    // its own, it disables them for specgate there, and for nobody else.
    let rootfs = specgate_tests::busybox_rootfs();
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --no-default-policy --isolation rootless --rootfs {} -- true",
        specgate_bin().display(),
        rootfs.path().display()
    );
    let out = run(Command::new("unshare").args(["--user", "--map-root-user", "sh", "-c", &script]));
    let stderr = out.failure(125);
    assert!(
        stderr.contains("user namespaces, which are disabled: user.max_user_namespaces is 0"),
        "{stderr}"
    );
}

#[test]
fn runc_runs_rootless_with_its_state_in_the_users_runtime_dir() {
    let session = Session::new();
    let rootfs = session.rootfs();
    // A runtime that records its command line, then is the real runc.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = bin.path().join("calls");
    let wrapper = recording_runc(bin.path(), &format!("echo \"$@\" >> {}", log.display()));
    let out = session.run(
        rootfs.path(),
        &["--runtime", wrapper.to_str().unwrap(), "--", "true"],
    );
    out.success();
    let calls = std::fs::read_to_string(&log).unwrap();
    let run = calls
        .lines()
        .find(|l| l.contains(" run "))
        .unwrap_or_else(|| panic!("no run in {calls}"));
    let root = format!("--root={}", session.runc_state().display());
    let flags: Vec<&str> = run.split_whitespace().collect();
    for flag in [root.as_str(), "--rootless=true", "--no-new-keyring"] {
        assert!(flags.contains(&flag), "{flag} missing: {run}");
    }
    let command = flags.iter().position(|f| *f == "run").unwrap();
    let global = &flags[..command];
    assert!(global.contains(&"--rootless=true") && global.contains(&root.as_str()));
    session.assert_nothing_left();
}
