//! The compiled-code cache: hits, corruption, and concurrent first use.

use std::path::{Path, PathBuf};

use crate::util::*;

fn inspect_logged(cache: &Path) -> Outcome {
    run(specgate_with_cache(cache)
        .env("SPECGATE_LOG", "specgate=debug")
        .args(["plugin", "inspect"])
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
                .args(["plugin", "inspect"])
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
