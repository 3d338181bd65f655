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

use wasmtime::Engine;
use wasmtime::component::Component;

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

    /// The cached component for this plugin, if a valid entry exists. A
    /// corrupt, truncated or foreign entry is removed.
    pub fn lookup(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry_path(sha256)?;
        let mapped = match fs::File::open(&path).and_then(|f| crate::sys::MappedFile::new(&f)) {
            Ok(mapped) => mapped,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
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
            return None;
        }
        // The content was checked above against its digest, and the
        // directory is private to this uid (see `open`); entries are only
        // ever replaced whole, by rename, with another checked entry for
        // the same plugin.
        match crate::sys::map_trusted_component(engine, &path) {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "plugin cache hit");
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "plugin cache entry is foreign ({e}); recompiling");
                discard(&path);
                None
            }
        }
    }

    /// Compiles a plugin and stores the result; a failure to store is
    /// logged and costs only the next run's compile.
    pub fn compile(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<Component> {
        let started = std::time::Instant::now();
        let precompiled = engine.precompile_component(wasm)?;
        tracing::debug!(elapsed = ?started.elapsed(), bytes = wasm.len(), "plugin compiled");
        if let Some(path) = self.entry_path(sha256)
            && let Err(e) = store(&path, &precompiled)
        {
            tracing::warn!(path = %path.display(), "plugin cache entry not written: {e}");
        }
        // These bytes come from `precompile_component` on this very engine
        // a moment ago and never left this process.
        crate::sys::load_trusted_component(engine, &precompiled)
    }
}

/// The engine's compatibility hash, as a short stable string: entries made
/// by another wasmtime version or configuration get other names.
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
