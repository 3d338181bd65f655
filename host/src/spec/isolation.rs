//! `--isolation`: how the container is run, and the spec changes a
//! rootless run needs.

use std::path::Path;

use oci_spec::runtime::{Mount, Spec};

use super::namespaces::{Mode, NamespaceOptions, Network, UserNs};

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
