//! Parsing the mount flags: `--volume`, `--mount`, `--tmpfs` and
//! `--add-host` values, with podman's options and defaults, into the
//! binds, tmpfs mounts and host entries that [`super::apply`] merges into
//! the spec.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::Mount;

use super::error::MountError;

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
    pub(super) source: PathBuf,
    pub(super) destination: PathBuf,
    pub(super) readonly: bool,
    pub(super) recursive: bool,
    pub(super) propagation: Propagation,
    pub(super) nosuid: Option<bool>,
    pub(super) nodev: Option<bool>,
    pub(super) noexec: Option<bool>,
    pub(super) relabel: Option<Relabel>,
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

    pub(super) fn to_mount(&self, source_flags: FsFlags) -> Mount {
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
    pub(super) destination: PathBuf,
    pub(super) readonly: bool,
    pub(super) noexec: bool,
    pub(super) nosuid: bool,
    pub(super) nodev: bool,
    pub(super) size: Option<TmpfsSize>,
    pub(super) mode: Option<u32>,
    pub(super) copy_up: bool,
    pub(super) noatime: bool,
    pub(super) propagation: Option<Propagation>,
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

    pub(super) fn to_mount(&self) -> Mount {
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
    pub(super) raw: String,
    pub(super) bind: Bind,
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
    pub(super) raw: String,
    pub(super) tmpfs: TmpfsMount,
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
    pub(super) raw: String,
    pub(super) kind: MountKind,
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
    pub(super) fn line(&self) -> String {
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
    PathBuf::from(crate::spec::path::clean(path))
}

/// The nosuid/nodev/noexec flags of the filesystem holding a path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FsFlags {
    pub(super) nosuid: bool,
    pub(super) nodev: bool,
    pub(super) noexec: bool,
}

impl FsFlags {
    pub(super) fn of(path: &Path) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
