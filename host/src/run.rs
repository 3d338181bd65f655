//! A container's run, top to bottom: the options make a spec, the chain
//! passes it, the rootfs is prepared, the bundle written, and the OCI
//! runtime (or, under `--isolation chroot`, specgate itself) runs it; the
//! exit status is the container's. `specgate spec` and `plugin trace`
//! stop after the chain.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use sha2::{Digest, Sha256};

use crate::network::{Joined, NetworkError, Networks};
use crate::policy::setup::{ChainError, ChainSetup, LoadedChain};
use crate::policy::{PluginError, Report, audit};
use crate::runtime::bundle::BundleError;
use crate::runtime::pin::PinError;
use crate::runtime::{self, Bundle, NoRuntimeDir, RunError, Runtime, RuntimeError, StdioConfig};
use crate::spec::isolation::{Isolation, RootlessError};
use crate::spec::rootfs::{Rootfs, RootfsError};
use crate::spec::{self, SpecError};

/// Exit status when specgate itself fails or a policy refuses the run
/// (podman's convention).
pub const EXIT_FAILURE: u8 = 125;

/// Errors of a run, a spec or a trace, outside the container itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec could not be built or its rootfs prepared.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The root filesystem could not be opened.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The chain could not be assembled.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A plugin failed or the policy refused the container.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The caller has no private place for runtime state.
    #[error(transparent)]
    NoRuntimeDir(#[from] NoRuntimeDir),
    /// The OCI runtime was not found.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Rootless isolation is not available.
    #[error(transparent)]
    Rootless(#[from] RootlessError),
    /// The CNI networks are misconfigured.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// CNI networks asked for a run without a runtime.
    #[error(
        "--network: CNI networks are configured between an OCI runtime's create and start; --isolation chroot has no runtime"
    )]
    NetworkWithoutRuntime,
    /// The guardian that cleans up after a killed run could not start.
    #[error("cannot start the run's guardian")]
    Guardian(#[source] crate::sys::SysError),
    /// The bundle could not be made.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A granted bind source could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The run's record could not be appended to the audit log.
    #[error("audit log {}", path.display())]
    Audit {
        /// The audit log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random container id could be made.
    #[error("cannot read /dev/urandom for a container id")]
    Id(#[source] std::io::Error),
}

impl Error {
    /// The exit status this error gives: 126 or 127 when the container's
    /// command could not run, else [`EXIT_FAILURE`].
    pub fn status(&self) -> u8 {
        match self {
            Error::Spec(error) => error.status(),
            Error::Run(error) => error.status(),
            _ => EXIT_FAILURE,
        }
    }
}

/// What the container is, before the chain.
#[derive(Debug)]
pub struct Container {
    /// Its id in the runtime; none for a random one.
    pub name: Option<String>,
    /// What the spec is built from.
    pub options: spec::Options,
}

/// The OCI runtime, named as the user gave it.
#[derive(Debug)]
pub struct RuntimeChoice {
    /// A name looked up in PATH, or a path.
    pub name: String,
    /// Its global flags.
    pub flags: Vec<String>,
}

/// Where the CNI networks are configured and their plugins found.
#[derive(Debug)]
pub struct Cni {
    /// The directory of network configurations.
    pub config_dir: PathBuf,
    /// Directories of CNI plugins, separated by `:`.
    pub plugin_path: String,
}

/// A run: the container, the command (as given, for the audit record),
/// and how it runs.
#[derive(Debug)]
pub struct Request {
    /// The container.
    pub container: Container,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The OCI runtime, unused under `--isolation chroot`.
    pub runtime: RuntimeChoice,
    /// The CNI networks' configuration.
    pub cni: Cni,
    /// Relay specgate's stdin to the container.
    pub stdin: bool,
}

/// Runs a container through the chain; returns its exit status. The
/// run's record goes to the chain's audit log twice: at the start, once
/// the container can only start, and at the end, with the status.
pub fn run(setup: &ChainSetup, request: Request) -> Result<u8, Error> {
    let isolation = request.container.options.isolation;
    let runtime = select_runtime(isolation, &request.runtime)?;
    if isolation == Isolation::Rootless {
        spec::isolation::check_user_namespaces()?;
    }
    let (chain, prepared) = prepare(setup, request.container)?;
    let mut record = chain.record(
        &prepared.id,
        request.command,
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
    let stdio = StdioConfig {
        stdin: request.stdin,
    };
    let outcome = run_prepared(
        &chain,
        runtime.as_ref(),
        prepared,
        &request.cni,
        stdio,
        &mut record,
    );
    record.end(match &outcome {
        Ok(status) => *status,
        Err(e) => e.status(),
    });
    if let Some(log) = chain.audit_log() {
        record.append(log).map_err(|source| Error::Audit {
            path: log.to_path_buf(),
            source,
        })?;
    }
    outcome
}

/// The spec a run would use, after the chain.
pub fn spec(setup: &ChainSetup, container: Container) -> Result<Spec, Error> {
    let (chain, Prepared { id, built, .. }) = prepare(setup, container)?;
    let mut spec = built.spec;
    chain.run(&mut spec, &id)?;
    Ok(spec)
}

/// What the chain did to a container's spec, per plugin.
#[derive(Debug)]
pub struct Trace {
    /// The chain that ran.
    pub chain: LoadedChain,
    /// What it did, up to a refusal or failure.
    pub report: Report,
    /// The plugin's refusal or failure that ended the chain, if one did.
    pub refusal: Option<PluginError>,
}

/// Runs the chain over a container's spec; runs no container.
pub fn trace(setup: &ChainSetup, container: Container) -> Result<Trace, Error> {
    let (chain, Prepared { id, built, .. }) = prepare(setup, container)?;
    let mut spec = built.spec;
    let (report, outcome) = chain.run_reporting(&mut spec, &id);
    Ok(Trace {
        chain,
        report,
        refusal: outcome.err(),
    })
}

/// The OCI runtime of a run; none under chroot isolation.
fn select_runtime(isolation: Isolation, choice: &RuntimeChoice) -> Result<Option<Runtime>, Error> {
    Ok(match isolation {
        Isolation::Chroot => None,
        Isolation::Oci | Isolation::Rootless => {
            let runtime = Runtime::resolve(&choice.name, choice.flags.clone())?
                .with_flags(runtime::caller_flags()?);
            Some(if isolation == Isolation::Rootless {
                runtime.rootless()
            } else {
                runtime
            })
        }
    })
}

/// A container's spec before the policy chain, with the rootfs handle
/// it was built from.
struct Prepared {
    id: String,
    /// Where the run's bundle goes: the spec names files in it.
    state_dir: PathBuf,
    options: spec::Options,
    rootfs: Rootfs,
    built: spec::Built,
}

/// The chain and the spec it will run over, built while the plugins
/// load; the rootfs is opened here, once.
fn prepare(setup: &ChainSetup, container: Container) -> Result<(LoadedChain, Prepared), Error> {
    let (chain, prepared) = setup.load(|| {
        let Container { name, options } = container;
        let id = match name {
            Some(name) => name,
            None => new_container_id()?,
        };
        let rootfs = Rootfs::open(options.rootfs.as_deref().unwrap_or(Path::new("/")))?;
        let state_dir = runtime::state_dir()?;
        let built = spec::build(&id, &options, &rootfs, &state_dir.join(&id))?;
        Ok::<_, Error>(Prepared {
            id,
            state_dir,
            options,
            rootfs,
            built,
        })
    })?;
    Ok((chain, prepared?))
}

/// From the chain to the exit status.
fn run_prepared(
    chain: &LoadedChain,
    runtime: Option<&Runtime>,
    prepared: Prepared,
    cni: &Cni,
    stdio: StdioConfig,
    record: &mut audit::Record,
) -> Result<u8, Error> {
    let Prepared {
        id,
        state_dir,
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
    let networks = cni_networks(&options.namespaces.network, cni, &spec)?;
    if runtime.is_none() && !networks.is_empty() {
        return Err(Error::NetworkWithoutRuntime);
    }

    // Made first, so dropped last: the guardian stands down only once
    // the bundle is gone. Started before the bundle is made: a run killed
    // once the bundle exists always has a cleanup (one that finds no
    // bundle does nothing).
    let _guardian = runtime::gc::Guardian::start(runtime, &id, &state_dir.join(&id))
        .map_err(Error::Guardian)?;
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
    let mut starting = |joined: &[Joined<'_>]| {
        record.time = audit::now();
        record.networks = joined
            .iter()
            .map(|n| audit::NetworkRecord::from_cni(n.name, n.interface, n.result))
            .collect();
        match chain.audit_log() {
            Some(log) => record.append(log).map_err(|source| RunError::Audit {
                path: log.to_path_buf(),
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
    cni: &Cni,
    spec: &Spec,
) -> Result<Networks, NetworkError> {
    let Some(names) = network.cni_names() else {
        return Ok(Networks::default());
    };
    let own_namespace = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none())
        });
    if !own_namespace {
        tracing::warn!(
            "--network: the policy left the container no network namespace of its own; no CNI network is configured"
        );
        return Ok(Networks::default());
    }
    let networks = Networks::load(&cni.config_dir, &cni.plugin_path, names)?;
    if networks.is_empty() {
        tracing::warn!(
            "--network private: no CNI network in {}; the container has only lo",
            cni.config_dir.display()
        );
    }
    Ok(networks)
}

/// A random 64-hex-digit container id, as podman makes them.
fn new_container_id() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(Error::Id)?;
    Ok(hex::encode(bytes))
}
