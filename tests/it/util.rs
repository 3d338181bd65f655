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
