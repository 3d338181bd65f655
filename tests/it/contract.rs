//! The contract's versions: plugins of 0.1.0 (the examples) and of 0.1.1
//! (`testing/newer-contract`, which calls what 0.1.1 adds) load and act in
//! the same host, alone and in one chain; 0.2.0 is refused.

use crate::util::*;

fn contract_of(name: &str) -> serde_json::Value {
    let out = run(specgate()
        .args(["plugin", "inspect", "--json"])
        .arg(plugin(name)));
    serde_json::from_str(out.success()).unwrap()
}

fn all_sets_hold(config: &serde_json::Value, capability: &str) -> Vec<bool> {
    ["bounding", "effective", "permitted"]
        .iter()
        .map(|set| cap_set(config, set).iter().any(|c| c == capability))
        .collect()
}

#[test]
fn a_plugin_of_0_1_0_still_loads_and_acts() {
    let info = contract_of("drop-capabilities");
    assert_eq!(info["contract"], "specgate:policy@0.1.0");
    let imports: Vec<String> = strings(&info["imports"]);
    assert!(imports.contains(&"specgate:policy/host@0.1.0".to_string()));

    let before = spec_with(&[], &[], &["/bin/true"]).config();
    assert_eq!(all_sets_hold(&before, "CAP_CHOWN"), [true; 3]);
    let after = spec_with(
        &["drop-capabilities"],
        &["drop-capabilities.capabilities=CAP_CHOWN"],
        &["/bin/true"],
    )
    .config();
    assert_eq!(all_sets_hold(&after, "CAP_CHOWN"), [false; 3]);
}

#[test]
fn a_plugin_of_0_1_1_loads_and_acts() {
    let info = contract_of("newer-contract");
    assert_eq!(info["contract"], "specgate:policy@0.1.1");
    let imports: Vec<String> = strings(&info["imports"]);
    assert!(imports.contains(&"specgate:policy/host@0.1.1".to_string()));

    let before = spec_with(&[], &[], &["/bin/true"]).config();
    assert_eq!(all_sets_hold(&before, "CAP_NET_BIND_SERVICE"), [true; 3]);
    let after = spec_with(&["newer-contract"], &[], &["/bin/true"]).config();
    assert_eq!(all_sets_hold(&after, "CAP_NET_BIND_SERVICE"), [false; 3]);
    assert_eq!(all_sets_hold(&after, "CAP_CHOWN"), [true; 3]);
}

#[test]
fn log_enabled_answers_as_the_host_log_filter_says() {
    let logged = |filter: &str| {
        let mut cmd = specgate();
        cmd.env("SPECGATE_LOG", filter)
            .args(["spec", "--plugin"])
            .arg(plugin("newer-contract"))
            .args(["--", "/bin/true"]);
        let out = run(&mut cmd);
        out.success();
        out.stderr
            .contains("dropping CAP_NET_BIND_SERVICE from container")
    };
    assert!(logged("specgate::plugin=debug"));
    assert!(!logged("specgate::plugin=info"));
}

#[test]
fn plugins_of_both_versions_share_a_chain() {
    let config = spec_with(
        &["drop-capabilities", "newer-contract"],
        &[
            "drop-capabilities.capabilities=CAP_CHOWN",
            "newer-contract.capability=CAP_KILL",
        ],
        &["/bin/true"],
    )
    .config();
    assert_eq!(all_sets_hold(&config, "CAP_CHOWN"), [false; 3]);
    assert_eq!(all_sets_hold(&config, "CAP_KILL"), [false; 3]);
    assert_eq!(all_sets_hold(&config, "CAP_NET_BIND_SERVICE"), [true; 3]);
}

#[test]
fn an_incompatible_0_2_0_is_still_refused() {
    let out = run(specgate()
        .args(["spec", "--plugin"])
        .arg(plugin("future-version"))
        .args(["--", "/bin/true"]));
    let line = out.failure(125);
    assert!(
        line.contains(
            "built against specgate:policy@0.2.0, but this host implements specgate:policy@0.1.1"
        ),
        "{line}"
    );
}
