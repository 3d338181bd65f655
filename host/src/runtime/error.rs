//! The errors of a run, outside the container itself.

use std::path::PathBuf;

use super::oci::RuntimeError;
use super::{bundle, chroot, console, stdio};
use crate::{network, sys};

/// Errors of a run, outside the container itself.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A run without a runtime (`--isolation chroot`) failed.
    #[error(transparent)]
    Chroot(#[from] chroot::ChrootError),
    /// The bundle could not be made.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// A system call failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    /// The container's standard streams could not be set up.
    #[error(transparent)]
    Stdio(#[from] stdio::StdioError),
    /// The container's terminal could not be received.
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    /// A relay thread could not start.
    #[error("cannot start relaying the container's {stream}: {source}")]
    Relay {
        /// The stream.
        stream: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime's pid file could not be read.
    #[error("pid file {}: {source}", path.display())]
    PidFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The container's networks could not be configured.
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// The run's start could not be audited: the container does not start
    /// unrecorded.
    #[error("audit log {}: {source}", path.display())]
    Audit {
        /// The audit log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for the runtime or the container failed.
    #[error("waiting for process {pid}: {errno}")]
    Wait {
        /// Its pid.
        pid: i32,
        /// Why.
        errno: nix::Error,
    },
}

impl RunError {
    /// The exit status this error gives: 126 or 127 when the command
    /// could not run, else 125.
    pub fn status(&self) -> u8 {
        match self {
            RunError::Runtime(RuntimeError::Command { status, .. }) => *status,
            RunError::Chroot(error) => error.status(),
            _ => 125,
        }
    }
}
