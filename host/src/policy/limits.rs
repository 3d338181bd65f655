//! Every limit a plugin runs under, in one place.

use std::time::Duration;

/// What one plugin may use in one run. A breach stops the plugin and fails
/// the run closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall time of one call into the plugin (`configure` or a hook).
    pub call_timeout: Duration,
    /// Linear memory, summed over the component's memories, in bytes.
    pub memory: usize,
    /// Changes one hook may return.
    pub changes_per_hook: usize,
    /// Bytes of changes one hook may return, as
    /// [`Weight`](crate::policy::view::Weight) weighs them: every
    /// string's length plus [`ITEM_COST`] per change, string and element.
    pub changes_bytes: usize,
    /// Bytes of the view of the container handed to a hook, counted the
    /// same way. A plugin whose changes take it past this is refused, so
    /// that it cannot push a later plugin (a validator) past its memory.
    pub view_bytes: usize,
    /// Size of the plugin file, checked before it is read.
    pub plugin_file_size: u64,
    /// Bytes of log messages, stdout and stderr, each, per run.
    pub output: usize,
    /// Core instances, tables and memories per plugin (each counted on
    /// its own against this number). Components made by componentize-py
    /// or jco hold several core instances beside the language runtime.
    pub instances: usize,
    /// Elements of one table. An interpreter's function table is large.
    pub table_elements: usize,
}

/// The defaults, chosen from the example plugins, measured for one load,
/// `configure` and hook call (instances / largest table / linear memory):
///
/// | plugin                      | instances | table elements | memory   |
/// |-----------------------------|-----------|----------------|----------|
/// | Rust (`drop-capabilities`)  | 3         | 46             | 1.1 MiB  |
/// | JavaScript (jco, `tmpfs`)   | 4         | 7 688          | 9.1 MiB  |
/// | Python (componentize-py)    | 14        | 5 672          | 12.3 MiB |
///
/// Each default is four times the largest figure or more, so that
/// bigger plugins in those languages fit, while a plugin that tries to
/// exhaust the host is stopped well before it matters.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(1),
            memory: 64 << 20,
            changes_per_hook: 4096,
            changes_bytes: 1 << 20,
            view_bytes: 4 << 20,
            plugin_file_size: 64 << 20,
            output: 1 << 20,
            instances: 64,
            table_elements: 1 << 16,
        }
    }
}

/// What each item of a view or a change list (a change, a mount, a
/// string) counts for beyond its text: an empty string still costs the
/// guest a pointer and a length, and a list of empty strings must not be
/// free.
pub const ITEM_COST: usize = 16;

/// What one `log` call counts for, at least, against the output bound:
/// 300 000 empty messages cost as much as 300 000 messages of this many
/// bytes, and stop well before that.
pub const LOG_CALL_COST: usize = 64;

/// How often the engine's epoch advances: the granularity of call
/// deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

impl Limits {
    /// Epoch ticks a call may run: its timeout rounded up, plus one because
    /// the current tick may be about to end.
    pub fn deadline_ticks(&self) -> u64 {
        let ticks = self.call_timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// Renders a byte count the way limits are written in messages.
pub fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Parses `1s`, `250ms`, `2m`, or a number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (number, unit) = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((value, "s"), |i| value.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration (e.g. 1s, 250ms)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{value}`: unknown unit `{unit}` (ms, s, m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("`{value}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size for a plugin's memory limit.
pub fn parse_size(value: &str) -> Result<usize, String> {
    crate::units::parse_size(value)
        .and_then(|n| usize::try_from(n).map_err(|_| format!("`{value}` is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_covers_the_whole_timeout() {
        let limits = Limits::default();
        assert_eq!(limits.deadline_ticks(), 201);
        let tiny = Limits {
            call_timeout: Duration::from_micros(1),
            ..Limits::default()
        };
        assert_eq!(tiny.deadline_ticks(), 2);
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
