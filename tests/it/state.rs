//! Runtime state directories another user could reach: a run refuses
//! them before anything is made or removed there. Two unprivileged users
//! of the test's own, made for it and removed after: a victim, whose
//! XDG_RUNTIME_DIR points at a directory both can write in, and an
//! attacker, who planted `specgate/` there and keeps swapping a bundle
//! for a link to the victim's home while the victim runs specgate.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::*;

/// `PROGRAM ARGS` as `user`, with only `env` in its environment.
fn as_user(user: &TestUser, program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .args(["env", "-i", "PATH=/usr/bin:/bin:/usr/sbin:/sbin"]);
    for (key, value) in env {
        cmd.arg(format!("{key}={}", value.display()));
    }
    cmd.arg(program).args(args);
    cmd
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
    as_user(attacker, Path::new("/bin/sh"), &["-c", &script], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Swapper)
        .unwrap()
}

#[test]
fn a_runtime_dir_another_user_can_write_in_is_refused() {
    let victim = TestUser::new();
    let attacker = TestUser::new();
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
    let status = as_user(
        &attacker,
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
    // Others may not even look: the XDG base directory specification's
    // 0700.
    let readable_own = top.path().join("readable-own");
    std::fs::create_dir(&readable_own).unwrap();
    std::os::unix::fs::chown(&readable_own, Some(victim.uid), Some(victim.gid)).unwrap();
    std::fs::set_permissions(&readable_own, std::fs::Permissions::from_mode(0o755)).unwrap();

    let rootfs = specgate_tests::busybox_rootfs();
    let rootfs = rootfs.path().to_str().unwrap();
    let cases: [(&Path, &[&str], &str); 5] = [
        (&shared, &["gc"], "owned by uid 0"),
        (&readable_own, &["gc"], "mode 0755"),
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
        let out = run(&mut as_user(
            &victim,
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
                && error.contains("that no one else may enter"),
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
