//! Where a policy's plugins come from, and whether they are trusted.
//!
//! Two moments. Getting ready ([`fetch`], `specgate plugin compile
//! --policy`, or `plugin pull`): registry plugins missing from the store
//! are pulled, and signatures are checked (cosign's in the registry, or
//! a file's detached `FILE.sig`), each verification recorded in the store
//! under the digest and the key's fingerprint. Loading ([`resolve`] and
//! [`check`], every run): no network at all. A registry plugin is found in
//! the store by its digest, or fails naming the command to run; a plugin
//! that must be signed needs a recorded verification of its digest by
//! one of its keys, with the annotations asked for, or fails naming the
//! keys and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::file::{Mode, PluginEntry, Verify};
use super::registry::{PluginRef, Registry, RegistryError};
use super::signature::{self, PublicKey, SignatureError};
use super::store::{Store, StoreError, Verification};

/// Errors finding or trusting a policy's plugins.
#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    /// A registry plugin, but no store (no cache directory).
    #[error(
        "plugin {plugin}: {reference} comes from a registry, and the plugin store it is pulled into lives in the cache directory, which is off (--no-cache)"
    )]
    NoStore {
        /// The plugin.
        plugin: String,
        /// Its reference.
        reference: String,
    },
    /// A tag without a digest, in enforce mode.
    #[error(
        "plugin {plugin}: {reference} is a tag, which can move; in enforce mode a plugin is pinned by digest (`specgate plugin pull {reference}` prints it)"
    )]
    Tag {
        /// The plugin.
        plugin: String,
        /// Its reference.
        reference: String,
    },
    /// A registry plugin that is not in the store.
    #[error(
        "plugin {plugin}: {reference} is not in the plugin store ({store}); run `specgate plugin pull {reference}`{}",
        policy.as_ref().map(|p| format!(" or `specgate plugin compile --policy {}`", p.display())).unwrap_or_default()
    )]
    NotPulled {
        /// The plugin.
        plugin: String,
        /// Its reference.
        reference: String,
        /// The store.
        store: PathBuf,
        /// The policy file naming it.
        policy: Option<PathBuf>,
    },
    /// The store failed, or holds something tampered with.
    #[error("plugin {plugin}: {source}")]
    Store {
        /// The plugin.
        plugin: String,
        /// Why.
        source: StoreError,
    },
    /// A key could not be read.
    #[error("plugin {plugin}: {source}")]
    Key {
        /// The plugin.
        plugin: String,
        /// Why.
        source: SignatureError,
    },
    /// No verification of the plugin by any of its keys.
    #[error("plugin {plugin} ({digest}) must be signed by {}: {reason}", keys.iter().map(|k| k.display().to_string()).collect::<Vec<_>>().join(" or "))]
    Unverified {
        /// The plugin.
        plugin: String,
        /// Its digest (its manifest's, for a registry plugin).
        digest: String,
        /// The keys that would do.
        keys: Vec<PathBuf>,
        /// Why none does.
        reason: String,
    },
    /// The registry failed or sent what is refused.
    #[error("plugin {plugin}: {source}")]
    Registry {
        /// The plugin.
        plugin: String,
        /// Why.
        source: RegistryError,
    },
    /// A plugin file could not be read to check its signature.
    #[error("plugin {plugin}: {}: {source}", path.display())]
    Read {
        /// The plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Resolves each registry plugin of `entries` to its component in the
/// store: `path` becomes the store's file, `sha256` its digest (checked
/// at load, as a file's pin is). Needs no network. `policy` is named in
/// the error of a plugin not pulled yet.
pub fn resolve(
    entries: &mut [PluginEntry],
    store: Option<&Store>,
    mode: Mode,
    policy: Option<&Path>,
    limit: u64,
) -> Result<(), SupplyError> {
    for entry in entries.iter_mut() {
        let Some(reference) = entry.reference.clone() else {
            continue;
        };
        let Some(store) = store else {
            return Err(SupplyError::NoStore {
                plugin: entry.name.clone(),
                reference,
            });
        };
        let hex = manifest_hex(entry, store, mode, policy)?;
        let stored = |source| SupplyError::Store {
            plugin: entry.name.clone(),
            source,
        };
        let not_pulled = || SupplyError::NotPulled {
            plugin: entry.name.clone(),
            reference: reference.clone(),
            store: store.dir().to_path_buf(),
            policy: policy.map(Path::to_path_buf),
        };
        let artifact = store
            .artifact(&hex, limit)
            .map_err(stored)?
            .ok_or_else(not_pulled)?;
        if !store.has_blob(&artifact.layer_sha256).map_err(stored)? {
            return Err(not_pulled());
        }
        entry.path = store.blob_path(&artifact.layer_sha256);
        entry.sha256 = Some(artifact.layer_sha256);
    }
    Ok(())
}

/// The manifest sha256 a registry entry stands for: its digest, or in
/// monitor mode the one its tag was last pulled as.
fn manifest_hex(
    entry: &PluginEntry,
    store: &Store,
    mode: Mode,
    policy: Option<&Path>,
) -> Result<String, SupplyError> {
    let reference = entry.reference.clone().unwrap_or_default();
    let parsed = PluginRef::parse(&reference).map_err(|source| SupplyError::Registry {
        plugin: entry.name.clone(),
        source,
    })?;
    if let Some(hex) = parsed.digest_hex() {
        return Ok(hex.to_string());
    }
    if mode == Mode::Enforce {
        return Err(SupplyError::Tag {
            plugin: entry.name.clone(),
            reference,
        });
    }
    store
        .tag(&reference)
        .map_err(|source| SupplyError::Store {
            plugin: entry.name.clone(),
            source,
        })?
        .ok_or_else(|| SupplyError::NotPulled {
            plugin: entry.name.clone(),
            reference,
            store: store.dir().to_path_buf(),
            policy: policy.map(Path::to_path_buf),
        })
}

/// The digest whose signature an entry's plugin is judged by: its
/// manifest's for a registry plugin (resolved), else its file's sha256.
pub fn subject(
    entry: &PluginEntry,
    file_sha256: &str,
    store: Option<&Store>,
    mode: Mode,
) -> Result<String, SupplyError> {
    match (&entry.reference, store) {
        (Some(_), Some(store)) => Ok(format!(
            "sha256:{}",
            manifest_hex(entry, store, mode, None)?
        )),
        _ => Ok(format!("sha256:{file_sha256}")),
    }
}

/// The recorded verification that lets `entry` (whose digest is
/// `digest`) load, or why there is none. Reads the keys (small files)
/// and the store; verifies nothing.
pub fn check(
    entry: &PluginEntry,
    verify: &Verify,
    digest: &str,
    store: Option<&Store>,
) -> Result<Verification, SupplyError> {
    let unverified = |reason: String| SupplyError::Unverified {
        plugin: entry.name.clone(),
        digest: digest.to_string(),
        keys: verify.keys.clone(),
        reason,
    };
    let Some(store) = store else {
        return Err(unverified(
            "verifications are recorded in the plugin store, under the cache directory, which is off (--no-cache)".into(),
        ));
    };
    let mut reasons = Vec::new();
    for path in &verify.keys {
        let key = PublicKey::load(path).map_err(|source| SupplyError::Key {
            plugin: entry.name.clone(),
            source,
        })?;
        let record = store
            .verification(digest, &key.fingerprint)
            .map_err(|source| SupplyError::Store {
                plugin: entry.name.clone(),
                source,
            })?;
        match record {
            None => reasons.push(format!("no signature by {} was verified", path.display())),
            Some(record) => match missing_annotations(&verify.annotations, &record.annotations) {
                None => return Ok(record),
                Some(missing) => reasons.push(format!(
                    "the signature by {} lacks {missing}",
                    path.display()
                )),
            },
        }
    }
    Err(unverified(format!(
        "{}; `specgate plugin compile --policy FILE` verifies and records it{}",
        reasons.join("; "),
        if entry.reference.is_some() {
            ""
        } else {
            " from FILE.sig"
        }
    )))
}

/// The annotations asked for that a signature does not carry with the
/// same value, said; `None` when it carries all.
fn missing_annotations(
    wanted: &BTreeMap<String, String>,
    carried: &BTreeMap<String, String>,
) -> Option<String> {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| carried.get(*k) != Some(*v))
        .map(|(k, v)| match carried.get(k) {
            Some(other) => format!("annotation {k}={v} (it has {k}={other})"),
            None => format!("annotation {k}={v}"),
        })
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// What [`fetch`] did for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The plugin.
    pub plugin: String,
    /// Pulled now (else already in the store, or a file).
    pub pulled: bool,
    /// The keys whose signatures were verified now.
    pub verified: Vec<PathBuf>,
}

/// Gets `entries` ready to load: pulls registry plugins missing from the
/// store, verifies signatures not yet recorded, then checks each as a
/// load will. `registry` is made only when something must be fetched.
pub fn fetch(
    entries: &[PluginEntry],
    store: &Store,
    mode: Mode,
    limit: u64,
    registry: &mut dyn FnMut() -> Result<Registry, RegistryError>,
) -> Result<Vec<Fetched>, SupplyError> {
    let mut client: Option<Registry> = None;
    let mut done = Vec::new();
    for entry in entries {
        let registry_error = |source| SupplyError::Registry {
            plugin: entry.name.clone(),
            source,
        };
        let mut fetched = Fetched {
            plugin: entry.name.clone(),
            pulled: false,
            verified: Vec::new(),
        };
        let digest = match &entry.reference {
            Some(reference) => {
                let parsed = PluginRef::parse(reference).map_err(registry_error)?;
                let mut one = [entry.clone()];
                match resolve(&mut one, Some(store), mode, None, limit) {
                    Ok(()) => {}
                    Err(SupplyError::NotPulled { .. }) => {
                        let client = get(&mut client, registry).map_err(registry_error)?;
                        client.pull(&parsed, store, limit).map_err(registry_error)?;
                        fetched.pulled = true;
                    }
                    Err(e) => return Err(e),
                }
                subject(entry, "", Some(store), mode)?
            }
            None => {
                let bytes =
                    crate::sys::bounded::read_bounded(&entry.path, limit).map_err(|source| {
                        SupplyError::Read {
                            plugin: entry.name.clone(),
                            path: entry.path.clone(),
                            source,
                        }
                    })?;
                format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
            }
        };
        if let Some(verify) = &entry.verify
            && check(entry, verify, &digest, Some(store)).is_err()
        {
            let keys = verify
                .keys
                .iter()
                .map(|k| PublicKey::load(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| SupplyError::Key {
                    plugin: entry.name.clone(),
                    source,
                })?;
            let records = match &entry.reference {
                Some(reference) => {
                    let parsed = PluginRef::parse(reference).map_err(registry_error)?;
                    let client = get(&mut client, registry).map_err(registry_error)?;
                    client
                        .verify(&parsed, &digest, &keys, store)
                        .map_err(registry_error)?
                }
                None => verify_file(entry, &digest, &keys, store, limit)?,
            };
            fetched.verified = records.into_iter().map(|r| r.key_path).collect();
            check(entry, verify, &digest, Some(store))?;
        }
        done.push(fetched);
    }
    Ok(done)
}

fn get<'a>(
    client: &'a mut Option<Registry>,
    make: &mut dyn FnMut() -> Result<Registry, RegistryError>,
) -> Result<&'a Registry, RegistryError> {
    if client.is_none() {
        *client = Some(make()?);
    }
    Ok(client.as_ref().expect("made above"))
}

/// Checks a plugin file's detached signature, FILE.sig, against `keys`,
/// over the file's bytes of digest `digest` (read again here, and
/// compared), and records each key it verifies with.
fn verify_file(
    entry: &PluginEntry,
    digest: &str,
    keys: &[PublicKey],
    store: &Store,
    limit: u64,
) -> Result<Vec<Verification>, SupplyError> {
    let read = |path: &Path, source| SupplyError::Read {
        plugin: entry.name.clone(),
        path: path.to_path_buf(),
        source,
    };
    let unverified = |reason: String| SupplyError::Unverified {
        plugin: entry.name.clone(),
        digest: digest.to_string(),
        keys: keys.iter().map(|k| k.path.clone()).collect(),
        reason,
    };
    let sig_path = signature_path(&entry.path);
    let signature = match signature::read_signature(&sig_path) {
        Ok(signature) => signature,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unverified(format!(
                "no signature file {}",
                sig_path.display()
            )));
        }
        Err(e) => return Err(read(&sig_path, e)),
    };
    let bytes =
        crate::sys::bounded::read_bounded(&entry.path, limit).map_err(|e| read(&entry.path, e))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if actual != digest {
        return Err(unverified(format!(
            "{} changed while it was checked",
            entry.path.display()
        )));
    }
    let mut records = Vec::new();
    let mut reasons = Vec::new();
    for key in keys {
        match key.verify(&sig_path.display().to_string(), &bytes, &signature) {
            Ok(()) => {
                let record = Verification {
                    digest: digest.to_string(),
                    key_fingerprint: key.fingerprint.clone(),
                    key_path: key.path.clone(),
                    annotations: BTreeMap::new(),
                    verified_at: crate::timestamp::rfc3339(std::time::SystemTime::now()),
                };
                store
                    .put_verification(&record)
                    .map_err(|source| SupplyError::Store {
                        plugin: entry.name.clone(),
                        source,
                    })?;
                records.push(record);
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if records.is_empty() {
        return Err(unverified(reasons.join("; ")));
    }
    Ok(records)
}

/// Where a plugin file's detached signature is: FILE.sig.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// What the store knows of a registry plugin, for `plugin inspect REF`.
#[derive(Debug, Clone)]
pub struct Described {
    /// The reference as given.
    pub reference: String,
    /// The manifest's digest, `sha256:…`.
    pub digest: String,
    /// The component's file in the store.
    pub path: PathBuf,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The signatures verified so far, by key.
    pub verifications: Vec<Verification>,
}

/// Describes a registry plugin from the store alone (a tag as last
/// pulled); fails as a run would when it was never pulled.
pub fn describe(store: &Store, reference: &str, limit: u64) -> Result<Described, SupplyError> {
    let mut entry = PluginEntry {
        name: PluginRef::parse(reference)
            .map_err(|source| SupplyError::Registry {
                plugin: reference.to_string(),
                source,
            })?
            .default_name(),
        path: PathBuf::new(),
        reference: Some(reference.to_string()),
        verify: None,
        sha256: None,
        settings: Vec::new(),
        grants: Default::default(),
        limits: Default::default(),
        on_error: Default::default(),
    };
    let digest = subject(&entry, "", Some(store), Mode::Monitor)?;
    resolve(
        std::slice::from_mut(&mut entry),
        Some(store),
        Mode::Monitor,
        None,
        limit,
    )?;
    let hex = digest.trim_start_matches("sha256:");
    let stored = |source| SupplyError::Store {
        plugin: entry.name.clone(),
        source,
    };
    let artifact = store.artifact(hex, limit).map_err(stored)?;
    Ok(Described {
        reference: reference.to_string(),
        annotations: artifact.map(|a| a.manifest.annotations).unwrap_or_default(),
        verifications: store.verifications(&digest).map_err(stored)?,
        digest,
        path: entry.path,
    })
}
