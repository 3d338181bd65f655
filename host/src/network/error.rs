//! The errors of configuring a container's networks.

use std::path::PathBuf;

/// Errors configuring the container's networks.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The configuration directory could not be read.
    #[error("CNI configuration directory {}: {source}", dir.display())]
    ConfigDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration file could not be read.
    #[error("{}: {source}", file.display())]
    ReadConfig {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration file is not a CNI network configuration.
    #[error("{}: malformed CNI configuration: {reason}", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A network named by `--network` has no configuration.
    #[error("--network {name}: no such CNI network in {}", dir.display())]
    NoSuchNetwork {
        /// The name.
        name: String,
        /// The configuration directory.
        dir: PathBuf,
    },
    /// A plugin's executable is not in the plugin path.
    #[error("CNI plugin {plugin} of network {network} ({}): not found in {search_path} (--cni-plugin-path)", file.display())]
    PluginNotFound {
        /// The plugin's type.
        plugin: String,
        /// The network.
        network: String,
        /// Its configuration file.
        file: PathBuf,
        /// The directories searched.
        search_path: String,
    },
    /// A plugin could not be executed.
    #[error("cannot execute the CNI plugin {}: {source}", program.display())]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plugin failed.
    #[error("CNI plugin {plugin} {command} for network {network} ({}): {message}", file.display())]
    Plugin {
        /// The plugin's type.
        plugin: String,
        /// ADD or DEL.
        command: &'static str,
        /// The network.
        network: String,
        /// Its configuration file.
        file: PathBuf,
        /// What the plugin said.
        message: String,
    },
    /// A record of libcni's result cache could not be written.
    #[error("CNI result cache {}: {reason}", path.display())]
    Cache {
        /// The record, or the cache's directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The container's network namespace could not be opened.
    #[error("cannot open the network namespace of the container's process {pid}: {source}")]
    Namespace {
        /// The container's init.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
}
