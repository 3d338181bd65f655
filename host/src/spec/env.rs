//! The container's environment: `-e/--env`, `--env-file`, and the
//! variables a run always sets (PATH, HOSTNAME, TERM with a terminal).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::Spec;

use super::DEFAULT_PATH;

/// Errors reading environment options.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// An env file could not be read.
    #[error("--env-file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of an env file is not a variable.
    #[error("--env-file {path}:{line}: {problem}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// One `-e/--env` value: `KEY=VALUE`, a bare `KEY` that takes the host's
/// value, or `PREFIX*` for every host variable starting with PREFIX (as
/// podman accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    /// `KEY=VALUE`.
    Set(String, String),
    /// `KEY`: the host's value, if the host has one.
    FromHost(String),
    /// `PREFIX*`: the host's variables with that prefix.
    HostPrefix(String),
}

impl FromStr for EnvArg {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (key, rest) = match value.split_once('=') {
            Some((key, rest)) => (key, Some(rest)),
            None => (value, None),
        };
        if key.is_empty() {
            return Err("expected KEY=VALUE or KEY: the name is empty".into());
        }
        if key.chars().any(char::is_whitespace) {
            return Err(format!("the name `{key}` contains whitespace"));
        }
        Ok(match rest {
            Some(rest) => EnvArg::Set(key.to_string(), rest.to_string()),
            None => match key.strip_suffix('*') {
                Some(prefix) => EnvArg::HostPrefix(prefix.to_string()),
                None => EnvArg::FromHost(key.to_string()),
            },
        })
    }
}

impl EnvArg {
    /// The `KEY=VALUE` pairs this argument gives, taking host values from
    /// `host` (a bare KEY the host lacks gives nothing, as in podman).
    fn resolve(&self, host: &[(String, String)]) -> Vec<(String, String)> {
        match self {
            EnvArg::Set(k, v) => vec![(k.clone(), v.clone())],
            EnvArg::FromHost(key) => host.iter().filter(|(k, _)| k == key).cloned().collect(),
            EnvArg::HostPrefix(prefix) => host
                .iter()
                .filter(|(k, _)| k.starts_with(prefix.as_str()))
                .cloned()
                .collect(),
        }
    }
}

/// Reads an env file: one `KEY=VALUE` or bare `KEY` per line; blank lines
/// and lines starting with `#` are skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<EnvArg>, EnvError> {
    let text = crate::sys::bounded::read_bounded_to_string(path, crate::sys::bounded::CONFIG_LIMIT)
        .map_err(|source| EnvError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let mut args = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let arg = line.parse().map_err(|problem| EnvError::Line {
            path: path.to_path_buf(),
            line: index + 1,
            problem,
        })?;
        args.push(arg);
    }
    Ok(args)
}

/// The host's environment, as the source of bare `KEY` arguments.
pub fn host_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Sets the process environment: PATH first (the default, unless given),
/// HOSTNAME when the container has one, TERM with a terminal, then the
/// arguments in order, a later value of a name replacing an earlier one
/// in place.
pub fn apply(spec: &mut Spec, args: &[EnvArg], host: &[(String, String)], terminal: bool) {
    let mut vars: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    if let Some(hostname) = spec.hostname().clone().filter(|h| !h.is_empty()) {
        vars.push(("HOSTNAME".into(), hostname));
    }
    if terminal {
        vars.push(("TERM".into(), "xterm".into()));
    }
    for (key, value) in args.iter().flat_map(|arg| arg.resolve(host)) {
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => vars.push((key, value)),
        }
    }
    if let Some(process) = spec.process_mut() {
        process.set_env(Some(
            vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        ));
    }
}

/// The value of `key` in an environment list: its last entry, as the
/// process sees it.
pub fn lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|entry| entry.strip_prefix(key)?.strip_prefix('='))
}

/// The value of `key` in the process environment.
pub fn get<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    lookup(spec.process().as_ref()?.env().as_ref()?, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(spec: &Spec) -> Vec<String> {
        spec.process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default()
    }

    fn parse(values: &[&str]) -> Vec<EnvArg> {
        values.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn values_replace_earlier_ones_in_place_and_path_is_defaulted() {
        let mut spec = super::super::default_spec("abcdef0123456789", &["sh".into()]);
        apply(&mut spec, &parse(&["A=1", "B=2", "A=3"]), &[], false);
        assert_eq!(
            env_of(&spec),
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=abcdef012345".into(),
                "A=3".into(),
                "B=2".into()
            ]
        );
    }

    #[test]
    fn a_given_path_replaces_the_default_and_term_comes_only_with_a_terminal() {
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        apply(&mut spec, &parse(&["PATH=/x"]), &[], false);
        assert_eq!(get(&spec, "PATH"), Some("/x"));
        assert_eq!(get(&spec, "TERM"), None);
        apply(&mut spec, &[], &[], true);
        assert_eq!(get(&spec, "TERM"), Some("xterm"));
    }

    #[test]
    fn bare_names_and_prefixes_take_host_values() {
        let host = vec![
            ("HOME".to_string(), "/root".to_string()),
            ("LC_ALL".to_string(), "C".to_string()),
            ("LC_TIME".to_string(), "en".to_string()),
        ];
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        apply(
            &mut spec,
            &parse(&["HOME", "MISSING", "LC_*"]),
            &host,
            false,
        );
        let env = env_of(&spec);
        assert!(env.contains(&"HOME=/root".into()));
        assert!(env.contains(&"LC_ALL=C".into()));
        assert!(env.contains(&"LC_TIME=en".into()));
        assert!(!env.iter().any(|e| e.starts_with("MISSING")));
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!("=x".parse::<EnvArg>().is_err());
        assert!("A B=x".parse::<EnvArg>().is_err());
        assert_eq!(
            "A=b=c".parse::<EnvArg>(),
            Ok(EnvArg::Set("A".into(), "b=c".into()))
        );
    }

    #[test]
    fn env_files_skip_comments_and_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "# comment\n\nA=1\n  B\n").unwrap();
        assert_eq!(
            read_env_file(&path).unwrap(),
            vec![
                EnvArg::Set("A".into(), "1".into()),
                EnvArg::FromHost("B".into())
            ]
        );
        std::fs::write(&path, "A=1\n=2\n").unwrap();
        let error = read_env_file(&path).unwrap_err().to_string();
        assert!(error.contains(&format!("{}:2", path.display())), "{error}");
        let missing = read_env_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().starts_with("--env-file "));
    }
}
