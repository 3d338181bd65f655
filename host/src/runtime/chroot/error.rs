//! The errors of a run without a runtime: specgate's side, and the
//! container's init's, which it reports on the error pipe.

use std::path::PathBuf;

use super::seccomp;
use crate::sys;

/// Errors of a chroot run, on specgate's side.
#[derive(Debug, thiserror::Error)]
pub enum ChrootError {
    /// A namespace to join could not be opened.
    #[error("namespace {}: {source}", path.display())]
    Namespace {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The id mappings could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Mapping {
        /// The map file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file the child needs could not be opened.
    #[error("{what} {}: {source}", path.display())]
    Open {
        /// What it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The child could not be started or talked to.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// The child failed before its exec into `chroot-init`.
    #[error("cannot set up the container ({step}): {errno}")]
    Prologue {
        /// What it was doing.
        step: String,
        /// Why.
        errno: nix::Error,
    },
    /// The container shares or joins a PID namespace and there is no
    /// cgroup to hold its processes: what its command left would outlive
    /// the run.
    #[error(
        "--isolation chroot with the host's or a joined PID namespace needs a cgroup v2 hierarchy specgate may write in, to end what the command leaves behind; there is none: give the container a PID namespace of its own (--pid private)"
    )]
    Untracked,
    /// The container's init failed before the command ran.
    #[error("{message}")]
    Setup {
        /// 125, or 126/127 when the command could not be run.
        status: u8,
        /// What failed.
        message: String,
    },
}

impl ChrootError {
    /// The exit status this error gives.
    pub fn status(&self) -> u8 {
        match self {
            ChrootError::Setup { status, .. } => *status,
            _ => 125,
        }
    }
}

/// Errors of the container's init, before its command runs; sent to
/// specgate on the error pipe.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The spec could not be read.
    #[error("config.json: {0}")]
    Config(String),
    /// The spec has no process or no command.
    #[error("config.json: no process.args to run")]
    NoProcess,
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the path is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A resource limit could not be set.
    #[error("process.rlimits {name}: {errno}")]
    Rlimit {
        /// The limit.
        name: String,
        /// Why.
        errno: nix::Error,
    },
    /// The container's user could not be taken on.
    #[error("process.user uid {uid} gid {gid}: {call}: {errno}{}", if *errno == nix::Error::EINVAL { " (is it mapped in the user namespace?)" } else { "" })]
    User {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// The call that failed.
        call: &'static str,
        /// Why.
        errno: nix::Error,
    },
    /// A capability set could not be applied.
    #[error("process.capabilities {what}: {message}")]
    Capabilities {
        /// Which set.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The seccomp filter could not be built or loaded.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    /// A sysctl key is not a plain dotted name.
    #[error("linux.sysctl {0}: not a sysctl name")]
    Sysctl(String),
    /// A hostname or domain name without a UTS namespace.
    #[error("{0}: setting it needs a private UTS namespace")]
    NoUts(&'static str),
    /// The working directory cannot be entered.
    #[error("process.cwd {}: {errno}", path.display())]
    Cwd {
        /// The directory.
        path: PathBuf,
        /// Why.
        errno: nix::Error,
    },
    /// An argument or variable holds a NUL byte.
    #[error("process.args or process.env holds a NUL byte")]
    Nul,
    /// The command is not in the container's PATH.
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    /// specgate ended while the container was being set up: nothing
    /// would wait for it or clean up after it.
    #[error("specgate is gone")]
    ParentGone,
    /// execve failed.
    #[error("exec: \"{program}\": {}", errno.desc().to_lowercase())]
    Exec {
        /// The command.
        program: String,
        /// Why.
        errno: nix::Error,
    },
}

/// Maps a failed system call on `path` to the init's error.
pub(super) fn sys<'a>(
    call: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(nix::Error) -> InitError + 'a {
    move |errno| {
        InitError::Sys(crate::sys::SysError {
            call,
            path: path.to_path_buf(),
            errno,
        })
    }
}

impl InitError {
    /// The exit status this error gives, as podman's: 127 for a command
    /// that does not exist, 126 for one that cannot be executed, else 125.
    pub fn status(&self) -> u8 {
        match self {
            InitError::NotFound(_) => 127,
            InitError::Exec {
                errno: nix::Error::ENOENT,
                ..
            } => 127,
            InitError::Exec {
                errno: nix::Error::EACCES | nix::Error::EISDIR | nix::Error::ENOEXEC,
                ..
            } => 126,
            _ => 125,
        }
    }
}
