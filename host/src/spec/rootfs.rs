//! The container's root filesystem, as the host touches it while building
//! the spec: reading `/etc/passwd` and `/etc/group`, finding the command
//! in the container's `PATH`, creating the working directory.
//!
//! # Confinement
//!
//! The rootfs is opened once, with ambient authority, as a cap-std
//! [`Dir`]; every later access goes through that handle, so no path, link
//! or `..` inside the rootfs can make the host read or create anything
//! outside it. cap-std guarantees this even if the tree changes under us:
//! a directory swapped for a link between two steps still cannot lead
//! outside.
//!
//! # Chroot semantics
//!
//! cap-std refuses to follow a link whose target is absolute, yet real
//! trees are full of them (`/bin/sh -> /bin/busybox`, Debian's
//! `/etc/alternatives`). Paths are therefore resolved here one component
//! at a time, the way the kernel resolves them inside the container: an
//! absolute link target starts again from the rootfs's root, `..` never
//! climbs above it, and at most [`MAX_LINK_HOPS`] links are followed
//! (then [`RootfsError::Loop`], like `ELOOP`). cap-std only ever sees
//! paths made of components already known to be real directories.
//!
//! Every path given to a [`Rootfs`] is a path inside the container; a
//! relative one is taken from the root.
//!
//! The same resolution serves the command lookup, `/etc/passwd` and
//! `/etc/group`, and the working directory: it is what the container
//! itself will see once it runs, and it cannot reach the host.
//! `/etc/passwd -> /tmp/x/passwd` thus reads the rootfs's own
//! `tmp/x/passwd`, never the host's.
//!
//! # Creating directories
//!
//! Missing components of the working directory are created (mode 0755,
//! less the umask), like `mkdir -p` inside the container: a link whose
//! target is missing is an error, never a reason to create its target.
//! When the rootfs is the host's own `/` (the default rootfs, which the
//! runtime binds read-only), nothing is created: a missing directory there
//! is refused with [`RootfsError::HostRoot`], before any container exists,
//! rather than left for the runtime to fail on with a vaguer message.
//!
//! # Reading files
//!
//! Only regular files are read, opened non-blocking and without taking a
//! controlling terminal, and at most [`MAX_FILE_SIZE`] bytes: a rootfs
//! whose `/etc/passwd` is a FIFO or a device cannot hang or flood the
//! host.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, Metadata, MetadataExt, OpenOptions};
use cap_std::fs::{OpenOptionsExt, PermissionsExt};
use oci_spec::runtime::Spec;

/// The most links one path resolution follows, as Linux's `MAXSYMLINKS`.
pub const MAX_LINK_HOPS: usize = 40;

/// The largest file the host reads from a rootfs.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The working directory when the user gives none.
pub const DEFAULT_WORKDIR: &str = "/";

/// Errors touching the rootfs. `path` is the path inside the container,
/// `rootfs` the rootfs's path on the host.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The rootfs itself cannot be opened.
    #[error("cannot open the rootfs {rootfs}: {source}")]
    Open {
        /// The rootfs.
        rootfs: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file operation inside the rootfs failed.
    #[error("{path} in the rootfs {rootfs}: {source}")]
    Io {
        /// The path inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// More than [`MAX_LINK_HOPS`] links on the way.
    #[error("{path} in the rootfs {rootfs}: too many levels of symbolic links")]
    Loop {
        /// The path inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// A component that must be a directory is something else.
    #[error("{path} in the rootfs {rootfs}: not a directory")]
    NotADirectory {
        /// The path inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// A link on the way to a directory to create points to nothing.
    #[error("{path} in the rootfs {rootfs}: the symbolic link {link} points to a missing path")]
    DanglingLink {
        /// The path inside the container.
        path: String,
        /// The link, inside the container.
        link: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// A file to read is a directory, FIFO, socket or device.
    #[error("{path} in the rootfs {rootfs}: not a regular file")]
    NotAFile {
        /// The path inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// A file to read is larger than [`MAX_FILE_SIZE`].
    #[error("{path} in the rootfs {rootfs}: larger than {MAX_FILE_SIZE} bytes")]
    TooLarge {
        /// The path inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// A directory would have to be created in the host's own `/`.
    #[error(
        "{path}: no such directory, and the rootfs is the host's / (read-only): create it on the host or use --rootfs"
    )]
    HostRoot {
        /// The path inside the container.
        path: String,
    },
    /// The working directory is not an absolute path.
    #[error("--workdir {path}: must be an absolute path")]
    RelativeWorkdir {
        /// The working directory as given.
        path: String,
    },
    /// The command is nowhere to be found (exit 127 at run).
    #[error("{command}: command not found in the rootfs {rootfs}{}", searched(.path_env))]
    NotFound {
        /// The command as given.
        command: String,
        /// The `PATH` searched, or `None` for a command with a `/`.
        path_env: Option<String>,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// The command exists but cannot be executed (exit 126 at run).
    #[error(
        "{command}: permission denied: {path} in the rootfs {rootfs} is not an executable file"
    )]
    NotExecutable {
        /// The command as given.
        command: String,
        /// The candidate found, inside the container.
        path: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
}

fn searched(path_env: &Option<String>) -> String {
    match path_env {
        Some(path) => format!(" (PATH={path})"),
        None => String::new(),
    }
}

/// A container's root filesystem, opened once.
#[derive(Debug)]
pub struct Rootfs {
    dir: Dir,
    path: PathBuf,
    host_root: bool,
}

/// Where a resolution ended: an existing non-link `rel`, relative to the
/// root and free of links. (A missing path ends nowhere: `None`.)
struct Found {
    rel: PathBuf,
    meta: Metadata,
}

/// One component of a path to resolve, and whether it came from a link's
/// target (those are never created).
struct Pending {
    part: Part,
    from_link: bool,
}

enum Part {
    /// `/` at the start of a link target: back to the root.
    Root,
    Current,
    Parent,
    Name(OsString),
}

/// The parts of `path`, last first (a stack); a trailing `/` demands a
/// directory, as it does to the kernel.
fn parts(path: &OsStr, from_link: bool) -> Vec<Pending> {
    let bytes = path.as_bytes();
    let mut parts = Vec::new();
    if bytes.starts_with(b"/") {
        parts.push(Part::Root);
    }
    for name in bytes.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        parts.push(match name {
            b"." => Part::Current,
            b".." => Part::Parent,
            _ => Part::Name(OsStr::from_bytes(name).to_os_string()),
        });
    }
    if bytes.len() > 1 && bytes.ends_with(b"/") {
        parts.push(Part::Current);
    }
    parts
        .into_iter()
        .rev()
        .map(|part| Pending { part, from_link })
        .collect()
}

/// `rel` as cap-std wants it: `.` for the root itself.
fn at(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// `rel` as the container names it.
fn container_path(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Joins a container path to a directory, as the kernel would: an
/// absolute path ignores the directory.
fn join(dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", dir.trim_end_matches('/'))
    }
}

impl Rootfs {
    /// Opens the rootfs at `path` on the host: the one place where ambient
    /// authority is used.
    pub fn open(path: &Path) -> Result<Self, RootfsError> {
        let open_error = |source| RootfsError::Open {
            rootfs: path.to_path_buf(),
            source,
        };
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(open_error)?;
        let meta = dir.dir_metadata().map_err(open_error)?;
        // The same inode as the host's `/`, whatever the path said
        // (`/`, `/.`, a link to it).
        let host_root = std::fs::metadata("/").is_ok_and(|root| {
            use std::os::unix::fs::MetadataExt as _;
            root.dev() == meta.dev() && root.ino() == meta.ino()
        });
        Ok(Self {
            dir,
            path: path.to_path_buf(),
            host_root,
        })
    }

    /// The rootfs's path on the host, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this rootfs is the host's own `/`, where nothing is created.
    pub fn is_host_root(&self) -> bool {
        self.host_root
    }

    /// The whole text of the regular file at `path` inside the container
    /// (invalid UTF-8 replaced), or `None` when it does not exist, links
    /// to nothing included.
    pub fn read_to_string(&self, path: &str) -> Result<Option<String>, RootfsError> {
        let rel = match self.walk(path, false)? {
            None => return Ok(None),
            Some(Found { rel, meta }) if meta.is_file() => rel,
            Some(Found { .. }) => return Err(self.not_a_file(path)),
        };
        let mut options = OpenOptions::new();
        // A FIFO or a terminal swapped in after the check above must not
        // block the open nor become our controlling terminal.
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = self
            .dir
            .open_with(at(&rel), &options)
            .map_err(|e| self.io(path, e))?;
        if !file.metadata().map_err(|e| self.io(path, e))?.is_file() {
            return Err(self.not_a_file(path));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(path, e))?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(RootfsError::TooLarge {
                path: path.to_string(),
                rootfs: self.path.clone(),
            });
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Makes sure the directory `path` exists inside the container,
    /// creating what is missing like `mkdir -p` would there.
    pub fn create_dir_all(&self, path: &str) -> Result<(), RootfsError> {
        match self.walk(path, true)? {
            Some(Found { meta, .. }) if meta.is_dir() => Ok(()),
            Some(Found { .. }) => Err(RootfsError::NotADirectory {
                path: path.to_string(),
                rootfs: self.path.clone(),
            }),
            // A creating walk ends at a directory or fails.
            None => Err(self.io(path, io::ErrorKind::NotFound.into())),
        }
    }

    /// Finds `command` as the container's `execvp` would: a command with a
    /// `/` is taken as it is (relative to `cwd` if relative), any other is
    /// searched in the `:`-separated `path_env` (an empty entry is `cwd`).
    /// Returns the path the container will execute, links not resolved
    /// (multi-call binaries go by the name they are called with).
    ///
    /// A PATH entry with the command but not executable (no `x` bit, a
    /// directory) is skipped; if no entry has an executable one, that
    /// first candidate gives [`RootfsError::NotExecutable`], else
    /// [`RootfsError::NotFound`].
    pub fn resolve_command(
        &self,
        command: &str,
        path_env: &str,
        cwd: &str,
    ) -> Result<PathBuf, RootfsError> {
        let not_found = |path_env: Option<&str>| RootfsError::NotFound {
            command: command.to_string(),
            path_env: path_env.map(str::to_string),
            rootfs: self.path.clone(),
        };
        if command.is_empty() {
            return Err(not_found(None));
        }
        if command.contains('/') {
            let path = join(cwd, command);
            return match self.probe(&path)? {
                Probe::Executable => Ok(PathBuf::from(command)),
                Probe::NotExecutable => Err(self.not_executable(command, &path)),
                Probe::Missing => Err(not_found(None)),
            };
        }
        let mut denied = None;
        for entry in path_env.split(':') {
            let candidate = join(if entry.is_empty() { "." } else { entry }, command);
            // Whatever keeps this entry from holding the command (a loop,
            // a file where a directory should be) only skips it, as
            // execvp skips it.
            match self.probe(&join(cwd, &candidate)) {
                Ok(Probe::Executable) => return Ok(PathBuf::from(candidate)),
                Ok(Probe::NotExecutable) => {
                    denied.get_or_insert(candidate);
                }
                Ok(Probe::Missing)
                | Err(RootfsError::Loop { .. } | RootfsError::NotADirectory { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match denied {
            Some(candidate) => Err(self.not_executable(command, &candidate)),
            None => Err(not_found(Some(path_env))),
        }
    }

    /// What is at `path` as far as executing it goes.
    fn probe(&self, path: &str) -> Result<Probe, RootfsError> {
        Ok(match self.walk(path, false)? {
            None => Probe::Missing,
            Some(Found { meta, .. })
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 =>
            {
                Probe::Executable
            }
            Some(Found { .. }) => Probe::NotExecutable,
        })
    }

    /// Resolves `path` inside the rootfs with chroot semantics (see the
    /// module's docs), following every link, the last one included.
    /// With `create`, missing components of `path` itself are created.
    fn walk(&self, path: &str, create: bool) -> Result<Option<Found>, RootfsError> {
        let mut pending = parts(OsStr::new(path), false);
        let mut rel = PathBuf::new();
        let mut hops = 0;
        // What a dangling-link error names: the last link followed.
        let mut last_link = PathBuf::new();
        let mut builder = DirBuilder::new();
        builder.mode(0o755);
        while let Some(Pending { part, from_link }) = pending.pop() {
            let name = match part {
                Part::Root => {
                    rel = PathBuf::new();
                    continue;
                }
                // The walk only ever stands on directories.
                Part::Current => continue,
                Part::Parent => {
                    rel.pop();
                    continue;
                }
                Part::Name(name) => name,
            };
            let candidate = rel.join(&name);
            let meta = match self.dir.symlink_metadata(&candidate) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    if from_link {
                        return Err(RootfsError::DanglingLink {
                            path: path.to_string(),
                            link: container_path(&last_link),
                            rootfs: self.path.clone(),
                        });
                    }
                    if self.host_root {
                        return Err(RootfsError::HostRoot {
                            path: path.to_string(),
                        });
                    }
                    match self.dir.create_dir_with(&candidate, &builder) {
                        Ok(()) => {}
                        // Made meanwhile: looked at below like any other.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(self.io(path, e)),
                    }
                    self.dir
                        .symlink_metadata(&candidate)
                        .map_err(|e| self.io(path, e))?
                }
                Err(e) => return Err(self.io(path, e)),
            };
            if meta.is_symlink() {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(RootfsError::Loop {
                        path: path.to_string(),
                        rootfs: self.path.clone(),
                    });
                }
                let target = self
                    .dir
                    .read_link_contents(&candidate)
                    .map_err(|e| self.io(path, e))?;
                // A relative target continues from the link's directory,
                // `rel`; an absolute one starts with `Part::Root`.
                pending.extend(parts(target.as_os_str(), true));
                last_link = candidate;
                continue;
            }
            if !meta.is_dir() && !pending.is_empty() {
                return Err(RootfsError::NotADirectory {
                    path: path.to_string(),
                    rootfs: self.path.clone(),
                });
            }
            rel = candidate;
        }
        // `rel` is free of links: this looks at what the walk ended on.
        let meta = self
            .dir
            .symlink_metadata(at(&rel))
            .map_err(|e| self.io(path, e))?;
        Ok(Some(Found { rel, meta }))
    }

    fn io(&self, path: &str, source: io::Error) -> RootfsError {
        RootfsError::Io {
            path: path.to_string(),
            rootfs: self.path.clone(),
            source,
        }
    }

    fn not_a_file(&self, path: &str) -> RootfsError {
        RootfsError::NotAFile {
            path: path.to_string(),
            rootfs: self.path.clone(),
        }
    }

    fn not_executable(&self, command: &str, path: &str) -> RootfsError {
        RootfsError::NotExecutable {
            command: command.to_string(),
            path: path.to_string(),
            rootfs: self.path.clone(),
        }
    }
}

enum Probe {
    Executable,
    NotExecutable,
    Missing,
}

/// The `PATH` of a container's environment: its last `PATH=` entry, as
/// the process sees it, else [`super::DEFAULT_PATH`].
pub fn path_env(env: &[String]) -> &str {
    super::env::lookup(env, "PATH").unwrap_or(super::DEFAULT_PATH)
}

/// Makes sure the process's working directory exists in the rootfs,
/// creating it when missing.
pub fn create_workdir(spec: &Spec, rootfs: &Rootfs) -> Result<(), RootfsError> {
    let cwd = spec
        .process()
        .as_ref()
        .map_or_else(|| DEFAULT_WORKDIR.into(), |p| p.cwd().to_string_lossy());
    if !cwd.starts_with('/') {
        return Err(RootfsError::RelativeWorkdir {
            path: cwd.into_owned(),
        });
    }
    rootfs.create_dir_all(&cwd)
}

/// Checks that the process's command can be executed in the rootfs, with
/// the process's own `PATH` and working directory, so that a missing or
/// non-executable command fails before any container exists. Returns the
/// path the container will execute, or `None` when there is no command.
///
/// The spec's arguments stay as given: the runtime looks the command up
/// again inside the container, with the same `PATH`.
pub fn check_command(spec: &Spec, rootfs: &Rootfs) -> Result<Option<PathBuf>, RootfsError> {
    let Some(process) = spec.process() else {
        return Ok(None);
    };
    let Some(command) = process.args().as_ref().and_then(|args| args.first()) else {
        return Ok(None);
    };
    let env = process.env().as_deref().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy();
    let cwd = if cwd.is_empty() {
        DEFAULT_WORKDIR
    } else {
        &cwd
    };
    rootfs
        .resolve_command(command, path_env(env), cwd)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;

    /// A rootfs tree in a temporary directory.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new() -> Self {
            Tree(tempfile::tempdir().unwrap())
        }
        fn host(&self, path: &str) -> PathBuf {
            self.0.path().join(path.trim_start_matches('/'))
        }
        fn dir(&self, path: &str) -> &Self {
            std::fs::create_dir_all(self.host(path)).unwrap();
            self
        }
        fn file(&self, path: &str, text: &str, mode: u32) -> &Self {
            let host = self.host(path);
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::fs::write(&host, text).unwrap();
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode)).unwrap();
            self
        }
        fn link(&self, path: &str, target: &str) -> &Self {
            let host = self.host(path);
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            symlink(target, host).unwrap();
            self
        }
        fn open(&self) -> Rootfs {
            Rootfs::open(self.0.path()).unwrap()
        }
    }

    #[test]
    fn a_file_is_read_and_a_missing_one_is_none() {
        let tree = Tree::new();
        tree.file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644);
        let rootfs = tree.open();
        assert_eq!(
            rootfs.read_to_string("/etc/passwd").unwrap().as_deref(),
            Some("root:x:0:0::/root:/bin/sh\n")
        );
        assert_eq!(rootfs.read_to_string("/etc/group").unwrap(), None);
        assert_eq!(rootfs.read_to_string("/nowhere/group").unwrap(), None);
    }

    #[test]
    fn absolute_links_are_followed_inside_the_rootfs() {
        let tree = Tree::new();
        tree.file("/usr/lib/passwd", "inside\n", 0o644)
            .link("/etc", "/usr/lib")
            .link("/usr/lib/alt", "../../etc/passwd");
        let rootfs = tree.open();
        assert_eq!(
            rootfs.read_to_string("/etc/passwd").unwrap().as_deref(),
            Some("inside\n")
        );
        assert_eq!(
            rootfs.read_to_string("/etc/alt").unwrap().as_deref(),
            Some("inside\n")
        );
    }

    #[test]
    fn dotdot_never_climbs_above_the_root() {
        let tree = Tree::new();
        tree.file("/etc/passwd", "inside\n", 0o644)
            .link("/etc/up", "../../../../../../etc/passwd");
        let rootfs = tree.open();
        assert_eq!(
            rootfs
                .read_to_string("/../../../etc/passwd")
                .unwrap()
                .as_deref(),
            Some("inside\n")
        );
        assert_eq!(
            rootfs.read_to_string("/etc/up").unwrap().as_deref(),
            Some("inside\n")
        );
    }

    #[test]
    fn a_link_loop_is_an_error() {
        let tree = Tree::new();
        tree.link("/a", "/b").link("/b", "a");
        let rootfs = tree.open();
        assert!(matches!(
            rootfs.read_to_string("/a"),
            Err(RootfsError::Loop { .. })
        ));
        assert!(matches!(
            rootfs.create_dir_all("/a/x"),
            Err(RootfsError::Loop { .. })
        ));
    }

    #[test]
    fn forty_links_are_followed_but_not_forty_one() {
        let tree = Tree::new();
        tree.file("/end", "end\n", 0o644);
        let chain = |tree: &Tree, prefix: &str, len: usize| {
            for i in 0..len {
                let target = if i + 1 == len {
                    "/end".to_string()
                } else {
                    format!("/{prefix}{}", i + 1)
                };
                tree.link(&format!("/{prefix}{i}"), &target);
            }
        };
        chain(&tree, "ok", MAX_LINK_HOPS);
        chain(&tree, "long", MAX_LINK_HOPS + 1);
        let rootfs = tree.open();
        assert_eq!(
            rootfs.read_to_string("/ok0").unwrap().as_deref(),
            Some("end\n")
        );
        assert!(matches!(
            rootfs.read_to_string("/long0"),
            Err(RootfsError::Loop { .. })
        ));
    }

    #[test]
    fn only_regular_files_are_read() {
        let tree = Tree::new();
        tree.dir("/etc/passwd");
        nix::unistd::mkfifo(&tree.host("/etc/group"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let rootfs = tree.open();
        assert!(matches!(
            rootfs.read_to_string("/etc/passwd"),
            Err(RootfsError::NotAFile { .. })
        ));
        // Would block forever if opened for reading.
        assert!(matches!(
            rootfs.read_to_string("/etc/group"),
            Err(RootfsError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_file_where_a_directory_is_needed_is_an_error() {
        let tree = Tree::new();
        tree.file("/etc", "", 0o644);
        let rootfs = tree.open();
        let error = rootfs.read_to_string("/etc/passwd").unwrap_err();
        assert!(matches!(error, RootfsError::NotADirectory { .. }));
        assert!(error.to_string().starts_with("/etc/passwd in the rootfs "));
        assert!(matches!(
            rootfs.create_dir_all("/etc"),
            Err(RootfsError::NotADirectory { .. })
        ));
        assert!(matches!(
            rootfs.create_dir_all("/etc/x"),
            Err(RootfsError::NotADirectory { .. })
        ));
    }

    #[test]
    fn missing_directories_are_created_through_links_inside() {
        let tree = Tree::new();
        tree.dir("/srv/data").link("/data", "/srv/data");
        let rootfs = tree.open();
        rootfs.create_dir_all("/work/a/b").unwrap();
        rootfs.create_dir_all("/data/new").unwrap();
        rootfs.create_dir_all("/x/../y/./z/").unwrap();
        assert!(tree.host("/work/a/b").is_dir());
        assert!(tree.host("/srv/data/new").is_dir());
        assert!(tree.host("/x").is_dir());
        assert!(tree.host("/y/z").is_dir());
        let mode = std::fs::metadata(tree.host("/work/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o022, 0, "no group or other write: {mode:o}");
        // Already there: nothing to do.
        rootfs.create_dir_all("/work/a/b").unwrap();
        rootfs.create_dir_all("/").unwrap();
    }

    #[test]
    fn a_dangling_link_is_not_a_reason_to_create_its_target() {
        let tree = Tree::new();
        tree.link("/data", "/mnt/data");
        let rootfs = tree.open();
        let error = rootfs.create_dir_all("/data/x").unwrap_err();
        assert!(matches!(error, RootfsError::DanglingLink { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("the symbolic link /data points to a missing path")
        );
        assert!(!tree.host("/mnt").exists());
    }

    #[test]
    fn the_hosts_root_is_never_written() {
        let rootfs = Rootfs::open(Path::new("/")).unwrap();
        assert!(rootfs.is_host_root());
        rootfs.create_dir_all("/").unwrap();
        rootfs.create_dir_all("/tmp").unwrap();
        let missing = "/specgate-test-missing-dir/sub";
        let error = rootfs.create_dir_all(missing).unwrap_err();
        assert!(matches!(error, RootfsError::HostRoot { .. }));
        assert!(!Path::new("/specgate-test-missing-dir").exists());
        assert!(!Tree::new().open().is_host_root());
    }

    #[test]
    fn commands_are_found_in_the_containers_path() {
        let tree = Tree::new();
        tree.file("/bin/busybox", "", 0o755)
            .link("/bin/sh", "/bin/busybox")
            .file("/usr/bin/tool", "", 0o755)
            .file("/usr/local/bin/tool", "", 0o644)
            .file("/app/run", "", 0o700);
        let rootfs = tree.open();
        let path = "/usr/local/bin:/usr/bin:/bin";
        assert_eq!(
            rootfs.resolve_command("sh", path, "/").unwrap(),
            Path::new("/bin/sh")
        );
        // A non-executable earlier match is skipped.
        assert_eq!(
            rootfs.resolve_command("tool", path, "/").unwrap(),
            Path::new("/usr/bin/tool")
        );
        assert_eq!(
            rootfs.resolve_command("/bin/sh", path, "/").unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(
            rootfs.resolve_command("./run", path, "/app").unwrap(),
            Path::new("./run")
        );
        assert_eq!(
            rootfs.resolve_command("run", ":/bin", "/app").unwrap(),
            Path::new("./run")
        );
        assert_eq!(
            rootfs.resolve_command("run", "bin2:app", "/").unwrap(),
            Path::new("app/run")
        );
    }

    #[test]
    fn a_missing_command_is_not_found() {
        let tree = Tree::new();
        tree.dir("/bin").link("/bin/gone", "/nowhere");
        let rootfs = tree.open();
        let error = rootfs
            .resolve_command("nosuch", "/usr/bin:/bin", "/")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "nosuch: command not found in the rootfs {} (PATH=/usr/bin:/bin)",
                tree.0.path().display()
            )
        );
        for command in ["gone", "/bin/gone", "/nosuch", ""] {
            assert!(
                matches!(
                    rootfs.resolve_command(command, "/bin", "/"),
                    Err(RootfsError::NotFound { .. })
                ),
                "{command}"
            );
        }
    }

    #[test]
    fn a_command_that_cannot_run_is_not_executable() {
        let tree = Tree::new();
        tree.file("/bin/data", "", 0o644)
            .dir("/bin/dir")
            .link("/bin/ln", "data");
        let rootfs = tree.open();
        for command in ["data", "dir", "ln", "/bin/data", "/bin/dir", "/bin"] {
            let error = rootfs.resolve_command(command, "/bin", "/").unwrap_err();
            assert!(
                matches!(error, RootfsError::NotExecutable { .. }),
                "{command}: {error}"
            );
        }
        let error = rootfs.resolve_command("data", "/bin", "/").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("data: permission denied: /bin/data in the rootfs ")
        );
    }

    #[test]
    fn a_broken_path_entry_is_skipped() {
        let tree = Tree::new();
        tree.link("/loop", "/loop")
            .file("/file", "", 0o755)
            .file("/bin/sh", "", 0o755);
        let rootfs = tree.open();
        assert_eq!(
            rootfs
                .resolve_command("sh", "/loop:/file:/bin", "/")
                .unwrap(),
            Path::new("/bin/sh")
        );
        assert!(matches!(
            rootfs.resolve_command("/loop", "/bin", "/"),
            Err(RootfsError::Loop { .. })
        ));
    }

    #[test]
    fn the_path_is_the_containers_last() {
        let env = ["PATH=/a".to_string(), "X=1".into(), "PATH=/b".into()];
        assert_eq!(path_env(&env), "/b");
        assert_eq!(path_env(&[]), super::super::DEFAULT_PATH);
    }

    #[test]
    fn the_workdir_is_created() {
        let tree = Tree::new();
        let rootfs = tree.open();
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        let mut set_cwd = |cwd: &str| {
            spec.process_mut().as_mut().unwrap().set_cwd(cwd.into());
            create_workdir(&spec, &rootfs)
        };
        set_cwd("/work/dir").unwrap();
        assert!(tree.host("/work/dir").is_dir());
        let error = set_cwd("work").unwrap_err();
        assert_eq!(
            error.to_string(),
            "--workdir work: must be an absolute path"
        );
    }

    #[test]
    fn the_command_is_checked_with_the_processs_path_and_cwd() {
        let tree = Tree::new();
        tree.file("/opt/bin/tool", "", 0o755)
            .file("/app/run", "", 0o755);
        let rootfs = tree.open();
        let mut spec = super::super::default_spec("id", &["tool".into()]);
        assert!(matches!(
            check_command(&spec, &rootfs),
            Err(RootfsError::NotFound { .. })
        ));
        let process = spec.process_mut().as_mut().unwrap();
        process.set_env(Some(vec!["PATH=/opt/bin".into()]));
        assert_eq!(
            check_command(&spec, &rootfs).unwrap().as_deref(),
            Some(Path::new("/opt/bin/tool"))
        );
        let process = spec.process_mut().as_mut().unwrap();
        process.set_args(Some(vec!["./run".into()]));
        process.set_cwd("/app".into());
        assert_eq!(
            check_command(&spec, &rootfs).unwrap().as_deref(),
            Some(Path::new("./run"))
        );
        spec.process_mut().as_mut().unwrap().set_args(None);
        assert_eq!(check_command(&spec, &rootfs).unwrap(), None);
    }

    #[test]
    fn the_hosts_root_serves_as_a_rootfs() {
        let rootfs = Rootfs::open(Path::new("/")).unwrap();
        assert!(rootfs.read_to_string("/etc/passwd").unwrap().is_some());
        assert_eq!(
            rootfs
                .resolve_command("sh", super::super::DEFAULT_PATH, "/")
                .unwrap()
                .file_name(),
            Some(OsStr::new("sh"))
        );
    }
}
