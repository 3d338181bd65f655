//! `specgate plugin inspect`: what a plugin is, before anyone runs it.

use crate::util::*;

#[test]
fn inspect_shows_the_contract_hooks_and_description() {
    let path = plugin("drop-capabilities");
    let out = run(specgate()
        .args(["plugin", "inspect", "--compile"])
        .arg(&path));
    let text = out.success();
    assert!(
        text.contains("contract:    specgate:policy@0.1.0"),
        "{text}"
    );
    assert!(text.contains("hooks:       capabilities\n"), "{text}");
    assert!(text.contains("name:        drop-capabilities"), "{text}");

    let json: serde_json::Value = serde_json::from_str(
        run(specgate()
            .args(["plugin", "inspect", "--json", "--compile"])
            .arg(&path))
        .success(),
    )
    .unwrap();
    assert_eq!(json["hooks"], serde_json::json!(["capabilities"]));
    assert_eq!(json["size"], std::fs::metadata(&path).unwrap().len());
    let sha = json["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "specgate:policy/host@0.1.0")
    );
}

#[test]
fn each_example_exports_only_its_hook() {
    for (name, hooks) in [
        ("drop-capabilities", vec!["capabilities"]),
        ("readonly-mounts", vec!["mounts"]),
        ("require-namespaces", vec!["namespaces"]),
        ("mount-allowlist", vec!["validate"]),
        ("deny-privileged", vec!["validate"]),
        (
            "hostile",
            vec!["namespaces", "capabilities", "mounts", "validate"],
        ),
    ] {
        let out = run(specgate()
            .args(["plugin", "inspect", "--json", "--compile"])
            .arg(plugin(name)));
        let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
        assert_eq!(json["hooks"], serde_json::json!(hooks), "{name}");
        assert_eq!(json["name"], name);
    }
}

/// Without a cache entry, inspect reads what the file declares and
/// compiles nothing: no entry appears, `describe()` is not run and says
/// how to run it. Once compiled, the same command describes the plugin.
#[test]
fn inspect_reads_an_uncompiled_plugin_without_compiling_it() {
    let cache = private_tempdir();
    let path = plugin("readonly-mounts");
    let inspect = |json: bool| {
        let mut cmd = specgate_with_cache(cache.path());
        cmd.env("SPECGATE_LOG", "specgate=debug")
            .args(["plugin", "inspect"]);
        if json {
            cmd.arg("--json");
        }
        run(cmd.arg(&path))
    };
    let out = inspect(false);
    let text = out.success();
    assert!(!out.stderr.contains("plugin compiled"), "{}", out.stderr);
    assert!(
        text.contains("contract:    specgate:policy@0.1.0\n"),
        "{text}"
    );
    assert!(text.contains("hooks:       mounts\n"), "{text}");
    assert!(text.contains("specgate:policy/types@0.1.0"), "{text}");
    assert!(
        text.contains("describe():  (not compiled yet: `specgate plugin compile FILE`"),
        "{text}"
    );
    assert!(!text.contains("name:"), "{text}");
    let cached = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(cached, 0, "inspect left something in the cache");

    let json: serde_json::Value = serde_json::from_str(inspect(true).success()).unwrap();
    assert_eq!(json["compiled"], false);
    assert_eq!(json["name"], serde_json::Value::Null);
    assert_eq!(json["hooks"], serde_json::json!(["mounts"]));
    assert_eq!(json["sha256"], sha256_of(&path));

    run(specgate_with_cache(cache.path())
        .args(["plugin", "compile"])
        .arg(&path))
    .success();
    let json: serde_json::Value = serde_json::from_str(inspect(true).success()).unwrap();
    assert_eq!(json["compiled"], true);
    assert_eq!(json["name"], "readonly-mounts");
}

/// What the contract refuses at load, reading refuses too, naming the
/// file; a truncated component is refused, not half-read.
#[test]
fn inspect_without_compiling_refuses_what_a_load_refuses() {
    let cache = private_tempdir();
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(plugin("deny-privileged")).unwrap();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    for (file, expected) in [
        (truncated.clone(), "ends inside a section"),
        (plugin("future-version"), "specgate:policy@"),
        (plugin("no-hooks"), "exports no hook"),
    ] {
        let line = run(specgate_with_cache(cache.path())
            .args(["plugin", "inspect"])
            .arg(&file))
        .failure(125)
        .to_string();
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert!(line.contains(expected), "{file:?}: {line}");
    }
}

/// Reading a file's sections finds the names wasmtime finds in the
/// compiled component's types, for every plugin built here.
#[test]
fn reading_declares_what_compiling_finds() {
    crate::polyglot::deny_commands();
    crate::polyglot::tmpfs();
    for name in [
        "drop-capabilities",
        "readonly-mounts",
        "require-namespaces",
        "mount-allowlist",
        "deny-privileged",
        "hostile",
        "flood",
        "deny-commands",
        "tmpfs",
    ] {
        // Read with an empty cache of its own; compiled (or found
        // compiled) in the cache the tests share, where the interpreters
        // are compiled once for all the tests.
        let empty = private_tempdir();
        let inspect = |compile: bool| -> serde_json::Value {
            let mut cmd = if compile {
                specgate()
            } else {
                specgate_with_cache(empty.path())
            };
            cmd.args(["plugin", "inspect", "--json"]);
            if compile {
                cmd.arg("--compile");
            }
            serde_json::from_str(run(cmd.arg(plugin(name))).success()).unwrap()
        };
        let read = inspect(false);
        let compiled = inspect(true);
        assert_eq!(
            (read["compiled"].clone(), compiled["compiled"].clone()),
            (false.into(), true.into())
        );
        for field in ["exports", "imports", "hooks", "contract", "sha256", "size"] {
            assert_eq!(read[field], compiled[field], "{name}: {field}");
        }
    }
}
