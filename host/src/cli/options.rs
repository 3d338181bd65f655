//! The container options shared by `run`, `spec` and `plugin trace`,
//! with podman's names; each value is parsed by its spec module, so a
//! malformed one fails before anything is touched, naming the flag.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::spec::Options;
use crate::spec::caps::CapArg;
use crate::spec::env::{self, EnvArg};
use crate::spec::isolation::Isolation;
use crate::spec::mounts::{HostEntry, MountArg, MountOptions, Tmpfs, Volume};
use crate::spec::namespaces::{IdMap, Mode, NamespaceOptions, Network, UserNs};
use crate::spec::resources::{CpuSet, Cpus, ResourceOptions, Swap, Ulimit};
use crate::spec::security::SecurityOpt;

/// What the container is: its root, process, namespaces, mounts, limits
/// and security.
#[derive(Debug, Args)]
#[command(next_help_heading = "Container options")]
pub struct ContainerArgs {
    /// The container's root filesystem [default: the host's `/`, bound
    /// read-only, with fresh /proc, /dev, /sys and tmpfs on /tmp, /run and
    /// /var/tmp].
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,

    /// The container's id in the runtime [default: random].
    #[arg(long, value_name = "NAME", value_parser = container_name)]
    pub name: Option<String>,

    /// Set an environment variable: KEY=VALUE, KEY (the host's value) or
    /// PREFIX* (the host's variables with that prefix).
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<EnvArg>,

    /// Read environment variables from FILE (one KEY=VALUE per line),
    /// before those of --env.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,

    /// The working directory, created in the rootfs when missing
    /// [default: /].
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// The user and group, names (from the rootfs's /etc/passwd and
    /// /etc/group) or numbers.
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,

    /// Add a capability (any case, with or without CAP_, or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<CapArg>,

    /// Drop a capability (any case, with or without CAP_, or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<CapArg>,

    /// The network namespace: host, none, private, ns:PATH or named
    /// networks NAME[,NAME]. private joins every CNI network of
    /// --cni-config-dir, NAME those named [default: a namespace with only
    /// lo, as none].
    #[arg(long, visible_alias = "net", value_name = "MODE")]
    pub network: Option<Network>,

    /// The directory of CNI network configurations (*.conf, *.conflist).
    #[arg(long, value_name = "DIR", default_value = crate::network::DEFAULT_CONFIG_DIR)]
    pub cni_config_dir: PathBuf,

    /// The directories, separated by `:`, where CNI plugins are found.
    #[arg(long, value_name = "PATH", default_value = crate::network::DEFAULT_PLUGIN_PATH)]
    pub cni_plugin_path: String,

    /// The PID namespace: host, private or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub pid: Option<Mode>,

    /// The IPC namespace: host, private or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<Mode>,

    /// The UTS namespace: host, private or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub uts: Option<Mode>,

    /// The cgroup namespace: host, private or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub cgroupns: Option<Mode>,

    /// The user namespace: host or private.
    #[arg(long, value_name = "MODE")]
    pub userns: Option<UserNs>,

    /// Map container uids to host uids (implies a user namespace).
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub uidmap: Vec<IdMap>,

    /// Map container gids to host gids (implies a user namespace).
    #[arg(long, value_name = "CONTAINER:HOST:SIZE")]
    pub gidmap: Vec<IdMap>,

    /// The container's hostname [default: the short container id].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Bind-mount a host path.
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:OPTS]")]
    pub volumes: Vec<Volume>,

    /// Add a mount: type=bind|tmpfs,source=...,destination=...[,ro,...].
    #[arg(long = "mount", value_name = "type=TYPE,...")]
    pub mounts: Vec<MountArg>,

    /// Mount a tmpfs.
    #[arg(long, value_name = "DST[:OPTS]")]
    pub tmpfs: Vec<Tmpfs>,

    /// The size of /dev/shm, e.g. 64m.
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    pub shm_size: Option<u64>,

    /// Do not give the container the host's /etc/hosts.
    #[arg(long)]
    pub no_hosts: bool,

    /// Add a line to the container's /etc/hosts.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<HostEntry>,

    /// A process limit, e.g. nofile=1024:2048.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<Ulimit>,

    /// The memory limit, e.g. 512m.
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    pub memory: Option<u64>,

    /// Memory plus swap, e.g. 1g, or -1 for unlimited swap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<Swap>,

    /// How many CPUs the container may use, e.g. 1.5.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<Cpus>,

    /// The relative CPU weight.
    #[arg(short = 'c', long, value_name = "SHARES")]
    pub cpu_shares: Option<u64>,

    /// The CPUs the container may run on, e.g. 0-3,6.
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<CpuSet>,

    /// The most processes the container may have (0 or -1: no limit).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,

    /// The cgroup the container's cgroup is made under.
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,

    /// A security option: no-new-privileges, seccomp=unconfined|FILE,
    /// apparmor=PROFILE, label=..., mask=PATHS, unmask=ALL|PATHS.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opts: Vec<SecurityOpt>,

    /// Give the container a terminal [default: when stdin, stdout and
    /// stderr all are terminals].
    #[arg(short = 't', long, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub tty: Option<bool>,

    /// Relay stdin to the container (without it the container's stdin is
    /// /dev/null, as in podman).
    #[arg(short = 'i', long)]
    pub interactive: bool,

    /// Add an annotation to the spec (plugins see them).
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = annotation)]
    pub annotations: Vec<(String, String)>,

    /// How to run: oci, rootless or chroot [default: oci for root,
    /// rootless otherwise].
    #[arg(long, value_enum, value_name = "ISOLATION")]
    pub isolation: Option<Isolation>,
}

fn annotation(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// A runtime container id: what runc accepts.
fn container_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 1024
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if valid {
        Ok(value.to_string())
    } else {
        Err("expected letters, digits, `_`, `+`, `-` and `.`".into())
    }
}

impl ContainerArgs {
    /// The spec options these flags give, for `command`; env files are
    /// read here.
    pub fn options(&self, command: &[String]) -> Result<Options> {
        let mut env = Vec::new();
        for file in &self.env_files {
            env.extend(env::read_env_file(file)?);
        }
        env.extend(self.env.iter().cloned());
        let terminal = self.tty.unwrap_or_else(|| {
            std::io::stdin().is_terminal()
                && std::io::stdout().is_terminal()
                && std::io::stderr().is_terminal()
        });
        // Absolute, as config.json's root.path must be for a bundle
        // elsewhere.
        let rootfs = match &self.rootfs {
            Some(path) => Some(
                std::path::absolute(path)
                    .with_context(|| format!("--rootfs {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Options {
            command: command.to_vec(),
            rootfs,
            read_only: self.read_only,
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            namespaces: NamespaceOptions {
                network: self.network.clone().unwrap_or_default(),
                pid: self.pid.clone().unwrap_or_default(),
                ipc: self.ipc.clone().unwrap_or_default(),
                uts: self.uts.clone().unwrap_or_default(),
                cgroup: self.cgroupns.clone().unwrap_or_default(),
                user: self.userns.unwrap_or_default(),
                uid_maps: self.uidmap.clone(),
                gid_maps: self.gidmap.clone(),
                hostname: self.hostname.clone(),
            },
            mounts: MountOptions {
                volumes: self.volumes.clone(),
                mounts: self.mounts.clone(),
                tmpfs: self.tmpfs.clone(),
                shm_size: self.shm_size,
                no_hosts: self.no_hosts,
                add_hosts: self.add_hosts.clone(),
            },
            resources: ResourceOptions {
                ulimits: self.ulimits.clone(),
                memory: self.memory,
                memory_swap: self.memory_swap,
                cpus: self.cpus,
                cpu_shares: self.cpu_shares,
                cpuset_cpus: self.cpuset_cpus.clone(),
                pids_limit: self.pids_limit,
                cgroup_parent: self.cgroup_parent.clone(),
            },
            security: self.security_opts.clone(),
            terminal,
            annotations: self.annotations.clone(),
            isolation: self.isolation.unwrap_or_else(Isolation::default_for_caller),
        })
    }
}
