//! `specgate plugin inspect`: what a plugin is, before anyone runs it.

use crate::util::*;

#[test]
fn inspect_shows_the_contract_hooks_and_description() {
    let path = plugin("drop-capabilities");
    let out = run(specgate().args(["plugin", "inspect"]).arg(&path));
    let text = out.success();
    assert!(
        text.contains("contract:    specgate:policy@0.1.0"),
        "{text}"
    );
    assert!(text.contains("hooks:       capabilities\n"), "{text}");
    assert!(text.contains("name:        drop-capabilities"), "{text}");

    let json: serde_json::Value = serde_json::from_str(
        run(specgate().args(["plugin", "inspect", "--json"]).arg(&path)).success(),
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
            .args(["plugin", "inspect", "--json"])
            .arg(plugin(name)));
        let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
        assert_eq!(json["hooks"], serde_json::json!(hooks), "{name}");
        assert_eq!(json["name"], name);
    }
}
