//! The container's OCI runtime spec: defaults, and the user's options
//! applied to them, in the order of buildah's run. Functions over
//! [`oci_spec::runtime::Spec`]; the rootfs is read only through the
//! [`rootfs::Rootfs`] handle.

pub mod caps;
pub mod env;
pub mod isolation;
pub mod mounts;
pub mod namespaces;
pub mod path;
pub mod resources;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod subids;
pub mod user;

mod template;

pub use template::{DEFAULT_PATH, default_spec, set_rootfs, use_host_rootfs};

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use caps::CapArg;
use env::EnvArg;
use isolation::Isolation;
use mounts::{BundleFile, MountOptions};
use namespaces::NamespaceOptions;
use resources::ResourceOptions;
use rootfs::Rootfs;
use security::SecurityOpt;

/// Errors building or writing a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec could not be turned into JSON.
    #[error("cannot serialise the spec: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The root filesystem could not be used.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// The user could not be resolved.
    #[error(transparent)]
    User(#[from] user::UserError),
    /// A capability is both added and dropped.
    #[error(transparent)]
    Caps(#[from] caps::CapConflict),
    /// Namespace options contradict each other.
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    /// Resource options contradict each other.
    #[error(transparent)]
    Resource(#[from] resources::ResourceError),
    /// A security option could not be applied.
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    /// A mount could not be set up.
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    /// A rootless run could not be prepared.
    #[error(transparent)]
    Rootless(#[from] isolation::RootlessError),
}

impl SpecError {
    /// The exit status this error gives: 127 when the command is not
    /// found in the rootfs, 126 when it cannot be executed, else 125.
    pub fn status(&self) -> u8 {
        match self {
            SpecError::Rootfs(rootfs::RootfsError::NotFound { .. }) => 127,
            SpecError::Rootfs(rootfs::RootfsError::NotExecutable { .. }) => 126,
            _ => 125,
        }
    }
}

/// Everything the user asked of the container.
#[derive(Debug, Clone)]
pub struct Options {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `--rootfs`; `None` is the host's `/`, read-only.
    pub rootfs: Option<PathBuf>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--env-file` then `--env`, in order.
    pub env: Vec<EnvArg>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--cap-add`.
    pub cap_add: Vec<CapArg>,
    /// `--cap-drop`.
    pub cap_drop: Vec<CapArg>,
    /// The namespace options.
    pub namespaces: NamespaceOptions,
    /// The mount options.
    pub mounts: MountOptions,
    /// The resource options.
    pub resources: ResourceOptions,
    /// `--security-opt`, in order.
    pub security: Vec<SecurityOpt>,
    /// Whether the process gets a terminal.
    pub terminal: bool,
    /// `--annotation`.
    pub annotations: Vec<(String, String)>,
    /// `--isolation`.
    pub isolation: Isolation,
}

/// A built spec, and the files the bundle must hold for it.
#[derive(Debug)]
pub struct Built {
    /// The spec, before the policy chain.
    pub spec: Spec,
    /// Files to write into the bundle directory (hosts, resolv.conf).
    pub files: Vec<BundleFile>,
}

/// Builds the spec of container `id` from `options`, reading the
/// rootfs's /etc/passwd and /etc/group through `rootfs`, with bundle
/// files bound from `bundle_dir`. Creates nothing: [`prepare`] does, once
/// the policy has accepted the spec.
///
/// The order is buildah's: namespaces before the environment (HOSTNAME),
/// the user before capabilities (a user other than root keeps only the
/// bounding set), capabilities before seccomp (some system calls are
/// allowed only with some capabilities), namespaces before mounts (what
/// the host shares changes the default mounts).
pub fn build(
    id: &str,
    options: &Options,
    rootfs: &Rootfs,
    bundle_dir: &Path,
) -> Result<Built, SpecError> {
    let mut spec = default_spec(id, &options.command);
    match &options.rootfs {
        Some(path) => set_rootfs(&mut spec, path, options.read_only),
        None => use_host_rootfs(&mut spec),
    }
    let mut namespace_options = options.namespaces.clone();
    options.isolation.force_namespaces(&mut namespace_options);
    namespaces::apply(&mut spec, &namespace_options, id)?;
    if options.isolation == Isolation::Rootless {
        isolation::set_id_maps(&mut spec, &namespace_options)?;
    }
    env::apply(&mut spec, &options.env, &env::host_env(), options.terminal);

    let workdir = options
        .workdir
        .as_deref()
        .unwrap_or(rootfs::DEFAULT_WORKDIR);
    if !workdir.starts_with('/') {
        return Err(rootfs::RootfsError::RelativeWorkdir {
            path: workdir.to_string(),
        }
        .into());
    }
    let user = user::resolve(rootfs, options.user.as_deref().unwrap_or(""))?;
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(options.terminal));
        process.set_cwd(workdir.into());
        let mut caps = process.capabilities().clone().unwrap_or_default();
        caps::apply(
            &mut caps,
            &options.cap_add,
            &options.cap_drop,
            user.uid == 0,
        )?;
        process.set_capabilities(Some(caps));
    }
    user::apply(&mut spec, &user);
    resources::apply(&mut spec, &options.resources, id)?;
    security::apply(&mut spec, &options.security)?;
    let files = mounts::apply(&mut spec, &options.mounts, bundle_dir)?;
    if options.isolation == Isolation::Rootless {
        isolation::rootless_changes(&mut spec);
        if options.rootfs.is_none() {
            isolation::bind_host_root(&mut spec);
        }
    }
    if !options.annotations.is_empty() {
        let annotations = spec.annotations_mut().get_or_insert_default();
        for (key, value) in &options.annotations {
            annotations.insert(key.clone(), value.clone());
        }
    }
    Ok(Built { spec, files })
}

/// Makes the rootfs ready for the spec the policy accepted: the working
/// directory exists (created through the rootfs handle when missing; on
/// the host's `/` a missing one is an error) and the command can be
/// executed there, so that a missing command fails (127) before any
/// container exists.
pub fn prepare(spec: &Spec, rootfs: &Rootfs) -> Result<(), SpecError> {
    rootfs::create_workdir(spec, rootfs)?;
    rootfs::check_command(spec, rootfs)?;
    Ok(())
}

/// The spec as config.json: pretty-printed, with capability lists sorted
/// so that the same spec always gives the same bytes (and digest).
pub fn to_json(spec: &Spec) -> Result<String, SpecError> {
    Ok(template::config_json(spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_has_podmans_capabilities_only_where_they_belong() {
        let spec = default_spec("0123456789abcdef", &["/bin/true".into()]);
        let caps = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
            .unwrap_or_default();
        assert_eq!(caps::names(&caps, caps::CapSet::Bounding).len(), 11);
        assert!(caps::names(&caps, caps::CapSet::Inheritable).is_empty());
        assert!(caps::names(&caps, caps::CapSet::Ambient).is_empty());
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
    }

    #[test]
    fn json_is_deterministic() {
        let spec = default_spec("id", &["sh".into()]);
        let a = to_json(&spec).unwrap_or_default();
        let b = to_json(&spec.clone()).unwrap_or_default();
        assert_eq!(a, b);
        assert!(a.contains("\"CAP_CHOWN\""));
    }
}
