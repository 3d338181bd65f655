//! specgate: run containers through a chain of sandboxed WebAssembly
//! policy plugins.
//!
//! The run's data flow, one module each: [`spec`] builds the OCI runtime
//! spec from the user's options, [`policy`] passes it through the plugin
//! chain ([`policy::setup`] assembles the chain), and [`run`] takes a
//! container from its options to its exit status through both, then
//! through the bundle and the OCI runtime; `wrapper` is the same flow
//! behind runc's command line, for engines. The command-line layer
//! ([`cli`]) parses, calls them, and turns errors into exit codes.

pub mod cli;
mod network;
pub mod policy;
pub mod run;
mod runtime;
pub mod scaffold;
pub mod spec;
mod sys;
pub mod timestamp;
pub mod units;
mod wrapper;
