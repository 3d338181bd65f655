//! `--isolation`: how the container is run, and the spec changes a
//! rootless run needs.

use std::path::Path;

use oci_spec::runtime::{Mount, Spec};

use super::namespaces::{Mode, NamespaceOptions, Network, UserNs};
use super::subids::{self, CallerMaps, SubidError};

/// Where the kernel says how many user namespaces may exist (0: none).
pub const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";
/// Debian's and Ubuntu's older switch for unprivileged user namespaces.
pub const UNPRIVILEGED_USERNS_CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";

/// Errors preparing a rootless run.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The subordinate ids could not be read, or a given map is not the
    /// caller's.
    #[error(transparent)]
    Subids(#[from] SubidError),
    /// A sysctl disables user namespaces.
    #[error(
        "--isolation rootless needs user namespaces, which are disabled: {sysctl} is {value} (as root: `sysctl -w {sysctl}={wanted}`)"
    )]
    Disabled {
        /// The sysctl, e.g. `user.max_user_namespaces`.
        sysctl: &'static str,
        /// Its value.
        value: String,
        /// A value that enables them.
        wanted: &'static str,
    },
    /// A given map makes someone else the container's root.
    #[error(
        "{flag} {maps}: in a rootless run the container's root must be you (0 to 0, as podman counts): runc, unprivileged, can give its stdio to no other id"
    )]
    RootNotCaller {
        /// `--uidmap` or `--gidmap`.
        flag: &'static str,
        /// The maps as given.
        maps: String,
    },
    /// Creating a user namespace failed although no sysctl forbids it.
    #[error(
        "--isolation rootless needs user namespaces, and this process cannot create one: unshare(CLONE_NEWUSER): {0} (check user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, or the seccomp policy of a container specgate runs in)"
    )]
    Unavailable(nix::Error),
}

/// Fails, naming the sysctl, when user namespaces are disabled:
/// `user.max_user_namespaces` 0 or `kernel.unprivileged_userns_clone` 0;
/// else tries to create one.
pub fn check_user_namespaces() -> Result<(), RootlessError> {
    let read = |path| std::fs::read_to_string(path).ok();
    disabled_by(read(MAX_USER_NAMESPACES), read(UNPRIVILEGED_USERNS_CLONE))?;
    crate::sys::probe_user_namespace().map_err(RootlessError::Unavailable)
}

/// The sysctl that disables user namespaces, given the values of
/// `user.max_user_namespaces` and `kernel.unprivileged_userns_clone`
/// (none where the kernel lacks it).
fn disabled_by(max: Option<String>, clone: Option<String>) -> Result<(), RootlessError> {
    let is_zero = |v: &Option<String>| v.as_deref().map(str::trim) == Some("0");
    if is_zero(&max) {
        return Err(RootlessError::Disabled {
            sysctl: "user.max_user_namespaces",
            value: "0".into(),
            wanted: "15000",
        });
    }
    if is_zero(&clone) && !nix::unistd::geteuid().is_root() {
        return Err(RootlessError::Disabled {
            sysctl: "kernel.unprivileged_userns_clone",
            value: "0".into(),
            wanted: "1",
        });
    }
    Ok(())
}

/// Sets the id maps of a rootless run: the caller's ([`CallerMaps`]),
/// or `--uidmap`/`--gidmap` read in the caller's user namespace, as
/// podman reads them.
pub fn set_id_maps(spec: &mut Spec, options: &NamespaceOptions) -> Result<(), RootlessError> {
    let caller = CallerMaps::of_caller()?;
    if let Some(why) = &caller.single_because {
        tracing::warn!(
            "--isolation rootless: only your own uid and gid are mapped into the container ({why}); files owned by other ids cannot be used"
        );
    }
    let pick =
        |given: &[super::namespaces::IdMap], outer: &[super::namespaces::IdMap], flag, file| {
            if given.is_empty() {
                Ok(outer.to_vec())
            } else {
                subids::translate(given, outer, flag, file)
            }
        };
    let uid = pick(&options.uid_maps, &caller.uid, "--uidmap", subids::SUBUID)?;
    let gid = pick(&options.gid_maps, &caller.gid, "--gidmap", subids::SUBGID)?;
    root_is_caller(&uid, &caller.uid, &options.uid_maps, "--uidmap")?;
    root_is_caller(&gid, &caller.gid, &options.gid_maps, "--gidmap")?;
    let linux = spec.linux_mut().get_or_insert_default();
    linux.set_uid_mappings(Some(uid.into_iter().map(Into::into).collect()));
    linux.set_gid_mappings(Some(gid.into_iter().map(Into::into).collect()));
    Ok(())
}

/// Refuses maps (translated to host ids) whose container root is not the
/// caller's own id, `outer[0]`.
fn root_is_caller(
    maps: &[super::namespaces::IdMap],
    outer: &[super::namespaces::IdMap],
    given: &[super::namespaces::IdMap],
    flag: &'static str,
) -> Result<(), RootlessError> {
    let root =
        |maps: &[super::namespaces::IdMap]| maps.iter().find(|m| m.container == 0).map(|m| m.host);
    if root(maps) == root(outer) {
        return Ok(());
    }
    Err(RootlessError::RootNotCaller {
        flag,
        maps: given
            .iter()
            .map(|m| format!("{}:{}:{}", m.container, m.host, m.size))
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// The embedded default rootfs of a rootless run: the runtime binds the
/// host's `/`, recursively read-only, over the bundle's empty `rootfs`
/// as the container's first mount. It does so inside the container's
/// own user and mount namespaces, which an unprivileged user may do and
/// specgate, outside them, may not; the mount vanishes with the
/// container.
pub fn bind_host_root(spec: &mut Spec) {
    let mut root = Mount::default();
    root.set_destination("/".into());
    root.set_typ(Some("bind".into()));
    root.set_source(Some("/".into()));
    root.set_options(Some(vec!["rbind".into(), "rro".into()]));
    spec.mounts_mut().get_or_insert_default().insert(0, root);
}

/// How the container is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// An OCI runtime, as root.
    Oci,
    /// An OCI runtime in a user namespace, as an unprivileged user.
    Rootless,
    /// No runtime: namespaces and chroot set up by specgate itself.
    Chroot,
}

impl Isolation {
    /// `oci` for root, `rootless` for everyone else (as buildah does).
    pub fn default_for_caller() -> Self {
        if nix::unistd::geteuid().is_root() {
            Isolation::Oci
        } else {
            Isolation::Rootless
        }
    }

    /// The namespace options a rootless run must use, whatever was asked
    /// (buildah's rules): its own user, PID and IPC namespaces, and the
    /// host's network and UTS namespaces, which an unprivileged user
    /// cannot configure.
    pub fn force_namespaces(self, options: &mut NamespaceOptions) {
        if self != Isolation::Rootless {
            return;
        }
        let forced = [
            ("--ipc", options.ipc != Mode::Private),
            ("--pid", options.pid != Mode::Private),
            ("--network", options.network != Network::Host),
            ("--uts", options.uts != Mode::Host),
            ("--userns", options.user != UserNs::Private),
        ];
        for (flag, changed) in forced {
            if changed {
                tracing::debug!("--isolation rootless overrides {flag}");
            }
        }
        options.ipc = Mode::Private;
        options.pid = Mode::Private;
        options.network = Network::Host;
        options.uts = Mode::Host;
        options.user = UserNs::Private;
        options.hostname = None;
    }
}

/// The spec changes of a rootless run (buildah's): no supplementary
/// groups and no cgroup resources, which an unprivileged user cannot
/// set; a tmpfs /dev with its own devpts, mqueue and shm; /sys bound
/// read-only from the host (sysfs cannot be mounted without a network
/// namespace of its own), with /sys/fs/cgroup and /sys/fs/selinux masked;
/// every other mount under /dev, /proc and /sys replaced.
pub fn rootless_changes(spec: &mut Spec) {
    spec.set_hostname(None);
    if let Some(process) = spec.process_mut() {
        let mut user = process.user().clone();
        user.set_additional_gids(None);
        process.set_user(user);
    }
    let linux = spec.linux_mut().get_or_insert_default();
    linux.set_resources(None);
    let masked = linux.masked_paths_mut().get_or_insert_default();
    for path in ["/sys/fs/cgroup", "/sys/fs/selinux"] {
        if Path::new(path).exists() && !masked.iter().any(|p| p == path) {
            masked.push(path.to_string());
        }
    }
    let mount = |destination: &str, typ: &str, source: &str, options: &[&str]| {
        let mut m = Mount::default();
        m.set_destination(destination.into());
        m.set_typ(Some(typ.into()));
        m.set_source(Some(source.into()));
        m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
        m
    };
    let mut mounts = vec![
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &[
                "private",
                "strictatime",
                "noexec",
                "nosuid",
                "mode=755",
                "size=65536k",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["private", "nodev", "noexec", "nosuid"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "private",
                "noexec",
                "nosuid",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "private",
                "nodev",
                "noexec",
                "nosuid",
                "mode=1777",
                "size=65536k",
            ],
        ),
        mount(
            "/proc",
            "proc",
            "proc",
            &["private", "nodev", "noexec", "nosuid"],
        ),
        mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "private", "nodev", "noexec", "nosuid", "ro"],
        ),
    ];
    let under = |dest: &Path, top: &str| dest == Path::new(top) || dest.starts_with(top);
    mounts.extend(
        spec.mounts()
            .iter()
            .flatten()
            .filter(|m| {
                let d = m.destination();
                !under(d, "/dev") && !under(d, "/proc") && !under(d, "/sys")
            })
            .cloned(),
    );
    spec.set_mounts(Some(mounts));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_user_namespaces_name_their_sysctl() {
        let err = disabled_by(Some("0\n".into()), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--isolation rootless needs user namespaces, which are disabled: user.max_user_namespaces is 0 (as root: `sysctl -w user.max_user_namespaces=15000`)"
        );
        if !nix::unistd::geteuid().is_root() {
            let err = disabled_by(Some("100".into()), Some("0".into())).unwrap_err();
            assert!(
                err.to_string()
                    .contains("kernel.unprivileged_userns_clone is 0")
            );
        }
        assert!(disabled_by(Some("100".into()), Some("1".into())).is_ok());
        assert!(disabled_by(None, None).is_ok());
    }

    #[test]
    fn the_containers_root_must_be_the_caller() {
        use super::super::namespaces::IdMap;
        let map = |container, host, size| IdMap {
            container,
            host,
            size,
        };
        let outer = [map(0, 1000, 1), map(1, 100000, 65536)];
        assert!(root_is_caller(&[map(0, 1000, 1)], &outer, &[map(0, 0, 1)], "--uidmap").is_ok());
        let err = root_is_caller(&[map(0, 100000, 10)], &outer, &[map(0, 1, 10)], "--uidmap")
            .unwrap_err();
        assert!(err.to_string().starts_with("--uidmap 0:1:10: "), "{err}");
    }

    #[test]
    fn the_host_root_is_the_first_mount_read_only() {
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        rootless_changes(&mut spec);
        bind_host_root(&mut spec);
        let first = &spec.mounts().as_ref().unwrap()[0];
        assert_eq!(first.destination(), Path::new("/"));
        assert_eq!(
            first.options().as_deref(),
            Some(&["rbind".to_string(), "rro".to_string()][..])
        );
    }

    #[test]
    fn rootless_forces_its_namespaces() {
        let mut options = NamespaceOptions {
            network: Network::Private,
            hostname: Some("web".into()),
            ..Default::default()
        };
        Isolation::Rootless.force_namespaces(&mut options);
        assert_eq!(options.network, Network::Host);
        assert_eq!(options.uts, Mode::Host);
        assert_eq!(options.user, UserNs::Private);
        assert_eq!(options.hostname, None);
        let mut untouched = NamespaceOptions::default();
        Isolation::Oci.force_namespaces(&mut untouched);
        assert_eq!(untouched.user, UserNs::Host);
    }

    #[test]
    fn rootless_changes_replace_dev_proc_and_sys_and_keep_the_rest() {
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        let mut tmp = Mount::default();
        tmp.set_destination("/tmp".into());
        tmp.set_typ(Some("tmpfs".into()));
        spec.mounts_mut().get_or_insert_default().push(tmp);
        rootless_changes(&mut spec);
        let mounts = spec.mounts().clone().unwrap();
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert!(
            mounts
                .iter()
                .all(|m| m.destination() != Path::new("/sys/fs/cgroup"))
        );
        assert!(mounts.iter().any(|m| m.destination() == Path::new("/tmp")));
        assert!(spec.linux().as_ref().unwrap().resources().is_none());
    }
}
