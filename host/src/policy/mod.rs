//! The policy chain: WebAssembly plugins, sandboxed by wasmtime, that see
//! the container and return typed changes or a denial.
//!
//! One room per concern: [`bindings`] (the contract), [`engine`] (the
//! process's engine and linker), [`sandbox`] (what an instance may touch),
//! [`limits`], [`cache`] (compiled code) and [`progress`] (word of slow
//! compiles), [`plugin`] (loading and export
//! discovery), [`view`] and [`change`] (the container as plugins see it and
//! the changes they return), [`grants`], and [`chain`] (running it all).

pub mod audit;
pub mod bindings;
pub mod cache;
pub mod chain;
pub mod change;
pub mod engine;
pub mod error;
pub mod file;
pub mod grants;
pub mod limits;
pub mod plugin;
pub mod progress;
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
pub use file::{Mode, OnError, Policy};
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

/// A plugin to load: its name in the chain, its file, and the sha256 the
/// file must have when pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its name in the chain.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The pinned sha256, in hex.
    pub sha256: Option<String>,
}

impl Source {
    /// An unpinned plugin.
    pub fn new(name: &str, path: &Path) -> Self {
        Source {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256: None,
        }
    }
}

/// Loads plugins and runs chains. One per process: it holds the engine,
/// the linker and the compiled-code cache.
pub struct PluginHost {
    engine: &'static Engine,
    linker: Linker<PluginState>,
    cache: Cache,
    limits: Limits,
    runtime: tokio::runtime::Runtime,
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
        // Call deadlines are timers on this runtime: they fire even while
        // a plugin waits in a host call, where epochs cannot reach it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        Ok(PluginHost {
            engine,
            linker,
            cache,
            limits,
            runtime,
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
        let mut loaded = self.load_all(&[Source::new(name, path)])?;
        Ok(loaded.remove(0))
    }

    /// Loads plugins, each on a thread of its own when there are several:
    /// reading and hashing the file, then mapping its cache entry or
    /// compiling it. In a fresh process even a cached load costs more
    /// than a thread (the entry's pages, its code made executable), and
    /// misses compile in parallel. The first failure, in the given order,
    /// is returned.
    pub fn load_all(&self, plugins: &[Source]) -> Result<Vec<Plugin>, PluginError> {
        self.load_each(plugins).into_iter().collect()
    }

    /// Loads plugins as [`PluginHost::load_all`] does, with the outcome of
    /// each: what `plugin compile` reports. A compiled plugin is stored in
    /// the cache only once it is known to be a plugin, so a refused
    /// component leaves nothing behind.
    pub fn load_each(&self, plugins: &[Source]) -> Vec<Result<Plugin, PluginError>> {
        let fetch = |source: &Source| -> Result<_, Problem> {
            let started = std::time::Instant::now();
            let file = plugin::read(&source.path, &self.limits)?;
            if let Some(expected) = &source.sha256
                && *expected != file.sha256
            {
                return Err(Problem::PinMismatch {
                    expected: expected.clone(),
                    actual: file.sha256,
                });
            }
            if let Some(component) = self.cache.lookup(self.engine, &file.sha256, &source.path) {
                return Ok((file, component, None, started.elapsed()));
            }
            let job = progress::start(&source.name, file.bytes.len() as u64);
            let compiled = Cache::compile(self.engine, &file.bytes)
                .map_err(|e| Problem::Invalid(format!("{e:#}")))?;
            job.succeeded();
            Ok((
                file,
                compiled.component.clone(),
                Some(compiled),
                started.elapsed(),
            ))
        };
        let fetched: Vec<Result<_, Problem>> = match plugins {
            [one] => vec![fetch(one)],
            _ => std::thread::scope(|scope| {
                let handles: Vec<_> = plugins
                    .iter()
                    .map(|source| scope.spawn(move || fetch(source)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Problem::Invalid("the plugin loader panicked".into()))
                        })
                    })
                    .collect()
            }),
        };
        plugins
            .iter()
            .zip(fetched)
            .map(|(source, fetched)| {
                let error = |problem| PluginError {
                    plugin: source.name.clone(),
                    path: source.path.clone(),
                    stage: Stage::Load,
                    problem,
                };
                let (file, component, compiled, fetched_in) = fetched.map_err(error)?;
                let started = std::time::Instant::now();
                let origin = match compiled {
                    Some(_) => cache::Source::Compiled,
                    None => cache::Source::Cache,
                };
                let mut plugin = plugin::prepare(
                    self.engine,
                    &self.linker,
                    source.name.as_str().into(),
                    &source.path,
                    &file,
                    component,
                    origin,
                )
                .map_err(error)?;
                if let Some(compiled) = &compiled {
                    self.cache.store(
                        &file.sha256,
                        compiled,
                        &source.path,
                        file.bytes.len() as u64,
                    );
                }
                // The time of its own work, not of waiting for the others.
                plugin.set_load_time(fetched_in + started.elapsed());
                Ok(plugin)
            })
            .collect()
    }

    /// Instantiates a plugin and calls its `describe`.
    pub fn describe(&self, plugin: &Plugin) -> Result<Info, PluginError> {
        self.block_on(chain::describe(self.engine, plugin, &self.limits))
    }

    /// Runs a chain over `spec`, for the container `id`.
    pub fn run_chain(
        &self,
        entries: &[Entry<'_>],
        spec: &mut Spec,
        id: &str,
        mode: Mode,
    ) -> Result<Report, PluginError> {
        self.block_on(chain::run(self.engine, entries, spec, id, mode))
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
