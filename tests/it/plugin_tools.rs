//! `plugin compile`, `plugin cache list|prune`, and the word on stderr of
//! a compile that takes a while.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::util::*;

const EXAMPLES: [&str; 5] = [
    "deny-privileged",
    "drop-capabilities",
    "mount-allowlist",
    "readonly-mounts",
    "require-namespaces",
];

fn compile(cache: &Path, plugins: &[&str]) -> Outcome {
    let mut cmd = specgate_with_cache(cache);
    cmd.args(["plugin", "compile"]);
    for name in plugins {
        cmd.arg(plugin(name));
    }
    run(&mut cmd)
}

/// The cache directory's file names, sorted.
fn files(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn entry_of(cache: &Path, name: &str) -> PathBuf {
    let sha = sha256_of(&plugin(name));
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&sha) && n.ends_with(".cwasm")
        })
        .unwrap_or_else(|| panic!("no cache entry for {name}: {:?}", files(cache)))
}

/// Pretends an entry was last used `age` ago.
fn age_entry(entry: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(entry).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(SystemTime::now() - age))
        .unwrap();
}

fn list_json(cache: &Path) -> Vec<serde_json::Value> {
    let out = run(specgate_with_cache(cache).args(["plugin", "cache", "list", "--json"]));
    serde_json::from_str::<serde_json::Value>(out.success())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn policy_naming(dir: &Path, plugins: &[&str]) -> PathBuf {
    let mut text = String::new();
    for name in plugins {
        text.push_str(&format!(
            "[[plugin]]\nname = \"{name}\"\npath = \"{}\"\n",
            plugin(name).display()
        ));
    }
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compile_fills_the_cache_so_the_first_run_compiles_nothing() {
    let cache = private_tempdir();
    let out = compile(cache.path(), &EXAMPLES);
    let lines: Vec<&str> = out.success().lines().collect();
    assert_eq!(lines.len(), EXAMPLES.len(), "{out:#?}");
    for (line, name) in lines.iter().zip(EXAMPLES) {
        let sha = sha256_of(&plugin(name));
        assert!(line.starts_with(name), "{line}");
        assert!(
            line.contains(&format!("  {}  compiled", &sha[..12])),
            "{line}"
        );
    }

    let mut cmd = specgate_with_cache(cache.path());
    // Monitor mode: the whole chain runs, though mount-allowlist would
    // refuse the default spec's bind mounts.
    cmd.env("SPECGATE_LOG", "specgate=debug")
        .args(["spec", "--policy-mode", "monitor"]);
    let first_run = run(with_chain(&mut cmd, &EXAMPLES, &[]).args(["--", "/bin/true"]));
    first_run.success();
    assert_eq!(
        first_run.stderr.matches("plugin cache hit").count(),
        EXAMPLES.len(),
        "{}",
        first_run.stderr
    );
    assert!(!first_run.stderr.contains("plugin compiled"));

    let again = compile(cache.path(), &EXAMPLES[..2]);
    for line in again.success().lines() {
        assert!(line.contains("  already cached  "), "{line}");
    }
}

#[test]
fn compile_takes_the_plugins_of_a_policy_file() {
    let cache = private_tempdir();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_naming(dir.path(), &["drop-capabilities", "readonly-mounts"]);
    let out = run(specgate_with_cache(cache.path())
        .args(["plugin", "compile", "--policy"])
        .arg(&policy));
    let text = out.success();
    assert!(text.starts_with("drop-capabilities  "), "{text}");
    assert!(text.contains("\nreadonly-mounts    "), "{text}");
    assert_eq!(
        files(cache.path()).len(),
        6,
        "two entries, two sidecars, two remembered digests"
    );
}

#[test]
fn bad_input_names_the_file_and_leaves_nothing_in_the_cache() {
    let cache = private_tempdir();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wasm");
    let line = run(specgate_with_cache(cache.path())
        .args(["plugin", "compile"])
        .arg(&missing))
    .failure(125)
    .to_string();
    assert!(
        line.contains(&format!(
            "({}): load: cannot read the file",
            missing.display()
        )),
        "{line}"
    );

    let script = dir.path().join("script.wasm");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let line = run(specgate_with_cache(cache.path())
        .args(["plugin", "compile"])
        .arg(&script))
    .failure(125)
    .to_string();
    assert!(line.contains(&script.display().to_string()), "{line}");

    // Compiles, then is refused: its compiled code is not kept.
    let line = compile(cache.path(), &["no-hooks"])
        .failure(125)
        .to_string();
    assert!(
        line.contains("no_hooks.wasm): load: exports no hook"),
        "{line}"
    );
    assert_eq!(files(cache.path()), Vec::<String>::new());

    // Every failure is said, in order; the good plugin is still compiled.
    let out = compile(
        cache.path(),
        &["future-version", "deny-privileged", "no-hooks"],
    );
    assert_eq!(out.code, Some(125));
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{out:#?}");
    assert!(errors[0].contains("future_version.wasm"), "{out:#?}");
    assert!(errors[1].contains("no_hooks.wasm"), "{out:#?}");
    assert!(out.stdout.starts_with("deny-privileged  "), "{out:#?}");
    assert_eq!(
        files(cache.path()).len(),
        3,
        "an entry, its sidecar and its plugin's digest"
    );
}

#[test]
fn compile_needs_the_cache() {
    let out = run(specgate()
        .args(["--no-cache", "plugin", "compile"])
        .arg(plugin("deny-privileged")));
    assert!(out.failure(125).contains("--no-cache"));
}

#[test]
fn the_list_shows_digest_size_source_and_last_use() {
    let cache = private_tempdir();
    compile(cache.path(), &["deny-privileged", "readonly-mounts"]).success();
    let entries = list_json(cache.path());
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        let path = PathBuf::from(entry["path"].as_str().unwrap());
        assert_eq!(entry["size"], std::fs::metadata(&path).unwrap().len());
        let source = PathBuf::from(entry["source"].as_str().unwrap());
        assert_eq!(entry["sha256"], sha256_of(&source));
        assert!(source.is_absolute());
        assert_eq!(entry["this_engine"], true);
        assert!(entry["last_used"].as_str().unwrap().ends_with('Z'));
    }

    let text = run(specgate_with_cache(cache.path()).args(["plugin", "cache", "list"]));
    let lines: Vec<&str> = text.success().lines().collect();
    assert!(lines[0].starts_with("DIGEST"), "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("readonly_mounts.wasm")));
}

#[test]
fn a_cached_load_records_its_use_and_where_the_plugin_was() {
    let cache = private_tempdir();
    compile(cache.path(), &["deny-privileged"]).success();
    let entry = entry_of(cache.path(), "deny-privileged");
    let moved = tempfile::tempdir().unwrap();
    let copy = moved.path().join("deny_privileged.wasm");
    std::fs::copy(plugin("deny-privileged"), &copy).unwrap();

    // Used within the hour: a hit writes nothing.
    run(specgate_with_cache(cache.path())
        .args(["plugin", "inspect"])
        .arg(&copy))
    .success();
    let listed = &list_json(cache.path())[0];
    assert_eq!(
        listed["source"],
        plugin("deny-privileged").display().to_string()
    );

    age_entry(&entry, Duration::from_secs(3 * 3600));
    run(specgate_with_cache(cache.path())
        .args(["plugin", "inspect"])
        .arg(&copy))
    .success();
    let listed = &list_json(cache.path())[0];
    assert_eq!(listed["source"], copy.display().to_string());
    let used = std::fs::metadata(&entry).unwrap().modified().unwrap();
    assert!(used.elapsed().unwrap() < Duration::from_secs(600));
}

#[test]
fn corrupt_or_foreign_sidecars_break_nothing() {
    let cache = private_tempdir();
    compile(cache.path(), &["deny-privileged", "readonly-mounts"]).success();
    let entry = entry_of(cache.path(), "deny-privileged");
    std::fs::write(entry.with_extension("json"), b"\x00garbage{").unwrap();
    std::fs::write(
        entry_of(cache.path(), "readonly-mounts").with_extension("json"),
        br#"{"source": 42, "written-by": "a later specgate"}"#,
    )
    .unwrap();
    age_entry(&entry, Duration::from_secs(3 * 3600));

    let entries = list_json(cache.path());
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["source"].is_null()), "{entries:?}");
    // A hit past the granularity rewrites the sidecar whole.
    let out = run(specgate_with_cache(cache.path())
        .env("SPECGATE_LOG", "specgate=debug")
        .args(["plugin", "inspect"])
        .arg(plugin("deny-privileged")));
    out.success();
    assert!(out.stderr.contains("plugin cache hit"), "{}", out.stderr);
    let entries = list_json(cache.path());
    assert!(
        entries.iter().any(|e| e["source"].is_string()),
        "{entries:?}"
    );

    let pruned = run(specgate_with_cache(cache.path()).args([
        "plugin",
        "cache",
        "prune",
        "--older-than",
        "0s",
    ]));
    assert!(pruned.success().contains("in 2 entries"), "{pruned:#?}");
    assert_eq!(files(cache.path()), Vec::<String>::new());
}

#[test]
fn prune_keeps_what_the_policies_name() {
    let cache = private_tempdir();
    compile(cache.path(), &EXAMPLES[..3]).success();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_naming(dir.path(), &[EXAMPLES[1]]);
    let out = run(specgate_with_cache(cache.path())
        .args(["plugin", "cache", "prune", "--policy"])
        .arg(&policy));
    let text = out.success();
    let removed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("removed ") && !l.contains("leftover"))
        .collect();
    assert_eq!(removed.len(), 2, "{text}");
    assert!(
        text.contains("removed 2 leftover files"),
        "the pruned plugins' digests: {text}"
    );
    for name in [EXAMPLES[0], EXAMPLES[2]] {
        let sha = sha256_of(&plugin(name));
        assert!(text.contains(&format!("removed {}", &sha[..12])), "{text}");
    }
    assert!(text.lines().last().unwrap().starts_with("freed "), "{text}");
    assert!(text.ends_with(" in 2 entries\n"), "{text}");
    let left = list_json(cache.path());
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["sha256"], sha256_of(&plugin(EXAMPLES[1])));
    assert_eq!(
        files(cache.path()).len(),
        3,
        "the kept entry, its sidecar and its plugin's digest"
    );
}

#[test]
fn prune_by_age_removes_only_entries_unused_for_that_long() {
    let cache = private_tempdir();
    compile(cache.path(), &EXAMPLES[..2]).success();
    age_entry(
        &entry_of(cache.path(), EXAMPLES[0]),
        Duration::from_secs(10 * 86_400),
    );
    let out = run(specgate_with_cache(cache.path()).args([
        "plugin",
        "cache",
        "prune",
        "--older-than",
        "7d",
    ]));
    let text = out.success();
    let sha = sha256_of(&plugin(EXAMPLES[0]));
    assert!(
        text.starts_with(&format!("removed {}", &sha[..12])),
        "{text}"
    );
    assert!(text.ends_with(" in 1 entry\n"), "{text}");

    // Both criteria: only entries unreferenced *and* stale go.
    compile(cache.path(), &EXAMPLES[..3]).success();
    age_entry(
        &entry_of(cache.path(), EXAMPLES[1]),
        Duration::from_secs(10 * 86_400),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_naming(dir.path(), &[]);
    let out = run(specgate_with_cache(cache.path())
        .args(["plugin", "cache", "prune", "--older-than", "7d", "--policy"])
        .arg(&policy));
    assert!(out.success().ends_with(" in 1 entry\n"), "{out:#?}");
    assert_eq!(list_json(cache.path()).len(), 2);
}

#[test]
fn prune_needs_to_be_told_what_to_remove() {
    let line = run(specgate().args(["plugin", "cache", "prune"]))
        .failure(125)
        .to_string();
    assert!(line.contains("--policy FILE"), "{line}");
    assert!(line.contains("--older-than DURATION"), "{line}");
}

/// The line a slow compile leaves on a stderr that is not a terminal.
fn progress_line(name: &str, file: &str) -> String {
    let size = std::fs::metadata(plugin(file)).unwrap().len();
    format!(
        "specgate: compiling plugin {name} ({:.1} kB)\u{2026} done in ",
        size as f64 / 1000.0
    )
}

#[test]
fn a_slow_compile_says_so_in_one_line_off_a_terminal() {
    // With the threshold at a millisecond, every compile counts as slow.
    let cache = private_tempdir();
    let out = run(specgate_with_cache(cache.path())
        .env("SPECGATE_PROGRESS_AFTER", "1ms")
        .args(["plugin", "compile"])
        .arg(plugin("deny-privileged")));
    assert!(!out.success().contains("compiling"));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(
        lines[0].starts_with(&progress_line("deny-privileged", "deny-privileged")),
        "{out:#?}"
    );
    assert!(lines[0].ends_with(" s"), "{out:#?}");
    assert!(!out.stderr.contains('\r'));

    // A run's compile too; a cached load says nothing.
    let spec = |cache: &Path| {
        let mut cmd = specgate_with_cache(cache);
        cmd.env("SPECGATE_PROGRESS_AFTER", "1ms").arg("spec");
        run(with_chain(&mut cmd, &["readonly-mounts"], &[]).args(["--", "/bin/true"]))
    };
    let first = spec(cache.path());
    first.config();
    assert!(
        first
            .stderr
            .starts_with(&progress_line("readonly-mounts", "readonly-mounts")),
        "{first:#?}"
    );
    let second = spec(cache.path());
    second.config();
    assert_eq!(second.stderr, "");
}

#[test]
fn a_slow_compile_updates_a_line_in_place_on_a_terminal() {
    use std::io::Read;
    let cache = private_tempdir();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = specgate_with_cache(cache.path())
        .env("SPECGATE_PROGRESS_AFTER", "1ms")
        .args(["plugin", "compile"])
        .arg(plugin("mount-allowlist"))
        .stdout(std::process::Stdio::piped())
        .stderr(pty.slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(pty.slave);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(child.wait().unwrap().success());
    // Read what the terminal got; EIO once the last writer is gone.
    let mut master = std::fs::File::from(pty.master);
    let mut screen = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        screen.extend_from_slice(&chunk[..n]);
    }
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains(&format!(
            "\r\x1b[K{}",
            progress_line("mount-allowlist", "mount-allowlist")
        )),
        "{screen:?}"
    );
    assert!(!stdout.contains("compiling"), "{stdout}");
    assert!(stdout.starts_with("mount-allowlist  "), "{stdout}");
}

#[test]
fn prune_also_sweeps_orphan_sidecars_and_dead_writers_files() {
    let cache = private_tempdir();
    compile(cache.path(), &["deny-privileged"]).success();
    let entry = entry_of(cache.path(), "deny-privileged");
    let orphan = cache
        .path()
        .join(format!("{}-0123456789abcdef.json", "ab".repeat(32)));
    std::fs::write(&orphan, "{}").unwrap();
    let dead = cache.path().join(".entry-abc123");
    std::fs::write(&dead, "half").unwrap();
    age_entry(&dead, Duration::from_secs(2 * 3600));
    let fresh = cache.path().join(".meta-def456");
    std::fs::write(&fresh, "being written").unwrap();

    let out = run(specgate_with_cache(cache.path()).args([
        "plugin",
        "cache",
        "prune",
        "--older-than",
        "30d",
    ]));
    let text = out.success();
    assert!(text.contains("removed 2 leftover files"), "{text}");
    assert!(text.ends_with(" in 0 entries\n"), "{text}");
    assert!(!orphan.exists() && !dead.exists());
    assert!(
        fresh.exists(),
        "a temporary file being written is left alone"
    );
    assert!(entry.exists() && entry.with_extension("json").exists());
}
