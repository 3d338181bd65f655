//! The container's mounts: the user's `--volume`, `--mount` and `--tmpfs`,
//! `--shm-size`, the bundle files bound at `/etc/hosts` and
//! `/etc/resolv.conf`, and the default mounts adjusted to the namespaces
//! the container shares with the host, as `buildah run` does.
//!
//! Values are parsed with [`FromStr`] (clap's value parsers); [`apply`]
//! then merges everything into the spec in buildah's precedence: explicit
//! mounts first, then the bound files, then the defaults, keeping only the
//! first mount at each destination. It reads host paths only (bind
//! sources, `/etc/hosts`, `/etc/resolv.conf`), never the rootfs, and
//! returns the files for the caller to write into the bundle.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

/// Errors in a mount option's value, or in merging the mounts into a spec.
///
/// The value errors say what is wrong without repeating the value: clap
/// prints them after `invalid value '…' for '--volume <…>': `.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The value does not have the flag's shape.
    #[error("expected {0}")]
    Format(&'static str),
    /// A container path is relative.
    #[error("destination `{0}` is not an absolute path")]
    RelativeDestination(String),
    /// A mount would cover the root filesystem.
    #[error("cannot mount over the container's /")]
    RootDestination,
    /// A `--volume` source names a volume: there is no volume store.
    #[error("named volumes are not supported (`{0}`); give an absolute host path")]
    NamedVolume(String),
    /// A `--volume` with only a container path asks for an anonymous volume.
    #[error("anonymous volumes are not supported; give SRC:DST")]
    AnonymousVolume,
    /// A relative source that does not start with `.`: podman takes it for
    /// a volume name, which is never what was meant.
    #[error("source `{0}` is relative; give an absolute path or start it with ./")]
    RelativeSource(String),
    /// The current directory, needed for a `./` source, is unknown.
    #[error("cannot resolve source `{path}` against the current directory: {source}")]
    CurrentDir {
        /// The relative source.
        path: String,
        /// Why the current directory is unknown.
        source: std::io::Error,
    },
    /// An option nobody knows.
    #[error("unknown mount option `{0}`")]
    UnknownOption(String),
    /// An option podman knows that specgate does not implement.
    #[error("mount option `{option}` is not supported: {why}")]
    UnsupportedOption {
        /// The option as given.
        option: String,
        /// What it would need.
        why: &'static str,
    },
    /// An option that only applies to another mount type.
    #[error("mount option `{option}` is only allowed with {kind} mounts")]
    WrongKind {
        /// The option as given.
        option: String,
        /// The type it belongs to.
        kind: &'static str,
    },
    /// Two options that decide the same thing.
    #[error("mount options `{first}` and `{second}` conflict: give only one")]
    Conflict {
        /// The option given first.
        first: String,
        /// The option given later.
        second: String,
    },
    /// An option's value is malformed.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `--mount` field is missing.
    #[error("missing `{0}=`")]
    MissingField(&'static str),
    /// A `--mount` type nobody knows.
    #[error("unknown mount type `{0}` (expected bind or tmpfs)")]
    UnknownType(String),
    /// A `--mount` type podman knows that specgate does not implement.
    #[error("mount type `{0}` is not supported (supported: bind, tmpfs)")]
    UnsupportedType(String),
    /// A size is malformed.
    #[error("invalid size `{0}` (expected a number above 0 with an optional unit b, k, m, g, t)")]
    Size(String),
    /// A host name in `--add-host` is not a valid host name.
    #[error("invalid host name `{0}`")]
    HostName(String),
    /// An address in `--add-host` is not an IP address.
    #[error("invalid IP address `{0}`")]
    Address(String),
    /// `--add-host NAME:host-gateway` needs a network setup specgate lacks.
    #[error("host-gateway is not supported: give an IP address")]
    HostGateway,
    /// A bind source does not exist on the host.
    #[error("{flag}: bind source {} does not exist", path.display())]
    SourceMissing {
        /// The flag and its value.
        flag: String,
        /// The host path.
        path: PathBuf,
    },
    /// A bind source could not be inspected.
    #[error("{flag}: bind source {}: {source}", path.display())]
    SourceUnreadable {
        /// The flag and its value.
        flag: String,
        /// The host path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Two explicit mounts at one destination.
    #[error("{first} and {second} both mount at {}", destination.display())]
    Duplicate {
        /// The flag and value given first.
        first: String,
        /// The flag and value given later.
        second: String,
        /// The shared destination.
        destination: PathBuf,
    },
    /// A host file copied into the bundle could not be read.
    #[error("cannot read the host's {}: {source}", path.display())]
    HostFile {
        /// The host file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How mount and unmount events propagate between a bind mount and its
/// source (mount(8) names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `private`: no propagation, this mount only (buildah's default).
    Private,
    /// `rprivate`: no propagation, recursively.
    Rprivate,
    /// `shared`: both ways.
    Shared,
    /// `rshared`: both ways, recursively.
    Rshared,
    /// `slave`: from the host into the container.
    Slave,
    /// `rslave`: from the host into the container, recursively.
    Rslave,
    /// `unbindable`: private, and cannot be bind-mounted.
    Unbindable,
    /// `runbindable`: unbindable, recursively.
    Runbindable,
}

impl Propagation {
    const ALL: [Propagation; 8] = [
        Propagation::Private,
        Propagation::Rprivate,
        Propagation::Shared,
        Propagation::Rshared,
        Propagation::Slave,
        Propagation::Rslave,
        Propagation::Unbindable,
        Propagation::Runbindable,
    ];

    /// The mount option.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
            Propagation::Unbindable => "unbindable",
            Propagation::Runbindable => "runbindable",
        }
    }

    fn parse(option: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == option)
    }
}

/// The SELinux relabelling asked for with `z` (shared) or `Z` (private).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relabel {
    /// `z`: a label every container may use.
    Shared,
    /// `Z`: a label private to this container.
    Private,
}

/// A tmpfs size: bytes, or a share of the host's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmpfsSize {
    /// A size in bytes.
    Bytes(u64),
    /// A percentage of physical memory (`size=50%`).
    Percent(u8),
}

impl fmt::Display for TmpfsSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TmpfsSize::Bytes(n) => write!(f, "{n}"),
            TmpfsSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A bind mount of a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    source: PathBuf,
    destination: PathBuf,
    readonly: bool,
    recursive: bool,
    propagation: Propagation,
    nosuid: Option<bool>,
    nodev: Option<bool>,
    noexec: Option<bool>,
    relabel: Option<Relabel>,
}

impl Bind {
    /// The host path, absolute.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The container path, absolute and clean.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Whether the mount is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The relabelling asked for, if any.
    pub fn relabel(&self) -> Option<Relabel> {
        self.relabel
    }

    /// The OCI options. `source_flags` are the nosuid/nodev/noexec flags of
    /// the filesystem holding the source: kept unless the user said
    /// otherwise, since a remount (for `ro`) must not clear them (and
    /// cannot, in a user namespace).
    fn options(&self, source_flags: FsFlags) -> Vec<String> {
        let mut options = vec![
            if self.recursive { "rbind" } else { "bind" },
            if self.readonly { "ro" } else { "rw" },
            self.propagation.as_str(),
        ];
        let flags = [
            (self.nosuid, source_flags.nosuid, "nosuid", "suid"),
            (self.nodev, source_flags.nodev, "nodev", "dev"),
            (self.noexec, source_flags.noexec, "noexec", "exec"),
        ];
        for (given, inherited, on, off) in flags {
            match given {
                Some(true) => options.push(on),
                Some(false) => options.push(off),
                None if inherited => options.push(on),
                None => {}
            }
        }
        options.into_iter().map(String::from).collect()
    }

    fn to_mount(&self, source_flags: FsFlags) -> Mount {
        let mut mount = Mount::default();
        mount.set_destination(self.destination.clone());
        mount.set_typ(Some("bind".into()));
        mount.set_source(Some(self.source.clone()));
        mount.set_options(Some(self.options(source_flags)));
        mount
    }
}

/// A tmpfs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    destination: PathBuf,
    readonly: bool,
    noexec: bool,
    nosuid: bool,
    nodev: bool,
    size: Option<TmpfsSize>,
    mode: Option<u32>,
    copy_up: bool,
    noatime: bool,
    propagation: Option<Propagation>,
}

impl TmpfsMount {
    /// podman's defaults: rw, noexec, nosuid, nodev, with the image's
    /// content copied up.
    fn new(destination: PathBuf) -> Self {
        TmpfsMount {
            destination,
            readonly: false,
            noexec: true,
            nosuid: true,
            nodev: true,
            size: None,
            mode: None,
            copy_up: true,
            noatime: false,
            propagation: None,
        }
    }

    /// The container path, absolute and clean.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    fn options(&self) -> Vec<String> {
        let mut options: Vec<String> = [
            if self.readonly { "ro" } else { "rw" },
            if self.noexec { "noexec" } else { "exec" },
            if self.nosuid { "nosuid" } else { "suid" },
            if self.nodev { "nodev" } else { "dev" },
        ]
        .map(String::from)
        .to_vec();
        if let Some(size) = self.size {
            options.push(format!("size={size}"));
        }
        if let Some(mode) = self.mode {
            options.push(format!("mode={mode:04o}"));
        }
        if self.noatime {
            options.push("noatime".into());
        }
        if let Some(propagation) = self.propagation {
            options.push(propagation.as_str().into());
        }
        // An OCI runtime extension (runc, crun): the tmpfs starts with what
        // the rootfs has at its destination.
        if self.copy_up {
            options.push("tmpcopyup".into());
        }
        options
    }

    fn to_mount(&self) -> Mount {
        let mut mount = Mount::default();
        mount.set_destination(self.destination.clone());
        mount.set_typ(Some("tmpfs".into()));
        mount.set_source(Some("tmpfs".into()));
        mount.set_options(Some(self.options()));
        mount
    }
}

/// One `--volume SRC:DST[:OPTS]` value: a bind mount.
///
/// OPTS, comma-separated: `ro`/`rw`, `z`/`Z` (SELinux relabelling: only
/// logged, specgate sets no SELinux labels), a propagation (`private`, the
/// default, `rprivate`, `shared`, `rshared`, `slave`, `rslave`,
/// `unbindable`, `runbindable`), `bind`/`rbind` (default `rbind`),
/// `nosuid`/`suid`, `nodev`/`dev`, `noexec`/`exec`; `copy`/`nocopy` are
/// accepted and ignored, as for any bind mount. `U`, `O` and `idmap` are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    raw: String,
    bind: Bind,
}

impl Volume {
    /// The bind mount.
    pub fn bind(&self) -> &Bind {
        &self.bind
    }
}

impl FromStr for Volume {
    type Err = MountError;

    fn from_str(value: &str) -> Result<Self, MountError> {
        const SHAPE: &str = "SRC:DST[:OPTS]";
        let parts: Vec<&str> = value.split(':').collect();
        let (source, destination, options) = match parts.as_slice() {
            [one] if one.starts_with('/') => return Err(MountError::AnonymousVolume),
            [_] => return Err(MountError::Format(SHAPE)),
            [source, destination] => (*source, *destination, ""),
            [source, destination, options] => (*source, *destination, *options),
            _ => return Err(MountError::Format(SHAPE)),
        };
        if source.is_empty() || destination.is_empty() {
            return Err(MountError::Format(SHAPE));
        }
        let source = host_path(source)?;
        let destination = container_path(destination)?;
        let mut parsed = OptionSet::new(Kind::Bind);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            parsed.add(option)?;
        }
        Ok(Volume {
            raw: value.to_string(),
            bind: parsed.into_bind(source, destination),
        })
    }
}

/// One `--tmpfs DST[:OPTS]` value.
///
/// The defaults are podman's: `rw,noexec,nosuid,nodev` and `tmpcopyup`;
/// OPTS override them one by one (`exec` replaces `noexec`) and may add
/// `size=` (bytes with an optional unit, or a percentage), `mode=`
/// (octal), `noatime`, a propagation, or `notmpcopyup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    raw: String,
    tmpfs: TmpfsMount,
}

impl Tmpfs {
    /// The tmpfs mount.
    pub fn mount(&self) -> &TmpfsMount {
        &self.tmpfs
    }
}

impl FromStr for Tmpfs {
    type Err = MountError;

    fn from_str(value: &str) -> Result<Self, MountError> {
        let (destination, options) = value.split_once(':').unwrap_or((value, ""));
        if destination.is_empty() {
            return Err(MountError::Format("DST[:OPTS]"));
        }
        let destination = container_path(destination)?;
        let mut parsed = OptionSet::new(Kind::Tmpfs);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            parsed.add(option)?;
        }
        Ok(Tmpfs {
            raw: value.to_string(),
            tmpfs: parsed.into_tmpfs(destination),
        })
    }
}

/// The mount a `--mount` value describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// `type=bind`.
    Bind(Bind),
    /// `type=tmpfs`.
    Tmpfs(TmpfsMount),
}

/// One `--mount type=…,…` value, in podman's syntax.
///
/// Common fields: `type=bind|tmpfs`, `destination=` (or `dst=`,
/// `target=`), `ro`/`readonly[=true|false]`, `rw[=true|false]`,
/// `nosuid`/`suid`, `nodev`/`dev`, `noexec`/`exec`. Bind: `source=` (or
/// `src=`), `bind-propagation=`, `bind-nonrecursive[=true|false]`,
/// `relabel=shared|private`, `z`/`Z`. Tmpfs: `tmpfs-size=`, `tmpfs-mode=`,
/// `tmpcopyup`/`notmpcopyup`, `noatime`. `consistency=` is ignored, as
/// podman and Docker do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArg {
    raw: String,
    kind: MountKind,
}

impl MountArg {
    /// The mount.
    pub fn kind(&self) -> &MountKind {
        &self.kind
    }
}

impl FromStr for MountArg {
    type Err = MountError;

    fn from_str(value: &str) -> Result<Self, MountError> {
        let fields: Vec<(&str, Option<&str>)> = value
            .split(',')
            .filter(|f| !f.is_empty())
            .map(|f| match f.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (f, None),
            })
            .collect();
        let mut kind = None;
        for (key, field) in &fields {
            if *key == "type" {
                let typ = field.ok_or(MountError::MissingField("type"))?;
                claim_field(&mut kind, key, typ)?;
            }
        }
        let kind = match kind.map(|(_, typ)| typ) {
            Some("bind") => Kind::Bind,
            Some("tmpfs") => Kind::Tmpfs,
            Some(t @ ("volume" | "image" | "devpts" | "glob" | "ramfs" | "artifact")) => {
                return Err(MountError::UnsupportedType(t.into()));
            }
            Some(other) => return Err(MountError::UnknownType(other.into())),
            None => return Err(MountError::MissingField("type")),
        };
        let mut source = None;
        let mut destination = None;
        let mut parsed = OptionSet::new(kind);
        for (key, field) in fields {
            let required = || {
                field
                    .filter(|v| !v.is_empty())
                    .ok_or(MountError::InvalidValue {
                        key: key.into(),
                        value: String::new(),
                        reason: "a value is required",
                    })
            };
            match key {
                "type" => {}
                "source" | "src" => {
                    if kind == Kind::Tmpfs {
                        return Err(MountError::WrongKind {
                            option: key.into(),
                            kind: "bind",
                        });
                    }
                    claim_field(&mut source, key, required()?)?;
                }
                "destination" | "dst" | "target" => {
                    claim_field(&mut destination, key, required()?)?;
                }
                "ro" | "readonly" | "rw" => {
                    let on = match field {
                        None => true,
                        Some(v) => parse_bool(key, v)?,
                    };
                    let readonly = if key == "rw" { !on } else { on };
                    parsed.add_as(key, if readonly { "ro" } else { "rw" })?;
                }
                "bind-propagation" => parsed.add_bind_only(key, required()?)?,
                "bind-nonrecursive" => {
                    let on = field.map_or(Ok(true), |v| parse_bool(key, v))?;
                    parsed.add_as(key, if on { "bind" } else { "rbind" })?;
                }
                "relabel" => {
                    let option = match required()? {
                        "shared" => "z",
                        "private" => "Z",
                        other => {
                            return Err(MountError::InvalidValue {
                                key: key.into(),
                                value: other.into(),
                                reason: "expected shared or private",
                            });
                        }
                    };
                    parsed.add_as(key, option)?;
                }
                "tmpfs-size" => parsed.add_as(key, &format!("size={}", required()?))?,
                "tmpfs-mode" => parsed.add_as(key, &format!("mode={}", required()?))?,
                "consistency" => {}
                "U" | "chown" | "idmap" | "volume-opt" | "volume-nocopy" | "subpath" => {
                    return Err(unsupported(key));
                }
                _ if field.is_none() => parsed.add(key)?,
                _ => return Err(MountError::UnknownOption(key.into())),
            }
        }
        let (_, destination) = destination.ok_or(MountError::MissingField("destination"))?;
        let destination = container_path(destination)?;
        let kind = match kind {
            Kind::Bind => {
                let (_, source) = source.ok_or(MountError::MissingField("source"))?;
                let source = host_path(source)?;
                MountKind::Bind(parsed.into_bind(source, destination))
            }
            Kind::Tmpfs => MountKind::Tmpfs(parsed.into_tmpfs(destination)),
        };
        Ok(MountArg {
            raw: value.to_string(),
            kind,
        })
    }
}

/// Records a `--mount` field given once at most: `dst=/a,target=/b`
/// conflict.
fn claim_field<'a>(
    slot: &mut Option<(&'a str, &'a str)>,
    key: &'a str,
    value: &'a str,
) -> Result<(), MountError> {
    match slot.replace((key, value)) {
        Some((first, earlier)) => Err(MountError::Conflict {
            first: format!("{first}={earlier}"),
            second: format!("{key}={value}"),
        }),
        None => Ok(()),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, MountError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(MountError::InvalidValue {
            key: key.into(),
            value: value.into(),
            reason: "expected true or false",
        }),
    }
}

/// One `--add-host NAME[;NAME…]:IP` value (also `NAME=IP`, and an IPv6
/// address in brackets, as Docker accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    names: Vec<String>,
    address: IpAddr,
}

impl HostEntry {
    /// The host names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The address they resolve to.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The /etc/hosts line.
    fn line(&self) -> String {
        format!("{}\t{}\n", self.address, self.names.join(" "))
    }
}

impl FromStr for HostEntry {
    type Err = MountError;

    fn from_str(value: &str) -> Result<Self, MountError> {
        const SHAPE: &str = "NAME:IP";
        // Names hold neither separator: the first one splits, which keeps
        // the colons of an IPv6 address.
        let at = value.find([':', '=']).ok_or(MountError::Format(SHAPE))?;
        let (names, address) = (&value[..at], &value[at + 1..]);
        if names.is_empty() || address.is_empty() {
            return Err(MountError::Format(SHAPE));
        }
        if address == "host-gateway" {
            return Err(MountError::HostGateway);
        }
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        let address: IpAddr = bare
            .parse()
            .map_err(|_| MountError::Address(address.into()))?;
        let names = names
            .split(';')
            .map(|name| {
                if valid_host_name(name) {
                    Ok(name.to_string())
                } else {
                    Err(MountError::HostName(name.into()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostEntry { names, address })
    }
}

/// RFC 1123 host names, plus the underscores /etc/hosts files carry in
/// practice: dot-separated labels of letters, digits, `-` and `_`, none
/// empty or starting or ending with `-`.
fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_tmpfs_size(key: &str, value: &str) -> Result<TmpfsSize, MountError> {
    if let Some(percent) = value.strip_suffix('%') {
        return match percent.parse::<u8>() {
            Ok(p) if (1..=100).contains(&p) => Ok(TmpfsSize::Percent(p)),
            _ => Err(MountError::InvalidValue {
                key: key.into(),
                value: value.into(),
                reason: "expected a percentage from 1 to 100",
            }),
        };
    }
    crate::units::parse_size(value)
        .map(TmpfsSize::Bytes)
        .map_err(|_| MountError::Size(value.into()))
}

fn parse_mode(key: &str, value: &str) -> Result<u32, MountError> {
    u32::from_str_radix(value, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| MountError::InvalidValue {
            key: key.into(),
            value: value.into(),
            reason: "expected an octal mode such as 1777",
        })
}

/// The mount type an option list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bind,
    Tmpfs,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// What a set of options decides; two options deciding the same thing
/// conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Decides {
    Write,
    Propagation,
    Exec,
    Suid,
    Dev,
    Recursion,
    Relabel,
    Copy,
    Size,
    Mode,
    CopyUp,
    Atime,
}

/// Options being parsed, for a bind or a tmpfs mount.
#[derive(Debug)]
struct OptionSet {
    kind: Kind,
    given: HashMap<Decides, String>,
    readonly: Option<bool>,
    propagation: Option<Propagation>,
    noexec: Option<bool>,
    nosuid: Option<bool>,
    nodev: Option<bool>,
    recursive: Option<bool>,
    relabel: Option<Relabel>,
    size: Option<TmpfsSize>,
    mode: Option<u32>,
    copy_up: Option<bool>,
    noatime: bool,
}

impl OptionSet {
    fn new(kind: Kind) -> Self {
        OptionSet {
            kind,
            given: HashMap::new(),
            readonly: None,
            propagation: None,
            noexec: None,
            nosuid: None,
            nodev: None,
            recursive: None,
            relabel: None,
            size: None,
            mode: None,
            copy_up: None,
            noatime: false,
        }
    }

    /// Adds an option as written in `-v`/`--tmpfs` OPTS.
    fn add(&mut self, option: &str) -> Result<(), MountError> {
        self.add_as(option, option)
    }

    /// Adds `option`, which the user wrote as `written` (a `--mount` field
    /// maps to a plain option but errors should name the field).
    fn add_as(&mut self, written: &str, option: &str) -> Result<(), MountError> {
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (option, None),
        };
        let decides = match (key, value) {
            ("ro" | "rw", None) => {
                self.readonly = Some(key == "ro");
                Decides::Write
            }
            ("exec" | "noexec", None) => {
                self.noexec = Some(key == "noexec");
                Decides::Exec
            }
            ("suid" | "nosuid", None) => {
                self.nosuid = Some(key == "nosuid");
                Decides::Suid
            }
            ("dev" | "nodev", None) => {
                self.nodev = Some(key == "nodev");
                Decides::Dev
            }
            (_, None) if Propagation::parse(key).is_some() => {
                self.propagation = Propagation::parse(key);
                Decides::Propagation
            }
            ("bind" | "rbind", None) => {
                self.require_kind(written, Kind::Bind)?;
                self.recursive = Some(key == "rbind");
                Decides::Recursion
            }
            ("z" | "Z", None) => {
                self.require_kind(written, Kind::Bind)?;
                self.relabel = Some(if key == "z" {
                    Relabel::Shared
                } else {
                    Relabel::Private
                });
                Decides::Relabel
            }
            // Copying an image's content into a volume concerns named
            // volumes only; podman accepts them on binds and so do we.
            ("copy" | "nocopy", None) => {
                self.require_kind(written, Kind::Bind)?;
                Decides::Copy
            }
            ("size", Some(value)) => {
                self.require_kind(written, Kind::Tmpfs)?;
                self.size = Some(parse_tmpfs_size(written, value)?);
                Decides::Size
            }
            ("mode", Some(value)) => {
                self.require_kind(written, Kind::Tmpfs)?;
                self.mode = Some(parse_mode(written, value)?);
                Decides::Mode
            }
            ("tmpcopyup" | "notmpcopyup", None) => {
                self.require_kind(written, Kind::Tmpfs)?;
                self.copy_up = Some(key == "tmpcopyup");
                Decides::CopyUp
            }
            ("noatime", None) => {
                self.require_kind(written, Kind::Tmpfs)?;
                self.noatime = true;
                Decides::Atime
            }
            ("U" | "O" | "idmap", _) => return Err(unsupported(key)),
            _ => return Err(MountError::UnknownOption(written.into())),
        };
        if let Some(first) = self.given.insert(decides, written.to_string()) {
            return Err(MountError::Conflict {
                first,
                second: written.into(),
            });
        }
        Ok(())
    }

    /// `bind-propagation=VALUE` of `--mount`.
    fn add_bind_only(&mut self, written: &str, value: &str) -> Result<(), MountError> {
        self.require_kind(written, Kind::Bind)?;
        if Propagation::parse(value).is_none() {
            return Err(MountError::InvalidValue {
                key: written.into(),
                value: value.into(),
                reason: "expected private, rprivate, shared, rshared, slave, rslave, unbindable or runbindable",
            });
        }
        self.add_as(written, value)
    }

    fn require_kind(&self, option: &str, kind: Kind) -> Result<(), MountError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(MountError::WrongKind {
                option: option.into(),
                kind: kind.name(),
            })
        }
    }

    fn into_bind(self, source: PathBuf, destination: PathBuf) -> Bind {
        Bind {
            source,
            destination,
            readonly: self.readonly.unwrap_or(false),
            recursive: self.recursive.unwrap_or(true),
            propagation: self.propagation.unwrap_or(Propagation::Private),
            nosuid: self.nosuid,
            nodev: self.nodev,
            noexec: self.noexec,
            relabel: self.relabel,
        }
    }

    fn into_tmpfs(self, destination: PathBuf) -> TmpfsMount {
        let defaults = TmpfsMount::new(destination);
        TmpfsMount {
            readonly: self.readonly.unwrap_or(defaults.readonly),
            noexec: self.noexec.unwrap_or(defaults.noexec),
            nosuid: self.nosuid.unwrap_or(defaults.nosuid),
            nodev: self.nodev.unwrap_or(defaults.nodev),
            size: self.size,
            mode: self.mode,
            copy_up: self.copy_up.unwrap_or(defaults.copy_up),
            noatime: self.noatime,
            propagation: self.propagation,
            ..defaults
        }
    }
}

fn unsupported(option: &str) -> MountError {
    let why = match option {
        "U" | "chown" => "changing the source's owner to the container's user is not implemented",
        "O" => "overlay volumes are not implemented",
        "idmap" => "id-mapped mounts are not implemented",
        _ => "named volumes are not implemented",
    };
    MountError::UnsupportedOption {
        option: option.into(),
        why,
    }
}

/// A container path: absolute, with `.`, `..` and repeated slashes
/// resolved lexically as podman's `filepath.Clean` does, and not `/`.
fn container_path(value: &str) -> Result<PathBuf, MountError> {
    if !value.starts_with('/') {
        return Err(MountError::RelativeDestination(value.into()));
    }
    let clean = clean_absolute(value);
    if clean == Path::new("/") {
        return Err(MountError::RootDestination);
    }
    Ok(clean)
}

/// A bind source: absolute, or starting with `.` and resolved against the
/// current directory (as podman does); any other name would be a named
/// volume.
fn host_path(value: &str) -> Result<PathBuf, MountError> {
    if value.starts_with('/') {
        return Ok(clean_absolute(value));
    }
    if value.starts_with('.') {
        let cwd = std::env::current_dir().map_err(|source| MountError::CurrentDir {
            path: value.into(),
            source,
        })?;
        return Ok(clean_absolute(&format!("{}/{value}", cwd.display())));
    }
    if value.contains('/') {
        return Err(MountError::RelativeSource(value.into()));
    }
    Err(MountError::NamedVolume(value.into()))
}

fn clean_absolute(path: &str) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    PathBuf::from(format!("/{}", parts.join("/")))
}

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

const SYSTEMD_RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

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
                contents: resolv_conf(contents, host.resolved_conf.as_deref(), &sharing),
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

/// The nosuid/nodev/noexec flags of the filesystem holding a path.
#[derive(Debug, Clone, Copy, Default)]
struct FsFlags {
    nosuid: bool,
    nodev: bool,
    noexec: bool,
}

impl FsFlags {
    fn of(path: &Path) -> Self {
        use nix::sys::statvfs::FsFlags as F;
        match nix::sys::statvfs::statvfs(path) {
            Ok(stat) => FsFlags {
                nosuid: stat.flags().contains(F::ST_NOSUID),
                nodev: stat.flags().contains(F::ST_NODEV),
                noexec: stat.flags().contains(F::ST_NOEXEC),
            },
            Err(e) => {
                tracing::debug!(path = %path.display(), "statvfs: {e}");
                FsFlags::default()
            }
        }
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

/// The container's /etc/hosts: the `--add-host` entries first (the first
/// match wins a lookup, so they override the host's, as podman's do), the
/// host's file, then the container's hostname on the loopback addresses,
/// as buildah does.
fn hosts_file(host: Option<&[u8]>, add_hosts: &[HostEntry], hostname: Option<String>) -> Vec<u8> {
    let mut out = b"# Generated by specgate\n".to_vec();
    for entry in add_hosts {
        out.extend_from_slice(entry.line().as_bytes());
    }
    match host {
        Some(contents) => {
            out.extend_from_slice(contents);
            if !contents.is_empty() && !contents.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        None => out.extend_from_slice(b"127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
    }
    if let Some(hostname) = hostname {
        out.extend_from_slice(format!("127.0.0.1\t{hostname}\n::1\t{hostname}\n").as_bytes());
    }
    out
}

/// The public resolvers Docker, podman and buildah fall back to when a
/// container with its own network namespace would otherwise have none.
const FALLBACK_NAMESERVERS: [&str; 4] = [
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
];

/// The container's /etc/resolv.conf, as buildah builds it: the host's;
/// in a network namespace of its own, loopback resolvers are unreachable,
/// so systemd-resolved's stub gives way to its upstream list, remaining
/// loopback nameservers are dropped, and an empty list falls back to
/// public resolvers.
fn resolv_conf(host: &[u8], resolved: Option<&[u8]>, sharing: &Sharing) -> Vec<u8> {
    if sharing.host_network {
        return host.to_vec();
    }
    let mut contents = host;
    let ipv4: Vec<&str> = nameservers(contents)
        .filter(|ns| ns.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    if ipv4 == ["127.0.0.53"] {
        match resolved {
            Some(upstream) => contents = upstream,
            None => tracing::debug!(
                "resolv.conf points at systemd-resolved, but {SYSTEMD_RESOLVED_CONF} is missing"
            ),
        }
    }
    let mut out = Vec::new();
    for line in contents.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace();
        let loopback = words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_loopback());
        if !loopback {
            out.extend_from_slice(line);
        }
    }
    if nameservers(&out).next().is_none() {
        tracing::debug!(
            "no nameserver outside the loopback: using {}",
            FALLBACK_NAMESERVERS.join(", ")
        );
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        for server in FALLBACK_NAMESERVERS {
            out.extend_from_slice(format!("nameserver {server}\n").as_bytes());
        }
    }
    out
}

fn nameservers(contents: &[u8]) -> impl Iterator<Item = &str> {
    contents
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{default_spec, to_json};
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

    fn err<T: FromStr<Err = MountError> + fmt::Debug>(value: &str) -> String {
        match value.parse::<T>() {
            Ok(parsed) => panic!("{value} parsed as {parsed:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn a_volume_is_a_recursive_private_writable_bind() {
        let v = volume("/src:/dst");
        assert_eq!(v.bind().source(), Path::new("/src"));
        assert_eq!(v.bind().destination(), Path::new("/dst"));
        assert_eq!(
            v.bind().options(FsFlags::default()),
            strings(&["rbind", "rw", "private"])
        );
    }

    #[test]
    fn volume_options_set_mode_propagation_and_flags() {
        let v = volume("/src:/dst:ro,rshared,nosuid,nodev,noexec");
        assert!(v.bind().readonly());
        assert_eq!(
            v.bind().options(FsFlags::default()),
            strings(&["rbind", "ro", "rshared", "nosuid", "nodev", "noexec"])
        );
        let v = volume("/src:/dst:bind,slave,suid");
        assert_eq!(
            v.bind().options(FsFlags::default()),
            strings(&["bind", "rw", "slave", "suid"])
        );
        for propagation in Propagation::ALL {
            let v = volume(&format!("/a:/b:{}", propagation.as_str()));
            assert!(
                v.bind()
                    .options(FsFlags::default())
                    .contains(&propagation.as_str().to_string())
            );
        }
    }

    #[test]
    fn a_bind_keeps_the_flags_of_its_sources_filesystem_unless_told() {
        let flags = FsFlags {
            nosuid: true,
            nodev: true,
            noexec: false,
        };
        assert_eq!(
            volume("/a:/b").bind().options(flags),
            strings(&["rbind", "rw", "private", "nosuid", "nodev"])
        );
        assert_eq!(
            volume("/a:/b:dev").bind().options(flags),
            strings(&["rbind", "rw", "private", "nosuid", "dev"])
        );
    }

    #[test]
    fn volume_destinations_are_cleaned_and_sources_made_absolute() {
        let v = volume("/src/./x//:/dst/../other/");
        assert_eq!(v.bind().source(), Path::new("/src/x"));
        assert_eq!(v.bind().destination(), Path::new("/other"));
        let cwd = std::env::current_dir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(volume("./data:/data").bind().source(), cwd.join("data"));
    }

    #[test]
    fn relabel_options_are_recorded() {
        assert_eq!(volume("/a:/b:z").bind().relabel(), Some(Relabel::Shared));
        assert_eq!(volume("/a:/b:Z").bind().relabel(), Some(Relabel::Private));
        assert_eq!(
            volume("/a:/b:z").bind().options(FsFlags::default()),
            strings(&["rbind", "rw", "private"])
        );
    }

    #[test]
    fn malformed_volumes_say_what_is_wrong() {
        assert_eq!(err::<Volume>("a"), "expected SRC:DST[:OPTS]");
        assert_eq!(err::<Volume>("/a:/b:ro:x"), "expected SRC:DST[:OPTS]");
        assert_eq!(err::<Volume>(":/b"), "expected SRC:DST[:OPTS]");
        assert!(err::<Volume>("/data").contains("anonymous volumes are not supported"));
        assert_eq!(
            err::<Volume>("data:/data"),
            "named volumes are not supported (`data`); give an absolute host path"
        );
        assert!(err::<Volume>("a/b:/data").contains("`a/b` is relative"));
        assert_eq!(
            err::<Volume>("/a:b"),
            "destination `b` is not an absolute path"
        );
        assert_eq!(err::<Volume>("/a:/"), "cannot mount over the container's /");
        assert_eq!(err::<Volume>("/a:/b:bogus"), "unknown mount option `bogus`");
        assert_eq!(
            err::<Volume>("/a:/b:ro,rw"),
            "mount options `ro` and `rw` conflict: give only one"
        );
        assert!(err::<Volume>("/a:/b:shared,slave").contains("conflict"));
        assert!(err::<Volume>("/a:/b:z,Z").contains("conflict"));
        assert!(err::<Volume>("/a:/b:U").starts_with("mount option `U` is not supported"));
        assert!(err::<Volume>("/a:/b:O").contains("overlay"));
        assert_eq!(
            err::<Volume>("/a:/b:size=1m"),
            "mount option `size=1m` is only allowed with tmpfs mounts"
        );
        assert!(
            volume("/a:/b:nocopy")
                .bind()
                .options(FsFlags::default())
                .len()
                == 3
        );
    }

    #[test]
    fn tmpfs_has_podmans_defaults() {
        let t: Tmpfs = "/scratch".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.mount().destination(), Path::new("/scratch"));
        assert_eq!(
            t.mount().options(),
            strings(&["rw", "noexec", "nosuid", "nodev", "tmpcopyup"])
        );
    }

    #[test]
    fn tmpfs_options_override_the_defaults_one_by_one() {
        let t: Tmpfs = "/scratch:exec,size=64m,mode=1777,notmpcopyup"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.mount().options(),
            strings(&[
                "rw",
                "exec",
                "nosuid",
                "nodev",
                "size=67108864",
                "mode=1777"
            ])
        );
        let t: Tmpfs = "/s:ro,size=50%,mode=700,noatime,rprivate"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.mount().options(),
            strings(&[
                "ro",
                "noexec",
                "nosuid",
                "nodev",
                "size=50%",
                "mode=0700",
                "noatime",
                "rprivate",
                "tmpcopyup"
            ])
        );
    }

    #[test]
    fn malformed_tmpfs_values_say_what_is_wrong() {
        assert_eq!(
            err::<Tmpfs>("relative"),
            "destination `relative` is not an absolute path"
        );
        assert_eq!(err::<Tmpfs>(":rw"), "expected DST[:OPTS]");
        assert!(err::<Tmpfs>("/t:size=lots").starts_with("invalid size `lots`"));
        assert!(err::<Tmpfs>("/t:size=0").contains("above 0"));
        assert!(err::<Tmpfs>("/t:mode=999").contains("octal"));
        assert!(err::<Tmpfs>("/t:size=1m,size=2m").contains("conflict"));
        assert_eq!(
            err::<Tmpfs>("/t:z"),
            "mount option `z` is only allowed with bind mounts"
        );
        assert!(err::<Tmpfs>("/t:rbind").contains("only allowed with bind"));
    }

    #[test]
    fn mount_bind_takes_podmans_fields() {
        let m: MountArg = "type=bind,src=/a,target=/b,readonly,bind-propagation=rslave"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let MountKind::Bind(bind) = m.kind() else {
            panic!("not a bind: {m:?}");
        };
        assert_eq!(bind.source(), Path::new("/a"));
        assert_eq!(bind.destination(), Path::new("/b"));
        assert_eq!(
            bind.options(FsFlags::default()),
            strings(&["rbind", "ro", "rslave"])
        );
        let m: MountArg =
            "type=bind,source=/a,destination=/b,ro=false,bind-nonrecursive,relabel=private,noexec"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
        let MountKind::Bind(bind) = m.kind() else {
            panic!("not a bind: {m:?}");
        };
        assert_eq!(bind.relabel(), Some(Relabel::Private));
        assert_eq!(
            bind.options(FsFlags::default()),
            strings(&["bind", "rw", "private", "noexec"])
        );
        let m: MountArg = "type=bind,source=/a,dst=/b,readonly=true,consistency=cached"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(m.kind(), MountKind::Bind(b) if b.readonly()));
    }

    #[test]
    fn mount_tmpfs_takes_size_and_mode() {
        let m: MountArg = "type=tmpfs,destination=/t,tmpfs-size=1g,tmpfs-mode=0700"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let MountKind::Tmpfs(tmpfs) = m.kind() else {
            panic!("not a tmpfs: {m:?}");
        };
        assert_eq!(
            tmpfs.options(),
            strings(&[
                "rw",
                "noexec",
                "nosuid",
                "nodev",
                "size=1073741824",
                "mode=0700",
                "tmpcopyup"
            ])
        );
    }

    #[test]
    fn malformed_mounts_say_what_is_wrong() {
        assert_eq!(
            err::<MountArg>("type=bogus,dst=/x"),
            "unknown mount type `bogus` (expected bind or tmpfs)"
        );
        assert_eq!(
            err::<MountArg>("type=volume,src=v,dst=/x"),
            "mount type `volume` is not supported (supported: bind, tmpfs)"
        );
        assert_eq!(err::<MountArg>("src=/a,dst=/b"), "missing `type=`");
        assert_eq!(
            err::<MountArg>("type=bind,src=/a"),
            "missing `destination=`"
        );
        assert_eq!(err::<MountArg>("type=bind,dst=/b"), "missing `source=`");
        assert!(err::<MountArg>("type=bind,src=/a,dst=b").contains("not an absolute path"));
        assert_eq!(
            err::<MountArg>("type=bind,src=/a,dst=/b,target=/c"),
            "mount options `dst=/b` and `target=/c` conflict: give only one"
        );
        assert!(err::<MountArg>("type=bind,type=tmpfs,dst=/b").contains("conflict"));
        assert!(err::<MountArg>("type=bind,src=/a,dst=/b,ro=maybe").contains("true or false"));
        assert!(
            err::<MountArg>("type=bind,src=/a,dst=/b,bind-propagation=odd")
                .contains("invalid value `odd` for `bind-propagation`")
        );
        assert_eq!(
            err::<MountArg>("type=tmpfs,src=/a,dst=/b"),
            "mount option `src` is only allowed with bind mounts"
        );
        assert_eq!(
            err::<MountArg>("type=bind,src=/a,dst=/b,tmpfs-size=1m"),
            "mount option `tmpfs-size` is only allowed with tmpfs mounts"
        );
        assert!(err::<MountArg>("type=bind,src=/a,dst=/b,U").contains("not supported"));
        assert_eq!(
            err::<MountArg>("type=bind,src=/a,dst=/b,colour=red"),
            "unknown mount option `colour`"
        );
    }

    #[test]
    fn host_entries_take_podmans_and_dockers_forms() {
        let entry: HostEntry = "db:192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entry.names(), ["db"]);
        assert_eq!(entry.address().to_string(), "192.0.2.7");
        assert_eq!(entry.line(), "192.0.2.7\tdb\n");
        let entry: HostEntry = "a.example;b:2001:db8::1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entry.line(), "2001:db8::1\ta.example b\n");
        let entry: HostEntry = "v6=[::1]".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entry.line(), "::1\tv6\n");
    }

    #[test]
    fn malformed_host_entries_say_what_is_wrong() {
        assert_eq!(err::<HostEntry>("foo"), "expected NAME:IP");
        assert_eq!(err::<HostEntry>(":1.2.3.4"), "expected NAME:IP");
        assert_eq!(err::<HostEntry>("foo:"), "expected NAME:IP");
        assert_eq!(err::<HostEntry>("foo:bar"), "invalid IP address `bar`");
        assert_eq!(
            err::<HostEntry>("foo:1.2.3.999"),
            "invalid IP address `1.2.3.999`"
        );
        assert_eq!(err::<HostEntry>("-x:1.2.3.4"), "invalid host name `-x`");
        assert_eq!(err::<HostEntry>("a b:1.2.3.4"), "invalid host name `a b`");
        assert_eq!(err::<HostEntry>("a..b:1.2.3.4"), "invalid host name `a..b`");
        assert_eq!(
            err::<HostEntry>("gw:host-gateway"),
            "host-gateway is not supported: give an IP address"
        );
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
    fn a_host_without_etc_hosts_gives_localhost_entries() {
        let contents = hosts_file(None, &[], None);
        assert_eq!(
            String::from_utf8_lossy(&contents),
            "# Generated by specgate\n127.0.0.1\tlocalhost\n::1\tlocalhost\n"
        );
    }

    #[test]
    fn a_read_only_root_binds_the_files_read_only() {
        let mut spec = spec();
        crate::spec::use_host_rootfs(&mut spec);
        run(&mut spec, &MountOptions::default());
        assert!(options_at(&spec, "/etc/hosts").contains(&"ro".to_string()));
    }

    fn resolv(host: &str, resolved: Option<&str>, sharing: Sharing) -> String {
        String::from_utf8_lossy(&resolv_conf(
            host.as_bytes(),
            resolved.map(str::as_bytes),
            &sharing,
        ))
        .to_string()
    }

    const OWN_NETWORK: Sharing = Sharing {
        user_namespace: false,
        host_ipc: false,
        host_network: false,
    };
    const HOST_NETWORK: Sharing = Sharing {
        user_namespace: false,
        host_ipc: false,
        host_network: true,
    };

    #[test]
    fn resolv_conf_is_the_hosts_on_the_hosts_network() {
        let host = "nameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv(host, Some("nameserver 192.0.2.1\n"), HOST_NETWORK),
            host
        );
    }

    #[test]
    fn systemd_resolved_gives_way_to_its_upstream_servers_in_a_network_namespace() {
        let host = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let upstream = "# upstream\nnameserver 192.0.2.1\nsearch lan\n";
        assert_eq!(resolv(host, Some(upstream), OWN_NETWORK), upstream);
    }

    #[test]
    fn loopback_nameservers_are_dropped_and_public_ones_fill_an_empty_list() {
        let host = "search lan\nnameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv(host, None, OWN_NETWORK),
            "search lan\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
             nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
        );
        let host = "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.1\n";
        assert_eq!(resolv(host, None, OWN_NETWORK), "nameserver 192.0.2.1\n");
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
        let json = to_json(&spec).unwrap_or_else(|e| panic!("{e}"));
        let value: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        if let Err(errors) = specgate_tests::validate_config(&value) {
            panic!("schema violations:\n{errors}");
        }
        for m in spec.mounts().iter().flatten() {
            assert!(m.destination().is_absolute());
        }
    }
}
