//! Each ADD kept where a later DEL finds it: libcni's result cache,
//! `<cache dir>/results/<network>-<container id>-<ifname>`, one JSON
//! object of kind `cniCacheV1` per interface, with the network's
//! configuration and the ADD's result.
//!
//! A run that ends well deletes its networks itself, from memory, and
//! then its records. A run that is killed cannot: its guard, or
//! `specgate gc`, reads the records it left and DELs each network with
//! the configuration and result of its ADD (the configuration directory
//! may have changed or be gone by then). A record is written before its
//! ADD starts, so a run killed in the middle of an ADD leaves one too,
//! without a result (host-local releases a lease by container and
//! interface, bridge removes what it finds).
//!
//! Besides libcni's fields, a record names what specgate needs to DEL
//! after its run is gone (`specgate`, which libcni ignores): the run's
//! bundle, the plugin path, and the container's network namespace, by
//! its init's pid and start time and the namespace's own inode, so that
//! neither a reused pid nor a container that moved its init elsewhere
//! turns the DEL against another namespace.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::NetworkList;
use super::error::NetworkError;

/// libcni's default cache directory, under which `results/` holds the
/// records.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// The kind of a libcni result record.
const KIND: &str = "cniCacheV1";

/// How long a cleanup waits for plugins a killed run left running (an
/// ADD that goes on after its caller died) before it DELs anyway.
const PLUGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// One interface's record, as libcni writes it (`cniCacheV1`), with
/// specgate's own part.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Always `cniCacheV1`.
    pub kind: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The network's configuration list, as JSON bytes (base64 in the
    /// record, as Go encodes bytes).
    #[serde(with = "base64_bytes")]
    pub config: Vec<u8>,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The network's name.
    pub network_name: String,
    /// `CNI_ARGS`, as pairs; specgate passes none.
    #[serde(default)]
    pub cni_args: Vec<[String; 2]>,
    /// The ADD's result; none until the ADD succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What a DEL after the run needs; a record without it is not
    /// specgate's and is never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specgate: Option<RunRecord>,
}

/// specgate's part of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run's bundle: while it exists, its owner file says whether the
    /// run is alive; records are written after it is made and removed
    /// before it is.
    pub bundle: PathBuf,
    /// `CNI_PATH` of the ADD.
    pub plugin_path: Vec<PathBuf>,
    /// The container's network namespace.
    pub netns: NetnsRecord,
    /// The network namespace the plugins ran in (device and inode), where
    /// they made the host side (bridges, NAT rules): a DEL must run there
    /// too. Records of older versions have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins_netns: Option<(u64, u64)>,
}

/// The network namespace this process is in, as device and inode.
pub fn own_netns() -> Option<(u64, u64)> {
    let stat = nix::sys::stat::stat("/proc/self/ns/net").ok()?;
    Some((stat.st_dev, stat.st_ino))
}

/// A network namespace, as a process that is in it and the namespace's
/// inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetnsRecord {
    /// The container's init.
    pub pid: i32,
    /// Its start time (clock ticks since boot), against pid reuse.
    pub start_time: u64,
    /// The namespace file's device.
    pub dev: u64,
    /// The namespace file's inode.
    pub ino: u64,
}

impl NetnsRecord {
    /// The record of `netns`, the namespace of process `pid`, opened from
    /// `/proc/<pid>/ns/net`.
    pub fn of(pid: i32, netns: &OwnedFd) -> Result<Self, NetworkError> {
        let namespace = |source| NetworkError::Namespace { pid, source };
        let stat = nix::sys::stat::fstat(netns)
            .map_err(|e| namespace(std::io::Error::from_raw_os_error(e as i32)))?;
        let proc = std::fs::File::open(format!("/proc/{pid}")).map_err(namespace)?;
        let start_time = start_time(&proc).ok_or_else(|| {
            namespace(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it is gone",
            ))
        })?;
        Ok(NetnsRecord {
            pid,
            start_time,
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// Opens the namespace again, if the same process is still in the
    /// same namespace: through a descriptor of its /proc directory, which
    /// refers to that process only, so that a pid reused after the check
    /// opens nothing.
    pub fn reopen(&self) -> Option<OwnedFd> {
        let proc = std::fs::File::open(format!("/proc/{}", self.pid)).ok()?;
        if start_time(&proc)? != self.start_time {
            return None;
        }
        let netns = nix::fcntl::openat(
            &proc,
            "ns/net",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let stat = nix::sys::stat::fstat(&netns).ok()?;
        (stat.st_dev == self.dev && stat.st_ino == self.ino).then_some(netns)
    }
}

/// A process's start time in clock ticks since boot (field 22 of its
/// stat), read through a descriptor of its /proc directory; none for a
/// zombie.
fn start_time(proc: &std::fs::File) -> Option<u64> {
    let fd = nix::fcntl::openat(
        proc,
        "stat",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let stat = std::io::read_to_string(std::fs::File::from(fd)).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The records' directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl Default for ResultCache {
    fn default() -> Self {
        ResultCache::new(Path::new(DEFAULT_CACHE_DIR))
    }
}

impl ResultCache {
    /// The records under `cache_dir` (in its `results` directory).
    pub fn new(cache_dir: &Path) -> Self {
        ResultCache {
            dir: cache_dir.join("results"),
        }
    }

    /// Its `results` directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of `network` on `ifname` of `container_id`: libcni's
    /// name. A name that could leave the directory is refused.
    pub fn path(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<PathBuf, NetworkError> {
        let name = format!("{network}-{container_id}-{ifname}");
        if name.contains('/') || name.starts_with('.') || name.contains('\0') {
            return Err(NetworkError::Cache {
                path: self.dir.join(&name),
                reason: "the network's name, the container's id or the interface's name is not a file name".into(),
            });
        }
        Ok(self.dir.join(name))
    }

    /// Writes `entry` at `path`, replacing what was there at once (a
    /// reader sees the old record or the new one, never part of one).
    /// The directory is made, private, when missing; one that others may
    /// write is refused, as a record names programs a cleanup runs.
    pub fn write(&self, path: &Path, entry: &Entry) -> Result<(), NetworkError> {
        let failed = |source: std::io::Error| NetworkError::Cache {
            path: path.to_path_buf(),
            reason: source.to_string(),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(failed)?;
        if let Some(reason) = untrusted(&self.dir) {
            return Err(NetworkError::Cache {
                path: self.dir.clone(),
                reason,
            });
        }
        let json = serde_json::to_vec(entry).map_err(|e| failed(e.into()))?;
        let tmp = temporary(path);
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(failed)?;
        file.write_all(&json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .map_err(failed)
    }

    /// Rewrites the record at `path`, which [`ResultCache::write`] made,
    /// with `entry`, in place: one write at offset 0, padded with spaces
    /// (JSON whitespace) to at least the old length, so that a reader
    /// sees either record whole (a write of under a page that no signal
    /// can cut short). Replacing the file instead, by a rename over it,
    /// has ext4 start writing it back at once, and the unlink at the
    /// run's end then waits for that write: milliseconds on every
    /// networked run.
    pub fn update(&self, path: &Path, entry: &Entry) -> Result<(), NetworkError> {
        use std::os::unix::fs::FileExt;
        let failed = |source: std::io::Error| NetworkError::Cache {
            path: path.to_path_buf(),
            reason: source.to_string(),
        };
        let mut json = serde_json::to_vec(entry).map_err(|e| failed(e.into()))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(failed)?;
        let old = file.metadata().map_err(failed)?.len();
        let length = usize::try_from(old).unwrap_or(usize::MAX);
        if json.len() < length {
            json.resize(length, b' ');
        }
        file.write_all_at(&json, 0).map_err(failed)
    }

    /// Removes the record at `path` (and a temporary copy a killed write
    /// may have left).
    pub fn remove(&self, path: &Path) {
        let _ = std::fs::remove_file(temporary(path));
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove the CNI result record {}: {e}",
                path.display()
            );
        }
    }

    /// specgate's records, those of `container_id` only when given: the
    /// files of the directory that this user owns and that nobody else may
    /// write, which parse as a record with specgate's part. None when the
    /// directory is missing or others may write it.
    pub fn entries(&self, container_id: Option<&str>) -> Vec<(PathBuf, Entry)> {
        if untrusted(&self.dir).is_some() {
            return Vec::new();
        }
        let Ok(list) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let marker = container_id.map(|id| format!("-{id}-"));
        let mut entries: Vec<(PathBuf, Entry)> = list
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && marker.as_ref().is_none_or(|m| name.contains(m.as_str()))
            })
            .filter_map(|e| {
                let path = e.path();
                let entry = read(&path)?;
                (entry.kind == KIND
                    && entry.specgate.is_some()
                    && container_id.is_none_or(|id| entry.container_id == id))
                .then_some((path, entry))
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }
}

/// The temporary name `path` is written under before it is renamed.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Why a file or directory this user did not make alone is not to be
/// trusted: it is not this user's, or others may write it.
fn untrusted(path: &Path) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    let uid = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        Some("a symbolic link".into())
    } else if meta.uid() != uid {
        Some(format!("owned by uid {}, not {uid}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Reads a record that this user owns and only this user may write.
fn read(path: &Path) -> Option<Entry> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file()
        || meta.uid() != nix::unistd::geteuid().as_raw()
        || meta.mode() & 0o022 != 0
        || meta.len() > 1 << 20
    {
        tracing::debug!(
            "{}: not a record of this user's; left alone",
            path.display()
        );
        return None;
    }
    serde_json::from_reader(std::io::BufReader::new(file))
        .inspect_err(|e| tracing::debug!("{}: {e}", path.display()))
        .ok()
}

impl Entry {
    /// The record of `list` on `ifname` of `container_id`, before its ADD.
    pub fn new(list: &NetworkList, container_id: &str, ifname: &str, run: RunRecord) -> Self {
        let mut config = serde_json::Map::new();
        config.insert("cniVersion".into(), list.cni_version.clone().into());
        config.insert("name".into(), list.name.clone().into());
        config.insert(
            "plugins".into(),
            Value::Array(list.plugins.iter().cloned().map(Value::Object).collect()),
        );
        Entry {
            kind: KIND.into(),
            container_id: container_id.into(),
            config: serde_json::to_vec(&config).unwrap_or_default(),
            if_name: ifname.into(),
            network_name: list.name.clone(),
            cni_args: Vec::new(),
            result: None,
            specgate: Some(run),
        }
    }

    /// The network the record was written for, its configuration read
    /// back as a list from `path` (the record's file, which errors name).
    pub fn network(&self, path: &Path) -> Result<NetworkList, NetworkError> {
        super::config::parse(path, self.config.clone(), true)
    }
}

/// Whether a process other than this one still runs a plugin for
/// `container_id` (its environment holds `CNI_CONTAINERID=<id>`, which
/// plugins pass on to the plugins they delegate to, such as IPAM).
fn plugins_running(container_id: &str) -> bool {
    let needle = format!("CNI_CONTAINERID={container_id}\0");
    let me = std::process::id().to_string();
    let Ok(list) = std::fs::read_dir("/proc") else {
        return false;
    };
    list.flatten()
        .filter(|e| {
            let name = e.file_name();
            name != me.as_str() && name.as_encoded_bytes().iter().all(u8::is_ascii_digit)
        })
        .filter_map(|e| std::fs::read(e.path().join("environ")).ok())
        .any(|environ| {
            environ
                .split_inclusive(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
        })
}

/// Waits, up to [`PLUGIN_WAIT`], until no plugin for `container_id` runs:
/// an ADD a killed run started goes on without it, and a DEL that came
/// first would leave what the ADD makes after it.
pub fn wait_for_plugins(container_id: &str) {
    let started = std::time::Instant::now();
    while plugins_running(container_id) {
        if started.elapsed() > PLUGIN_WAIT {
            tracing::warn!(
                "CNI plugins for {container_id} still run after {PLUGIN_WAIT:?}; deleting its networks anyway"
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What the records of a dead run need to DEL its networks: the records,
/// and the container's namespace when it still exists.
#[derive(Debug)]
pub struct Leftovers {
    entries: Vec<(PathBuf, Entry)>,
    cache: ResultCache,
    netns: Option<OwnedFd>,
}

impl Leftovers {
    /// The records `container_id` left in `cache`, and its network
    /// namespace: `held` when it is the one recorded (the run handed it
    /// to its watcher), else opened now through the recorded init. Call
    /// this before the container is deleted, which ends the namespace
    /// unless something else holds it.
    pub fn of(cache: &ResultCache, container_id: &str, held: Option<OwnedFd>) -> Self {
        let entries = cache.entries(Some(container_id));
        let records: Vec<&NetnsRecord> = entries
            .iter()
            .filter_map(|(_, e)| e.specgate.as_ref().map(|run| &run.netns))
            .collect();
        let netns = held
            .filter(|fd| {
                nix::sys::stat::fstat(fd).is_ok_and(|stat| {
                    records
                        .iter()
                        .any(|r| (r.dev, r.ino) == (stat.st_dev, stat.st_ino))
                })
            })
            .or_else(|| records.iter().find_map(|r| r.reopen()));
        Leftovers {
            entries,
            cache: cache.clone(),
            netns,
        }
    }

    /// The records in `cache` of runs whose bundle in `state_dir` is
    /// gone (their runs removed them, or a killed cleanup did, but their
    /// DEL failed or never ran), grouped by container.
    pub fn orphans(cache: &ResultCache, state_dir: &Path) -> Vec<Self> {
        let mut by_container: Vec<Leftovers> = Vec::new();
        for (path, entry) in cache.entries(None) {
            let Some(run) = &entry.specgate else { continue };
            if run.bundle.parent() != Some(state_dir) || run.bundle.exists() {
                continue;
            }
            match by_container
                .iter_mut()
                .find(|l| l.container_id() == Some(&entry.container_id))
            {
                Some(leftovers) => leftovers.entries.push((path, entry)),
                None => by_container.push(Leftovers {
                    netns: run.netns.reopen(),
                    entries: vec![(path, entry)],
                    cache: cache.clone(),
                }),
            }
        }
        by_container
    }

    /// Whether a record's plugins ran in another network namespace than
    /// this process's: a DEL from here would undo the container's side
    /// and the lease, but leave the host side (NAT rules) where it was
    /// made. Such runs are left for a cleanup in their own namespace.
    pub fn added_elsewhere(&self) -> bool {
        let here = own_netns();
        self.entries.iter().any(|(_, e)| {
            e.specgate
                .as_ref()
                .and_then(|run| run.plugins_netns)
                .is_some_and(|there| Some(there) != here)
        })
    }

    /// The container these records are of.
    pub fn container_id(&self) -> Option<&str> {
        self.entries.first().map(|(_, e)| e.container_id.as_str())
    }

    /// DELs every network recorded, last interface first, with the
    /// configuration and result of its ADD, once no plugin of the
    /// container runs any more; removes each record whose DEL succeeded
    /// and keeps the others for a later `specgate gc`. Returns whether
    /// every DEL succeeded.
    pub fn release(mut self) -> bool {
        let Some(container_id) = self.container_id().map(str::to_string) else {
            return true;
        };
        wait_for_plugins(&container_id);
        let netns_path = match &self.netns {
            Some(fd) => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            )),
            // The namespace is gone, and with it the container's side of
            // every interface: plugins then release what is outside it
            // (the CNI spec's DEL without a namespace).
            None => PathBuf::new(),
        };
        // Interfaces were added if0, if1, ...: deleted in reverse.
        self.entries
            .sort_by_key(|(_, e)| std::cmp::Reverse(interface_number(&e.if_name)));
        let mut clean = true;
        for (path, entry) in &self.entries {
            let Some(run) = &entry.specgate else { continue };
            let list = match entry.network(path) {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!("{e}");
                    clean = false;
                    continue;
                }
            };
            let invocation = super::plugin::Invocation {
                container_id: &container_id,
                netns: &netns_path,
                ifname: &entry.if_name,
                search_path: &run.plugin_path,
            };
            if super::plugin::del(
                &list,
                &invocation,
                entry.result.as_ref(),
                tracing::Level::WARN,
            ) {
                self.cache.remove(path);
            } else {
                clean = false;
            }
        }
        clean
    }
}

/// The number of interface `ifN`, for ordering.
fn interface_number(ifname: &str) -> u64 {
    ifname
        .strip_prefix("if")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Bytes as Go's encoding/json writes them: standard base64 with padding.
mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        for chunk in text.chunks(4) {
            let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
            if padding > 2 {
                return None;
            }
            let mut n = 0u32;
            for &c in &chunk[..4 - padding] {
                let value = ALPHABET.iter().position(|&a| a == c)?;
                n = (n << 6) | value as u32;
            }
            n <<= 6 * padding as u32;
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - padding]);
        }
        Some(out)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("not base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_base64_as_go_writes_them() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"{\"name\":\"n\"}", "eyJuYW1lIjoibiJ9"),
        ] {
            assert_eq!(base64_bytes::encode(bytes), text);
            assert_eq!(base64_bytes::decode(text).as_deref(), Some(bytes));
        }
        assert_eq!(base64_bytes::decode("Zm9"), None);
        assert_eq!(base64_bytes::decode("Zm*v"), None);
    }

    fn list() -> NetworkList {
        super::super::config::parse(
            Path::new("/etc/cni/net.d/10-t.conflist"),
            br#"{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge","bridge":"b0"},{"type":"tuning"}]}"#.to_vec(),
            true,
        )
        .unwrap()
    }

    fn run_record(bundle: &Path) -> RunRecord {
        RunRecord {
            bundle: bundle.to_path_buf(),
            plugin_path: vec!["/usr/lib/cni".into()],
            netns: NetnsRecord {
                pid: 1,
                start_time: 0,
                dev: 0,
                ino: 0,
            },
            plugins_netns: own_netns(),
        }
    }

    #[test]
    fn a_record_is_libcnis_and_gives_the_network_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let path = cache.path("t", "c1", "if0").unwrap();
        assert_eq!(path, dir.path().join("results/t-c1-if0"));
        let mut entry = Entry::new(&list(), "c1", "if0", run_record(Path::new("/run/x/c1")));
        cache.write(&path, &entry).unwrap();
        entry.result = Some(serde_json::json!({"cniVersion":"1.0.0","ips":[]}));
        cache.update(&path, &entry).unwrap();
        // A shorter record is padded: nothing of the longer one is left.
        let long = std::fs::metadata(&path).unwrap().len();
        let mut short = entry.clone();
        short.result = None;
        cache.update(&path, &short).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), long);
        let read_back: Entry = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(read_back.result.is_none());
        cache.update(&path, &entry).unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["kind"], "cniCacheV1");
        assert_eq!(json["containerId"], "c1");
        assert_eq!(json["ifName"], "if0");
        assert_eq!(json["networkName"], "t");
        assert_eq!(json["cniArgs"], serde_json::json!([]));
        assert_eq!(json["result"]["ips"], serde_json::json!([]));
        let config = base64_bytes::decode(json["config"].as_str().unwrap()).unwrap();
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["plugins"][1]["type"], "tuning");
        let mode = std::fs::metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(cache.dir()).unwrap().mode() & 0o777,
            0o700
        );

        let found = cache.entries(Some("c1"));
        assert_eq!(found.len(), 1);
        let network = found[0].1.network(&found[0].0).unwrap();
        assert_eq!(network.plugins, list().plugins);
        assert_eq!(network.name, "t");
        assert!(cache.entries(Some("c")).is_empty());
        cache.remove(&path);
        assert!(cache.entries(None).is_empty());
    }

    #[test]
    fn records_that_are_not_specgates_or_that_others_may_write_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let ours = cache.path("t", "c1", "if0").unwrap();
        cache
            .write(
                &ours,
                &Entry::new(&list(), "c1", "if0", run_record(dir.path())),
            )
            .unwrap();
        // libcni's own record of another container.
        let mut theirs = Entry::new(&list(), "c2", "eth0", run_record(dir.path()));
        theirs.specgate = None;
        std::fs::write(
            cache.path("t", "c2", "eth0").unwrap(),
            serde_json::to_vec(&theirs).unwrap(),
        )
        .unwrap();
        // A record others may write could name any program to run.
        let writable = cache.path("t", "c3", "if0").unwrap();
        cache
            .write(
                &writable,
                &Entry::new(&list(), "c3", "if0", run_record(dir.path())),
            )
            .unwrap();
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
        let linked = cache.path("t", "c4", "if0").unwrap();
        std::os::unix::fs::symlink(&ours, &linked).unwrap();
        let found: Vec<String> = cache
            .entries(None)
            .into_iter()
            .map(|(_, e)| e.container_id)
            .collect();
        assert_eq!(found, ["c1"]);

        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(cache.entries(None).is_empty());
        let error = cache
            .write(
                &ours,
                &Entry::new(&list(), "c1", "if0", run_record(dir.path())),
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("writable by others"), "{error}");
    }

    #[test]
    fn a_name_that_leaves_the_directory_is_refused() {
        let cache = ResultCache::new(Path::new("/var/lib/cni"));
        for (network, id) in [("../x", "c"), ("n", "a/b"), (".", "c")] {
            let error = cache.path(network, id, "if0").unwrap_err().to_string();
            assert!(error.contains("not a file name"), "{error}");
        }
    }

    #[test]
    fn a_namespace_is_reopened_only_while_its_process_lives_in_it() {
        let pid = std::process::id() as i32;
        let netns: OwnedFd = std::fs::File::open("/proc/self/ns/net").unwrap().into();
        let record = NetnsRecord::of(pid, &netns).unwrap();
        let again = record.reopen().unwrap();
        let (a, b) = (
            nix::sys::stat::fstat(&netns).unwrap(),
            nix::sys::stat::fstat(&again).unwrap(),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        // Another start time: the pid was reused.
        let reused = NetnsRecord {
            start_time: record.start_time + 1,
            ..record
        };
        assert!(reused.reopen().is_none());
        // Another namespace: the process moved.
        let moved = NetnsRecord {
            ino: record.ino + 1,
            ..record
        };
        assert!(moved.reopen().is_none());
        // A process that is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_pid = child.id() as i32;
        child.wait().unwrap();
        let gone = NetnsRecord {
            pid: child_pid,
            ..record
        };
        assert!(gone.reopen().is_none());
    }
}
