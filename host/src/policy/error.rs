//! What can go wrong with a plugin, each error naming the plugin, its file
//! and the stage at fault.

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

/// A plugin failed, or refused the run.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin} ({}): {stage}: {problem}", path.display())]
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
}
