//! The compiled-code cache: plugins compiled once per engine, kept as
//! wasmtime precompiled components in a private directory.
//!
//! An entry's name is the plugin's sha256 and the engine's compatibility
//! hash; its content is wasmtime's precompiled bytes followed by their
//! XXH3-128 digest and a magic string. Precompiled code is executed as is,
//! so an entry is only used after its digest checks out; anything else is
//! discarded and recompiled. Entries are written to a temporary file and
//! renamed into place, so concurrent first uses each see a whole entry.
//!
//! Beside each entry, a sidecar `.json` records the plugin file it was
//! last loaded from, for `plugin cache list`; the entry's mtime is its last
//! use, refreshed by a hit at most once per [`USE_GRANULARITY`]. Neither is
//! needed to load: a missing, corrupt or foreign sidecar only leaves the
//! source unknown.
//!
//! The digest guards against accidents (a truncated write, a flipped bit,
//! a file from elsewhere), not against an attacker: the directory is
//! private to its owner, who could as well replace the plugin itself. A
//! fast non-cryptographic hash keeps a cached load well under a
//! millisecond. The trailer, not a header, keeps the precompiled bytes at
//! offset 0 so that wasmtime can map the file instead of copying it.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::digests;

const MAGIC: &[u8; 16] = b"specgate-cwasm\0\x02";
const DIGEST_LEN: usize = 16;

/// Errors of the cache directory itself. A bad entry is never an error: it
/// is recompiled.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory could not be created or inspected.
    #[error("plugin cache directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Someone else could plant code in the directory.
    #[error(
        "plugin cache directory {path} is not private (owner uid {uid}, mode {mode:o}); \
         it must be owned by uid {euid} with mode 0700"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
        /// The uid it must belong to: ours.
        euid: u32,
    },
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Deserialized from a verified cache entry.
    Cache,
    /// Compiled now (and stored, when there is a cache).
    Compiled,
}

/// A cache directory, or none when caching is off.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
    compat: String,
}

impl Cache {
    /// Opens (creating it 0700 if needed) the cache at `dir`. An existing
    /// directory must be ours and closed to others.
    pub fn open(engine: &Engine, dir: &Path) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io {
            path: dir.to_path_buf(),
            source,
        };
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let meta = fs::metadata(dir).map_err(io)?;
        let euid = nix::unistd::geteuid().as_raw();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.uid() != euid || mode & 0o077 != 0 {
            return Err(CacheError::NotPrivate {
                path: dir.to_path_buf(),
                uid: meta.uid(),
                mode,
                euid,
            });
        }
        Ok(Cache {
            dir: Some(dir.to_path_buf()),
            compat: compat_key(engine),
        })
    }

    /// No cache: every load compiles.
    pub fn disabled() -> Self {
        Cache {
            dir: None,
            compat: String::new(),
        }
    }

    /// The directory, when caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The entry file for a plugin with this sha256 (hex).
    pub fn entry_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    /// The sha256 remembered for a plugin file that has not changed since
    /// it was last hashed (see [`digests`](super::digests)).
    pub fn remembered_digest(&self, meta: &fs::Metadata) -> Option<String> {
        digests::recall(self.dir.as_ref()?, meta)
    }

    /// Remembers a plugin file's sha256, with its identity and times.
    pub fn remember_digest(&self, meta: &fs::Metadata, sha256: &str) {
        if let Some(dir) = &self.dir {
            digests::record(dir, meta, sha256);
        }
    }

    /// The sidecar of an entry: where its plugin was last seen.
    fn meta_path(entry: &Path) -> PathBuf {
        entry.with_extension("json")
    }

    /// The cached component for this plugin, if a valid entry exists. A
    /// corrupt, truncated or foreign entry is removed.
    ///
    /// A hit marks the entry as used (its mtime) at most once per
    /// [`USE_GRANULARITY`], and then also records `source` as where the
    /// plugin was last seen: a hit otherwise costs one `fstat` more.
    pub fn lookup(&self, engine: &Engine, sha256: &str, source: &Path) -> Option<Component> {
        let path = self.entry_path(sha256)?;
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "plugin cache entry unreadable: {e}");
                return None;
            }
        };
        let mapped = match crate::sys::MappedFile::new(&file) {
            Ok(mapped) => mapped,
            Err(e) => {
                tracing::warn!(path = %path.display(), "plugin cache entry unreadable: {e}");
                return None;
            }
        };
        let intact = mapped
            .as_ref()
            .is_some_and(|m| verified_payload(m.bytes()).is_some());
        drop(mapped);
        if !intact {
            tracing::warn!(path = %path.display(), "plugin cache entry is corrupt; recompiling");
            discard(&path);
            discard(&Self::meta_path(&path));
            return None;
        }
        // The content was checked above against its digest, and the
        // directory is private to this uid (see `open`); entries are only
        // ever replaced whole, by rename, with another checked entry for
        // the same plugin.
        match crate::sys::map_trusted_component(engine, &path) {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "plugin cache hit");
                mark_used(&file, &path, source);
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "plugin cache entry is foreign ({e}); recompiling");
                discard(&path);
                None
            }
        }
    }

    /// Compiles a plugin with the process's compiler (see
    /// [`super::engine::compiler`]) and loads it into `engine`. Nothing is
    /// stored: see [`Cache::store`], called once the component is known to
    /// be a plugin, so that a refused component leaves nothing behind.
    pub fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Compiled> {
        let started = std::time::Instant::now();
        let precompiled = super::engine::compiler()?.precompile_component(wasm)?;
        tracing::debug!(elapsed = ?started.elapsed(), bytes = wasm.len(), "plugin compiled");
        // These bytes come from `precompile_component` a moment ago and
        // never left this process; wasmtime checks that the compiler's
        // settings are the engine's.
        let component = crate::sys::load_trusted_component(engine, &precompiled)?;
        Ok(Compiled {
            precompiled,
            component,
        })
    }

    /// Stores a compiled plugin, with where it came from. A failure to
    /// store is logged and costs only the next run's compile.
    pub fn store(&self, sha256: &str, compiled: &Compiled, source: &Path, wasm_size: u64) {
        let Some(path) = self.entry_path(sha256) else {
            return;
        };
        let meta = Meta {
            source: absolute(source),
            wasm_size: Some(wasm_size),
        };
        // The sidecar first: an entry is never seen without one, except
        // from caches older than sidecars.
        if let Err(e) = write_meta(&Self::meta_path(&path), &meta) {
            tracing::debug!(path = %path.display(), "plugin cache sidecar not written: {e}");
        }
        if let Err(e) = store(&path, &compiled.precompiled) {
            tracing::warn!(path = %path.display(), "plugin cache entry not written: {e}");
        }
    }

    /// Every entry in the directory, this engine's and others', sorted by
    /// last use, oldest first. Unreadable or foreign sidecars leave the
    /// entry's source unknown.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let io = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        let mut entries = Vec::new();
        for item in fs::read_dir(dir).map_err(io)? {
            let item = item.map_err(io)?;
            let name = item.file_name();
            let Some((sha256, compat)) = name.to_str().and_then(parse_entry_name) else {
                continue;
            };
            let path = item.path();
            // Gone meanwhile (a concurrent prune or recompile): not listed.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let sidecar = read_meta(&Self::meta_path(&path));
            entries.push(CacheEntry {
                sha256: sha256.to_string(),
                this_engine: compat == self.compat,
                size: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                source: sidecar.as_ref().and_then(|m| m.source.clone()),
                path,
            });
        }
        entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.sha256.cmp(&b.sha256)));
        Ok(entries)
    }

    /// Removes what no entry needs: sidecars whose entry is gone, digests
    /// of plugins no entry was compiled from, and temporary files of
    /// writers that died. Returns the files removed and their bytes.
    pub fn sweep(&self) -> Result<(usize, u64), CacheError> {
        let Some(dir) = &self.dir else {
            return Ok((0, 0));
        };
        let io = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        let items = fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        let compiled: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|item| {
                let name = item.file_name();
                let (sha256, _) = parse_entry_name(name.to_str()?)?;
                Some(sha256.to_string())
            })
            .collect();
        let now = SystemTime::now();
        let (mut count, mut bytes) = (0, 0);
        for item in items {
            let path = item.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let name = item.file_name();
            let name = name.to_string_lossy();
            let leftover = if [".entry-", ".meta-", ".digest-"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                meta.modified()
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > LEFTOVER_AGE)
            } else if let Some(stem) = name.strip_suffix(".json") {
                parse_entry_name(&format!("{stem}.cwasm")).is_some()
                    && !path.with_extension("cwasm").exists()
            } else if name.ends_with(digests::SUFFIX) {
                digests::recorded_digest(&path).is_none_or(|sha256| !compiled.contains(&sha256))
            } else {
                false
            };
            if leftover && meta.is_file() && fs::remove_file(&path).is_ok() {
                count += 1;
                bytes += meta.len();
            }
        }
        Ok((count, bytes))
    }

    /// Removes an entry and its sidecar. One already gone is no error: a
    /// concurrent prune got there first.
    pub fn remove(&self, entry: &CacheEntry) -> Result<(), CacheError> {
        for path in [entry.path.clone(), Self::meta_path(&entry.path)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(CacheError::Io { path, source }),
            }
        }
        Ok(())
    }
}

/// How old a temporary file must be before a sweep takes it for the
/// leftover of a writer that died: writers rename theirs within seconds.
const LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// How often a cache hit marks its entry as used: finer would cost every
/// hit a metadata write, and `prune --older-than` deals in days.
pub const USE_GRANULARITY: Duration = Duration::from_secs(60 * 60);

/// A freshly compiled plugin: its precompiled bytes, to be stored, and the
/// component made from them.
#[derive(Debug)]
pub struct Compiled {
    precompiled: Vec<u8>,
    /// The component, ready to be prepared.
    pub component: Component,
}

/// One entry of the cache directory, as `plugin cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The plugin's sha256, in hex.
    pub sha256: String,
    /// Whether this binary's engine can use it; entries of other wasmtime
    /// versions or settings are only ever pruned.
    pub this_engine: bool,
    /// The entry's size in bytes.
    pub size: u64,
    /// When it was last loaded (to within [`USE_GRANULARITY`]) or
    /// written.
    pub last_used: SystemTime,
    /// The plugin file it was last loaded from, when recorded.
    pub source: Option<PathBuf>,
    /// The entry's file.
    pub path: PathBuf,
}

/// The sidecar of an entry. Every field is optional so that sidecars of
/// other specgate versions still parse.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wasm_size: Option<u64>,
}

/// `SHA256-COMPAT.cwasm`, split; anything else in the directory is not an
/// entry.
fn parse_entry_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".cwasm")?;
    let (sha256, compat) = stem.split_once('-')?;
    let hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(sha256, 64) && hex(compat, 16)).then_some((sha256, compat))
}

/// Marks a hit entry as used when its mark is older than the granularity,
/// and records where its plugin was seen then. Failures only cost
/// accuracy of `plugin cache list`.
fn mark_used(file: &fs::File, path: &Path, source: &Path) {
    let now = SystemTime::now();
    let stale = file
        .metadata()
        .and_then(|m| m.modified())
        .map_or(true, |t| {
            now.duration_since(t).unwrap_or_default() >= USE_GRANULARITY
        });
    if !stale {
        return;
    }
    if let Err(e) = file.set_times(fs::FileTimes::new().set_modified(now)) {
        tracing::debug!(path = %path.display(), "plugin cache entry not marked used: {e}");
    }
    let meta_path = Cache::meta_path(path);
    let mut meta = read_meta(&meta_path).unwrap_or_default();
    let source = absolute(source);
    if meta.source != source {
        meta.source = source;
        if let Err(e) = write_meta(&meta_path, &meta) {
            tracing::debug!(path = %meta_path.display(), "plugin cache sidecar not written: {e}");
        }
    }
}

/// The plugin's path as recorded: absolute, so that it means the same from
/// any working directory.
fn absolute(path: &Path) -> Option<PathBuf> {
    std::path::absolute(path).ok()
}

fn read_meta(path: &Path) -> Option<Meta> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_meta(path: &Path, meta: &Meta) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new().prefix(".meta-").tempfile_in(dir)?;
    serde_json::to_writer(&mut file, meta)?;
    file.write_all(b"\n")?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The engine's compatibility hash, as a short stable string: entries made
/// by another wasmtime version or configuration get other names. The
/// engine has no compiler (see [`super::engine::compiler`]), so the hash
/// leaves out the CPU features the code was compiled for: an entry from a
/// CPU with other features (a cache directory shared between machines)
/// fails wasmtime's check when loaded, and is recompiled.
fn compat_key(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The payload of an entry whose magic and digest check out.
fn verified_payload(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_suffix(MAGIC.as_slice())?;
    let split = rest.len().checked_sub(DIGEST_LEN)?;
    let (payload, digest) = rest.split_at(split);
    (digest == digest_of(payload)).then_some(payload)
}

fn digest_of(payload: &[u8]) -> [u8; DIGEST_LEN] {
    xxhash_rust::xxh3::xxh3_128(payload).to_le_bytes()
}

fn store(path: &Path, precompiled: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".entry-")
        .tempfile_in(dir)?;
    file.write_all(precompiled)?;
    file.write_all(&digest_of(precompiled))?;
    file.write_all(MAGIC)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn discard(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "plugin cache entry not removed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_verify_their_digest() {
        let payload = b"precompiled".to_vec();
        let mut entry = payload.clone();
        entry.extend_from_slice(&digest_of(&payload));
        entry.extend_from_slice(MAGIC);
        assert_eq!(verified_payload(&entry), Some(payload.as_slice()));

        let mut flipped = entry.clone();
        flipped[0] ^= 1;
        assert_eq!(verified_payload(&flipped), None);
        assert_eq!(verified_payload(&entry[1..]), None);
        assert_eq!(verified_payload(&entry[entry.len() - 20..]), None);
        assert_eq!(verified_payload(b"\x7fELF"), None);
    }
}
