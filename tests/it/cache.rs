//! The compiled-code cache: hits, corruption, and concurrent first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn inspect_logged(cache: &Path) -> Outcome {
    run(specgate_with_cache(cache)
        .env("SPECGATE_LOG", "specgate=debug")
        .args(["plugin", "inspect", "--compile"])
        .arg(plugin("deny-privileged")))
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[test]
fn the_second_load_hits_the_cache() {
    let cache = private_tempdir();
    let first = inspect_logged(cache.path());
    first.success();
    assert!(first.stderr.contains("plugin compiled"), "{}", first.stderr);
    assert!(!first.stderr.contains("plugin cache hit"));
    let second = inspect_logged(cache.path());
    second.success();
    assert!(
        second.stderr.contains("plugin cache hit"),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("plugin compiled"));
    assert_eq!(entries(cache.path()).len(), 1);
}

#[test]
fn a_new_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let cache = parent.path().join("a/b");
    inspect_logged(&cache).success();
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_shared_cache_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let cache = private_tempdir();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = inspect_logged(cache.path()).failure(125).to_string();
    assert!(line.contains("is not private"), "{line}");
}

#[test]
fn corrupt_or_truncated_entries_are_recompiled() {
    let cache = private_tempdir();
    inspect_logged(cache.path()).success();
    let entry = entries(cache.path()).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    for damaged in [
        flipped,
        good[..good.len() / 3].to_vec(),
        b"garbage".to_vec(),
    ] {
        std::fs::write(&entry, &damaged).unwrap();
        let out = inspect_logged(cache.path());
        out.success();
        assert!(
            out.stderr.contains("corrupt; recompiling"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("plugin compiled"));
        assert_eq!(std::fs::read(&entry).unwrap(), good);
    }
}

#[test]
fn concurrent_first_uses_all_succeed() {
    let cache = private_tempdir();
    let children: Vec<_> = (0..4)
        .map(|_| {
            specgate_with_cache(cache.path())
                .args(["plugin", "inspect", "--compile"])
                .arg(plugin("readonly-mounts"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(entries(cache.path()).len(), 1);
    inspect_logged(cache.path()).success();
}

/// `spec` through a policy of one plugin, pinned to `pin`.
fn spec_pinned(cache: &Path, plugin: &Path, pin: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[[plugin]]\npath = {plugin:?}\nsha256 = {pin:?}\n");
    std::fs::write(dir.path().join("policy.toml"), text).unwrap();
    run(specgate_with_cache(cache)
        .env("SPECGATE_LOG", "specgate=debug")
        .arg("spec")
        .arg("--policy")
        .arg(dir.path().join("policy.toml"))
        .args(["--", "/bin/true"]))
}

const REMEMBERED: &str = "plugin file unchanged; digest remembered";

#[test]
fn an_unchanged_plugin_is_not_hashed_again_and_a_changed_one_is() {
    let cache = private_tempdir();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(plugin("drop-capabilities"), &path).unwrap();
    let pin = sha256_of(&path);

    // Changed within the last seconds: hashed every time.
    let fresh = spec_pinned(cache.path(), &path, &pin);
    fresh.success();
    assert!(!fresh.stderr.contains(REMEMBERED), "{}", fresh.stderr);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let settled = spec_pinned(cache.path(), &path, &pin);
    settled.success();
    assert!(!settled.stderr.contains(REMEMBERED), "{}", settled.stderr);
    let again = spec_pinned(cache.path(), &path, &pin);
    again.success();
    assert!(again.stderr.contains(REMEMBERED), "{}", again.stderr);
    assert!(
        again.stderr.contains("plugin cache hit"),
        "{}",
        again.stderr
    );

    // Other bytes in the same file: hashed again, and the pin refuses them.
    std::fs::copy(plugin("deny-privileged"), &path).unwrap();
    let line = spec_pinned(cache.path(), &path, &pin)
        .failure(125)
        .to_string();
    assert!(
        line.ends_with(&format!(
            "load: its sha256 is {}, but the policy pins {pin}",
            sha256_of(&path)
        )),
        "{line}"
    );
}

/// Makes a directory with these permission bits.
fn dir_with_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The uid the tests give what "another user" owns: nobody's.
const OTHER_UID: u32 = 65534;

#[test]
fn a_symlinked_cache_directory_is_refused() {
    let base = private_tempdir();
    let real = base.path().join("real");
    dir_with_mode(&real, 0o700);
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let line = inspect_logged(&link).failure(125).to_string();
    assert_eq!(
        line,
        format!(
            "specgate: plugin cache directory {0}: {0} is a symbolic link; give the directory's real path",
            link.display()
        )
    );
    // A link further up the path is refused too, naming it.
    let up = base.path().join("up");
    std::os::unix::fs::symlink(base.path(), &up).unwrap();
    let line = inspect_logged(&up.join("real")).failure(125).to_string();
    assert!(
        line.contains(&format!("{} is a symbolic link", up.display())),
        "{line}"
    );
    assert!(
        entries(&real).is_empty(),
        "nothing was cached through a link"
    );
    // The real path is a cache like any other.
    inspect_logged(&real).success();
    assert_eq!(entries(&real).len(), 1);
}

#[test]
fn a_parent_another_user_can_write_is_refused() {
    let base = private_tempdir();
    let chown = |path: &Path| std::os::unix::fs::chown(path, Some(OTHER_UID), Some(OTHER_UID));

    // Writable by all, without the sticky bit: anyone could rename the
    // cache away and put theirs in its place.
    let open = base.path().join("open");
    dir_with_mode(&open, 0o777);
    let line = inspect_logged(&open.join("cache")).failure(125).to_string();
    assert!(
        line.contains(&format!(
            "{} is writable by others (mode 777)",
            open.display()
        )),
        "{line}"
    );
    assert!(!open.join("cache").exists(), "nothing is made in it");

    // Writable by a group.
    let shared = base.path().join("shared");
    dir_with_mode(&shared, 0o775);
    let line = inspect_logged(&shared.join("cache"))
        .failure(125)
        .to_string();
    assert!(line.contains("is writable by others (mode 775)"), "{line}");

    // Owned by another user, who can open it up at any time.
    let theirs = base.path().join("theirs");
    dir_with_mode(&theirs, 0o755);
    chown(&theirs).unwrap();
    let line = inspect_logged(&theirs.join("cache"))
        .failure(125)
        .to_string();
    assert!(
        line.contains(&format!(
            "{} is owned by uid {OTHER_UID}, neither root nor uid 0",
            theirs.display()
        )),
        "{line}"
    );
    assert!(!theirs.join("cache").exists());

    // A root-owned sticky directory, as /tmp is: others cannot rename what
    // is ours in it, but what they made there is theirs.
    let sticky = base.path().join("sticky");
    dir_with_mode(&sticky, 0o1777);
    let planted = sticky.join("planted");
    dir_with_mode(&planted, 0o700);
    chown(&planted).unwrap();
    let line = inspect_logged(&planted.join("cache"))
        .failure(125)
        .to_string();
    assert!(
        line.contains(&format!(
            "{} is writable by others (mode 1777), and planted in it belongs to uid {OTHER_UID}",
            sticky.display()
        )),
        "{line}"
    );
    // A directory of ours there is fine: the tests' own caches are such.
    let mine = sticky.join("mine");
    inspect_logged(&mine).success();
    assert_eq!(entries(&mine).len(), 1);
}

/// The cache entry of a plugin file.
fn entry_of(cache: &Path, plugin: &Path) -> PathBuf {
    let sha256 = sha256_of(plugin);
    entries(cache)
        .into_iter()
        .find(|e| {
            e.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&sha256)
        })
        .unwrap_or_else(|| panic!("no entry for {}", plugin.display()))
}

/// `spec` with drop-capabilities dropping CAP_KILL; asserts that it ran
/// and did just that, and returns stderr.
fn spec_dropping_kill(cache: &Path) -> String {
    let out = run(specgate_with_cache(cache)
        .env("SPECGATE_LOG", "specgate=debug")
        .arg("spec")
        .arg("--plugin")
        .arg(plugin("drop-capabilities"))
        .args([
            "--plugin-setting",
            "drop-capabilities.capabilities=CAP_KILL",
            "--",
            "/bin/true",
        ]));
    let config: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    assert!(
        !cap_set(&config, "bounding").contains(&"CAP_KILL".to_string()),
        "{out:#?}"
    );
    out.stderr
}

#[test]
fn an_entry_swapped_for_another_plugins_is_never_loaded() {
    let cache = private_tempdir();
    // Both plugins' entries, made by specgate.
    inspect_logged(cache.path()).success();
    spec_dropping_kill(cache.path());
    let ours = entry_of(cache.path(), &plugin("drop-capabilities"));
    let other = entry_of(cache.path(), &plugin("deny-privileged"));

    // deny-privileged's entry, whole and intact, under drop-capabilities'
    // name: its code would deny this container for holding CAP_KILL.
    std::fs::copy(&other, &ours).unwrap();
    let stderr = spec_dropping_kill(cache.path());
    assert!(stderr.contains("corrupt; recompiling"), "{stderr}");

    // Swapped in and out while runs load it: each run loads the bytes it
    // checked, drop-capabilities' own or none.
    let keep_ours = cache.path().join("keep-ours");
    let keep_other = cache.path().join("keep-other");
    std::fs::copy(&ours, &keep_ours).unwrap();
    std::fs::copy(&other, &keep_other).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, ours) = (stop.clone(), ours.clone());
        let staging = cache.path().join("staging");
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for source in [&keep_other, &keep_ours] {
                    std::fs::hard_link(source, &staging).unwrap();
                    std::fs::rename(&staging, &ours).unwrap();
                    swaps += 1;
                }
            }
            swaps
        })
    };
    for _ in 0..30 {
        spec_dropping_kill(cache.path());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
}

#[test]
fn without_proc_a_cached_entry_is_read_and_loaded() {
    let cache = private_tempdir();
    inspect_logged(cache.path()).success();
    // In a mount namespace of its own whose /proc is an empty tmpfs, the
    // open entry cannot be named by path for wasmtime to map: it is read.
    let out = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs none /proc && exec \"$0\" plugin inspect \"$1\"")
        .arg(specgate_bin())
        .arg(plugin("deny-privileged"))
        .env("SPECGATE_CACHE_DIR", cache.path())
        .env("SPECGATE_LOG", "specgate=debug")
        .env("SPECGATE_PROGRESS_AFTER", "3600s"));
    assert!(
        out.stdout.contains("name:        deny-privileged"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("does not name the cache entry"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("plugin cache hit"), "{}", out.stderr);
    assert!(!out.stderr.contains("plugin compiled"), "{}", out.stderr);
}

/// The sidecar of an entry, as JSON.
fn sidecar_of(entry: &Path) -> PathBuf {
    entry.with_extension("json")
}

/// An entry is read and its digest checked until a check of it is
/// recorded (once it has settled); from then on it is mapped unread, until
/// anything changes it, even with its times set back.
#[test]
fn a_checked_entry_is_not_read_again_until_it_changes() {
    use std::os::unix::fs::FileExt;
    let cache = private_tempdir();
    inspect_logged(cache.path()).success();
    let entry = entries(cache.path()).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    // Only a check of a settled file is recorded.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let checked = inspect_logged(cache.path());
    checked.success();
    assert!(
        checked.stderr.contains("digest checked"),
        "{}",
        checked.stderr
    );
    assert!(checked.stderr.contains("plugin cache hit"));
    let unread = inspect_logged(cache.path());
    unread.success();
    assert!(
        !unread.stderr.contains("digest checked"),
        "{}",
        unread.stderr
    );
    assert!(unread.stderr.contains("plugin cache hit"));

    // A byte flipped in place, the mtime set back: the ctime still moved.
    let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .unwrap();
    let middle = good.len() as u64 / 2;
    file.write_all_at(&[good[middle as usize] ^ 0x40], middle)
        .unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(modified))
        .unwrap();
    drop(file);
    let out = inspect_logged(cache.path());
    out.success();
    assert!(
        out.stderr.contains("corrupt; recompiling"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

/// A recorded check holds for the boot it was made in: a crash can leave
/// an entry's metadata on disk without its data.
#[test]
fn a_check_recorded_in_another_boot_is_made_again() {
    let cache = private_tempdir();
    inspect_logged(cache.path()).success();
    let entry = entries(cache.path()).pop().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    inspect_logged(cache.path()).success();
    let sidecar = sidecar_of(&entry);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let stamp = meta["checked"]
        .as_str()
        .expect("a recorded check")
        .to_string();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert!(stamp.ends_with(boot.trim()), "{stamp}");
    let other = format!(
        "{}{}",
        &stamp[..stamp.len() - 36],
        "00000000-0000-0000-0000-000000000000"
    );
    meta["checked"] = other.into();
    std::fs::write(&sidecar, meta.to_string()).unwrap();
    let out = inspect_logged(cache.path());
    out.success();
    assert!(out.stderr.contains("digest checked"), "{}", out.stderr);
    assert!(out.stderr.contains("plugin cache hit"));
}
