//! The audit trail: JSON objects appended to a JSON Lines file, each in a
//! single write and synced, so concurrent runs never interleave and a
//! record, once there, survives a crash.
//!
//! A run leaves a `start` record once the chain let it through, written
//! before the container's process can run, and an `end` record with its
//! exit status: a specgate killed meanwhile still leaves the first. A run
//! stopped before its start (a refusal, a failure) leaves only the `end`
//! record. An `exec` record is one decision on a process started in a
//! running container.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::chain::{Applied, Report};
use super::file::Mode;
use super::plugin::Plugin;

/// What a record records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The chain let the run through; its container is about to start.
    Start,
    /// The run is over, or was stopped before it started: `exit_status`
    /// says how, `denial` whether the policy stopped it.
    End,
    /// A decision on a process to start in a running container.
    Exec,
}

/// One event of a run, as the audit log records it. docs/policy.md
/// documents the schema.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// What happened.
    pub event: Event,
    /// When, RFC 3339, UTC.
    pub time: String,
    /// The container id.
    pub run_id: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The uid that ran specgate.
    pub user: u32,
    /// The root filesystem (`host` for the embedded default).
    pub rootfs: String,
    /// The policy file and its sha256, when one was used.
    pub policy: Option<PolicyDigest>,
    /// `enforce` or `monitor`.
    pub mode: String,
    /// Every plugin of the chain.
    pub plugins: Vec<PluginRecord>,
    /// Every change applied, in order.
    pub changes: Vec<ChangeRecord>,
    /// Plugins skipped under `on-error = "skip"`, with why.
    pub skipped: Vec<String>,
    /// In monitor mode, what enforcing would have stopped the run for.
    pub would_deny: Vec<String>,
    /// What stopped the run, if the policy did.
    pub denial: Option<String>,
    /// The CNI networks the container joined, once joined.
    pub networks: Vec<NetworkRecord>,
    /// The sha256 of the config.json given to the runtime.
    pub config_sha256: Option<String>,
    /// The runtime's executable.
    pub runtime: String,
    /// specgate's exit status; none until the run ends.
    pub exit_status: Option<u8>,
}

/// A CNI network the container joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkRecord {
    /// The network's name.
    pub name: String,
    /// The container's interface on it.
    pub interface: String,
    /// The interface's addresses, with their prefix length
    /// (`10.88.0.5/16`), as the network's plugins assigned them.
    pub addresses: Vec<String>,
}

impl NetworkRecord {
    /// A network as its ADD left it: `result` is the CNI result of the
    /// list's last plugin, whose addresses inside the container are taken
    /// (of any CNI version: `ips` since 0.3, `ip4` and `ip6` before).
    pub fn from_cni(name: &str, interface: &str, result: Option<&serde_json::Value>) -> Self {
        let mut addresses = Vec::new();
        if let Some(result) = result {
            let interfaces = result["interfaces"].as_array();
            // An address is the container's when its `interface` is one
            // in the container's namespace (its `sandbox`), or unsaid.
            let in_container = |ip: &serde_json::Value| match ip["interface"].as_u64() {
                None => true,
                Some(index) => interfaces
                    .and_then(|list| list.get(usize::try_from(index).ok()?))
                    .and_then(|i| i["sandbox"].as_str())
                    .is_some_and(|sandbox| !sandbox.is_empty()),
            };
            let current = result["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|ip| in_container(ip))
                .filter_map(|ip| ip["address"].as_str());
            let legacy = [&result["ip4"], &result["ip6"]]
                .into_iter()
                .filter_map(|ip| ip["ip"].as_str());
            addresses.extend(current.chain(legacy).map(str::to_string));
        }
        NetworkRecord {
            name: name.to_string(),
            interface: interface.to_string(),
            addresses,
        }
    }
}

/// A policy file and its digest.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyDigest {
    /// Its path.
    pub path: String,
    /// Its sha256.
    pub sha256: String,
}

/// A plugin of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRecord {
    /// Its name in the chain.
    pub name: String,
    /// Its file.
    pub path: String,
    /// The file's sha256.
    pub sha256: String,
    /// The hooks it exports.
    pub hooks: Vec<&'static str>,
    /// Time per stage (configure, each hook), in microseconds.
    pub micros: Vec<(String, u128)>,
}

/// A change applied by a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRecord {
    /// The plugin.
    pub plugin: String,
    /// The hook.
    pub hook: &'static str,
    /// The change, as a person would write it.
    pub change: String,
    /// `restricting` or `widening`.
    pub effect: &'static str,
    /// The grant that allowed a widening change.
    pub grant: Option<String>,
}

impl ChangeRecord {
    /// What specgate itself took from an `exec`'s process, so that it holds
    /// no more than the container's own (`plugin` is `specgate`, `hook` is
    /// `exec`): for [`Record::exec`].
    pub fn clamp(change: impl Into<String>) -> Self {
        ChangeRecord {
            plugin: "specgate".to_string(),
            hook: "exec",
            change: change.into(),
            effect: "restricting",
            grant: None,
        }
    }
}

impl From<&Applied> for ChangeRecord {
    fn from(applied: &Applied) -> Self {
        ChangeRecord {
            plugin: applied.plugin.clone(),
            hook: applied.hook.interface(),
            change: applied.change.clone(),
            effect: applied.effect(),
            grant: applied.grant.clone(),
        }
    }
}

impl Record {
    /// A record of `event` for the container `run_id`, made now by this
    /// process's user, with no policy; the rest is filled in as the run
    /// goes.
    pub fn new(
        event: Event,
        run_id: &str,
        command: Vec<String>,
        rootfs: String,
        runtime: String,
    ) -> Self {
        Record {
            event,
            time: now(),
            run_id: run_id.to_string(),
            command,
            user: nix::unistd::getuid().as_raw(),
            rootfs,
            policy: None,
            mode: mode_name(Mode::Enforce).to_string(),
            plugins: Vec::new(),
            changes: Vec::new(),
            skipped: Vec::new(),
            would_deny: Vec::new(),
            denial: None,
            networks: Vec::new(),
            config_sha256: None,
            runtime,
            exit_status: None,
        }
    }

    /// The record of a decision on `exec`: `command` is the process asked
    /// to start in the container `run_id`, `runtime` the real runtime.
    /// Fill in what was decided before [`Record::append`]ing it to the
    /// policy's audit log: [`Record::under`] the policy, `denial` (and
    /// `exit_status`, the runtime's failure status) when it is refused,
    /// [`ChangeRecord::clamp`]s in `changes` for what was taken from the
    /// process, and [`Record::add_chain`] when plugins ran on it.
    ///
    /// ```
    /// # use specgate::policy::audit::{ChangeRecord, Record};
    /// let mut record = Record::exec("abc", vec!["sh".into()], "/usr/bin/runc".into());
    /// record.changes.push(ChangeRecord::clamp("drop CAP_SYS_ADMIN from the bounding set"));
    /// # let log = tempfile::NamedTempFile::new().unwrap();
    /// record.append(log.path()).unwrap();
    /// ```
    pub fn exec(run_id: &str, command: Vec<String>, runtime: String) -> Self {
        Record::new(Event::Exec, run_id, command, String::new(), runtime)
    }

    /// The record, made under `policy` (the file and its digest) in
    /// `mode`.
    pub fn under(mut self, policy: Option<PolicyDigest>, mode: Mode) -> Self {
        self.policy = policy;
        self.mode = mode_name(mode).to_string();
        self
    }

    /// Turns the record into the run's `end` record, now, with its exit
    /// status.
    pub fn end(&mut self, exit_status: u8) {
        self.event = Event::End;
        self.time = now();
        self.exit_status = Some(exit_status);
    }

    /// Fills in the chain's plugins and what they did: for a run the chain
    /// refused, what they did before the refusal.
    pub fn add_chain(&mut self, plugins: &[Plugin], report: &Report) {
        self.plugins = plugins
            .iter()
            .map(|p| PluginRecord {
                name: p.name().to_string(),
                path: p.path().display().to_string(),
                sha256: p.sha256().to_string(),
                hooks: p.hooks().iter().map(|h| h.interface()).collect(),
                micros: report
                    .timings
                    .iter()
                    .filter(|(name, _, _)| name == p.name())
                    .map(|(_, stage, took)| (stage.name().to_string(), took.as_micros()))
                    .collect(),
            })
            .collect();
        self.changes = report.applied.iter().map(ChangeRecord::from).collect();
        self.skipped = report.skipped.iter().map(|e| e.to_string()).collect();
        self.would_deny = report.would_deny.iter().map(|e| e.to_string()).collect();
    }

    /// Appends the record to `path` as one line: opened append-only
    /// (created 0600), written in one `write`, synced.
    pub fn append(&self, path: &Path) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        // One write call: with O_APPEND the kernel places it whole at the
        // end, so concurrent runs' records never interleave.
        let written = file.write(&line)?;
        if written != line.len() {
            return Err(std::io::Error::other(format!(
                "short write to the audit log ({written} of {} bytes)",
                line.len()
            )));
        }
        file.sync_data()
    }
}

/// A mode as records name it.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    }
}

/// Now, as RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    crate::timestamp::rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_networks_addresses_are_those_inside_the_container() {
        let bridge = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "if0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/proc/1/fd/5"}
            ],
            "ips": [
                {"interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"},
                {"interface": 0, "address": "10.88.0.1/16"},
                {"address": "fd00::5/64"}
            ]
        });
        assert_eq!(
            NetworkRecord::from_cni("podman", "if0", Some(&bridge)),
            NetworkRecord {
                name: "podman".into(),
                interface: "if0".into(),
                addresses: vec!["10.88.0.5/16".into(), "fd00::5/64".into()],
            }
        );
        let legacy = serde_json::json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.2/24"}});
        assert_eq!(
            NetworkRecord::from_cni("old", "if1", Some(&legacy)).addresses,
            ["10.1.0.2/24"]
        );
        assert!(
            NetworkRecord::from_cni("none", "if2", None)
                .addresses
                .is_empty()
        );
    }

    #[test]
    fn an_exec_record_says_what_was_decided() {
        let mut record = Record::exec("abc", vec!["sh".into()], "/usr/bin/runc".into())
            .under(None, Mode::Monitor);
        record.changes.push(ChangeRecord::clamp(
            "drop CAP_SYS_ADMIN from the bounding set",
        ));
        record.denial = Some("no".into());
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["event"], "exec");
        assert_eq!(value["run_id"], "abc");
        assert_eq!(value["mode"], "monitor");
        assert_eq!(value["changes"][0]["plugin"], "specgate");
        assert_eq!(value["changes"][0]["hook"], "exec");
        assert_eq!(value["changes"][0]["effect"], "restricting");
        assert_eq!(value["denial"], "no");
        assert!(value["exit_status"].is_null());
    }
}
