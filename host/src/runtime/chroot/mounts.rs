//! The container's filesystem, set up by its init inside its own mount
//! namespace: the spec's mounts under `root.path`, the default devices,
//! the switch of root (pivot_root, or chroot where pivot_root cannot be
//! used), then masked and read-only paths and a read-only root.
//!
//! Destinations are resolved inside the rootfs through a cap-std handle
//! (a symlink in the rootfs cannot send a mount outside it), and each
//! mount is made on `/proc/self/fd/N` of the directory or file opened
//! that way, as runc does.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use super::error::{InitError, sys};

/// A mount's options, split into flags, propagation and data.
#[derive(Debug, PartialEq)]
pub struct Options {
    /// Flags set on mount.
    pub flags: MsFlags,
    /// Flags cleared (`rw`, `suid`, ...): only for remounts.
    pub cleared: MsFlags,
    /// Propagation changes applied after the mount.
    pub propagation: Vec<MsFlags>,
    /// The filesystem's own options.
    pub data: Vec<String>,
}

/// Splits OCI mount options as runc does.
pub fn parse_options(options: &[String]) -> Options {
    let mut out = Options {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
    };
    for option in options {
        let set = |f: MsFlags| (Some(f), None);
        let clear = |f: MsFlags| (None, Some(f));
        let (on, off) = match option.as_str() {
            "ro" => set(MsFlags::MS_RDONLY),
            "rw" => clear(MsFlags::MS_RDONLY),
            "nosuid" => set(MsFlags::MS_NOSUID),
            "suid" => clear(MsFlags::MS_NOSUID),
            "nodev" => set(MsFlags::MS_NODEV),
            "dev" => clear(MsFlags::MS_NODEV),
            "noexec" => set(MsFlags::MS_NOEXEC),
            "exec" => clear(MsFlags::MS_NOEXEC),
            "sync" => set(MsFlags::MS_SYNCHRONOUS),
            "async" => clear(MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(MsFlags::MS_DIRSYNC),
            "remount" => set(MsFlags::MS_REMOUNT),
            "mand" => set(MsFlags::MS_MANDLOCK),
            "nomand" => clear(MsFlags::MS_MANDLOCK),
            "noatime" => set(MsFlags::MS_NOATIME),
            "atime" => clear(MsFlags::MS_NOATIME),
            "nodiratime" => set(MsFlags::MS_NODIRATIME),
            "diratime" => clear(MsFlags::MS_NODIRATIME),
            "relatime" => set(MsFlags::MS_RELATIME),
            "norelatime" => clear(MsFlags::MS_RELATIME),
            "strictatime" => set(MsFlags::MS_STRICTATIME),
            "nostrictatime" => clear(MsFlags::MS_STRICTATIME),
            "bind" => set(MsFlags::MS_BIND),
            "rbind" => set(MsFlags::MS_BIND | MsFlags::MS_REC),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                out.propagation.push(propagation(option));
                continue;
            }
            // SELinux relabelling and copy-up are the engine's business,
            // not the kernel's.
            "z" | "Z" | "tmpcopyup" | "notmpcopyup" | "U" => continue,
            _ => {
                out.data.push(option.clone());
                continue;
            }
        };
        if let Some(f) = on {
            out.flags |= f;
        }
        if let Some(f) = off {
            out.cleared |= f;
            out.flags &= !f;
        }
    }
    out
}

fn propagation(option: &str) -> MsFlags {
    let (recursive, name) = match option.strip_prefix('r') {
        Some(rest) if !rest.is_empty() => (MsFlags::MS_REC, rest),
        _ => (MsFlags::empty(), option),
    };
    recursive
        | match name {
            "shared" => MsFlags::MS_SHARED,
            "slave" => MsFlags::MS_SLAVE,
            "unbindable" => MsFlags::MS_UNBINDABLE,
            _ => MsFlags::MS_PRIVATE,
        }
}

/// The path of `dest` (absolute, in the container) below the rootfs.
fn relative(dest: &Path) -> PathBuf {
    dest.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// The flags of the mount at `path` that a bind remount in a user
/// namespace must keep (the kernel locks them).
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if stat.flags().contains(fs) {
            flags |= ms;
        }
    }
    flags
}

/// Whether a mount binds a path: its source is then opened by specgate
/// before the container's namespaces, as runc does.
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Whether the host's /sys/fs/cgroup is the unified (v2) hierarchy.
fn host_cgroup2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The rootfs, opened once; every destination is resolved through it.
#[derive(Debug)]
pub struct RootFs {
    path: PathBuf,
    dir: Dir,
    user_namespace: bool,
}

impl RootFs {
    /// Makes `root.path` a mount point of its own (pivot_root needs one)
    /// after setting the propagation of the whole tree as the spec asks
    /// (rslave by default, as runc: nothing mounted here reaches the
    /// host).
    pub fn open(spec: &Spec, user_namespace: bool) -> Result<Self, InitError> {
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        let path = std::fs::canonicalize(&root).map_err(|source| InitError::Io {
            what: "rootfs",
            path: root.clone(),
            source,
        })?;
        let propagation = spec
            .linux()
            .as_ref()
            .and_then(|l| l.rootfs_propagation().clone())
            .map_or(MsFlags::MS_SLAVE | MsFlags::MS_REC, |p| propagation(&p));
        let slash = Path::new("/");
        mount(None::<&str>, slash, None::<&str>, propagation, None::<&str>)
            .map_err(sys("mount --make-rslave", slash))?;
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("mount --rbind", &path))?;
        let dir =
            Dir::open_ambient_dir(&path, ambient_authority()).map_err(|source| InitError::Io {
                what: "rootfs",
                path: path.clone(),
                source,
            })?;
        Ok(RootFs {
            path,
            dir,
            user_namespace,
        })
    }

    /// Creates the destination of a mount inside the rootfs (a file when
    /// the source is one) and opens it; the returned file's
    /// `/proc/self/fd` path is where to mount.
    fn target(&self, dest: &Path, file: bool) -> Result<std::fs::File, InitError> {
        let rel = relative(dest);
        let io = |source| InitError::Io {
            what: "mount destination",
            path: dest.to_path_buf(),
            source,
        };
        if rel.as_os_str().is_empty() {
            return Ok(self.dir.try_clone().map_err(io)?.into_std_file());
        }
        if file {
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.dir.create_dir_all(parent).map_err(io)?;
            }
            if self.dir.symlink_metadata(&rel).is_err() {
                self.dir
                    .open_with(
                        &rel,
                        cap_std::fs::OpenOptions::new().write(true).create(true),
                    )
                    .map_err(io)?;
            }
            let mut options = cap_std::fs::OpenOptions::new();
            options.read(true);
            Ok(self.dir.open_with(&rel, &options).map_err(io)?.into_std())
        } else {
            self.dir.create_dir_all(&rel).map_err(io)?;
            Ok(self.dir.open_dir(&rel).map_err(io)?.into_std_file())
        }
    }

    /// Mounts each of the spec's mounts, in order; the sources of bind
    /// mounts are the descriptors specgate opened ([`is_bind`]).
    pub fn mount_all(&self, spec: &Spec) -> Result<(), InitError> {
        let mut next_source = crate::sys::chroot::FIRST_SOURCE_FD;
        for m in spec.mounts().iter().flatten() {
            let tree = if is_bind(m) {
                next_source += 1;
                let tree =
                    crate::sys::inherited_fd(next_source - 1).ok_or_else(|| InitError::Io {
                        what: "bind mount source",
                        path: m.destination().clone(),
                        source: std::io::Error::from_raw_os_error(libc::EBADF),
                    })?;
                Some(std::fs::File::from(tree))
            } else {
                None
            };
            self.mount_one(m, tree)?;
        }
        Ok(())
    }

    /// Mounts `m`; `tree` is the detached copy of a bind mount's source
    /// that specgate cloned before entering the namespaces.
    fn mount_one(&self, m: &Mount, tree: Option<std::fs::File>) -> Result<(), InitError> {
        let dest = m.destination();
        let options = parse_options(m.options().as_deref().unwrap_or_default());
        let typ = m.typ().as_deref().unwrap_or("none");
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let source_is_file = tree
            .as_ref()
            .is_some_and(|t| t.metadata().is_ok_and(|s| !s.is_dir()));
        let target = self.target(dest, source_is_file)?;
        let at = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
        let data = options.data.join(",");
        let data = (!data.is_empty()).then_some(data.as_str());
        let rbind = |from: &Path| {
            mount(
                Some(from),
                &at,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        // Flags that take a bind remount to apply, once mounted; and
        // whether read-only must reach the submounts of a host tree
        // bound in place of a filesystem the kernel would not mount.
        let mut host_tree = false;
        let remount = if let Some(tree) = &tree {
            crate::sys::attach_tree(tree.as_fd(), target.as_fd(), dest)?;
            options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC)
        } else if matches!(typ, "cgroup" | "cgroup2") && !host_cgroup2() {
            // A cgroup v1 host: a fresh, empty tmpfs of the container's
            // own, as runc gives one (runc 1.1 leaves it writable, read-
            // only being for the hierarchies it binds in it, which a run
            // without a runtime does not have). Never the host's tmpfs,
            // which the container could write to.
            mount(
                Some("tmpfs"),
                &at,
                Some("tmpfs"),
                options.flags & !MsFlags::MS_RDONLY,
                Some("mode=755"),
            )
            .map_err(sys("mount", dest))?;
            MsFlags::empty()
        } else {
            let fstype = if typ == "cgroup" { "cgroup2" } else { typ };
            let source: &Path = if matches!(typ, "cgroup" | "cgroup2" | "sysfs") {
                Path::new(fstype)
            } else {
                &source
            };
            match mount(Some(source), &at, Some(fstype), options.flags, data) {
                // Where the kernel refuses cgroup2 (a user namespace
                // without a cgroup namespace) or sysfs (one without a
                // network namespace), the host's, bound read-only, as
                // runc and buildah's chroot isolation do.
                Err(nix::Error::EPERM | nix::Error::EBUSY)
                    if matches!(typ, "cgroup" | "cgroup2") =>
                {
                    rbind(Path::new("/sys/fs/cgroup")).map_err(sys("mount --rbind", dest))?;
                    host_tree = true;
                    MsFlags::MS_RDONLY | (options.flags & !MsFlags::MS_REC)
                }
                Err(nix::Error::EPERM) if typ == "sysfs" => {
                    rbind(Path::new("/sys")).map_err(sys("mount --rbind", dest))?;
                    host_tree = true;
                    MsFlags::MS_RDONLY | (options.flags & !MsFlags::MS_REC)
                }
                other => {
                    other.map_err(sys("mount", dest))?;
                    MsFlags::empty()
                }
            }
        };
        if remount.is_empty() && options.propagation.is_empty() {
            return Ok(());
        }
        // The descriptor opened before mounting is the covered file:
        // the new mount is reached through a fresh one.
        let mounted = self.target(dest, source_is_file)?;
        let at = PathBuf::from(format!("/proc/self/fd/{}", mounted.as_raw_fd()));
        if !remount.is_empty() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount | locked_flags(&at);
            mount(None::<&str>, &at, None::<&str>, flags, None::<&str>)
                .map_err(sys("mount -o remount,bind", dest))?;
            if host_tree && remount.contains(MsFlags::MS_RDONLY) {
                crate::sys::make_recursively_read_only(&at)?;
            }
        }
        for change in &options.propagation {
            mount(None::<&str>, &at, None::<&str>, *change, None::<&str>)
                .map_err(sys("mount --make-*", dest))?;
        }
        Ok(())
    }

    /// The default devices (runc's: null, zero, full, random, urandom,
    /// tty) and the spec's `linux.devices`, with the usual links, when
    /// the spec mounts a fresh /dev. Made with mknod as root; in a user
    /// namespace, where mknod is refused, bound from the host's.
    pub fn devices(&self, spec: &Spec) -> Result<(), InitError> {
        let fresh_dev =
            spec.mounts().iter().flatten().any(|m| {
                m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs")
            });
        if !fresh_dev {
            return Ok(());
        }
        let mut nodes: Vec<(PathBuf, LinuxDeviceType, i64, i64, u32, u32, u32)> = [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ]
        .into_iter()
        .map(|(p, major, minor)| (p.into(), LinuxDeviceType::C, major, minor, 0o666, 0, 0))
        .collect();
        for d in spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default()
        {
            nodes.retain(|n| &n.0 != d.path());
            nodes.push((
                d.path().clone(),
                d.typ(),
                d.major(),
                d.minor(),
                d.file_mode().unwrap_or(0o666),
                d.uid().unwrap_or(0),
                d.gid().unwrap_or(0),
            ));
        }
        for (path, typ, major, minor, mode, uid, gid) in nodes {
            self.device(&path, typ, major, minor, mode, uid, gid)?;
        }
        let links = [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ];
        let io = |link: &'static str| {
            move |source| InitError::Io {
                what: "device link",
                path: link.into(),
                source,
            }
        };
        let dev = self.dir.open_dir("dev").map_err(io("/dev"))?;
        for (link, to) in links {
            let name = &link["/dev/".len()..];
            if dev.symlink_metadata(name).is_ok() {
                continue;
            }
            // Through the /dev handle: cap-std refuses absolute targets,
            // which these links need and which are only text here.
            nix::unistd::symlinkat(to, &dev, name)
                .map_err(|errno| io(link)(std::io::Error::from(errno)))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn device(
        &self,
        path: &Path,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), InitError> {
        use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
        let rel = relative(path);
        let io = |source| InitError::Io {
            what: "device",
            path: path.to_path_buf(),
            source,
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or_default();
        if !parent.as_os_str().is_empty() {
            self.dir.create_dir_all(parent).map_err(io)?;
        }
        let parent_dir = if parent.as_os_str().is_empty() {
            self.dir.try_clone().map_err(io)?
        } else {
            self.dir.open_dir(parent).map_err(io)?
        };
        let _ = parent_dir.remove_file(name);
        if self.user_namespace {
            drop(parent_dir);
            let target = self.target(path, true)?;
            let at = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
            return mount(
                Some(path),
                &at,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("mount --bind", path));
        }
        let kind = match typ {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let dev = makedev(major as u64, minor as u64);
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        mknodat(&parent_dir, name, kind, perm, dev).map_err(sys("mknod", path))?;
        // mknod obeys the umask: the mode is set again, exactly.
        nix::sys::stat::fchmodat(
            &parent_dir,
            name,
            perm,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(sys("chmod", path))?;
        nix::unistd::fchownat(
            &parent_dir,
            name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys("chown", path))
    }

    /// Makes the rootfs the root: pivot_root, the old root detached;
    /// where pivot_root is refused (a rootfs on the initramfs), chroot
    /// into it, the mount namespace keeping the rest out of sight.
    pub fn enter(self) -> Result<(), InitError> {
        let path = self.path;
        drop(self.dir);
        nix::unistd::chdir(&path).map_err(sys("chdir", &path))?;
        let dot = Path::new(".");
        match nix::unistd::pivot_root(dot, dot) {
            Ok(()) => {
                // The old root is stacked under the new one: detached
                // without its unmount reaching the host.
                mount(
                    None::<&str>,
                    dot,
                    None::<&str>,
                    MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(sys("mount --make-rslave", Path::new("old root")))?;
                umount2(dot, MntFlags::MNT_DETACH).map_err(sys("umount", Path::new("old root")))?;
            }
            Err(nix::Error::EINVAL) => {
                nix::unistd::chroot(dot).map_err(sys("chroot", &path))?;
            }
            Err(e) => return Err(sys("pivot_root", &path)(e)),
        }
        nix::unistd::chdir("/").map_err(sys("chdir", Path::new("/")))
    }
}

/// Hides `linux.maskedPaths`: /dev/null over files, an empty read-only
/// tmpfs over directories. Paths that do not exist are skipped.
pub fn mask(spec: &Spec) -> Result<(), InitError> {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for path in paths {
        let path = Path::new(&path);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(sys("mount (masked path)", path))?;
    }
    Ok(())
}

/// Makes `linux.readonlyPaths` read-only, each bound onto itself and
/// remounted; paths that do not exist are skipped.
pub fn read_only_paths(spec: &Spec) -> Result<(), InitError> {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    for path in paths {
        let path = Path::new(&path);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("mount --rbind (read-only path)", path))?;
        remount_read_only(path)?;
    }
    Ok(())
}

/// Remounts the bind mount at `path` read-only, keeping its other flags.
pub fn remount_read_only(path: &Path) -> Result<(), InitError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(path);
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(sys("mount -o remount,ro", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(options: &[&str]) -> Vec<String> {
        options.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let options = parse_options(&strings(&[
            "rbind",
            "ro",
            "nosuid",
            "nodev",
            "rprivate",
            "mode=755",
            "size=65536k",
            "Z",
        ]));
        assert_eq!(
            options.flags,
            MsFlags::MS_BIND
                | MsFlags::MS_REC
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
        );
        assert_eq!(
            options.propagation,
            vec![MsFlags::MS_REC | MsFlags::MS_PRIVATE]
        );
        assert_eq!(options.data, strings(&["mode=755", "size=65536k"]));
    }

    #[test]
    fn a_later_option_overrides_an_earlier_one() {
        let options = parse_options(&strings(&["ro", "rw", "noexec", "exec"]));
        assert_eq!(options.flags, MsFlags::empty());
        assert!(options.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn destinations_stay_below_the_rootfs() {
        assert_eq!(relative(Path::new("/a/../b/./c")), PathBuf::from("a/b/c"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }
}
