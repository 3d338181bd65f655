//! The first moments of a container run without an OCI runtime: the
//! fork out of specgate, which is multi-threaded, and what the child
//! must do before it can exec specgate's `chroot-init` (joining and
//! creating namespaces, becoming root in a new user namespace, forking
//! once more into a new PID namespace). Between fork and exec only raw,
//! async-signal-safe system calls run, on values prepared beforehand.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::SysError;

/// What failed in the child before it could exec, as it reports it on
/// the error pipe: a tag byte [`PROLOGUE_TAG`], the step, then errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// setns(2) into a namespace given by path (the index follows).
    Setns = 1,
    /// unshare(CLONE_NEWUSER).
    UnshareUser = 2,
    /// Waiting for the parent to write the id mappings.
    AwaitMappings = 3,
    /// setresgid(0, 0, 0) / setresuid(0, 0, 0) in the new user namespace.
    BecomeRoot = 4,
    /// unshare(2) of the other new namespaces.
    Unshare = 5,
    /// The second fork, into the new PID namespace.
    Fork = 6,
    /// Moving descriptors into place, or exec'ing `chroot-init`.
    Exec = 7,
    /// Entering the run's own cgroup.
    Cgroup = 8,
}

impl Step {
    /// The step a report names.
    pub fn from_byte(byte: u8) -> Option<Step> {
        [
            Step::Setns,
            Step::UnshareUser,
            Step::AwaitMappings,
            Step::BecomeRoot,
            Step::Unshare,
            Step::Fork,
            Step::Exec,
            Step::Cgroup,
        ]
        .into_iter()
        .find(|s| *s as u8 == byte)
    }
}

/// The first byte of a report written by the child before its exec;
/// `chroot-init`'s own reports start with an exit status (125..=127).
pub const PROLOGUE_TAG: u8 = 0;

/// Everything the child needs, prepared before the fork.
#[derive(Debug)]
pub struct Prologue {
    /// Namespaces to join, user namespace first, with their clone flag.
    pub join: Vec<(OwnedFd, libc::c_int)>,
    /// Whether to create a user namespace (its mappings written by the
    /// parent, which the child waits for on `sync`).
    pub new_user: bool,
    /// The other namespaces to create (CLONE_NEW* flags), the PID and
    /// time namespaces included.
    pub unshare: libc::c_int,
    /// Whether a second fork is needed: the PID and time namespaces,
    /// new or joined, only apply to children.
    pub fork_again: bool,
    /// The child's end of the socket it talks with the parent on.
    pub sync: OwnedFd,
    /// The container's stdin, stdout and stderr.
    pub stdio: [OwnedFd; 3],
    /// The pipe errors go back on: descriptor 3 of `chroot-init`.
    pub errors: OwnedFd,
    /// The spec: descriptor 4 of `chroot-init`.
    pub config: OwnedFd,
    /// The bundle directory: the working directory of `chroot-init`,
    /// which relative paths in the spec are relative to.
    pub bundle: OwnedFd,
    /// specgate's own executable: a sealed copy of it
    /// ([`super::sealed::sealed_self`]), never the host's file, which
    /// the container could otherwise reach through `/proc/PID/exe`.
    pub exe: OwnedFd,
    /// The `cgroup.procs` of the run's own cgroup, which the child
    /// enters first of all, so that every process of the container is
    /// born in it; none without one.
    pub cgroup: Option<OwnedFd>,
    /// The arguments of `chroot-init`.
    pub argv: Vec<CString>,
    /// The sources of the spec's bind mounts, opened by specgate (as the
    /// host's root, which the container's root in a user namespace may
    /// not be): descriptors 6 and up of `chroot-init`, in order.
    pub sources: Vec<OwnedFd>,
}

/// The socket to specgate in `chroot-init` (which sends the terminal's
/// master on it).
pub const SYNC_FD: RawFd = 6;

/// The first descriptor of [`Prologue::sources`] in `chroot-init`.
pub const FIRST_SOURCE_FD: RawFd = 7;

/// The lowest descriptor the child copies its descriptors to before
/// moving them into place, above any of those targets.
const HIGH_FD: RawFd = 64;

/// Forks the child that becomes the container's init and returns its
/// pid. The child joins and creates namespaces as `prologue` says and
/// execs specgate's `chroot-init`; when a second fork is needed, the pid
/// returned is the intermediate process's, and the container's init
/// (also specgate's child, through CLONE_PARENT) sends its own pid on
/// `sync`.
pub fn fork_container(prologue: &Prologue) -> Result<libc::pid_t, SysError> {
    let mut argv: Vec<*const libc::c_char> = prologue.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let mut sources: Vec<RawFd> = vec![
        prologue.stdio[0].as_raw_fd(),
        prologue.stdio[1].as_raw_fd(),
        prologue.stdio[2].as_raw_fd(),
        prologue.errors.as_raw_fd(),
        prologue.config.as_raw_fd(),
        prologue.exe.as_raw_fd(),
        prologue.sync.as_raw_fd(),
    ];
    sources.extend(prologue.sources.iter().map(|fd| fd.as_raw_fd()));
    let specgate = std::process::id() as libc::pid_t;
    // Filled by the child: allocated here, before the fork.
    let mut high: Vec<RawFd> = vec![0; sources.len()];
    let join: Vec<(RawFd, libc::c_int)> = prologue
        .join
        .iter()
        .map(|(fd, flag)| (fd.as_raw_fd(), *flag))
        .collect();
    // SAFETY: the child of a multi-threaded process may only make
    // async-signal-safe calls until it execs. `child` makes raw system
    // calls only (setns, unshare, read, write, setresuid, clone, dup,
    // execveat, _exit) on descriptors, integers and pointers prepared
    // above, which stay valid in the child's copy of memory; it never
    // allocates, locks or returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(SysError {
            call: "fork",
            path: "/proc/self/exe".into(),
            errno: nix::Error::last(),
        }),
        // SAFETY: as above; `child` never returns.
        0 => unsafe { child(prologue, specgate, &join, &sources, &mut high, &argv, &envp) },
        pid => Ok(pid),
    }
}

/// Writes a failure report and exits.
///
/// # Safety
/// Async-signal-safe: only write(2) and _exit(2).
unsafe fn fail(errors: RawFd, step: Step, index: u8) -> ! {
    // SAFETY: reads the calling thread's errno location, always valid.
    let errno = unsafe { *libc::__errno_location() };
    let mut report = [0u8; 7];
    report[0] = PROLOGUE_TAG;
    report[1] = step as u8;
    report[2] = index;
    report[3..7].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: `report` is a live local of the length passed.
    unsafe {
        libc::write(errors, report.as_ptr().cast(), report.len());
        libc::_exit(125)
    }
}

/// The child's side of [`fork_container`].
///
/// # Safety
/// Must run in the child of fork(2), and only there.
unsafe fn child(
    p: &Prologue,
    specgate: libc::pid_t,
    join: &[(RawFd, libc::c_int)],
    sources: &[RawFd],
    high: &mut [RawFd],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let errors = p.errors.as_raw_fd();
    let sync = p.sync.as_raw_fd();
    let cgroup: RawFd = p.cgroup.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    // SAFETY: every call below is a raw system call on descriptors the
    // child inherited and on live locals; none allocates or locks.
    unsafe {
        // Before anything else, and before any fork: every process of
        // the container is born in the run's cgroup.
        if cgroup >= 0 && libc::write(cgroup, c"0".as_ptr().cast(), 1) != 1 {
            fail(errors, Step::Cgroup, 0);
        }
        // First, while still the host's root: the bundle is private to
        // it.
        if libc::fchdir(p.bundle.as_raw_fd()) != 0 {
            fail(errors, Step::Exec, 2);
        }
        for (index, (fd, flag)) in join.iter().enumerate() {
            if libc::setns(*fd, *flag) != 0 {
                fail(errors, Step::Setns, index as u8);
            }
        }
        if p.new_user {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                fail(errors, Step::UnshareUser, 0);
            }
            let byte = b'u';
            if libc::write(sync, (&raw const byte).cast(), 1) != 1 {
                fail(errors, Step::AwaitMappings, 0);
            }
            let mut ack = 0u8;
            loop {
                match libc::read(sync, (&raw mut ack).cast(), 1) {
                    1 => break,
                    -1 if *libc::__errno_location() == libc::EINTR => continue,
                    _ => fail(errors, Step::AwaitMappings, 0),
                }
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                fail(errors, Step::BecomeRoot, 0);
            }
        }
        if p.unshare != 0 && libc::unshare(p.unshare) != 0 {
            fail(errors, Step::Unshare, 0);
        }
        if p.fork_again {
            let pid = libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            );
            match pid {
                -1 => fail(errors, Step::Fork, 0),
                0 => {}
                pid => {
                    let bytes = (pid as i32).to_ne_bytes();
                    libc::write(sync, bytes.as_ptr().cast(), bytes.len());
                    libc::_exit(0);
                }
            }
        }
        // The container's init dies with specgate, however specgate ends.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // specgate died before the signal was armed? (In a new PID
        // namespace the parent, outside it, reads as 0: no telling.)
        let parent = libc::getppid();
        if parent != 0 && parent != specgate {
            libc::_exit(125);
        }
        // Copied high first, so that moving one into place never
        // overwrites another still to be moved.
        let high_base = HIGH_FD.max(FIRST_SOURCE_FD + sources.len() as RawFd);
        for (slot, fd) in high.iter_mut().zip(sources) {
            *slot = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, high_base);
            if *slot < 0 {
                fail(errors, Step::Exec, 0);
            }
        }
        for (target, fd) in high.iter().enumerate() {
            if libc::dup2(*fd, target as RawFd) < 0 {
                fail(high[3], Step::Exec, 1);
            }
        }
        // The error pipe and the spec stay open across this exec
        // (`chroot-init` marks the pipe close-on-exec for the command's);
        // the executable is only needed for it.
        libc::fcntl(5, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::close_range(high.len() as libc::c_uint, libc::c_uint::MAX, 0);
        libc::syscall(
            libc::SYS_execveat,
            5,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        fail(3, Step::Exec, 3)
    }
}
