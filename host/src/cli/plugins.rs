//! `specgate plugin compile`, `plugin cache list|prune`, `plugin new`,
//! `plugin push|pull|sign`: getting plugins ready before the first run,
//! new ones started, and plugins moved through registries.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use super::output::write_stdout;
use crate::policy::cache::{CacheEntry, Source as Origin};
use crate::policy::progress::human_size;
use crate::policy::registry::{Options as RegistryOptions, PluginRef, Registry, TlsVerify};
use crate::policy::setup::plugin_host;
use crate::policy::signature::{PrivateKey, PublicKey};
use crate::policy::store::Store;
use crate::policy::supply;
use crate::policy::{Cache, Limits, Policy, Source, plugin::default_name};
use crate::scaffold;

/// `specgate plugin compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Plugin component files.
    #[arg(value_name = "FILE", required_unless_present = "policies")]
    files: Vec<PathBuf>,

    /// Compile every plugin a policy file names (repeatable), checked
    /// against its pins; first pull the registry plugins missing from the
    /// store, and verify the signatures it requires.
    #[arg(long = "policy", value_name = "FILE")]
    policies: Vec<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `specgate plugin cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the cached plugins: digest, size, the file each was last
    /// loaded from, and when.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached plugins no policy needs, or not used for a while.
    ///
    /// With both --policy and --older-than, only entries matching both are
    /// removed: unreferenced and unused for that long.
    Prune(PruneArgs),
}

/// `specgate plugin cache prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the plugins this policy file names (repeatable); remove the
    /// rest.
    #[arg(long = "policy", value_name = "FILE")]
    policies: Vec<PathBuf>,

    /// Remove entries not used for longer than this, e.g. `30d`, `12h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    older_than: Option<Duration>,
}

/// `specgate plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: its crate and its name in a chain (lowercase
    /// letters, digits and dashes, starting with a letter).
    name: String,

    /// The hooks to export, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "HOOK,...",
        default_value = "validate"
    )]
    hooks: Vec<scaffold::HookName>,

    /// Where to write the crate [default: ./NAME]. Must not exist or be
    /// empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

/// How to reach registries.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Require HTTPS with a verified certificate (`true`), or reach the
    /// registry over plain HTTP (`false`) [default: HTTPS, except plain
    /// HTTP for a registry on localhost or a loopback address].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
}

impl RegistryArgs {
    fn tls(&self) -> TlsVerify {
        match self.tls_verify {
            None => TlsVerify::Default,
            Some(true) => TlsVerify::Required,
            Some(false) => TlsVerify::Off,
        }
    }

    fn client(&self) -> Result<Registry> {
        Ok(Registry::new(RegistryOptions::from_env(self.tls()))?)
    }

    /// Says on stderr that a registry is reached without TLS: never
    /// silently.
    fn warn_plain(&self, reference: &PluginRef) {
        if reference.plain_http(self.tls()) {
            let why = if self.tls_verify == Some(false) {
                "--tls-verify=false"
            } else {
                "a loopback registry"
            };
            eprintln!(
                "specgate: {}: plain HTTP, without TLS ({why})",
                reference.registry()
            );
        }
    }
}

/// `specgate plugin push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The plugin's component file.
    file: PathBuf,
    /// Where to push it: `registry/repository[:tag]`.
    reference: String,
    /// An annotation of the artifact's manifest (repeatable).
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `specgate plugin pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The plugin: `registry/repository@sha256:…`, or a tag.
    reference: String,
    /// Verify its cosign signature with this public key (repeatable: any
    /// one suffices) and record the verification in the store.
    #[arg(long = "key", value_name = "FILE")]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `specgate plugin sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// A plugin file (signed into FILE.sig) or a reference in a registry
    /// (signed there, as cosign does).
    #[arg(value_name = "FILE|REF")]
    target: String,
    /// The private key: unencrypted PKCS#8 or SEC1 PEM, ECDSA P-256.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// An annotation signed with a registry plugin (repeatable).
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// The store under the cache directory, which must be on.
fn open_store(cache_dir: Option<&Path>) -> Result<Store> {
    let Some(dir) = cache_dir else {
        bail!("the plugin store lives in the plugin cache directory, which --no-cache turns off");
    };
    Ok(Store::open(dir)?)
}

fn annotations(given: &[String]) -> Result<BTreeMap<String, String>> {
    given
        .iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--annotation `{a}`: expected KEY=VALUE"))
        })
        .collect()
}

/// Pushes a plugin file as a Wasm OCI artifact; prints the reference
/// with the manifest's digest, the form a policy pins.
pub fn push(args: &PushArgs) -> Result<u8> {
    let reference = PluginRef::parse(&args.reference)?;
    if reference.digest_hex().is_some() {
        bail!(
            "{reference}: push to a tag (or none, for `latest`), not a digest: the digest is the manifest's"
        );
    }
    let limits = Limits::default();
    let wasm = crate::sys::bounded::read_bounded(&args.file, limits.plugin_file_size)
        .with_context(|| format!("plugin {}", args.file.display()))?;
    crate::policy::plugin::check_header(&wasm)
        .with_context(|| format!("plugin {}", args.file.display()))?;
    let annotations = annotations(&args.annotations)?;
    args.registry.warn_plain(&reference);
    let digest = args
        .registry
        .client()?
        .push(&wasm, &reference, annotations)?;
    write_stdout(format!("{}@{digest}\n", reference.repository()).as_bytes())?;
    Ok(0)
}

/// Pulls a plugin into the store (and verifies it, with keys).
pub fn pull(cache_dir: Option<PathBuf>, args: &PullArgs) -> Result<u8> {
    let reference = PluginRef::parse(&args.reference)?;
    let store = open_store(cache_dir.as_deref())?;
    let keys = args
        .keys
        .iter()
        .map(|k| PublicKey::load(k))
        .collect::<Result<Vec<_>, _>>()?;
    args.registry.warn_plain(&reference);
    let registry = args.registry.client()?;
    let pulled = registry.pull(&reference, &store, Limits::default().plugin_file_size)?;
    let mut out = format!(
        "{}@{}  {}\n",
        reference.repository(),
        pulled.digest,
        if pulled.already {
            "already in the store"
        } else {
            "pulled"
        }
    );
    if !keys.is_empty() {
        for record in registry.verify(&reference, &pulled.digest, &keys, &store)? {
            out.push_str(&format!(
                "verified with {} ({})\n",
                record.key_path.display(),
                &record.key_fingerprint[..16]
            ));
        }
    }
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// Signs a plugin file (FILE.sig) or a registry plugin (as cosign does).
pub fn sign(args: &SignArgs) -> Result<u8> {
    let key = PrivateKey::load(&args.key)?;
    let annotations = annotations(&args.annotations)?;
    let path = Path::new(&args.target);
    if path.exists() {
        if !annotations.is_empty() {
            bail!(
                "--annotation: a file's signature (FILE.sig, as `cosign sign-blob` writes it) carries no annotations"
            );
        }
        let limits = Limits::default();
        let bytes = crate::sys::bounded::read_bounded(path, limits.plugin_file_size)
            .with_context(|| format!("plugin {}", path.display()))?;
        let sig = supply::signature_path(path);
        super::output::write_file_atomically(&sig, key.sign(&bytes).as_bytes())
            .with_context(|| format!("signature {}", sig.display()))?;
        write_stdout(format!("{}\n", sig.display()).as_bytes())?;
        return Ok(0);
    }
    let reference = PluginRef::parse(&args.target).with_context(|| {
        format!(
            "{}: neither an existing file nor a registry reference",
            args.target
        )
    })?;
    args.registry.warn_plain(&reference);
    let registry = args.registry.client()?;
    let digest = match reference.digest_hex() {
        Some(hex) => format!("sha256:{hex}"),
        None => registry.resolve(&reference)?,
    };
    let tag = registry.sign(&reference, &digest, &key, &annotations)?;
    write_stdout(format!("{}:{tag}\n", reference.repository()).as_bytes())?;
    Ok(0)
}

/// What the store knows of a registry plugin.
pub fn describe(cache_dir: Option<&Path>, reference: &str) -> Result<supply::Described> {
    let store = open_store(cache_dir)?;
    Ok(supply::describe(
        &store,
        reference,
        Limits::default().plugin_file_size,
    )?)
}

/// A registry plugin's digest, annotations and signatures, as lines
/// after `plugin inspect`'s.
pub fn artifact_text(described: &supply::Described) -> String {
    let escape = crate::policy::error::escape;
    let mut out = format!(
        "reference: {}\ndigest: {}\n",
        escape(&described.reference),
        described.digest
    );
    let pairs = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !described.annotations.is_empty() {
        out.push_str(&format!("annotations: {}\n", pairs(&described.annotations)));
    }
    if described.verifications.is_empty() {
        out.push_str("signature: none verified\n");
    }
    for v in &described.verifications {
        out.push_str(&format!(
            "signature: verified with {} (sha256:{}) at {}",
            escape(&v.key_path.display().to_string()),
            &v.key_fingerprint[..16],
            v.verified_at
        ));
        if !v.annotations.is_empty() {
            out.push_str(&format!("; signed annotations: {}", pairs(&v.annotations)));
        }
        out.push('\n');
    }
    out
}

/// `plugin inspect --json`'s object with an `artifact` member.
pub fn with_artifact_json(json: &str, described: &supply::Described) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(json)?;
    value["artifact"] = serde_json::json!({
        "reference": described.reference,
        "digest": described.digest,
        "annotations": described.annotations,
        "signatures": described.verifications,
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// Compiles plugins into the cache, all at once; one line each on stdout.
/// Every plugin is tried, and every failure said.
pub fn compile(cache_dir: Option<PathBuf>, args: &CompileArgs) -> Result<u8> {
    if cache_dir.is_none() {
        bail!("plugin compile fills the plugin cache, which --no-cache turns off");
    }
    let limits = Limits::default();
    let mut sources = Vec::new();
    let mut out = String::new();
    for path in &args.policies {
        let mut policy = Policy::load(path, &limits)?;
        if policy
            .plugins
            .iter()
            .any(|e| e.reference.is_some() || e.verify.is_some())
        {
            let store = open_store(cache_dir.as_deref())?;
            let mut registry = || {
                for entry in &policy.plugins {
                    if let Some(reference) = entry
                        .reference
                        .as_deref()
                        .and_then(|r| PluginRef::parse(r).ok())
                    {
                        args.registry.warn_plain(&reference);
                    }
                }
                Registry::new(RegistryOptions::from_env(args.registry.tls()))
            };
            let fetched = supply::fetch(
                &policy.plugins,
                &store,
                policy.mode,
                limits.plugin_file_size,
                &mut registry,
            )
            .with_context(|| format!("policy {}", path.display()))?;
            for f in fetched {
                if f.pulled {
                    out.push_str(&format!("{}  pulled\n", f.plugin));
                }
                for key in f.verified {
                    out.push_str(&format!("{}  verified with {}\n", f.plugin, key.display()));
                }
            }
            supply::resolve(
                &mut policy.plugins,
                Some(&store),
                policy.mode,
                Some(path),
                limits.plugin_file_size,
            )?;
        }
        sources.extend(policy.plugins.into_iter().map(|e| Source {
            name: e.name,
            path: e.path,
            sha256: e.sha256,
        }));
    }
    sources.extend(args.files.iter().map(|f| Source::new(&default_name(f), f)));
    let host = plugin_host(cache_dir.as_deref(), limits)?;
    let width = sources.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut failures = Vec::new();
    for outcome in host.load_each(&sources) {
        match outcome {
            Ok(plugin) => {
                let how = match plugin.source() {
                    Origin::Compiled => "compiled",
                    Origin::Cache => "already cached",
                };
                out.push_str(&format!(
                    "{:<width$}  {}  {how:<14}  {}\n",
                    plugin.name(),
                    &plugin.sha256()[..12],
                    elapsed(plugin.load_time())
                ));
            }
            Err(e) => failures.push(e),
        }
    }
    write_stdout(out.as_bytes())?;
    // Each failure on a line of its own, in the given order; the last is
    // the command's error.
    match failures.pop() {
        None => Ok(0),
        Some(last) => {
            for earlier in failures {
                eprintln!("specgate: {earlier}");
            }
            Err(last.into())
        }
    }
}

/// `0.3 ms`, `412 ms`, `6.6 s`.
fn elapsed(time: Duration) -> String {
    let ms = time.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The cache the options select, which must be on.
fn open_cache(cache_dir: Option<PathBuf>) -> Result<Cache> {
    let Some(dir) = cache_dir else {
        bail!("the plugin cache is off (--no-cache)");
    };
    Ok(plugin_host(Some(&dir), Limits::default())?.cache().clone())
}

/// Lists the cache's entries, least recently used first.
pub fn cache_list(cache_dir: Option<PathBuf>, json: bool) -> Result<u8> {
    let cache = open_cache(cache_dir)?;
    let entries = cache.entries()?;
    let out = if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "sha256": e.sha256,
                    "size": e.size,
                    "source": e.source,
                    "last_used": crate::timestamp::rfc3339(e.last_used),
                    "this_engine": e.this_engine,
                    "path": e.path,
                })
            })
            .collect();
        format!("{}\n", serde_json::to_string_pretty(&list)?)
    } else {
        let mut out = format!(
            "{:<12}  {:>9}  {:<20}  {}\n",
            "DIGEST", "SIZE", "LAST USED", "SOURCE"
        );
        for e in &entries {
            let mut source = e
                .source
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string());
            if !e.this_engine {
                source.push_str(" (another wasmtime)");
            }
            out.push_str(&format!(
                "{:<12}  {:>9}  {:<20}  {source}\n",
                &e.sha256[..12],
                human_size(e.size),
                &crate::timestamp::rfc3339(e.last_used)[..19].replace('T', " "),
            ));
        }
        out
    };
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// Removes the entries the options select, and files no entry needs
/// (sidecars of removed entries, temporary files of writers that died);
/// says what went and how much was freed.
pub fn cache_prune(cache_dir: Option<PathBuf>, args: &PruneArgs) -> Result<u8> {
    if args.policies.is_empty() && args.older_than.is_none() {
        bail!(
            "plugin cache prune: say what to remove: --policy FILE (keep what it names) and/or --older-than DURATION"
        );
    }
    let keep = if args.policies.is_empty() {
        None
    } else {
        Some(referenced(cache_dir.as_deref(), &args.policies)?)
    };
    let cache = open_cache(cache_dir)?;
    let now = SystemTime::now();
    let doomed: Vec<CacheEntry> = cache
        .entries()?
        .into_iter()
        .filter(|e| keep.as_ref().is_none_or(|keep| !keep.contains(&e.sha256)))
        .filter(|e| {
            args.older_than
                .is_none_or(|age| now.duration_since(e.last_used).unwrap_or_default() > age)
        })
        .collect();
    let mut out = String::new();
    let mut freed = 0;
    for entry in &doomed {
        cache.remove(entry)?;
        freed += entry.size;
        let source = entry
            .source
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string());
        out.push_str(&format!(
            "removed {}  {}  {source}\n",
            &entry.sha256[..12],
            human_size(entry.size)
        ));
    }
    let (leftovers, leftover_bytes) = cache.sweep()?;
    if leftovers > 0 {
        let files = if leftovers == 1 { "file" } else { "files" };
        out.push_str(&format!(
            "removed {leftovers} leftover {files}  {}\n",
            human_size(leftover_bytes)
        ));
    }
    let entries = if doomed.len() == 1 {
        "entry"
    } else {
        "entries"
    };
    out.push_str(&format!(
        "freed {} in {} {entries}\n",
        human_size(freed + leftover_bytes),
        doomed.len(),
    ));
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// The sha256 of every plugin the policy files name: the pin when there
/// is one, else the file's. An unreadable plugin is an error, since
/// pruning without knowing what it needs could remove it.
fn referenced(cache_dir: Option<&Path>, policies: &[PathBuf]) -> Result<HashSet<String>> {
    let limits = Limits::default();
    let mut keep = HashSet::new();
    for path in policies {
        let mut policy = Policy::load(path, &limits)?;
        if policy.plugins.iter().any(|e| e.reference.is_some()) {
            // Registry plugins are kept by their component's digest, as
            // the store resolves them (tags too: pruning is no load).
            let store = open_store(cache_dir)?;
            supply::resolve(
                &mut policy.plugins,
                Some(&store),
                crate::policy::Mode::Monitor,
                Some(path),
                limits.plugin_file_size,
            )?;
        }
        for entry in policy.plugins {
            let sha256 = match entry.sha256 {
                Some(pin) => pin,
                None => hex::encode(Sha256::digest(std::fs::read(&entry.path).with_context(
                    || {
                        format!(
                            "policy {}: plugin {} ({})",
                            path.display(),
                            entry.name,
                            entry.path.display()
                        )
                    },
                )?)),
            };
            keep.insert(sha256);
        }
    }
    Ok(keep)
}

/// Parses an age for `--older-than`: a number and a unit, `s`, `m`, `h`,
/// `d` or `w` (`30d`, `12h`).
fn parse_age(value: &str) -> Result<Duration, String> {
    let bad = || format!("`{value}` is not a duration (e.g. 30d, 12h, 90m)");
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// Writes a new plugin crate and says how to build it.
pub fn new(args: &NewArgs) -> Result<u8> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| Path::new(&args.name).to_path_buf());
    scaffold::write(&args.name, &args.hooks, &dir)?;
    let out = format!(
        "created plugin {} in {}\nbuild it: cd {} && cargo build --release --target wasm32-wasip2\n",
        args.name,
        dir.display(),
        dir.display()
    );
    write_stdout(out.as_bytes())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_the_units_of_a_cache() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert!(parse_age("30").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("3y").is_err());
    }

    #[test]
    fn elapsed_times_keep_their_precision() {
        assert_eq!(elapsed(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(elapsed(Duration::from_millis(412)), "412 ms");
        assert_eq!(elapsed(Duration::from_millis(6_600)), "6.6 s");
    }
}
