//! A cgroup of the run's own, holding every process the container
//! starts, so that none outlives the run. In a PID namespace of its own
//! the container's processes die with its init; sharing or joining one
//! (`--pid host`, `--pid ns:PATH`), a process the command left behind
//! (backgrounded, `setsid`, double-forked) would live on with the
//! container's credentials. The container's first process enters the
//! cgroup before it does anything else, its descendants are born in it,
//! and when the run ends (or its guardian cleans up after a killed
//! specgate) `cgroup.kill` ends them all at once.
//!
//! It is made in the cgroup v2 hierarchy, below specgate's own cgroup:
//! on a cgroup v1 host, in the unified hierarchy beside the v1 ones
//! (mounted at /sys/fs/cgroup/unified by systemd's hybrid layout). With
//! no v2 hierarchy specgate may write (an unprivileged caller without a
//! delegated cgroup), there is none, and only the container's PID
//! namespace ends what it left.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The file in the bundle naming the run's cgroup, for the guardian and
/// `specgate gc`.
pub const CGROUP_FILE: &str = "cgroup";

/// The prefix of every run's cgroup name.
const PREFIX: &str = "specgate-";

/// A cgroup of the run's own, killed and removed when dropped.
#[derive(Debug)]
pub struct RunCgroup {
    dir: PathBuf,
}

/// Where the cgroup v2 hierarchy is mounted, from this process's
/// mountinfo (whose mount namespace may not be the host's).
fn hierarchy() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        let fstype = rest.split_whitespace().next()?;
        let mut fields = fields.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// A mountinfo path, with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(char::from(byte));
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// This process's cgroup in the v2 hierarchy (the `0::` line).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string)
}

/// Whether `path` is a run's cgroup: in a cgroup2 filesystem, named as
/// specgate names them.
fn is_run_cgroup(path: &Path) -> bool {
    path.is_absolute()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(PREFIX))
        && nix::sys::statfs::statfs(path)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

impl RunCgroup {
    /// Makes the cgroup of run `id`; none where there is no cgroup v2
    /// hierarchy this process may write in.
    pub fn create(id: &str) -> Option<Self> {
        let hierarchy = hierarchy()?;
        let own = own_cgroup()?;
        if own.split('/').any(|c| c == "..") {
            return None;
        }
        let dir = hierarchy
            .join(own.trim_start_matches('/'))
            .join(format!("{PREFIX}{id}-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(RunCgroup { dir }),
            Err(e) => {
                tracing::debug!(cgroup = %dir.display(), "no cgroup of the run's own: {e}");
                None
            }
        }
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `cgroup.procs`, open for writing: the container's first
    /// process writes "0" there to enter it.
    pub fn procs(&self) -> std::io::Result<OwnedFd> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
            .map(OwnedFd::from)
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        kill_and_remove(&self.dir);
    }
}

/// Kills every process in the cgroup at `dir` and removes it, once empty.
pub fn kill_and_remove(dir: &Path) {
    let killed = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"));
    if let Err(e) = killed {
        // Before Linux 5.14: one by one, until none is left (a process
        // forking meanwhile is killed on the next round).
        tracing::debug!(cgroup = %dir.display(), "cgroup.kill: {e}");
        for _ in 0..1000 {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|p| p.parse().ok()).collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // Killed processes leave the cgroup as they exit; it can be removed
    // once the last is gone.
    for _ in 0..2000 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(cgroup = %dir.display(), "cgroup not removed: {e}");
                return;
            }
            Ok(()) => return,
        }
    }
    tracing::warn!(cgroup = %dir.display(), "cgroup not removed: still busy");
}

/// Kills what is left in the cgroup a bundle names (a run whose
/// specgate was killed) and removes it.
pub fn kill_recorded(bundle: &Path) {
    let Ok(recorded) = std::fs::read_to_string(bundle.join(CGROUP_FILE)) else {
        return;
    };
    let dir = PathBuf::from(recorded.trim_end());
    if is_run_cgroup(&dir) {
        kill_and_remove(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn only_a_runs_cgroup_is_killed_from_a_record() {
        assert!(!is_run_cgroup(Path::new("/tmp")));
        assert!(!is_run_cgroup(Path::new("specgate-x")));
        let bundle = tempfile::tempdir().unwrap();
        std::fs::write(bundle.path().join(CGROUP_FILE), "/proc\n").unwrap();
        kill_recorded(bundle.path());
        assert!(Path::new("/proc/self").exists());
    }
}
