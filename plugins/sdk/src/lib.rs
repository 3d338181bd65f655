//! Write specgate policy plugins in Rust.
//!
//! A plugin is a WebAssembly component that exports `plugin` and the hook
//! interfaces it needs. This crate holds what every plugin shares: the
//! contract's types, logging through the host, typed settings, and helpers
//! that build the changes a hook returns.
//!
//! ```ignore
//! specgate_sdk::bindings!(world: "capabilities-policy", path: "../../wit");
//!
//! struct NoRawSockets;
//!
//! impl exports::specgate::policy::plugin::Guest for NoRawSockets {
//!     fn describe() -> Info {
//!         Info { name: "no-raw".into(), version: "1.0.0".into(), description: "drops CAP_NET_RAW".into() }
//!     }
//!     fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
//!         Settings::new(settings).finish()
//!     }
//! }
//!
//! impl exports::specgate::policy::capabilities::Guest for NoRawSockets {
//!     fn adjust(c: Container) -> Result<Vec<CapabilityChange>, Denial> {
//!         Ok(c.has_capability("CAP_NET_RAW").then(|| drop_capability("CAP_NET_RAW")).into_iter().collect())
//!     }
//! }
//!
//! export!(NoRawSockets);
//! ```

mod changes;
mod container;
mod settings;

/// The contract's imports, generated once here so that every plugin shares
/// the same types.
#[doc(hidden)]
pub mod generated {
    wit_bindgen::generate!({
        world: "sdk",
        path: "../../wit",
    });
}

pub use changes::*;
pub use generated::specgate::policy::host;
pub use generated::specgate::policy::types;
pub use settings::Settings;
pub use types::*;

/// Generates a plugin's bindings for one of the contract's worlds
/// (`mounts-policy`, `capabilities-policy`, `namespaces-policy`,
/// `validator`, or `policy` for every hook), sharing this crate's types.
///
/// `path` is the `wit/` directory, relative to the plugin's `Cargo.toml`.
/// The expansion defines the `exports` module with the `Guest` traits to
/// implement, and the `export!` macro that names the implementing type.
#[macro_export]
macro_rules! bindings {
    (world: $world:literal, path: $path:literal) => {
        wit_bindgen::generate!({
            world: $world,
            path: $path,
            with: {
                "specgate:policy/types@0.1.0": specgate_sdk::types,
                "specgate:policy/host@0.1.0": specgate_sdk::host,
            },
        });
        #[allow(unused_imports)]
        use exports::specgate::policy::plugin::Info;
        #[allow(unused_imports)]
        use specgate_sdk::*;
    };
}

/// Logs through the host, tagged there with the plugin's name.
pub mod log {
    use crate::host::{Level, log};

    /// Logs at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Builds a denial with the given reason.
pub fn deny(reason: impl Into<String>) -> Denial {
    Denial {
        reason: reason.into(),
    }
}

/// Puts a capability name in the canonical form the host expects:
/// upper case with the `CAP_` prefix (`net_raw` becomes `CAP_NET_RAW`).
pub fn canonical_capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Parses a namespace kind as written in settings (`net` and `network`
/// both name the network namespace).
pub fn parse_namespace_kind(name: &str) -> Option<NamespaceKind> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "cgroup" => NamespaceKind::Cgroup,
        "ipc" => NamespaceKind::Ipc,
        "mount" | "mnt" => NamespaceKind::Mount,
        "network" | "net" => NamespaceKind::Network,
        "pid" => NamespaceKind::Pid,
        "time" => NamespaceKind::Time,
        "user" => NamespaceKind::User,
        "uts" => NamespaceKind::Uts,
        _ => return None,
    })
}

/// The name of a namespace kind, as used in settings and messages.
pub fn namespace_kind_name(kind: NamespaceKind) -> &'static str {
    match kind {
        NamespaceKind::Cgroup => "cgroup",
        NamespaceKind::Ipc => "ipc",
        NamespaceKind::Mount => "mount",
        NamespaceKind::Network => "network",
        NamespaceKind::Pid => "pid",
        NamespaceKind::Time => "time",
        NamespaceKind::User => "user",
        NamespaceKind::Uts => "uts",
    }
}
