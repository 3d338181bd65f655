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
