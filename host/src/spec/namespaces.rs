//! The container's namespaces: `--network`, `--pid`, `--ipc`, `--uts`,
//! `--cgroupns`, `--userns`, `--uidmap`/`--gidmap` and `--hostname`.

use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Spec,
};

/// Errors combining namespace options.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// A user namespace with the host's PID namespace: the container's
    /// root would see, and could signal, host processes it has no
    /// mapping for.
    #[error("--pid host: not allowed with a user namespace (--userns, --uidmap or --gidmap)")]
    HostPidWithUserNamespace,
    /// A hostname without a UTS namespace of the container's own.
    #[error("--hostname {0}: needs a private UTS namespace (not --uts host or ns:PATH)")]
    HostnameWithoutUts(String),
    /// A hostname that is not an RFC 1123 name of at most 64 bytes: it
    /// goes into the container's /etc/hosts, where a newline would add
    /// entries of the caller's choosing.
    #[error(
        "--hostname {0:?}: not a valid hostname (letters, digits and hyphens in dot-separated labels of 1 to 63 characters, not starting or ending with a hyphen; at most 64 bytes)"
    )]
    InvalidHostname(String),
    /// `/proc/self/uid_map` or `gid_map` could not be read.
    #[error("cannot read {path}: {source}")]
    IdMap {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Where one namespace of the container comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// The host's (specgate's own).
    Host,
    /// An existing namespace, by path (`ns:PATH`).
    Path(PathBuf),
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "private" => Ok(Mode::Private),
            "host" => Ok(Mode::Host),
            _ => match value.strip_prefix("ns:") {
                Some(path) if path.starts_with('/') => Ok(Mode::Path(path.into())),
                Some(_) => Err("ns:PATH needs an absolute path".into()),
                None => Err("expected host, private or ns:PATH".into()),
            },
        }
    }
}

/// `--network`: a namespace mode, `none`, or named networks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// A new namespace joined to every configured CNI network (buildah's
    /// choice when none is named).
    Private,
    /// A new namespace with only the loopback interface: the default,
    /// so that no run changes the host's networking (bridges, firewall
    /// rules) unless asked to.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// An existing namespace, by path.
    Path(PathBuf),
    /// A new namespace joined to these named networks.
    Named(Vec<String>),
}

impl Network {
    /// The CNI networks to join: all (an empty list) or those named;
    /// none for a namespace that is not configured.
    pub fn cni_names(&self) -> Option<&[String]> {
        match self {
            Network::Private => Some(&[]),
            Network::Named(names) => Some(names),
            Network::None | Network::Host | Network::Path(_) => None,
        }
    }
}

/// The sysctls buildah sets in a network namespace it configures
/// (`util.DefaultNetworkSysctl`): root in the container may open ICMP
/// echo sockets, so ping works without CAP_NET_RAW.
pub const NETWORK_SYSCTLS: [(&str, &str); 1] = [("net.ipv4.ping_group_range", "0 0")];

impl FromStr for Network {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "none" => Ok(Network::None),
            "private" | "bridge" => Ok(Network::Private),
            "host" => Ok(Network::Host),
            _ if value.starts_with("ns:") => match value.parse::<Mode>()? {
                Mode::Path(path) => Ok(Network::Path(path)),
                _ => Err("ns:PATH needs an absolute path".into()),
            },
            _ => {
                let names: Vec<String> = value.split(',').map(str::to_string).collect();
                let valid = |n: &String| {
                    !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                };
                if names.iter().all(valid) {
                    Ok(Network::Named(names))
                } else {
                    Err("expected host, none, private, ns:PATH or NAME[,NAME...]".into())
                }
            }
        }
    }
}

/// `--userns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserNs {
    /// The host's user namespace, unless id maps are given.
    #[default]
    Host,
    /// A new user namespace (with the caller's own id ranges, mapped to
    /// themselves, when no map is given).
    Private,
}

impl FromStr for UserNs {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "host" => Ok(UserNs::Host),
            "private" => Ok(UserNs::Private),
            _ => Err("expected host or private".into()),
        }
    }
}

/// One `--uidmap`/`--gidmap` value: `CONTAINER:HOST:SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// The first id inside the container.
    pub container: u32,
    /// The first id on the host.
    pub host: u32,
    /// How many ids.
    pub size: u32,
}

impl FromStr for IdMap {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = value.split(':').collect();
        let [container, host, size] = parts[..] else {
            return Err("expected CONTAINER:HOST:SIZE".into());
        };
        let number = |what: &str, s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("the {what} id `{s}` is not a number"))
        };
        let map = IdMap {
            container: number("container", container)?,
            host: number("host", host)?,
            size: number("size", size)?,
        };
        if map.size == 0 {
            return Err("the size must be at least 1".into());
        }
        Ok(map)
    }
}

impl From<IdMap> for LinuxIdMapping {
    fn from(map: IdMap) -> Self {
        LinuxIdMappingBuilder::default()
            .container_id(map.container)
            .host_id(map.host)
            .size(map.size)
            .build()
            .unwrap_or_default()
    }
}

/// The namespace options of a run.
#[derive(Debug, Clone, Default)]
pub struct NamespaceOptions {
    /// `--network`.
    pub network: Network,
    /// `--pid`.
    pub pid: Mode,
    /// `--ipc`.
    pub ipc: Mode,
    /// `--uts`.
    pub uts: Mode,
    /// `--cgroupns`.
    pub cgroup: Mode,
    /// `--userns`.
    pub user: UserNs,
    /// `--uidmap`.
    pub uid_maps: Vec<IdMap>,
    /// `--gidmap`.
    pub gid_maps: Vec<IdMap>,
    /// `--hostname`.
    pub hostname: Option<String>,
}

impl NamespaceOptions {
    /// Whether the container gets a user namespace: asked for, or implied
    /// by id maps.
    pub fn user_namespace(&self) -> bool {
        self.user == UserNs::Private || !self.uid_maps.is_empty() || !self.gid_maps.is_empty()
    }
}

/// The longest hostname the kernel takes (HOST_NAME_MAX).
pub const HOSTNAME_MAX: usize = 64;

/// Whether `name` is an RFC 1123 hostname of at most [`HOSTNAME_MAX`]
/// bytes: dot-separated labels of 1 to 63 letters, digits and hyphens,
/// none starting or ending with a hyphen.
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= HOSTNAME_MAX
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Sets the spec's namespaces, id maps and hostname; `id` gives the
/// default hostname (the short container id). Namespaces not named by an
/// option keep the default spec's choice (mount always private).
pub fn apply(spec: &mut Spec, options: &NamespaceOptions, id: &str) -> Result<(), NamespaceError> {
    let userns = options.user_namespace();
    if userns && options.pid == Mode::Host {
        return Err(NamespaceError::HostPidWithUserNamespace);
    }
    let (uid_maps, gid_maps) = if userns {
        (
            id_maps(&options.uid_maps, "/proc/self/uid_map")?,
            id_maps(&options.gid_maps, "/proc/self/gid_map")?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let network = match &options.network {
        Network::Host => Mode::Host,
        Network::Path(path) => Mode::Path(path.clone()),
        Network::Private | Network::None | Network::Named(_) => Mode::Private,
    };
    let user = if userns { Mode::Private } else { Mode::Host };
    let wanted = [
        (LinuxNamespaceType::Pid, &options.pid),
        (LinuxNamespaceType::Network, &network),
        (LinuxNamespaceType::Ipc, &options.ipc),
        (LinuxNamespaceType::Uts, &options.uts),
        (LinuxNamespaceType::Mount, &Mode::Private),
        (LinuxNamespaceType::Cgroup, &options.cgroup),
        (LinuxNamespaceType::User, &user),
    ];
    let namespaces = wanted
        .into_iter()
        .filter_map(|(typ, mode)| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            match mode {
                Mode::Host => return None,
                Mode::Private => {}
                Mode::Path(path) => {
                    ns.set_path(Some(path.clone()));
                }
            }
            Some(ns)
        })
        .collect();
    let hostname = match (&options.uts, &options.hostname) {
        (_, Some(name)) if !is_valid_hostname(name) => {
            return Err(NamespaceError::InvalidHostname(name.clone()));
        }
        (Mode::Private, Some(name)) => Some(name.clone()),
        (Mode::Private, None) => Some(id.chars().take(12).collect()),
        (_, Some(name)) => return Err(NamespaceError::HostnameWithoutUts(name.clone())),
        (_, None) => None,
    };
    spec.set_hostname(hostname);
    let linux = spec.linux_mut().get_or_insert_default();
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(uid_maps).filter(|m| !m.is_empty()));
    linux.set_gid_mappings(Some(gid_maps).filter(|m| !m.is_empty()));
    if options.network.cni_names().is_some() {
        let sysctl = linux.sysctl_mut().get_or_insert_default();
        for (key, value) in NETWORK_SYSCTLS {
            sysctl
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    Ok(())
}

/// The maps given, or else the ranges specgate itself has, mapped to
/// themselves (so a user namespace without maps changes no ids).
fn id_maps(given: &[IdMap], own: &'static str) -> Result<Vec<LinuxIdMapping>, NamespaceError> {
    if !given.is_empty() {
        return Ok(given.iter().map(|&m| m.into()).collect());
    }
    let text = std::fs::read_to_string(own)
        .map_err(|source| NamespaceError::IdMap { path: own, source })?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().map(|f| f.parse::<u32>().ok());
            let (Some(Some(inside)), Some(Some(_)), Some(Some(size))) =
                (fields.next(), fields.next(), fields.next())
            else {
                return None;
            };
            Some(
                IdMap {
                    container: inside,
                    host: inside,
                    size,
                }
                .into(),
            )
        })
        .collect())
}

/// Whether the spec gives the container its own namespace of `typ` (not
/// the host's; a namespace joined by path counts as not the host's).
pub fn has(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|ns| ns.typ() == typ))
}

/// The host uid and gid that the container's root is: where the id maps
/// send container id 0, or 0 without a user namespace.
pub fn host_root(spec: &Spec) -> (u32, u32) {
    let find = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.and_then(|maps| {
            maps.iter()
                .find(|m| m.container_id() == 0)
                .map(|m| m.host_id())
        })
        .unwrap_or(0)
    };
    let linux = spec.linux().as_ref();
    (
        find(linux.and_then(|l| l.uid_mappings().as_ref())),
        find(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(spec: &Spec) -> Vec<LinuxNamespaceType> {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect()
    }

    fn spec() -> Spec {
        super::super::default_spec("0123456789abcdef", &["sh".into()])
    }

    #[test]
    fn hostnames_are_rfc_1123_names_of_at_most_64_bytes() {
        for good in ["web", "a", "db-1.internal", "0123456789ab", &"a".repeat(63)] {
            assert!(is_valid_hostname(good), "{good}");
        }
        let long = format!("{}.{}", "a".repeat(32), "b".repeat(32));
        for bad in [
            "",
            "web\n203.0.113.9 github.com",
            "-web",
            "web-",
            "a..b",
            ".a",
            "a b",
            "we_b",
            "web\0",
            "ü",
            &long,
            &"a".repeat(64),
        ] {
            assert!(!is_valid_hostname(bad), "{bad:?}");
        }
        let mut spec = spec();
        let options = NamespaceOptions {
            hostname: Some("x\n203.0.113.9 github.com".into()),
            ..Default::default()
        };
        let error = apply(&mut spec, &options, "0123456789abcdef")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--hostname \"x\\n203"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn defaults_are_private_but_the_user_namespace_and_hostname_is_the_short_id() {
        let mut spec = spec();
        apply(&mut spec, &NamespaceOptions::default(), "0123456789abcdef").unwrap();
        use LinuxNamespaceType::*;
        assert_eq!(types(&spec), [Pid, Network, Ipc, Uts, Mount, Cgroup]);
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
    }

    #[test]
    fn host_and_path_modes() {
        let mut spec = spec();
        let options = NamespaceOptions {
            network: "host".parse().unwrap(),
            ipc: "ns:/proc/1/ns/ipc".parse().unwrap(),
            uts: Mode::Host,
            ..Default::default()
        };
        apply(&mut spec, &options, "id").unwrap();
        assert!(!has(&spec, LinuxNamespaceType::Network));
        assert!(!has(&spec, LinuxNamespaceType::Uts));
        let ipc = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()[1]
            .clone();
        assert_eq!(
            ipc.path().as_deref(),
            Some(std::path::Path::new("/proc/1/ns/ipc"))
        );
        assert_eq!(spec.hostname(), &None);
    }

    #[test]
    fn id_maps_imply_a_user_namespace_and_name_the_root() {
        let mut spec = spec();
        let options = NamespaceOptions {
            uid_maps: vec!["0:100000:65536".parse().unwrap()],
            gid_maps: vec!["0:200000:65536".parse().unwrap()],
            ..Default::default()
        };
        apply(&mut spec, &options, "id").unwrap();
        assert!(has(&spec, LinuxNamespaceType::User));
        assert!(has(&spec, LinuxNamespaceType::Network));
        assert_eq!(host_root(&spec), (100000, 200000));
    }

    #[test]
    fn a_private_user_namespace_without_maps_maps_our_own_ids_to_themselves() {
        let mut spec = spec();
        let options = NamespaceOptions {
            user: UserNs::Private,
            ..Default::default()
        };
        apply(&mut spec, &options, "id").unwrap();
        let maps = spec
            .linux()
            .as_ref()
            .unwrap()
            .uid_mappings()
            .clone()
            .unwrap();
        assert!(!maps.is_empty());
        assert!(maps.iter().all(|m| m.container_id() == m.host_id()));
    }

    #[test]
    fn conflicting_options_are_refused_naming_the_flag() {
        let options = NamespaceOptions {
            user: UserNs::Private,
            pid: Mode::Host,
            ..Default::default()
        };
        let error = apply(&mut spec(), &options, "id").unwrap_err().to_string();
        assert!(error.starts_with("--pid host"), "{error}");
        let options = NamespaceOptions {
            uts: Mode::Host,
            hostname: Some("web".into()),
            ..Default::default()
        };
        let error = apply(&mut spec(), &options, "id").unwrap_err().to_string();
        assert!(error.starts_with("--hostname web"), "{error}");
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!("0:x:1".parse::<IdMap>().is_err());
        assert!("0:1".parse::<IdMap>().is_err());
        assert!("0:1:0".parse::<IdMap>().is_err());
        assert!("ns:relative".parse::<Mode>().is_err());
        assert!("sideways".parse::<Mode>().is_err());
        assert!("a,,b".parse::<Network>().is_err());
        assert_eq!(
            "blue,green".parse::<Network>(),
            Ok(Network::Named(vec!["blue".into(), "green".into()]))
        );
        assert_eq!("none".parse::<Network>(), Ok(Network::None));
    }

    #[test]
    fn configured_networks_get_buildahs_sysctls_and_none_gets_none() {
        let sysctl = |network: &str| {
            let mut spec = spec();
            let options = NamespaceOptions {
                network: network.parse().unwrap(),
                ..Default::default()
            };
            apply(&mut spec, &options, "id").unwrap();
            spec.linux().as_ref().unwrap().sysctl().clone()
        };
        for network in ["private", "blue,green"] {
            let sysctl = sysctl(network).unwrap();
            assert_eq!(sysctl["net.ipv4.ping_group_range"], "0 0", "{network}");
        }
        for network in ["none", "host"] {
            assert!(sysctl(network).is_none_or(|s| s.is_empty()), "{network}");
        }
    }
}
