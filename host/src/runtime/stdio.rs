//! The container's standard streams without a terminal: three pipes that
//! specgate makes and relays itself, as buildah and conmon do, instead of
//! handing the runtime its own stdio.
//!
//! Owning the pipes is what lets specgate tell the runtime's own error
//! text apart from the container's output, drain every byte the
//! container wrote before it exited, and stop cleanly when whoever reads
//! specgate's output goes away (`specgate run ... | head -1`).
//!
//! Each stream has its own thread, so a slow reader of one stream never
//! holds up another. Bytes move with splice(2), page by page, between
//! pipes with 1 MiB buffers; where a descriptor cannot splice (a
//! terminal, a file opened for appending), the relay falls back to read
//! and write.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::sys::StdFd;

/// How the container's standard streams are connected, besides the
/// terminal (which the spec's `process.terminal` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdioConfig {
    /// Relay specgate's stdin to the container; when false, the
    /// container reads /dev/null (or, with a terminal, nothing but what
    /// it writes itself).
    pub stdin: bool,
}

/// Errors setting up the container's standard streams.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// A pipe could not be made.
    #[error("cannot create the pipe for the container's {stream}: {errno}")]
    Pipe {
        /// stdin, stdout or stderr.
        stream: &'static str,
        /// Why.
        errno: nix::Error,
    },
    /// The container's end of a pipe could not be given to its root.
    #[error(
        "cannot give the container's {stream} pipe to its root user (host uid {uid}, gid {gid}): {errno}"
    )]
    Chown {
        /// stdin, stdout or stderr.
        stream: &'static str,
        /// The host uid of the container's root.
        uid: u32,
        /// The host gid of the container's root.
        gid: u32,
        /// Why.
        errno: nix::Error,
    },
    /// /dev/null could not be opened for the container's stdin.
    #[error("cannot open /dev/null for the container's stdin: {0}")]
    DevNull(std::io::Error),
}

/// The size specgate asks for its pipes: big enough that a busy
/// container rarely waits for the relay, and the most an unprivileged
/// process may ask by default (`/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: i32 = 1 << 20;

/// The most one transfer moves.
const CHUNK: usize = 1 << 20;

/// After the runtime exited, an output stream that has been silent this
/// long is done even without end of file: only a process that outlived
/// the container (possible when it shares the host's pid namespace)
/// still holds the pipe.
pub const DRAIN_IDLE: Duration = Duration::from_millis(100);

/// The most stderr holds back while the runtime may still print its own
/// error there (see [`Hold`]).
const HOLD_MAX: usize = 1 << 20;

/// The host uid and gid of the container's root, when the spec makes a
/// new user namespace with mappings for id 0: the owner the container's
/// ends of its stdio pipes need, for its root to reopen them through
/// /proc/self/fd. None when the container shares the host's ids (or
/// joins an existing user namespace, whose mappings it does not know).
pub fn container_root(spec: &Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    let new_user_namespace = linux
        .namespaces()
        .as_ref()?
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    if !new_user_namespace {
        return None;
    }
    let uid = host_id(linux.uid_mappings().as_deref()?, 0)?;
    let gid = host_id(linux.gid_mappings().as_deref()?, 0)?;
    Some((uid, gid))
}

/// The host id that `id` in the container maps to.
fn host_id(mappings: &[LinuxIdMapping], id: u32) -> Option<u32> {
    mappings.iter().find_map(|m| {
        let offset = id.checked_sub(m.container_id())?;
        (offset < m.size()).then(|| m.host_id().checked_add(offset))?
    })
}

/// The three pipes of a run without a terminal: the container's ends,
/// for the runtime, and specgate's, for the relay.
#[derive(Debug)]
pub(crate) struct Pipes {
    /// The container's stdin: a pipe's read end, or /dev/null.
    pub container_stdin: OwnedFd,
    /// The container's stdout: a pipe's write end.
    pub container_stdout: OwnedFd,
    /// The container's stderr: a pipe's write end.
    pub container_stderr: OwnedFd,
    /// Where specgate writes what it reads on its stdin; none when the
    /// container reads /dev/null.
    pub stdin: Option<OwnedFd>,
    /// Where specgate reads the container's stdout.
    pub stdout: OwnedFd,
    /// Where specgate reads the container's stderr.
    pub stderr: OwnedFd,
}

impl Pipes {
    /// Makes the pipes; `owner` (host uid, gid) receives the container's
    /// ends.
    pub fn new(config: StdioConfig, owner: Option<(u32, u32)>) -> Result<Self, StdioError> {
        let (container_stdin, stdin) = if config.stdin {
            let (read, write) = pipe("stdin")?;
            (read, Some(write))
        } else {
            let null = std::fs::File::open("/dev/null").map_err(StdioError::DevNull)?;
            (OwnedFd::from(null), None)
        };
        let (stdout, container_stdout) = pipe("stdout")?;
        let (stderr, container_stderr) = pipe("stderr")?;
        if let Some((uid, gid)) = owner {
            let ends = [
                ("stdin", &container_stdin),
                ("stdout", &container_stdout),
                ("stderr", &container_stderr),
            ];
            for (stream, fd) in ends {
                if stream == "stdin" && stdin.is_none() {
                    continue;
                }
                nix::unistd::fchown(
                    fd,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )
                .map_err(|errno| StdioError::Chown {
                    stream,
                    uid,
                    gid,
                    errno,
                })?;
            }
        }
        Ok(Pipes {
            container_stdin,
            container_stdout,
            container_stderr,
            stdin,
            stdout,
            stderr,
        })
    }
}

/// A pipe (read end, write end), closed on exec, enlarged when the
/// kernel allows.
pub(crate) fn pipe(stream: &'static str) -> Result<(OwnedFd, OwnedFd), StdioError> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| StdioError::Pipe { stream, errno })?;
    // Refused past the per-user quota of pipe memory: the default size
    // then does, only slower.
    let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((read, write))
}

/// Enlarges `fd` to [`PIPE_SIZE`] if it is a smaller pipe: whoever reads
/// specgate's output then takes it in bigger reads, and the relay moves
/// more at a time. Never shrinks it; a refusal changes nothing.
fn grow(fd: BorrowedFd<'_>) {
    if let Ok(size) = fcntl(fd, FcntlArg::F_GETPIPE_SZ)
        && size < PIPE_SIZE
    {
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
}

/// A one-shot event that many threads can poll for: it fires when the
/// write end of its pipe closes.
#[derive(Debug)]
pub(crate) struct Event {
    read: OwnedFd,
    write: Mutex<Option<OwnedFd>>,
}

impl Event {
    /// A new event, not fired.
    pub fn new() -> Result<Self, StdioError> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| StdioError::Pipe {
                stream: "relay's events",
                errno,
            })?;
        Ok(Event {
            read,
            write: Mutex::new(Some(write)),
        })
    }

    /// Fires the event; firing again does nothing.
    pub fn fire(&self) {
        let write = match self.write.lock() {
            Ok(mut write) => write.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(write);
    }

    /// The descriptor to poll: it reports POLLHUP once fired.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// What an output relay keeps back instead of writing it out.
#[derive(Debug)]
pub(crate) enum Hold {
    /// Nothing: every byte goes out as it comes.
    Nothing,
    /// Everything until this file exists. A foreground `runc run` prints
    /// its own error on its stderr, which is the container's, as well as
    /// in its log, from which specgate reports it: what comes before the
    /// pid file (written once the container started) is the runtime's,
    /// and is shown only when the log has no error to report instead.
    UntilExists(PathBuf),
    /// Everything: the runtime's own stderr, when the container has a
    /// terminal of its own.
    Everything,
}

/// Relays an output stream, `src`, to `dst` (specgate's own) until its
/// end of file, or until whoever reads `dst` is gone (then `src` is
/// closed, as if the container's output were `dst` itself: its next
/// write fails with EPIPE). Once `exited` fires (the runtime, or the
/// container's init, exited), what is left is drained: to end of file,
/// which comes as soon as the buffered bytes are out when the container's
/// processes are all gone; else, when one outlived it, until the stream
/// stays silent for [`DRAIN_IDLE`], or once as many bytes as the pipe
/// held (all it could have buffered by then) have gone. Returns what was
/// held back and never released (see [`Hold`]).
pub(crate) fn relay_output(
    src: impl AsFd,
    dst: BorrowedFd<'_>,
    mut hold: Hold,
    exited: &Event,
    stream: &'static str,
) -> Vec<u8> {
    let src = src.as_fd();
    grow(dst);
    let mut pump = Pump::new(stream);
    let mut held = Vec::new();
    // What may still come after the runtime exited.
    let mut budget: Option<usize> = None;
    loop {
        let release = match &hold {
            Hold::Nothing => false,
            Hold::UntilExists(path) => path.exists() || held.len() >= HOLD_MAX,
            Hold::Everything => held.len() >= HOLD_MAX,
        };
        if release {
            hold = Hold::Nothing;
            if write_all(dst, &held, stream).is_err() {
                return Vec::new();
            }
            held = Vec::new();
        }
        let holding = !matches!(hold, Hold::Nothing);
        let timeout = if budget.is_some() {
            PollTimeout::try_from(DRAIN_IDLE).unwrap_or(PollTimeout::ZERO)
        } else if matches!(hold, Hold::UntilExists(_)) && !held.is_empty() {
            // Look for the pid file again soon.
            PollTimeout::from(10u8)
        } else {
            PollTimeout::NONE
        };
        let mut fds = vec![PollFd::new(src, PollFlags::POLLIN)];
        if budget.is_none() {
            fds.push(PollFd::new(exited.fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(0) if budget.is_some() => break,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("relaying the container's {stream}: poll: {e}");
                break;
            }
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if budget.is_none() && fds.get(1).is_some_and(ready) {
            let capacity = fcntl(src, FcntlArg::F_GETPIPE_SZ).map_or(CHUNK, |n| n as usize);
            budget = Some(capacity);
        }
        let Some(events) = fds[0].revents().filter(|r| !r.is_empty()) else {
            continue;
        };
        if events.contains(PollFlags::POLLNVAL) {
            break;
        }
        let most = budget.map_or(CHUNK, |left| left.min(CHUNK));
        let moved = if holding {
            match read_into(src, &mut held, most.min(64 * 1024), stream) {
                None => break,
                Some(n) => n,
            }
        } else {
            match pump.step(src, dst, most) {
                Step::Moved(n) => n,
                Step::End => break,
                Step::Closed => return Vec::new(),
            }
        };
        if let Some(left) = &mut budget {
            *left = left.saturating_sub(moved);
            if *left == 0 {
                break;
            }
        }
    }
    if matches!(hold, Hold::Nothing) {
        Vec::new()
    } else {
        held
    }
}

/// Relays specgate's stdin to the container's, `dst`, until end of file
/// (then `dst` is closed: the container reads end of file too), until
/// the container closes its end, or until `stop` fires.
pub(crate) fn relay_input(dst: impl AsFd, stop: &Event) {
    let src = StdFd::In.fd();
    let dst = dst.as_fd();
    let mut pump = Pump::new("stdin");
    loop {
        let mut fds = [
            PollFd::new(src, PollFlags::POLLIN),
            PollFd::new(stop.fd(), PollFlags::POLLIN),
            PollFd::new(dst, PollFlags::empty()),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("relaying stdin to the container: poll: {e}");
                return;
            }
        }
        let events = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        if !events(1).is_empty() || !events(2).is_empty() {
            return;
        }
        if events(0).is_empty() {
            continue;
        }
        if events(0).contains(PollFlags::POLLNVAL) {
            return;
        }
        match pump.step(src, dst, CHUNK) {
            Step::Moved(_) => {}
            Step::End | Step::Closed => return,
        }
    }
}

/// What one transfer did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Moved this many bytes (maybe none, after an interruption).
    Moved(usize),
    /// The source is at its end.
    End,
    /// The destination is gone (its reader closed it) or failed.
    Closed,
}

/// Moves bytes between two descriptors: spliced while both allow it,
/// read and written once one does not.
#[derive(Debug)]
struct Pump {
    splice: bool,
    buffer: Vec<u8>,
    stream: &'static str,
}

impl Pump {
    fn new(stream: &'static str) -> Self {
        Pump {
            splice: true,
            buffer: Vec::new(),
            stream,
        }
    }

    /// Moves at most `most` bytes from `src`, which is readable, to
    /// `dst`, blocking while `dst` is full.
    fn step(&mut self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>, most: usize) -> Step {
        if self.splice {
            match splice(src, None, dst, None, most, SpliceFFlags::SPLICE_F_MOVE) {
                Ok(0) => return Step::End,
                Ok(n) => return Step::Moved(n),
                Err(Errno::EINTR) => return Step::Moved(0),
                Err(Errno::EAGAIN) => {
                    // One end is non-blocking: wait until `dst` has room;
                    // the caller polls `src` again.
                    wait_writable(dst);
                    return Step::Moved(0);
                }
                Err(e) if closed(e) => return Step::Closed,
                // EINVAL: an end that cannot splice. Any other error is
                // told apart by read and write, which name its side.
                Err(_) => self.splice = false,
            }
        }
        if self.buffer.is_empty() {
            self.buffer = vec![0; 64 * 1024];
        }
        let most = most.min(self.buffer.len());
        let n = match nix::unistd::read(src, &mut self.buffer[..most]) {
            Ok(0) => return Step::End,
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => return Step::Moved(0),
            // A terminal's master reads EIO once no process holds its
            // slave: the end of the container's output.
            Err(Errno::EIO) => return Step::End,
            Err(e) => {
                tracing::warn!("reading the container's {}: {e}", self.stream);
                return Step::End;
            }
        };
        match write_all(dst, &self.buffer[..n], self.stream) {
            Ok(()) => Step::Moved(n),
            Err(()) => Step::Closed,
        }
    }
}

/// Reads at most `most` bytes from `src` onto the end of `into`; none at
/// the end of `src` (or when it fails).
fn read_into(src: BorrowedFd<'_>, into: &mut Vec<u8>, most: usize, stream: &str) -> Option<usize> {
    let start = into.len();
    into.resize(start + most.max(1), 0);
    let result = nix::unistd::read(src, &mut into[start..]);
    let n = match result {
        Ok(n) => n,
        Err(Errno::EINTR | Errno::EAGAIN) => 0,
        Err(Errno::EIO) => {
            into.truncate(start);
            return None;
        }
        Err(e) => {
            tracing::warn!("reading the container's {stream}: {e}");
            into.truncate(start);
            return None;
        }
    };
    into.truncate(start + n);
    if n == 0 && result.is_ok() {
        return None;
    }
    Some(n)
}

/// Writes all of `bytes` to `dst`; Err when `dst` is gone or failed
/// (a failure other than its reader leaving is logged).
fn write_all(dst: BorrowedFd<'_>, mut bytes: &[u8], stream: &str) -> Result<(), ()> {
    while !bytes.is_empty() {
        match nix::unistd::write(dst, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_writable(dst),
            Err(e) if closed(e) => return Err(()),
            Err(e) => {
                tracing::warn!("relaying the container's {stream}: {e}");
                return Err(());
            }
        }
    }
    Ok(())
}

/// Whether a write failed because nobody reads the other side any more:
/// a closed pipe or socket, or a terminal that hung up.
fn closed(errno: Errno) -> bool {
    matches!(errno, Errno::EPIPE | Errno::ECONNRESET | Errno::EIO)
}

/// Waits until `fd` (which someone made non-blocking) takes more bytes.
fn wait_writable(fd: BorrowedFd<'_>) {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    let _ = poll(&mut fds, PollTimeout::NONE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_container_root_is_its_mapped_host_ids() {
        let spec = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {
                "namespaces": [{"type": "user"}, {"type": "mount"}],
                "uidMappings": [
                    {"containerID": 1, "hostID": 200001, "size": 65535},
                    {"containerID": 0, "hostID": 1000, "size": 1}
                ],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
            }
        }));
        assert_eq!(container_root(&spec), Some((1000, 100000)));
    }

    #[test]
    fn without_a_new_user_namespace_the_pipes_keep_their_owner() {
        let shared = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "pid"}]}
        }));
        assert_eq!(container_root(&shared), None);
        let joined = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {
                "namespaces": [{"type": "user", "path": "/proc/1/ns/user"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
            }
        }));
        assert_eq!(container_root(&joined), None);
    }

    #[test]
    fn a_root_without_a_mapping_has_no_host_ids() {
        let mappings = [LinuxIdMapping::default()];
        assert_eq!(host_id(&mappings, 0), None);
    }

    #[test]
    fn an_event_wakes_its_pollers_once_fired() {
        let event = Event::new().unwrap();
        let polled = |event: &Event| {
            let mut fds = [PollFd::new(event.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap()
        };
        assert_eq!(polled(&event), 0);
        event.fire();
        event.fire();
        assert_eq!(polled(&event), 1);
    }

    /// Everything readable on `fd` now.
    fn drain(fd: &OwnedFd) -> Vec<u8> {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let mut all = Vec::new();
        let mut buffer = vec![0u8; 1 << 16];
        while let Ok(n) = nix::unistd::read(fd, &mut buffer) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buffer[..n]);
        }
        all
    }

    #[test]
    fn what_was_written_before_the_exit_all_arrives() {
        let (src, writer) = pipe("stdout").unwrap();
        let (out, dst) = pipe("stdout").unwrap();
        for chunk in [&b"one "[..], b"two ", b"three"] {
            nix::unistd::write(&writer, chunk).unwrap();
        }
        drop(writer);
        let exited = Event::new().unwrap();
        exited.fire();
        let held = relay_output(src, dst.as_fd(), Hold::Nothing, &exited, "stdout");
        assert!(held.is_empty());
        assert_eq!(drain(&out), b"one two three");
    }

    #[test]
    fn a_silent_writer_that_outlived_the_container_is_left_behind() {
        let (src, writer) = pipe("stdout").unwrap();
        let (out, dst) = pipe("stdout").unwrap();
        nix::unistd::write(&writer, b"last words").unwrap();
        let exited = Event::new().unwrap();
        exited.fire();
        let started = std::time::Instant::now();
        relay_output(src, dst.as_fd(), Hold::Nothing, &exited, "stdout");
        assert!(started.elapsed() >= DRAIN_IDLE);
        assert!(started.elapsed() < DRAIN_IDLE * 10);
        assert_eq!(drain(&out), b"last words");
        // Its reader is gone.
        assert_eq!(nix::unistd::write(&writer, b"more"), Err(Errno::EPIPE));
    }

    #[test]
    fn a_chatty_writer_that_outlived_the_container_is_cut_off() {
        let (src, writer) = pipe("stdout").unwrap();
        let (out, dst) = pipe("stdout").unwrap();
        let capacity = fcntl(&src, FcntlArg::F_GETPIPE_SZ).unwrap() as usize;
        let chatty = std::thread::spawn(move || {
            let line = [b'y'; 4096];
            while nix::unistd::write(&writer, &line).is_ok() {}
        });
        let exited = Event::new().unwrap();
        exited.fire();
        let reader = std::thread::spawn(move || drain_blocking(out));
        relay_output(src, dst.as_fd(), Hold::Nothing, &exited, "stdout");
        drop(dst);
        chatty.join().unwrap();
        let got = reader.join().unwrap();
        assert!(got <= capacity, "{got} bytes relayed, more than {capacity}");
    }

    fn drain_blocking(fd: OwnedFd) -> usize {
        let mut total = 0;
        let mut buffer = vec![0u8; 1 << 16];
        while let Ok(n) = nix::unistd::read(&fd, &mut buffer) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    }

    #[test]
    fn stderr_is_held_until_the_container_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("init.pid");
        // Never started: what came is handed back, not written.
        let (src, writer) = pipe("stderr").unwrap();
        let (out, dst) = pipe("stderr").unwrap();
        nix::unistd::write(&writer, b"runc run failed: nope\n").unwrap();
        drop(writer);
        let exited = Event::new().unwrap();
        exited.fire();
        let hold = Hold::UntilExists(pid_file.clone());
        let held = relay_output(src, dst.as_fd(), hold, &exited, "stderr");
        assert_eq!(held, b"runc run failed: nope\n");
        assert!(drain(&out).is_empty());
        // Started: it all goes out.
        std::fs::write(&pid_file, "1").unwrap();
        let (src, writer) = pipe("stderr").unwrap();
        let (out, dst) = pipe("stderr").unwrap();
        nix::unistd::write(&writer, b"the container's own\n").unwrap();
        drop(writer);
        let hold = Hold::UntilExists(pid_file);
        let held = relay_output(src, dst.as_fd(), hold, &exited, "stderr");
        assert!(held.is_empty());
        assert_eq!(drain(&out), b"the container's own\n");
    }

    #[test]
    fn the_pump_splices_pipe_to_pipe_and_sees_the_end() {
        let (a_read, a_write) = pipe("stdout").unwrap();
        let (b_read, b_write) = pipe("stdout").unwrap();
        nix::unistd::write(&a_write, b"hello").unwrap();
        drop(a_write);
        let mut pump = Pump::new("stdout");
        assert_eq!(
            pump.step(a_read.as_fd(), b_write.as_fd(), CHUNK),
            Step::Moved(5)
        );
        assert_eq!(pump.step(a_read.as_fd(), b_write.as_fd(), CHUNK), Step::End);
        assert!(pump.splice);
        let mut got = [0u8; 5];
        assert_eq!(nix::unistd::read(&b_read, &mut got).unwrap(), 5);
        assert_eq!(&got, b"hello");
    }

    #[test]
    fn a_reader_gone_closes_the_stream() {
        let (a_read, a_write) = pipe("stdout").unwrap();
        let (b_read, b_write) = pipe("stdout").unwrap();
        drop(b_read);
        nix::unistd::write(&a_write, b"lost").unwrap();
        let mut pump = Pump::new("stdout");
        assert_eq!(
            pump.step(a_read.as_fd(), b_write.as_fd(), CHUNK),
            Step::Closed
        );
    }

    #[test]
    fn the_pump_falls_back_to_read_and_write() {
        let (a_read, a_write) = pipe("stdout").unwrap();
        nix::unistd::write(&a_write, b"to a file").unwrap();
        drop(a_write);
        let file = tempfile::tempfile().unwrap();
        // Files opened for appending refuse splice.
        let appending = std::fs::OpenOptions::new()
            .append(true)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&file)
            ))
            .unwrap();
        let mut pump = Pump::new("stdout");
        assert_eq!(
            pump.step(a_read.as_fd(), appending.as_fd(), CHUNK),
            Step::Moved(9)
        );
        assert!(!pump.splice);
        assert_eq!(
            pump.step(a_read.as_fd(), appending.as_fd(), CHUNK),
            Step::End
        );
        assert_eq!(file.metadata().unwrap().len(), 9);
    }
}
