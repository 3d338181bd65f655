//! Rootfs trees that try to make the host read or create files outside
//! them: the working directory, `/etc/passwd`, `/etc/group` and `PATH`
//! directories linked to host paths, absolute and with `..`. The host
//! paths hold canaries; none may be read, and nothing may appear there.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use specgate::spec::rootfs::{self, Rootfs, RootfsError};
use specgate::spec::user::{self, UserError};

/// What a user read from the host's side would look like.
const EVIL_PASSWD: &str =
    "root:x:0:4242:evil root:/evil-root:/bin/sh\nevil:x:4242:4242::/:/bin/sh\n";
const EVIL_GROUP: &str = "root:x:0:\nevil:x:4242:root,evil\n";

/// A rootfs next to a host directory full of canaries.
struct Attack {
    host: tempfile::TempDir,
    rootfs: tempfile::TempDir,
}

impl Attack {
    fn new() -> Self {
        let host = tempfile::tempdir().expect("host directory");
        let rootfs = tempfile::tempdir().expect("rootfs directory");
        std::fs::create_dir_all(host.path().join("etc")).unwrap();
        std::fs::write(host.path().join("etc/passwd"), EVIL_PASSWD).unwrap();
        std::fs::write(host.path().join("etc/group"), EVIL_GROUP).unwrap();
        std::fs::create_dir_all(host.path().join("bin")).unwrap();
        let evil = host.path().join("bin/evilcmd");
        std::fs::write(&evil, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(host.path().join("existing")).unwrap();
        Attack { host, rootfs }
    }

    /// A host path of the canaries, absolute.
    fn host(&self, path: &str) -> PathBuf {
        self.host.path().join(path)
    }

    /// The same host path, reached from `/` of the rootfs by climbing.
    fn climbing(&self, path: &str) -> PathBuf {
        let depth = self.rootfs.path().components().count() + 4;
        PathBuf::from("../".repeat(depth)).join(self.host(path).strip_prefix("/").unwrap())
    }

    /// Makes `link` in the rootfs point to `target`.
    fn link(&self, link: &str, target: impl AsRef<Path>) -> &Self {
        let path = self.rootfs.path().join(link.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
        self
    }

    fn file(&self, path: &str, text: &str) -> &Self {
        let path = self.rootfs.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn open(&self) -> Rootfs {
        Rootfs::open(self.rootfs.path()).expect("open the rootfs")
    }

    /// Asserts the host's directory `path` is still empty.
    #[track_caller]
    fn assert_host_dir_empty(&self, path: &str) {
        let entries: Vec<_> = std::fs::read_dir(self.host(path))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(entries.is_empty(), "{path} on the host got {entries:?}");
    }

    /// Asserts the host's `path` does not exist.
    #[track_caller]
    fn assert_host_absent(&self, path: &str) {
        assert!(
            std::fs::symlink_metadata(self.host(path)).is_err(),
            "{path} appeared on the host"
        );
    }
}

/// The two ways a link reaches a host path: absolutely, and by climbing
/// with `..` past the rootfs's root.
const BOTH_FORMS: [fn(&Attack, &str) -> PathBuf; 2] = [Attack::host, Attack::climbing];

/// Asserts that the user is not resolved from the host's canaries.
#[track_caller]
fn assert_no_canary_user(rootfs: &Rootfs) {
    assert!(
        matches!(
            user::resolve(rootfs, "evil"),
            Err(UserError::NoSuchUser { .. })
        ),
        "the user came from the host's passwd"
    );
    let by_uid = user::resolve(rootfs, "4242").unwrap();
    assert_eq!((by_uid.gid, by_uid.home.as_str()), (0, "/"));
    let root = user::resolve(rootfs, "0").unwrap();
    assert_eq!(root.gid, 0);
    assert!(!root.additional_gids.contains(&4242), "{root:?}");
    assert_ne!(root.home, "/evil-root");
}

#[test]
fn passwd_linked_to_the_host_absolutely_is_not_read() {
    let attack = Attack::new();
    attack.link("/etc/passwd", attack.host("etc/passwd"));
    assert_no_canary_user(&attack.open());
}

#[test]
fn passwd_linked_to_the_host_by_climbing_is_not_read() {
    let attack = Attack::new();
    attack.link("/etc/passwd", attack.climbing("etc/passwd"));
    assert_no_canary_user(&attack.open());
}

#[test]
fn etc_linked_to_the_hosts_etc_is_not_read() {
    let absolute = Attack::new();
    absolute.link("/etc", absolute.host("etc"));
    assert_no_canary_user(&absolute.open());

    let climbing = Attack::new();
    climbing.link("/etc", climbing.climbing("etc"));
    assert_no_canary_user(&climbing.open());
}

#[test]
fn group_linked_to_the_host_gives_no_group() {
    for target in BOTH_FORMS {
        let attack = Attack::new();
        attack
            .file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
            .link("/etc/group", target(&attack, "etc/group"));
        let rootfs = attack.open();
        let root = user::resolve(&rootfs, "root").unwrap();
        assert_eq!(root.additional_gids, [0]);
        assert!(matches!(
            user::resolve(&rootfs, "root:evil"),
            Err(UserError::NoSuchGroup { .. })
        ));
    }
}

#[test]
fn an_absolute_link_reads_the_rootfs_own_file_of_that_name() {
    let attack = Attack::new();
    let host_passwd = attack.host("etc/passwd");
    attack
        .file(
            &host_passwd.to_string_lossy(),
            "inside:x:7:7::/home/inside:/bin/sh\n",
        )
        .link("/etc/passwd", &host_passwd);
    let rootfs = attack.open();
    let inside = user::resolve(&rootfs, "inside").unwrap();
    assert_eq!((inside.uid, inside.home.as_str()), (7, "/home/inside"));
    assert_no_canary_user(&rootfs);
}

#[test]
fn a_path_directory_linked_to_the_host_finds_nothing() {
    let attack = Attack::new();
    attack
        .link("/usr/local/bin", attack.host("bin"))
        .link("/bin", attack.climbing("bin"))
        .link("/sbin/evilcmd", attack.host("bin/evilcmd"));
    let rootfs = attack.open();
    let path = "/usr/local/bin:/bin:/sbin";
    for command in [
        "evilcmd",
        "/usr/local/bin/evilcmd",
        "/bin/evilcmd",
        "/sbin/evilcmd",
    ] {
        let outcome = rootfs.resolve_command(command, path, "/");
        assert!(
            matches!(outcome, Err(RootfsError::NotFound { .. })),
            "{command}: {outcome:?}"
        );
    }
    let relative = attack.climbing("bin");
    let outcome = rootfs.resolve_command("evilcmd", &relative.to_string_lossy(), "/");
    assert!(
        matches!(outcome, Err(RootfsError::NotFound { .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_workdir_linked_to_a_missing_host_dir_is_not_created() {
    for target in BOTH_FORMS {
        let attack = Attack::new();
        attack.link("/work", target(&attack, "target"));
        let rootfs = attack.open();
        for workdir in ["/work", "/work/sub"] {
            let outcome = rootfs.create_dir_all(workdir);
            assert!(
                matches!(outcome, Err(RootfsError::DanglingLink { .. })),
                "{workdir}: {outcome:?}"
            );
        }
        attack.assert_host_absent("target");
    }
}

#[test]
fn a_workdir_under_a_link_to_an_existing_host_dir_is_not_created() {
    for target in BOTH_FORMS {
        let attack = Attack::new();
        attack.link("/data", target(&attack, "existing"));
        let rootfs = attack.open();
        let mut spec = specgate::spec::default_spec("id", &["sh".into()]);
        if let Some(process) = spec.process_mut() {
            process.set_cwd("/data/new".into());
        }
        let outcome = rootfs::create_workdir(&spec, &rootfs);
        assert!(
            matches!(outcome, Err(RootfsError::DanglingLink { .. })),
            "{outcome:?}"
        );
        attack.assert_host_dir_empty("existing");
    }
}

#[test]
fn a_workdir_climbing_out_is_created_inside() {
    let attack = Attack::new();
    let workdir = format!("/{}/made", attack.climbing("existing").display());
    attack.open().create_dir_all(&workdir).unwrap();
    attack.assert_host_dir_empty("existing");
    let inside = attack
        .rootfs
        .path()
        .join(attack.host("existing/made").strip_prefix("/").unwrap());
    assert!(inside.is_dir(), "{} was not created", inside.display());
}

#[test]
fn a_link_to_the_roots_parent_stays_at_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    symlink("/..", root.join("up")).unwrap();
    symlink("../..", root.join("up2")).unwrap();
    let rootfs = Rootfs::open(&root).unwrap();
    rootfs.create_dir_all("/up/escaped").unwrap();
    rootfs.create_dir_all("/up2/escaped2").unwrap();
    assert!(root.join("escaped").is_dir());
    assert!(root.join("escaped2").is_dir());
    assert!(!outer.path().join("escaped").exists());
    assert!(!outer.path().join("escaped2").exists());
}
