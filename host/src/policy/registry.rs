//! Plugins in OCI registries: push, pull into the [store](super::store),
//! and cosign signatures, through the `oci-client` crate.
//!
//! Everything fetched is checked before it is kept: a manifest against
//! the digest asked for (or, pulled by tag, hashed here and kept under
//! that hash), against the plugin layout ([`Artifact`]), its component
//! against the manifest's digest and the plugin size limit, read in a
//! stream that stops at the limit. A signature is checked against each
//! key, and its payload must name the manifest's digest; what verified
//! is recorded in the store, so that loading needs no network.
//!
//! Registries are reached over HTTPS, with the system's roots, except
//! loopback ones (`localhost`, `127.0.0.0/8`, `::1`), which are reached
//! over plain HTTP as docker does by default, and registries for which
//! the caller turns TLS off ([`TlsVerify`]), as podman's
//! `--tls-verify=false` does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Once;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use super::artifact::{
    self, Artifact, ArtifactError, Descriptor, MANIFEST_LIMIT, MANIFEST_MEDIA_TYPE, Manifest,
};
use super::credentials::{self, CredentialsError};
use super::signature::{
    PAYLOAD_MEDIA_TYPE, Payload, PrivateKey, PublicKey, SIGNATURE_ANNOTATION, SIGNATURE_LIMIT,
    SignatureError,
};
use super::store::{Store, StoreError, Verification};

/// The most signature layers looked at under one `.sig` tag.
const SIGNATURE_LAYERS: usize = 64;

/// Manifest media types accepted from a registry.
const MANIFEST_TYPES: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Errors reaching a registry or taking what it sends.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not one.
    #[error("`{reference}` is not an image reference: {reason}")]
    Reference {
        /// The text given.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The client's runtime could not start.
    #[error("cannot start the registry client: {0}")]
    Runtime(std::io::Error),
    /// The registry refused or failed a request (never with credentials
    /// in the message).
    #[error("{reference}: {operation}: {message}")]
    Request {
        /// The reference.
        reference: String,
        /// What was being done.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The registry has no such manifest.
    #[error("{reference}: not found in the registry")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// What the registry sent is not a plugin.
    #[error("{reference}: {source}")]
    NotAPlugin {
        /// The reference.
        reference: String,
        /// Why.
        source: ArtifactError,
    },
    /// The registry sent content whose digest is not the one asked for.
    #[error("{reference}: the registry sent {what} with digest {actual}, not {expected}")]
    WrongDigest {
        /// The reference.
        reference: String,
        /// What was fetched.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// The registry sent more than was announced or allowed.
    #[error("{reference}: {what} is larger than {limit} bytes")]
    TooLarge {
        /// The reference.
        reference: String,
        /// What was fetched.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The store could not keep what was pulled.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be used.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// No signature verified with any of the keys.
    #[error("{reference} ({digest}): no valid signature by {}: {reasons}", keys.iter().map(|k| k.display().to_string()).collect::<Vec<_>>().join(", "))]
    Unsigned {
        /// The reference.
        reference: String,
        /// The manifest's digest.
        digest: String,
        /// The keys tried.
        keys: Vec<PathBuf>,
        /// Why each signature found failed, or that there was none.
        reasons: String,
    },
}

/// Whether TLS is required of a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// HTTPS, except plain HTTP for loopback registries.
    #[default]
    Default,
    /// HTTPS with verified certificates, loopback registries too.
    Required,
    /// Plain HTTP: for registries without TLS.
    Off,
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// TLS or not.
    pub tls_verify: TlsVerify,
    /// The auth files, in order ([`credentials::auth_files`] by default).
    pub auth_files: Vec<PathBuf>,
}

impl Options {
    /// The environment's auth files, and `tls_verify`.
    pub fn from_env(tls_verify: TlsVerify) -> Self {
        Options {
            tls_verify,
            auth_files: credentials::auth_files(),
        }
    }
}

/// A reference to a plugin in a registry, parsed.
#[derive(Debug, Clone)]
pub struct PluginRef {
    text: String,
    reference: Reference,
}

impl PluginRef {
    /// Parses `registry/repository[:tag][@sha256:…]`. The grammar of
    /// references admits no `..`, no empty component and no uppercase
    /// repository, so no reference reads as a path.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::Reference {
            reference: text.to_string(),
            reason,
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it holds whitespace or a control character".into()));
        }
        let reference: Reference = text.parse().map_err(|e| bad(format!("{e}")))?;
        if let Some(digest) = reference.digest() {
            artifact::sha256_hex(digest).map_err(|e| bad(e.to_string()))?;
        }
        // A name without a registry is docker.io's: say it rather than
        // guess, since policies name their registries.
        let first = text.split('/').next().unwrap_or_default();
        if !text.contains('/')
            || !(first.contains('.') || first.contains(':') || first == "localhost")
        {
            return Err(bad(
                "it names no registry (write registry.example/repository…)".into(),
            ));
        }
        Ok(PluginRef {
            text: text.to_string(),
            reference,
        })
    }

    /// The name a plugin from here goes by when none is given: the
    /// repository's last component, with underscores as dashes.
    pub fn default_name(&self) -> String {
        let repository = self.reference.repository();
        repository
            .rsplit('/')
            .next()
            .unwrap_or(repository)
            .replace('_', "-")
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// `registry/repository`.
    pub fn repository(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    /// The manifest's sha256 in hex, when the reference pins it.
    pub fn digest_hex(&self) -> Option<&str> {
        self.reference
            .digest()
            .and_then(|d| d.strip_prefix("sha256:"))
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The same repository at `digest`.
    fn at_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }

    /// The same repository at `tag`.
    fn at_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            tag.to_string(),
        )
    }

    /// What to fetch the manifest by: the digest when pinned, else the
    /// tag (`latest` when none).
    fn manifest_reference(&self) -> Reference {
        match self.reference.digest() {
            Some(digest) => self.at_digest(digest),
            None => self.at_tag(self.reference.tag().unwrap_or("latest")),
        }
    }

    /// Whether this registry is reached over plain HTTP.
    pub fn plain_http(&self, tls: TlsVerify) -> bool {
        match tls {
            TlsVerify::Off => true,
            TlsVerify::Required => false,
            TlsVerify::Default => is_loopback(self.registry()),
        }
    }
}

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether a registry host (with its port) is this machine's loopback.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a pull fetched.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The manifest's digest, `sha256:…`.
    pub digest: String,
    /// The artifact.
    pub artifact: Artifact,
    /// Whether everything was in the store already.
    pub already: bool,
}

/// A client for one command: its runtime and options.
#[derive(Debug)]
pub struct Registry {
    runtime: tokio::runtime::Runtime,
    options: Options,
}

/// rustls needs its crypto provider chosen once per process.
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // ring rather than aws-lc-rs: a small, quick build with no C
        // toolchain beyond cc. rustls deprecates it for lacking
        // post-quantum key exchange, which registry pulls (of content
        // checked against digests and signatures) can do without.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Registry {
    /// A client with these options.
    pub fn new(options: Options) -> Result<Self, RegistryError> {
        install_crypto();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RegistryError::Runtime)?;
        Ok(Registry { runtime, options })
    }

    /// The client and credentials for `reference`.
    fn client(&self, reference: &PluginRef) -> Result<(Client, RegistryAuth), RegistryError> {
        let protocol = if reference.plain_http(self.options.tls_verify) {
            ClientProtocol::HttpsExcept(vec![reference.registry().to_string()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            read_timeout: Some(std::time::Duration::from_secs(60)),
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            ..ClientConfig::default()
        });
        let auth = credentials::find(
            &self.options.auth_files,
            reference.registry(),
            &reference.repository(),
        )?
        .map_or(RegistryAuth::Anonymous, |c| {
            RegistryAuth::Basic(c.username, c.password)
        });
        Ok((client, auth))
    }

    /// Pushes the component `wasm` as `reference` (a tag, or none for
    /// `latest`); returns the manifest's digest.
    pub fn push(
        &self,
        wasm: &[u8],
        reference: &PluginRef,
        annotations: BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        let (client, auth) = self.client(reference)?;
        let config = artifact::config_for(wasm);
        let manifest = Artifact::manifest_for(&config, wasm, annotations);
        let digest = artifact::digest_of(&manifest);
        let target = reference.manifest_reference();
        let failed = request_error(reference, "push");
        self.runtime.block_on(async {
            client
                .auth(&target, &auth, RegistryOperation::Push)
                .await
                .map_err(&failed)?;
            upload(&client, &target, &[wasm, &config], manifest, &failed).await
        })?;
        Ok(digest)
    }

    /// Pulls the plugin `reference` into `store`, unless it is there
    /// already; its component may be at most `limit` bytes.
    pub fn pull(
        &self,
        reference: &PluginRef,
        store: &Store,
        limit: u64,
    ) -> Result<Pulled, RegistryError> {
        if let Some(hex) = reference.digest_hex()
            && let Some(artifact) = store.artifact(hex, limit)?
            && store.has_blob(&artifact.layer_sha256)?
        {
            return Ok(Pulled {
                digest: format!("sha256:{hex}"),
                artifact,
                already: true,
            });
        }
        let (client, auth) = self.client(reference)?;
        let target = reference.manifest_reference();
        let failed = request_error(reference, "pull");
        let (digest, artifact) = self.runtime.block_on(async {
            client
                .auth(&target, &auth, RegistryOperation::Pull)
                .await
                .map_err(&failed)?;
            let (manifest, digest) = fetch_manifest(&client, &target, reference, &auth).await?;
            let artifact =
                Artifact::parse(&manifest, limit).map_err(|source| RegistryError::NotAPlugin {
                    reference: reference.to_string(),
                    source,
                })?;
            let hex = digest.trim_start_matches("sha256:");
            if !store.has_blob(&artifact.layer_sha256)? {
                let layer = &artifact.manifest.layers[0];
                let wasm =
                    fetch_blob(&client, &target, reference, layer, limit, "the component").await?;
                store.put_blob(&artifact.layer_sha256, &wasm)?;
            }
            // The manifest last: a stored manifest means a whole plugin.
            store.put_blob(hex, &manifest)?;
            Ok::<_, RegistryError>((digest, artifact))
        })?;
        if reference.digest_hex().is_none() {
            store.set_tag(reference.as_str(), digest.trim_start_matches("sha256:"))?;
        }
        Ok(Pulled {
            digest,
            artifact,
            already: false,
        })
    }

    /// The digest `reference`'s manifest has in the registry now.
    pub fn resolve(&self, reference: &PluginRef) -> Result<String, RegistryError> {
        let (client, auth) = self.client(reference)?;
        let target = reference.manifest_reference();
        self.runtime.block_on(async {
            let (_, digest) = fetch_manifest(&client, &target, reference, &auth).await?;
            Ok(digest)
        })
    }

    /// Signs the manifest of digest `digest` in `reference`'s repository
    /// as cosign does: a simple-signing payload layer, its signature in
    /// an annotation, under the tag `sha256-HEX.sig` (added to the
    /// signatures already there).
    pub fn sign(
        &self,
        reference: &PluginRef,
        digest: &str,
        key: &PrivateKey,
        annotations: &BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        let (client, auth) = self.client(reference)?;
        let payload =
            serde_json::to_vec(&Payload::new(&reference.repository(), digest, annotations))
                .unwrap_or_default();
        let signature = key.sign(&payload);
        let tag = signature_tag(digest);
        let target = reference.at_tag(&tag);
        let failed = request_error(reference, "push signature");
        self.runtime.block_on(async {
            client
                .auth(&target, &auth, RegistryOperation::Push)
                .await
                .map_err(&failed)?;
            let mut layers = match fetch_manifest(&client, &target, reference, &auth).await {
                Ok((bytes, _)) => serde_json::from_slice::<Manifest>(&bytes)
                    .map(|m| m.layers)
                    .unwrap_or_default(),
                Err(RegistryError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let mut layer = Descriptor::of(PAYLOAD_MEDIA_TYPE, &payload);
            layer
                .annotations
                .insert(SIGNATURE_ANNOTATION.to_string(), signature.clone());
            layers.retain(|l| l.digest != layer.digest);
            layers.push(layer);
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
                },
                "config": {},
            }))
            .unwrap_or_default();
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
                config: Descriptor::of("application/vnd.oci.image.config.v1+json", &config),
                layers,
                annotations: BTreeMap::new(),
            };
            let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
            upload(&client, &target, &[&payload, &config], manifest, &failed).await
        })?;
        Ok(tag)
    }

    /// Checks the cosign signatures of the manifest of digest `digest` in
    /// `reference`'s repository against `keys`, and records in `store`
    /// each key a signature verified with. Fails when none did, saying
    /// why for each signature.
    pub fn verify(
        &self,
        reference: &PluginRef,
        digest: &str,
        keys: &[PublicKey],
        store: &Store,
    ) -> Result<Vec<Verification>, RegistryError> {
        let (client, auth) = self.client(reference)?;
        let target = reference.at_tag(&signature_tag(digest));
        let unsigned = |reasons: String| RegistryError::Unsigned {
            reference: reference.to_string(),
            digest: digest.to_string(),
            keys: keys.iter().map(|k| k.path.clone()).collect(),
            reasons,
        };
        let layers = self.runtime.block_on(async {
            let bytes = match fetch_manifest(&client, &target, reference, &auth).await {
                Ok((bytes, _)) => bytes,
                Err(RegistryError::NotFound { .. }) => {
                    return Err(unsigned(format!(
                        "the registry has no signature (no tag {})",
                        signature_tag(digest)
                    )));
                }
                Err(e) => return Err(e),
            };
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| unsigned(format!("the signature manifest is malformed: {e}")))?;
            let mut layers = Vec::new();
            for layer in manifest.layers.into_iter().take(SIGNATURE_LAYERS) {
                if layer.media_type != PAYLOAD_MEDIA_TYPE {
                    continue;
                }
                let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION).cloned() else {
                    continue;
                };
                let payload = fetch_blob(
                    &client,
                    &target,
                    reference,
                    &layer,
                    SIGNATURE_LIMIT,
                    "a signature payload",
                )
                .await?;
                layers.push((layer.digest, payload, signature));
            }
            Ok(layers)
        })?;
        if layers.is_empty() {
            return Err(unsigned(format!(
                "the tag {} holds no cosign signature",
                signature_tag(digest)
            )));
        }
        let mut records = Vec::new();
        let mut reasons = Vec::new();
        for key in keys {
            for (layer, payload, signature) in &layers {
                let what = format!("{} (layer {layer})", signature_tag(digest));
                let checked = key
                    .verify(&what, payload, signature)
                    .and_then(|()| Payload::check(payload, &what, digest));
                match checked {
                    Ok(annotations) => {
                        let record = Verification {
                            digest: digest.to_string(),
                            key_fingerprint: key.fingerprint.clone(),
                            key_path: key.path.clone(),
                            annotations,
                            verified_at: crate::timestamp::rfc3339(std::time::SystemTime::now()),
                        };
                        store.put_verification(&record)?;
                        records.push(record);
                        break;
                    }
                    Err(e) => reasons.push(e.to_string()),
                }
            }
        }
        if records.is_empty() {
            return Err(unsigned(reasons.join("; ")));
        }
        Ok(records)
    }
}

/// The tag cosign stores the signatures of a manifest under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A manifest and its digest, checked: against the digest asked for when
/// there is one, and never taken from the registry's word.
async fn fetch_manifest(
    client: &Client,
    target: &Reference,
    reference: &PluginRef,
    auth: &RegistryAuth,
) -> Result<(Vec<u8>, String), RegistryError> {
    let (bytes, _) = client
        .pull_manifest_raw(target, auth, MANIFEST_TYPES)
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                RegistryError::NotFound {
                    reference: target.whole(),
                }
            } else {
                request_error(reference, "fetch manifest")(e)
            }
        })?;
    if bytes.len() > MANIFEST_LIMIT {
        return Err(RegistryError::TooLarge {
            reference: reference.to_string(),
            what: "the manifest",
            limit: MANIFEST_LIMIT as u64,
        });
    }
    let actual = artifact::digest_of(&bytes);
    if let Some(expected) = target.digest()
        && expected != actual
    {
        return Err(RegistryError::WrongDigest {
            reference: reference.to_string(),
            what: "a manifest",
            expected: expected.to_string(),
            actual,
        });
    }
    Ok((bytes.to_vec(), actual))
}

/// A blob the manifest describes, read up to `limit` bytes and checked
/// against its digest.
async fn fetch_blob(
    client: &Client,
    target: &Reference,
    reference: &PluginRef,
    layer: &Descriptor,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = |limit| RegistryError::TooLarge {
        reference: reference.to_string(),
        what,
        limit,
    };
    if layer.size > limit {
        return Err(too_large(limit));
    }
    // No more than the manifest announces: its digest covers the size.
    let limit = layer.size;
    let expected =
        artifact::sha256_hex(&layer.digest).map_err(|source| RegistryError::NotAPlugin {
            reference: reference.to_string(),
            source,
        })?;
    let descriptor = OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size as i64,
        ..OciDescriptor::default()
    };
    let failed = request_error(reference, "fetch blob");
    let mut stream = client
        .pull_blob_stream(target, &descriptor)
        .await
        .map_err(&failed)?;
    if stream.content_length.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(layer.size as usize);
    while let Some(chunk) = stream.stream.next().await {
        let chunk = chunk.map_err(|e| failed(e.into()))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(RegistryError::WrongDigest {
            reference: reference.to_string(),
            what,
            expected: layer.digest.clone(),
            actual: format!("sha256:{actual}"),
        });
    }
    Ok(bytes)
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NotFound | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

/// Uploads `blobs`, then the manifest naming them (a registry accepts a
/// manifest only once its blobs are there).
async fn upload(
    client: &Client,
    target: &Reference,
    blobs: &[&[u8]],
    manifest: Vec<u8>,
    failed: &impl Fn(OciDistributionError) -> RegistryError,
) -> Result<(), RegistryError> {
    for blob in blobs {
        client
            .push_blob(target, blob.to_vec(), &artifact::digest_of(blob))
            .await
            .map_err(failed)?;
    }
    client
        .push_manifest_raw(target, manifest, MANIFEST_MEDIA_TYPE.parse().unwrap())
        .await
        .map_err(failed)?;
    Ok(())
}

/// The error of a failed request, said without the client's debug
/// details (which could carry a header).
fn request_error<'a>(
    reference: &'a PluginRef,
    operation: &'static str,
) -> impl Fn(OciDistributionError) -> RegistryError + 'a {
    move |error| {
        let refused = |status: &str| {
            format!(
                "the registry refused the credentials (or their absence){status}; \
                 credentials are read from $REGISTRY_AUTH_FILE or podman's auth.json, then ~/.docker/config.json"
            )
        };
        let message = match &error {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => refused(""),
            OciDistributionError::ServerError { code, .. } if matches!(code, 401 | 403) => {
                refused(&format!(" (HTTP {code})"))
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
                }) =>
            {
                refused("")
            }
            OciDistributionError::RequestError(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
            _ => error.to_string(),
        };
        RegistryError::Request {
            reference: reference.to_string(),
            operation,
            message: message.trim().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_registry_and_no_path() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = PluginRef::parse(&format!("127.0.0.1:5000/policies/drop@{digest}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "127.0.0.1:5000/policies/drop");
        assert_eq!(r.digest_hex(), Some(&digest[7..]));
        let r = PluginRef::parse("registry.example/p:v1").unwrap();
        assert_eq!((r.tag(), r.digest_hex()), (Some("v1"), None));
        for bad in [
            "drop".to_string(),
            "library/drop:v1".to_string(),
            "registry.example/../etc/passwd".to_string(),
            "registry.example/a//b".to_string(),
            "registry.example/Upper".to_string(),
            "registry.example/p@sha256:abc".to_string(),
            format!("registry.example/p@sha512:{}", "a".repeat(128)),
            "registry.example/p\n:v1".to_string(),
        ] {
            let err = PluginRef::parse(&bad).unwrap_err().to_string();
            assert!(err.contains("is not an image reference"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_loopback_registries_are_plain_by_default() {
        for (registry, plain) in [
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("registry.example", false),
            ("localhost.example:5000", false),
            ("10.0.0.1:5000", false),
        ] {
            let r = PluginRef::parse(&format!("{registry}/p:v1")).unwrap();
            assert_eq!(r.plain_http(TlsVerify::Default), plain, "{registry}");
            assert!(!r.plain_http(TlsVerify::Required));
            assert!(r.plain_http(TlsVerify::Off));
        }
        // The reference grammar has no IPv6 literals; the host check does.
        assert!(is_loopback("[::1]:5000") && is_loopback("[::1]"));
        assert!(!is_loopback("[::2]:5000"));
    }

    #[test]
    fn signatures_live_under_cosign_tags() {
        assert_eq!(
            signature_tag(&format!("sha256:{}", "ab".repeat(32))),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
    }
}
