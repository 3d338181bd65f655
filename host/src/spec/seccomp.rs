//! Seccomp: specgate's built-in profile and the profiles users give with
//! `--security-opt seccomp=FILE`, translated to the spec's `linux.seccomp`.
//!
//! Profiles are written in the docker/podman format: `defaultAction` and
//! `defaultErrnoRet`; an `archMap` from each native architecture to the
//! ones the same kernel also runs (x86-64 runs x86 and x32 programs); and
//! `syscalls` rules, each kept or dropped for this container by its
//! `includes` and `excludes`:
//!
//! - `includes` keeps a rule only if the bounding set holds *every* cap it
//!   names, this machine's architecture is among its `arches` (`amd64`,
//!   `arm64`, `s390x`, ...), and the running kernel is at least its
//!   `minKernel`;
//! - `excludes` drops a rule if the bounding set holds *any* cap it names,
//!   this machine's architecture is among its `arches`, or the running
//!   kernel is at least its `minKernel`.
//!
//! A profile already in the OCI form (`architectures`, plain `syscalls`)
//! is accepted as well, as podman does.
//!
//! The built-in profile (`seccomp.json`) follows the one podman ships:
//! syscalls it does not know fail with ENOSYS, so that programs fall back
//! from syscalls newer than the profile as they would on an older kernel;
//! the known syscalls it denies fail with EPERM; syscalls that need a
//! capability are allowed only when the bounding set has it, so that a
//! new user namespace cannot reach them either (`mount`, `unshare` and
//! `setns` need CAP_SYS_ADMIN, `ptrace` CAP_SYS_PTRACE, ...); and `clone`
//! may not create namespaces without CAP_SYS_ADMIN.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::StrDeserializer;

use super::caps;

/// What the built-in profile is called in errors.
const BUILT_IN: &str = "built-in seccomp.json";

/// Errors reading or translating a seccomp profile; each names the
/// profile's file and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not JSON of the profile format.
    #[error("seccomp profile {}: {source}", origin.display())]
    Parse {
        /// The profile's file.
        origin: PathBuf,
        /// What serde found.
        source: serde_json::Error,
    },
    /// A field names an action, operator, architecture, flag or
    /// capability that does not exist.
    #[error("seccomp profile {}: {field}: unknown {what} `{value}`", origin.display())]
    Unknown {
        /// The profile's file.
        origin: PathBuf,
        /// Where in the profile, e.g. `syscalls[3].action`.
        field: String,
        /// What kind of name the field holds.
        what: &'static str,
        /// The name.
        value: String,
    },
    /// A field's value is malformed or contradicts another field.
    #[error("seccomp profile {}: {field}: {reason}", origin.display())]
    Invalid {
        /// The profile's file.
        origin: PathBuf,
        /// Where in the profile.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule depends on the kernel's version, which could not be read.
    #[error(
        "seccomp profile {}: {field} depends on the kernel's version, but the running kernel's release `{release}` has none",
        origin.display()
    )]
    KernelRelease {
        /// The profile's file.
        origin: PathBuf,
        /// The field with `minKernel`.
        field: String,
        /// What `uname` said.
        release: String,
    },
}

/// The built-in profile for a container with the bounding set `caps`,
/// for this machine's architecture and kernel.
pub fn default_profile(caps: &HashSet<Capability>) -> Result<LinuxSeccomp, SeccompError> {
    from_docker_json(include_str!("seccomp.json"), Path::new(BUILT_IN), caps)
}

/// Translates a profile in the docker/podman format (or already in the
/// OCI form) read from `origin`, for a container with the bounding set
/// `caps`, on this machine's architecture and kernel.
pub fn from_docker_json(
    text: &str,
    origin: &Path,
    caps: &HashSet<Capability>,
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_str(text).map_err(|source| SeccompError::Parse {
        origin: origin.to_path_buf(),
        source,
    })?;
    Translation {
        origin,
        caps,
        host: Host::current(),
    }
    .profile(profile)
}

/// The docker/podman profile format. Fields are kept as text so that a
/// bad value is reported with its place rather than as a serde error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<String>>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    /// The single-name form of older docker profiles.
    name: Option<String>,
    names: Option<Vec<String>>,
    action: Option<String>,
    errno_ret: Option<u32>,
    args: Option<Vec<Arg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u64,
    value: u64,
    value_two: Option<u64>,
    op: String,
}

/// A kernel version, compared as numbers: 5.10 is newer than 5.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct KernelVersion(u32, u32, u32);

impl KernelVersion {
    /// Reads `major.minor[.patch]` from the start of a release such as
    /// `6.8.0-45-generic`.
    fn parse(release: &str) -> Option<KernelVersion> {
        let mut numbers = [0u32; 3];
        let mut parts = release.trim().split('.');
        for (i, number) in numbers.iter_mut().enumerate() {
            let Some(part) = parts.next() else {
                // major and minor at least.
                return (i >= 2).then_some(KernelVersion(numbers[0], numbers[1], numbers[2]));
            };
            let digits = part.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return (i >= 2).then_some(KernelVersion(numbers[0], numbers[1], numbers[2]));
            }
            *number = part[..digits].parse().ok()?;
            if digits < part.len() {
                // `0-45-generic`: the version ends here.
                return (i >= 1).then_some(KernelVersion(numbers[0], numbers[1], numbers[2]));
            }
        }
        Some(KernelVersion(numbers[0], numbers[1], numbers[2]))
    }
}

/// What a profile is translated for besides the capabilities: this
/// machine's native architecture and the running kernel.
#[derive(Debug, Clone)]
struct Host {
    /// `None` on an architecture seccomp profiles have no name for.
    arch: Option<Arch>,
    /// The kernel's version, or its release when that has none.
    kernel: Result<KernelVersion, String>,
}

impl Host {
    /// This machine, read once: neither changes while specgate runs.
    fn current() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(|| {
            let release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default();
            Host {
                arch: native_arch(),
                kernel: KernelVersion::parse(&release).ok_or(release),
            }
        })
    }
}

/// This build's architecture as seccomp names it.
fn native_arch() -> Option<Arch> {
    let little = cfg!(target_endian = "little");
    let wide = cfg!(target_pointer_width = "64");
    if cfg!(target_arch = "x86_64") {
        Some(if wide {
            Arch::ScmpArchX86_64
        } else {
            Arch::ScmpArchX32
        })
    } else if cfg!(target_arch = "x86") {
        Some(Arch::ScmpArchX86)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::ScmpArchAarch64)
    } else if cfg!(target_arch = "arm") {
        Some(Arch::ScmpArchArm)
    } else if cfg!(target_arch = "powerpc64") {
        Some(if little {
            Arch::ScmpArchPpc64le
        } else {
            Arch::ScmpArchPpc64
        })
    } else if cfg!(target_arch = "powerpc") {
        Some(Arch::ScmpArchPpc)
    } else if cfg!(target_arch = "s390x") {
        Some(Arch::ScmpArchS390x)
    } else if cfg!(target_arch = "riscv64") {
        Some(Arch::ScmpArchRiscv64)
    } else if cfg!(target_arch = "loongarch64") {
        Some(Arch::ScmpArchLoongarch64)
    } else if cfg!(target_arch = "mips64") {
        Some(match (little, wide) {
            (true, true) => Arch::ScmpArchMipsel64,
            (true, false) => Arch::ScmpArchMipsel64n32,
            (false, true) => Arch::ScmpArchMips64,
            (false, false) => Arch::ScmpArchMips64n32,
        })
    } else if cfg!(target_arch = "mips") {
        Some(if little {
            Arch::ScmpArchMipsel
        } else {
            Arch::ScmpArchMips
        })
    } else if cfg!(target_arch = "m68k") {
        Some(Arch::ScmpArchM68k)
    } else {
        None
    }
}

/// The architecture an `includes`/`excludes` name stands for: the names
/// libseccomp and Go use (`amd64`, `arm64`, `ppc64le`, ...), and the
/// kernel's where they differ (`x86_64`, `aarch64`).
fn arch_by_name(name: &str) -> Option<Arch> {
    Some(match name {
        "x86" | "i386" | "386" => Arch::ScmpArchX86,
        "amd64" | "x86_64" => Arch::ScmpArchX86_64,
        "x32" => Arch::ScmpArchX32,
        "arm" => Arch::ScmpArchArm,
        "arm64" | "aarch64" => Arch::ScmpArchAarch64,
        "mips" => Arch::ScmpArchMips,
        "mipsel" | "mipsle" => Arch::ScmpArchMipsel,
        "mips64" => Arch::ScmpArchMips64,
        "mips64n32" => Arch::ScmpArchMips64n32,
        "mipsel64" | "mips64le" => Arch::ScmpArchMipsel64,
        "mipsel64n32" => Arch::ScmpArchMipsel64n32,
        "ppc" => Arch::ScmpArchPpc,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "s390" => Arch::ScmpArchS390,
        "s390x" => Arch::ScmpArchS390x,
        "parisc" => Arch::ScmpArchParisc,
        "parisc64" => Arch::ScmpArchParisc64,
        "riscv64" => Arch::ScmpArchRiscv64,
        "loong64" | "loongarch64" => Arch::ScmpArchLoongarch64,
        "m68k" => Arch::ScmpArchM68k,
        "sh" => Arch::ScmpArchSh,
        "sheb" => Arch::ScmpArchSheb,
        _ => return None,
    })
}

/// Reads an OCI enum from its JSON name (`SCMP_ACT_ALLOW`), exactly as
/// config.json will spell it.
fn oci_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    T::deserialize(StrDeserializer::<serde::de::value::Error>::new(name)).ok()
}

/// One translation: the profile's origin for errors, and what it is
/// translated for.
struct Translation<'a> {
    origin: &'a Path,
    caps: &'a HashSet<Capability>,
    host: &'a Host,
}

impl Translation<'_> {
    fn unknown(&self, field: impl Into<String>, what: &'static str, value: &str) -> SeccompError {
        SeccompError::Unknown {
            origin: self.origin.to_path_buf(),
            field: field.into(),
            what,
            value: value.to_owned(),
        }
    }

    fn invalid(&self, field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
        SeccompError::Invalid {
            origin: self.origin.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn profile(&self, profile: Profile) -> Result<LinuxSeccomp, SeccompError> {
        let default_action = match profile.default_action.as_deref() {
            Some(name) => self.action("defaultAction", name)?,
            None => {
                return Err(self.invalid(
                    "defaultAction",
                    "missing (to run without seccomp, use seccomp=unconfined)",
                ));
            }
        };
        let architectures = self.architectures(&profile)?;
        let flags = profile
            .flags
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                oci_name::<LinuxSeccompFilterFlag>(name)
                    .ok_or_else(|| self.unknown(format!("flags[{i}]"), "flag", name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut syscalls = Vec::new();
        for (i, rule) in profile.syscalls.unwrap_or_default().into_iter().enumerate() {
            if let Some(syscall) = self.rule(i, rule)? {
                syscalls.push(syscall);
            }
        }
        let notifies = default_action == LinuxSeccompAction::ScmpActNotify
            || syscalls
                .iter()
                .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify);
        if notifies && profile.listener_path.is_none() {
            return Err(self.invalid(
                "listenerPath",
                "missing, but SCMP_ACT_NOTIFY needs a listener",
            ));
        }

        let mut seccomp = LinuxSeccomp::default();
        seccomp.set_default_action(default_action);
        seccomp.set_default_errno_ret(profile.default_errno_ret);
        seccomp.set_architectures((!architectures.is_empty()).then_some(architectures));
        seccomp.set_flags((!flags.is_empty()).then_some(flags));
        seccomp.set_listener_path(profile.listener_path);
        seccomp.set_listener_metadata(profile.listener_metadata);
        seccomp.set_syscalls((!syscalls.is_empty()).then_some(syscalls));
        Ok(seccomp)
    }

    fn action(
        &self,
        field: impl Into<String>,
        name: &str,
    ) -> Result<LinuxSeccompAction, SeccompError> {
        oci_name(name).ok_or_else(|| self.unknown(field, "action", name))
    }

    fn scmp_arch(&self, field: String, name: &str) -> Result<Arch, SeccompError> {
        match oci_name::<Arch>(name) {
            // The spec has no name for "whatever this is".
            Some(Arch::ScmpArchNative) | None => Err(self.unknown(field, "architecture", name)),
            Some(arch) => Ok(arch),
        }
    }

    /// The architectures the filter covers: this machine's entry of the
    /// `archMap` (itself and the programs it also runs), or the OCI form's
    /// list. Empty leaves the choice to the runtime: the native one.
    fn architectures(&self, profile: &Profile) -> Result<Vec<Arch>, SeccompError> {
        let listed = profile.architectures.as_deref().unwrap_or_default();
        let map = profile.arch_map.as_deref().unwrap_or_default();
        if !listed.is_empty() && !map.is_empty() {
            return Err(self.invalid(
                "architectures",
                "given together with archMap; use one or the other",
            ));
        }
        let mut arches = Vec::new();
        for (i, name) in listed.iter().enumerate() {
            arches.push(self.scmp_arch(format!("architectures[{i}]"), name)?);
        }
        for (i, entry) in map.iter().enumerate() {
            let arch = self.scmp_arch(format!("archMap[{i}].architecture"), &entry.architecture)?;
            let mut subs = Vec::new();
            for (j, name) in entry.sub_architectures.iter().flatten().enumerate() {
                subs.push(self.scmp_arch(format!("archMap[{i}].subArchitectures[{j}]"), name)?);
            }
            if Some(arch) == self.host.arch && arches.is_empty() {
                arches.push(arch);
                arches.extend(subs);
            }
        }
        Ok(arches)
    }

    /// One rule, checked in full whether or not it applies here; `None`
    /// when its includes or excludes leave it out.
    fn rule(&self, i: usize, rule: Rule) -> Result<Option<LinuxSyscall>, SeccompError> {
        let at = |field: &str| format!("syscalls[{i}].{field}");
        let names = match (rule.name, rule.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err(self.invalid(at("name"), "given together with names; use one"));
            }
            (Some(name), _) => vec![name],
            (None, Some(names)) => names,
            (None, None) => Vec::new(),
        };
        if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
            return Err(self.invalid(at("names"), "no syscall named"));
        }
        let action = match rule.action.as_deref() {
            Some(name) => self.action(at("action"), name)?,
            None => return Err(self.invalid(at("action"), "missing")),
        };
        let mut args = Vec::new();
        for (j, arg) in rule.args.unwrap_or_default().into_iter().enumerate() {
            let op = oci_name::<LinuxSeccompOperator>(&arg.op)
                .ok_or_else(|| self.unknown(at(&format!("args[{j}].op")), "operator", &arg.op))?;
            // Syscalls take at most six arguments.
            let index = usize::try_from(arg.index)
                .ok()
                .filter(|&i| i < 6)
                .ok_or_else(|| {
                    self.invalid(
                        at(&format!("args[{j}].index")),
                        format!("{} is not an argument (0 to 5)", arg.index),
                    )
                })?;
            let mut oci = LinuxSeccompArgBuilder::default()
                .index(index)
                .value(arg.value)
                .op(op);
            if let Some(two) = arg.value_two {
                oci = oci.value_two(two);
            }
            // Every field is set: building cannot fail.
            args.push(
                oci.build()
                    .map_err(|e| self.invalid(at(&format!("args[{j}]")), e.to_string()))?,
            );
        }
        let included = self.includes(&at("includes"), rule.includes.unwrap_or_default())?;
        let excluded = self.excludes(&at("excludes"), rule.excludes.unwrap_or_default())?;
        if !included || excluded {
            return Ok(None);
        }
        let mut syscall = LinuxSyscall::default();
        syscall.set_names(names);
        syscall.set_action(action);
        syscall.set_errno_ret(rule.errno_ret);
        syscall.set_args((!args.is_empty()).then_some(args));
        Ok(Some(syscall))
    }

    /// Whether every condition of an `includes` holds.
    fn includes(&self, field: &str, filter: Filter) -> Result<bool, SeccompError> {
        let caps = self.caps(field, filter.caps)?;
        let arches = self.arches(field, filter.arches)?;
        let kernel = self.min_kernel(field, filter.min_kernel)?;
        Ok(caps.iter().all(|c| self.caps.contains(c))
            && (arches.is_empty() || self.host.arch.is_some_and(|a| arches.contains(&a)))
            && kernel.unwrap_or(true))
    }

    /// Whether any condition of an `excludes` holds.
    fn excludes(&self, field: &str, filter: Filter) -> Result<bool, SeccompError> {
        let caps = self.caps(field, filter.caps)?;
        let arches = self.arches(field, filter.arches)?;
        let kernel = self.min_kernel(field, filter.min_kernel)?;
        Ok(caps.iter().any(|c| self.caps.contains(c))
            || self.host.arch.is_some_and(|a| arches.contains(&a))
            || kernel.unwrap_or(false))
    }

    fn caps(
        &self,
        field: &str,
        names: Option<Vec<String>>,
    ) -> Result<Vec<Capability>, SeccompError> {
        names
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                caps::parse(name)
                    .ok_or_else(|| self.unknown(format!("{field}.caps[{i}]"), "capability", name))
            })
            .collect()
    }

    fn arches(&self, field: &str, names: Option<Vec<String>>) -> Result<Vec<Arch>, SeccompError> {
        names
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                arch_by_name(name).ok_or_else(|| {
                    self.unknown(format!("{field}.arches[{i}]"), "architecture", name)
                })
            })
            .collect()
    }

    /// Whether the running kernel is at least `version`; `None` when the
    /// filter names no version.
    fn min_kernel(
        &self,
        field: &str,
        version: Option<String>,
    ) -> Result<Option<bool>, SeccompError> {
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let field = format!("{field}.minKernel");
        let wanted = KernelVersion::parse(&version).ok_or_else(|| {
            self.invalid(
                &*field,
                format!("`{version}` is not a kernel version (major.minor)"),
            )
        })?;
        match &self.host.kernel {
            Ok(running) => Ok(Some(*running >= wanted)),
            Err(release) => Err(SeccompError::KernelRelease {
                origin: self.origin.to_path_buf(),
                field,
                release: release.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(extra: Capability) -> HashSet<Capability> {
        let mut caps = caps::default_bounding();
        caps.insert(extra);
        caps
    }

    /// Whether the filter lets a syscall through unconditionally.
    fn allows(seccomp: &LinuxSeccomp, name: &str) -> bool {
        seccomp.syscalls().iter().flatten().any(|s| {
            s.action() == LinuxSeccompAction::ScmpActAllow
                && s.args().is_none()
                && s.names().iter().any(|n| n == name)
        })
    }

    /// The errno a syscall fails with, when a rule without arguments
    /// denies it.
    fn errno(seccomp: &LinuxSeccomp, name: &str) -> Option<u32> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .find(|s| {
                s.action() == LinuxSeccompAction::ScmpActErrno
                    && s.args().is_none()
                    && s.names().iter().any(|n| n == name)
            })
            .and_then(|s| s.errno_ret())
    }

    fn rules_for<'a>(seccomp: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    fn host(arch: Arch, kernel: (u32, u32, u32)) -> Host {
        Host {
            arch: Some(arch),
            kernel: Ok(KernelVersion(kernel.0, kernel.1, kernel.2)),
        }
    }

    fn translate(
        text: &str,
        caps: &HashSet<Capability>,
        host: &Host,
    ) -> Result<LinuxSeccomp, SeccompError> {
        let profile: Profile =
            serde_json::from_str(text).map_err(|source| SeccompError::Parse {
                origin: "test.json".into(),
                source,
            })?;
        Translation {
            origin: Path::new("/etc/profiles/test.json"),
            caps,
            host,
        }
        .profile(profile)
    }

    fn error(text: &str) -> String {
        match translate(
            text,
            &caps::default_bounding(),
            &host(Arch::ScmpArchX86_64, (6, 1, 0)),
        ) {
            Ok(seccomp) => panic!("accepted: {seccomp:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_built_in_profile_denies_unknown_syscalls_with_enosys() {
        let seccomp = default_profile(&caps::default_bounding()).unwrap();
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.default_errno_ret(), Some(38));
        let names: HashSet<&str> = seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect();
        assert!(names.len() > 350, "only {} syscalls", names.len());
    }

    #[test]
    fn the_built_in_profile_allows_what_every_program_needs() {
        let seccomp = default_profile(&caps::default_bounding()).unwrap();
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "mmap",
            "brk",
            "execve",
            "exit_group",
            "futex",
            "rt_sigaction",
            "clock_gettime",
            "epoll_wait",
            "wait4",
            "getrandom",
            "statx",
            "io_uring_setup",
            "chroot",
        ] {
            assert!(allows(&seccomp, name), "{name} is not allowed");
        }
        if native_arch() == Some(Arch::ScmpArchX86_64) {
            assert!(allows(&seccomp, "arch_prctl"));
            assert_eq!(
                seccomp.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
        }
    }

    #[test]
    fn mount_unshare_and_setns_need_cap_sys_admin() {
        let plain = default_profile(&caps::default_bounding()).unwrap();
        let admin = default_profile(&with(Capability::SysAdmin)).unwrap();
        for name in ["mount", "umount2", "unshare", "setns", "pivot_root", "bpf"] {
            assert!(
                !allows(&plain, name),
                "{name} is allowed without CAP_SYS_ADMIN"
            );
            assert_eq!(errno(&plain, name), Some(1), "{name}");
            assert!(allows(&admin, name), "{name} is denied with CAP_SYS_ADMIN");
            assert_eq!(errno(&admin, name), None, "{name}");
        }
    }

    #[test]
    fn other_capabilities_open_their_syscalls() {
        for (cap, name) in [
            (Capability::SysPtrace, "ptrace"),
            (Capability::SysPtrace, "process_vm_readv"),
            (Capability::SysModule, "init_module"),
            (Capability::SysTime, "clock_settime"),
            (Capability::SysBoot, "reboot"),
            (Capability::SysRawio, "iopl"),
            (Capability::SysNice, "mbind"),
            (Capability::SysPacct, "acct"),
            (Capability::SysTtyConfig, "vhangup"),
            (Capability::Syslog, "syslog"),
            (Capability::DacReadSearch, "open_by_handle_at"),
            (Capability::Bpf, "bpf"),
            (Capability::Perfmon, "perf_event_open"),
        ] {
            let plain = default_profile(&caps::default_bounding()).unwrap();
            let granted = default_profile(&with(cap)).unwrap();
            assert_eq!(errno(&plain, name), Some(1), "{name} without {cap}");
            assert!(allows(&granted, name), "{name} with {cap}");
            // Never an allow and a deny at once: runtimes refuse those.
            assert_eq!(rules_for(&granted, name).len(), 1, "{name} with {cap}");
        }
    }

    #[test]
    fn clone_may_not_make_namespaces_without_cap_sys_admin() {
        let plain = default_profile(&caps::default_bounding()).unwrap();
        let clone = rules_for(&plain, "clone");
        assert_eq!(clone.len(), 1);
        let arg = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(arg.value(), 0x7E02_0000);
        assert_eq!(errno(&plain, "clone3"), Some(38));

        let admin = default_profile(&with(Capability::SysAdmin)).unwrap();
        assert!(allows(&admin, "clone"));
        assert!(allows(&admin, "clone3"));
        assert_eq!(rules_for(&admin, "clone").len(), 1);
    }

    #[test]
    fn keyrings_fail_as_if_the_kernel_had_none() {
        let seccomp = default_profile(&caps::default_bounding()).unwrap();
        assert_eq!(errno(&seccomp, "keyctl"), Some(38));
        assert_eq!(errno(&seccomp, "add_key"), Some(38));
    }

    #[test]
    fn personality_is_allowed_for_the_usual_personalities_only() {
        let seccomp = default_profile(&caps::default_bounding()).unwrap();
        let values: Vec<u64> = rules_for(&seccomp, "personality")
            .iter()
            .flat_map(|s| s.args().iter().flatten().map(|a| a.value()))
            .collect();
        assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn the_built_in_profile_translates_for_every_architecture_it_maps() {
        for (arch, name, specific) in [
            (Arch::ScmpArchX86_64, "amd64", "modify_ldt"),
            (Arch::ScmpArchAarch64, "arm64", "cacheflush"),
            (Arch::ScmpArchS390x, "s390x", "s390_runtime_instr"),
            (Arch::ScmpArchPpc64le, "ppc64le", "swapcontext"),
            (Arch::ScmpArchRiscv64, "riscv64", "riscv_hwprobe"),
        ] {
            let seccomp = translate(
                include_str!("seccomp.json"),
                &caps::default_bounding(),
                &host(arch, (6, 1, 0)),
            )
            .unwrap();
            assert_eq!(
                seccomp.architectures().as_ref().map(|a| a[0]),
                Some(arch),
                "{name}"
            );
            assert!(allows(&seccomp, specific), "{specific} on {name}");
            assert_eq!(
                allows(&seccomp, "arch_prctl"),
                arch == Arch::ScmpArchX86_64,
                "arch_prctl on {name}"
            );
            let clone = rules_for(&seccomp, "clone");
            let index = clone[0].args().as_ref().unwrap()[0].index();
            assert_eq!(index, usize::from(arch == Arch::ScmpArchS390x), "{name}");
        }
    }

    #[test]
    fn the_seccomp_section_satisfies_the_oci_schema() {
        for caps in [caps::default_bounding(), with(Capability::SysAdmin)] {
            let mut spec = super::super::default_spec("id", &["true".into()]);
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_seccomp(Some(default_profile(&caps).unwrap()));
            spec.set_linux(Some(linux));
            let json: serde_json::Value =
                serde_json::from_str(&crate::spec::template::config_json(&spec).unwrap()).unwrap();
            assert!(json.pointer("/linux/seccomp/syscalls/0/names/0").is_some());
            specgate_tests::validate_config(&json).unwrap();
        }
    }

    const GATED: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            { "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"] },
            { "architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null }
        ],
        "syscalls": [
            { "names": ["read"], "action": "SCMP_ACT_ALLOW", "args": null, "includes": {}, "excludes": {} },
            { "names": ["admin"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"] } },
            { "names": ["unprivileged"], "action": "SCMP_ACT_ALLOW", "excludes": { "caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"] } },
            { "names": ["x86_only"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["amd64", "x86"] } },
            { "names": ["not_x86"], "action": "SCMP_ACT_ALLOW", "excludes": { "arches": ["amd64"] } },
            { "names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "5.10" } },
            { "names": ["old"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": { "minKernel": "5.10" } }
        ]
    }"#;

    fn names(seccomp: &LinuxSeccomp) -> Vec<&str> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn includes_need_every_cap_and_excludes_any() {
        let x86 = host(Arch::ScmpArchX86_64, (6, 1, 0));
        let plain = translate(GATED, &caps::default_bounding(), &x86).unwrap();
        assert!(!names(&plain).contains(&"admin"));
        assert!(names(&plain).contains(&"unprivileged"));

        let one = translate(GATED, &with(Capability::SysAdmin), &x86).unwrap();
        assert!(!names(&one).contains(&"admin"));
        assert!(!names(&one).contains(&"unprivileged"));

        let mut both = with(Capability::SysAdmin);
        both.insert(Capability::NetAdmin);
        let both = translate(GATED, &both, &x86).unwrap();
        assert!(names(&both).contains(&"admin"));
    }

    #[test]
    fn arches_select_rules_and_the_arch_map_the_filters_architectures() {
        let caps = caps::default_bounding();
        let x86 = translate(GATED, &caps, &host(Arch::ScmpArchX86_64, (6, 1, 0))).unwrap();
        assert!(names(&x86).contains(&"x86_only"));
        assert!(!names(&x86).contains(&"not_x86"));
        assert_eq!(
            x86.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );

        let arm = translate(GATED, &caps, &host(Arch::ScmpArchAarch64, (6, 1, 0))).unwrap();
        assert!(!names(&arm).contains(&"x86_only"));
        assert!(names(&arm).contains(&"not_x86"));
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64][..])
        );

        // No entry for this machine: the runtime filters its native one.
        let riscv = translate(GATED, &caps, &host(Arch::ScmpArchRiscv64, (6, 1, 0))).unwrap();
        assert_eq!(riscv.architectures(), &None);
    }

    #[test]
    fn min_kernel_compares_versions_as_numbers() {
        let caps = caps::default_bounding();
        let newer = translate(GATED, &caps, &host(Arch::ScmpArchX86_64, (5, 10, 0))).unwrap();
        assert!(names(&newer).contains(&"new"));
        assert!(!names(&newer).contains(&"old"));

        let older = translate(GATED, &caps, &host(Arch::ScmpArchX86_64, (5, 9, 16))).unwrap();
        assert!(!names(&older).contains(&"new"));
        assert!(names(&older).contains(&"old"));
        let old = rules_for(&older, "old");
        assert_eq!(old[0].errno_ret(), Some(38));
    }

    #[test]
    fn kernel_releases_parse_like_uname_prints_them() {
        assert_eq!(
            KernelVersion::parse("6.8.0-45-generic"),
            Some(KernelVersion(6, 8, 0))
        );
        assert_eq!(KernelVersion::parse("5.10"), Some(KernelVersion(5, 10, 0)));
        assert_eq!(
            KernelVersion::parse("6.18-rc1"),
            Some(KernelVersion(6, 18, 0))
        );
        assert_eq!(
            KernelVersion::parse("4.19.112+"),
            Some(KernelVersion(4, 19, 112))
        );
        assert_eq!(KernelVersion::parse("6"), None);
        assert_eq!(KernelVersion::parse("linux"), None);
        assert!(Host::current().kernel.is_ok(), "{:?}", Host::current());
    }

    #[test]
    fn a_rule_on_an_unreadable_kernel_version_is_an_error() {
        let unknown = Host {
            arch: Some(Arch::ScmpArchX86_64),
            kernel: Err("weird".into()),
        };
        let e = translate(GATED, &caps::default_bounding(), &unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("syscalls[5].includes.minKernel"), "{e}");
        assert!(e.contains("weird"), "{e}");
    }

    #[test]
    fn args_flags_errno_and_listener_carry_over() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "defaultErrnoRet": 1,
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/seccomp-listener.sock",
            "listenerMetadata": "meta",
            "syscalls": [
                { "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                  "args": [{ "index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_EQ" },
                           { "index": 2, "value": 9, "op": "SCMP_CMP_NE" }] },
                { "name": "mkdir", "action": "SCMP_ACT_NOTIFY" }
            ]
        }"#;
        let seccomp = translate(
            text,
            &caps::default_bounding(),
            &host(Arch::ScmpArchX86_64, (6, 1, 0)),
        )
        .unwrap();
        assert_eq!(
            seccomp.default_action(),
            LinuxSeccompAction::ScmpActKillProcess
        );
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        assert_eq!(
            seccomp.flags().as_deref(),
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagLog][..])
        );
        assert_eq!(
            seccomp.listener_path().as_deref(),
            Some(Path::new("/run/seccomp-listener.sock"))
        );
        assert_eq!(seccomp.listener_metadata().as_deref(), Some("meta"));
        let socket = &seccomp.syscalls().as_ref().unwrap()[0];
        assert_eq!(socket.errno_ret(), Some(22));
        let args = socket.args().as_ref().unwrap();
        assert_eq!((args[1].index(), args[1].value()), (2, 9));
        assert_eq!(args[1].op(), LinuxSeccompOperator::ScmpCmpNe);
        assert_eq!(args[0].value_two(), Some(0));
        assert_eq!(names(&seccomp), ["socket", "mkdir"]);
    }

    #[test]
    fn a_profile_in_the_oci_form_is_accepted() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            "syscalls": [
                { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["personality"], "action": "SCMP_ACT_ALLOW",
                  "args": [{ "index": 0, "value": 8, "op": "SCMP_CMP_EQ" }] }
            ]
        }"#;
        let seccomp =
            from_docker_json(text, Path::new("oci.json"), &caps::default_bounding()).unwrap();
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX32][..])
        );
        assert_eq!(names(&seccomp), ["read", "write", "personality"]);
        // And it reads back the same through oci-spec's own serde.
        let oci: LinuxSeccomp = serde_json::from_str(text).unwrap();
        assert_eq!(oci, seccomp);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_file_and_the_field() {
        let e = error(r#"{ "defaultAction": "SCMP_ACT_MAYBE" }"#);
        assert!(e.contains("/etc/profiles/test.json"), "{e}");
        assert!(
            e.contains("defaultAction: unknown action `SCMP_ACT_MAYBE`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO",
                 "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ALOW" }] }"#,
        );
        assert!(
            e.contains("syscalls[0].action: unknown action `SCMP_ACT_ALOW`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 { "names": ["read"], "action": "SCMP_ACT_ALLOW" },
                 { "names": ["clone"], "action": "SCMP_ACT_ALLOW",
                   "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY" }] }] }"#,
        );
        assert!(
            e.contains("syscalls[1].args[0].op: unknown operator `SCMP_CMP_ROUGHLY`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO",
                 "archMap": [{ "architecture": "SCMP_ARCH_VAX", "subArchitectures": [] }] }"#,
        );
        assert!(
            e.contains("archMap[0].architecture: unknown architecture `SCMP_ARCH_VAX`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 { "names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["vax"] } }] }"#,
        );
        assert!(
            e.contains("syscalls[0].includes.arches[0]: unknown architecture `vax`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 { "names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": { "caps": ["CAP_SYS_ADMN"] } }] }"#,
        );
        assert!(
            e.contains("syscalls[0].excludes.caps[0]: unknown capability `CAP_SYS_ADMN`"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"] }"#,
        );
        assert!(e.contains("flags[0]: unknown flag"), "{e}");
    }

    #[test]
    fn malformed_profiles_are_errors_naming_the_file() {
        let e = error("{ not json");
        assert!(e.starts_with("seccomp profile test.json:"), "{e}");

        let e = error(r#"{ "syscalls": [] }"#);
        assert!(e.contains("defaultAction: missing"), "{e}");

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                 "archMap": [{ "architecture": "SCMP_ARCH_X86_64" }] }"#,
        );
        assert!(
            e.contains("architectures: given together with archMap"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO",
                 "syscalls": [{ "names": [], "action": "SCMP_ACT_ALLOW" }] }"#,
        );
        assert!(e.contains("syscalls[0].names: no syscall named"), "{e}");

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{ "names": ["read"],
                 "action": "SCMP_ACT_ALLOW", "args": [{ "index": 6, "value": 0, "op": "SCMP_CMP_EQ" }] }] }"#,
        );
        assert!(
            e.contains("syscalls[0].args[0].index: 6 is not an argument"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 { "names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "new" } }] }"#,
        );
        assert!(
            e.contains("syscalls[0].includes.minKernel: `new` is not a kernel version"),
            "{e}"
        );

        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO",
                 "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_NOTIFY" }] }"#,
        );
        assert!(e.contains("listenerPath: missing"), "{e}");
    }

    #[test]
    fn rules_are_checked_even_where_they_do_not_apply() {
        // A typo in a rule for another architecture is still a typo.
        let e = error(
            r#"{ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                 { "names": ["svc"], "action": "SCMP_ACT_ALOW", "includes": { "arches": ["s390x"] } }] }"#,
        );
        assert!(e.contains("syscalls[0].action"), "{e}");
    }
}
