//! Registry credentials from where podman and docker keep them.
//!
//! Files are read in podman's order: `$REGISTRY_AUTH_FILE` when set, else
//! `$XDG_RUNTIME_DIR/containers/auth.json` and
//! `~/.config/containers/auth.json`; then docker's
//! `~/.docker/config.json`. The first file with an entry for the
//! registry gives the credentials. An entry's key is a registry
//! (`registry.example`, also written `https://registry.example` or with
//! a `/v1/` path as docker writes it) or a repository under it
//! (`registry.example/team/policies`); the most specific key matching
//! the repository wins. Only the base64 `auth` field (`user:password`) is
//! read; credential helpers (`credHelpers`, `credsStore`) are not run.
//!
//! Credentials never appear in messages: [`Credentials`]'s `Debug` hides
//! the password, and errors name files and registries only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

/// The largest auth file read.
const AUTH_FILE_LIMIT: u64 = 1 << 20;

/// Errors reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// An auth file exists but could not be read.
    #[error("registry auth file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An auth file or its entry is malformed (its content is not said:
    /// it may hold secrets).
    #[error("registry auth file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, without the content.
        reason: String,
    },
}

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password (or token).
    pub password: String,
    /// The file they came from.
    pub file: PathBuf,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("file", &self.file)
            .finish()
    }
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
}

/// The auth files to read, in order, from the environment.
pub fn auth_files() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let mut files = Vec::new();
    if let Some(file) = var("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    } else {
        if let Some(runtime) = var("XDG_RUNTIME_DIR") {
            files.push(Path::new(&runtime).join("containers/auth.json"));
        }
        if let Some(home) = &home {
            files.push(home.join(".config/containers/auth.json"));
        }
    }
    if let Some(home) = &home {
        files.push(home.join(".docker/config.json"));
    }
    files
}

/// The credentials for `repository` (`registry/path/name`) of
/// `registry`, from the first of `files` that has an entry for it.
pub fn find(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    for file in files {
        let text = match crate::sys::bounded::read_bounded_to_string(file, AUTH_FILE_LIMIT) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: file.clone(),
                    source,
                });
            }
        };
        let invalid = |reason: String| CredentialsError::Invalid {
            path: file.clone(),
            reason,
        };
        // serde's message may quote the content: say only where.
        let parsed: AuthFile = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "not an auth file (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let best = parsed
            .auths
            .iter()
            .filter_map(|(key, entry)| {
                let key = normalize(key);
                matches(&key, registry, repository).then_some((key.len(), entry))
            })
            .filter(|(_, entry)| entry.auth.as_deref().is_some_and(|a| !a.is_empty()))
            .max_by_key(|(len, _)| *len);
        let Some((_, entry)) = best else {
            continue;
        };
        let auth = entry.auth.as_deref().unwrap_or_default();
        let decoded = BASE64
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| invalid(format!("the `auth` of {registry} is not base64 of text")))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid(format!("the `auth` of {registry} is not user:password")))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
            file: file.clone(),
        }));
    }
    Ok(None)
}

/// A key without scheme or trailing `/` (docker writes
/// `https://index.docker.io/v1/`).
fn normalize(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    key.strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key)
        .to_string()
}

/// Whether an entry's key covers the repository: the registry itself, or
/// a path prefix of the repository at a `/`.
fn matches(key: &str, registry: &str, repository: &str) -> bool {
    let docker_hub =
        |r: &str| matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    if key == registry || (docker_hub(key) && docker_hub(registry)) {
        return true;
    }
    repository
        .strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, auths: &[(&str, &str)]) -> PathBuf {
        let path = dir.join(name);
        let auths: BTreeMap<_, _> = auths
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::json!({ "auth": BASE64.encode(v) }),
                )
            })
            .collect();
        std::fs::write(&path, serde_json::json!({ "auths": auths }).to_string()).unwrap();
        path
    }

    #[test]
    fn the_first_file_and_the_most_specific_key_win() {
        let dir = tempfile::tempdir().unwrap();
        let podman = file(
            dir.path(),
            "auth.json",
            &[("r.example", "a:1"), ("r.example/team", "b:2")],
        );
        let docker = file(
            dir.path(),
            "config.json",
            &[
                ("https://r.example/v1/", "c:3"),
                ("other.example", "d:4:with:colons"),
            ],
        );
        let files = [dir.path().join("missing.json"), podman, docker];
        let found = |registry: &str, repo: &str| {
            find(&files, registry, repo)
                .unwrap()
                .map(|c| format!("{}:{}", c.username, c.password))
        };
        assert_eq!(
            found("r.example", "r.example/team/p").as_deref(),
            Some("b:2")
        );
        assert_eq!(
            found("r.example", "r.example/teams/p").as_deref(),
            Some("a:1")
        );
        assert_eq!(
            found("other.example", "other.example/p").as_deref(),
            Some("d:4:with:colons")
        );
        assert_eq!(found("third.example", "third.example/p"), None);
    }

    #[test]
    fn nothing_secret_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("auth.json");
        std::fs::write(
            &bad,
            r#"{"auths": {"r.example": {"auth": "s3cret-not-base64!"}}}"#,
        )
        .unwrap();
        let err = find(std::slice::from_ref(&bad), "r.example", "r.example/p")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::write(&bad, r#"{"auths": {"r.example": {"auth": s3cret}}}"#).unwrap();
        let err = find(std::slice::from_ref(&bad), "r.example", "r.example/p")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let ok = file(dir.path(), "ok.json", &[("r.example", "u:s3cret")]);
        let creds = find(&[ok], "r.example", "r.example/p").unwrap().unwrap();
        assert!(!format!("{creds:?}").contains("s3cret"));
    }
}
