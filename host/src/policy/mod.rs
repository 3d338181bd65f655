//! The policy chain: WebAssembly plugins, sandboxed by wasmtime, that see
//! the container and return typed changes or a denial.
//!
//! One room per concern: [`bindings`] (the contract), [`engine`] (the
//! process's engine and linker), [`sandbox`] (what an instance may touch),
//! [`limits`], [`cache`] (compiled code), [`plugin`] (loading and export
//! discovery), [`view`] and [`change`] (the container as plugins see it and
//! the changes they return), [`grants`], and [`chain`] (running it all).

pub mod bindings;
pub mod cache;
pub mod chain;
pub mod change;
pub mod engine;
pub mod error;
pub mod grants;
pub mod limits;
pub mod plugin;
pub mod sandbox;
pub mod view;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use bindings::plugin::Info;
pub use cache::Cache;
pub use chain::{Applied, Entry, Report};
pub use error::{PluginError, Problem, Stage};
pub use grants::Grants;
pub use limits::Limits;
pub use plugin::{Hook, Plugin};

use sandbox::PluginState;

/// Errors setting up the plugin host itself, before any plugin.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The async runtime that enforces call deadlines could not start.
    #[error("cannot start the plugin call runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// Loads plugins and runs chains. One per process: it holds the engine,
/// the linker and the compiled-code cache.
pub struct PluginHost {
    engine: &'static Engine,
    linker: Linker<PluginState>,
    cache: Cache,
    limits: Limits,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("cache", &self.cache)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host with the given cache directory (`None`: no cache) and
    /// default limits for plugins loaded through it.
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> Result<Self, HostError> {
        let engine = engine::engine().map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let linker = engine::linker(engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = match cache_dir {
            Some(dir) => Cache::open(engine, dir)?,
            None => Cache::disabled(),
        };
        Ok(PluginHost {
            engine,
            linker,
            cache,
            limits,
        })
    }

    /// The default limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The compiled-code cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Loads one plugin under a name.
    pub fn load(&self, name: &str, path: &Path) -> Result<Plugin, PluginError> {
        plugin::load(
            self.engine,
            &self.linker,
            &self.cache,
            &self.limits,
            name,
            path,
        )
    }

    /// Loads plugins, those missing from the cache compiling in parallel.
    /// The first failure, in the given order, is returned.
    pub fn load_all(&self, plugins: &[(String, PathBuf)]) -> Result<Vec<Plugin>, PluginError> {
        if plugins.len() < 2 {
            return plugins.iter().map(|(n, p)| self.load(n, p)).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = plugins
                .iter()
                .map(|(name, path)| scope.spawn(move || self.load(name, path)))
                .collect();
            handles
                .into_iter()
                .zip(plugins)
                .map(|(handle, (name, path))| {
                    handle.join().unwrap_or_else(|_| {
                        Err(PluginError {
                            plugin: name.clone(),
                            path: path.clone(),
                            stage: Stage::Load,
                            problem: Problem::Trap("the loading thread panicked".into()),
                        })
                    })
                })
                .collect()
        })
    }

    /// Instantiates a plugin and calls its `describe`.
    pub fn describe(&self, plugin: &Plugin) -> Result<Info, ChainError> {
        Ok(self.block_on(chain::describe(self.engine, plugin, &self.limits))??)
    }

    /// Runs a chain over `spec`, for the container `id`.
    pub fn run_chain(
        &self,
        entries: &[Entry<'_>],
        spec: &mut Spec,
        id: &str,
    ) -> Result<Report, ChainError> {
        Ok(self.block_on(chain::run(self.engine, entries, spec, id))??)
    }

    /// Drives a call future to completion on a runtime whose timers
    /// enforce call deadlines even while a plugin waits in a host call.
    fn block_on<F: std::future::Future>(&self, future: F) -> Result<F::Output, HostError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        Ok(runtime.block_on(future))
    }
}

/// Why a chain did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The host could not run it.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A plugin failed or refused the run.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}
