//! What can go wrong with a plugin, each error naming the plugin, its file
//! and the stage at fault.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The stage of a plugin's life an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Reading, compiling and checking the component.
    Load,
    /// Creating its instance for a run.
    Instantiate,
    /// `plugin.describe`.
    Describe,
    /// `plugin.configure`.
    Configure,
    /// The `namespaces` hook.
    Namespaces,
    /// The `capabilities` hook.
    Capabilities,
    /// The `mounts` hook.
    Mounts,
    /// The `validate` hook.
    Validate,
}

impl Stage {
    /// The stage's name, as in messages and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Load => "load",
            Stage::Instantiate => "instantiate",
            Stage::Describe => "describe",
            Stage::Configure => "configure",
            Stage::Namespaces => "namespaces",
            Stage::Capabilities => "capabilities",
            Stage::Mounts => "mounts",
            Stage::Validate => "validate",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plugin failed, or refused the run. Its message has every control
/// character escaped ([`escape`]): much of it is the plugin's own text (a
/// denial's reason, a change's paths, a panic message), and it is printed
/// on terminals and written to logs.
#[derive(Debug, thiserror::Error)]
#[error(
    "plugin {} ({}): {stage}: {}",
    escape(.plugin),
    escape(&.path.display().to_string()),
    escape(&.problem.to_string())
)]
pub struct PluginError {
    /// The plugin's name in the chain.
    pub plugin: String,
    /// Its file.
    pub path: PathBuf,
    /// Where it failed.
    pub stage: Stage,
    /// What happened.
    pub problem: Problem,
}

impl PluginError {
    /// Whether the plugin said no, as opposed to failing.
    pub fn is_denial(&self) -> bool {
        matches!(self.problem, Problem::Denied(_))
    }
}

/// What happened to a plugin.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The path is a directory or a device.
    #[error("not a regular file")]
    NotAFile,
    /// The file is over the size limit.
    #[error("the file is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not WebAssembly at all.
    #[error("not a WebAssembly file")]
    NotWasm,
    /// A core module where a component was expected.
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2, \
         or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The file is not the one the policy pinned.
    #[error("its sha256 is {actual}, but the policy pins {expected}")]
    PinMismatch {
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// wasmtime refused to compile it.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// It exports something else than the plugin contract.
    #[error("does not export {expected}: it exports {exports}")]
    WrongWorld {
        /// The interface every plugin must export.
        expected: String,
        /// What it exports instead.
        exports: String,
    },
    /// It was built against an incompatible version of the contract.
    #[error("built against {found}, but this host implements {expected} and compatible versions")]
    IncompatibleVersion {
        /// The contract it targets.
        found: String,
        /// The contract the host implements.
        expected: String,
    },
    /// It exports `plugin` but no hook, so it could never act.
    #[error("exports no hook: it exports {exports}; expected at least one of {expected}")]
    NoHooks {
        /// What it exports.
        exports: String,
        /// The hook interfaces.
        expected: String,
    },
    /// It imports something the host does not provide.
    #[error("cannot be linked: {0}")]
    Link(String),
    /// A call ran past its time limit.
    #[error("exceeded the call time limit of {0:?}")]
    Timeout(Duration),
    /// Linear memory grew past its limit.
    #[error("exceeded the memory limit of {0}")]
    Memory(String),
    /// Instances, tables or table elements past their limits.
    #[error("exceeded the limit on instances, tables or table elements")]
    Resources,
    /// Log messages, stdout or stderr past their limit.
    #[error("exceeded the output limit of {0} (log messages, stdout or stderr)")]
    Output(String),
    /// The wasm stack overflowed.
    #[error("stack overflow (runaway recursion)")]
    StackOverflow,
    /// The plugin panicked (its last line on stderr, when it wrote one).
    #[error("panicked: {0}")]
    Panic(String),
    /// Any other trap.
    #[error("trapped: {0}")]
    Trap(String),
    /// An error that is not a trap: a host function's, a value the
    /// plugin passed that the canonical ABI refused, or an instance the
    /// host could not allocate (a full pool).
    #[error("failed: {0}")]
    Host(String),
    /// A hook's changes are too large, in bytes.
    #[error("returned {bytes} bytes of changes, over the limit of {limit} bytes")]
    ChangesTooLarge {
        /// Their size, as the limit counts it.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A plugin's changes made the container too large to hand on.
    #[error(
        "its changes make the container's view {bytes} bytes, over the limit of {limit} bytes \
         that every later plugin must be able to read"
    )]
    ViewTooLarge {
        /// The view's size with the changes.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The container is too large before any plugin changed it.
    #[error(
        "the container's view is {bytes} bytes before any plugin changed it, over the limit \
         of {limit} bytes"
    )]
    ContainerTooLarge {
        /// The view's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A hook returned more changes than allowed.
    #[error("returned {count} changes, over the limit of {limit}")]
    TooManyChanges {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// `configure` refused the settings.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A returned change is malformed, or not allowed.
    #[error("change {index} ({change}): {reason}")]
    Change {
        /// Its position in the hook's list, from 0.
        index: usize,
        /// The change, as a person would write it.
        change: String,
        /// Why it was refused.
        reason: String,
    },
    /// The plugin refused the run.
    #[error("denied: {0}")]
    Denied(String),
    /// A validator failed where its `on-error = "skip"` would have let
    /// another plugin go: a validator's word is final.
    #[error(
        "{0} (on-error = \"skip\" does not apply to a plugin that exports validate: \
         its failure always fails the run)"
    )]
    Validator(Box<Problem>),
}

/// Text a plugin (or anyone but specgate) chose, made safe to show on a
/// terminal or in a line-based log: control characters (C0, DEL, C1), the
/// Unicode line and paragraph separators and the bidirectional controls
/// are written as escapes (`\n`, `\u{1b}`, `\u{202e}`), so that the text
/// stays on its line and cannot move the cursor, erase, recolour or
/// reorder what the reader sees. Anything else is kept as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
                | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape("/data/ünïcode ok"), Cow::Borrowed(_)));
        assert_eq!(
            escape("ok\n  (no changes)\r\u{1b}[2K\u{1b}[1A\t\u{7f}\u{9b}"),
            "ok\\n  (no changes)\\r\\u{1b}[2K\\u{1b}[1A\\t\\u{7f}\\u{9b}"
        );
        assert_eq!(escape("a\u{202e}b\u{2028}c"), "a\\u{202e}b\\u{2028}c");
    }

    #[test]
    fn plugin_errors_stay_on_one_line() {
        let error = PluginError {
            plugin: "flood".into(),
            path: PathBuf::from("/p/flood.wasm"),
            stage: Stage::Validate,
            problem: Problem::Denied("no\nplugin other (x)\n  (no changes)\u{1b}[2K".into()),
        };
        let message = error.to_string();
        assert!(!message.chars().any(char::is_control), "{message}");
        assert_eq!(
            message,
            "plugin flood (/p/flood.wasm): validate: denied: no\\nplugin other (x)\\n  (no changes)\\u{1b}[2K"
        );
    }
}
