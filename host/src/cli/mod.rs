//! The command line: clap definitions, and each command turned into calls
//! to the library. Errors get their context here, and their exit code in
//! [`exit_code`].

mod oci;
mod options;
mod output;
mod plugins;
mod render;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::policy::Mode;
use crate::policy::limits::{parse_duration, parse_size};
use crate::policy::setup::{self, ChainSetup, PolicySource};
use crate::run::{self, Container};
use crate::runtime::{self, Runtime};
use crate::spec;
pub use oci::RUNTIME_NAME;
use options::ContainerArgs;
use output::{write_file_atomically, write_stdout};

pub use run::EXIT_FAILURE;

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
    #[command(name = runtime::chroot::INIT_COMMAND, hide = true)]
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
    ///
    /// Its imports, exports and hooks are read from the file without
    /// compiling it; `describe()` runs when the plugin is in the cache,
    /// or with `--compile`.
    Inspect {
        /// The plugin's component file, or the reference of a plugin in
        /// the plugin store (as pulled), whose digest, annotations and
        /// verified signatures are shown too.
        #[arg(value_name = "FILE|REF")]
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Compile the plugin into the cache if it is not there, to run its
        /// `describe()`.
        #[arg(long)]
        compile: bool,
    },
    /// Compile plugins into the cache, in parallel, so that the first run
    /// using them does not wait for it.
    Compile(plugins::CompileArgs),
    /// List or prune the compiled-plugin cache.
    #[command(subcommand)]
    Cache(plugins::CacheCommand),
    /// Write a new Rust plugin crate, ready to build.
    New(plugins::NewArgs),
    /// Push a plugin to an OCI registry as a Wasm artifact; prints the
    /// reference with its digest, to pin in a policy.
    Push(plugins::PushArgs),
    /// Pull a plugin from an OCI registry into the plugin store.
    Pull(plugins::PullArgs),
    /// Sign a plugin file (FILE.sig) or a plugin in a registry, as cosign
    /// does.
    Sign(plugins::SignArgs),
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
        Command::Oci { args } => oci::run(cache_dir(&cli), args),
        Command::Spec(args) => spec_command(&cli, args),
        Command::Plugin(PluginCommand::Inspect {
            file,
            json,
            compile,
        }) => inspect(&cli, file, *json, *compile),
        Command::Plugin(PluginCommand::Trace(args)) => trace(&cli, args),
        Command::Plugin(PluginCommand::Compile(args)) => plugins::compile(cache_dir(&cli), args),
        Command::Plugin(PluginCommand::Cache(plugins::CacheCommand::List { json })) => {
            plugins::cache_list(cache_dir(&cli), *json)
        }
        Command::Plugin(PluginCommand::Cache(plugins::CacheCommand::Prune(args))) => {
            plugins::cache_prune(cache_dir(&cli), args)
        }
        Command::Plugin(PluginCommand::New(args)) => plugins::new(args),
        Command::Plugin(PluginCommand::Push(args)) => plugins::push(args),
        Command::Plugin(PluginCommand::Pull(args)) => plugins::pull(cache_dir(&cli), args),
        Command::Plugin(PluginCommand::Sign(args)) => plugins::sign(args),
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
    if let Some(error) = error.downcast_ref::<run::Error>() {
        return error.status();
    }
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
    cli.cache_dir.clone().or_else(setup::default_cache_dir)
}

impl ChainArgs {
    /// The chain these options assemble.
    fn setup(&self, cli: &Cli) -> ChainSetup {
        let policy = match &self.policy {
            Some(path) => PolicySource::File(path.clone()),
            None if self.no_default_policy => PolicySource::None,
            None => PolicySource::Default,
        };
        let mut setup = ChainSetup::new(policy, cache_dir(cli));
        setup.mode = self.policy_mode;
        setup.audit_log.clone_from(&self.audit_log);
        setup.plugins.clone_from(&self.plugins);
        setup.plugin_settings.clone_from(&self.plugin_settings);
        if let Some(timeout) = self.plugin_timeout {
            setup.limits.call_timeout = timeout;
        }
        if let Some(memory) = self.plugin_memory {
            setup.limits.memory = memory;
        }
        setup
    }
}

/// The container the options describe, running `command` (`sh` when
/// empty, as `runc spec` prints; `run` refuses an empty command first).
fn container(args: &ContainerArgs, command: &[String]) -> Result<Container> {
    let command = if command.is_empty() {
        &["sh".to_string()][..]
    } else {
        command
    };
    Ok(Container {
        name: args.name.clone(),
        options: args.options(command)?,
    })
}

fn spec_command(cli: &Cli, args: &SpecArgs) -> Result<u8> {
    let container = container(&args.container, &args.command)?;
    let spec = run::spec(&args.chain.setup(cli), container)?;
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
    let request = run::Request {
        container: container(&args.container, &args.command)?,
        command: args.command.clone(),
        runtime: run::RuntimeChoice {
            name: args.runtime.clone(),
            flags: args.runtime_flags.clone(),
        },
        cni: run::Cni {
            config_dir: args.container.cni_config_dir.clone(),
            plugin_path: args.container.cni_plugin_path.clone(),
        },
        stdin: args.container.interactive,
    };
    Ok(run::run(&args.chain.setup(cli), request)?)
}

fn trace(cli: &Cli, args: &TraceArgs) -> Result<u8> {
    let container = container(&args.container, &args.command)?;
    let mut trace = run::trace(&args.chain.setup(cli), container)?;
    let out = if args.json {
        render::trace_json(&trace)?
    } else {
        render::trace_text(&trace)
    };
    write_stdout(out.as_bytes())?;
    // What the plugins did is printed; the refusal also fails the command,
    // as it would the run.
    match trace.refusal.take() {
        Some(refusal) => Err(run::Error::from(refusal).into()),
        None => Ok(0),
    }
}

fn inspect(cli: &Cli, file: &Path, json: bool, compile: bool) -> Result<u8> {
    // Not a file but a reference: the plugin as the store has it.
    let stored = match file.to_str() {
        Some(text) if !file.exists() && crate::policy::registry::PluginRef::parse(text).is_ok() => {
            Some(plugins::describe(cache_dir(cli).as_deref(), text)?)
        }
        _ => None,
    };
    let file = stored.as_ref().map_or(file, |d| d.path.as_path());
    let inspection = setup::inspect(cache_dir(cli).as_deref(), file, compile)?;
    let out = if json {
        let text = render::inspection_json(&inspection)?;
        match &stored {
            Some(described) => plugins::with_artifact_json(&text, described)?,
            None => text,
        }
    } else {
        let mut text = render::inspection_text(&inspection);
        if let Some(described) = &stored {
            text.push_str(&plugins::artifact_text(described));
        }
        text
    };
    write_stdout(out.as_bytes())?;
    Ok(0)
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
