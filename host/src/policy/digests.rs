//! Remembered digests: a plugin file's sha256, recorded with the file's
//! identity and times, so that loading an unchanged plugin neither reads
//! nor hashes it. Git's index does the same for a working tree.
//!
//! A record lives in the cache directory, named after the file's device
//! and inode, and holds the file's [`stamp`] when it was hashed: its size,
//! mtime and ctime, and the boot. Writing to a file moves its ctime to the
//! present, and replacing it by rename gives it another inode; no process
//! can set a ctime back. A record is only written for a file unchanged for
//! [`SETTLED`], so that a write in the same clock tick as the hashing
//! cannot go unseen; and it holds for one boot only, since a crash can
//! leave a file's metadata on disk without the data written before it.
//! The plugin cache checks its entries' digests on the same terms.
//!
//! A remembered digest only ever leads to a cache entry, which was
//! compiled from bytes that had that digest: when there is none, the file
//! is read and hashed afresh. A stale record could at worst make a run use
//! the plugin's previous version, never code whose digest was not checked
//! (pins included).

use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::private_files::{open_file, replace};

/// How long a file must have been unchanged before its digest is recorded:
/// more than the coarsest timestamp granularity of common filesystems.
pub const SETTLED: Duration = Duration::from_secs(2);

/// The suffix of record files in the cache directory.
pub const SUFFIX: &str = ".digest";

/// The digest recorded for the file described by `meta`, if the record
/// still matches it. `dir` is the cache directory's descriptor: records
/// are reached through it, never by path.
pub fn recall(dir: &OwnedFd, meta: &Metadata) -> Option<String> {
    let (recorded, sha256) = read(dir, &record_name(meta))?;
    (Some(recorded) == stamp(meta)).then_some(sha256)
}

/// Records `sha256` for the file described by `meta`, if the file has
/// settled. A failure only costs the next load a read.
pub fn record(dir: &OwnedFd, meta: &Metadata, sha256: &str) {
    let Some(stamp) = settled_stamp(meta) else {
        return;
    };
    let name = record_name(meta);
    let written = replace(dir, ".digest-", &name, |file| {
        writeln!(file, "{stamp} {sha256}")
    });
    if let Err(e) = written {
        tracing::debug!(record = %name, "plugin digest not recorded: {e}");
    }
}

/// The digest a record file holds, whatever file it describes: what a
/// sweep needs to tell records of pruned plugins.
pub fn recorded_digest(dir: &OwnedFd, record: &str) -> Option<String> {
    read(dir, record).map(|(_, sha256)| sha256)
}

/// A record's stamp and digest; `None` for anything malformed, or not a
/// file of ours alone.
fn read(dir: &OwnedFd, record: &str) -> Option<(String, String)> {
    let mut text = String::new();
    open_file(dir, record)
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    let (stamp, sha256) = text.trim_end().rsplit_once(' ')?;
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| (stamp.to_string(), sha256.to_string()))
}

fn record_name(meta: &Metadata) -> String {
    format!("{:x}-{:x}{SUFFIX}", meta.dev(), meta.ino())
}

/// What must not have changed since a file's bytes were checked: its
/// size, mtime and ctime to the nanosecond, and the boot. `None` when the
/// boot cannot be told, and then nothing is taken as unchanged.
pub fn stamp(meta: &Metadata) -> Option<String> {
    Some(format!(
        "{} {}.{:09} {}.{:09} {}",
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        boot_id()?
    ))
}

/// The file's stamp, if it has been unchanged for [`SETTLED`]: only such a
/// stamp may be recorded.
pub fn settled_stamp(meta: &Metadata) -> Option<String> {
    let changed = UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    let settled = SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age > SETTLED);
    settled.then(|| stamp(meta)).flatten()
}

/// This boot's id, read once.
fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| id.to_string())
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::{Path, PathBuf};

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn open(dir: &Path) -> OwnedFd {
        fs::File::open(dir).expect("open the directory").into()
    }

    fn settled_file(dir: &Path) -> PathBuf {
        let path = dir.join("plugin.wasm");
        fs::write(&path, b"\0asm").expect("write");
        // ctime cannot be set back: wait until the file has settled.
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        path
    }

    #[test]
    fn a_settled_unchanged_file_is_recalled() {
        let cache = tempfile::tempdir().expect("dir");
        let plugin = settled_file(cache.path());
        let dir = open(cache.path());
        let meta = fs::metadata(&plugin).expect("stat");
        assert_eq!(recall(&dir, &meta), None);
        record(&dir, &meta, SHA);
        let again = fs::metadata(&plugin).expect("stat");
        assert_eq!(recall(&dir, &again).as_deref(), Some(SHA));

        // Any write changes the ctime: the record no longer applies.
        fs::write(&plugin, b"\0asm").expect("rewrite");
        let rewritten = fs::metadata(&plugin).expect("stat");
        assert_eq!(recall(&dir, &rewritten), None);
    }

    #[test]
    fn a_fresh_file_is_not_recorded() {
        let cache = tempfile::tempdir().expect("dir");
        let plugin = cache.path().join("plugin.wasm");
        fs::write(&plugin, b"\0asm").expect("write");
        let dir = open(cache.path());
        let meta = fs::metadata(&plugin).expect("stat");
        record(&dir, &meta, SHA);
        assert_eq!(recall(&dir, &meta), None);
    }
}
