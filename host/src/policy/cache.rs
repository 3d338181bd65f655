//! The compiled-code cache: plugins compiled once per engine, kept as
//! wasmtime precompiled components in a private directory.
//!
//! An entry's name is the plugin's sha256 and the engine's compatibility
//! hash; its content is wasmtime's precompiled bytes followed by their
//! XXH3-128 digest, seeded with the entry's name, and a magic string. Precompiled code is executed as is,
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
//! Whoever can change what an entry's name leads to runs code in every
//! process that loads it, so the directory is trusted only as far as the
//! path to it is (see [`Cache::open`]): it is opened once, walking from
//! `/` one component at a time without following links, and every
//! directory on the way must be owned by root or by this uid and closed
//! to others' writes. Everything in it is then reached relative to that
//! descriptor, never by path, and never through a link: a directory
//! swapped or renamed afterwards changes nothing.
//!
//! The digest guards against accidents (a truncated write, a flipped bit,
//! a file from elsewhere, another plugin's entry under this one's name),
//! not against someone: only this uid (or root) can write the directory,
//! and it could as well replace the plugin itself. So an entry is checked
//! when it may have changed, not at every load: its digest is checked over
//! the whole file once, and the check is recorded in its sidecar with the
//! entry's identity, size, times and the boot (see
//! [`digests::stamp`](super::digests::stamp)); a load whose entry still
//! matches that record maps it without reading it. Writing to the entry,
//! replacing it, marking it used, or a reboot (after which a crash may
//! have left its data unwritten) each make the next load check it again.
//! Loading maps the file copy-on-write from the page cache
//! ([`crate::sys::load_private_component`]), so a load costs the pages
//! wasmtime touches, not the entry's size.

use std::ffi::OsStr;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component as PathPart, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::digests;
use super::private_files::{open_file, remove_at, replace};

const MAGIC: &[u8; 16] = b"specgate-cwasm\0\x03";
const DIGEST_LEN: usize = 16;

/// The largest entry read: far beyond any plugin's compiled code, and a
/// bound on what a damaged file can make a load allocate.
const MAX_ENTRY: u64 = 1 << 30;

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
    /// Someone else could swap the directory, or one on the way to it.
    #[error("plugin cache directory {dir}: {path} {problem}")]
    Unsafe {
        /// The cache directory, as given.
        dir: PathBuf,
        /// The directory (or link) at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
}

/// Why a directory on the way to the cache cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    /// A symbolic link, which the walk does not follow.
    #[error("is a symbolic link; give the directory's real path")]
    Link,
    /// Not a directory.
    #[error("is not a directory")]
    NotDirectory,
    /// Owned by another user, who could change it at will.
    #[error("is owned by uid {uid}, neither root nor uid {euid}")]
    Owner {
        /// Its owner.
        uid: u32,
        /// Ours.
        euid: u32,
    },
    /// Others may write to it, so rename or replace what it holds.
    #[error(
        "is writable by others (mode {mode:o}); only a root-owned sticky directory such as /tmp may be, when what the path takes from it is ours"
    )]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// A sticky directory open to all, whose next component is not ours.
    #[error(
        "is writable by others (mode {mode:o}), and {next} in it belongs to uid {owner}, not to uid {euid}"
    )]
    StickyNotOurs {
        /// Its permission bits.
        mode: u32,
        /// The next component of the path.
        next: String,
        /// Who owns it.
        owner: u32,
        /// Ours.
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

/// The open cache directory: its path, for messages and listings, and
/// the descriptor everything is reached through.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    fd: OwnedFd,
}

/// A cache directory, or none when caching is off.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<Arc<Dir>>,
    compat: String,
}

impl Cache {
    /// Opens (creating it, and any missing parent, 0700 if needed) the
    /// cache at `dir`.
    ///
    /// The path is walked from `/` one component at a time, without
    /// following links (one is refused, naming it). Every directory on the
    /// way must be owned by root or by this uid and not writable by group
    /// or others: whoever can write a directory can rename what it holds,
    /// and so swap the cache for a directory of theirs. The one exception
    /// is a root-owned sticky directory such as /tmp, where others may
    /// create names but not rename or remove ours: it is accepted when the
    /// component the path takes from it belongs to this uid. The cache
    /// directory itself must be ours and closed to all others (0700).
    pub fn open(engine: &Engine, dir: &Path) -> Result<Self, CacheError> {
        let fd = open_private_dir(dir)?;
        Ok(Cache {
            dir: Some(Arc::new(Dir {
                path: dir.to_path_buf(),
                fd,
            })),
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
        self.dir.as_ref().map(|d| d.path.as_path())
    }

    /// The name of the entry for a plugin with this sha256 (hex).
    fn entry_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.compat)
    }

    /// The entry file for a plugin with this sha256 (hex), for messages:
    /// the cache never opens it by this path.
    pub fn entry_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.path.join(self.entry_name(sha256)))
    }

    /// The sha256 remembered for a plugin file that has not changed since
    /// it was last hashed (see [`digests`](super::digests)).
    pub fn remembered_digest(&self, meta: &fs::Metadata) -> Option<String> {
        digests::recall(&self.dir.as_ref()?.fd, meta)
    }

    /// Remembers a plugin file's sha256, with its identity and times.
    pub fn remember_digest(&self, meta: &fs::Metadata, sha256: &str) {
        if let Some(dir) = &self.dir {
            digests::record(&dir.fd, meta, sha256);
        }
    }

    /// The cached component for this plugin, if a valid entry exists. A
    /// corrupt, truncated or foreign entry is removed.
    ///
    /// The entry is opened relative to the directory, without following a
    /// link, and must be a regular file of ours that no one else may
    /// write. Its digest is checked unless its sidecar records a check of
    /// this very file, unchanged since, in this boot.
    ///
    /// A hit marks the entry as used (its mtime) at most once per
    /// [`USE_GRANULARITY`], and then also records `source` as where the
    /// plugin was last seen.
    pub fn lookup(&self, engine: &Engine, sha256: &str, source: &Path) -> Option<Component> {
        let dir = self.dir.as_ref()?;
        let name = self.entry_name(sha256);
        let path = dir.path.join(&name);
        let unusable = |e: &dyn std::fmt::Display| {
            // A link or a directory in an entry's place is no entry of
            // ours: out of the way with it.
            tracing::warn!(path = %path.display(), "plugin cache entry unusable ({e}); recompiling");
            discard(&dir.fd, &name, &path);
        };
        let file = match open_file(&dir.fd, &name) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                unusable(&e);
                return None;
            }
        };
        let mut sidecar = read_meta(&dir.fd, &meta_name(&name)).unwrap_or_default();
        match check(&file, &name, sidecar.checked.as_deref()) {
            Ok(Checked::Before) => {}
            Ok(Checked::Now(stamp)) => {
                if stamp.is_some() {
                    sidecar.checked = stamp;
                    write_meta_quietly(dir, &name, &sidecar);
                }
            }
            Ok(Checked::Corrupt) => {
                tracing::warn!(path = %path.display(), "plugin cache entry is corrupt; recompiling");
                discard(&dir.fd, &name, &path);
                discard(&dir.fd, &meta_name(&name), &path);
                return None;
            }
            Err(e) => {
                unusable(&e);
                return None;
            }
        }
        match crate::sys::load_private_component(engine, &dir.fd, &name, &file) {
            Ok(component) => {
                tracing::debug!(path = %path.display(), "plugin cache hit");
                mark_used(dir, &file, &name, source, sidecar);
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "plugin cache entry is foreign ({e}); recompiling");
                discard(&dir.fd, &name, &path);
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
        let (precompiled, component) =
            crate::sys::compile_component(super::engine::compiler()?, engine, wasm)?;
        tracing::debug!(elapsed = ?started.elapsed(), bytes = wasm.len(), "plugin compiled");
        Ok(Compiled {
            precompiled,
            component,
        })
    }

    /// Stores a compiled plugin, with where it came from. A failure to
    /// store is logged and costs only the next run's compile.
    pub fn store(&self, sha256: &str, compiled: &Compiled, source: &Path, wasm_size: u64) {
        let Some(dir) = &self.dir else {
            return;
        };
        let name = self.entry_name(sha256);
        let path = dir.path.join(&name);
        let meta = Meta {
            source: absolute(source),
            wasm_size: Some(wasm_size),
            checked: None,
        };
        // The sidecar first: an entry is never seen without one, except
        // from caches older than sidecars.
        if let Err(e) = write_meta(&dir.fd, &meta_name(&name), &meta) {
            tracing::debug!(path = %path.display(), "plugin cache sidecar not written: {e}");
        }
        let written = replace(&dir.fd, ".entry-", &name, |file| {
            file.write_all(&compiled.precompiled)?;
            file.write_all(&digest_of(&name, &compiled.precompiled))?;
            file.write_all(MAGIC)
        });
        if let Err(e) = written {
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
        let mut entries = Vec::new();
        for name in dir.names()? {
            let Some((sha256, compat)) = name.to_str().and_then(parse_entry_name) else {
                continue;
            };
            let name = name.to_string_lossy();
            // Gone meanwhile (a concurrent prune or recompile): not listed.
            let Ok(stat) = stat_at(&dir.fd, &name) else {
                continue;
            };
            if !is_regular(&stat) {
                continue;
            }
            let sidecar = read_meta(&dir.fd, &meta_name(&name));
            entries.push(CacheEntry {
                sha256: sha256.to_string(),
                this_engine: compat == self.compat,
                size: stat.st_size as u64,
                last_used: mtime(&stat),
                source: sidecar.as_ref().and_then(|m| m.source.clone()),
                path: dir.path.join(&*name),
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
        let names = dir.names()?;
        let compiled: std::collections::HashSet<String> = names
            .iter()
            .filter_map(|name| {
                let (sha256, _) = parse_entry_name(name.to_str()?)?;
                Some(sha256.to_string())
            })
            .collect();
        let now = SystemTime::now();
        let (mut count, mut bytes) = (0, 0);
        for name in names {
            let name = name.to_string_lossy();
            let Ok(stat) = stat_at(&dir.fd, &name) else {
                continue;
            };
            let leftover = if [".entry-", ".meta-", ".digest-"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                now.duration_since(mtime(&stat)).unwrap_or_default() > LEFTOVER_AGE
            } else if let Some(stem) = name.strip_suffix(".json") {
                let entry = format!("{stem}.cwasm");
                parse_entry_name(&entry).is_some() && stat_at(&dir.fd, &entry).is_err()
            } else if name.ends_with(digests::SUFFIX) {
                digests::recorded_digest(&dir.fd, &name)
                    .is_none_or(|sha256| !compiled.contains(&sha256))
            } else {
                false
            };
            if leftover && is_regular(&stat) && remove_at(&dir.fd, &name).is_ok() {
                count += 1;
                bytes += stat.st_size as u64;
            }
        }
        Ok((count, bytes))
    }

    /// Removes an entry and its sidecar. One already gone is no error: a
    /// concurrent prune got there first.
    pub fn remove(&self, entry: &CacheEntry) -> Result<(), CacheError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let Some(name) = entry.path.file_name().map(OsStr::to_string_lossy) else {
            return Ok(());
        };
        for name in [name.to_string(), meta_name(&name)] {
            match remove_at(&dir.fd, &name) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CacheError::Io {
                        path: dir.path.join(name),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Dir {
    /// The names in the directory, read through its descriptor.
    fn names(&self) -> Result<Vec<std::ffi::OsString>, CacheError> {
        let io = |source: std::io::Error| CacheError::Io {
            path: self.path.clone(),
            source,
        };
        let fd = openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        let list = cap_std::fs::Dir::from_std_file(fs::File::from(fd));
        let mut names = Vec::new();
        for item in list.entries().map_err(io)? {
            names.push(item.map_err(io)?.file_name());
        }
        Ok(names)
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
    /// The entry's stamp when its digest last checked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checked: Option<String>,
}

/// Opens the cache directory as [`Cache::open`] says: every component
/// from `/` checked, none followed if it is a link, missing ones created
/// 0700. Returns a descriptor of the directory itself.
pub(super) fn open_private_dir(dir: &Path) -> Result<OwnedFd, CacheError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| CacheError::Io { path, source }
    };
    let absolute = std::path::absolute(dir).map_err(io(dir))?;
    // `..` is taken lexically: the walk follows no link, so a parent is
    // the directory walked through just before.
    let mut parts: Vec<&OsStr> = Vec::new();
    for part in absolute.components() {
        match part {
            PathPart::Normal(name) => parts.push(name),
            PathPart::ParentDir => {
                parts.pop();
            }
            PathPart::RootDir | PathPart::CurDir | PathPart::Prefix(_) => {}
        }
    }
    let euid = nix::unistd::geteuid().as_raw();
    let unsafe_at = |path: &Path, problem| CacheError::Unsafe {
        dir: dir.to_path_buf(),
        path: path.to_path_buf(),
        problem,
    };
    // O_PATH: passing through a directory needs only search permission,
    // as the kernel's own walk does.
    let walk = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root = Path::new("/");
    let mut current =
        openat(nix::fcntl::AT_FDCWD, root, walk, Mode::empty()).map_err(|e| io(root)(e.into()))?;
    let mut current_stat = fstat(&current).map_err(|e| io(root)(e.into()))?;
    let mut walked = PathBuf::from("/");
    for name in parts {
        let next = walked.join(name);
        // The directory walked through must be safe before anything is
        // created in it.
        let sticky_open = trust_parent(&current_stat, euid).map_err(|p| unsafe_at(&walked, p))?;
        let fd = match openat(&current, name, walk, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(&current, name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(io(&next)(e.into())),
                }
                openat(&current, name, walk, Mode::empty()).map_err(|e| {
                    not_a_directory(&current, name, e)
                        .map_or_else(|| io(&next)(e.into()), |problem| unsafe_at(&next, problem))
                })?
            }
            Err(e) => {
                return Err(not_a_directory(&current, name, e)
                    .map_or_else(|| io(&next)(e.into()), |problem| unsafe_at(&next, problem)));
            }
        };
        let stat = fstat(&fd).map_err(|e| io(&next)(e.into()))?;
        if sticky_open && stat.st_uid != euid {
            return Err(unsafe_at(
                &walked,
                Unsafe::StickyNotOurs {
                    mode: permissions(&current_stat),
                    next: name.to_string_lossy().into_owned(),
                    owner: stat.st_uid,
                    euid,
                },
            ));
        }
        (current, current_stat, walked) = (fd, stat, next);
    }
    let mode = permissions(&current_stat);
    if current_stat.st_uid != euid || mode & 0o077 != 0 {
        return Err(CacheError::NotPrivate {
            path: dir.to_path_buf(),
            uid: current_stat.st_uid,
            mode,
            euid,
        });
    }
    // The walk's descriptor only locates; reading the directory needs one
    // opened for reading, of the same directory.
    openat(
        &current,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(dir)(e.into()))
}

/// Whether a directory on the way to the cache can be trusted with the
/// next component: owned by root or us, and writable by no one else, or
/// root's and sticky. `Ok(true)` for the sticky case, where the next
/// component must then be ours.
fn trust_parent(stat: &FileStat, euid: u32) -> Result<bool, Unsafe> {
    let mode = permissions(stat);
    if stat.st_uid != 0 && stat.st_uid != euid {
        return Err(Unsafe::Owner {
            uid: stat.st_uid,
            euid,
        });
    }
    if mode & 0o022 == 0 {
        return Ok(false);
    }
    if stat.st_uid == 0 && mode & 0o1000 != 0 {
        return Ok(true);
    }
    Err(Unsafe::Writable { mode })
}

/// What is in the way when a component could not be opened as a
/// directory without following it: a link, or something else.
fn not_a_directory(parent: &OwnedFd, name: &OsStr, error: Errno) -> Option<Unsafe> {
    if !matches!(error, Errno::ELOOP | Errno::ENOTDIR) {
        return None;
    }
    let stat = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    Some(
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            Unsafe::Link
        } else {
            Unsafe::NotDirectory
        },
    )
}

fn permissions(stat: &FileStat) -> u32 {
    stat.st_mode & 0o7777
}

fn is_regular(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

fn mtime(stat: &FileStat) -> SystemTime {
    let since = Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32);
    SystemTime::UNIX_EPOCH + since
}

/// The metadata of a name in the directory, not following a link.
pub(super) fn stat_at(dir: &OwnedFd, name: &str) -> std::io::Result<FileStat> {
    Ok(fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
}

/// What checking an entry found.
enum Checked {
    /// Its sidecar records a check of this file, unchanged since.
    Before,
    /// Its digest checked out now; the stamp to record, if it has settled.
    Now(Option<String>),
    /// Its digest does not check out.
    Corrupt,
}

/// Checks the entry `name` open as `file`, unless `recorded` is its stamp
/// from an earlier check.
fn check(file: &fs::File, name: &str, recorded: Option<&str>) -> std::io::Result<Checked> {
    let meta = file.metadata()?;
    if meta.len() > MAX_ENTRY {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than an entry can be",
            meta.len()
        )));
    }
    if recorded.is_some() && recorded == digests::stamp(&meta).as_deref() {
        return Ok(Checked::Before);
    }
    use std::os::unix::fs::FileExt;
    tracing::debug!(entry = name, "plugin cache entry's digest checked");
    let read_at = |buf: &mut [u8], at: u64| file.read_exact_at(buf, at);
    Ok(if checks_out(name, meta.len(), read_at)? {
        Checked::Now(digests::settled_stamp(&meta))
    } else {
        Checked::Corrupt
    })
}

/// `SHA256-COMPAT.cwasm`, split; anything else in the directory is not an
/// entry.
fn parse_entry_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".cwasm")?;
    let (sha256, compat) = stem.split_once('-')?;
    let hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(sha256, 64) && hex(compat, 16)).then_some((sha256, compat))
}

/// The sidecar's name of an entry.
fn meta_name(entry: &str) -> String {
    format!("{}.json", entry.strip_suffix(".cwasm").unwrap_or(entry))
}

/// Marks a hit entry as used when its mark is older than the granularity,
/// and records where its plugin was seen then (in `sidecar`, as read for
/// this load). Failures only cost accuracy of `plugin cache list`.
fn mark_used(dir: &Dir, file: &fs::File, name: &str, source: &Path, mut sidecar: Meta) {
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
    // Opened read-only, the entry's times can still be set by its owner.
    if let Err(e) = file.set_times(fs::FileTimes::new().set_modified(now)) {
        tracing::debug!(path = %dir.path.join(name).display(), "plugin cache entry not marked used: {e}");
    }
    let source = absolute(source);
    if sidecar.source != source {
        sidecar.source = source;
        write_meta_quietly(dir, name, &sidecar);
    }
}

/// Writes the sidecar of the entry `name`; a failure only costs accuracy.
fn write_meta_quietly(dir: &Dir, name: &str, meta: &Meta) {
    let meta_name = meta_name(name);
    if let Err(e) = write_meta(&dir.fd, &meta_name, meta) {
        tracing::debug!(path = %dir.path.join(meta_name).display(), "plugin cache sidecar not written: {e}");
    }
}

/// The plugin's path as recorded: absolute, so that it means the same from
/// any working directory.
fn absolute(path: &Path) -> Option<PathBuf> {
    std::path::absolute(path).ok()
}

fn read_meta(dir: &OwnedFd, name: &str) -> Option<Meta> {
    let mut bytes = Vec::new();
    open_file(dir, name)
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_meta(dir: &OwnedFd, name: &str, meta: &Meta) -> std::io::Result<()> {
    replace(dir, ".meta-", name, |file| {
        serde_json::to_writer(&mut *file, meta)?;
        file.write_all(b"\n")
    })
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

/// Whether the entry `name` of `len` bytes, read through `read_at`, ends
/// in its magic and the digest of what comes before. Read in pieces
/// rather than mapped: the page cache's pages are never mapped into this
/// process, so a check costs its resident memory nothing.
fn checks_out(
    name: &str,
    len: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let trailer = (DIGEST_LEN + MAGIC.len()) as u64;
    let Some(payload) = len.checked_sub(trailer) else {
        return Ok(false);
    };
    let mut end = [0u8; DIGEST_LEN + MAGIC.len()];
    read_at(&mut end, payload)?;
    if end[DIGEST_LEN..] != MAGIC[..] {
        return Ok(false);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed_of(name));
    let mut piece = vec![0u8; 1 << 18];
    let mut at = 0;
    while at < payload {
        let take = piece.len().min((payload - at) as usize);
        read_at(&mut piece[..take], at)?;
        hasher.update(&piece[..take]);
        at += take as u64;
    }
    Ok(end[..DIGEST_LEN] == hasher.digest128().to_le_bytes())
}

fn seed_of(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// The digest of an entry's payload, seeded with its name: the same code
/// under another plugin's name does not check out.
fn digest_of(name: &str, payload: &[u8]) -> [u8; DIGEST_LEN] {
    xxhash_rust::xxh3::xxh3_128_with_seed(payload, seed_of(name)).to_le_bytes()
}

fn discard(dir: &OwnedFd, name: &str, path: &Path) {
    if let Err(e) = remove_at(dir, name)
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "plugin cache entry not removed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `entry`, whole, checks out under `name`.
    fn verified(name: &str, entry: &[u8]) -> bool {
        let read_at = |buf: &mut [u8], at: u64| {
            let at = at as usize;
            buf.copy_from_slice(&entry[at..at + buf.len()]);
            Ok(())
        };
        checks_out(name, entry.len() as u64, read_at).unwrap()
    }

    #[test]
    fn entries_verify_their_digest() {
        let name = "a.cwasm";
        // Longer than one piece read, and not a multiple of it.
        let payload: Vec<u8> = (0..(1 << 18) + 12_345).map(|i| (i % 251) as u8).collect();
        let mut entry = payload.clone();
        entry.extend_from_slice(&digest_of(name, &payload));
        entry.extend_from_slice(MAGIC);
        assert!(verified(name, &entry));

        for at in [0, 1 << 18, payload.len() - 1, payload.len()] {
            let mut flipped = entry.clone();
            flipped[at] ^= 1;
            assert!(!verified(name, &flipped), "{at}");
        }
        assert!(!verified(name, &entry[1..]));
        assert!(!verified(name, &entry[entry.len() - 20..]));
        assert!(!verified(name, b"\x7fELF"));
        // Another entry's bytes, whole, under this name.
        assert!(!verified("b.cwasm", &entry));
    }
}
