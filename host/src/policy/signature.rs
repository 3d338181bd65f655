//! Signatures as cosign makes them: ECDSA P-256 with SHA-256, the
//! signature DER-encoded and then base64, over a blob's bytes (`cosign
//! sign-blob`) or over a simple-signing payload naming an artifact's
//! manifest digest (`cosign sign`).
//!
//! Public keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign
//! generate-key-pair` writes `cosign.pub`. Private keys are unencrypted
//! PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM; cosign's own
//! encrypted format is not read (see docs/plugins.md for converting).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The media type of a cosign signature layer: a simple-signing payload.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The layer annotation holding the payload's signature, base64 DER.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The `critical.type` of a cosign payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The largest key file read: a PEM key is a few hundred bytes.
const KEY_FILE_LIMIT: u64 = 64 << 10;

/// The largest signature (file or payload) read.
pub const SIGNATURE_LIMIT: u64 = 64 << 10;

/// Errors with keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key file could not be read.
    #[error("key {}: {source}", path.display())]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file holds no key of the kind expected.
    #[error("key {}: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A signature is not base64 of a DER ECDSA signature.
    #[error("signature {what}: {reason}")]
    Malformed {
        /// Which signature.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A signature does not verify with the key.
    #[error("signature {what} does not verify with key {} ({})", key.display(), &fingerprint[..16])]
    Mismatch {
        /// Which signature.
        what: String,
        /// The key.
        key: PathBuf,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// A payload verified but does not name the artifact, or is not a
    /// cosign payload.
    #[error("signature payload {what}: {reason}")]
    Payload {
        /// Which payload.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A public key, with where it came from and its fingerprint.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The key file.
    pub path: PathBuf,
    /// sha256 of the key's DER SubjectPublicKeyInfo, in hex: what a
    /// verification is recorded under, so that a changed key file is
    /// another key.
    pub fingerprint: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Reads a PEM public key.
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = read_key_file(path)?;
        let key =
            VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| SignatureError::BadKey {
                path: path.to_path_buf(),
                reason: format!("not a PEM ECDSA P-256 public key: {e}"),
            })?;
        Ok(Self::new(path, key))
    }

    fn new(path: &Path, key: VerifyingKey) -> Self {
        let der = key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        PublicKey {
            path: path.to_path_buf(),
            fingerprint: hex::encode(Sha256::digest(der)),
            key,
        }
    }

    /// Checks a base64 DER signature (surrounding whitespace ignored)
    /// over `message`; `what` names the signature in errors.
    pub fn verify(
        &self,
        what: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let malformed = |reason: String| SignatureError::Malformed {
            what: what.to_string(),
            reason,
        };
        let der = BASE64
            .decode(signature.trim())
            .map_err(|e| malformed(format!("not base64: {e}")))?;
        let signature = Signature::from_der(&der)
            .map_err(|e| malformed(format!("not a DER ECDSA signature: {e}")))?;
        self.key
            .verify(message, &signature)
            .map_err(|_| SignatureError::Mismatch {
                what: what.to_string(),
                key: self.path.clone(),
                fingerprint: self.fingerprint.clone(),
            })
    }
}

/// A private key, for signing.
#[derive(Debug)]
pub struct PrivateKey {
    key: SigningKey,
    /// Its public half.
    pub public: PublicKey,
}

impl PrivateKey {
    /// Reads an unencrypted PKCS#8 or SEC1 PEM EC P-256 private key.
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = read_key_file(path)?;
        let bad = |reason: String| SignatureError::BadKey {
            path: path.to_path_buf(),
            reason,
        };
        let text = text.trim();
        let key = if text.contains("ENCRYPTED") {
            return Err(bad(
                "an encrypted key, which specgate does not read; convert it to an unencrypted PKCS#8 key (see docs/plugins.md)"
                    .to_string(),
            ));
        } else if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(text)
                .map(SigningKey::from)
                .map_err(|e| bad(format!("not a SEC1 P-256 private key: {e}")))?
        } else {
            SigningKey::from_pkcs8_pem(text)
                .map_err(|e| bad(format!("not a PEM PKCS#8 ECDSA P-256 private key: {e}")))?
        };
        let public = PublicKey::new(path, *key.verifying_key());
        Ok(PrivateKey { key, public })
    }

    /// The base64 DER signature of `message`, as cosign writes it.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature: Signature = self.key.sign(message);
        let der: DerSignature = signature.to_der();
        BASE64.encode(der.as_bytes())
    }
}

/// Reads a detached signature file.
pub fn read_signature(path: &Path) -> std::io::Result<String> {
    crate::sys::bounded::read_bounded_to_string(path, SIGNATURE_LIMIT)
}

fn read_key_file(path: &Path) -> Result<String, SignatureError> {
    crate::sys::bounded::read_bounded_to_string(path, KEY_FILE_LIMIT).map_err(|source| {
        SignatureError::ReadKey {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A cosign simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// What the signature is about.
    pub critical: Critical,
    /// Annotations, signed with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

/// The part of a payload a verifier must understand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    /// The repository signed for.
    pub identity: Identity,
    /// The manifest signed.
    pub image: Image,
    /// Always [`PAYLOAD_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `registry/repository`.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:…` of the signed manifest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    /// The payload signing `manifest_digest` of `repository`, with
    /// `annotations`.
    pub fn new(
        repository: &str,
        manifest_digest: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        Payload {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_string(),
                },
                image: Image {
                    docker_manifest_digest: manifest_digest.to_string(),
                },
                kind: PAYLOAD_TYPE.to_string(),
            },
            optional: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            }),
        }
    }

    /// Checks a payload whose signature verified: it must be a cosign
    /// payload for `manifest_digest`. Returns its annotations (string
    /// values; others as their JSON text).
    pub fn check(
        bytes: &[u8],
        what: &str,
        manifest_digest: &str,
    ) -> Result<BTreeMap<String, String>, SignatureError> {
        let bad = |reason: String| SignatureError::Payload {
            what: what.to_string(),
            reason,
        };
        let payload: Payload =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a cosign payload: {e}")))?;
        if payload.critical.kind != PAYLOAD_TYPE {
            return Err(bad(format!(
                "type `{}`, not `{PAYLOAD_TYPE}`",
                payload.critical.kind
            )));
        }
        if payload.critical.image.docker_manifest_digest != manifest_digest {
            return Err(bad(format!(
                "signs manifest {}, not {manifest_digest}",
                payload.critical.image.docker_manifest_digest
            )));
        }
        Ok(payload
            .optional
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, name: &str) -> (PrivateKey, PublicKey) {
        let secret = SigningKey::from_slice(&Sha256::digest(name.as_bytes())).unwrap();
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        use p256::pkcs8::EncodePrivateKey;
        std::fs::write(
            &private,
            secret.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::write(
            &public,
            secret
                .verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap(),
        )
        .unwrap();
        (
            PrivateKey::load(&private).unwrap(),
            PublicKey::load(&public).unwrap(),
        )
    }

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let (team, team_pub) = keys(dir.path(), "team");
        let (_, other_pub) = keys(dir.path(), "other");
        assert_eq!(team.public.fingerprint, team_pub.fingerprint);
        let signature = team.sign(b"plugin");
        team_pub.verify("x", b"plugin", &signature).unwrap();
        team_pub
            .verify("x", b"plugin", &format!("{signature}\n"))
            .unwrap();
        assert!(matches!(
            team_pub.verify("x", b"plugin!", &signature),
            Err(SignatureError::Mismatch { .. })
        ));
        let err = other_pub.verify("x", b"plugin", &signature).unwrap_err();
        assert!(err.to_string().contains("other.pub"), "{err}");
        assert!(matches!(
            team_pub.verify("x", b"plugin", "%%%"),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(matches!(
            team_pub.verify("x", b"plugin", &BASE64.encode(b"not der")),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn keys_of_another_kind_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pub");
        std::fs::write(&path, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n").unwrap();
        let err = PrivateKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("k.pub") && err.contains("encrypted"), "{err}");
        let err = PublicKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a PEM ECDSA P-256 public key"), "{err}");
    }

    #[test]
    fn payloads_must_name_the_manifest() {
        let annotations = BTreeMap::from([("team".to_string(), "infra".to_string())]);
        let payload = Payload::new("r/p", "sha256:aa", &annotations);
        let bytes = serde_json::to_vec(&payload).unwrap();
        assert_eq!(
            Payload::check(&bytes, "p", "sha256:aa").unwrap(),
            annotations
        );
        let err = Payload::check(&bytes, "p", "sha256:bb").unwrap_err();
        assert!(
            err.to_string().contains("signs manifest sha256:aa"),
            "{err}"
        );
        let mut other = payload.clone();
        other.critical.kind = "something else".into();
        let err = Payload::check(&serde_json::to_vec(&other).unwrap(), "p", "sha256:aa");
        assert!(err.is_err());
        // cosign's own layout, byte for byte.
        let cosign = br#"{"critical":{"identity":{"docker-reference":"r/p"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":{"n":1}}"#;
        assert_eq!(Payload::check(cosign, "p", "sha256:aa").unwrap()["n"], "1");
    }
}
