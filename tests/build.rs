//! Builds every plugin in `plugins/` for wasm32-wasip2, so that a plain
//! `cargo test` always runs against plugins built from the current source.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir
        .parent()
        .expect("tests/ lives in the repository root");
    let plugins = root.join("plugins");

    println!("cargo::rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo::rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    watch_sources(&plugins);

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&plugins)
        .args(["build", "--release", "--target", "wasm32-wasip2"]);
    // The outer build's settings are for the host target; the plugins'
    // workspace has its own.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            build.env_remove(&*key);
        }
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins failed; run `cargo build --release --target wasm32-wasip2` in plugins/ to see why \
         (the wasm32-wasip2 target is installed by `rustup target add wasm32-wasip2`)"
    );
    let out = plugins.join("target/wasm32-wasip2/release");
    println!("cargo::rustc-env=SPECGATE_TEST_PLUGINS={}", out.display());
    println!("cargo::rustc-env=SPECGATE_REPO_ROOT={}", root.display());
}

/// Watches every plugin crate's manifest and sources, but not `target/`,
/// which the build itself changes, nor the JavaScript example's
/// `node_modules/` and Python's `__pycache__/`.
fn watch_sources(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if ["target", "node_modules", "__pycache__"]
            .iter()
            .any(|n| name == *n)
            || name.to_string_lossy().starts_with('.')
        {
            continue;
        }
        if path.is_dir() {
            watch_sources(&path);
        } else {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
}
