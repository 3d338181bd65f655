//! A bundle's config.json written by a container engine (podman,
//! containerd, CRI-O), as `specgate oci` reads it and writes it back.
//!
//! The engine's file may hold fields the spec model does not know (a newer
//! runtime-spec, an engine's extensions). They must reach the runtime
//! untouched, so the file is never re-serialised from the model: only what
//! the policy chain changed is patched into the engine's JSON, and a file
//! the chain left alone is not rewritten at all.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
    /// Reads `bundle/config.json`.
    pub fn read(bundle: &Path) -> Result<Self, ConfigError> {
        let path = bundle.join("config.json");
        let io = |source| ConfigError::Io {
            path: path.clone(),
            source,
        };
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut file = fs::File::open(&path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
        let raw: Value = serde_json::from_slice(&bytes).map_err(invalid)?;
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
    /// is unchanged (set members reordered count as unchanged). Returns the sha256 of the file the runtime will read.
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
/// so fields the model does not know survive; arrays of the same length
/// element by element; in a resized array (a mount added or removed),
/// objects found unchanged keep their original JSON.
fn patch(raw: &mut Value, before: &Value, after: &Value) {
    if before == after {
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
            if before.len() == after.len() {
                for ((raw, old), new) in raw.iter_mut().zip(before).zip(after) {
                    patch(raw, old, new);
                }
            } else {
                let mut unused: Vec<bool> = vec![true; before.len()];
                let patched = after
                    .iter()
                    .map(|new| {
                        let same = (0..before.len()).find(|&i| unused[i] && before[i] == *new);
                        // Scalars carry nothing unknown, and the model
                        // may order a set's (capabilities) differently.
                        match same.filter(|&i| raw[i].is_object()) {
                            Some(i) => {
                                unused[i] = false;
                                raw[i].clone()
                            }
                            None => new.clone(),
                        }
                    })
                    .collect();
                *raw = patched;
            }
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
}
