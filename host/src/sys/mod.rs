//! The kernel-facing calls specgate makes itself, behind one seam: every
//! `unsafe` block of the crate is in this module, including the two that
//! map machine code wasmtime compiled.
#![allow(unsafe_code)]

pub mod bounded;
pub mod chroot;
mod mount_api;
pub mod sealed;
mod watcher;

pub use mount_api::clone_tree_of;
pub use watcher::{STAND_DOWN, start_watcher};

mod descriptors;
mod mounts;
mod precompiled;
mod process;
mod signals;
mod terminals;

pub use descriptors::{StdFd, cloexec_from, inherited_fd, receive_fd, send_fd};
pub use mount_api::{attach_tree, clone_tree, make_recursively_read_only};
pub use mounts::{detach, private_mount_namespace, rbind};
pub use precompiled::{compile_component, load_private_component};
pub use process::{become_subreaper, probe_user_namespace, set_domainname};
pub use signals::catch_signals;
pub use terminals::{set_controlling_terminal, set_window_size, window_size};

use std::path::Path;

/// A failed system call, naming the call and the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{call} {}: {errno}", path.display())]
pub struct SysError {
    /// The call, e.g. `mount --rbind`.
    pub call: &'static str,
    /// The path it acted on.
    pub path: std::path::PathBuf,
    /// The kernel's answer.
    pub errno: nix::Error,
}

fn err<'a>(call: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> SysError + 'a {
    move |errno| SysError {
        call,
        path: path.to_path_buf(),
        errno,
    }
}
