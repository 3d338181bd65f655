//! The audit trail: one JSON object per run, appended to a JSON Lines
//! file in a single write and synced, so concurrent runs never interleave
//! and a record, once there, survives a crash.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::chain::{Applied, Report};
use super::plugin::Plugin;

/// One run, as the audit log records it. The README documents the schema.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// When the run started, RFC 3339, UTC.
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
    /// The sha256 of the config.json given to the runtime.
    pub config_sha256: Option<String>,
    /// The runtime's executable.
    pub runtime: String,
    /// specgate's exit status.
    pub exit_status: Option<u8>,
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
    /// Fills in the chain's plugins and what they did.
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

/// Now, as RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(now().len(), "2026-11-29T05:00:00.000Z".len());
    }
}
