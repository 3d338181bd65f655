//! The plugin store: what `specgate plugin pull` fetched, by digest, in
//! `store/` under the cache directory, and the signature verifications
//! bound to those digests.
//!
//! The directory is opened as the cache is (every component from `/`
//! checked, never through a link, ours alone, 0700; see
//! [`Cache::open`](super::cache::Cache::open)), and each file in it is
//! reached by name under that descriptor, never following a link, and
//! written whole through a temporary file and a rename. Names are built
//! only from checked hex digits, never from a reference's text:
//!
//! - `sha256-HEX`: a blob (a manifest or a component), whose content is
//!   checked against its name each time it is read;
//! - `tag-HEX`: the manifest a reference without a digest was last pulled
//!   as, HEX being the sha256 of the reference's text;
//! - `verified-HEX-KEY`: that the manifest (or plugin file) of digest HEX
//!   carried a valid signature by the key of fingerprint KEY, with the
//!   signature's annotations.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::artifact::{self, Artifact, ArtifactError, is_sha256_hex};
use super::cache::{CacheError, open_private_dir};
use super::private_files::{open_file, replace};

/// The store's directory under the cache directory.
pub const STORE_DIR: &str = "store";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory is unusable (as the cache's would be).
    #[error(transparent)]
    Dir(#[from] CacheError),
    /// A file of the store could not be read or written.
    #[error("plugin store {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A blob's content is not what its name says: changed after it was
    /// stored.
    #[error(
        "plugin store {}: content has digest sha256:{actual}, not the one it is stored under; remove it and pull again",
        path.display()
    )]
    Tampered {
        /// The file.
        path: PathBuf,
        /// What its content hashes to.
        actual: String,
    },
    /// A blob is larger than anything stored there may be.
    #[error("plugin store {}: larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A stored manifest is not a plugin's.
    #[error("plugin store {}: {source}", path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ArtifactError,
    },
    /// A digest given to the store is malformed.
    #[error(transparent)]
    Digest(#[from] ArtifactError),
}

/// That a digest carried a valid signature by a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// `sha256:…` of what was verified: an artifact's manifest, or a
    /// plugin file.
    pub digest: String,
    /// The key's fingerprint (see
    /// [`PublicKey`](super::signature::PublicKey)).
    pub key_fingerprint: String,
    /// The key file it was read from then.
    pub key_path: PathBuf,
    /// The signature's annotations (none for a file's).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When, RFC 3339.
    pub verified_at: String,
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    fd: OwnedFd,
}

impl Store {
    /// Opens (creating it if needed) the store under `cache_dir`.
    pub fn open(cache_dir: &Path) -> Result<Self, StoreError> {
        let path = cache_dir.join(STORE_DIR);
        let fd = open_private_dir(&path)?;
        Ok(Store { path, fd })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The path of the blob of sha256 `hex`, for loading and messages.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.path.join(blob_name(hex))
    }

    /// Stores `bytes` as the blob of digest `sha256:hex`, after checking
    /// that they are.
    pub fn put_blob(&self, hex: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let name = checked_blob_name(hex)?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != hex {
            return Err(StoreError::Tampered {
                path: self.path.join(&name),
                actual,
            });
        }
        self.write(&name, bytes)
    }

    /// The blob of sha256 `hex`, checked against its name; `None` when
    /// the store does not have it.
    pub fn blob(&self, hex: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let name = checked_blob_name(hex)?;
        let path = self.path.join(&name);
        let Some(bytes) = self.read(&name, limit)? else {
            return Ok(None);
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != hex {
            return Err(StoreError::Tampered { path, actual });
        }
        Ok(Some(bytes))
    }

    /// The plugin artifact whose manifest has sha256 `hex`, when its
    /// manifest is stored; its component may still be missing (see
    /// [`Store::has_blob`]).
    pub fn artifact(&self, hex: &str, limit: u64) -> Result<Option<Artifact>, StoreError> {
        let Some(bytes) = self.blob(hex, artifact::MANIFEST_LIMIT as u64)? else {
            return Ok(None);
        };
        Artifact::parse(&bytes, limit)
            .map(Some)
            .map_err(|source| StoreError::NotAPlugin {
                path: self.blob_path(hex),
                source,
            })
    }

    /// Whether the blob of sha256 `hex` is there, as a regular file of
    /// ours (its content is checked when it is loaded, against its name).
    pub fn has_blob(&self, hex: &str) -> Result<bool, StoreError> {
        let name = checked_blob_name(hex)?;
        match open_file(&self.fd, &name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                path: self.path.join(name),
                source,
            }),
        }
    }

    /// Records that `reference` (without a digest) was pulled as the
    /// manifest of sha256 `hex`.
    pub fn set_tag(&self, reference: &str, hex: &str) -> Result<(), StoreError> {
        checked_blob_name(hex)?;
        let record =
            serde_json::json!({ "reference": reference, "digest": format!("sha256:{hex}") });
        self.write(&tag_name(reference), record.to_string().as_bytes())
    }

    /// The manifest sha256 `reference` was last pulled as.
    pub fn tag(&self, reference: &str) -> Result<Option<String>, StoreError> {
        #[derive(Deserialize)]
        struct Tag {
            reference: String,
            digest: String,
        }
        let name = tag_name(reference);
        let Some(bytes) = self.read(&name, 64 << 10)? else {
            return Ok(None);
        };
        let tag: Tag = serde_json::from_slice(&bytes).map_err(|e| StoreError::Io {
            path: self.path.join(&name),
            source: std::io::Error::other(e),
        })?;
        if tag.reference != reference {
            return Ok(None);
        }
        Ok(Some(artifact::sha256_hex(&tag.digest)?.to_string()))
    }

    /// Records a verification.
    pub fn put_verification(&self, record: &Verification) -> Result<(), StoreError> {
        let name = verification_name(&record.digest, &record.key_fingerprint)?;
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.write(&name, &bytes)
    }

    /// The verification of `digest` (`sha256:…`) by the key of
    /// `fingerprint`, if one was recorded.
    pub fn verification(
        &self,
        digest: &str,
        fingerprint: &str,
    ) -> Result<Option<Verification>, StoreError> {
        let name = verification_name(digest, fingerprint)?;
        let Some(bytes) = self.read(&name, 1 << 20)? else {
            return Ok(None);
        };
        let record: Verification = serde_json::from_slice(&bytes).map_err(|e| StoreError::Io {
            path: self.path.join(&name),
            source: std::io::Error::other(e),
        })?;
        // A record is only good for what its name says.
        Ok((record.digest == digest && record.key_fingerprint == fingerprint).then_some(record))
    }

    /// Every verification recorded for `digest`.
    pub fn verifications(&self, digest: &str) -> Result<Vec<Verification>, StoreError> {
        let hex = artifact::sha256_hex(digest)?;
        let prefix = format!("verified-{hex}-");
        let io = |source: std::io::Error| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let fd = nix::fcntl::openat(
            &self.fd,
            ".",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        let list = cap_std::fs::Dir::from_std_file(std::fs::File::from(fd));
        let mut names: Vec<String> = Vec::new();
        for item in list.entries().map_err(io)? {
            let name = item.map_err(io)?.file_name().to_string_lossy().into_owned();
            if let Some(fingerprint) = name.strip_prefix(&prefix)
                && is_sha256_hex(fingerprint)
            {
                names.push(fingerprint.to_string());
            }
        }
        let mut records = Vec::new();
        names.sort();
        for fingerprint in names {
            if let Some(record) = self.verification(digest, &fingerprint)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        replace(&self.fd, ".tmp-", name, |file| file.write_all(bytes)).map_err(|source| {
            StoreError::Io {
                path: self.path.join(name),
                source,
            }
        })
    }

    /// A file's bytes, within `limit`; `None` when it does not exist.
    fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = || self.path.join(name);
        let file = match open_file(&self.fd, name) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path(),
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Io {
                path: path(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                path: path(),
                limit,
            });
        }
        Ok(Some(bytes))
    }
}

fn blob_name(hex: &str) -> String {
    format!("sha256-{hex}")
}

fn checked_blob_name(hex: &str) -> Result<String, StoreError> {
    if !is_sha256_hex(hex) {
        return Err(ArtifactError::Digest(format!("sha256:{hex}")).into());
    }
    Ok(blob_name(hex))
}

fn tag_name(reference: &str) -> String {
    format!("tag-{}", hex::encode(Sha256::digest(reference.as_bytes())))
}

fn verification_name(digest: &str, fingerprint: &str) -> Result<String, StoreError> {
    let hex = artifact::sha256_hex(digest)?;
    if !is_sha256_hex(fingerprint) {
        return Err(ArtifactError::Digest(format!("sha256:{fingerprint}")).into());
    }
    Ok(format!("verified-{hex}-{fingerprint}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn blobs_are_checked_against_their_name_both_ways() {
        let (_dir, store) = store();
        let hex = hex::encode(Sha256::digest(b"plugin"));
        assert!(store.blob(&hex, 100).unwrap().is_none());
        let err = store.put_blob(&hex, b"another").unwrap_err();
        assert!(matches!(err, StoreError::Tampered { .. }), "{err}");
        assert!(!store.has_blob(&hex).unwrap());
        store.put_blob(&hex, b"plugin").unwrap();
        assert_eq!(store.blob(&hex, 100).unwrap().unwrap(), b"plugin");
        let mode = std::fs::metadata(store.blob_path(&hex))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Changed after it was stored: refused, naming the file.
        std::fs::write(store.blob_path(&hex), b"tampered").unwrap();
        let err = store.blob(&hex, 100).unwrap_err().to_string();
        assert!(
            err.contains(&store.blob_path(&hex).display().to_string()),
            "{err}"
        );
        assert!(err.contains("pull again"), "{err}");
        assert!(matches!(
            store.blob(&hex, 3),
            Err(StoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn links_in_the_store_are_not_followed() {
        let (dir, store) = store();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"plugin").unwrap();
        let hex = hex::encode(Sha256::digest(b"plugin"));
        std::os::unix::fs::symlink(&outside, store.blob_path(&hex)).unwrap();
        assert!(matches!(store.blob(&hex, 100), Err(StoreError::Io { .. })));
        assert!(store.has_blob(&hex).is_err());
        // Nor is a store directory that is a link.
        let other = tempfile::tempdir().unwrap();
        std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(dir.path().join(STORE_DIR), other.path().join(STORE_DIR))
            .unwrap();
        let err = Store::open(other.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn names_are_only_ever_hex() {
        let (_dir, store) = store();
        for bad in ["../x", "", &"A".repeat(64), &format!("{}/", "a".repeat(63))] {
            assert!(store.put_blob(bad, b"").is_err(), "{bad}");
            assert!(store.blob(bad, 1).is_err(), "{bad}");
        }
        let hex = "a".repeat(64);
        store.set_tag("r.example/p:v1", &hex).unwrap();
        assert_eq!(store.tag("r.example/p:v1").unwrap(), Some(hex.clone()));
        assert_eq!(store.tag("r.example/p:v2").unwrap(), None);
    }

    #[test]
    fn verifications_are_found_by_digest_and_key() {
        let (_dir, store) = store();
        let digest = format!("sha256:{}", "b".repeat(64));
        let record = Verification {
            digest: digest.clone(),
            key_fingerprint: "c".repeat(64),
            key_path: "/k.pub".into(),
            annotations: BTreeMap::from([("team".into(), "infra".into())]),
            verified_at: "now".into(),
        };
        store.put_verification(&record).unwrap();
        assert_eq!(
            store.verification(&digest, &"c".repeat(64)).unwrap(),
            Some(record.clone())
        );
        assert_eq!(store.verification(&digest, &"d".repeat(64)).unwrap(), None);
        assert_eq!(store.verifications(&digest).unwrap(), [record]);
    }
}
