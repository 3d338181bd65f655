//! Host bindings of the `specgate:policy` contract, generated from its
//! newest version, `wit/0.1.1/`.
//!
//! A released version is never edited: `wit/*.wit` is 0.1.0 as released,
//! and each later version lives whole in `wit/VERSION/`. A later 0.1.x
//! only adds (host functions, `@since` them), so the host, built
//! from the newest, also serves plugins built against the older ones:
//! wasmtime matches `host@0.1.0` imports to `host@0.1.1` definitions, and
//! finds a plugin's `plugin@0.1.0` export when asked for `plugin@0.1.1`.
//!
//! One world holds every interface; a plugin exports only some of them, so
//! hooks are found per interface at load (see `plugin.rs`) rather than
//! through the world's all-or-nothing instantiation.

wasmtime::component::bindgen!({
    world: "policy",
    path: "../wit/0.1.1",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::specgate::policy::types;
pub use exports::specgate::policy::{capabilities, mounts, namespaces, plugin, validate};

/// The contract's package, as it appears in export names.
pub const PACKAGE: &str = "specgate:policy";

/// The contract version this host implements. Plugins built against a
/// semver-compatible version load: every 0.1.x.
pub const VERSION: &str = "0.1.1";
