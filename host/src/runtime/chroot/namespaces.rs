//! The container's namespaces, from `linux.namespaces`: those with a
//! `path` are joined (opened here, before the fork), the others created;
//! the new user namespace gets the spec's id mappings, written by the
//! parent as runc does.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::error::ChrootError;

/// How the child enters its namespaces.
#[derive(Debug)]
pub struct Plan {
    /// Namespaces to join, the user namespace first (joining it first
    /// gives the rights to join the others it owns), with their paths.
    pub join: Vec<(OwnedFd, libc::c_int, PathBuf)>,
    /// Whether a user namespace is created.
    pub new_user: bool,
    /// The other namespaces created.
    pub unshare: libc::c_int,
    /// Whether the PID or time namespace changes, which only the
    /// children of the process that changes it enter.
    pub fork_again: bool,
}

fn flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The plan for `spec`. A mount namespace is always used, new unless one
/// is joined: the container's mounts must never land in the host's.
pub fn plan(spec: &Spec) -> Result<Plan, ChrootError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut join = Vec::new();
    let mut new_user = false;
    let mut unshare = 0;
    let mut mount_joined = false;
    let mut fork_again = false;
    for ns in &namespaces {
        let flag = flag(ns.typ());
        if matches!(ns.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            fork_again = true;
        }
        match ns.path() {
            Some(path) => {
                let fd = std::fs::File::open(path).map_err(|source| ChrootError::Namespace {
                    path: path.clone(),
                    source,
                })?;
                if ns.typ() == LinuxNamespaceType::Mount {
                    mount_joined = true;
                }
                join.push((OwnedFd::from(fd), flag, path.clone()));
            }
            None if ns.typ() == LinuxNamespaceType::User => new_user = true,
            None => unshare |= flag,
        }
    }
    if !mount_joined {
        unshare |= libc::CLONE_NEWNS;
    }
    join.sort_by_key(|(_, flag, _)| *flag != libc::CLONE_NEWUSER);
    Ok(Plan {
        join,
        new_user,
        unshare,
        fork_again,
    })
}

/// The text of a uid_map or gid_map file.
fn map_text(mappings: &[LinuxIdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes the spec's id mappings for the user namespace of `pid`.
pub fn write_mappings(spec: &Spec, pid: libc::pid_t) -> Result<(), ChrootError> {
    let linux = spec.linux().as_ref();
    let maps = [
        ("gid_map", linux.and_then(|l| l.gid_mappings().clone())),
        ("uid_map", linux.and_then(|l| l.uid_mappings().clone())),
    ];
    for (file, mappings) in maps {
        let mappings = mappings.unwrap_or_default();
        if mappings.is_empty() {
            continue;
        }
        let path = Path::new("/proc").join(pid.to_string()).join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(map_text(&mappings).as_bytes()))
            .map_err(|source| ChrootError::Mapping { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_namespaces_are_unshared_and_a_mount_namespace_is_always_made() {
        let mut spec = crate::spec::default_spec("id", &["sh".into()]);
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut namespaces = linux.namespaces().clone().unwrap();
        namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Mount);
        linux.set_namespaces(Some(namespaces));
        let plan = plan(&spec).unwrap();
        assert!(plan.unshare & libc::CLONE_NEWNS != 0);
        assert!(plan.unshare & libc::CLONE_NEWPID != 0);
        assert!(plan.fork_again);
        assert!(!plan.new_user);
        assert!(plan.join.is_empty());
    }

    #[test]
    fn a_missing_namespace_path_is_named() {
        let mut spec = crate::spec::default_spec("id", &["sh".into()]);
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut namespaces = linux.namespaces().clone().unwrap();
        for ns in &mut namespaces {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some("/nonexistent/net".into()));
            }
        }
        linux.set_namespaces(Some(namespaces));
        let error = plan(&spec).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/net"), "{error}");
    }

    #[test]
    fn mappings_are_written_one_range_a_line() {
        let mapping = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        assert_eq!(map_text(&[mapping]), "0 100000 65536\n");
    }
}
