//! The container's init, from the spec to execve: specgate re-exec'd as
//! `chroot-init` inside the namespaces [`super::namespaces`] prepared,
//! single-threaded and free to allocate. It sets up the filesystem,
//! hostname, sysctls and limits, then becomes the container's process:
//! capabilities, user, no_new_privs, seccomp, working directory,
//! environment, and the command looked up as runc looks it up.

use std::ffi::{CString, OsStr};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

use super::error::InitError;
use super::{caps, mounts, seccomp, terminal};
use crate::spec::namespaces::has;

/// Sets the container up as `spec` says, then execs its command; returns
/// only on failure.
pub fn setup_and_exec(
    spec: &Spec,
    errors: std::os::fd::BorrowedFd<'_>,
) -> Result<std::convert::Infallible, InitError> {
    // specgate, when it is in this PID namespace (0 when outside it).
    let parent = nix::unistd::getppid();
    let process = spec.process().as_ref().ok_or(InitError::NoProcess)?;
    let user_namespace = has(spec, LinuxNamespaceType::User);

    let rootfs = mounts::RootFs::open(spec, user_namespace)?;
    rootfs.mount_all(spec)?;
    rootfs.devices(spec)?;
    rootfs.enter()?;
    if process.terminal() == Some(true) {
        let socket = crate::sys::inherited_fd(crate::sys::chroot::SYNC_FD)
            .ok_or_else(|| InitError::Config("no socket to send the terminal on".into()))?;
        terminal::attach(spec, socket.as_fd())?;
    }
    mounts::read_only_paths(spec)?;
    mounts::mask(spec)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mounts::remount_read_only(Path::new("/"))?;
    }
    sysctls(spec)?;
    hostname(spec)?;

    for limit in process.rlimits().iter().flatten() {
        let resource = resource(limit.typ());
        setrlimit(resource, limit.soft(), limit.hard()).map_err(|errno| InitError::Rlimit {
            name: serde_json::to_value(limit.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            errno,
        })?;
    }
    if let Some(score) = process.oom_score_adj() {
        write_proc(Path::new("/proc/self/oom_score_adj"), &score.to_string())?;
    }

    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let args: Vec<String> = process.args().clone().unwrap_or_default();
    let program = args.first().ok_or(InitError::NoProcess)?;
    let argv = cstrings(args.iter().map(String::as_str))?;
    let envp = cstrings(env.iter().map(String::as_str))?;
    let filter = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::build)
        .transpose()?;
    let sets = caps::sets(process.capabilities().as_ref());
    let no_new_privileges = process.no_new_privileges() == Some(true);

    // Descriptors beyond the standard streams do not reach the command;
    // the error pipe, already close-on-exec, still reports until exec.
    crate::sys::cloexec_from(3)?;

    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: loaded
    // while still root, as runc does (the filter then has to allow what
    // follows, which every sane profile does).
    if !no_new_privileges && let Some(filter) = &filter {
        seccomp::load(filter)?;
    }
    let cwd = process.cwd();
    let early_chdir = nix::unistd::chdir(cwd.as_path());
    caps::apply_bounding(&sets)?;
    switch_user(process.user())?;
    caps::apply(&sets)?;
    // The kernel forgets the parent-death signal when the credentials
    // change (the user switch): armed again, then specgate checked for,
    // in case it died before.
    rearm_parent_death_signal(errors, parent)?;
    if early_chdir.is_err() {
        // Perhaps a directory only the container's user may enter.
        nix::unistd::chdir(cwd.as_path()).map_err(|errno| InitError::Cwd {
            path: cwd.clone(),
            errno,
        })?;
    }
    if no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|errno| {
            InitError::Sys(crate::sys::SysError {
                call: "prctl(PR_SET_NO_NEW_PRIVS)",
                path: "/".into(),
                errno,
            })
        })?;
        if let Some(filter) = &filter {
            seccomp::load(filter)?;
        }
    }

    let path = lookup(program, crate::spec::env::lookup(&env, "PATH"))?;
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| InitError::Nul)?;
    let Err(errno) = nix::unistd::execve(&c_path, &argv, &envp);
    Err(InitError::Exec {
        program: program.clone(),
        errno,
    })
}

/// Arms SIGKILL on specgate's death again, and fails if specgate has
/// already gone: its pid `parent` is no longer this process's parent,
/// or, where `getppid` cannot tell (in a new PID namespace specgate,
/// outside it, reads as 0 alive or dead), the error pipe has no reader:
/// specgate holds its read end until the command is exec'd, and a pipe
/// whose readers are all gone polls as an error.
fn rearm_parent_death_signal(
    errors: std::os::fd::BorrowedFd<'_>,
    parent: nix::unistd::Pid,
) -> Result<(), InitError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(|errno| {
        InitError::Sys(crate::sys::SysError {
            call: "prctl(PR_SET_PDEATHSIG)",
            path: "/".into(),
            errno,
        })
    })?;
    if parent.as_raw() != 0 && nix::unistd::getppid() != parent {
        return Err(InitError::ParentGone);
    }
    let mut fds = [PollFd::new(errors, PollFlags::POLLOUT)];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => return Ok(()),
            Ok(_) => break,
        }
    }
    let gone = fds[0]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
    if gone {
        Err(InitError::ParentGone)
    } else {
        Ok(())
    }
}

fn cstrings<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<CString>, InitError> {
    items
        .map(|s| CString::new(s).map_err(|_| InitError::Nul))
        .collect()
}

/// The kernel's resource for a spec limit.
fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

fn write_proc(path: &Path, value: &str) -> Result<(), InitError> {
    std::fs::write(path, value).map_err(|source| InitError::Io {
        what: "kernel setting",
        path: path.to_path_buf(),
        source,
    })
}

/// `linux.sysctl`, written under /proc/sys (the container's own, in its
/// namespaces).
fn sysctls(spec: &Spec) -> Result<(), InitError> {
    let sysctl = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    for (key, value) in sysctl {
        // Dotted names only: a key must not climb out of /proc/sys.
        if key.contains('/') || key.split('.').any(str::is_empty) {
            return Err(InitError::Sysctl(key));
        }
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        write_proc(&path, &value)?;
    }
    Ok(())
}

/// The hostname and domain name, which need a UTS namespace of the
/// container's own (runc refuses them otherwise, and so does this).
fn hostname(spec: &Spec) -> Result<(), InitError> {
    let names = [
        ("hostname", spec.hostname().clone()),
        ("domainname", spec.domainname().clone()),
    ];
    for (what, name) in names {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            continue;
        };
        if !has(spec, LinuxNamespaceType::Uts) {
            return Err(InitError::NoUts(what));
        }
        let result = if what == "hostname" {
            nix::unistd::sethostname(&name)
        } else {
            crate::sys::set_domainname(&name)
        };
        result.map_err(|errno| {
            InitError::Sys(crate::sys::SysError {
                call: if what == "hostname" {
                    "sethostname"
                } else {
                    "setdomainname"
                },
                path: PathBuf::from(name),
                errno,
            })
        })?;
    }
    Ok(())
}

/// Becomes `process.user`: supplementary groups, then gid, then uid,
/// with keep-caps so the permitted set survives for [`caps::apply`].
fn switch_user(user: &oci_spec::runtime::User) -> Result<(), InitError> {
    let fail = |call: &'static str| {
        move |errno| InitError::User {
            uid: user.uid(),
            gid: user.gid(),
            call,
            errno,
        }
    };
    nix::sys::prctl::set_keepcaps(true).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // A user namespace whose setgroups is denied refuses even an empty
    // list: then the groups are what they are.
    match nix::unistd::setgroups(&groups) {
        Err(nix::Error::EPERM) if groups.is_empty() => {}
        other => other.map_err(fail("setgroups"))?,
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(fail("setresgid"))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(fail("setresuid"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(fail("prctl(PR_SET_KEEPCAPS)"))?;
    if let Some(umask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program to exec: a name with a slash as is, else the first
/// executable file of that name in the container's PATH (the default
/// one without), as runc does.
pub fn lookup(program: &str, path: Option<&str>) -> Result<PathBuf, InitError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or(crate::spec::DEFAULT_PATH);
    std::env::split_paths(OsStr::new(path))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(|| InitError::NotFound(program.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_looked_up_in_path_and_a_path_taken_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(lookup("tool", Some(&path)).unwrap(), tool);
        assert_eq!(
            lookup("./x/y", Some(&path)).unwrap(),
            PathBuf::from("./x/y")
        );
        let error = lookup("missing", Some(&path)).unwrap_err();
        assert_eq!(error.status(), 127);
        assert!(error.to_string().contains("executable file not found"));
    }

    #[test]
    fn a_gone_specgate_is_told_by_its_error_pipe() {
        use std::os::fd::AsFd;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let parent = nix::unistd::getppid();
        rearm_parent_death_signal(write.as_fd(), parent).unwrap();
        // Reparented: not the parent it started with.
        assert!(matches!(
            rearm_parent_death_signal(write.as_fd(), nix::unistd::getpid()),
            Err(InitError::ParentGone)
        ));
        drop(read);
        assert!(matches!(
            rearm_parent_death_signal(write.as_fd(), parent),
            Err(InitError::ParentGone)
        ));
        // Disarmed again: the test process must not die with its parent.
        nix::sys::prctl::set_pdeathsig(None).unwrap();
    }

    #[test]
    fn every_limit_has_a_resource() {
        assert_eq!(
            resource(PosixRlimitType::RlimitNofile),
            Resource::RLIMIT_NOFILE
        );
        assert_eq!(
            resource(PosixRlimitType::RlimitRttime),
            Resource::RLIMIT_RTTIME
        );
    }
}
