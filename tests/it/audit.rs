//! The audit log of `specgate run`, with real runc, busybox and CNI
//! plugins: the `start` record is there before the container's process
//! runs, a refused run lists what the plugins did before the refusal, and
//! a networked run names its networks and addresses.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// A policy directory with an audit log beside the policy file.
struct Audited {
    dir: tempfile::TempDir,
}

impl Audited {
    /// A policy of `plugins`, each given as (crate name, settings table).
    fn new(plugins: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("audit-log = \"audit.jsonl\"\n");
        for (name, settings) in plugins {
            text.push_str(&format!(
                "[[plugin]]\npath = {:?}\nsettings = {settings}\n",
                plugin(name)
            ));
        }
        std::fs::write(dir.path().join("policy.toml"), text).unwrap();
        Audited { dir }
    }

    fn policy(&self) -> std::path::PathBuf {
        self.dir.path().join("policy.toml")
    }

    /// The log's records, each line parsed.
    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }
}

/// Removes the container `name` if anything is left of it: the test made
/// it, and must not leave it to others.
fn force_delete(name: &str) {
    let _ = Command::new("runc")
        .args(["delete", "--force", name])
        .stderr(Stdio::null())
        .status();
}

#[test]
fn a_killed_run_leaves_its_start_record() {
    let rootfs = specgate_tests::busybox_rootfs();
    let policy = Audited::new(&[("drop-capabilities", "{ capabilities = \"CAP_KILL\" }")]);
    let name = "specgate-test-audit-killed";
    let mut child = specgate()
        .args(["run", "--name", name, "--policy"])
        .arg(policy.policy())
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "echo ready; exec sleep 100"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready, "ready\n", "the container did not start");
    // SIGKILL: specgate gets no chance to write anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(10, || !bundle.exists());
    force_delete(name);

    let records = policy.records();
    assert_eq!(records.len(), 1, "{records:#?}");
    let start = &records[0];
    assert_eq!(start["event"], "start");
    assert_eq!(start["run_id"], name);
    assert!(start["exit_status"].is_null());
    assert!(start["denial"].is_null());
    assert_eq!(
        start["command"],
        serde_json::json!(["sh", "-c", "echo ready; exec sleep 100"])
    );
    assert_eq!(start["plugins"][0]["name"], "drop-capabilities");
    assert_eq!(start["changes"][0]["plugin"], "drop-capabilities");
    assert!(
        start["changes"][0]["change"]
            .as_str()
            .unwrap()
            .contains("CAP_KILL"),
        "{start:#}"
    );
    assert_eq!(start["config_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn a_finished_run_has_a_start_and_an_end() {
    let rootfs = specgate_tests::busybox_rootfs();
    let policy = Audited::new(&[("drop-capabilities", "{ capabilities = \"CAP_KILL\" }")]);
    let name = "specgate-test-audit-ends";
    let out = run(specgate()
        .args(["run", "--name", name, "--policy"])
        .arg(policy.policy())
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "exit 4"]));
    assert_eq!(out.code, Some(4), "{out:#?}");
    let records = policy.records();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["start", "end"]);
    let (start, end) = (&records[0], &records[1]);
    assert_eq!(start["run_id"], name);
    assert_eq!(end["run_id"], name);
    assert!(start["exit_status"].is_null());
    assert_eq!(end["exit_status"], 4);
    assert_eq!(start["changes"], end["changes"]);
    assert_eq!(start["config_sha256"], end["config_sha256"]);
    assert!(start["time"].as_str() <= end["time"].as_str());
}

#[test]
fn a_refused_run_records_the_plugins_that_ran_and_their_changes() {
    let rootfs = specgate_tests::busybox_rootfs();
    // drop-capabilities changes the spec, then deny-privileged refuses it
    // for a capability it still holds.
    let policy = Audited::new(&[
        ("drop-capabilities", "{ capabilities = \"CAP_KILL\" }"),
        ("deny-privileged", "{ capabilities = \"CAP_CHOWN\" }"),
    ]);
    let name = "specgate-test-audit-refused";
    let out = run(specgate()
        .args(["run", "--name", name, "--policy"])
        .arg(policy.policy())
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "true"]));
    let line = out.failure(125);
    assert!(line.ends_with("holds CAP_CHOWN"), "{line}");

    let records = policy.records();
    assert_eq!(records.len(), 1, "a refused run never starts: {records:#?}");
    let end = &records[0];
    assert_eq!(end["event"], "end");
    assert_eq!(end["run_id"], name);
    assert_eq!(end["exit_status"], 125);
    assert!(
        end["denial"].as_str().unwrap().ends_with("holds CAP_CHOWN"),
        "{end:#}"
    );
    let names: Vec<&str> = end["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["drop-capabilities", "deny-privileged"]);
    // Both ran: each has its stages timed.
    for plugin in end["plugins"].as_array().unwrap() {
        assert!(
            !plugin["micros"].as_array().unwrap().is_empty(),
            "{plugin:#}"
        );
    }
    let changes = end["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{end:#}");
    assert_eq!(changes[0]["plugin"], "drop-capabilities");
    assert_eq!(changes[0]["hook"], "capabilities");
    assert!(changes[0]["change"].as_str().unwrap().contains("CAP_KILL"));
    assert!(end["config_sha256"].is_null());
}

/// A network namespace of the test's own, where the bridge's host side is
/// made, so that the host's networking is never changed. Removed when
/// dropped.
struct TestNetns {
    name: &'static str,
}

impl TestNetns {
    fn new(name: &'static str) -> Self {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let status = Command::new("ip").args(["netns", "add", name]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip netns add {name} failed: install iproute2 (.ci/setup does)"
        );
        TestNetns { name }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", self.name])
            .status();
    }
}

#[test]
fn a_networked_run_records_its_networks() {
    for plugin in ["bridge", "host-local"] {
        assert!(
            Path::new("/usr/lib/cni").join(plugin).is_file(),
            "/usr/lib/cni/{plugin} is missing: install containernetworking-plugins (.ci/setup does)"
        );
    }
    let cni = tempfile::tempdir().unwrap();
    std::fs::write(
        cni.path().join("10-audit.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"audit-br","plugins":[{{"type":"bridge","bridge":"sgtaudit0","ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"10.123.77.0/24"}}]]}}}}]}}"#,
            cni.path().join("ipam").display()
        ),
    )
    .unwrap();
    let netns = TestNetns::new("specgate-test-audit-net");
    let rootfs = specgate_tests::busybox_rootfs();
    let policy = Audited::new(&[("drop-capabilities", "{ capabilities = \"CAP_KILL\" }")]);
    let name = "specgate-test-audit-net";
    let out = run(Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", netns.name))
        .arg(specgate_bin())
        .env("SPECGATE_CACHE_DIR", shared_cache())
        .env("SPECGATE_PROGRESS_AFTER", "3600s")
        .env_remove("SPECGATE_LOG")
        .stdin(Stdio::null())
        .args(["run", "--name", name, "--network", "audit-br"])
        .arg("--cni-config-dir")
        .arg(cni.path())
        .arg("--policy")
        .arg(policy.policy())
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "ip -o -4 addr show if0"]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    // `N: if0    inet 10.123.77.2/24 brd ...`: the address the container saw.
    let seen = out
        .stdout
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in the container: {out:#?}"))
        .to_string();
    assert!(seen.starts_with("10.123.77."), "{seen}");

    let records = policy.records();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["start", "end"]);
    let expected = serde_json::json!([{
        "name": "audit-br",
        "interface": "if0",
        "addresses": [seen],
    }]);
    for record in &records {
        assert_eq!(record["networks"], expected, "{record:#}");
    }
}

#[test]
fn the_wrappers_create_is_a_start_and_its_refusal_lists_what_ran() {
    let rootfs = specgate_tests::busybox_rootfs();
    let bundle = tempfile::tempdir().unwrap();
    let config = run(specgate()
        .args(["spec", "--no-default-policy", "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "true"]));
    let create = |policy: &Audited, id: &str| {
        // Afresh each time: an allowed create writes the chain's result
        // back.
        std::fs::write(bundle.path().join("config.json"), config.success()).unwrap();
        run(Command::new(specgate_bin())
            .env("SPECGATE_POLICY", policy.policy())
            .env("SPECGATE_CACHE_DIR", shared_cache())
            .env("SPECGATE_RUNTIME", "/bin/true")
            .env("SPECGATE_PROGRESS_AFTER", "3600s")
            .env_remove("SPECGATE_LOG")
            .args(["oci", "create", "--bundle"])
            .arg(bundle.path())
            .arg(id))
    };

    let allowed = Audited::new(&[("drop-capabilities", "{ capabilities = \"CAP_KILL\" }")]);
    create(&allowed, "specgate-test-audit-oci-ok").success();
    let records = allowed.records();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["event"], "start");
    assert_eq!(records[0]["run_id"], "specgate-test-audit-oci-ok");
    assert!(records[0]["exit_status"].is_null());

    let refused = Audited::new(&[
        ("drop-capabilities", "{ capabilities = \"CAP_KILL\" }"),
        ("deny-privileged", "{ capabilities = \"CAP_CHOWN\" }"),
    ]);
    let line = create(&refused, "specgate-test-audit-oci-refused")
        .failure(1)
        .to_string();
    assert!(line.ends_with("holds CAP_CHOWN"), "{line}");
    let records = refused.records();
    assert_eq!(records.len(), 1, "{records:#?}");
    let end = &records[0];
    assert_eq!(end["event"], "end");
    assert_eq!(end["exit_status"], 1);
    assert_eq!(end["plugins"].as_array().unwrap().len(), 2);
    assert_eq!(end["changes"][0]["plugin"], "drop-capabilities", "{end:#}");
    assert!(end["denial"].as_str().unwrap().ends_with("holds CAP_CHOWN"));
}
