//! specgate: run containers through a chain of sandboxed WebAssembly
//! policy plugins.
//!
//! The run's data flow, one module each: [`spec`] builds the OCI runtime
//! spec from the user's options, [`policy`] passes it through the plugin
//! chain, and the command-line layer ([`cli`]) ties them together.

pub mod cli;
mod network;
pub mod policy;
pub mod run;
mod runtime;
pub mod scaffold;
pub mod spec;
pub mod sys;
pub mod units;
