//! The container's mounts: the user's `--volume`, `--mount` and `--tmpfs`,
//! `--shm-size`, the bundle files bound at `/etc/hosts` and
//! `/etc/resolv.conf`, and the default mounts adjusted to the namespaces
//! the container shares with the host, as `buildah run` does.
//!
//! Values are parsed with [`FromStr`](std::str::FromStr) (clap's value
//! parsers, in `options`); [`apply`], in this file, then merges everything into the spec in buildah's precedence: explicit
//! mounts first, then the bound files, then the defaults, keeping only the
//! first mount at each destination. It reads host paths only (bind
//! sources, `/etc/hosts`, `/etc/resolv.conf`), never the rootfs, and
//! returns the files for the caller to write into the bundle (made in
//! `etc`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

mod error;
mod etc;
mod options;

pub use error::MountError;
pub use options::{
    Bind, HostEntry, MountArg, MountKind, Propagation, Relabel, Tmpfs, TmpfsMount, TmpfsSize,
    Volume,
};

use etc::{SYSTEMD_RESOLVED_CONF, hosts_file, resolv_conf};
use options::FsFlags;

/// The user's mount options, as the command line gives them.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// `--volume`.
    pub volumes: Vec<Volume>,
    /// `--mount`.
    pub mounts: Vec<MountArg>,
    /// `--tmpfs`.
    pub tmpfs: Vec<Tmpfs>,
    /// `--shm-size`, in bytes.
    pub shm_size: Option<u64>,
    /// `--no-hosts`: leave the rootfs's /etc/hosts alone.
    pub no_hosts: bool,
    /// `--add-host`.
    pub add_hosts: Vec<HostEntry>,
}

/// A file to write into the bundle directory before the runtime starts:
/// [`apply`] binds `bundle_dir/name` into the container, at `/etc/name`.
/// Write it with mode 0644, as the host's: every user in the container
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// The file name inside the bundle directory.
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// What [`apply`] reads from the host besides bind sources: taken in one
/// place so that [`apply_with_host`] is a function of its arguments.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The host's /etc/hosts, if it has one.
    pub hosts: Option<Vec<u8>>,
    /// The host's /etc/resolv.conf, if it has one.
    pub resolv_conf: Option<Vec<u8>>,
    /// systemd-resolved's list of upstream servers, if the host runs it.
    pub resolved_conf: Option<Vec<u8>>,
    /// Whether SELinux is enabled on the host.
    pub selinux: bool,
    /// Whether the host has /dev/shm, /dev/mqueue and /sys, which a
    /// container sharing its IPC or network binds in a user namespace.
    pub dev_shm: bool,
    /// See [`HostFacts::dev_shm`].
    pub dev_mqueue: bool,
    /// See [`HostFacts::dev_shm`].
    pub sys: bool,
}

impl HostFacts {
    /// Reads the facts of this host.
    pub fn read() -> Result<Self, MountError> {
        Ok(HostFacts {
            hosts: read_optional(Path::new("/etc/hosts"))?,
            resolv_conf: read_optional(Path::new("/etc/resolv.conf"))?,
            resolved_conf: read_optional(Path::new(SYSTEMD_RESOLVED_CONF))?,
            selinux: super::security::selinux_enabled(),
            dev_shm: Path::new("/dev/shm").exists(),
            dev_mqueue: Path::new("/dev/mqueue").exists(),
            sys: Path::new("/sys").exists(),
        })
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, MountError> {
    match std::fs::read(path) {
        Ok(contents) => Ok(Some(contents)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MountError::HostFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Sets the spec's mounts from `options`, the spec's own mounts (the
/// defaults) and the host's /etc/hosts and /etc/resolv.conf; returns the
/// files the caller must write into `bundle_dir` before starting the
/// runtime. Call it after the namespaces and the hostname are final: the
/// default mounts depend on them.
pub fn apply(
    spec: &mut Spec,
    options: &MountOptions,
    bundle_dir: &Path,
) -> Result<Vec<BundleFile>, MountError> {
    apply_with_host(spec, options, bundle_dir, &HostFacts::read()?)
}

/// [`apply`] with the host's files given.
pub fn apply_with_host(
    spec: &mut Spec,
    options: &MountOptions,
    bundle_dir: &Path,
    host: &HostFacts,
) -> Result<Vec<BundleFile>, MountError> {
    let sharing = Sharing::of(spec);
    let explicit = explicit_mounts(options, host)?;
    let covered = |destination: &str| {
        explicit
            .iter()
            .any(|m| m.destination() == Path::new(destination))
    };

    let mut files = Vec::new();
    if !options.no_hosts && !covered("/etc/hosts") {
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        files.push(BundleFile {
            name: "hosts".into(),
            contents: hosts_file(host.hosts.as_deref(), &options.add_hosts, hostname),
        });
    }
    if !covered("/etc/resolv.conf") {
        match &host.resolv_conf {
            Some(contents) => files.push(BundleFile {
                name: "resolv.conf".into(),
                contents: resolv_conf(
                    contents,
                    host.resolved_conf.as_deref(),
                    sharing.host_network,
                ),
            }),
            None => tracing::debug!("the host has no /etc/resolv.conf: none is bound"),
        }
    }
    let readonly_root = spec.root().as_ref().and_then(|r| r.readonly()) == Some(true);
    let bound_files = files.iter().map(|file| {
        let mut mount = Mount::default();
        mount.set_destination(PathBuf::from("/etc").join(&file.name));
        mount.set_typ(Some("bind".into()));
        mount.set_source(Some(bundle_dir.join(&file.name)));
        let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev", "noexec"];
        // As podman: a read-only root keeps these read-only too.
        if readonly_root {
            opts.push("ro");
        }
        mount.set_options(Some(opts.into_iter().map(String::from).collect()));
        mount
    });

    let defaults = default_mounts(
        spec.mounts().as_deref().unwrap_or_default(),
        options,
        &sharing,
        host,
    );

    // buildah's precedence: the first mount at a destination wins.
    let mut mounts: Vec<Mount> = Vec::new();
    for mount in explicit.into_iter().chain(bound_files).chain(defaults) {
        if mounts
            .iter()
            .any(|m| m.destination() == mount.destination())
        {
            tracing::debug!(
                destination = %mount.destination().display(),
                "mount replaced by one that takes precedence"
            );
            continue;
        }
        mounts.push(mount);
    }
    // Parents before children (a volume at /dev/x after the /dev tmpfs),
    // otherwise in precedence order, as buildah's SortMounts.
    mounts.sort_by_key(|m| m.destination().components().count());
    spec.set_mounts(Some(mounts));
    Ok(files)
}

/// Which namespaces the container shares with the host: a type absent
/// from `linux.namespaces` is the host's.
#[derive(Debug, Clone, Copy)]
struct Sharing {
    user_namespace: bool,
    host_ipc: bool,
    host_network: bool,
}

impl Sharing {
    fn of(spec: &Spec) -> Self {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let has = |typ: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == typ);
        Sharing {
            user_namespace: has(LinuxNamespaceType::User),
            host_ipc: !has(LinuxNamespaceType::Ipc),
            host_network: !has(LinuxNamespaceType::Network),
        }
    }
}

/// The explicit mounts, checked: sources exist, destinations unique.
fn explicit_mounts(options: &MountOptions, host: &HostFacts) -> Result<Vec<Mount>, MountError> {
    let binds = options.volumes.iter().map(|v| {
        (
            format!("--volume {}", v.raw),
            MountKind::Bind(v.bind.clone()),
        )
    });
    let mounts = options
        .mounts
        .iter()
        .map(|m| (format!("--mount {}", m.raw), m.kind.clone()));
    let tmpfs = options.tmpfs.iter().map(|t| {
        (
            format!("--tmpfs {}", t.raw),
            MountKind::Tmpfs(t.tmpfs.clone()),
        )
    });
    let mut seen: HashMap<PathBuf, String> = HashMap::new();
    let mut result = Vec::new();
    for (flag, kind) in binds.chain(mounts).chain(tmpfs) {
        let mount = match &kind {
            MountKind::Bind(bind) => {
                check_source(&flag, &bind.source)?;
                if let Some(relabel) = bind.relabel {
                    let option = if relabel == Relabel::Shared { "z" } else { "Z" };
                    if host.selinux {
                        tracing::warn!(
                            "{flag}: {option} ignored: specgate sets no SELinux labels, \
                             the source keeps its own"
                        );
                    } else {
                        tracing::debug!("{flag}: {option} ignored: SELinux is not enabled");
                    }
                }
                bind.to_mount(FsFlags::of(&bind.source))
            }
            MountKind::Tmpfs(tmpfs) => tmpfs.to_mount(),
        };
        if let Some(first) = seen.insert(mount.destination().clone(), flag.clone()) {
            return Err(MountError::Duplicate {
                first,
                second: flag,
                destination: mount.destination().clone(),
            });
        }
        result.push(mount);
    }
    Ok(result)
}

fn check_source(flag: &str, source: &Path) -> Result<(), MountError> {
    match std::fs::metadata(source) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(MountError::SourceMissing {
            flag: flag.into(),
            path: source.to_path_buf(),
        }),
        Err(e) => Err(MountError::SourceUnreadable {
            flag: flag.into(),
            path: source.to_path_buf(),
            source: e,
        }),
    }
}

/// The spec's own mounts with buildah's changes for shared namespaces and
/// `--shm-size`.
fn default_mounts(
    mounts: &[Mount],
    options: &MountOptions,
    sharing: &Sharing,
    host: &HostFacts,
) -> Vec<Mount> {
    let host_bind = |path: &str, exists: bool, readonly: bool| -> Option<Mount> {
        if !exists {
            tracing::debug!("the host has no {path}: not mounted");
            return None;
        }
        let mut mount = Mount::default();
        mount.set_destination(path.into());
        mount.set_typ(Some("bind".into()));
        mount.set_source(Some(path.into()));
        let mut opts = vec!["rbind", "nosuid", "noexec", "nodev"];
        if readonly {
            opts.push("ro");
        }
        mount.set_options(Some(opts.into_iter().map(String::from).collect()));
        Some(mount)
    };
    // Without their own namespace, a user namespace cannot mount a new
    // /sys, shm or mqueue for the host's network or IPC: bind the host's.
    let bind_ipc = sharing.host_ipc && sharing.user_namespace;
    let bind_sys = sharing.host_network && sharing.user_namespace;
    let mut result = Vec::new();
    for mount in mounts {
        let destination = mount.destination().to_string_lossy();
        let replaced = match destination.as_ref() {
            "/dev/shm" if bind_ipc => {
                if options.shm_size.is_some() {
                    tracing::debug!("--shm-size ignored: /dev/shm is the host's");
                }
                host_bind("/dev/shm", host.dev_shm, false)
            }
            "/dev/shm" => Some(with_shm_size(mount, options.shm_size)),
            "/dev/mqueue" if bind_ipc => host_bind("/dev/mqueue", host.dev_mqueue, false),
            "/sys" if bind_sys => host_bind("/sys", host.sys, true),
            // /sys is bound recursively, cgroups included.
            "/sys/fs/cgroup" if bind_sys && mount.typ().as_deref() == Some("cgroup") => None,
            _ => Some(mount.clone()),
        };
        result.extend(replaced);
    }
    result
}

fn with_shm_size(mount: &Mount, size: Option<u64>) -> Mount {
    let mut mount = mount.clone();
    if let Some(size) = size {
        let mut opts: Vec<String> = mount
            .options()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.starts_with("size="))
            .collect();
        opts.push(format!("size={size}"));
        mount.set_options(Some(opts));
    }
    mount
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::default_spec;
    use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder};

    fn spec() -> Spec {
        default_spec("0123456789abcdef", &["/bin/true".into()])
    }

    fn host() -> HostFacts {
        HostFacts {
            hosts: Some(b"127.0.0.1\tlocalhost\n".to_vec()),
            resolv_conf: Some(b"search example.com\nnameserver 192.0.2.1\n".to_vec()),
            resolved_conf: None,
            selinux: false,
            dev_shm: true,
            dev_mqueue: true,
            sys: true,
        }
    }

    fn run(spec: &mut Spec, options: &MountOptions) -> Vec<BundleFile> {
        apply_with_host(spec, options, Path::new("/run/specgate/c1"), &host())
            .unwrap_or_else(|e| panic!("apply: {e}"))
    }

    fn mount_at<'a>(spec: &'a Spec, destination: &str) -> Option<&'a Mount> {
        spec.mounts()
            .as_ref()?
            .iter()
            .find(|m| m.destination() == Path::new(destination))
    }

    fn options_at(spec: &Spec, destination: &str) -> Vec<String> {
        mount_at(spec, destination)
            .and_then(|m| m.options().clone())
            .unwrap_or_else(|| panic!("no mount at {destination}"))
    }

    fn count_at(spec: &Spec, destination: &str) -> usize {
        spec.mounts()
            .iter()
            .flatten()
            .filter(|m| m.destination() == Path::new(destination))
            .count()
    }

    fn with_namespaces(spec: &mut Spec, types: &[LinuxNamespaceType]) {
        let namespaces: Vec<LinuxNamespace> = types
            .iter()
            .map(|t| {
                LinuxNamespaceBuilder::default()
                    .typ(*t)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        if let Some(linux) = spec.linux_mut() {
            linux.set_namespaces(Some(namespaces));
        }
    }

    fn volume(value: &str) -> Volume {
        value.parse().unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn default_mounts_stay_when_nothing_is_asked() {
        let mut spec = spec();
        let before: Vec<PathBuf> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect();
        let files = run(&mut spec, &MountOptions::default());
        for destination in &before {
            assert_eq!(count_at(&spec, &destination.to_string_lossy()), 1);
        }
        assert_eq!(
            files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["hosts", "resolv.conf"]
        );
        let hosts = mount_at(&spec, "/etc/hosts").unwrap_or_else(|| panic!("no /etc/hosts"));
        assert_eq!(
            hosts.source().as_deref(),
            Some(Path::new("/run/specgate/c1/hosts"))
        );
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert_eq!(
            options_at(&spec, "/etc/resolv.conf"),
            strings(&["rbind", "rprivate", "nosuid", "nodev", "noexec"])
        );
    }

    #[test]
    fn mounts_come_parents_first() {
        let dir = tempdir();
        let src = dir.path().to_string_lossy().to_string();
        let mut spec = spec();
        let options = MountOptions {
            volumes: vec![volume(&format!("{src}:/dev/data"))],
            ..Default::default()
        };
        run(&mut spec, &options);
        let order: Vec<PathBuf> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect();
        let at = |p: &str| order.iter().position(|d| d == Path::new(p));
        assert!(at("/dev") < at("/dev/data"));
        assert!(at("/sys") < at("/sys/fs/cgroup"));
        let depths: Vec<usize> = order.iter().map(|d| d.components().count()).collect();
        assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    }

    #[test]
    fn shm_size_sets_the_dev_shm_size() {
        let mut spec = spec();
        let options = MountOptions {
            shm_size: Some(1 << 30),
            ..Default::default()
        };
        run(&mut spec, &options);
        let opts = options_at(&spec, "/dev/shm");
        assert!(opts.contains(&"size=1073741824".to_string()), "{opts:?}");
        assert_eq!(opts.iter().filter(|o| o.starts_with("size=")).count(), 1);
        assert!(opts.contains(&"mode=1777".to_string()));
    }

    #[test]
    fn host_ipc_in_a_user_namespace_binds_the_hosts_shm_and_mqueue() {
        let mut spec = spec();
        with_namespaces(
            &mut spec,
            &[
                LinuxNamespaceType::User,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Pid,
            ],
        );
        run(&mut spec, &MountOptions::default());
        for path in ["/dev/shm", "/dev/mqueue"] {
            let mount = mount_at(&spec, path).unwrap_or_else(|| panic!("no {path}"));
            assert_eq!(mount.typ().as_deref(), Some("bind"));
            assert_eq!(mount.source().as_deref(), Some(Path::new(path)));
            assert_eq!(
                options_at(&spec, path),
                strings(&["rbind", "nosuid", "noexec", "nodev"])
            );
        }
        assert_eq!(
            mount_at(&spec, "/sys").and_then(|m| m.typ().clone()),
            Some("sysfs".into())
        );
    }

    #[test]
    fn a_host_ipc_directory_the_host_lacks_is_not_mounted() {
        let mut spec = spec();
        with_namespaces(
            &mut spec,
            &[LinuxNamespaceType::User, LinuxNamespaceType::Mount],
        );
        let host = HostFacts {
            dev_mqueue: false,
            ..host()
        };
        apply_with_host(&mut spec, &MountOptions::default(), Path::new("/b"), &host)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(mount_at(&spec, "/dev/mqueue").is_none());
        assert!(mount_at(&spec, "/dev/shm").is_some());
    }

    #[test]
    fn host_ipc_without_a_user_namespace_keeps_a_fresh_shm() {
        let mut spec = spec();
        with_namespaces(&mut spec, &[LinuxNamespaceType::Mount]);
        run(&mut spec, &MountOptions::default());
        assert_eq!(
            mount_at(&spec, "/dev/shm").and_then(|m| m.typ().clone()),
            Some("tmpfs".into())
        );
        assert_eq!(
            mount_at(&spec, "/sys").and_then(|m| m.typ().clone()),
            Some("sysfs".into())
        );
    }

    #[test]
    fn host_network_in_a_user_namespace_binds_sys_read_only_without_cgroup() {
        let mut spec = spec();
        with_namespaces(
            &mut spec,
            &[
                LinuxNamespaceType::User,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Ipc,
            ],
        );
        run(&mut spec, &MountOptions::default());
        let sys = mount_at(&spec, "/sys").unwrap_or_else(|| panic!("no /sys"));
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert_eq!(
            options_at(&spec, "/sys"),
            strings(&["rbind", "nosuid", "noexec", "nodev", "ro"])
        );
        assert!(mount_at(&spec, "/sys/fs/cgroup").is_none());
        assert_eq!(
            mount_at(&spec, "/dev/shm").and_then(|m| m.typ().clone()),
            Some("tmpfs".into())
        );
    }

    #[test]
    fn explicit_mounts_replace_defaults_at_their_destination() {
        let dir = tempdir();
        let src = dir.path().to_string_lossy().to_string();
        let mut spec = spec();
        let options = MountOptions {
            volumes: vec![volume(&format!("{src}:/etc/resolv.conf:ro"))],
            tmpfs: vec!["/dev/shm:size=1m".parse().unwrap_or_else(|e| panic!("{e}"))],
            shm_size: Some(4096),
            ..Default::default()
        };
        let files = run(&mut spec, &options);
        assert_eq!(count_at(&spec, "/dev/shm"), 1);
        assert!(options_at(&spec, "/dev/shm").contains(&"size=1048576".to_string()));
        assert_eq!(count_at(&spec, "/etc/resolv.conf"), 1);
        assert_eq!(
            mount_at(&spec, "/etc/resolv.conf").and_then(|m| m.source().clone()),
            Some(dir.path().to_path_buf())
        );
        assert!(files.iter().all(|f| f.name != "resolv.conf"));
    }

    #[test]
    fn two_explicit_mounts_at_one_destination_are_refused() {
        let dir = tempdir();
        let src = dir.path().to_string_lossy().to_string();
        let options = MountOptions {
            volumes: vec![volume(&format!("{src}:/data"))],
            tmpfs: vec!["/data/".parse().unwrap_or_else(|e| panic!("{e}"))],
            ..Default::default()
        };
        let e = apply_with_host(&mut spec(), &options, Path::new("/b"), &host())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(format!("--volume {src}:/data and --tmpfs /data/ both mount at /data").as_str())
        );
    }

    #[test]
    fn a_missing_bind_source_is_named_with_its_flag() {
        let options = MountOptions {
            mounts: vec![
                "type=bind,src=/nonexistent/specgate,dst=/x"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            ..Default::default()
        };
        let e = apply_with_host(&mut spec(), &options, Path::new("/b"), &host())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "--mount type=bind,src=/nonexistent/specgate,dst=/x: \
                 bind source /nonexistent/specgate does not exist"
            )
        );
    }

    #[test]
    fn relabelling_is_ignored_without_selinux() {
        let dir = tempdir();
        let src = dir.path().to_string_lossy().to_string();
        let mut spec = spec();
        let options = MountOptions {
            volumes: vec![volume(&format!("{src}:/data:Z"))],
            ..Default::default()
        };
        run(&mut spec, &options);
        assert!(!options_at(&spec, "/data").iter().any(|o| o == "Z"));
    }

    #[test]
    fn hosts_file_holds_added_hosts_the_hosts_file_and_the_hostname() {
        let mut spec = spec();
        let options = MountOptions {
            add_hosts: vec!["db:192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"))],
            ..Default::default()
        };
        let files = run(&mut spec, &options);
        let hosts = files
            .iter()
            .find(|f| f.name == "hosts")
            .map(|f| String::from_utf8_lossy(&f.contents).to_string())
            .unwrap_or_default();
        assert_eq!(
            hosts,
            "# Generated by specgate\n\
             192.0.2.7\tdb\n\
             127.0.0.1\tlocalhost\n\
             127.0.0.1\t0123456789ab\n\
             ::1\t0123456789ab\n"
        );
    }

    #[test]
    fn no_hosts_leaves_etc_hosts_alone() {
        let mut spec = spec();
        let options = MountOptions {
            no_hosts: true,
            ..Default::default()
        };
        let files = run(&mut spec, &options);
        assert!(files.iter().all(|f| f.name != "hosts"));
        assert!(mount_at(&spec, "/etc/hosts").is_none());
    }

    #[test]
    fn a_read_only_root_binds_the_files_read_only() {
        let mut spec = spec();
        crate::spec::use_host_rootfs(&mut spec);
        run(&mut spec, &MountOptions::default());
        assert!(options_at(&spec, "/etc/hosts").contains(&"ro".to_string()));
    }

    #[test]
    fn the_host_network_is_read_from_the_namespaces() {
        let mut spec = spec();
        with_namespaces(&mut spec, &[LinuxNamespaceType::Mount]);
        let host = HostFacts {
            resolv_conf: Some(b"nameserver 127.0.0.53\n".to_vec()),
            ..host()
        };
        let files = apply_with_host(&mut spec, &MountOptions::default(), Path::new("/b"), &host)
            .unwrap_or_else(|e| panic!("{e}"));
        let resolv = files.iter().find(|f| f.name == "resolv.conf");
        assert_eq!(
            resolv.map(|f| f.contents.as_slice()),
            Some(b"nameserver 127.0.0.53\n".as_slice())
        );
    }

    #[test]
    fn the_resulting_spec_satisfies_the_schema() {
        let dir = tempdir();
        let src = dir.path().to_string_lossy().to_string();
        let mut spec = spec();
        let options = MountOptions {
            volumes: vec![volume(&format!("{src}:/data:ro,z,rshared"))],
            mounts: vec![
                format!("type=bind,src={src},dst=/other,bind-nonrecursive")
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
                "type=tmpfs,dst=/cache,tmpfs-size=10m"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            tmpfs: vec![
                "/scratch:size=1m,mode=1777"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            shm_size: Some(1 << 20),
            no_hosts: false,
            add_hosts: vec!["db:192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"))],
        };
        run(&mut spec, &options);
        let value = serde_json::to_value(&spec).unwrap_or_else(|e| panic!("{e}"));
        if let Err(errors) = specgate_tests::validate_config(&value) {
            panic!("schema violations:\n{errors}");
        }
        for m in spec.mounts().iter().flatten() {
            assert!(m.destination().is_absolute());
        }
    }
}
