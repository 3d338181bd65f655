//! Process limits and cgroup resources: `--ulimit`, `--memory`,
//! `--memory-swap`, `--cpus`, `--cpu-shares`, `--cpuset-cpus`,
//! `--pids-limit`, `--cgroup-parent`.

use std::str::FromStr;

use nix::sys::resource::{Resource, getrlimit};
use oci_spec::runtime::{
    LinuxCpu, LinuxPids, LinuxResources, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Spec,
};

/// The CFS period `--cpus` is expressed in (podman's), in microseconds.
const CPU_PERIOD: u64 = 100_000;

/// podman's default RLIMIT_NOFILE and RLIMIT_NPROC, before clamping.
const DEFAULT_NOFILE: u64 = 1_048_576;
const DEFAULT_NPROC: u64 = 4_194_304;

/// The names `--ulimit` knows, with their rlimits.
const ULIMITS: [(&str, PosixRlimitType, Resource); 16] = [
    ("as", PosixRlimitType::RlimitAs, Resource::RLIMIT_AS),
    ("core", PosixRlimitType::RlimitCore, Resource::RLIMIT_CORE),
    ("cpu", PosixRlimitType::RlimitCpu, Resource::RLIMIT_CPU),
    ("data", PosixRlimitType::RlimitData, Resource::RLIMIT_DATA),
    (
        "fsize",
        PosixRlimitType::RlimitFsize,
        Resource::RLIMIT_FSIZE,
    ),
    (
        "locks",
        PosixRlimitType::RlimitLocks,
        Resource::RLIMIT_LOCKS,
    ),
    (
        "memlock",
        PosixRlimitType::RlimitMemlock,
        Resource::RLIMIT_MEMLOCK,
    ),
    (
        "msgqueue",
        PosixRlimitType::RlimitMsgqueue,
        Resource::RLIMIT_MSGQUEUE,
    ),
    ("nice", PosixRlimitType::RlimitNice, Resource::RLIMIT_NICE),
    (
        "nofile",
        PosixRlimitType::RlimitNofile,
        Resource::RLIMIT_NOFILE,
    ),
    (
        "nproc",
        PosixRlimitType::RlimitNproc,
        Resource::RLIMIT_NPROC,
    ),
    ("rss", PosixRlimitType::RlimitRss, Resource::RLIMIT_RSS),
    (
        "rtprio",
        PosixRlimitType::RlimitRtprio,
        Resource::RLIMIT_RTPRIO,
    ),
    (
        "rttime",
        PosixRlimitType::RlimitRttime,
        Resource::RLIMIT_RTTIME,
    ),
    (
        "sigpending",
        PosixRlimitType::RlimitSigpending,
        Resource::RLIMIT_SIGPENDING,
    ),
    (
        "stack",
        PosixRlimitType::RlimitStack,
        Resource::RLIMIT_STACK,
    ),
];

/// One `--ulimit NAME=SOFT[:HARD]` value; `-1` or `unlimited` is no
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// The rlimit.
    pub typ: PosixRlimitType,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

impl FromStr for Ulimit {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (name, limits) = value.split_once('=').ok_or("expected NAME=SOFT[:HARD]")?;
        let name = name.trim().to_ascii_lowercase();
        let name = name.strip_prefix("rlimit_").unwrap_or(&name);
        let (_, typ, _) = ULIMITS
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| format!("unknown limit `{name}`"))?;
        let number = |s: &str| match s {
            "-1" | "unlimited" => Ok(u64::MAX),
            _ => s
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a number, -1 or unlimited")),
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => {
                let both = number(limits)?;
                (both, both)
            }
        };
        if soft > hard {
            return Err(format!(
                "the soft limit {soft} is above the hard limit {hard}"
            ));
        }
        Ok(Ulimit {
            typ: *typ,
            soft,
            hard,
        })
    }
}

/// `--cpus`: a positive number of CPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

impl FromStr for Cpus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 => Ok(Cpus(n)),
            _ => Err("expected a number of CPUs above 0, e.g. 1.5".into()),
        }
    }
}

/// `--cpuset-cpus`: a CPU list such as `0-3,6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(pub String);

impl FromStr for CpuSet {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = !value.is_empty()
            && value.split(',').all(|range| {
                let mut ends = range.splitn(2, '-').map(|n| n.parse::<u32>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(_)), None) => true,
                    (Some(Ok(a)), Some(Ok(b))) => a <= b,
                    _ => false,
                }
            });
        if valid {
            Ok(CpuSet(value.to_string()))
        } else {
            Err("expected a CPU list such as 0-3,6".into())
        }
    }
}

/// `--memory-swap`: memory plus swap in bytes, or -1 for unlimited swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// No limit on swap.
    Unlimited,
    /// Memory plus swap, in bytes.
    Bytes(u64),
}

impl FromStr for Swap {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "-1" {
            return Ok(Swap::Unlimited);
        }
        crate::units::parse_size(value)
            .map(Swap::Bytes)
            .map_err(|e| format!("{e}, or -1"))
    }
}

/// The resource options of a run.
#[derive(Debug, Clone, Default)]
pub struct ResourceOptions {
    /// `--ulimit`, in order (a later one for the same name wins).
    pub ulimits: Vec<Ulimit>,
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`.
    pub memory_swap: Option<Swap>,
    /// `--cpus`.
    pub cpus: Option<Cpus>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<CpuSet>,
    /// `--pids-limit`: 0 or -1 for no limit.
    pub pids_limit: Option<i64>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<String>,
}

/// Errors combining resource options.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// `--memory-swap` below `--memory`, or without it.
    #[error("--memory-swap {swap}: must be at least --memory ({memory}) and needs --memory")]
    Swap {
        /// The swap value.
        swap: u64,
        /// The memory value (0 when absent).
        memory: u64,
    },
    /// `--cgroup-parent` is not an absolute cgroup path.
    #[error("--cgroup-parent {0}: expected an absolute cgroup path such as /specgate")]
    CgroupParent(String),
}

/// Sets the rlimits and cgroup resources. The default RLIMIT_NOFILE and
/// RLIMIT_NPROC are podman's, clamped to specgate's own hard limits: the
/// runtime cannot raise a hard limit without CAP_SYS_RESOURCE on the host,
/// and a default must never make a container fail to start.
pub fn apply(spec: &mut Spec, options: &ResourceOptions, id: &str) -> Result<(), ResourceError> {
    let mut rlimits: Vec<PosixRlimit> = Vec::new();
    let mut set = |typ: PosixRlimitType, soft: u64, hard: u64| {
        rlimits.retain(|r| r.typ() != typ);
        if let Ok(r) = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
        {
            rlimits.push(r);
        }
    };
    for (typ, resource, default) in [
        (
            PosixRlimitType::RlimitNofile,
            Resource::RLIMIT_NOFILE,
            DEFAULT_NOFILE,
        ),
        (
            PosixRlimitType::RlimitNproc,
            Resource::RLIMIT_NPROC,
            DEFAULT_NPROC,
        ),
    ] {
        let limit = getrlimit(resource).map_or(default, |(_, hard)| default.min(hard));
        set(typ, limit, limit);
    }
    for ulimit in &options.ulimits {
        set(ulimit.typ, ulimit.soft, ulimit.hard);
    }
    if let Some(process) = spec.process_mut() {
        process.set_rlimits(Some(rlimits));
    }

    let mut resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if options.memory.is_some() || options.memory_swap.is_some() {
        let mut memory = resources.memory().unwrap_or_default();
        memory.set_limit(options.memory.map(|m| m as i64));
        match options.memory_swap {
            Some(Swap::Unlimited) => {
                memory.set_swap(Some(-1));
            }
            Some(Swap::Bytes(swap)) => {
                let limit = options.memory.unwrap_or(0);
                if options.memory.is_none() || swap < limit {
                    return Err(ResourceError::Swap {
                        swap,
                        memory: limit,
                    });
                }
                memory.set_swap(Some(swap as i64));
            }
            None => {}
        }
        resources.set_memory(Some(memory));
    }
    if options.cpus.is_some() || options.cpu_shares.is_some() || options.cpuset_cpus.is_some() {
        let mut cpu: LinuxCpu = resources.cpu().clone().unwrap_or_default();
        if let Some(Cpus(n)) = options.cpus {
            cpu.set_period(Some(CPU_PERIOD));
            cpu.set_quota(Some((n * CPU_PERIOD as f64).round() as i64));
        }
        if let Some(shares) = options.cpu_shares {
            cpu.set_shares(Some(shares));
        }
        if let Some(CpuSet(cpus)) = &options.cpuset_cpus {
            cpu.set_cpus(Some(cpus.clone()));
        }
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = options.pids_limit.filter(|&l| l > 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    let linux = spec.linux_mut().get_or_insert_default();
    linux.set_resources(Some(resources).filter(|r| *r != LinuxResources::default()));
    if let Some(parent) = &options.cgroup_parent {
        if !parent.starts_with('/') || parent.split('/').any(|c| c == "..") {
            return Err(ResourceError::CgroupParent(parent.clone()));
        }
        let path = format!("{}/specgate-{id}", parent.trim_end_matches('/'));
        linux.set_cgroups_path(Some(path.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        super::super::default_spec("id", &["sh".into()])
    }

    fn rlimit(spec: &Spec, typ: PosixRlimitType) -> Option<(u64, u64)> {
        spec.process()
            .as_ref()?
            .rlimits()
            .as_ref()?
            .iter()
            .find(|r| r.typ() == typ)
            .map(|r| (r.soft(), r.hard()))
    }

    #[test]
    fn default_limits_never_exceed_our_own_hard_limits() {
        let mut spec = spec();
        apply(&mut spec, &ResourceOptions::default(), "id").unwrap();
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let (soft, h) = rlimit(&spec, PosixRlimitType::RlimitNofile).unwrap();
        assert!(soft <= hard && h <= hard);
        assert!(rlimit(&spec, PosixRlimitType::RlimitNproc).is_some());
    }

    #[test]
    fn ulimits_replace_defaults() {
        let mut spec = spec();
        let options = ResourceOptions {
            ulimits: vec![
                "nofile=100:200".parse().unwrap(),
                "core=-1".parse().unwrap(),
            ],
            ..Default::default()
        };
        apply(&mut spec, &options, "id").unwrap();
        assert_eq!(
            rlimit(&spec, PosixRlimitType::RlimitNofile),
            Some((100, 200))
        );
        assert_eq!(
            rlimit(&spec, PosixRlimitType::RlimitCore),
            Some((u64::MAX, u64::MAX))
        );
    }

    #[test]
    fn cgroup_resources() {
        let mut spec = spec();
        let options = ResourceOptions {
            memory: Some(64 << 20),
            memory_swap: Some("128m".parse().unwrap()),
            cpus: Some("1.5".parse().unwrap()),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".parse().unwrap()),
            pids_limit: Some(100),
            cgroup_parent: Some("/machine".into()),
            ..Default::default()
        };
        apply(&mut spec, &options, "abc").unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let r = linux.resources().as_ref().unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.memory().unwrap().swap(), Some(128 << 20));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
        assert_eq!(r.pids().unwrap().limit(), 100);
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(std::path::Path::new("/machine/specgate-abc"))
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!("nofile=x".parse::<Ulimit>().is_err());
        assert!("nofile".parse::<Ulimit>().is_err());
        assert!("bogus=1".parse::<Ulimit>().is_err());
        assert!("nofile=10:5".parse::<Ulimit>().is_err());
        assert!("-1".parse::<Cpus>().is_err());
        assert!("0".parse::<Cpus>().is_err());
        assert!("nan".parse::<Cpus>().is_err());
        assert!("3-1".parse::<CpuSet>().is_err());
        assert!("a".parse::<CpuSet>().is_err());
        let swap_without_memory = ResourceOptions {
            memory_swap: Some(Swap::Bytes(1 << 20)),
            ..Default::default()
        };
        assert!(apply(&mut spec(), &swap_without_memory, "id").is_err());
        let relative_parent = ResourceOptions {
            cgroup_parent: Some("machine".into()),
            ..Default::default()
        };
        assert!(apply(&mut spec(), &relative_parent, "id").is_err());
    }
}
