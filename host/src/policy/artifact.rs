//! A plugin as an OCI artifact, as the CNCF Wasm OCI artifact layout
//! defines it: an image manifest whose config has media type
//! [`CONFIG_MEDIA_TYPE`] and whose one layer, [`LAYER_MEDIA_TYPE`], is the
//! component. What a manifest must be to be taken as a plugin is checked
//! here, before any of its blobs is fetched or read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The config's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The component layer's media type.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The manifest's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The largest manifest taken: a plugin's is well under a kilobyte.
pub const MANIFEST_LIMIT: usize = 1 << 20;

/// An OCI image manifest, as much of it as plugins and signatures use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// The manifest's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A blob of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What it is.
    pub media_type: String,
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// Why a manifest is not a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// Not JSON of an image manifest.
    #[error("not an OCI image manifest: {0}")]
    Malformed(String),
    /// Its config is of another media type.
    #[error("config media type `{0}`, not `{CONFIG_MEDIA_TYPE}`: not a Wasm artifact")]
    Config(String),
    /// Not exactly one layer.
    #[error("{0} layers; a plugin artifact has exactly one")]
    Layers(usize),
    /// The layer is of another media type.
    #[error("layer media type `{0}`, not `{LAYER_MEDIA_TYPE}`")]
    Layer(String),
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("digest `{0}` is not sha256: and 64 lowercase hex digits")]
    Digest(String),
    /// The layer is larger than a plugin may be.
    #[error("the component is {size} bytes, over the plugin file limit of {limit}")]
    TooLarge {
        /// Its size, as the manifest says.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// A plugin artifact's manifest, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// The manifest.
    pub manifest: Manifest,
    /// The component layer's sha256, in hex.
    pub layer_sha256: String,
}

impl Artifact {
    /// Checks that `bytes` is the manifest of a plugin no larger than
    /// `limit`: a Wasm config, one `application/wasm` layer.
    pub fn parse(bytes: &[u8], limit: u64) -> Result<Self, ArtifactError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ArtifactError::Malformed(e.to_string()))?;
        if manifest.schema_version != 2 {
            return Err(ArtifactError::Malformed(format!(
                "schema version {}",
                manifest.schema_version
            )));
        }
        if manifest.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(ArtifactError::Config(manifest.config.media_type));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(ArtifactError::Layers(manifest.layers.len()));
        };
        if layer.media_type != LAYER_MEDIA_TYPE {
            return Err(ArtifactError::Layer(layer.media_type.clone()));
        }
        if layer.size > limit {
            return Err(ArtifactError::TooLarge {
                size: layer.size,
                limit,
            });
        }
        let layer_sha256 = sha256_hex(&layer.digest)?.to_string();
        sha256_hex(&manifest.config.digest)?;
        Ok(Artifact {
            manifest,
            layer_sha256,
        })
    }

    /// The manifest of a plugin whose component is `wasm` and config
    /// `config`, with `annotations`; its bytes are what is pushed and
    /// what the digest is of.
    pub fn manifest_for(
        config: &[u8],
        wasm: &[u8],
        annotations: BTreeMap<String, String>,
    ) -> Vec<u8> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
            config: Descriptor::of(CONFIG_MEDIA_TYPE, config),
            layers: vec![Descriptor::of(LAYER_MEDIA_TYPE, wasm)],
            annotations,
        };
        serde_json::to_vec(&manifest).unwrap_or_default()
    }
}

/// The Wasm config of a component: what the layout asks for
/// (`created`, `architecture`, `os`, the layer's digest).
pub fn config_for(wasm: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [digest_of(wasm)],
        "component": { "exports": [], "imports": [], "target": null },
    }))
    .unwrap_or_default()
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex of a `sha256:` digest, checked to be 64 lowercase hex digits:
/// what store file names are made of, so nothing else may pass.
pub fn sha256_hex(digest: &str) -> Result<&str, ArtifactError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_sha256_hex(hex))
        .ok_or_else(|| ArtifactError::Digest(digest.to_string()))
}

/// Whether `hex` is 64 lowercase hex digits.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: &str, layers: &[(&str, u64)]) -> Vec<u8> {
        let d = |media: &str, size: u64| serde_json::json!({"mediaType": media, "digest": format!("sha256:{}", "a".repeat(64)), "size": size});
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": d(config, 10),
            "layers": layers.iter().map(|(m, s)| d(m, *s)).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn what_we_push_is_a_plugin() {
        let wasm = b"\0asm\x0d\0\x01\0";
        let config = config_for(wasm);
        let bytes = Artifact::manifest_for(&config, wasm, BTreeMap::new());
        let artifact = Artifact::parse(&bytes, 1 << 20).unwrap();
        assert_eq!(
            artifact.layer_sha256,
            digest_of(wasm).trim_start_matches("sha256:")
        );
    }

    #[test]
    fn anything_but_one_wasm_layer_under_a_wasm_config_is_refused() {
        let ok = manifest(CONFIG_MEDIA_TYPE, &[(LAYER_MEDIA_TYPE, 100)]);
        assert!(Artifact::parse(&ok, 100).is_ok());
        assert_eq!(
            Artifact::parse(&ok, 99),
            Err(ArtifactError::TooLarge {
                size: 100,
                limit: 99
            })
        );
        let image = manifest(
            "application/vnd.oci.image.config.v1+json",
            &[(LAYER_MEDIA_TYPE, 1)],
        );
        assert!(matches!(
            Artifact::parse(&image, 100),
            Err(ArtifactError::Config(_))
        ));
        let two = manifest(
            CONFIG_MEDIA_TYPE,
            &[(LAYER_MEDIA_TYPE, 1), (LAYER_MEDIA_TYPE, 1)],
        );
        assert_eq!(Artifact::parse(&two, 100), Err(ArtifactError::Layers(2)));
        let none = manifest(CONFIG_MEDIA_TYPE, &[]);
        assert_eq!(Artifact::parse(&none, 100), Err(ArtifactError::Layers(0)));
        let tar = manifest(
            CONFIG_MEDIA_TYPE,
            &[("application/vnd.oci.image.layer.v1.tar", 1)],
        );
        assert!(matches!(
            Artifact::parse(&tar, 100),
            Err(ArtifactError::Layer(_))
        ));
        assert!(matches!(
            Artifact::parse(b"[]", 100),
            Err(ArtifactError::Malformed(_))
        ));
    }

    #[test]
    fn digests_are_sha256_in_lowercase_hex_only() {
        let hex = "0".repeat(64);
        assert_eq!(sha256_hex(&format!("sha256:{hex}")).unwrap(), hex);
        for bad in [
            format!("sha512:{hex}"),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "0".repeat(63)),
            format!("sha256:../{}", "0".repeat(61)),
            "sha256:".to_string(),
        ] {
            assert!(sha256_hex(&bad).is_err(), "{bad}");
        }
    }
}
