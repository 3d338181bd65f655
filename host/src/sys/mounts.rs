//! Classic mounts by path: specgate's private mount namespace, bind
//! mounts and detaching them.

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::{SysError, err};

/// Moves this process into a mount namespace of its own, whose mounts
/// receive the host's but never propagate back. Mounts made afterwards
/// vanish with the process, however it ends.
pub fn private_mount_namespace() -> Result<(), SysError> {
    let root = Path::new("/");
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare(CLONE_NEWNS)", root))?;
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(err("mount --make-rslave", root))
}

/// Binds `source` and every mount below it at `target`.
pub fn rbind(source: &Path, target: &Path) -> Result<(), SysError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("mount --rbind", target))
}

/// Detaches the mount at `target` and everything below it.
pub fn detach(target: &Path) -> Result<(), SysError> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
        .map_err(err("umount --lazy", target))
}
