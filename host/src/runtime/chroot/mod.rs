//! `--isolation chroot`: the container run without an OCI runtime, from
//! the same spec runc would get, as buildah's chroot isolation does.
//!
//! specgate forks a child that enters the spec's namespaces (joining
//! those given by path, creating the others, its user namespace mapped
//! by specgate, a second fork into a new PID namespace) and execs
//! specgate again as the hidden `chroot-init`, which reads the spec and
//! does the rest in ordinary Rust ([`process`]): mounts, pivot_root,
//! limits, capabilities, user, seccomp, then execve of the command.
//!
//! Why the re-exec: specgate is multi-threaded (relays, plugin engine),
//! and after fork such a process may only make async-signal-safe calls;
//! the mount table, seccomp compilation and capability sets need
//! allocation. So the forked child does only raw system calls
//! ([`crate::sys::chroot`]) and the real work runs in a fresh,
//! single-threaded process. It costs one exec of specgate, measured in
//! docs/performance.md.
//!
//! Errors before the command runs come back on a close-on-exec pipe: end
//! of file means the command was exec'd; a report carries the exit
//! status (125, or 126/127 when the command cannot be run) and the
//! message.

pub mod caps;
pub mod cgroup;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod seccomp;
pub mod terminal;

mod error;

pub use error::{ChrootError, InitError};

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::bundle::Bundle;
use super::console;
use super::error::RunError;
use super::stdio::{self, Event, Hold, StdioConfig};
use super::supervise::{
    FORWARDED, Forwarder, has_terminal, relay_terminal, spawn_relay, wait_init,
};
use crate::sys::chroot::{PROLOGUE_TAG, Prologue, Step};
use crate::sys::{self, StdFd};

/// The hidden command the child execs.
pub const INIT_COMMAND: &str = "chroot-init";

/// The descriptor of `chroot-init`'s error pipe.
const ERROR_FD: i32 = 3;
/// The descriptor `chroot-init` reads the spec from.
const CONFIG_FD: i32 = 4;

/// `specgate chroot-init`: the container's init, run by the child of
/// [`run`]. Returns only on failure, with the status, once the error is
/// reported on the error pipe.
pub fn init() -> u8 {
    let Some(errors) = sys::inherited_fd(ERROR_FD) else {
        // Not started by specgate run: nothing to report to.
        return 125;
    };
    let Err(error) = read_config().and_then(|spec| process::setup_and_exec(&spec, errors.as_fd()));
    let status = error.status();
    let mut report = vec![status];
    report.extend_from_slice(error.to_string().as_bytes());
    let _ = std::fs::File::from(errors).write_all(&report);
    status
}

fn read_config() -> Result<Spec, InitError> {
    let fd = sys::inherited_fd(CONFIG_FD)
        .ok_or_else(|| InitError::Config("no spec on descriptor 4".into()))?;
    serde_json::from_reader(std::io::BufReader::new(std::fs::File::from(fd)))
        .map_err(|e| InitError::Config(e.to_string()))
}

/// The container's init, once forked.
struct Started {
    /// The container's init.
    init: Pid,
}

/// Runs the container of `bundle`, whose config.json is `spec`, and
/// returns its exit status: its own code, or 128+N for signal N. Stdio
/// is relayed and signals forwarded as for an OCI runtime; there is no
/// runtime state to delete. The container's processes die with its PID
/// namespace when it has one of its own; in any case, those left in the
/// run's cgroup ([`cgroup`]) are killed once its init has exited,
/// before the bundle goes (by the guardian, if specgate was killed).
pub fn run(bundle: &Bundle, spec: &Spec, config: StdioConfig) -> Result<u8, RunError> {
    let id = bundle
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = cgroup::RunCgroup::create(&id);
    if cgroup.is_none() && !has_own_pid_namespace(spec) {
        // Nothing would end what the command leaves behind.
        return Err(ChrootError::Untracked.into());
    }
    if let Some(cgroup) = &cgroup {
        let record = format!("{}\n", cgroup.dir().display());
        bundle.write_file(cgroup::CGROUP_FILE, record.as_bytes(), 0o600)?;
    }
    if has_terminal(spec) {
        run_with_terminal(bundle, spec, config, cgroup.as_ref())
    } else {
        run_with_pipes(bundle, spec, config, cgroup.as_ref())
    }
}

/// Whether the container gets a new PID namespace, whose processes all
/// die with its init.
fn has_own_pid_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|namespaces| {
            namespaces.iter().any(|ns| {
                ns.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && ns.path().is_none()
            })
        })
}

fn run_with_pipes(
    bundle: &Bundle,
    spec: &Spec,
    config: StdioConfig,
    cgroup: Option<&cgroup::RunCgroup>,
) -> Result<u8, RunError> {
    let forwarder = Forwarder::start(sys::catch_signals(&FORWARDED)?, None);
    let pipes = stdio::Pipes::new(config, stdio::container_root(spec))?;
    let exited = Arc::new(Event::new()?);
    if let Some(stdin) = pipes.stdin {
        let stop = exited.clone();
        spawn_relay("stdin", move || stdio::relay_input(stdin, &stop))?;
    }
    let stdout = {
        let (src, exited) = (pipes.stdout, exited.clone());
        spawn_relay("stdout", move || {
            stdio::relay_output(src, StdFd::Out.fd(), Hold::Nothing, &exited, "stdout")
        })
    };
    let stderr = {
        let (src, exited) = (pipes.stderr, exited.clone());
        spawn_relay("stderr", move || {
            stdio::relay_output(src, StdFd::Err.fd(), Hold::Nothing, &exited, "stderr")
        })
    };
    let (stdout, stderr) = match (stdout, stderr) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(e), _) | (_, Err(e)) => {
            exited.fire();
            return Err(e);
        }
    };
    let stdio = [
        pipes.container_stdin,
        pipes.container_stdout,
        pipes.container_stderr,
    ];
    let status = start(bundle, spec, stdio, &forwarder, cgroup).and_then(|(started, errors, _)| {
        let setup = read_report(errors);
        let status = wait(started.init, &forwarder);
        match setup {
            Some(error) => Err(error.into()),
            None => status,
        }
    });
    exited.fire();
    let _ = stdout.join();
    let _ = stderr.join();
    status
}

/// A run with a terminal: the container's init makes it in the
/// container's devpts and sends its master back on the socket it shares
/// with specgate, which relays it as for runc's console socket.
fn run_with_terminal(
    bundle: &Bundle,
    spec: &Spec,
    config: StdioConfig,
    cgroup: Option<&cgroup::RunCgroup>,
) -> Result<u8, RunError> {
    let resizer = Arc::new(console::Resizer::default());
    let mut signals = FORWARDED.to_vec();
    signals.push(nix::sys::signal::Signal::SIGWINCH);
    let forwarder = Forwarder::start(sys::catch_signals(&signals)?, Some(resizer.clone()));
    let null = || {
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(stdio::StdioError::DevNull)
    };
    let (started, errors, sync) = start(
        bundle,
        spec,
        [null()?, null()?, null()?],
        &forwarder,
        cgroup,
    )?;
    let master = sys::receive_fd(sync.as_fd()).ok().flatten();
    drop(sync);
    // End of file on the error pipe: the command was exec'd.
    if let Some(error) = read_report(errors) {
        let _ = wait(started.init, &forwarder);
        return Err(error.into());
    }
    let Some((master, _)) = master else {
        let _ = wait(started.init, &forwarder);
        return Err(ChrootError::Setup {
            status: 125,
            message: "the container's init sent no terminal".into(),
        }
        .into());
    };
    let master = Arc::new(master);
    resizer.attach(&master);
    console::copy_size(master.as_fd());
    relay_terminal(master, config, || wait(started.init, &forwarder))?
}

/// Forks the container's init and sees it through its namespaces;
/// returns it, the read end of its error pipe, and the socket it may
/// send its terminal on.
fn start(
    bundle: &Bundle,
    spec: &Spec,
    stdio: [OwnedFd; 3],
    forwarder: &Forwarder,
    cgroup: Option<&cgroup::RunCgroup>,
) -> Result<(Started, std::fs::File, OwnedFd), RunError> {
    let plan = namespaces::plan(spec)?;
    let open = |what: &'static str, path: PathBuf| {
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|source| ChrootError::Open { what, path, source })
    };
    let config = open("config.json", bundle.dir().join("config.json"))?;
    let bundle_dir = open("bundle", bundle.dir().to_path_buf())?;
    // Never the host's file as such: a read-only view of it, or a sealed
    // copy (CVE-2019-5736). The bundle is the overlay's spare layer.
    let exe = sys::sealed::protected_self(bundle.dir())?;
    let cgroup_procs = match cgroup {
        Some(cgroup) => Some(cgroup.procs().map_err(|source| ChrootError::Open {
            what: "the run's cgroup",
            path: cgroup.dir().join("cgroup.procs"),
            source,
        })?),
        None => None,
    };
    let mut sources = Vec::new();
    for m in spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| mounts::is_bind(m))
    {
        let path = bundle.dir().join(m.source().clone().unwrap_or_default());
        let recursive = m.options().iter().flatten().any(|o| o == "rbind");
        sources.push(sys::clone_tree(&path, recursive)?);
    }
    let sys_err = |call: &'static str| {
        move |errno| sys::SysError {
            call,
            path: bundle.dir().to_path_buf(),
            errno,
        }
    };
    let (ours, theirs) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys_err("socketpair"))?;
    let (errors_read, errors_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys_err("pipe2"))?;
    let paths: Vec<PathBuf> = plan.join.iter().map(|(_, _, p)| p.clone()).collect();
    let prologue = Prologue {
        join: plan
            .join
            .into_iter()
            .map(|(fd, flag, _)| (fd, flag))
            .collect(),
        new_user: plan.new_user,
        unshare: plan.unshare,
        fork_again: plan.fork_again,
        sync: theirs,
        stdio,
        errors: errors_write,
        config,
        bundle: bundle_dir,
        exe,
        cgroup: cgroup_procs,
        argv: vec![CString::from(c"specgate"), CString::from(c"chroot-init")],
        sources,
    };
    let child = Pid::from_raw(sys::chroot::fork_container(&prologue)?);
    // Only the child holds the write ends now: end of file means it
    // exec'd the command, or died.
    drop(prologue);
    forwarder.set(Some(child));
    let mut errors = std::fs::File::from(errors_read);
    let mut sync = std::fs::File::from(ours);
    let failed = |errors: &mut std::fs::File, init: Pid| {
        let report = read_report_from(errors, &paths);
        let _ = wait(init, forwarder);
        report.map_or_else(
            || {
                RunError::from(ChrootError::Prologue {
                    step: "child".into(),
                    errno: nix::Error::EPIPE,
                })
            },
            RunError::from,
        )
    };
    if plan.new_user {
        let mut byte = [0u8; 1];
        if sync.read_exact(&mut byte).is_err() {
            return Err(failed(&mut errors, child));
        }
        let mapped = namespaces::write_mappings(spec, child.as_raw());
        if let Err(e) = mapped {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = wait(child, forwarder);
            return Err(e.into());
        }
        if sync.write_all(b"m").is_err() {
            return Err(failed(&mut errors, child));
        }
    }
    let init = if plan.fork_again {
        let mut pid = [0u8; 4];
        let received = sync.read_exact(&mut pid);
        // The intermediate process exits at once, either way.
        let _ = wait(child, forwarder);
        if received.is_err() {
            forwarder.set(None);
            let report = read_report_from(&mut errors, &paths);
            return Err(report.map_or_else(
                || {
                    ChrootError::Prologue {
                        step: "fork".into(),
                        errno: nix::Error::EPIPE,
                    }
                    .into()
                },
                RunError::from,
            ));
        }
        let init = Pid::from_raw(i32::from_ne_bytes(pid));
        forwarder.set(Some(init));
        init
    } else {
        child
    };
    Ok((Started { init }, errors, OwnedFd::from(sync)))
}

/// The report on the error pipe, once it reaches end of file: none when
/// the command was exec'd.
fn read_report(mut errors: std::fs::File) -> Option<ChrootError> {
    read_report_from(&mut errors, &[])
}

fn read_report_from(errors: &mut std::fs::File, paths: &[PathBuf]) -> Option<ChrootError> {
    let mut report = Vec::new();
    loop {
        match errors.read_to_end(&mut report) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
    let (&first, rest) = report.split_first()?;
    if first == PROLOGUE_TAG && rest.len() >= 6 {
        let index = rest[1] as usize;
        let errno = nix::Error::from_raw(i32::from_ne_bytes([rest[2], rest[3], rest[4], rest[5]]));
        let step = match Step::from_byte(rest[0]) {
            Some(Step::Setns) => format!(
                "setns {}",
                paths
                    .get(index)
                    .map_or_else(String::new, |p| p.display().to_string())
            ),
            Some(Step::UnshareUser) => "unshare the user namespace".into(),
            Some(Step::AwaitMappings) => "wait for the id mappings".into(),
            Some(Step::BecomeRoot) => "become root in the user namespace (is root mapped?)".into(),
            Some(Step::Unshare) => "unshare the namespaces".into(),
            Some(Step::Fork) => "fork into the PID namespace".into(),
            Some(Step::Cgroup) => "enter the run's cgroup".into(),
            Some(Step::Exec) | None => "exec specgate chroot-init".into(),
        };
        return Some(ChrootError::Prologue { step, errno });
    }
    Some(ChrootError::Setup {
        status: first,
        message: String::from_utf8_lossy(rest).into_owned(),
    })
}

/// Waits for `pid`, a child of ours, forwarding signals to it meanwhile;
/// returns its code, or 128+N for signal N.
fn wait(pid: Pid, forwarder: &Forwarder) -> Result<u8, RunError> {
    let status = wait_init(pid, forwarder);
    if status.is_err() {
        forwarder.set(None);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prologue_report_names_the_step_and_the_namespace() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut report = vec![PROLOGUE_TAG, Step::Setns as u8, 0];
        report.extend_from_slice(&libc::EINVAL.to_ne_bytes());
        std::fs::File::from(write).write_all(&report).unwrap();
        let error = read_report_from(
            &mut std::fs::File::from(read),
            &[PathBuf::from("/run/netns/x")],
        )
        .unwrap();
        assert_eq!(error.status(), 125);
        assert!(error.to_string().contains("setns /run/netns/x"), "{error}");
    }

    #[test]
    fn an_init_report_keeps_its_status() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut report = vec![127u8];
        report.extend_from_slice(b"exec: \"x\": executable file not found in $PATH");
        std::fs::File::from(write).write_all(&report).unwrap();
        let error = read_report(std::fs::File::from(read)).unwrap();
        assert_eq!(error.status(), 127);
        assert!(
            read_report({
                let (read, _) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
                std::fs::File::from(read)
            })
            .is_none()
        );
    }
}
