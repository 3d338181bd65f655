//! A runner for the specgate binary and assertions on what it did.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub use specgate_tests::{plugin, validate_config};

/// The specgate binary under test.
pub fn specgate_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_specgate"))
}

/// A cache directory shared by tests that do not test the cache: plugins
/// compile once per test binary run.
pub fn shared_cache() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(private_tempdir).path()
}

/// A temporary directory only its owner can enter, as a cache must be.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("cannot make the temporary directory private");
    dir
}

/// Writes `dir/runc`: a runtime that runs the shell line `record` (to
/// note how it was called), then is the real runc.
pub fn recording_runc(dir: &Path, record: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("runc");
    std::fs::write(&path, format!("#!/bin/sh\n{record}\nexec runc \"$@\"\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Polls `done` every 20 ms until it holds or `seconds` have passed.
pub fn wait_until(seconds: u64, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() && started.elapsed().as_secs() < seconds {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The command lines (arguments joined by spaces) of the processes whose
/// command line holds `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    scan_processes(needle).map(|(_, cmdline)| cmdline).collect()
}

/// The pids of the processes whose command line holds `needle`.
pub fn pids_with(needle: &str) -> Vec<u32> {
    scan_processes(needle).map(|(pid, _)| pid).collect()
}

/// Every process whose command line holds `needle`, with that line.
fn scan_processes(needle: &str) -> impl Iterator<Item = (u32, String)> + '_ {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .filter(move |(_, cmdline)| cmdline.contains(needle))
}

/// A file's sha256, in hex.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A specgate command line with the shared cache.
pub fn specgate() -> Command {
    specgate_with_cache(shared_cache())
}

/// A specgate command line with its own cache directory.
pub fn specgate_with_cache(cache: &Path) -> Command {
    let mut cmd = Command::new(specgate_bin());
    cmd.env("SPECGATE_CACHE_DIR", cache)
        .env_remove("SPECGATE_LOG")
        // A slow machine must not add compile progress to what tests read
        // on stderr; the tests of that report lower it again.
        .env("SPECGATE_PROGRESS_AFTER", "3600s");
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to its end.
pub fn run(cmd: &mut Command) -> Outcome {
    let output = cmd.output().expect("cannot start the specgate binary");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Outcome {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success, got {self:#?}");
        &self.stdout
    }

    /// Asserts a failure with `code` and exactly one line on stderr, and
    /// returns that line.
    #[track_caller]
    pub fn failure(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "expected exit {code}, got {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr, got {self:#?}");
        lines[0]
    }

    /// Parses stdout as a config.json, checked against the OCI schema.
    #[track_caller]
    pub fn config(&self) -> serde_json::Value {
        let config: serde_json::Value =
            serde_json::from_str(self.success()).expect("stdout is not JSON");
        if let Err(errors) = validate_config(&config) {
            panic!("config.json does not validate against the OCI schema:\n{errors}");
        }
        config
    }
}

/// Adds plugins (by crate name) and settings to a command line.
pub fn with_chain<'c>(
    cmd: &'c mut Command,
    plugins: &[&str],
    settings: &[&str],
) -> &'c mut Command {
    for name in plugins {
        cmd.arg("--plugin").arg(plugin(name));
    }
    for setting in settings {
        cmd.args(["--plugin-setting", setting]);
    }
    cmd
}

/// `specgate spec` with plugins (and settings), for the command `args`.
pub fn spec_with(plugins: &[&str], settings: &[&str], args: &[&str]) -> Outcome {
    let mut cmd = specgate();
    cmd.arg("spec");
    with_chain(&mut cmd, plugins, settings).arg("--").args(args);
    run(&mut cmd)
}

/// The names in one capability set of a config.json.
pub fn cap_set(config: &serde_json::Value, set: &str) -> Vec<String> {
    strings(&config["process"]["capabilities"][set])
}

/// The strings of a JSON array (none when it is not one).
pub fn strings<C: FromIterator<String>>(value: &serde_json::Value) -> C {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The namespace types of a config.json.
pub fn namespace_types(config: &serde_json::Value) -> Vec<String> {
    config["linux"]["namespaces"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|ns| ns["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `cmd`, a `specgate run` without its command, with a shell that
/// says it is ready and waits, trapping SIGTERM; then asserts that a
/// SIGTERM sent to specgate reaches the shell, and that specgate exits
/// with the shell's status. `newline` ends the shell's lines as they
/// come out (`\r\n` through a terminal).
pub fn assert_sigterm_reaches_the_container(cmd: &mut Command, newline: &str) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = cmd
        .args([
            "--",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot start the specgate binary");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, format!("ready{newline}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, format!("got TERM{newline}"));
    assert_eq!(
        wait_within(&mut child, std::time::Duration::from_secs(20)).code(),
        Some(3)
    );
}
/// Waits for `child`, failing the test past `limit`.
pub fn wait_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("specgate still runs after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The prefix of the users the tests make; `.ci/run` removes any such
/// user an interrupted run left behind.
pub const TEST_USER_PREFIX: &str = "specgate-t";

/// A user made for one test with subordinate ids, and removed with them
/// when dropped: no test depends on a user an earlier run left, so every
/// run takes the path a fresh machine takes.
#[derive(Debug)]
pub struct TestUser {
    /// Its name (`specgate-tPID-N`).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its first subordinate uid and how many.
    pub subuid: (u32, u32),
    /// Its first subordinate gid and how many.
    pub subgid: (u32, u32),
}

/// useradd, usermod and userdel lock the account files and fail rather
/// than wait while another holds them: one change at a time here, and a
/// retry for changes made by other processes.
fn account_change(args: &[&str]) -> std::process::Output {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut tries = 0;
    loop {
        let output = Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("{} (Debian's passwd package): {e}", args[0]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        tries += 1;
        if output.status.success() || !stderr.contains("lock") || tries == 50 {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl TestUser {
    /// Makes a user with subordinate ids: useradd assigns them where
    /// login.defs says so (Debian's does); else they are added here.
    ///
    /// # Panics
    /// When not root, or the user cannot be made.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        assert!(
            nix::unistd::geteuid().is_root(),
            "the tests make users: run them as root"
        );
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{TEST_USER_PREFIX}{}-{n}", std::process::id());
        let made = account_change(&[
            "useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        assert!(made.status.success(), "useradd {name}: {made:?}");
        let entry = nix::unistd::User::from_name(&name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} was made but NSS does not find it"));
        let mut user = TestUser {
            name,
            uid: entry.uid.as_raw(),
            gid: entry.gid.as_raw(),
            subuid: (0, 0),
            subgid: (0, 0),
        };
        if user.range("/etc/subuid").is_none() || user.range("/etc/subgid").is_none() {
            // Above the ranges login.defs hands out, one block per uid.
            let start = 700_000_000 + (user.uid % 10_000) * 65_536;
            let range = format!("{start}-{}", start + 65_535);
            let added = account_change(&[
                "usermod",
                "--add-subuids",
                &range,
                "--add-subgids",
                &range,
                &user.name,
            ]);
            assert!(added.status.success(), "usermod {}: {added:?}", user.name);
        }
        user.subuid = user.range("/etc/subuid").expect("a subuid range");
        user.subgid = user.range("/etc/subgid").expect("a subgid range");
        user
    }

    /// The range `file` (/etc/subuid or /etc/subgid) gives this user.
    fn range(&self, file: &str) -> Option<(u32, u32)> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                let mut fields = line.split(':');
                (fields.next() == Some(self.name.as_str())).then(|| {
                    let start = fields.next().unwrap().parse().unwrap();
                    let count = fields.next().unwrap().parse().unwrap();
                    (start, count)
                })
            })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // A process of the user's that is still exiting makes userdel
        // refuse: wait for it a little, then remove the user regardless.
        for _ in 0..50 {
            if account_change(&["userdel", &self.name]).status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let removed = account_change(&["userdel", "--force", &self.name]);
        if !removed.status.success() && !std::thread::panicking() {
            panic!("userdel {}: {removed:?}", self.name);
        }
    }
}
