//! `specgate plugin new`: the crate it writes builds for real, outside
//! this repository, and the plugin loads and changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// Builds a crate for wasm32-wasip2 as its README says, with the
/// toolchain running these tests and one target directory shared by every
/// run (under this repository's `target/`), so that wit-bindgen is built
/// once.
fn cargo_build(dir: &Path) -> PathBuf {
    let target = specgate_tests::repo_root().join("target/scaffolded-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"]);
    // This test's own cargo settings are for the host; the crate has its
    // own.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            build.env_remove(&*key);
        }
    }
    build.env("CARGO_TARGET_DIR", &target);
    let out = build.output().expect("cannot run cargo");
    assert!(
        out.status.success(),
        "the new plugin does not build (the wasm32-wasip2 target comes with \
         `rustup target add wasm32-wasip2`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("wasm32-wasip2/release")
}

#[test]
fn a_new_plugin_builds_loads_and_changes_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("scaffolded-probe");
    let out = run(specgate()
        .args([
            "plugin",
            "new",
            "scaffolded-probe",
            "--hooks",
            "mounts,capabilities",
            "--dir",
        ])
        .arg(&dir));
    assert!(
        out.success()
            .contains("cargo build --release --target wasm32-wasip2")
    );
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "README.md",
        "wit/world.wit",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let wasm = cargo_build(&dir).join("scaffolded_probe.wasm");

    let info = run(specgate()
        .args(["plugin", "inspect", "--json", "--compile"])
        .arg(&wasm));
    let info: serde_json::Value = serde_json::from_str(info.success()).unwrap();
    assert_eq!(info["name"], "scaffolded-probe");
    assert_eq!(info["contract"], "specgate:policy@0.1.1");
    assert_eq!(
        strings::<Vec<String>>(&info["hooks"]),
        ["capabilities", "mounts"]
    );

    let spec = |plugin: Option<&Path>| {
        let mut cmd = specgate();
        cmd.env("SPECGATE_LOG", "specgate::plugin=debug")
            .args(["spec", "--name", "scaffold-test"]);
        if let Some(plugin) = plugin {
            cmd.arg("--plugin").arg(plugin);
        }
        run(cmd.args(["--", "/bin/true"]))
    };
    let without = spec(None);
    let with = spec(Some(&wasm));
    assert_eq!(with.config(), without.config());
    // Both hooks ran, and logged through the host.
    assert!(
        with.stderr
            .contains("capabilities: container scaffold-test unchanged"),
        "{}",
        with.stderr
    );
    assert!(
        with.stderr
            .contains("mounts: container scaffold-test unchanged")
    );

    // Its settings are checked: none are known.
    let line = run(specgate().args(["spec", "--plugin"]).arg(&wasm).args([
        "--plugin-setting",
        "scaffolded-probe.colour=red",
        "--",
        "/bin/true",
    ]))
    .failure(125)
    .to_string();
    assert!(line.contains("unknown setting `colour`"), "{line}");
}

#[test]
fn plugin_new_refuses_a_bad_name_or_a_used_directory() {
    let parent = tempfile::tempdir().unwrap();
    let line = run(specgate()
        .args(["plugin", "new", "Bad_Name", "--dir"])
        .arg(parent.path().join("x")))
    .failure(125)
    .to_string();
    assert!(line.contains("plugin name `Bad_Name`"), "{line}");
    assert!(!parent.path().join("x").exists());

    std::fs::write(parent.path().join("keep.txt"), "mine").unwrap();
    let line = run(specgate()
        .args(["plugin", "new", "fine", "--dir"])
        .arg(parent.path()))
    .failure(125)
    .to_string();
    assert_eq!(
        line,
        format!(
            "specgate: {} exists and is not an empty directory",
            parent.path().display()
        )
    );
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
}
