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
    /// Size of the plugin file, checked before it is read.
    pub plugin_file_size: u64,
    /// Bytes of log messages, stdout and stderr, each, per run.
    pub output: usize,
    /// Core instances, tables and memories per plugin: components made by
    /// componentize-py or jco need dozens of each.
    pub instances: usize,
    /// Elements of one table.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(1),
            memory: 64 << 20,
            changes_per_hook: 4096,
            plugin_file_size: 64 << 20,
            output: 1 << 20,
            instances: 1000,
            table_elements: 1 << 20,
        }
    }
}

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
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
