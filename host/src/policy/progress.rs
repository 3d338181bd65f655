//! Word on stderr of a compile that takes long enough to be noticed: the
//! first run of a large plugin (a componentize-py one is tens of MB) can
//! spend seconds compiling, which should not look like a hang.
//!
//! Quick compiles say nothing. Past [`DEFAULT_AFTER`], a terminal gets a
//! line updated in place (which plugin, its size, the time so far) and the
//! final time; anything else gets one line per plugin when it is done, so
//! that logs stay readable. Never stdout: that is the commands' output.

use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a compile runs before it is reported.
pub const DEFAULT_AFTER: Duration = Duration::from_millis(500);

/// How often the line on a terminal is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// Overrides [`DEFAULT_AFTER`] (a duration such as `1ms`), for tests of the
/// report itself: with the example plugins no compile lasts long enough.
const AFTER_VAR: &str = "SPECGATE_PROGRESS_AFTER";

/// The process's reporter.
struct Reporter {
    after: Duration,
    terminal: bool,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    next_id: u64,
    jobs: Vec<Running>,
    /// Whether the redraw thread runs (terminal only).
    drawing: bool,
    /// Whether a partial line is on the terminal.
    drawn: bool,
}

struct Running {
    id: u64,
    name: String,
    size: u64,
    started: Instant,
}

impl Running {
    fn line(&self) -> String {
        format!(
            "specgate: compiling plugin {} ({})\u{2026}",
            self.name,
            human_size(self.size)
        )
    }
}

fn reporter() -> &'static Reporter {
    static REPORTER: OnceLock<Reporter> = OnceLock::new();
    REPORTER.get_or_init(|| Reporter {
        after: std::env::var(AFTER_VAR)
            .ok()
            .and_then(|v| super::limits::parse_duration(&v).ok())
            .unwrap_or(DEFAULT_AFTER),
        terminal: std::io::stderr().is_terminal(),
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    })
}

impl Reporter {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing inconsistent
        // worth refusing to report over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redraws the line of the oldest compile past the threshold until no
    /// compile is left.
    fn draw_loop(&'static self) {
        let mut state = self.lock();
        loop {
            if state.jobs.is_empty() {
                if state.drawn {
                    write_stderr("\r\x1b[K");
                    state.drawn = false;
                }
                state.drawing = false;
                return;
            }
            let now = Instant::now();
            let due: Vec<&Running> = state
                .jobs
                .iter()
                .filter(|j| now.duration_since(j.started) >= self.after)
                .collect();
            if let Some(first) = due.first() {
                let mut line = format!(
                    "\r\x1b[K{} {}",
                    first.line(),
                    seconds(now.duration_since(first.started))
                );
                if due.len() > 1 {
                    line.push_str(&format!(" (and {} more)", due.len() - 1));
                }
                write_stderr(&line);
                state.drawn = true;
            }
            state = self
                .wake
                .wait_timeout(state, REDRAW)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A compile under way; reported as done, or failed, when dropped.
#[derive(Debug)]
#[must_use = "a compile is reported until its job is dropped"]
pub struct Job {
    id: u64,
    succeeded: bool,
}

/// Starts reporting a compile of the plugin `name`, `size` bytes.
pub fn start(name: &str, size: u64) -> Job {
    let reporter = reporter();
    let mut state = reporter.lock();
    state.next_id += 1;
    let id = state.next_id;
    state.jobs.push(Running {
        id,
        // Drawn on a terminal: a name cannot move the cursor.
        name: super::error::escape(name).into_owned(),
        size,
        started: Instant::now(),
    });
    if reporter.terminal && !state.drawing {
        let spawned = std::thread::Builder::new()
            .name("specgate-progress".into())
            .spawn(|| reporter.draw_loop());
        // Without the thread a terminal only misses the updates.
        state.drawing = spawned.is_ok();
    }
    Job {
        id,
        succeeded: false,
    }
}

impl Job {
    /// Marks the compile as successful.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let reporter = reporter();
        let mut state = reporter.lock();
        let Some(index) = state.jobs.iter().position(|j| j.id == self.id) else {
            return;
        };
        let job = state.jobs.remove(index);
        let elapsed = job.started.elapsed();
        if elapsed >= reporter.after {
            let outcome = if self.succeeded {
                "done in"
            } else {
                "failed after"
            };
            let clear = if reporter.terminal { "\r\x1b[K" } else { "" };
            write_stderr(&format!(
                "{clear}{} {outcome} {}\n",
                job.line(),
                seconds(elapsed)
            ));
            state.drawn = false;
        }
        reporter.wake.notify_all();
    }
}

/// Writes to stderr in one call, so that lines of parallel compiles do
/// not interleave; a closed stderr only loses the report.
fn write_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// `6.6 s`.
fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

/// A size for people, in decimal units as file managers show them:
/// `84.0 kB`, `18.2 MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_file_managers_show_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(84_023), "84.0 kB");
        assert_eq!(human_size(18_200_000), "18.2 MB");
        assert_eq!(human_size(999_990), "1.0 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }
}
