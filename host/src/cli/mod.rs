//! The command line: clap definitions, and each command turned into calls
//! to the library. Errors get their context here, and their exit code in
//! [`exit_code`].

mod oci;
mod options;
mod plugins;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use sha2::{Digest, Sha256};

use crate::network::Networks;
use crate::policy::audit;
use crate::policy::error::escape;
use crate::policy::file::PluginEntry;
use crate::policy::limits::{parse_duration, parse_size};
use crate::policy::{
    self, Allocation, Entry, Grants, Limits, Mode, OnError, Plugin, PluginError, PluginHost,
    Policy, Report, Source, plugin::default_name,
};
use crate::runtime::{self, Bundle, Runtime};
use crate::spec::{self, isolation::Isolation, rootfs::Rootfs};
pub use oci::RUNTIME_NAME;
use options::ContainerArgs;

/// Exit status when specgate itself fails or a policy refuses the run
/// (podman's convention).
pub const EXIT_FAILURE: u8 = 125;

/// Run containers through a chain of sandboxed WebAssembly policy plugins.
#[derive(Debug, Parser)]
#[command(name = "specgate", version, about)]
pub struct Cli {
    /// Where compiled plugins are cached [default: /var/cache/specgate for
    /// root, $XDG_CACHE_HOME/specgate otherwise].
    #[arg(long, global = true, env = "SPECGATE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile plugins on every load instead of caching them.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// What to log on stderr, as a tracing filter (e.g. `debug`,
    /// `specgate::plugin=info`).
    #[arg(long, global = true, env = "SPECGATE_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `specgate oci ARGS`, with what the environment sets (the cache
    /// directory, the log filter): the binary called as `specgate-runtime`.
    pub fn oci(args: Vec<OsString>) -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Cli {
            cache_dir: var("SPECGATE_CACHE_DIR").map(PathBuf::from),
            no_cache: false,
            log_level: var("SPECGATE_LOG").map(|v| v.to_string_lossy().into_owned()),
            command: Command::Oci { args },
        }
    }
}

/// specgate's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a container, after the policy chain.
    Run(RunArgs),
    /// Print the config.json a run would use, after the policy chain.
    Spec(SpecArgs),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Wait for the run's specgate to end, then remove what it left.
    #[command(hide = true)]
    Guard {
        /// The OCI runtime of the run; none for `--isolation chroot`.
        #[arg(long, value_name = "PATH")]
        runtime: Option<PathBuf>,
        /// The runtime's global flags of the run.
        #[arg(long = "runtime-flag", value_name = "FLAG", allow_hyphen_values = true)]
        runtime_flags: Vec<String>,
        /// The container id.
        id: String,
        /// The bundle.
        bundle: PathBuf,
    },
    /// The container's init under `--isolation chroot`: set up from the
    /// spec on descriptor 4, then exec the command.
    #[command(name = "chroot-init", hide = true)]
    ChrootInit,
    /// Be an OCI runtime in front of the real one, with runc's command line.
    ///
    /// `create`, `run` and `restore` pass the bundle's config.json through
    /// the policy chain, then hand over to the real runtime; `exec` is held
    /// to what the container was allowed; without a policy file these
    /// fail. Other commands go straight to the runtime. The binary called
    /// as `specgate-runtime` is this.
    #[command(disable_help_flag = true)]
    Oci {
        /// runc's global flags, command and its arguments, passed on
        /// unchanged.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "RUNTIME-ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Remove the runtime state and bundles of runs whose specgate died.
    Gc {
        /// The OCI runtime the runs used.
        #[arg(long, default_value = "runc", value_name = "NAME|PATH")]
        runtime: String,
    },
}

/// `specgate plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run the chain on the spec the options give and show, per plugin,
    /// what it changed; runs no container.
    Trace(Box<TraceArgs>),
    /// Show what a plugin is, exports and imports, and what it says it does.
    Inspect {
        /// The plugin's component file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compile plugins into the cache, in parallel, so that the first run
    /// using them does not wait for it.
    Compile(plugins::CompileArgs),
    /// List or prune the compiled-plugin cache.
    #[command(subcommand)]
    Cache(plugins::CacheCommand),
    /// Write a new Rust plugin crate, ready to build.
    New(plugins::NewArgs),
}

/// The plugin chain and its limits, shared by every command that runs it.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// The policy file: the chain of plugins with their pins, settings,
    /// grants and limits [default: /etc/specgate/policy.toml when it
    /// exists; without it there is no default chain, and only the
    /// `--plugin`s given run (specgate-runtime, unlike this, refuses to
    /// start containers without a policy)].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Do not read /etc/specgate/policy.toml.
    #[arg(long, conflicts_with = "policy")]
    pub no_default_policy: bool,

    /// Stop runs the policy refuses (`enforce`), or only log and audit
    /// them as "would deny" (`monitor`) [default: the policy file's, else
    /// enforce].
    #[arg(long, value_enum, value_name = "MODE")]
    pub policy_mode: Option<Mode>,

    /// Append one JSON record per run to FILE [default: the policy
    /// file's `audit-log`].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,

    /// Add a plugin to the chain, after the policy file's (in order).
    #[arg(long = "plugin", value_name = "FILE")]
    pub plugins: Vec<PathBuf>,

    /// Give a plugin a setting: PLUGIN is its file name without extension,
    /// with `_` written `-` (e.g. `drop-capabilities.capabilities=CAP_NET_RAW`).
    #[arg(long = "plugin-setting", value_name = "PLUGIN.KEY=VALUE")]
    pub plugin_settings: Vec<String>,

    /// Wall-time limit of one plugin call, e.g. `1s`, `250ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub plugin_timeout: Option<Duration>,

    /// Linear-memory limit of one plugin, e.g. `64m`, `1g`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub plugin_memory: Option<usize>,
}

/// `specgate spec`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    #[command(flatten)]
    chain: ChainArgs,

    #[command(flatten)]
    container: ContainerArgs,

    /// Write the config.json to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// The command and its arguments [default: sh].
    #[arg(last = true)]
    command: Vec<String>,
}

/// `specgate plugin trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    chain: ChainArgs,

    #[command(flatten)]
    container: ContainerArgs,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// The command and its arguments [default: sh].
    #[arg(last = true)]
    command: Vec<String>,
}

/// `specgate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    chain: ChainArgs,

    #[command(flatten)]
    container: ContainerArgs,

    /// The OCI runtime: a name looked up in PATH, or a path.
    #[arg(long, default_value = "runc", value_name = "NAME|PATH")]
    runtime: String,

    /// A global flag for the runtime (repeatable), e.g. `--debug`.
    #[arg(long = "runtime-flag", value_name = "FLAG", allow_hyphen_values = true)]
    runtime_flags: Vec<String>,

    /// The command and its arguments.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Sets up logging on stderr.
pub fn init_tracing(filter: Option<&str>) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A plain level needs no `EnvFilter`, whose directive parser is a
    // noticeable part of a short run's startup.
    let filter = filter.unwrap_or("warn");
    match filter.parse::<tracing_subscriber::filter::LevelFilter>() {
        Ok(level) => builder.with_max_level(level).init(),
        Err(_) => {
            let filter = tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
            builder.with_env_filter(filter).init();
        }
    }
}

/// Runs a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Run(args) => run_command(&cli, args),
        Command::Guard {
            runtime,
            runtime_flags,
            id,
            bundle,
        } => {
            let runtime = match runtime {
                Some(path) => Some(Runtime::resolve(
                    &path.display().to_string(),
                    runtime_flags.clone(),
                )?),
                None => None,
            };
            runtime::gc::guard(runtime.as_ref(), id, bundle);
            Ok(0)
        }
        Command::ChrootInit => Ok(runtime::chroot::init()),
        Command::Gc { runtime } => {
            let runtime = Runtime::resolve(runtime, runtime::caller_flags()?)?;
            for id in runtime::gc::collect(&runtime::state_dir()?, &runtime) {
                write_stdout(format!("{id}\n").as_bytes())?;
            }
            Ok(0)
        }
        Command::Oci { args } => oci::run(&cli, args),
        Command::Spec(args) => spec_command(&cli, args),
        Command::Plugin(PluginCommand::Inspect { file, json }) => inspect(&cli, file, *json),
        Command::Plugin(PluginCommand::Trace(args)) => trace(&cli, args),
        Command::Plugin(PluginCommand::Compile(args)) => plugins::compile(&cli, args),
        Command::Plugin(PluginCommand::Cache(plugins::CacheCommand::List { json })) => {
            plugins::cache_list(&cli, *json)
        }
        Command::Plugin(PluginCommand::Cache(plugins::CacheCommand::Prune(args))) => {
            plugins::cache_prune(&cli, args)
        }
        Command::Plugin(PluginCommand::New(args)) => plugins::new(args),
    }
}

/// An error as one line: each cause after its context, unless the
/// context's own text already says it (library errors name their source
/// in their message).
pub fn message(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The exit status for an error: 126 or 127 when the container's command
/// could not run, 125 for everything else.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(error) = error.downcast_ref::<runtime::RunError>() {
        return error.status();
    }
    error
        .downcast_ref::<spec::SpecError>()
        .map_or(EXIT_FAILURE, spec::SpecError::status)
}

/// The cache directory the options and the user's identity select.
fn cache_dir(cli: &Cli) -> Option<PathBuf> {
    if cli.no_cache {
        return None;
    }
    if let Some(dir) = &cli.cache_dir {
        return Some(dir.clone());
    }
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/specgate"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("specgate"))
}

/// The default limits of plugins, with the command line's over them.
fn limits(chain: Option<&ChainArgs>) -> Limits {
    let mut limits = Limits::default();
    if let Some(chain) = chain {
        if let Some(timeout) = chain.plugin_timeout {
            limits.call_timeout = timeout;
        }
        if let Some(memory) = chain.plugin_memory {
            limits.memory = memory;
        }
    }
    limits
}

/// How the CLI's plugin instances are allocated: every command
/// instantiates each plugin once, or a few times.
const ALLOCATION: Allocation = Allocation::OnDemand;

fn plugin_host(cli: &Cli, limits: Limits) -> Result<PluginHost> {
    Ok(PluginHost::new(
        cache_dir(cli).as_deref(),
        limits,
        ALLOCATION,
    )?)
}

/// A chain's plugins, loaded, with what the policy gives each.
struct LoadedChain {
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
    /// The policy file's plugins, then those of `--plugin`, with the
    /// settings of `--plugin-setting` over the file's; `beside` runs on
    /// another thread meanwhile when there are plugins to load (else
    /// here, first): work that needs no plugin need not wait for them.
    fn load<R: Send>(
        cli: &Cli,
        args: &ChainArgs,
        beside: impl FnOnce() -> R + Send,
    ) -> Result<(Self, R)> {
        let limits = limits(Some(args));
        let policy_path = match &args.policy {
            Some(path) => Some(path.clone()),
            None if args.no_default_policy => None,
            None => Some(PathBuf::from(policy::file::DEFAULT_PATH)).filter(|p| p.exists()),
        };
        let (policy, digest) = match &policy_path {
            Some(path) => {
                // Read once: the audit record's digest is of the text parsed.
                let text = Policy::read(path)?;
                let digest = audit::PolicyDigest {
                    path: path.display().to_string(),
                    sha256: hex::encode(Sha256::digest(text.as_bytes())),
                };
                (Policy::parse(path, &text, &limits)?, Some(digest))
            }
            None => (Policy::default(), None),
        };
        let mut entries = policy.plugins;
        for path in &args.plugins {
            let name = default_name(path);
            if let Some(other) = entries.iter().find(|e| e.name == name) {
                bail!(
                    "--plugin {}: the chain already has a plugin named `{name}` ({})",
                    path.display(),
                    other.path.display()
                );
            }
            entries.push(PluginEntry {
                name,
                path: path.clone(),
                sha256: None,
                settings: Vec::new(),
                grants: Grants::default(),
                limits: limits.clone(),
                on_error: OnError::Deny,
            });
        }
        for setting in &args.plugin_settings {
            let malformed = || format!("--plugin-setting `{setting}`: expected PLUGIN.KEY=VALUE");
            let (target, value) = setting.split_once('=').with_context(malformed)?;
            let (plugin, key) = target
                .split_once('.')
                .filter(|(p, k)| !p.is_empty() && !k.is_empty())
                .with_context(malformed)?;
            let entry = entries
                .iter_mut()
                .find(|e| e.name == plugin)
                .with_context(|| {
                    format!("--plugin-setting `{setting}`: no plugin named `{plugin}` in the chain")
                })?;
            entry.settings.retain(|(k, _)| k != key);
            entry.settings.push((key.to_string(), value.to_string()));
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
                let loaded = plugin_host(cli, limits).and_then(|host| {
                    let plugins = host.load_all(&sources)?;
                    Ok::<_, anyhow::Error>((host, plugins))
                });
                // Its panic was reported as it happened.
                let beside = beside
                    .join()
                    .expect("the work beside the plugin load panicked");
                (loaded, beside)
            });
            let (host, plugins) = loaded?;
            (Some(host), plugins, beside)
        };
        let chain = LoadedChain {
            host,
            plugins,
            entries,
            mode: args.policy_mode.unwrap_or(policy.mode),
            audit_log: args.audit_log.clone().or(policy.audit_log),
            policy: digest,
            runtime: policy.runtime,
        };
        Ok((chain, beside))
    }

    /// The audit record of a run through this chain, before the chain runs.
    fn record(
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
    fn run_recorded(
        &self,
        spec: &mut oci_spec::runtime::Spec,
        id: &str,
        record: &mut audit::Record,
    ) -> Result<Report, PluginError> {
        let (report, outcome) = match &self.host {
            Some(host) => host.run_chain_reporting(&self.entries(), spec, id, self.mode),
            None => (Report::default(), Ok(())),
        };
        record.add_chain(&self.plugins, &report);
        match outcome {
            Ok(()) => Ok(report),
            Err(error) => {
                record.denial = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Runs the chain over `spec`.
    fn run(&self, spec: &mut oci_spec::runtime::Spec, id: &str) -> Result<Report, PluginError> {
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

/// A container's spec before the policy chain, with the rootfs handle
/// it was built from.
struct Prepared {
    id: String,
    options: spec::Options,
    rootfs: Rootfs,
    built: spec::Built,
}

impl Prepared {
    /// The chain and the spec it will run over, built while the plugins
    /// load.
    fn with_chain(
        cli: &Cli,
        chain: &ChainArgs,
        args: &ContainerArgs,
        command: &[String],
    ) -> Result<(LoadedChain, Self)> {
        let (chain, prepared) = LoadedChain::load(cli, chain, || Self::new(args, command))?;
        Ok((chain, prepared?))
    }

    /// Parses the container options and builds the spec; the rootfs is
    /// opened here, once.
    fn new(args: &ContainerArgs, command: &[String]) -> Result<Self> {
        // Without a command, a spec is printed for `sh`, as `runc spec`
        // does; `run` refuses an empty command before this.
        let command = if command.is_empty() {
            &["sh".to_string()][..]
        } else {
            command
        };
        let options = args.options(command)?;
        let id = match &args.name {
            Some(name) => name.clone(),
            None => new_container_id()?,
        };
        let rootfs = Rootfs::open(options.rootfs.as_deref().unwrap_or(Path::new("/")))?;
        let built = spec::build(&id, &options, &rootfs, &runtime::state_dir()?.join(&id))?;
        Ok(Prepared {
            id,
            options,
            rootfs,
            built,
        })
    }
}

fn spec_command(cli: &Cli, args: &SpecArgs) -> Result<u8> {
    let (chain, Prepared { id, built, .. }) =
        Prepared::with_chain(cli, &args.chain, &args.container, &args.command)?;
    let mut spec = built.spec;
    chain.run(&mut spec, &id)?;
    let json = spec::to_json(&spec)?;
    match &args.output {
        Some(path) => write_file_atomically(path, json.as_bytes())
            .with_context(|| format!("--output {}", path.display()))?,
        None => write_stdout(json.as_bytes())?,
    }
    Ok(0)
}

fn run_command(cli: &Cli, args: &RunArgs) -> Result<u8> {
    if args.command.is_empty() {
        bail!("command must be specified (after `--`)");
    }
    let isolation = args
        .container
        .isolation
        .unwrap_or_else(Isolation::default_for_caller);
    // No OCI runtime at all under chroot isolation.
    let runtime = match isolation {
        Isolation::Chroot => None,
        Isolation::Oci | Isolation::Rootless => {
            let runtime = Runtime::resolve(&args.runtime, args.runtime_flags.clone())?
                .with_flags(runtime::caller_flags()?);
            Some(if isolation == Isolation::Rootless {
                runtime.rootless()
            } else {
                runtime
            })
        }
    };
    if isolation == Isolation::Rootless {
        spec::isolation::check_user_namespaces()?;
    }
    let (chain, prepared) = Prepared::with_chain(cli, &args.chain, &args.container, &args.command)?;
    let mut record = chain.record(
        &prepared.id,
        args.command.clone(),
        prepared
            .options
            .rootfs
            .as_ref()
            .map_or_else(|| "host".to_string(), |r| r.display().to_string()),
        runtime.as_ref().map_or_else(
            || "chroot".to_string(),
            |r| r.program().display().to_string(),
        ),
    );
    // stdin is relayed with -i only, as podman does: a run in the
    // background of a shell must not steal the terminal's input.
    let stdio = runtime::StdioConfig {
        stdin: args.container.interactive,
    };
    let outcome = run_container(
        &chain,
        runtime.as_ref(),
        prepared,
        &args.container,
        stdio,
        &mut record,
    );
    record.end(match &outcome {
        Ok(status) => *status,
        Err(e) => exit_code(e),
    });
    if let Some(log) = &chain.audit_log {
        record
            .append(log)
            .with_context(|| format!("audit log {}", log.display()))?;
    }
    outcome
}

fn run_container(
    chain: &LoadedChain,
    runtime: Option<&Runtime>,
    prepared: Prepared,
    args: &ContainerArgs,
    stdio: runtime::StdioConfig,
    record: &mut audit::Record,
) -> Result<u8> {
    let Prepared {
        id,
        options,
        rootfs,
        built,
    } = prepared;
    let mut spec = built.spec;
    if let Some(process) = spec.process_mut()
        && process.terminal() == Some(true)
    {
        process.set_console_size(runtime::console::our_size());
    }
    let mut report = chain.run_recorded(&mut spec, &id, record)?;
    let pins = std::mem::take(&mut report.pins);
    // The plugins' instances are not needed while the container runs.
    drop(report);
    spec::prepare(&spec, &rootfs)?;
    let networks = cni_networks(&options.namespaces.network, args, &spec)?;
    if runtime.is_none() && !networks.is_empty() {
        bail!(
            "--network: CNI networks are configured between an OCI runtime's create and start; --isolation chroot has no runtime"
        );
    }

    // Made first, so dropped last: the guardian stands down only once
    // the bundle is gone. Started before the bundle is made: a run killed
    // once the bundle exists always has a cleanup (one that finds no
    // bundle does nothing).
    let state_dir = runtime::state_dir()?;
    let _guardian = runtime::gc::Guardian::start(runtime, &id, &state_dir.join(&id))
        .context("cannot start the run's guardian")?;
    let mut bundle = Bundle::create(&state_dir, &id)?;
    // Granted bind sources are mounted as they were checked, before the
    // host's root: they are copied from the namespace the chain ran in.
    let bundle_dir = bundle.dir().to_path_buf();
    for mount_point in runtime::pin::attach(&bundle_dir, "pinned-", &mut spec, &pins)? {
        bundle.track_mount(mount_point);
    }
    let json = spec::to_json(&spec)?;
    record.config_sha256 = Some(hex::encode(Sha256::digest(json.as_bytes())));
    if options.rootfs.is_none() {
        if options.isolation == Isolation::Rootless {
            // The runtime binds the host's root there itself, in the
            // container's user namespace (spec::isolation::bind_host_root).
            bundle.empty_dir("rootfs")?;
        } else {
            let mount_point = bundle.mount_point("rootfs")?;
            runtime::bind_host_root(&mount_point)?;
        }
    }
    for file in &built.files {
        bundle.write_file(&file.name, &file.contents, 0o644)?;
    }
    bundle.write_config(&json)?;
    // The `start` record, once the container can only start: a specgate
    // killed from here on leaves it.
    let mut starting = |joined: &[crate::network::Joined<'_>]| {
        record.time = audit::now();
        record.networks = joined
            .iter()
            .map(|n| audit::NetworkRecord::from_cni(n.name, n.interface, n.result))
            .collect();
        match &chain.audit_log {
            Some(log) => record
                .append(log)
                .map_err(|source| runtime::RunError::Audit {
                    path: log.clone(),
                    source,
                }),
            None => Ok(()),
        }
    };
    Ok(match runtime {
        Some(runtime) => runtime::run(
            runtime,
            &id,
            &bundle,
            &spec,
            stdio,
            &networks,
            &mut starting,
        )?,
        None => {
            starting(&[])?;
            runtime::chroot::run(&bundle, &spec, stdio)?
        }
    })
}

/// The CNI networks the run joins, loaded before anything is made, so
/// that a malformed configuration or an unknown name leaves nothing
/// behind. None when the final spec (after the plugins) gives the
/// container no network namespace of its own to configure.
fn cni_networks(
    network: &spec::namespaces::Network,
    args: &ContainerArgs,
    spec: &oci_spec::runtime::Spec,
) -> Result<Networks> {
    let Some(names) = network.cni_names() else {
        return Ok(Networks::default());
    };
    let own_namespace = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter().any(|ns| {
                ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network && ns.path().is_none()
            })
        });
    if !own_namespace {
        tracing::warn!(
            "--network: the policy left the container no network namespace of its own; no CNI network is configured"
        );
        return Ok(Networks::default());
    }
    let networks = Networks::load(&args.cni_config_dir, &args.cni_plugin_path, names)?;
    if networks.is_empty() {
        tracing::warn!(
            "--network private: no CNI network in {}; the container has only lo",
            args.cni_config_dir.display()
        );
    }
    Ok(networks)
}

fn trace(cli: &Cli, args: &TraceArgs) -> Result<u8> {
    let (chain, Prepared { id, built, .. }) =
        Prepared::with_chain(cli, &args.chain, &args.container, &args.command)?;
    let mut spec = built.spec;
    let report = chain.run(&mut spec, &id)?;
    let out = if args.json {
        let plugins: Vec<serde_json::Value> = chain
            .plugins
            .iter()
            .map(|p| {
                let changes: Vec<audit::ChangeRecord> = report
                    .applied
                    .iter()
                    .filter(|a| a.plugin == p.name())
                    .map(audit::ChangeRecord::from)
                    .collect();
                serde_json::json!({
                    "name": p.name(),
                    "path": p.path(),
                    "sha256": p.sha256(),
                    "hooks": p.hooks().iter().map(|h| h.interface()).collect::<Vec<_>>(),
                    "changes": changes,
                })
            })
            .collect();
        let value = serde_json::json!({
            "plugins": plugins,
            "skipped": report.skipped.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "would_deny": report.would_deny.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        });
        format!("{}\n", serde_json::to_string_pretty(&value)?)
    } else {
        let mut out = String::new();
        for plugin in &chain.plugins {
            // Every line is one line: the changes and errors come escaped
            // from the chain, names and paths are escaped here.
            out.push_str(&format!(
                "plugin {} ({})\n",
                escape(plugin.name()),
                escape(&plugin.path().display().to_string())
            ));
            let mut any = false;
            for applied in report.applied.iter().filter(|a| a.plugin == plugin.name()) {
                any = true;
                let mark = if applied.grant.is_some() { '+' } else { '-' };
                out.push_str(&format!("  {mark} {}: {}", applied.hook, applied.change));
                if let Some(grant) = &applied.grant {
                    out.push_str(&format!(" (granted by {grant})"));
                }
                out.push('\n');
            }
            if !any {
                out.push_str("  (no changes)\n");
            }
        }
        for error in &report.skipped {
            out.push_str(&format!("skipped: {error}\n"));
        }
        for error in &report.would_deny {
            out.push_str(&format!("would deny: {error}\n"));
        }
        out
    };
    write_stdout(out.as_bytes())?;
    Ok(0)
}

fn inspect(cli: &Cli, file: &Path, json: bool) -> Result<u8> {
    let host = plugin_host(cli, limits(None))?;
    let plugin = host.load(&default_name(file), file)?;
    let info = host.describe(&plugin)?;
    let hooks: Vec<&str> = plugin.hooks().iter().map(|h| h.interface()).collect();
    let contract = plugin
        .contract()
        .map(|v| format!("{}@{v}", crate::policy::bindings::PACKAGE))
        .unwrap_or_default();
    let out = if json {
        let value = serde_json::json!({
            "path": plugin.path(),
            "size": plugin.size(),
            "sha256": plugin.sha256(),
            "contract": contract,
            "hooks": hooks,
            "exports": plugin.exports(),
            "imports": plugin.imports(),
            "name": escape(&info.name),
            "version": escape(&info.version),
            "description": escape(&info.description),
        });
        format!("{}\n", serde_json::to_string_pretty(&value)?)
    } else {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
        line("path:", &plugin.path().display().to_string());
        line("size:", &format!("{} bytes", plugin.size()));
        line("sha256:", plugin.sha256());
        line("pin:", &format!("sha256 = \"{}\"", plugin.sha256()));
        line("contract:", &contract);
        line("hooks:", &hooks.join(", "));
        line("imports:", &plugin.imports().join(", "));
        // The plugin's own words: escaped, so that they cannot forge or
        // erase lines.
        line("name:", &escape(&info.name));
        line("version:", &escape(&info.version));
        line("description:", &escape(&info.description));
        out
    };
    write_stdout(out.as_bytes())?;
    Ok(0)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("cannot write to stdout")?),
    }
}

/// Writes a file by renaming a complete temporary file over it, so no
/// reader ever sees half of it.
fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".specgate-")
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(())
}

/// A random 64-hex-digit container id, as podman makes them.
fn new_container_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom for a container id")?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {path}: {source}")]
    struct Named {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_message_is_said_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Named {
            path: "/x".into(),
            source: io(),
        })
        .context("--rootfs /x");
        assert_eq!(
            message(&error),
            format!("--rootfs /x: cannot open /x: {}", io())
        );
        let plain = anyhow::Error::new(io()).context("--output f");
        assert_eq!(message(&plain), format!("--output f: {}", io()));
    }
}
