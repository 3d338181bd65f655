//! The container's standard streams through `specgate run`, with the
//! real runtime (runc) and a busybox rootfs: these need root and runc, as
//! CI has; without them they fail rather than skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::*;

/// `specgate run --rootfs ROOTFS [FLAGS] -- ARGS`.
fn run_in(rootfs: &Path, flags: &[&str], args: &[&str]) -> Command {
    let mut cmd = specgate();
    cmd.arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(flags)
        .arg("--")
        .args(args);
    cmd
}

/// Bytes that look random: xorshift, seeded.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[test]
fn ten_megabytes_of_stdin_reach_the_container_intact() {
    let rootfs = specgate_tests::busybox_rootfs();
    let input = noise(10_000_000);
    let expected = hex::encode(Sha256::digest(&input));
    let mut child = run_in(rootfs.path(), &["-i"], &["sha256sum"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Its end of file, when dropped, is the container's.
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{expected}  -\n"),
        "{out:?}"
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_gibibyte_of_stdout_arrives_whole() {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut child = run_in(
        rootfs.path(),
        &[],
        &[
            "dd",
            "if=/dev/zero",
            "bs=1M",
            "count=1024",
            "iflag=fullblock",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let (mut total, mut nonzero) = (0u64, false);
    loop {
        let n = stdout.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        nonzero |= buffer[..n].iter().any(|&b| b != 0);
        total += n as u64;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, 1 << 30);
    assert!(!nonzero);
    assert!(errors.join().unwrap().contains("1024+0 records out"));
}

#[test]
fn a_reader_that_leaves_early_ends_the_run_quietly() {
    let rootfs = specgate_tests::busybox_rootfs();
    // `yes` is the shell's child: it dies of SIGPIPE, as with any pipe,
    // and the shell's status is the run's.
    let mut child = run_in(rootfs.path(), &[], &["sh", "-c", "yes; exit 7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "y\n");
    drop(stdout);
    let status = wait_within(&mut child, Duration::from_secs(20));
    let mut errors = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert_eq!(errors, "");
    assert_eq!(status.code(), Some(7));
}

#[test]
fn stdout_and_stderr_arrive_whole_and_in_order_when_the_container_exits_at_once() {
    let rootfs = specgate_tests::busybox_rootfs();
    // Far more than the pipes hold, still buffered when the shell ends.
    let out = run(&mut run_in(
        rootfs.path(),
        &[],
        &["sh", "-c", "seq 1 300000 | tee /dev/stderr; echo done >&2"],
    ));
    let numbers: String = (1..=300_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(out.code, Some(0));
    assert!(out.stdout == numbers, "stdout differs");
    assert!(out.stderr == format!("{numbers}done\n"), "stderr differs");
}

#[test]
fn without_interactive_the_containers_stdin_is_dev_null() {
    let rootfs = specgate_tests::busybox_rootfs();
    let mut child = run_in(rootfs.path(), &[], &["sh", "-c", "cat; echo end"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Written and kept open: the container must not wait for it.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"not for the container\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "end\n");
}

#[test]
fn the_containers_stdin_is_dev_null_when_ours_is() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run(run_in(rootfs.path(), &[], &["sh", "-c", "cat; echo end"]).stdin(Stdio::null()));
    assert_eq!(out.success(), "end\n");
}

#[test]
fn a_runtime_error_is_shown_once() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run(&mut run_in(rootfs.path(), &[], &["nonexistent-command"]));
    let line = out.failure(127);
    assert!(line.starts_with("specgate: "), "{line}");
    assert!(line.contains("nonexistent-command"), "{line}");
    let out = run(run_in(rootfs.path(), &["-t"], &["nonexistent-command"]).stdin(Stdio::null()));
    assert!(out.failure(127).contains("nonexistent-command"));
}

#[test]
fn a_terminal_without_one_on_stdin() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run(run_in(
        rootfs.path(),
        &["-t"],
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && test -t 2 && tty; exit 3",
        ],
    )
    .stdin(Stdio::null()));
    assert_eq!(out.code, Some(3), "{out:#?}");
    // The terminal's line discipline ends lines with CR LF.
    assert_eq!(out.stdout, "/dev/pts/0\r\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn sigterm_to_specgate_reaches_a_container_with_a_terminal() {
    let rootfs = specgate_tests::busybox_rootfs();
    assert_sigterm_reaches_the_container(
        specgate()
            .args(["run", "-t", "--rootfs"])
            .arg(rootfs.path())
            .stdin(Stdio::null()),
        "\r\n",
    );
}

#[test]
fn a_terminal_follows_ours_and_ours_is_restored() {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let rootfs = specgate_tests::busybox_rootfs();
    let pty = nix::pty::openpty(None, None).unwrap();
    let before = tcgetattr(&pty.slave).unwrap();
    assert!(before.local_flags.contains(LocalFlags::ICANON));
    let (status, text) = resize_and_type(
        specgate()
            .args(["run", "-t", "-i", "--rootfs"])
            .arg(rootfs.path()),
        &pty,
    );
    assert!(status.success());
    assert!(text.contains("hello\r\ngot hello\r\n"), "{text:?}");
    let after = tcgetattr(&pty.slave).unwrap();
    assert!(
        after
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    );
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
}

/// Runs `cmd`, a `specgate run -t -i` without its command, on the
/// terminal `pty`: a shell says its terminal's size, which must be ours
/// (30x100), reads a word we type after resizing ours to 40x120 (and
/// sending SIGWINCH to specgate), and says the size again. Returns
/// specgate's status and all the terminal showed.
pub(crate) fn resize_and_type(
    cmd: &mut Command,
    pty: &nix::pty::OpenptyResult,
) -> (std::process::ExitStatus, String) {
    let size = |rows, cols| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    set_size(&pty.master, &size(30, 100));
    let mut child = cmd
        .args([
            "--",
            "sh",
            "-c",
            "stty size; read word; echo got $word; stty size",
        ])
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut seen = Vec::new();
    read_until(&mut master, &mut seen, "30 100\r\n");
    set_size(&master, &size(40, 120));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )
    .unwrap();
    // The word goes through raw: the container's terminal echoes it.
    std::thread::sleep(Duration::from_millis(200));
    master.write_all(b"hello\r").unwrap();
    read_until(&mut master, &mut seen, "40 120\r\n");
    let status = wait_within(&mut child, Duration::from_secs(20));
    (status, String::from_utf8_lossy(&seen).into_owned())
}

// The test sets the size itself, through no code of specgate's.
#[allow(unsafe_code)]
pub(crate) fn set_size(fd: &impl AsFd, size: &libc::winsize) {
    use std::os::fd::AsRawFd;
    nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
    // SAFETY: TIOCSWINSZ reads one winsize through a live reference.
    unsafe { tiocswinsz(fd.as_fd().as_raw_fd(), size) }.unwrap();
}

/// Reads `master` into `seen` until it holds `wanted`.
pub(crate) fn read_until(master: &mut std::fs::File, seen: &mut Vec<u8>, wanted: &str) {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(wanted) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {wanted:?} in {:?}",
            String::from_utf8_lossy(seen)
        );
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8)).unwrap() > 0 {
            let n = master.read(&mut buffer).unwrap();
            seen.extend_from_slice(&buffer[..n]);
        }
    }
}

#[test]
fn concurrent_runs_each_get_their_own_output() {
    let rootfs = specgate_tests::busybox_rootfs();
    let children: Vec<(String, Child)> = (0..32)
        .map(|i| {
            let token = format!("token-{i}-{}", std::process::id());
            let child = run_in(
                rootfs.path(),
                &[],
                &["sh", "-c", &format!("echo {token}; echo {token} >&2")],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            (token, child)
        })
        .collect();
    for (token, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{token}\n"));
        assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{token}\n"));
    }
}
