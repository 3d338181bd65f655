//! Machine code wasmtime compiled, made runnable: compiled a moment ago in
//! this process, or read back from a file that only this uid can have
//! written.
//!
//! wasmtime executes a precompiled component as is, so loading one is
//! `unsafe` there: the bytes must be wasmtime's own output. The two safe
//! functions here establish that themselves, from facts they check, not
//! from what a caller promises.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles `wasm` with `compiler` and loads the result into `engine`,
/// which may have no compiler of its own. Returns the precompiled bytes
/// (to be stored) and the component.
pub fn compile_component(
    compiler: &Engine,
    engine: &Engine,
    wasm: &[u8],
) -> wasmtime::Result<(Vec<u8>, Component)> {
    let precompiled = compiler.precompile_component(wasm)?;
    // SAFETY: the bytes are `precompile_component`'s output a moment ago
    // and never left this function; wasmtime refuses them if the
    // compiler's settings are not the engine's.
    let component = unsafe { Component::deserialize(engine, &precompiled)? };
    Ok((precompiled, component))
}

/// Why a file could not be loaded as a private precompiled component.
#[derive(Debug, thiserror::Error)]
pub enum PrivateLoadError {
    /// The file or its directory is not ours alone, or not a regular
    /// file in it: someone else could have chosen its bytes.
    #[error("not private: {0}")]
    NotPrivate(String),
    /// Reading it failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// wasmtime refused it: another version, configuration or CPU, or not
    /// a precompiled component.
    #[error("{0:#}")]
    Refused(wasmtime::Error),
}

/// Loads the precompiled component in `file`, which is `name` in the
/// directory `dir`, mapping it copy-on-write from the page cache rather
/// than copying it.
///
/// Loads only what this uid alone can have put there: `dir` must be ours
/// with no access for others (so no one else can add or replace a name in
/// it), `name` must lead to `file` itself, and `file` must be a regular
/// file of ours that no one else may write. Bytes that only this uid (or
/// root) could write are code this uid could run anyway; that the file is
/// wasmtime's output rather than damaged is the caller's digest to check,
/// and wasmtime itself refuses another version's or configuration's.
pub fn load_private_component(
    engine: &Engine,
    dir: &OwnedFd,
    name: &str,
    file: &File,
) -> Result<Component, PrivateLoadError> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::{fstat, fstatat};
    let euid = nix::unistd::geteuid().as_raw();
    let dir_stat = fstat(dir).map_err(std::io::Error::from)?;
    if dir_stat.st_uid != euid || dir_stat.st_mode & 0o077 != 0 {
        return Err(PrivateLoadError::NotPrivate(format!(
            "its directory has owner uid {}, mode {:o}",
            dir_stat.st_uid,
            dir_stat.st_mode & 0o7777
        )));
    }
    let meta = file.metadata()?;
    let named = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(std::io::Error::from)?;
    if !meta.is_file() || (named.st_dev, named.st_ino) != (meta.dev(), meta.ino()) {
        return Err(PrivateLoadError::NotPrivate(format!(
            "{name} is not the regular file opened"
        )));
    }
    if meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(PrivateLoadError::NotPrivate(format!(
            "owner uid {}, mode {:o}",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    // wasmtime maps a path; this process's /proc names the open file
    // itself, so what it maps is the inode checked above. Where /proc is
    // another (a container's) or absent, the bytes are read instead.
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let names_it =
        std::fs::metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()));
    let loaded = if names_it {
        // SAFETY: the file is the private one checked above, whose bytes
        // only this uid or root can have written; a writer of those
        // bytes can already run code as this uid. wasmtime checks the
        // version and configuration they were compiled for.
        unsafe { Component::deserialize_file(engine, &path) }
    } else {
        tracing::debug!("{path} does not name the cache entry {name}; reading it");
        let bytes = read_whole(file)?;
        // SAFETY: as above, bytes of the checked private file.
        unsafe { Component::deserialize(engine, &bytes) }
    };
    loaded.map_err(PrivateLoadError::Refused)
}

/// The whole file, read from its start through the descriptor.
fn read_whole(file: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes =
        vec![0; usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// How the name in the directory relates to the file that was opened.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Name {
        /// The name is the opened file.
        Same,
        /// Another file was renamed over the name after the open.
        Replaced,
        /// The name is a symlink to the opened file.
        Symlink,
        /// The name is gone.
        Removed,
    }

    /// Whether a load may go ahead, written from what the cache's
    /// privacy means rather than from the function's checks: no one but
    /// this uid can have chosen the bytes or can swap the name.
    fn private(dir_mode: u32, file_mode: u32, file_ours: bool, name: Name) -> bool {
        let others_reach_dir = dir_mode & 0o077 != 0;
        let others_write_file = file_mode & 0o022 != 0;
        !others_reach_dir && !others_write_file && file_ours && name == Name::Same
    }

    /// Every combination of directory mode, file mode, file owner and
    /// name against the oracle: a load happens exactly when the oracle
    /// allows it, and a refusal says the file is not private.
    #[test]
    fn loads_only_what_only_this_uid_can_have_written() {
        let engine = Engine::default();
        // An empty component: the magic, version 13 and layer 1.
        let bytes = engine.precompile_component(b"\0asm\x0d\0\x01\0").unwrap();
        let base = tempfile::tempdir().unwrap();
        let mut case = 0;
        for dir_mode in [0o700, 0o750, 0o710, 0o701, 0o755] {
            for file_mode in [0o600, 0o400, 0o640, 0o604, 0o620, 0o602, 0o666] {
                for file_ours in [true, false] {
                    for name in [Name::Same, Name::Replaced, Name::Symlink, Name::Removed] {
                        case += 1;
                        let dir = base.path().join(case.to_string());
                        std::fs::create_dir(&dir).unwrap();
                        let path = dir.join("entry.cwasm");
                        std::fs::write(&path, &bytes).unwrap();
                        std::fs::set_permissions(&path, PermissionsExt::from_mode(file_mode))
                            .unwrap();
                        if !file_ours {
                            // Needs root, as the tests have in CI.
                            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
                        }
                        let file = File::open(&path).unwrap();
                        match name {
                            Name::Same => {}
                            Name::Replaced => {
                                let other = dir.join("other");
                                std::fs::write(&other, &bytes).unwrap();
                                std::fs::rename(&other, &path).unwrap();
                            }
                            Name::Symlink => {
                                let moved = dir.join("moved");
                                std::fs::rename(&path, &moved).unwrap();
                                symlink(&moved, &path).unwrap();
                            }
                            Name::Removed => std::fs::remove_file(&path).unwrap(),
                        }
                        std::fs::set_permissions(&dir, PermissionsExt::from_mode(dir_mode))
                            .unwrap();
                        let dir_fd = OwnedFd::from(File::open(&dir).unwrap());
                        let loaded = load_private_component(&engine, &dir_fd, "entry.cwasm", &file);
                        let what = format!(
                            "dir {dir_mode:o}, file {file_mode:o}, ours {file_ours}, name {name:?}"
                        );
                        if private(dir_mode, file_mode, file_ours, name) {
                            assert!(loaded.is_ok(), "{what}: {:?}", loaded.err());
                        } else {
                            match loaded {
                                Err(PrivateLoadError::NotPrivate(_)) => {}
                                // fstatat of a removed name fails.
                                Err(PrivateLoadError::Io(e)) if name == Name::Removed => {
                                    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{what}");
                                }
                                other => panic!("{what}: loaded or wrong error: {:?}", other.err()),
                            }
                        }
                    }
                }
            }
        }
    }

    /// A private file whose bytes are not wasmtime's output is refused
    /// by wasmtime, through the mapping and through the read alike.
    #[test]
    fn private_bytes_that_are_not_a_compiled_component_are_refused() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o700)).unwrap();
        let path = dir.path().join("entry.cwasm");
        std::fs::write(&path, b"\x7fELF but not wasmtime's").unwrap();
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o600)).unwrap();
        let file = File::open(&path).unwrap();
        let dir_fd = OwnedFd::from(File::open(dir.path()).unwrap());
        let loaded = load_private_component(&engine, &dir_fd, "entry.cwasm", &file);
        assert!(
            matches!(loaded, Err(PrivateLoadError::Refused(_))),
            "{:?}",
            loaded.err()
        );
    }
}
