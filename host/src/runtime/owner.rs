//! Who owns a run: each bundle records the process that made it (its
//! pid and start time), so that the cleanup of dead runs can tell a live
//! owner from a gone one.

use std::path::Path;

/// The file in a bundle that names the run's owner.
pub const OWNER_FILE: &str = "owner";

/// This process, as an owner record: its pid and its start time, so that
/// a reused pid is not mistaken for the owner.
pub fn owner_record() -> String {
    let pid = std::process::id();
    format!("{pid} {}\n", start_time(pid).unwrap_or_default())
}

/// A live process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat); none when it does not exist or is a zombie (dead,
/// not yet reaped by its parent).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the owner recorded in a bundle is still running. Bundles are
/// renamed into place with their owner file already written, so a bundle
/// without one is not specgate's and is left alone.
pub fn owner_alive(bundle: &Path) -> bool {
    let Ok(record) = std::fs::read_to_string(bundle.join(OWNER_FILE)) else {
        return true;
    };
    let mut fields = record.split_whitespace();
    let pid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
    let started: Option<u64> = fields.next().and_then(|s| s.parse().ok());
    match (pid, started) {
        (Some(pid), Some(started)) => start_time(pid) == Some(started),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_owner_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OWNER_FILE), owner_record()).unwrap();
        assert!(owner_alive(dir.path()));
        std::fs::write(
            dir.path().join(OWNER_FILE),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        assert!(!owner_alive(dir.path()));
    }
}
