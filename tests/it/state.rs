//! Runtime state directories another user could reach: a run refuses
//! them before anything is made or removed there. Two unprivileged users
//! of the test's own, made for it and removed after: a victim, whose
//! XDG_RUNTIME_DIR points at a directory both can write in, and an
//! attacker, who planted `specgate/` there and keeps swapping a bundle
//! for a link to the victim's home while the victim runs specgate.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::*;

/// A user made for one test, removed when dropped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create(role: &str) -> Self {
        let name = format!("sg-race-{}-{role}", std::process::id());
        // Not left over from an earlier run with the same pid.
        let _ = Command::new("userdel").arg(&name).status();
        let status = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
            .arg(&name)
            .status()
            .expect("useradd (Debian's passwd package)");
        assert!(status.success(), "useradd {name}: {status}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        TestUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }

    /// `PROGRAM ARGS` as this user, with only `env` in its environment.
    fn command(&self, program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .args(["env", "-i", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"]);
        for (key, value) in env {
            cmd.arg(format!("{key}={}", value.display()));
        }
        cmd.arg(program).args(args);
        cmd
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// The attacker's loop, killed when dropped (before its user is
/// removed, which would fail while it runs).
struct Swapper(Child);

impl Drop for Swapper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The attacker's loop: `specgate/NAME` a directory one moment, a link
/// to the victim's home the next.
fn start_swapping(attacker: &TestUser, state: &Path, home: &Path) -> Swapper {
    let script = format!(
        "cd '{}' || exit 1; while :; do \
           mkdir -p real/d && echo '0 0' > real/owner 2>/dev/null; \
           ln -sfn '{}' link; \
           mv -T real victim-run 2>/dev/null; mv -T link victim-run 2>/dev/null; \
           mv -T victim-run real 2>/dev/null; \
         done",
        state.display(),
        home.display()
    );
    attacker
        .command(Path::new("/bin/sh"), &["-c", &script], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Swapper)
        .unwrap()
}

#[test]
fn a_runtime_dir_another_user_can_write_in_is_refused() {
    let victim = TestUser::create("v");
    let attacker = TestUser::create("a");
    let top = tempfile::tempdir().unwrap();
    // The victim's home and files.
    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    for file in ["id_ed25519", "notes.txt"] {
        std::fs::write(home.join(file), file).unwrap();
    }
    std::os::unix::fs::chown(&home, Some(victim.uid), Some(victim.gid)).unwrap();
    for file in ["id_ed25519", "notes.txt"] {
        std::os::unix::fs::chown(home.join(file), Some(victim.uid), Some(victim.gid)).unwrap();
    }
    // A directory everyone may write in, as /tmp is.
    use std::os::unix::fs::PermissionsExt;
    let shared = top.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The attacker plants specgate/ there, open to the victim too.
    let planted = shared.join("specgate");
    let status = attacker
        .command(
            Path::new("/bin/sh"),
            &[
                "-c",
                &format!("mkdir -m 0777 '{0}' && chmod 0777 '{0}'", planted.display()),
            ],
            &[],
        )
        .status()
        .unwrap();
    assert!(status.success());
    let swapper = start_swapping(&attacker, &planted, &home);

    // The victim's own directory, open to others: refused too.
    let open_own = top.path().join("open-own");
    std::fs::create_dir(&open_own).unwrap();
    std::os::unix::fs::chown(&open_own, Some(victim.uid), Some(victim.gid)).unwrap();
    std::fs::set_permissions(&open_own, std::fs::Permissions::from_mode(0o777)).unwrap();

    let rootfs = specgate_tests::busybox_rootfs();
    let rootfs = rootfs.path().to_str().unwrap();
    let cases: [(&Path, &[&str], &str); 4] = [
        (&shared, &["gc"], "owned by uid 0"),
        (
            &shared,
            &[
                "run",
                "--no-default-policy",
                "--name",
                "victim-run",
                "--rootfs",
                rootfs,
                "--",
                "true",
            ],
            "owned by uid 0",
        ),
        (&open_own, &["gc"], "mode 0777"),
        (
            &open_own,
            &[
                "run",
                "--no-default-policy",
                "--name",
                "victim-run",
                "--rootfs",
                rootfs,
                "--",
                "true",
            ],
            "mode 0777",
        ),
    ];
    for (runtime_dir, args, why) in cases {
        let out = run(&mut victim.command(
            specgate_bin(),
            args,
            &[
                ("XDG_RUNTIME_DIR", runtime_dir),
                ("HOME", &home),
                ("SPECGATE_CACHE_DIR", &home.join(".cache")),
            ],
        ));
        let error = out.failure(125);
        assert!(
            error.contains(&format!(
                "runtime state directory {}",
                runtime_dir.display()
            )) && error.contains(why)
                && error.contains("that no one else may write in"),
            "{args:?}: {error}"
        );
    }
    drop(swapper);
    for file in ["id_ed25519", "notes.txt"] {
        assert_eq!(
            std::fs::read_to_string(home.join(file)).ok().as_deref(),
            Some(file),
            "the victim's {file} was touched"
        );
    }
    assert!(!open_own.join("specgate").exists());
}
