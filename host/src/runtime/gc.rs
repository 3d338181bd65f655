//! Removing what dead runs left behind: a run whose specgate was killed
//! (SIGKILL, a power cut) cannot clean up after itself, so each bundle
//! names its owner, and `specgate gc` deletes the runtime state and the
//! bundle of every run whose owner is gone.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::bundle::{Bundle, BundleError};
use super::oci::Runtime;
use super::owner::owner_alive;
use crate::network;

/// The guardian whose cleanup [`guard`] is, started with the run.
pub use super::supervise::Guardian;

/// The network namespace a killed run handed its watcher, which the
/// cleanup inherits at descriptor 3 (see `sys::start_watcher`); taken
/// once, first thing, before anything else in this process can open a
/// descriptor there.
fn inherited_namespace() -> Option<std::os::fd::OwnedFd> {
    let link = std::fs::read_link("/proc/self/fd/3").ok()?;
    link.to_str()?
        .starts_with("net:[")
        .then(|| crate::sys::inherited_fd(3))
        .flatten()
}

/// The guardian's side: waits for end of file on stdin, then removes the
/// run if its owner is gone: its container, its networks (from the
/// records of their ADDs, see [`network::cache`]), its bundle.
pub fn guard(runtime: Option<&Runtime>, id: &str, bundle: &Path) {
    let netns = inherited_namespace();
    let mut byte = [0u8; 1];
    while matches!(std::io::stdin().read(&mut byte), Ok(n) if n > 0) {}
    if bundle.is_dir()
        && !owner_alive(bundle)
        && let Err(e) = remove_run(
            runtime,
            id,
            bundle,
            network::Leftovers::of(&network::ResultCache::default(), id, netns),
        )
    {
        tracing::warn!("guard: {e}");
    }
}

/// Removes a dead run: its container (when it is the run's own), then
/// its networks, then what a chroot run left in its cgroup, then its
/// bundle, which goes last so that a cleanup killed on the way leaves
/// what the next one needs to find the rest. `networks` must be taken
/// ([`network::Leftovers::of`]) before the container goes, which would end
/// its namespace: DEL then removes the interfaces inside it and what the
/// plugins made for them outside. Fails when the bundle is not one
/// specgate can adopt.
fn remove_run(
    runtime: Option<&Runtime>,
    id: &str,
    bundle: &Path,
    networks: network::Leftovers,
) -> Result<(), BundleError> {
    if let Some(Err(e)) = runtime.map(|r| r.delete_own(id, bundle)) {
        tracing::debug!("cleanup: {e}");
    }
    networks.release();
    super::chroot::cgroup::kill_recorded(bundle);
    Bundle::adopt(bundle.to_path_buf()).map(drop)
}

/// Deletes the runtime state and the bundle of every dead run under
/// `state_dir`; returns the ids removed.
pub fn collect(state_dir: &Path, runtime: &Runtime) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let dir: PathBuf = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !dir.is_dir() || owner_alive(&dir) {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        let networks = network::Leftovers::of(&network::ResultCache::default(), &id, None);
        if networks.added_elsewhere() {
            tracing::warn!(
                "gc: {id}: its networks were added in another network namespace; run `specgate gc` there"
            );
            continue;
        }
        if let Err(e) = remove_run(Some(runtime), &id, &dir, networks) {
            tracing::warn!("gc: {e}");
            continue;
        }
        removed.push(id);
    }
    // Records whose run is gone but whose DEL failed or never ran.
    for networks in network::Leftovers::orphans(&network::ResultCache::default(), state_dir) {
        if networks.added_elsewhere() {
            continue;
        }
        let id = networks.container_id().map(str::to_string);
        if networks.release()
            && let Some(id) = id
            && !removed.contains(&id)
        {
            removed.push(id);
        }
    }
    removed
}
