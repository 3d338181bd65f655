//! Policy files: the operator's ordered chain of plugins, each with its
//! pin, settings, grants, limits and failure mode.
//!
//! ```toml
//! [[plugin]]
//! path = "/usr/lib/specgate/drop_capabilities.wasm"
//! sha256 = "f55ade42..."
//! timeout = "500ms"
//! memory = "32m"
//! on-error = "deny"
//! settings = { capabilities = "CAP_NET_RAW,CAP_MKNOD" }
//! grants = { add-capabilities = ["CAP_NET_BIND_SERVICE"], bind-sources = ["/srv/data"] }
//! ```
//!
//! A top-level `runtime = "runc"` names the OCI runtime that
//! `specgate oci` (`specgate-runtime`) hands containers to.
//!
//! A plugin may come from an OCI registry instead of a file, pinned by its
//! manifest's digest, and may have to be signed:
//!
//! ```toml
//! [[plugin]]
//! ref = "registry.example/policies/drop-capabilities@sha256:9f2c..."
//! [plugin.verify]
//! keys = ["/etc/specgate/keys/team.pub"]
//! annotations = { team = "infra" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::grants::Grants;
use super::limits::Limits;

/// Where the policy is read from when none is named.
pub const DEFAULT_PATH: &str = "/etc/specgate/policy.toml";

/// Errors reading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("policy file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or not a valid policy.
    #[error("policy file {}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where, from 1.
        line: usize,
        /// Where, from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// What to do when a plugin fails (traps, times out, breaks a limit). A
/// denial always stops the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Fail the run (the default: fail closed).
    #[default]
    Deny,
    /// Undo the plugin's changes, log a warning and go on without it.
    Skip,
}

/// Whether the policy stops runs or only reports what it would stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Denials, refused changes and failures stop the run.
    #[default]
    Enforce,
    /// The whole chain runs; only allowed changes apply; everything that
    /// would have stopped the run is logged and audited as "would deny",
    /// and the container runs.
    Monitor,
}

/// The signature a plugin must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verify {
    /// Public keys (PEM, ECDSA P-256, as cosign writes them), relative
    /// paths resolved against the policy file's directory: a signature by
    /// any one of them will do.
    pub keys: Vec<PathBuf>,
    /// Annotations the signature must carry, with these values (registry
    /// plugins only: a file's signature carries none).
    pub annotations: BTreeMap<String, String>,
}

/// One plugin of a policy file, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEntry {
    /// Its name in the chain.
    pub name: String,
    /// Its file (relative paths are resolved against the policy file's
    /// directory). For a plugin from a registry, empty until the
    /// reference is resolved to its component in the plugin store.
    pub path: PathBuf,
    /// The registry reference it comes from (`registry/repo@sha256:…`, or
    /// a tag in monitor mode), instead of a file.
    pub reference: Option<String>,
    /// The signature it must carry.
    pub verify: Option<Verify>,
    /// The sha256 its file must have.
    pub sha256: Option<String>,
    /// Its settings.
    pub settings: Vec<(String, String)>,
    /// What it may do beyond restricting.
    pub grants: Grants,
    /// Its limits.
    pub limits: Limits,
    /// What its failure does.
    pub on_error: OnError,
}

/// A policy file, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// The file it was read from.
    pub path: Option<PathBuf>,
    /// The chain, in order.
    pub plugins: Vec<PluginEntry>,
    /// Enforce or monitor.
    pub mode: Mode,
    /// Where each run appends its audit record.
    pub audit_log: Option<PathBuf>,
    /// The OCI runtime behind `specgate oci`: a name looked up in PATH,
    /// or a path (relative: to the policy file).
    pub runtime: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct RawPolicy {
    #[serde(default)]
    mode: Mode,
    audit_log: Option<PathBuf>,
    runtime: Option<String>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<RawPlugin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlugin {
    path: Option<PathBuf>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    verify: Option<RawVerify>,
    name: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
    #[serde(default)]
    grants: RawGrants,
    timeout: Option<String>,
    memory: Option<String>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVerify {
    keys: Vec<PathBuf>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGrants {
    #[serde(default)]
    add_capabilities: Vec<String>,
    #[serde(default)]
    bind_sources: Vec<toml::Spanned<String>>,
    #[serde(default)]
    mount_types: Vec<String>,
    #[serde(default)]
    mount_options: bool,
    #[serde(default)]
    host_namespaces: Vec<String>,
    #[serde(default)]
    join_namespaces: bool,
    #[serde(default)]
    id_mappings: bool,
}

impl Policy {
    /// Reads and checks a policy file; plugins get `defaults` for the
    /// limits they do not set.
    pub fn load(path: &Path, defaults: &Limits) -> Result<Self, PolicyFileError> {
        Self::parse(path, &Self::read(path)?, defaults)
    }

    /// A policy file's text, for [`Policy::parse`].
    pub fn read(path: &Path) -> Result<String, PolicyFileError> {
        crate::sys::bounded::read_bounded_to_string(path, crate::sys::bounded::CONFIG_LIMIT)
            .map_err(|source| PolicyFileError::Read {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Parses a policy file's text.
    pub fn parse(path: &Path, text: &str, defaults: &Limits) -> Result<Self, PolicyFileError> {
        let invalid = |offset: usize, message: String| invalid(path, text, offset, message);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut plugins = Vec::with_capacity(raw.plugins.len());
        for (index, plugin) in raw.plugins.into_iter().enumerate() {
            let at = |message: String| {
                // Point at the plugin's table: the n-th `[[plugin]]`.
                let offset = text
                    .match_indices("[[plugin]]")
                    .nth(index)
                    .map_or(0, |(i, _)| i);
                invalid(offset, message)
            };
            let (path, reference) = match (&plugin.path, &plugin.reference) {
                (Some(path), None) => (base.join(path), None),
                (None, Some(reference)) => {
                    let parsed = super::registry::PluginRef::parse(reference)
                        .map_err(|e| at(format!("plugin ref: {e}")))?;
                    if plugin.sha256.is_some() {
                        return Err(at(format!(
                            "plugin {reference}: sha256 pins a file; a ref is pinned by its @sha256: digest"
                        )));
                    }
                    (PathBuf::new(), Some(parsed))
                }
                (Some(_), Some(_)) => {
                    return Err(at("a plugin has a `path` or a `ref`, not both".to_string()));
                }
                (None, None) => {
                    return Err(at("a plugin needs a `path` or a `ref`".to_string()));
                }
            };
            let name = plugin.name.unwrap_or_else(|| match &reference {
                Some(reference) => reference.default_name(),
                None => super::plugin::default_name(&path),
            });
            if plugins.iter().any(|p: &PluginEntry| p.name == name) {
                return Err(at(format!("plugin name `{name}` is used twice")));
            }
            let verify = match plugin.verify {
                None => None,
                Some(verify) => {
                    if verify.keys.is_empty() {
                        return Err(at(format!(
                            "plugin {name}: verify.keys is empty: name the keys a signature may be by"
                        )));
                    }
                    if reference.is_none() && !verify.annotations.is_empty() {
                        return Err(at(format!(
                            "plugin {name}: verify.annotations: a file's signature (FILE.sig) carries no annotations; only a registry plugin's does"
                        )));
                    }
                    Some(Verify {
                        keys: verify.keys.iter().map(|k| base.join(k)).collect(),
                        annotations: verify.annotations,
                    })
                }
            };
            if let Some(sha) = &plugin.sha256
                && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(at(format!(
                    "plugin {name}: sha256 `{sha}` is not 64 hex digits"
                )));
            }
            let mut limits = defaults.clone();
            if let Some(timeout) = &plugin.timeout {
                limits.call_timeout = super::limits::parse_duration(timeout)
                    .map_err(|e| at(format!("plugin {name}: timeout {e}")))?;
            }
            if let Some(memory) = &plugin.memory {
                limits.memory = super::limits::parse_size(memory)
                    .map_err(|e| at(format!("plugin {name}: memory {e}")))?;
            }
            let settings = plugin
                .settings
                .into_iter()
                .map(|(key, value)| {
                    setting_value(&value)
                        .map(|v| (key.clone(), v))
                        .ok_or_else(|| at(format!("plugin {name}: setting `{key}` must be a string, number, boolean or list of them")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let g = plugin.grants;
            let bind_sources = g
                .bind_sources
                .iter()
                .map(|prefix| {
                    bind_prefix(prefix.get_ref()).map_err(|reason| {
                        invalid(
                            prefix.span().start,
                            format!(
                                "plugin {name}: bind-sources prefix {:?}: {reason}",
                                prefix.get_ref()
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            plugins.push(PluginEntry {
                name,
                path,
                reference: reference.map(|r| r.as_str().to_string()),
                verify,
                sha256: plugin.sha256.map(|s| s.to_ascii_lowercase()),
                settings,
                grants: Grants {
                    add_capabilities: g
                        .add_capabilities
                        .iter()
                        .map(|c| {
                            crate::spec::caps::parse(c)
                                .map(|cap| crate::spec::caps::name(cap).to_string())
                                .ok_or_else(|| at(format!("grants: `{c}` is not a capability")))
                        })
                        .collect::<Result<_, _>>()?,
                    bind_sources,
                    mount_types: g.mount_types,
                    mount_options: g.mount_options,
                    host_namespaces: g.host_namespaces,
                    join_namespaces: g.join_namespaces,
                    id_mappings: g.id_mappings,
                },
                limits,
                on_error: plugin.on_error,
            });
        }
        Ok(Policy {
            path: Some(path.to_path_buf()),
            plugins,
            mode: raw.mode,
            audit_log: raw.audit_log.map(|log| base.join(log)),
            runtime: raw
                .runtime
                .map(|runtime| resolve_runtime(base, runtime))
                .transpose()
                .map_err(|message| invalid(text.find("runtime").unwrap_or(0), message))?,
        })
    }

    /// Only the file's `runtime`, read without checking the rest: what
    /// `specgate oci` needs to pass `state`, `kill` or `delete` on to the
    /// runtime, so that a chain that no longer loads never strands
    /// containers that already run.
    pub fn load_runtime(path: &Path) -> Result<Option<String>, PolicyFileError> {
        #[derive(Deserialize)]
        struct RuntimeOnly {
            runtime: Option<String>,
        }
        let text = Self::read(path)?;
        let raw: RuntimeOnly = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        raw.runtime
            .map(|runtime| resolve_runtime(base, runtime))
            .transpose()
            .map_err(|message| invalid(path, &text, text.find("runtime").unwrap_or(0), message))
    }
}

/// An error at a byte offset of the file's text, as `file:line:column`.
fn invalid(path: &Path, text: &str, offset: usize, message: String) -> PolicyFileError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    PolicyFileError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// A TOML or schema error, where the parser found it.
fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> PolicyFileError {
    invalid(
        path,
        text,
        error.span().map_or(0, |s| s.start),
        error.message().trim().to_string(),
    )
}

/// A `bind-sources` prefix: an absolute, clean path, so that what it
/// grants is what it says. An empty prefix would grant every path, a
/// relative one would depend on the directory specgate runs in, and `..`,
/// `.` or `//` make a prefix read as another.
fn bind_prefix(prefix: &str) -> Result<PathBuf, &'static str> {
    if prefix.is_empty() {
        return Err("empty: it would grant every path; write \"/\" if that is meant");
    }
    if prefix.chars().any(char::is_control) {
        return Err("it holds a control character");
    }
    if !prefix.starts_with('/') {
        return Err("not an absolute path");
    }
    if crate::spec::path::clean(prefix) != prefix {
        return Err("not clean: it has `.`, `..`, `//` or a trailing `/`");
    }
    Ok(PathBuf::from(prefix))
}

/// A `runtime` value: a bare name stays a name (looked up in PATH when
/// used), a relative path is taken from the policy file's directory.
fn resolve_runtime(base: &Path, runtime: String) -> Result<String, String> {
    if runtime.is_empty() {
        return Err("runtime must not be empty".to_string());
    }
    if runtime.contains('/') && !runtime.starts_with('/') {
        return Ok(base.join(runtime).display().to_string());
    }
    Ok(runtime)
}

/// A setting's value as the plugin receives it: lists are joined with
/// commas, the form the SDK's `Settings::list` reads.
fn setting_value(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(setting_value)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Policy, PolicyFileError> {
        Policy::parse(
            Path::new("/etc/specgate/policy.toml"),
            text,
            &Limits::default(),
        )
    }

    #[test]
    fn a_full_entry_parses() {
        let policy = parse(
            r#"
[[plugin]]
path = "drop_capabilities.wasm"
sha256 = "F55ADE425ACD916611740F8125387C7384D54621DC4333014BF1EBDA8EA6A0E0"
timeout = "250ms"
memory = "16m"
on-error = "skip"
settings = { capabilities = ["CAP_NET_RAW", "CAP_MKNOD"], verbose = true }
grants = { add-capabilities = ["net_admin"], bind-sources = ["/srv/data"], join-namespaces = true }
"#,
        )
        .unwrap();
        let p = &policy.plugins[0];
        assert_eq!(p.name, "drop-capabilities");
        assert_eq!(p.path, Path::new("/etc/specgate/drop_capabilities.wasm"));
        assert_eq!(p.sha256.as_deref().map(str::len), Some(64));
        assert_eq!(p.limits.call_timeout, Duration::from_millis(250));
        assert_eq!(p.limits.memory, 16 << 20);
        assert_eq!(p.on_error, OnError::Skip);
        assert_eq!(
            p.settings,
            [
                (
                    "capabilities".to_string(),
                    "CAP_NET_RAW,CAP_MKNOD".to_string()
                ),
                ("verbose".to_string(), "true".to_string())
            ]
        );
        assert_eq!(p.grants.add_capabilities, ["CAP_NET_ADMIN"]);
        assert!(p.grants.join_namespaces);
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = parse("[[plugin]]\npath = \"a.wasm\"\nbogus = 1\n").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("policy file /etc/specgate/policy.toml:3:1: unknown field `bogus`"),
            "{message}"
        );
        let err = parse("[[plugin]]\npath = \"a.wasm\"\non-error = \"maybe\"\n").unwrap_err();
        assert!(
            err.to_string().contains(":3:12: unknown variant `maybe`"),
            "{err}"
        );
        let err = parse("[[plugin]\n").unwrap_err();
        assert!(err.to_string().contains("policy.toml:1:"), "{err}");
    }

    #[test]
    fn the_runtime_is_a_name_or_a_path_from_the_file() {
        assert_eq!(parse("").unwrap().runtime, None);
        assert_eq!(
            parse("runtime = \"crun\"\n").unwrap().runtime.as_deref(),
            Some("crun")
        );
        assert_eq!(
            parse("runtime = \"bin/runc\"\n")
                .unwrap()
                .runtime
                .as_deref(),
            Some("/etc/specgate/bin/runc")
        );
        let err = parse("mode = \"enforce\"\nruntime = \"\"\n").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("policy.toml:2:1: runtime must not be empty"),
            "{err}"
        );
    }

    #[test]
    fn the_runtime_alone_is_read_past_a_chain_that_would_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "runtime = \"runc\"\n[[plugin]]\npath = \"a.wasm\"\nbogus = 1\n",
        )
        .unwrap();
        assert!(Policy::load(&path, &Limits::default()).is_err());
        assert_eq!(
            Policy::load_runtime(&path).unwrap().as_deref(),
            Some("runc")
        );
        std::fs::write(&path, "runtime = [\n").unwrap();
        let err = Policy::load_runtime(&path).unwrap_err();
        assert!(err.to_string().contains("policy.toml:"), "{err}");
    }

    #[test]
    fn bind_prefixes_must_be_absolute_and_clean() {
        let policy = |prefix: &str| {
            format!(
                "[[plugin]]\npath = \"a.wasm\"\ngrants = {{ bind-sources = [\"/srv\", {prefix:?}] }}\n"
            )
        };
        assert_eq!(
            parse(&policy("/srv/data")).unwrap().plugins[0]
                .grants
                .bind_sources,
            [PathBuf::from("/srv"), PathBuf::from("/srv/data")]
        );
        assert_eq!(
            parse(&policy("/")).unwrap().plugins[0].grants.bind_sources[1],
            PathBuf::from("/")
        );
        for (prefix, reason) in [
            ("", "empty: it would grant every path"),
            ("srv/data", "not an absolute path"),
            ("./srv", "not an absolute path"),
            ("/srv/../etc", "not clean"),
            ("/srv/./data", "not clean"),
            ("/srv//data", "not clean"),
            ("/srv/data/", "not clean"),
            ("/srv/a\nb", "control character"),
        ] {
            let err = parse(&policy(prefix)).unwrap_err().to_string();
            // Line 3, at the prefix's opening quote.
            assert!(
                err.starts_with(
                    "policy file /etc/specgate/policy.toml:3:36: plugin a: bind-sources prefix"
                ),
                "{prefix:?}: {err}"
            );
            assert!(err.contains(reason), "{prefix:?}: {err}");
        }
    }

    #[test]
    fn a_plugin_comes_from_a_file_or_a_ref_and_may_need_a_signature() {
        let digest = "a".repeat(64);
        let policy = parse(&format!(
            "[[plugin]]\nref = \"registry.example/policies/drop_caps@sha256:{digest}\"\n[plugin.verify]\nkeys = [\"keys/team.pub\"]\nannotations = {{ team = \"infra\" }}\n"
        ))
        .unwrap();
        let p = &policy.plugins[0];
        assert_eq!(p.name, "drop-caps");
        assert_eq!(p.path, PathBuf::new());
        assert!(p.reference.as_deref().unwrap().ends_with(&digest));
        let verify = p.verify.as_ref().unwrap();
        assert_eq!(verify.keys, [PathBuf::from("/etc/specgate/keys/team.pub")]);
        assert_eq!(verify.annotations["team"], "infra");
        for (text, message) in [
            (
                "[[plugin]]\nname = \"x\"\n",
                "a plugin needs a `path` or a `ref`",
            ),
            (
                "[[plugin]]\npath = \"a.wasm\"\nref = \"r.example/a:v1\"\n",
                "not both",
            ),
            (
                "[[plugin]]\nref = \"r.example/../a:v1\"\n",
                "is not an image reference",
            ),
            (
                "[[plugin]]\nref = \"r.example/a:v1\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
                "pinned by its @sha256: digest",
            ),
            (
                "[[plugin]]\npath = \"a.wasm\"\nverify = { keys = [] }\n",
                "verify.keys is empty",
            ),
            (
                "[[plugin]]\npath = \"a.wasm\"\nverify = { keys = [\"k.pub\"], annotations = { a = \"b\" } }\n",
                "carries no annotations",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse("[[plugin]]\npath = \"a.wasm\"\nsha256 = \"abc\"\n").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("plugin a: sha256 `abc` is not 64 hex digits"),
            "{err}"
        );
        let err =
            parse("[[plugin]]\npath = \"a.wasm\"\n[[plugin]]\npath = \"b/a.wasm\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains(":3:1: plugin name `a` is used twice"),
            "{err}"
        );
        let err = parse("[[plugin]]\npath = \"a.wasm\"\ntimeout = \"soon\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("plugin a: timeout `soon` is not a duration"),
            "{err}"
        );
    }
}
