//! `--security-opt`: no-new-privileges, seccomp, AppArmor, SELinux
//! labels, and masked paths.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::Spec;

use super::caps::{self, CapSet};
use super::seccomp::{self, SeccompError};

/// One `--security-opt` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `no-new-privileges[=true|false]`.
    NoNewPrivileges(bool),
    /// `seccomp=unconfined`.
    SeccompUnconfined,
    /// `seccomp=FILE`: a profile in the docker/podman JSON format.
    SeccompProfile(PathBuf),
    /// `apparmor=PROFILE`, or `unconfined`.
    Apparmor(String),
    /// `label=disable`.
    LabelDisable,
    /// `label=user:U`, `role:R`, `type:T`, `level:L`: one part of the
    /// process's SELinux label.
    Label(String, String),
    /// `mask=P[:P...]`: more paths to hide.
    Mask(Vec<String>),
    /// `unmask=ALL` or `unmask=P[:P...]`: paths not to hide or make
    /// read-only.
    Unmask(Unmask),
}

/// What `unmask=` releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmask {
    /// Every masked and read-only path.
    All,
    /// These paths.
    Paths(Vec<String>),
}

/// Absolute, colon-separated paths.
fn paths(value: &str) -> Result<Vec<String>, String> {
    value
        .split(':')
        .map(|p| {
            if p.starts_with('/') {
                Ok(p.to_string())
            } else {
                Err(format!("`{p}` is not an absolute path"))
            }
        })
        .collect()
}

impl FromStr for SecurityOpt {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (key, rest) = match value.split_once(['=', ':']) {
            Some((k, r)) => (k, Some(r)),
            None => (value, None),
        };
        Ok(match (key, rest) {
            ("no-new-privileges", None) => SecurityOpt::NoNewPrivileges(true),
            ("no-new-privileges", Some(v)) => SecurityOpt::NoNewPrivileges(
                v.parse()
                    .map_err(|_| "no-new-privileges takes true or false")?,
            ),
            ("seccomp", Some("unconfined")) => SecurityOpt::SeccompUnconfined,
            ("seccomp", Some(file)) if !file.is_empty() => SecurityOpt::SeccompProfile(file.into()),
            ("apparmor", Some(profile)) if !profile.is_empty() => {
                SecurityOpt::Apparmor(profile.to_string())
            }
            ("label", Some("disable")) => SecurityOpt::LabelDisable,
            ("label", Some(part)) => match part.split_once(':') {
                Some((kind @ ("user" | "role" | "type" | "level" | "filetype"), v))
                    if !v.is_empty() =>
                {
                    SecurityOpt::Label(kind.to_string(), v.to_string())
                }
                _ => {
                    return Err(
                        "label takes disable, user:, role:, type:, level: or filetype:".into(),
                    );
                }
            },
            ("mask", Some(list)) => SecurityOpt::Mask(paths(list)?),
            ("unmask", Some("ALL")) => SecurityOpt::Unmask(Unmask::All),
            ("unmask", Some(list)) => SecurityOpt::Unmask(Unmask::Paths(paths(list)?)),
            _ => {
                return Err(
                    "expected no-new-privileges, seccomp=unconfined|FILE, apparmor=PROFILE, \
                     label=..., mask=PATHS or unmask=ALL|PATHS"
                        .into(),
                );
            }
        })
    }
}

/// Errors applying security options.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The seccomp profile could not be read or translated.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The seccomp profile file could not be read.
    #[error("--security-opt seccomp={path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether SELinux is enabled on this host.
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Applies the security options, in order. Runs after capabilities are
/// final: the default seccomp profile allows some system calls only to
/// holders of some capabilities (mount with CAP_SYS_ADMIN, ...).
pub fn apply(spec: &mut Spec, options: &[SecurityOpt]) -> Result<(), SecurityError> {
    let mut seccomp_choice = None;
    let mut label_parts: Vec<(String, String)> = Vec::new();
    for option in options {
        match option {
            SecurityOpt::NoNewPrivileges(on) => {
                if let Some(process) = spec.process_mut() {
                    process.set_no_new_privileges(Some(*on));
                }
            }
            SecurityOpt::SeccompUnconfined | SecurityOpt::SeccompProfile(_) => {
                seccomp_choice = Some(option);
            }
            SecurityOpt::Apparmor(profile) => {
                if let Some(process) = spec.process_mut() {
                    process
                        .set_apparmor_profile(Some(profile.clone()).filter(|p| p != "unconfined"));
                }
            }
            SecurityOpt::LabelDisable => label_parts.clear(),
            SecurityOpt::Label(kind, value) => {
                label_parts.retain(|(k, _)| k != kind);
                label_parts.push((kind.clone(), value.clone()));
            }
            SecurityOpt::Mask(paths) => {
                let linux = spec.linux_mut().get_or_insert_default();
                let masked = linux.masked_paths_mut().get_or_insert_default();
                for path in paths {
                    if !masked.contains(path) {
                        masked.push(path.clone());
                    }
                }
            }
            SecurityOpt::Unmask(unmask) => {
                let linux = spec.linux_mut().get_or_insert_default();
                let keep = |p: &String| match unmask {
                    Unmask::All => false,
                    Unmask::Paths(paths) => !paths.contains(p),
                };
                if let Some(masked) = linux.masked_paths_mut() {
                    masked.retain(keep);
                }
                if let Some(readonly) = linux.readonly_paths_mut() {
                    readonly.retain(keep);
                }
            }
        }
    }
    apply_label(spec, &label_parts);

    let bounding = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .map(|c| caps::get(c, CapSet::Bounding))
        .unwrap_or_default();
    let profile = match seccomp_choice {
        Some(SecurityOpt::SeccompUnconfined) => None,
        Some(SecurityOpt::SeccompProfile(path)) => {
            let limit = crate::sys::bounded::CONFIG_LIMIT;
            let text =
                crate::sys::bounded::read_bounded_to_string(path, limit).map_err(|source| {
                    SecurityError::Read {
                        path: path.clone(),
                        source,
                    }
                })?;
            Some(seccomp::from_docker_json(&text, path, &bounding)?)
        }
        _ => Some(seccomp::default_profile(&bounding)?),
    };
    spec.linux_mut()
        .get_or_insert_default()
        .set_seccomp(profile);
    Ok(())
}

/// The SELinux process label from `label=` parts: applied only where
/// SELinux is enabled, as podman does; elsewhere a label would make the
/// runtime fail.
fn apply_label(spec: &mut Spec, parts: &[(String, String)]) {
    if parts.is_empty() {
        return;
    }
    if !selinux_enabled() {
        tracing::debug!("SELinux is not enabled: --security-opt label=... is not applied");
        return;
    }
    let part = |kind: &str, default: &str| {
        parts
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(default.to_string(), |(_, v)| v.clone())
    };
    let label = format!(
        "{}:{}:{}:{}",
        part("user", "system_u"),
        part("role", "system_r"),
        part("type", "container_t"),
        part("level", "s0")
    );
    if let Some(process) = spec.process_mut() {
        process.set_selinux_label(Some(label));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        super::super::default_spec("id", &["sh".into()])
    }

    fn opts(values: &[&str]) -> Vec<SecurityOpt> {
        values.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn the_default_profile_applies_unless_unconfined() {
        let mut spec = spec();
        apply(&mut spec, &[]).unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_some());
        apply(&mut spec, &opts(&["seccomp=unconfined"])).unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn no_new_privileges_and_apparmor() {
        let mut spec = spec();
        apply(
            &mut spec,
            &opts(&["no-new-privileges", "apparmor=my-profile"]),
        )
        .unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        assert_eq!(process.apparmor_profile().as_deref(), Some("my-profile"));
    }

    #[test]
    fn mask_and_unmask() {
        let mut spec = spec();
        apply(
            &mut spec,
            &opts(&["mask=/proc/version:/etc/x", "unmask=/proc/kcore:/proc/sys"]),
        )
        .unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().clone().unwrap();
        assert!(masked.contains(&"/proc/version".into()));
        assert!(!masked.contains(&"/proc/kcore".into()));
        assert!(
            !linux
                .readonly_paths()
                .clone()
                .unwrap()
                .contains(&"/proc/sys".into())
        );
        apply(&mut spec, &opts(&["unmask=ALL"])).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().clone().unwrap().is_empty());
        assert!(linux.readonly_paths().clone().unwrap().is_empty());
    }

    #[test]
    fn a_missing_profile_names_the_file() {
        let error = apply(&mut spec(), &opts(&["seccomp=/nonexistent/profile.json"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/profile.json"), "{error}");
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "bogus",
            "mask=relative",
            "label=foo",
            "seccomp=",
            "no-new-privileges=maybe",
        ] {
            assert!(bad.parse::<SecurityOpt>().is_err(), "{bad}");
        }
        assert_eq!(
            "label=type:spc_t".parse::<SecurityOpt>(),
            Ok(SecurityOpt::Label("type".into(), "spc_t".into()))
        );
    }
}
