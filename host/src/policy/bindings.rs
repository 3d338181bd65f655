//! Host bindings of the `specgate:policy` contract, generated from `wit/`.
//!
//! One world holds every interface; a plugin exports only some of them, so
//! hooks are found per interface at load (see `plugin.rs`) rather than
//! through the world's all-or-nothing instantiation.

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::specgate::policy::types;
pub use exports::specgate::policy::{capabilities, mounts, namespaces, plugin, validate};

/// The contract's package, as it appears in export names.
pub const PACKAGE: &str = "specgate:policy";

/// The contract version this host implements. Plugins built against a
/// semver-compatible version load.
pub const VERSION: &str = "0.1.0";
