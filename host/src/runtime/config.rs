//! A bundle's config.json written by a container engine (podman,
//! containerd, CRI-O), as `specgate oci` reads it and writes it back.
//!
//! The engine's file may hold fields the spec model does not know (a newer
//! runtime-spec, an engine's extensions). They must reach the runtime
//! untouched, so the file is never re-serialised from the model: only what
//! the policy chain changed is patched into the engine's JSON, and a file
//! the chain left alone is not rewritten at all.
//!
//! The runtime reads the file with Go's decoder, which matches keys to
//! fields regardless of case and merges an object given twice into the
//! first. A file on which it and specgate could disagree (a key given
//! twice, or two keys, or a key and a known field, differing only in case)
//! is refused, so that the plugins always see what the runtime will run.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};
use serde::Deserialize;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The largest config.json, or exec process file, that is read: an
/// engine's is a few KiB, and a file past this is refused before it is
/// read into memory.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// Errors reading or replacing a bundle's config.json.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file operation failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a runtime spec.
    #[error("{}: not a valid OCI runtime config: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The path is not a regular file (a directory, a FIFO, a device).
    #[error("{}: not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_CONFIG_SIZE`].
    #[error("{}: {size} bytes, more than the {MAX_CONFIG_SIZE} read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or the bound when it grew while read.
        size: u64,
    },
    /// The file written back would not give the runtime the chain's spec.
    #[error(
        "{}: the file written differs from the policy chain's spec at {field}",
        path.display()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Where, as a JSON pointer.
        field: String,
    },
}

/// Every field name of the runtime-spec's Go types (specs-go, 1.3): a key
/// that is none of these but matches one when case is ignored is read by
/// the runtime as that field.
const SPEC_FIELDS: &[&str] = &[
    "DNSSearchList",
    "access",
    "action",
    "additionalGids",
    "affinity",
    "allow",
    "allowUnqualifiedDNSQuery",
    "allowedAddress",
    "ambient",
    "anet",
    "annotations",
    "apparmorProfile",
    "architectures",
    "args",
    "blockIO",
    "bounding",
    "bps",
    "burst",
    "capabilities",
    "cappedCPU",
    "cappedMemory",
    "cgroupsPath",
    "checkBeforeUpdate",
    "chflags",
    "class",
    "classID",
    "closID",
    "commandLine",
    "configureAllowedAddress",
    "consoleSize",
    "containerID",
    "count",
    "cpu",
    "cpus",
    "createContainer",
    "createRuntime",
    "credentialSpec",
    "cwd",
    "deadline",
    "defaultAction",
    "defaultErrnoRet",
    "defrouter",
    "destination",
    "deviceTree",
    "devices",
    "disableOOMKiller",
    "domain",
    "domainname",
    "dtdevs",
    "effective",
    "enableMonitoring",
    "endpointList",
    "enforceStatfs",
    "env",
    "errnoRet",
    "execCPUAffinity",
    "fileMode",
    "final",
    "firstGFN",
    "firstMFN",
    "flags",
    "format",
    "freebsd",
    "gid",
    "gidMappings",
    "group",
    "hard",
    "hcaHandles",
    "hcaObjects",
    "height",
    "hooks",
    "host",
    "hostID",
    "hostname",
    "hugepageLimits",
    "hwconfig",
    "hyperv",
    "hypervisor",
    "id",
    "idType",
    "idle",
    "ignoreFlushesDuringBoot",
    "image",
    "index",
    "inheritable",
    "initial",
    "initrd",
    "intelRdt",
    "interface",
    "ioPriority",
    "iomems",
    "iops",
    "ip4",
    "ip4Addr",
    "ip6",
    "ip6Addr",
    "irqs",
    "jail",
    "kernel",
    "kernelTCP",
    "l3CacheSchema",
    "layerFolders",
    "leafWeight",
    "limit",
    "limitpriv",
    "linkProtection",
    "linkname",
    "linux",
    "listenerMetadata",
    "listenerPath",
    "lowerLink",
    "macAddress",
    "major",
    "mask",
    "maskedPaths",
    "maxShmMemory",
    "maximum",
    "memBwSchema",
    "memory",
    "memoryPolicy",
    "mems",
    "milestone",
    "minor",
    "mlock",
    "mode",
    "mount",
    "mountLabel",
    "mounts",
    "name",
    "names",
    "namespaces",
    "nanosecs",
    "ncpus",
    "netDevices",
    "network",
    "networkNamespace",
    "networkSharedContainerName",
    "nice",
    "noNewPrivileges",
    "nodes",
    "nrMFNs",
    "ociVersion",
    "oomScoreAdj",
    "op",
    "options",
    "pageSize",
    "parameters",
    "parent",
    "path",
    "period",
    "permitted",
    "personality",
    "physical",
    "pids",
    "policy",
    "poststart",
    "poststop",
    "prestart",
    "priorities",
    "priority",
    "process",
    "quota",
    "quotas",
    "rate",
    "rawSockets",
    "rdma",
    "readonly",
    "readonlyPaths",
    "realtimePeriod",
    "realtimeRuntime",
    "reservation",
    "reservedPorts",
    "resources",
    "rlimits",
    "root",
    "rootfsPropagation",
    "runtime",
    "sandboxSize",
    "scheduler",
    "schemata",
    "seccomp",
    "secs",
    "selinuxLabel",
    "servicing",
    "setHostname",
    "shares",
    "size",
    "socketAf",
    "soft",
    "solaris",
    "source",
    "startContainer",
    "storage",
    "suser",
    "swap",
    "swappiness",
    "syscalls",
    "sysctl",
    "sysvmsg",
    "sysvsem",
    "sysvshm",
    "terminal",
    "throttleReadBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteBpsDevice",
    "throttleWriteIOPSDevice",
    "timeOffsets",
    "timeout",
    "type",
    "uid",
    "uidMappings",
    "umask",
    "unified",
    "useHierarchy",
    "user",
    "username",
    "utilityVMPath",
    "value",
    "valueTwo",
    "vcpus",
    "vm",
    "vnet",
    "vnetInterfaces",
    "weight",
    "weightDevice",
    "width",
    "windows",
    "zos",
];

/// The objects of a config.json whose keys are data (Go maps), not
/// fields: case there is the runtime's to keep.
const CONFIG_MAPS: &[&str] = &[
    "/annotations",
    "/linux/sysctl",
    "/linux/netDevices",
    "/linux/timeOffsets",
    "/linux/resources/rdma",
    "/linux/resources/unified",
];

/// A key as Go's decoder compares it with a field's name: case folded.
/// Upper then lower case folds more than Go's simple folding does (`ß`
/// and `ss`), which only refuses more.
fn fold(key: &str) -> String {
    key.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The known field a key would be read as, when it is not spelled as it.
fn case_variant_of(key: &str) -> Option<&'static str> {
    use std::sync::OnceLock;
    static FOLDED: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    let folded = FOLDED.get_or_init(|| SPEC_FIELDS.iter().map(|f| (fold(f), *f)).collect());
    folded
        .get(&fold(key))
        .copied()
        .filter(|field| *field != key)
}

/// A JSON pointer's segment for `key`.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads a JSON value, refusing what Go's decoder would read otherwise:
/// a key given twice, two keys equal but for case, and a key equal but
/// for case to a field of the spec (outside `maps`, whose keys are data).
struct Strict<'a> {
    /// Where the value is, as a JSON pointer from the document's root.
    at: String,
    /// The objects whose keys are data.
    maps: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Strict {
                at: format!("{}/{}", self.at, items.len()),
                maps: self.maps,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        use serde::de::Error;
        let data_keys = self.maps.contains(&self.at.as_str());
        let mut object = serde_json::Map::new();
        let mut folded: HashMap<String, String> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = format!("{}/{}", self.at, pointer_segment(&key));
            if let Some(earlier) = folded.insert(fold(&key), key.clone()) {
                return Err(if earlier == key {
                    A::Error::custom(format!("key {at} is given twice"))
                } else {
                    A::Error::custom(format!(
                        "keys {}/{} and {at} differ only in case, and the runtime reads them as one",
                        self.at,
                        pointer_segment(&earlier)
                    ))
                });
            }
            if !data_keys && let Some(field) = case_variant_of(&key) {
                return Err(A::Error::custom(format!(
                    "key {at} differs only in case from `{field}`, and the runtime reads it as that field"
                )));
            }
            let value = map.next_value_seed(Strict {
                at,
                maps: self.maps,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON strictly (see [`Strict`]); `maps` are the objects whose
/// keys are data.
fn parse_strict(bytes: &[u8], maps: &[&str]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        at: String::new(),
        maps,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A file's bytes and metadata, refused before it is read when it is not
/// a regular file or is larger than [`MAX_CONFIG_SIZE`]. Opened without
/// blocking, so that a FIFO in its place cannot hang the caller.
fn read_bounded(path: &Path) -> Result<(Vec<u8>, fs::Metadata), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ConfigError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > MAX_CONFIG_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: metadata.len(),
        });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // The bound holds even for a file that grows while it is read.
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: MAX_CONFIG_SIZE + 1,
        });
    }
    Ok((bytes, metadata))
}

/// An exec's process file (`runtime exec --process FILE`), read as the
/// runtime reads it, with the same refusals as a config.json.
#[derive(Debug)]
pub struct ProcessFile {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its JSON.
    pub raw: Value,
    /// The process it holds.
    pub process: Process,
}

impl ProcessFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let (bytes, _) = read_bounded(path)?;
        let raw = parse_strict(&bytes, &[]).map_err(invalid)?;
        let process = Process::deserialize(&raw).map_err(invalid)?;
        Ok(ProcessFile {
            bytes,
            raw,
            process,
        })
    }
}

/// A bundle's config.json as the engine wrote it, with the spec parsed
/// from it.
#[derive(Debug)]
pub struct BundleConfig {
    path: PathBuf,
    raw: Value,
    spec: Spec,
    sha256: String,
    mode: u32,
    owner: (u32, u32),
}

impl BundleConfig {
    /// Reads `bundle/config.json`, refusing a file the runtime could read
    /// otherwise (see the module's documentation).
    pub fn read(bundle: &Path) -> Result<Self, ConfigError> {
        let path = bundle.join("config.json");
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        };
        let (bytes, metadata) = read_bounded(&path)?;
        let raw = parse_strict(&bytes, CONFIG_MAPS).map_err(invalid)?;
        let spec = Spec::deserialize(&raw).map_err(invalid)?;
        Ok(BundleConfig {
            raw,
            spec,
            sha256: hex::encode(Sha256::digest(&bytes)),
            mode: metadata.permissions().mode() & 0o7777,
            owner: (metadata.uid(), metadata.gid()),
            path,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The spec the file holds.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Writes `spec` back: the differences between it and the spec as
    /// read are patched into the engine's JSON, which replaces the file
    /// atomically (a temporary file in the bundle, renamed over
    /// it) with the same mode and owner. Nothing is written when `spec`
    /// is unchanged (set members reordered count as unchanged). The bytes
    /// are parsed again before they replace the file: unless they give
    /// exactly `spec` (sets compared as sets), nothing is written and the
    /// first field that differs is named. Returns the sha256 of the file
    /// the runtime will read.
    pub fn write_back(&self, spec: &Spec) -> Result<String, ConfigError> {
        let io = |source| ConfigError::Io {
            path: self.path.clone(),
            source,
        };
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            path: self.path.clone(),
            message: e.to_string(),
        };
        if *spec == self.spec {
            return Ok(self.sha256.clone());
        }
        let model = |spec: &Spec| {
            let mut value = serde_json::to_value(spec).map_err(invalid)?;
            sort_capabilities(&mut value);
            Ok::<_, ConfigError>(value)
        };
        let (before, after) = (model(&self.spec)?, model(spec)?);
        if before == after {
            return Ok(self.sha256.clone());
        }
        let mut raw = self.raw.clone();
        patch(&mut raw, &before, &after);
        let mut bytes = serde_json::to_vec_pretty(&raw).map_err(invalid)?;
        bytes.push(b'\n');
        self.check_written(&bytes, spec, &after)?;

        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut file = tempfile::Builder::new()
            .prefix(".config.json.")
            .permissions(fs::Permissions::from_mode(self.mode))
            .tempfile_in(dir)
            .map_err(io)?;
        if nix::unistd::geteuid().as_raw() != self.owner.0
            || nix::unistd::getegid().as_raw() != self.owner.1
        {
            std::os::unix::fs::fchown(file.as_file(), Some(self.owner.0), Some(self.owner.1))
                .map_err(io)?;
        }
        // The umask narrowed the mode at creation; set it whole.
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(io)?;
        // Renamed whole, not synced: the runtime reads the file next, and
        // after a crash there is no container left to read it for.
        file.write_all(&bytes).map_err(io)?;
        file.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    }

    /// Fails unless `bytes`, read as the runtime will read them, give
    /// `spec`, whose model (capability sets sorted) is `model`.
    fn check_written(&self, bytes: &[u8], spec: &Spec, model: &Value) -> Result<(), ConfigError> {
        let mismatch = |field: String| ConfigError::Mismatch {
            path: self.path.clone(),
            field,
        };
        let written = parse_strict(bytes, CONFIG_MAPS)
            .and_then(|raw| Spec::deserialize(&raw))
            .map_err(|e| mismatch(format!("/ ({e})")))?;
        if written == *spec {
            return Ok(());
        }
        let mut written =
            serde_json::to_value(&written).map_err(|e| mismatch(format!("/ ({e})")))?;
        sort_capabilities(&mut written);
        Err(mismatch(
            first_difference(&written, model).unwrap_or_else(|| "/".to_string()),
        ))
    }
}

/// The first place, as a JSON pointer, where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value) -> Option<String> {
    if a == b {
        return None;
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let at = format!("/{}", pointer_segment(key));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y).map(|rest| {
                        format!("{at}{}", if rest == "/" { "" } else { rest.as_str() })
                    }),
                    _ => Some(at),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (x, y))| {
                first_difference(x, y)
                    .map(|rest| format!("/{i}{}", if rest == "/" { "" } else { rest.as_str() }))
            })
        }
        _ => Some("/".to_string()),
    }
}

/// Puts the capability sets, which the model holds unordered, in name
/// order: a set rebuilt with the same members is then no change, and a
/// changed set is written the same way every time.
fn sort_capabilities(spec: &mut Value) {
    if let Some(Value::Object(sets)) = spec.pointer_mut("/process/capabilities") {
        for set in sets.values_mut() {
            if let Value::Array(names) = set {
                names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
}

/// Applies to `raw` the differences from `before` to `after`, where
/// `before` is `raw` as the model sees it: objects are patched key by key,
/// so fields the model does not know survive. An array of scalars (a
/// capability set, mount options, paths) is written whole: the model may
/// hold it as a set, in another order and without duplicates, so its
/// elements need not match the file's one by one. In an array of objects
/// (mounts, namespaces, devices) an element found unchanged keeps its
/// original JSON, a changed one is patched in the element it was, and a
/// new one is the model's.
fn patch(raw: &mut Value, before: &Value, after: &Value) {
    if before == after {
        return;
    }
    let scalars = |v: &Value| {
        v.as_array()
            .is_some_and(|items| items.iter().all(|i| !i.is_object() && !i.is_array()))
    };
    if scalars(before) || scalars(after) || scalars(raw) {
        *raw = after.clone();
        return;
    }
    match (raw, before, after) {
        (Value::Object(raw), Value::Object(before), Value::Object(after)) => {
            for (key, value) in after {
                match (raw.get_mut(key), before.get(key)) {
                    (Some(raw_value), Some(old)) => patch(raw_value, old, value),
                    _ => {
                        raw.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in before.keys().filter(|k| !after.contains_key(*k)) {
                raw.remove(key);
            }
        }
        (Value::Array(raw), Value::Array(before), Value::Array(after))
            if raw.len() == before.len() =>
        {
            // Each new element takes the file's JSON of the element it is
            // (equal, or with the same destination, type or path: the same
            // mount, namespace or device changed), so that what the model
            // does not know stays with the element it belongs to.
            let mut unused: Vec<bool> = vec![true; before.len()];
            let mut take = |i: usize| {
                let free = unused[i];
                unused[i] = false;
                free
            };
            let matches: Vec<Option<usize>> = after
                .iter()
                .map(|new| (0..before.len()).find(|&i| before[i] == *new && take(i)))
                .collect();
            let patched = after
                .iter()
                .zip(matches)
                .map(|(new, same)| {
                    if let Some(i) = same {
                        return raw[i].clone();
                    }
                    let identity = |v: &Value| {
                        ["destination", "type", "path"]
                            .iter()
                            .find_map(|key| Some((*key, v.get(*key)?.clone())))
                    };
                    let own = identity(new).and_then(|id| {
                        (0..before.len())
                            .find(|&i| identity(&before[i]) == Some(id.clone()) && take(i))
                    });
                    match own {
                        Some(i) => {
                            let mut element = raw[i].clone();
                            patch(&mut element, &before[i], new);
                            element
                        }
                        None => new.clone(),
                    }
                })
                .collect();
            *raw = patched;
        }
        (raw, _, after) => *raw = after.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engine_config() -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "args": ["sh"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_NET_RAW"],
                    "effective": ["CAP_CHOWN", "CAP_NET_RAW"]
                },
                "engineExtension": {"kept": true}
            },
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "futureField": 1},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
            ],
            "annotations": {"io.kubernetes.pod.name": "web"},
            "futureTopLevel": "kept"
        })
    }

    fn bundle(config: &Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        dir
    }

    #[test]
    fn an_unchanged_spec_leaves_the_file_alone() {
        let dir = bundle(&engine_config());
        let path = dir.path().join("config.json");
        let before = fs::read(&path).unwrap();
        let config = BundleConfig::read(dir.path()).unwrap();
        let digest = config.write_back(&config.spec().clone()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(digest, hex::encode(Sha256::digest(&before)));
    }

    #[test]
    fn changes_are_patched_in_and_unknown_fields_survive() {
        let dir = bundle(&engine_config());
        let config = BundleConfig::read(dir.path()).unwrap();
        let mut spec = config.spec().clone();
        let process = spec.process_mut().as_mut().unwrap();
        let mut caps = process.capabilities().clone().unwrap();
        let kept: oci_spec::runtime::Capabilities =
            [oci_spec::runtime::Capability::Chown].into_iter().collect();
        caps.set_bounding(Some(kept.clone()));
        caps.set_effective(Some(kept));
        process.set_capabilities(Some(caps));
        let mut mounts = spec.mounts().clone().unwrap();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/tmp")
                .typ("tmpfs")
                .source("tmpfs")
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        let digest = config.write_back(&spec).unwrap();

        let path = dir.path().join("config.json");
        let bytes = fs::read(&path).unwrap();
        assert_eq!(digest, hex::encode(Sha256::digest(&bytes)));
        let written: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            written["process"]["capabilities"]["bounding"],
            json!(["CAP_CHOWN"])
        );
        assert_eq!(written["process"]["engineExtension"], json!({"kept": true}));
        assert_eq!(written["futureTopLevel"], "kept");
        assert_eq!(written["mounts"][0]["futureField"], 1);
        assert_eq!(written["mounts"][2]["destination"], "/tmp");
        assert_eq!(written["annotations"]["io.kubernetes.pod.name"], "web");
        // Nothing the model fills in by default was added.
        assert!(written["process"].get("terminal").is_none());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "config.json")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_removed_mount_keeps_the_others_as_written() {
        let mut raw = engine_config();
        let before = raw.clone();
        let mut after = raw.clone();
        after["mounts"].as_array_mut().unwrap().remove(1);
        // The model does not know `futureField`: it is absent from both.
        let strip = |v: &mut Value| {
            v["mounts"][0]
                .as_object_mut()
                .unwrap()
                .remove("futureField");
        };
        let (mut before, mut after) = (before, after);
        strip(&mut before);
        strip(&mut after);
        patch(&mut raw, &before, &after);
        assert_eq!(raw["mounts"].as_array().unwrap().len(), 1);
        assert_eq!(raw["mounts"][0]["futureField"], 1);
    }

    #[test]
    fn what_is_not_a_spec_is_refused_naming_the_file() {
        let dir = bundle(&json!({"ociVersion": "1.0.2", "process": {"args": 3}}));
        let err = BundleConfig::read(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("config.json: not a valid OCI runtime config"),
            "{err}"
        );
        let err = BundleConfig::read(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().ends_with("missing/config.json"), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("No such file"), "{cause}");
    }

    fn bundle_bytes(bytes: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), bytes).unwrap();
        dir
    }

    fn refusal(config: &str) -> String {
        BundleConfig::read(bundle_bytes(config).path())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn keys_the_runtime_reads_otherwise_are_refused_naming_them() {
        let beside = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0}},
            "Process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"]}}"#;
        let err = refusal(beside);
        assert!(
            err.contains("keys /process and /Process differ only in case"),
            "{err}"
        );
        let twice = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_KILL"]},
            "capabilities":{"effective":["CAP_SYS_ADMIN"]}}}"#;
        let err = refusal(twice);
        assert!(
            err.contains("key /process/capabilities is given twice"),
            "{err}"
        );
        // Alone, a key the runtime takes for a field is no better.
        let alone = r#"{"ociVersion":"1.0.2","PROCESS":{"cwd":"/","user":{"uid":0,"gid":0}}}"#;
        let err = refusal(alone);
        assert!(
            err.contains("key /PROCESS differs only in case from `process`"),
            "{err}"
        );
        // Go folds the long s and the Kelvin sign as well.
        let folded = "{\"ociVersion\":\"1.0.2\",\"process\":{\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0},\"capabilitie\u{17f}\":{}}}";
        let err = refusal(folded);
        assert!(
            err.contains("differs only in case from `capabilities`"),
            "{err}"
        );
        let deep = r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/a","Type":"bind"}]}"#;
        assert!(refusal(deep).contains("key /mounts/0/Type"), "{deep}");
        // Annotations are data: any key is the engine's.
        let data = r#"{"ociVersion":"1.0.2","annotations":{"Process":"x","a/b~":"y"}}"#;
        BundleConfig::read(bundle_bytes(data).path()).unwrap();
        let data_twice = r#"{"ociVersion":"1.0.2","annotations":{"a/b~":"x","a/b~":"y"}}"#;
        assert!(
            refusal(data_twice).contains("key /annotations/a~1b~0 is given twice"),
            "{data_twice}"
        );
        let process = r#"{"cwd":"/","user":{"uid":0,"gid":0},"Capabilities":{}}"#;
        let dir = bundle_bytes(process);
        let err = ProcessFile::read(&dir.path().join("config.json")).unwrap_err();
        assert!(err.to_string().contains("key /Capabilities"), "{err}");
    }

    #[test]
    fn what_is_not_a_small_regular_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = BundleConfig::read(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not a regular file", path.display())
        );
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let err = BundleConfig::read(dir.path()).unwrap_err();
        assert!(err.to_string().ends_with("not a regular file"), "{err}");
        fs::remove_dir(&path).unwrap();
        let file = fs::File::create(&path).unwrap();
        file.set_len(MAX_CONFIG_SIZE + 1).unwrap();
        let err = BundleConfig::read(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: {} bytes, more than the {MAX_CONFIG_SIZE} read",
                path.display(),
                MAX_CONFIG_SIZE + 1
            )
        );
    }

    fn set(names: &[&str]) -> Value {
        json!(names)
    }

    #[test]
    fn a_set_that_keeps_its_length_is_written_whole() {
        // The engine's order is not the model's: dropping CAP_SYS_ADMIN
        // and adding CAP_NET_BIND_SERVICE keeps the length.
        let mut config = engine_config();
        config["process"]["capabilities"]["bounding"] =
            set(&["CAP_SYS_ADMIN", "CAP_KILL", "CAP_CHOWN", "CAP_KILL"]);
        let dir = bundle(&config);
        let read = BundleConfig::read(dir.path()).unwrap();
        let mut spec = read.spec().clone();
        let process = spec.process_mut().as_mut().unwrap();
        let mut caps = process.capabilities().clone().unwrap();
        let mut bounding = caps.bounding().clone().unwrap();
        bounding.remove(&oci_spec::runtime::Capability::SysAdmin);
        bounding.insert(oci_spec::runtime::Capability::NetBindService);
        caps.set_bounding(Some(bounding));
        process.set_capabilities(Some(caps));
        read.write_back(&spec).unwrap();
        let written = read_json(dir.path());
        assert_eq!(
            written["process"]["capabilities"]["bounding"],
            set(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(
            written["process"]["capabilities"]["effective"],
            set(&["CAP_CHOWN", "CAP_NET_RAW"]),
            "untouched sets stay as written"
        );
    }

    fn read_json(dir: &Path) -> Value {
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap()
    }

    #[test]
    fn a_written_file_that_is_not_the_chains_spec_is_not_written() {
        let dir = bundle(&engine_config());
        let read = BundleConfig::read(dir.path()).unwrap();
        let before = fs::read(dir.path().join("config.json")).unwrap();
        let mut spec = read.spec().clone();
        spec.set_hostname(Some("chain".into()));
        let mut model = serde_json::to_value(&spec).unwrap();
        sort_capabilities(&mut model);
        // Bytes that lost the hostname the chain set.
        let bytes = serde_json::to_vec(&read.raw).unwrap();
        let err = read.check_written(&bytes, &spec, &model).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the file written differs from the policy chain's spec at /hostname",
                read.path().display()
            )
        );
        assert_eq!(fs::read(dir.path().join("config.json")).unwrap(), before);
    }

    #[test]
    fn mounts_keep_their_own_unknown_fields() {
        let mut raw = engine_config();
        let strip = |v: &Value| {
            let mut v = v.clone();
            v["mounts"][0]
                .as_object_mut()
                .unwrap()
                .remove("futureField");
            v
        };
        let before = strip(&raw);
        // The first mount replaced by another at its index, the second
        // one's options changed.
        let mut after = before.clone();
        after["mounts"][0] = json!({"destination": "/new", "type": "tmpfs", "source": "tmpfs"});
        after["mounts"][1]["options"] = json!(["nosuid", "ro"]);
        let mut raw2 = raw.clone();
        raw2["mounts"][1]["futureField"] = json!("second");
        let before2 = {
            let mut b = before.clone();
            b["mounts"][1]
                .as_object_mut()
                .unwrap()
                .remove("futureField");
            b
        };
        patch(&mut raw2, &before2, &after);
        assert!(raw2["mounts"][0].get("futureField").is_none(), "{raw2:#}");
        assert_eq!(raw2["mounts"][1]["futureField"], "second");
        assert_eq!(raw2["mounts"][1]["options"], json!(["nosuid", "ro"]));
        patch(&mut raw, &before, &before);
        assert_eq!(raw["mounts"][0]["futureField"], 1);
    }

    mod property {
        use super::*;
        use oci_spec::runtime::{Capability, MountBuilder};
        use proptest::prelude::*;

        const CAPS: &[&str] = &[
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_NET_RAW",
            "CAP_SYS_ADMIN",
            "CAP_NET_BIND_SERVICE",
            "CAP_SETUID",
            "CAP_MKNOD",
        ];

        /// A JSON value specgate does not model.
        fn unknown() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[a-z<>&é\"\\\\]{0,8}".prop_map(Value::from),
                Just(Value::Null),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("x[a-z]{1,5}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A capability array as an engine may write it: any order, with
        /// duplicates.
        fn cap_array() -> impl Strategy<Value = Vec<&'static str>> {
            prop::collection::vec(prop::sample::select(CAPS), 0..9)
        }

        #[derive(Debug, Clone)]
        struct Engine {
            config: Value,
            /// Where unknown fields were put: a JSON pointer to the
            /// object, the key, for mounts the destination.
            unknown: Vec<(String, String, Option<String>)>,
        }

        fn engine() -> impl Strategy<Value = Engine> {
            (
                prop::collection::vec(cap_array(), 5),
                prop::collection::btree_set("/m[a-z]{1,3}", 0..5),
                prop::collection::vec(("x[a-z]{1,6}", unknown()), 0..3),
                prop::collection::vec(("x[a-z]{1,6}", unknown()), 0..3),
                prop::collection::vec((any::<prop::sample::Index>(), "x[a-z]{1,6}", unknown()), 0..3),
                any::<prop::sample::Index>(),
            )
                .prop_map(|(sets, destinations, top, process, mount_fields, shuffle)| {
                    let mut config = json!({
                        "ociVersion": "1.0.2",
                        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                        "root": {"path": "rootfs"},
                    });
                    let mut capabilities = serde_json::Map::new();
                    for (set, names) in ["bounding", "effective", "inheritable", "permitted", "ambient"]
                        .iter()
                        .zip(&sets)
                    {
                        capabilities.insert(set.to_string(), json!(names));
                    }
                    config["process"]["capabilities"] = Value::Object(capabilities);
                    let mut mounts: Vec<Value> = destinations
                        .iter()
                        .map(|d| json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}))
                        .collect();
                    if !mounts.is_empty() {
                        let turn = shuffle.index(mounts.len());
                        mounts.rotate_left(turn);
                    }
                    let mut unknown = Vec::new();
                    for (key, value) in top {
                        config[&key] = value;
                        unknown.push((String::new(), key, None));
                    }
                    for (key, value) in process {
                        config["process"][&key] = value;
                        unknown.push(("/process".into(), key, None));
                    }
                    for (index, key, value) in mount_fields {
                        if mounts.is_empty() {
                            continue;
                        }
                        let i = index.index(mounts.len());
                        let destination = mounts[i]["destination"].as_str().unwrap().to_string();
                        mounts[i][&key] = value;
                        unknown.push(("/mounts".into(), key, Some(destination)));
                    }
                    config["mounts"] = Value::from(mounts);
                    Engine { config, unknown }
                })
        }

        /// What the chain decides: new members for each set (or the same),
        /// mounts removed and added.
        #[derive(Debug, Clone)]
        struct Outcome {
            sets: Vec<Option<Vec<&'static str>>>,
            removed: Vec<prop::sample::Index>,
            added: Vec<String>,
        }

        fn outcome() -> impl Strategy<Value = Outcome> {
            (
                prop::collection::vec(prop::option::of(cap_array()), 5),
                prop::collection::vec(any::<prop::sample::Index>(), 0..3),
                prop::collection::btree_set("/n[a-z]{1,3}", 0..3),
            )
                .prop_map(|(sets, removed, added)| Outcome {
                    sets,
                    removed,
                    added: added.into_iter().collect(),
                })
        }

        fn apply(spec: &mut Spec, outcome: &Outcome) {
            use crate::spec::caps::{CapSet, put};
            let process = spec.process_mut().as_mut().unwrap();
            let mut caps = process.capabilities().clone().unwrap();
            for (set, names) in CapSet::ALL.iter().zip(&outcome.sets) {
                if let Some(names) = names {
                    let members: std::collections::HashSet<Capability> = names
                        .iter()
                        .map(|n| crate::spec::caps::parse(n).unwrap())
                        .collect();
                    put(&mut caps, *set, members);
                }
            }
            process.set_capabilities(Some(caps));
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            for index in &outcome.removed {
                if !mounts.is_empty() {
                    mounts.remove(index.index(mounts.len()));
                }
            }
            for destination in &outcome.added {
                mounts.push(
                    MountBuilder::default()
                        .destination(destination)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .build()
                        .unwrap(),
                );
            }
            spec.set_mounts(Some(mounts));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            #[test]
            fn the_written_file_is_the_chains_spec_and_keeps_the_rest(
                engine in engine(),
                outcome in outcome(),
            ) {
                let dir = bundle(&engine.config);
                let read = BundleConfig::read(dir.path()).unwrap();
                let mut spec = read.spec().clone();
                apply(&mut spec, &outcome);
                read.write_back(&spec).unwrap();

                let again = BundleConfig::read(dir.path()).unwrap();
                prop_assert_eq!(again.spec(), &spec);
                let written = read_json(dir.path());
                let text = |v: &Value| serde_json::to_string(v).unwrap();
                for (at, key, destination) in &engine.unknown {
                    let original = match destination {
                        None => engine.config.pointer(at).unwrap()[key].clone(),
                        Some(d) => engine.config["mounts"].as_array().unwrap().iter()
                            .find(|m| m["destination"] == *d).unwrap()[key].clone(),
                    };
                    let now = match destination {
                        None => written.pointer(at).unwrap().get(key).cloned(),
                        Some(d) => {
                            let mount = written["mounts"].as_array().unwrap().iter()
                                .find(|m| m["destination"] == *d);
                            match mount {
                                // A removed mount takes its fields along.
                                None => continue,
                                Some(m) => m.get(key).cloned(),
                            }
                        }
                    };
                    prop_assert_eq!(now.as_ref().map(text), Some(text(&original)), "{} {}", at, key);
                }
                // No mount took another's unknown fields.
                for mount in written["mounts"].as_array().unwrap() {
                    let d = mount["destination"].as_str().unwrap();
                    let theirs = engine.config["mounts"].as_array().unwrap().iter()
                        .find(|m| m["destination"] == d);
                    for key in mount.as_object().unwrap().keys().filter(|k| k.starts_with('x')) {
                        prop_assert!(theirs.is_some_and(|m| m.get(key).is_some()), "{} on {}", key, d);
                    }
                }
            }
        }
    }
}
