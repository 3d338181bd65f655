//! Assembling a chain: the policy file, the plugins added to it, their
//! settings and limits, the cache they are compiled into. `specgate run`
//! builds a [`ChainSetup`] from its options, `specgate-runtime` from the
//! policy file alone; [`ChainSetup::load`] turns either into a
//! [`LoadedChain`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::file::{self, PluginEntry, PolicyFileError};
use super::plugin::default_name;
use super::store::{Store, StoreError};
use super::supply::{self, SupplyError};
use super::{
    Allocation, Declared, Entry, Grants, HostError, Info, Limits, Mode, OnError, Peek, Plugin,
    PluginError, PluginHost, Policy, Report, Source, audit,
};

/// How specgate's plugin instances are allocated: every command
/// instantiates each plugin once, or a few times.
pub const ALLOCATION: Allocation = Allocation::OnDemand;

/// Errors assembling a chain, before any plugin runs.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The policy file is unreadable or malformed.
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
    /// The plugin host could not be set up.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A registry plugin is not in the store, or a plugin is not
    /// verified as its policy requires.
    #[error(transparent)]
    Supply(#[from] SupplyError),
    /// The plugin store is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An added plugin has the name of one already in the chain.
    #[error("--plugin {}: the chain already has a plugin named `{name}` ({})", path.display(), other.display())]
    DuplicatePlugin {
        /// The added plugin's file.
        path: PathBuf,
        /// Its name.
        name: String,
        /// The file of the plugin already named so.
        other: PathBuf,
    },
    /// A setting is not `PLUGIN.KEY=VALUE`.
    #[error("--plugin-setting `{0}`: expected PLUGIN.KEY=VALUE")]
    MalformedSetting(String),
    /// A setting names a plugin the chain does not have.
    #[error("--plugin-setting `{setting}`: no plugin named `{plugin}` in the chain")]
    NoSuchPlugin {
        /// The setting as given.
        setting: String,
        /// The plugin it names.
        plugin: String,
    },
}

/// Which policy file the chain starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// [`file::DEFAULT_PATH`] when it exists, else none.
    Default,
    /// This file, which must exist.
    File(PathBuf),
    /// None: the chain is the added plugins alone.
    None,
}

/// Everything a chain is assembled from.
#[derive(Debug, Clone)]
pub struct ChainSetup {
    /// The policy file.
    pub policy: PolicySource,
    /// The mode over the policy file's.
    pub mode: Option<Mode>,
    /// The audit log over the policy file's.
    pub audit_log: Option<PathBuf>,
    /// Plugins added after the policy file's, in order.
    pub plugins: Vec<PathBuf>,
    /// `PLUGIN.KEY=VALUE` settings, over the policy file's.
    pub plugin_settings: Vec<String>,
    /// The limits of plugins the policy file does not limit otherwise.
    pub limits: Limits,
    /// Where compiled plugins are cached; none to compile on every load.
    pub cache_dir: Option<PathBuf>,
}

impl ChainSetup {
    /// The chain of `policy` alone, with the default limits.
    pub fn new(policy: PolicySource, cache_dir: Option<PathBuf>) -> Self {
        ChainSetup {
            policy,
            mode: None,
            audit_log: None,
            plugins: Vec::new(),
            plugin_settings: Vec::new(),
            limits: Limits::default(),
            cache_dir,
        }
    }

    /// The policy file this setup reads, if any.
    pub fn policy_path(&self) -> Option<PathBuf> {
        match &self.policy {
            PolicySource::File(path) => Some(path.clone()),
            PolicySource::None => None,
            PolicySource::Default => Some(PathBuf::from(file::DEFAULT_PATH)).filter(|p| p.exists()),
        }
    }

    /// The plugin host of this setup's cache and limits.
    pub fn host(&self) -> Result<PluginHost, HostError> {
        plugin_host(self.cache_dir.as_deref(), self.limits.clone())
    }

    /// The policy file's plugins, then the added ones, with the added
    /// settings over the file's; `beside` runs on another thread meanwhile
    /// when there are plugins to load (else here, first): work that needs
    /// no plugin need not wait for them.
    pub fn load<R: Send>(
        &self,
        beside: impl FnOnce() -> R + Send,
    ) -> Result<(LoadedChain, R), ChainError> {
        let (policy, digest) = match self.policy_path() {
            Some(path) => {
                // Read once: the audit record's digest is of the text parsed.
                let text = Policy::read(&path)?;
                let digest = audit::PolicyDigest {
                    path: path.display().to_string(),
                    sha256: hex::encode(Sha256::digest(text.as_bytes())),
                };
                (Policy::parse(&path, &text, &self.limits)?, Some(digest))
            }
            None => (Policy::default(), None),
        };
        let mode = self.mode.unwrap_or(policy.mode);
        let mut entries = self.entries(policy.plugins)?;
        // The store is opened only for plugins that need it: registry
        // plugins, and signatures' recorded verifications.
        let store = match &self.cache_dir {
            Some(dir)
                if entries
                    .iter()
                    .any(|e| e.reference.is_some() || e.verify.is_some()) =>
            {
                Some(Store::open(dir)?)
            }
            _ => None,
        };
        supply::resolve(
            &mut entries,
            store.as_ref(),
            mode,
            self.policy_path().as_deref(),
            self.limits.plugin_file_size,
        )?;
        // A registry plugin's signature is judged by its manifest's
        // digest, known now: refused before anything of it is compiled.
        for entry in entries.iter().filter(|e| e.reference.is_some()) {
            if let Some(verify) = &entry.verify {
                let digest = supply::subject(entry, "", store.as_ref(), mode)?;
                supply::check(entry, verify, &digest, store.as_ref())?;
            }
        }
        let sources: Vec<Source> = entries
            .iter()
            .map(|e| Source {
                name: e.name.clone(),
                path: e.path.clone(),
                sha256: e.sha256.clone(),
            })
            .collect();
        let (host, plugins, beside) = if sources.is_empty() {
            (None, Vec::new(), beside())
        } else {
            let (loaded, beside) = std::thread::scope(|scope| {
                let beside = scope.spawn(beside);
                let loaded = self.host().map_err(ChainError::from).and_then(|host| {
                    let plugins = host.load_all(&sources)?;
                    Ok((host, plugins))
                });
                (loaded, beside.join())
            });
            let (host, plugins) = loaded?;
            // A file's, by the sha256 of the bytes loaded.
            for (plugin, entry) in plugins.iter().zip(&entries) {
                if let Some(verify) = entry.verify.as_ref().filter(|_| entry.reference.is_none()) {
                    let digest = supply::subject(entry, plugin.sha256(), store.as_ref(), mode)?;
                    supply::check(entry, verify, &digest, store.as_ref())?;
                }
            }
            let beside = beside.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (Some(host), plugins, beside)
        };
        let chain = LoadedChain {
            host,
            plugins,
            entries,
            mode,
            audit_log: self.audit_log.clone().or(policy.audit_log),
            policy: digest,
            runtime: policy.runtime,
        };
        Ok((chain, beside))
    }

    /// The policy file's entries, with the added plugins and settings.
    fn entries(&self, mut entries: Vec<PluginEntry>) -> Result<Vec<PluginEntry>, ChainError> {
        for path in &self.plugins {
            let name = default_name(path);
            if let Some(other) = entries.iter().find(|e| e.name == name) {
                return Err(ChainError::DuplicatePlugin {
                    path: path.clone(),
                    name,
                    other: other.path.clone(),
                });
            }
            entries.push(PluginEntry {
                name,
                path: path.clone(),
                reference: None,
                verify: None,
                sha256: None,
                settings: Vec::new(),
                grants: Grants::default(),
                limits: self.limits.clone(),
                on_error: OnError::Deny,
            });
        }
        for setting in &self.plugin_settings {
            let malformed = || ChainError::MalformedSetting(setting.clone());
            let (target, value) = setting.split_once('=').ok_or_else(malformed)?;
            let (plugin, key) = target
                .split_once('.')
                .filter(|(p, k)| !p.is_empty() && !k.is_empty())
                .ok_or_else(malformed)?;
            let entry = entries
                .iter_mut()
                .find(|e| e.name == plugin)
                .ok_or_else(|| ChainError::NoSuchPlugin {
                    setting: setting.clone(),
                    plugin: plugin.to_string(),
                })?;
            entry.settings.retain(|(k, _)| k != key);
            entry.settings.push((key.to_string(), value.to_string()));
        }
        Ok(entries)
    }
}

/// The plugin host of a cache directory (none: no cache) and limits.
pub fn plugin_host(cache_dir: Option<&Path>, limits: Limits) -> Result<PluginHost, HostError> {
    PluginHost::new(cache_dir, limits, ALLOCATION)
}

/// Where compiled plugins are cached when nothing says otherwise:
/// /var/cache/specgate for root, `$XDG_CACHE_HOME/specgate` (or
/// `~/.cache/specgate`) for others; none without a home.
pub fn default_cache_dir() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/specgate"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("specgate"))
}

/// A chain's plugins, loaded, with what the policy gives each.
#[derive(Debug)]
pub struct LoadedChain {
    /// The host that loaded the plugins; none for an empty chain, which
    /// then costs no wasm engine.
    host: Option<PluginHost>,
    plugins: Vec<Plugin>,
    entries: Vec<PluginEntry>,
    mode: Mode,
    audit_log: Option<PathBuf>,
    policy: Option<audit::PolicyDigest>,
    runtime: Option<String>,
}

impl LoadedChain {
    /// The plugins, in chain order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The audit log runs through this chain append to.
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The runtime the policy file names.
    pub fn runtime(&self) -> Option<&str> {
        self.runtime.as_deref()
    }

    /// The audit record of a run through this chain, before the chain runs.
    pub fn record(
        &self,
        run_id: &str,
        command: Vec<String>,
        rootfs: String,
        runtime: String,
    ) -> audit::Record {
        audit::Record::new(audit::Event::Start, run_id, command, rootfs, runtime)
            .under(self.policy.clone(), self.mode)
    }

    /// Runs the chain over `spec`, and records in `record` what the
    /// plugins did and, when they refuse, why: a refused run's record
    /// still lists every plugin that ran, and its changes.
    pub fn run_recorded(
        &self,
        spec: &mut oci_spec::runtime::Spec,
        id: &str,
        record: &mut audit::Record,
    ) -> Result<Report, PluginError> {
        let (report, outcome) = self.run_reporting(spec, id);
        record.add_chain(&self.plugins, &report);
        match outcome {
            Ok(()) => Ok(report),
            Err(error) => {
                record.denial = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Runs the chain over `spec`, and returns what the plugins did even
    /// when one refuses or fails, beside the outcome.
    pub fn run_reporting(
        &self,
        spec: &mut oci_spec::runtime::Spec,
        id: &str,
    ) -> (Report, Result<(), PluginError>) {
        match &self.host {
            Some(host) => host.run_chain_reporting(&self.entries(), spec, id, self.mode),
            None => (Report::default(), Ok(())),
        }
    }

    /// Runs the chain over `spec`.
    pub fn run(&self, spec: &mut oci_spec::runtime::Spec, id: &str) -> Result<Report, PluginError> {
        match &self.host {
            Some(host) => host.run_chain(&self.entries(), spec, id, self.mode),
            None => Ok(Report::default()),
        }
    }

    fn entries(&self) -> Vec<Entry<'_>> {
        self.plugins
            .iter()
            .zip(&self.entries)
            .map(|(plugin, entry)| Entry {
                plugin,
                settings: entry.settings.clone(),
                grants: entry.grants.clone(),
                limits: entry.limits.clone(),
                on_error: entry.on_error,
            })
            .collect()
    }
}

/// What `plugin inspect` shows of a plugin.
#[derive(Debug)]
pub struct Inspection {
    /// The file, its digest, and what it declares (as wasmtime found it,
    /// when the plugin was loaded).
    pub declared: Declared,
    /// Its own name, version and description, unescaped: none for a plugin
    /// not compiled yet when compiling was not asked for, since
    /// `describe()` runs the plugin.
    pub info: Option<Info>,
}

/// Reads what the plugin in `file` declares, and asks it what it is when
/// its cache entry is there, or when `compile` asks to compile it (and
/// store it) if not. Reading needs no compile: an interpreter's component
/// takes seconds to compile and milliseconds to read.
pub fn inspect(
    cache_dir: Option<&Path>,
    file: &Path,
    compile: bool,
) -> Result<Inspection, ChainError> {
    let host = plugin_host(cache_dir, Limits::default())?;
    let name = default_name(file);
    let plugin = match host.load_cached(&name, file)? {
        Peek::Loaded(plugin) => *plugin,
        Peek::Declared(declared) if !compile => {
            return Ok(Inspection {
                declared,
                info: None,
            });
        }
        Peek::Declared(_) => host.load(&name, file)?,
    };
    let info = host.describe(&plugin)?;
    Ok(Inspection {
        declared: Declared::from(&plugin),
        info: Some(info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(plugins: &[&str], settings: &[&str]) -> ChainSetup {
        let mut setup = ChainSetup::new(PolicySource::None, None);
        setup.plugins = plugins.iter().map(PathBuf::from).collect();
        setup.plugin_settings = settings.iter().map(|s| s.to_string()).collect();
        setup
    }

    fn error(plugins: &[&str], settings: &[&str]) -> String {
        setup(plugins, settings)
            .entries(Vec::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn added_plugins_and_settings_are_checked_before_any_load() {
        assert_eq!(
            error(&["/a/x.wasm", "/b/x.wasm"], &[]),
            "--plugin /b/x.wasm: the chain already has a plugin named `x` (/a/x.wasm)"
        );
        for malformed in ["x", "x.k", ".k=v", "x.=v", "=v"] {
            assert_eq!(
                error(&["/a/x.wasm"], &[malformed]),
                format!("--plugin-setting `{malformed}`: expected PLUGIN.KEY=VALUE")
            );
        }
        assert_eq!(
            error(&["/a/x.wasm"], &["y.k=v"]),
            "--plugin-setting `y.k=v`: no plugin named `y` in the chain"
        );
    }

    #[test]
    fn the_last_setting_of_a_key_wins_and_values_keep_their_dots() {
        let entries = setup(&["/a/x.wasm"], &["x.k=1", "x.k=a.b=c", "x.j=2"])
            .entries(Vec::new())
            .unwrap();
        assert_eq!(
            entries[0].settings,
            [("k".into(), "a.b=c".into()), ("j".into(), "2".into())]
        );
        assert_eq!(entries[0].on_error, OnError::Deny);
    }

    #[test]
    fn an_empty_chain_loads_no_engine_and_runs_the_work_beside_it_here() {
        let here = std::thread::current().id();
        let (chain, ran_on) = setup(&[], &[])
            .load(|| std::thread::current().id())
            .unwrap();
        assert_eq!(ran_on, here);
        assert!(chain.host.is_none() && chain.plugins().is_empty());
        let mut spec = oci_spec::runtime::Spec::default();
        let before = spec.clone();
        chain.run(&mut spec, "id").unwrap();
        assert_eq!(spec, before);
    }

    #[test]
    fn a_missing_policy_file_is_an_error_and_the_default_one_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("policy.toml");
        let setup = ChainSetup::new(PolicySource::File(missing.clone()), None);
        let error = setup.load(|| ()).map(|_| ()).unwrap_err();
        assert!(matches!(error, ChainError::Policy(_)), "{error}");
        assert!(error.to_string().contains(&missing.display().to_string()));
        assert_eq!(
            ChainSetup::new(PolicySource::Default, None).policy_path(),
            Some(PathBuf::from(file::DEFAULT_PATH)).filter(|p| p.exists())
        );
    }
}
