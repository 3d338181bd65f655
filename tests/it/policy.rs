//! Policy files: the chain, pins, grants, ownership and `on-error`.

use std::path::Path;

use crate::util::*;

/// Writes a policy file in a temporary directory.
fn policy(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), text).unwrap();
    dir
}

fn spec_with_policy(dir: &Path, extra: &[&str]) -> Outcome {
    run(specgate()
        .arg("spec")
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .args(extra)
        .args(["--", "/bin/true"]))
}

fn sha256(path: &Path) -> String {
    let out = run(specgate().args(["plugin", "inspect", "--json"]).arg(path));
    let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    json["sha256"].as_str().unwrap().to_string()
}

#[test]
fn a_pinned_plugin_loads_and_a_mismatch_is_refused() {
    let path = plugin("drop-capabilities");
    let pinned = policy(&format!(
        "[[plugin]]\npath = {:?}\nsha256 = {:?}\nsettings = {{ capabilities = [\"CAP_CHOWN\"] }}\n",
        path,
        sha256(&path)
    ));
    let config = spec_with_policy(pinned.path(), &[]).config();
    assert!(!cap_set(&config, "bounding").contains(&"CAP_CHOWN".to_string()));

    let wrong = "0".repeat(64);
    let mismatched = policy(&format!(
        "[[plugin]]\npath = {path:?}\nsha256 = {wrong:?}\n"
    ));
    let line = spec_with_policy(mismatched.path(), &[])
        .failure(125)
        .to_string();
    assert!(
        line.ends_with(&format!(
            "load: its sha256 is {}, but the policy pins {wrong}",
            sha256(&path)
        )),
        "{line}"
    );
}

#[test]
fn a_malformed_policy_file_is_named_with_line_and_column() {
    let dir = policy("[[plugin]]\npath = \"x.wasm\"\ntimeuot = \"1s\"\n");
    let line = spec_with_policy(dir.path(), &[]).failure(125).to_string();
    assert!(
        line.starts_with(&format!(
            "specgate: policy file {}:3:1: unknown field `timeuot`",
            dir.path().join("policy.toml").display()
        )),
        "{line}"
    );
}

#[test]
fn an_ungranted_widening_names_the_grant_that_would_allow_it() {
    let path = plugin("hostile");
    let dir = policy(&format!(
        "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = \"add-capability\" }}\n"
    ));
    let line = spec_with_policy(dir.path(), &[]).failure(125).to_string();
    assert!(
        line.ends_with(
            "capabilities: change 0 (add CAP_NET_ADMIN to the bounding, effective, permitted sets): \
             widens the container and is not granted; the operator can allow it with \
             `add-capabilities = [\"CAP_NET_ADMIN\"]` in this plugin's grants"
        ),
        "{line}"
    );
}

#[test]
fn granted_widenings_apply() {
    let path = plugin("hostile");
    let dir = policy(&format!(
        "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = \"add-capability\" }}\n\
         grants = {{ add-capabilities = [\"CAP_NET_ADMIN\"] }}\n"
    ));
    let config = spec_with_policy(dir.path(), &[]).config();
    assert!(cap_set(&config, "effective").contains(&"CAP_NET_ADMIN".to_string()));

    let dir = policy(&format!(
        "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = \"share-host-network\" }}\n\
         grants = {{ host-namespaces = [\"network\"] }}\n"
    ));
    let config = spec_with_policy(dir.path(), &[]).config();
    assert!(!namespace_types(&config).contains(&"network".to_string()));
}

#[test]
fn bind_grants_are_not_fooled_by_links() {
    let path = plugin("hostile");
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", data.path().join("escape")).unwrap();
    let escape = data.path().join("escape");
    let dir = policy(&format!(
        "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = \"bind-host\", source = {escape:?} }}\n\
         grants = {{ bind-sources = [{:?}] }}\n",
        data.path()
    ));
    let line = spec_with_policy(dir.path(), &[]).failure(125).to_string();
    assert!(line.contains("is not granted"), "{line}");
}

#[test]
fn a_later_plugin_cannot_undo_an_earlier_drop() {
    let drop = plugin("drop-capabilities");
    let hostile = plugin("hostile");
    let dir = policy(&format!(
        "[[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_CHOWN\" }}\n\
         [[plugin]]\npath = {hostile:?}\nsettings = {{ behavior = \"add-capability\", capability = \"CAP_CHOWN\" }}\n\
         grants = {{ add-capabilities = [\"CAP_CHOWN\"] }}\n"
    ));
    let line = spec_with_policy(dir.path(), &[]).failure(125).to_string();
    assert!(
        line.ends_with("conflicts with plugin drop-capabilities, which already changed CAP_CHOWN in the bounding set"),
        "{line}"
    );
}

#[test]
fn on_error_skip_runs_without_a_failing_plugin() {
    let hostile = plugin("hostile");
    let drop = plugin("drop-capabilities");
    let dir = policy(&format!(
        "[[plugin]]\npath = {hostile:?}\ntimeout = \"100ms\"\non-error = \"skip\"\n\
         settings = {{ behavior = \"loop\" }}\n\
         [[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n"
    ));
    let out = spec_with_policy(dir.path(), &[]);
    let config = out.config();
    assert!(!cap_set(&config, "bounding").contains(&"CAP_KILL".to_string()));
    assert!(
        out.stderr
            .contains("skipping the plugin (on-error = \"skip\"): plugin hostile"),
        "{}",
        out.stderr
    );
    // A denial is never skipped.
    let dir = policy(&format!(
        "[[plugin]]\npath = {hostile:?}\non-error = \"skip\"\nsettings = {{ behavior = \"deny\" }}\n"
    ));
    spec_with_policy(dir.path(), &[]).failure(125);
}

#[test]
fn command_line_settings_override_the_files() {
    let drop = plugin("drop-capabilities");
    let dir = policy(&format!(
        "[[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n"
    ));
    let config = spec_with_policy(
        dir.path(),
        &[
            "--plugin-setting",
            "drop-capabilities.capabilities=CAP_CHOWN",
        ],
    )
    .config();
    let bounding = cap_set(&config, "bounding");
    assert!(bounding.contains(&"CAP_KILL".to_string()));
    assert!(!bounding.contains(&"CAP_CHOWN".to_string()));
}

#[test]
fn monitor_mode_applies_only_what_is_allowed_and_reports_the_rest() {
    let hostile = plugin("hostile");
    let drop = plugin("drop-capabilities");
    let dir = policy(&format!(
        "mode = \"monitor\"\n\
         [[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n\
         [[plugin]]\npath = {hostile:?}\nsettings = {{ behavior = \"add-capability\" }}\n"
    ));
    let out = spec_with_policy(dir.path(), &[]);
    let config = out.config();
    let effective = cap_set(&config, "effective");
    assert!(!effective.contains(&"CAP_KILL".to_string()));
    assert!(!effective.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(
        out.stderr
            .contains("would deny (monitor mode): plugin hostile"),
        "{}",
        out.stderr
    );

    // The same policy, enforced from the command line, stops the run.
    spec_with_policy(dir.path(), &["--policy-mode", "enforce"]).failure(125);
}

#[test]
fn trace_shows_each_plugins_changes() {
    let drop = plugin("drop-capabilities");
    let hostile = plugin("hostile");
    let dir = policy(&format!(
        "[[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n\
         [[plugin]]\npath = {hostile:?}\nsettings = {{ behavior = \"add-capability\" }}\n\
         grants = {{ add-capabilities = [\"CAP_NET_ADMIN\"] }}\n\
         [[plugin]]\npath = {:?}\n",
        plugin("deny-privileged")
    ));
    let out = run(specgate()
        .args(["plugin", "trace", "--policy"])
        .arg(dir.path().join("policy.toml"))
        .args(["--", "/bin/sh"]));
    let text = out.success();
    assert!(text.contains(&format!("plugin drop-capabilities ({})\n  - capabilities: drop CAP_KILL from the bounding, effective, inheritable, permitted, ambient sets\n", drop.display())), "{text}");
    assert!(text.contains("  + capabilities: add CAP_NET_ADMIN to the bounding, effective, permitted sets (granted by add-capabilities = [\"CAP_NET_ADMIN\"])\n"), "{text}");
    assert!(text.contains("plugin deny-privileged ("), "{text}");
    assert!(text.contains("  (no changes)\n"), "{text}");

    let out = run(specgate()
        .args(["plugin", "trace", "--json", "--policy"])
        .arg(dir.path().join("policy.toml")));
    let json: serde_json::Value = serde_json::from_str(out.success()).unwrap();
    assert_eq!(json["plugins"][1]["changes"][0]["effect"], "widening");
    assert_eq!(json["plugins"][0]["changes"][0]["effect"], "restricting");
}

#[test]
fn every_run_appends_a_start_and_an_end_record() {
    let rootfs = specgate_tests::busybox_rootfs();
    let drop = plugin("drop-capabilities");
    let dir = policy(&format!(
        "audit-log = \"audit.jsonl\"\n\
         [[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n"
    ));
    let children: Vec<_> = (0..16)
        .map(|i| {
            specgate()
                .arg("run")
                .arg("--policy")
                .arg(dir.path().join("policy.toml"))
                .arg("--rootfs")
                .arg(rootfs.path())
                .args(["--name", &format!("specgate-test-audit-{i}")])
                .args(["--", "sh", "-c", &format!("exit {}", i % 3)])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        child.wait_with_output().unwrap();
    }
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
        .collect();
    assert_eq!(records.len(), 32);
    for i in 0..16 {
        let run_id = format!("specgate-test-audit-{i}");
        let events: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["run_id"] == run_id.as_str())
            .map(|r| &r["event"])
            .collect();
        assert_eq!(events, ["start", "end"], "{run_id}");
    }
    let record = records
        .iter()
        .find(|r| r["run_id"] == "specgate-test-audit-2" && r["event"] == "end")
        .unwrap();
    assert_eq!(record["command"], serde_json::json!(["sh", "-c", "exit 2"]));
    assert_eq!(record["exit_status"], 2);
    assert_eq!(record["mode"], "enforce");
    assert_eq!(record["user"], 0);
    assert_eq!(record["rootfs"], rootfs.path().display().to_string());
    assert_eq!(
        record["policy"]["path"],
        dir.path().join("policy.toml").display().to_string()
    );
    assert_eq!(record["policy"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(record["plugins"][0]["name"], "drop-capabilities");
    assert_eq!(record["plugins"][0]["sha256"], sha256(&drop));
    assert_eq!(
        record["plugins"][0]["hooks"],
        serde_json::json!(["capabilities"])
    );
    assert_eq!(record["changes"][0]["plugin"], "drop-capabilities");
    assert_eq!(record["changes"][0]["hook"], "capabilities");
    assert_eq!(record["changes"][0]["effect"], "restricting");
    assert_eq!(record["config_sha256"].as_str().unwrap().len(), 64);
    assert!(record["runtime"].as_str().unwrap().ends_with("runc"));
    assert!(record["denial"].is_null());
    assert!(record["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_denied_run_is_audited() {
    let dir = policy(&format!(
        "audit-log = \"audit.jsonl\"\n[[plugin]]\npath = {:?}\n\
         settings = {{ capabilities = \"CAP_CHOWN\" }}\n",
        plugin("deny-privileged")
    ));
    let out = run(specgate()
        .arg("run")
        .arg("--policy")
        .arg(dir.path().join("policy.toml"))
        .args(["--", "true"]));
    out.failure(125);
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(log.trim()).unwrap();
    assert_eq!(record["event"], "end");
    assert_eq!(record["exit_status"], 125);
    assert!(
        record["denial"]
            .as_str()
            .unwrap()
            .ends_with("holds CAP_CHOWN")
    );
    assert!(record["config_sha256"].is_null());
}

#[test]
fn each_kind_of_widening_needs_its_own_grant() {
    let path = plugin("hostile");
    for (behavior, grant) in [
        ("add-capability", "add-capabilities = [\"CAP_NET_ADMIN\"]"),
        ("share-host-network", "host-namespaces = [\"network\"]"),
        ("join-network", "join-namespaces = true"),
        ("map-ids", "id-mappings = true"),
        ("bind-host", "bind-sources = [\"/srv\"]"),
        ("mount-proc", "mount-types = [\"proc\"]"),
        ("loosen-sys", "mount-options = true"),
    ] {
        let ungranted = policy(&format!(
            "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = {behavior:?} }}\n"
        ));
        let line = spec_with_policy(ungranted.path(), &[])
            .failure(125)
            .to_string();
        assert!(
            line.ends_with(&format!(
                "the operator can allow it with `{grant}` in this plugin's grants"
            )),
            "{behavior}: {line}"
        );
        let granted = policy(&format!(
            "[[plugin]]\npath = {path:?}\nsettings = {{ behavior = {behavior:?} }}\n\
             [plugin.grants]\n{grant}\n"
        ));
        spec_with_policy(granted.path(), &[]).config();
    }
}

/// A trace that ends in a refusal still shows what the plugins before it
/// changed, then the refusal, and fails as the run would.
#[test]
fn a_refused_trace_shows_the_changes_before_the_refusal() {
    let drop = plugin("drop-capabilities");
    let dir = policy(&format!(
        "[[plugin]]\npath = {drop:?}\nsettings = {{ capabilities = \"CAP_KILL\" }}\n\
         [[plugin]]\npath = {:?}\nsettings = {{ behavior = \"deny\" }}\n",
        plugin("hostile")
    ));
    let out = run(specgate()
        .args(["plugin", "trace", "--policy"])
        .arg(dir.path().join("policy.toml"))
        .args(["--", "/bin/sh"]));
    let line = out.failure(125).to_string();
    assert!(line.contains("plugin hostile ("), "{line}");
    let text = &out.stdout;
    assert!(
        text.contains("plugin drop-capabilities (")
            && text.contains("  - capabilities: drop CAP_KILL from the bounding"),
        "{text}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("denied: plugin hostile ("), "{text}");

    let out = run(specgate()
        .args(["plugin", "trace", "--json", "--policy"])
        .arg(dir.path().join("policy.toml")));
    out.failure(125);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["plugins"][0]["changes"][0]["effect"], "restricting");
    assert!(
        json["refused"]
            .as_str()
            .is_some_and(|r| r.starts_with("plugin hostile (")),
        "{json}"
    );
}
