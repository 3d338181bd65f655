//! The errors of the container's mounts: in a mount flag's value, or in
//! merging the mounts into the spec.

use std::path::PathBuf;

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
