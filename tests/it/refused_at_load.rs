//! Files that are not plugins of this contract are refused at load, with
//! a message saying what they are and what was expected.

use std::path::Path;

use crate::util::*;

fn load_error(path: &Path) -> String {
    let outcome = run(specgate()
        .arg("spec")
        .arg("--plugin")
        .arg(path)
        .args(["--", "/bin/true"]));
    let line = outcome.failure(125).to_string();
    let prefix = format!(
        "specgate: plugin {} ({}): load: ",
        specgate::policy::plugin::default_name(path),
        path.display()
    );
    line.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"))
        .to_string()
}

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.wasm");
    std::fs::write(&path, "#!/bin/sh\necho hi\n").unwrap();
    assert_eq!(load_error(&path), "not a WebAssembly file");
}

#[test]
fn a_core_module() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    assert!(load_error(&path).starts_with("a core WebAssembly module, not a component"));
}

#[test]
fn a_missing_file() {
    let message = load_error(Path::new("/nonexistent/plugin.wasm"));
    assert!(message.starts_with("cannot read the file: "), "{message}");
}

#[test]
fn a_component_of_another_world() {
    assert_eq!(
        load_error(&plugin("foreign-world")),
        "does not export specgate:policy/plugin@0.1.1: it exports greet"
    );
}

#[test]
fn a_component_of_an_incompatible_contract_version() {
    assert_eq!(
        load_error(&plugin("future-version")),
        "built against specgate:policy@0.2.0, but this host implements \
         specgate:policy@0.1.1 and compatible versions"
    );
}

#[test]
fn a_file_over_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.wasm");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(65 << 20).unwrap();
    assert_eq!(
        load_error(&path),
        "the file is 68157440 bytes, over the limit of 67108864 bytes"
    );
}

#[test]
fn a_setting_for_a_plugin_not_in_the_chain() {
    let outcome = run(specgate()
        .arg("spec")
        .arg("--plugin")
        .arg(plugin("drop-capabilities"))
        .args([
            "--plugin-setting",
            "drop-capabilitie.capabilities=CAP_CHOWN",
            "--",
            "/bin/true",
        ]));
    assert_eq!(
        outcome.failure(125),
        "specgate: --plugin-setting `drop-capabilitie.capabilities=CAP_CHOWN`: \
         no plugin named `drop-capabilitie` in the chain"
    );
}

#[test]
fn a_plugin_that_exports_no_hook() {
    assert_eq!(
        load_error(&plugin("no-hooks")),
        "exports no hook: it exports specgate:policy/plugin@0.1.0; expected at least one of \
         specgate:policy/namespaces@0.1.1, specgate:policy/capabilities@0.1.1, \
         specgate:policy/mounts@0.1.1, specgate:policy/validate@0.1.1"
    );
}
