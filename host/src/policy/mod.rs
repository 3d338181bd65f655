//! The policy chain: WebAssembly plugins, sandboxed by wasmtime, that see
//! the container and return typed changes or a denial.
//!
//! One room per concern: [`bindings`] (the contract), [`engine`] (the
//! process's engine and linker), [`sandbox`] (what an instance may touch),
//! [`limits`], [`cache`] (compiled code) and [`progress`] (word of slow
//! compiles), [`plugin`] (loading and export
//! discovery), [`view`] and [`change`] (the container as plugins see it and
//! the changes they return), [`reach`] (what a container reaches through
//! its mounts, by which mount changes are judged), [`grants`], and
//! [`chain`] (running it all).

pub mod artifact;
pub mod audit;
pub mod bindings;
pub mod cache;
pub mod chain;
pub mod change;
pub mod credentials;
pub mod digests;
pub mod engine;
pub mod error;
pub mod file;
pub mod grants;
pub mod limits;
#[cfg(test)]
mod oracle;
pub mod plugin;
mod private_files;
pub mod progress;
pub mod reach;
pub mod registry;
pub mod sandbox;
pub mod setup;
pub mod signature;
pub mod store;
pub mod supply;
pub mod view;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use wasmtime::Engine;

pub use bindings::plugin::Info;
pub use cache::Cache;
pub use chain::{Applied, Entry, Report};
pub use engine::Allocation;
pub use error::{PluginError, Problem, Stage};
pub use file::{Mode, OnError, Policy};
pub use grants::Grants;
pub use limits::Limits;
pub use plugin::{Hook, Plugin};

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

/// Loads plugins and runs chains. One per process: it holds the engine
/// and the compiled-code cache.
pub struct PluginHost {
    engine: &'static Engine,
    allocation: Allocation,
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
    /// default limits for plugins loaded through it, whose instances are
    /// allocated as `allocation` says if it is the process's first host.
    pub fn new(
        cache_dir: Option<&Path>,
        limits: Limits,
        allocation: Allocation,
    ) -> Result<Self, HostError> {
        let (engine, allocation) =
            engine::engine(allocation).map_err(|e| HostError::Engine(format!("{e:#}")))?;
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
            allocation,
            cache,
            limits,
            runtime,
        })
    }

    /// How its instances are allocated: as the process's first host asked,
    /// unless a pool could not be reserved.
    pub fn allocation(&self) -> Allocation {
        self.allocation
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

    /// The plugin at `path` loaded from its cache entry if it has one;
    /// otherwise what its file declares, read without compiling it (what
    /// `plugin inspect` shows of a plugin not compiled yet).
    pub fn load_cached(&self, name: &str, path: &Path) -> Result<Peek, PluginError> {
        let fail = |problem| PluginError {
            plugin: name.to_string(),
            path: path.to_path_buf(),
            stage: Stage::Load,
            problem,
        };
        let (opened, file) = self.open_hashed(path).map_err(fail)?;
        if let Some(component) = self.cache.lookup(self.engine, &file.sha256, path) {
            let plugin = plugin::prepare(
                self.engine,
                name.into(),
                path,
                &file,
                component,
                cache::Source::Cache,
            )
            .map_err(fail)?;
            return Ok(Peek::Loaded(Box::new(plugin)));
        }
        let file = match file.bytes {
            Some(_) => file,
            None => opened.read(&self.limits).map_err(fail)?,
        };
        let bytes = file.bytes.as_deref().unwrap_or_default();
        let (imports, exports) = plugin::declared_names(bytes).map_err(fail)?;
        let hooks = plugin::declared_hooks(&exports).map_err(fail)?;
        Ok(Peek::Declared(Declared {
            path: path.to_path_buf(),
            size: file.size,
            sha256: file.sha256,
            exports,
            imports,
            hooks,
        }))
    }

    /// Opens a plugin file and knows its sha256: remembered for a file
    /// unchanged since it was last hashed (its bytes then unread), read and
    /// hashed otherwise.
    fn open_hashed(
        &self,
        path: &Path,
    ) -> Result<(plugin::OpenedFile, plugin::PluginFile), Problem> {
        let opened = plugin::open(path, &self.limits)?;
        let file = match self.cache.remembered_digest(opened.metadata()) {
            Some(sha256) => {
                tracing::debug!(path = %path.display(), "plugin file unchanged; digest remembered");
                opened.known(sha256)
            }
            None => opened.read(&self.limits)?,
        };
        Ok((opened, file))
    }

    /// Loads plugins: reading and hashing each file (or recalling the
    /// digest of an unchanged one), then mapping its cache entry or
    /// compiling it, on this thread and one more per spare core. The first
    /// failure, in the given order, is returned.
    pub fn load_all(&self, plugins: &[Source]) -> Result<Vec<Plugin>, PluginError> {
        self.load_each(plugins).into_iter().collect()
    }

    /// Loads plugins as [`PluginHost::load_all`] does, with the outcome of
    /// each: what `plugin compile` reports. A compiled plugin is stored in
    /// the cache only once it is known to be a plugin, so a refused
    /// component leaves nothing behind.
    pub fn load_each(&self, plugins: &[Source]) -> Vec<Result<Plugin, PluginError>> {
        let pinned = |source: &Source, file: &plugin::PluginFile| match &source.sha256 {
            Some(expected) if *expected != file.sha256 => Err(Problem::PinMismatch {
                expected: expected.clone(),
                actual: file.sha256.clone(),
            }),
            _ => Ok(()),
        };
        // Each plugin is fetched and prepared on whichever thread takes
        // it; preparing waits for its linker, built meanwhile.
        let fetch = |source: &Source| -> Result<_, Problem> {
            let started = std::time::Instant::now();
            let (opened, file) = self.open_hashed(&source.path)?;
            pinned(source, &file)?;
            let (file, component, compiled) =
                match self.cache.lookup(self.engine, &file.sha256, &source.path) {
                    Some(component) => (file, component, None),
                    None => {
                        // Compiling takes the bytes themselves, read and
                        // hashed now whatever digest was remembered.
                        let file = match file.bytes {
                            Some(_) => file,
                            None => {
                                let file = opened.read(&self.limits)?;
                                pinned(source, &file)?;
                                file
                            }
                        };
                        let bytes = file.bytes.as_deref().unwrap_or_default();
                        let job = progress::start(&source.name, file.size);
                        let compiled = Cache::compile(self.engine, bytes)
                            .map_err(|e| Problem::Invalid(format!("{e:#}")))?;
                        job.succeeded();
                        let component = compiled.component.clone();
                        (file, component, Some(compiled))
                    }
                };
            let origin = match compiled {
                Some(_) => cache::Source::Compiled,
                None => cache::Source::Cache,
            };
            let mut plugin = plugin::prepare(
                self.engine,
                source.name.as_str().into(),
                &source.path,
                &file,
                component,
                origin,
            )?;
            // The time of its own work, not of waiting for the others.
            plugin.set_load_time(started.elapsed());
            Ok((file, plugin, compiled))
        };
        plugins
            .iter()
            .zip(fetch_all(self.engine, plugins, fetch))
            .map(|(source, fetched)| {
                let (file, plugin, compiled) = fetched
                    .unwrap_or_else(|| Err(Problem::Invalid("the plugin loader panicked".into())))
                    .map_err(|problem| PluginError {
                        plugin: source.name.clone(),
                        path: source.path.clone(),
                        stage: Stage::Load,
                        problem,
                    })?;
                // Only a plugin's digest is remembered: a refused
                // component leaves nothing behind.
                if file.bytes.is_some() {
                    self.cache.remember_digest(&file.meta, &file.sha256);
                }
                if let Some(compiled) = &compiled {
                    self.cache
                        .store(&file.sha256, compiled, &source.path, file.size);
                }
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

    /// Runs a chain as [`PluginHost::run_chain`] does, and returns what
    /// the plugins did even when the chain refuses: a refused run's audit
    /// record lists it.
    pub fn run_chain_reporting(
        &self,
        entries: &[Entry<'_>],
        spec: &mut Spec,
        id: &str,
        mode: Mode,
    ) -> (Report, Result<(), PluginError>) {
        let mut report = Report::new(mode);
        let outcome = self.block_on(chain::run_into(self.engine, entries, spec, id, &mut report));
        (report, outcome)
    }

    /// Runs plugin calls to their end, with the epoch advancing meanwhile.
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let _ticking = engine::Ticking::start();
        self.runtime.block_on(future)
    }
}

/// A plugin as [`PluginHost::load_cached`] found it.
#[derive(Debug)]
pub enum Peek {
    /// Loaded from its cache entry.
    Loaded(Box<Plugin>),
    /// Not compiled yet: what its file declares.
    Declared(Declared),
}

/// What a plugin file declares, read without compiling it: its names
/// checked against the contract, not yet their types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, in hex.
    pub sha256: String,
    /// Every name it exports.
    pub exports: Vec<String>,
    /// Every name it imports.
    pub imports: Vec<String>,
    /// The hooks its exports name.
    pub hooks: Vec<Hook>,
}

impl From<&Plugin> for Declared {
    /// What a loaded plugin declares, as wasmtime found it.
    fn from(plugin: &Plugin) -> Self {
        Declared {
            path: plugin.path().to_path_buf(),
            size: plugin.size(),
            sha256: plugin.sha256().to_string(),
            exports: plugin.exports().to_vec(),
            imports: plugin.imports().to_vec(),
            hooks: plugin.hooks().to_vec(),
        }
    }
}

/// Runs `fetch` over every plugin, on this thread and on one more per
/// spare core: in a fresh process even a cached load costs more than a
/// thread (the entry's pages, its code made executable), and misses
/// compile in parallel. This thread first builds the linker of plugins
/// that import only `wasi:cli` and `wasi:io` (all the SDK's), which a
/// fetch waits for to prepare such a plugin. Results keep the plugins'
/// order; `None` is a fetch that panicked on another thread.
fn fetch_all<R: Send + Sync>(
    engine: &Engine,
    plugins: &[Source],
    fetch: impl Fn(&Source) -> R + Sync,
) -> Vec<Option<R>> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let spare = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<R>> = plugins.iter().map(|_| OnceLock::new()).collect();
    let work = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(source) = plugins.get(index) else {
                break;
            };
            let _ = slots[index].set(fetch(source));
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..spare.min(plugins.len()) {
            // A worker's panic, reported by the hook, leaves its plugin's
            // slot empty, reported by the caller. A worker that cannot
            // start leaves its share to the others.
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                let _ = catch_unwind(AssertUnwindSafe(&work));
            });
        }
        // A failure is each fetch's to report, when it asks for a linker.
        let _ = engine::basic_linker(engine);
        work();
    });
    slots.into_iter().map(OnceLock::into_inner).collect()
}
