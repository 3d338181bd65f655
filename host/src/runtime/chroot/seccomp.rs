//! `linux.seccomp` as a BPF filter, through libseccomp (as runc does):
//! it knows every architecture's syscall numbers, so a profile's names
//! resolve on this machine and its `architectures` (x86-64 with x86 and
//! x32 on a 64-bit PC) each get their own branch of the filter; it
//! compiles argument conditions (including masked equality, which the
//! built-in profile's `clone` rule uses) and per-rule errno values.
//!
//! The translation follows runc's: names this libseccomp does not know
//! are skipped (a profile names syscalls newer than some kernels), a rule
//! whose action is the default action is redundant and skipped, and
//! several conditions on the same argument make one rule each (libseccomp
//! ANDs the conditions of a rule, and cannot compare one argument twice).

use std::collections::HashMap;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// Errors building the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something this translation does not do.
    #[error("linux.seccomp: {0}")]
    Unsupported(String),
    /// libseccomp refused a part of the profile.
    #[error("linux.seccomp: {what}: {source}")]
    Library {
        /// Which part.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
}

fn library(
    what: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Library { what, source }
}

/// The serialised name of a spec enum value (`SCMP_ARCH_X86_64`, ...).
fn name_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The action of a rule or of the default.
fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which --isolation chroot does not run"
                    .into(),
            ));
        }
    })
}

/// One condition.
fn compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI's masked equality: (arg & value) == valueTwo.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            );
        }
    };
    ScmpArgCompare::new(arg.index() as u32, op, arg.value())
}

/// The condition sets of a rule: one set of all its conditions, or one
/// set per condition when several compare the same argument.
fn condition_sets(args: &[LinuxSeccompArg]) -> Vec<Vec<ScmpArgCompare>> {
    let mut per_index: HashMap<usize, usize> = HashMap::new();
    for arg in args {
        *per_index.entry(arg.index()).or_default() += 1;
    }
    if per_index.values().all(|n| *n <= 1) {
        vec![args.iter().map(compare).collect()]
    } else {
        args.iter().map(|a| vec![compare(a)]).collect()
    }
}

/// Compiles `profile` into a filter, ready to load.
pub fn build(profile: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    if profile.listener_path().is_some() {
        return Err(SeccompError::Unsupported(
            "listenerPath needs a seccomp agent, which --isolation chroot does not run".into(),
        ));
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut filter = ScmpFilterContext::new(default).map_err(library("defaultAction"))?;
    // The caller sets no_new_privs itself when the spec asks; loading
    // must not set it behind the spec's back.
    filter.set_ctl_nnp(false).map_err(library("no_new_privs"))?;
    for arch in profile.architectures().iter().flatten() {
        let name = name_of(arch);
        let arch: ScmpArch = name.parse().map_err(library(name.clone()))?;
        if !filter
            .is_arch_present(arch)
            .map_err(library(name.clone()))?
        {
            filter.add_arch(arch).map_err(library(name))?;
        }
    }
    for flag in profile.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                filter.set_ctl_log(true).map_err(library("flags"))?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                filter.set_ctl_ssb(true).map_err(library("flags"))?;
            }
            other => tracing::debug!(
                "seccomp flag {} left to the kernel's default",
                name_of(other)
            ),
        }
    }
    for (index, rule) in profile.syscalls().iter().flatten().enumerate() {
        let rule_action = action(rule.action(), rule.errno_ret())?;
        if rule_action == default {
            continue;
        }
        let sets = condition_sets(rule.args().as_deref().unwrap_or_default());
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: syscall {name} unknown to libseccomp, skipped");
                continue;
            };
            for conditions in &sets {
                filter
                    .add_rule_conditional(rule_action, syscall, conditions)
                    .map_err(library(format!("syscalls[{index}] {name}")))?;
            }
        }
    }
    Ok(filter)
}

/// Loads the filter into this thread (and its future children).
pub fn load(filter: &ScmpFilterContext) -> Result<(), SeccompError> {
    filter.load().map_err(library("load"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter as libseccomp's pseudo-code.
    fn pfc(filter: &ScmpFilterContext) -> String {
        let file = tempfile::tempfile().unwrap();
        filter.export_pfc(&file).unwrap();
        let mut file = file;
        std::io::Seek::rewind(&mut file).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        text
    }

    #[test]
    fn the_built_in_profile_compiles_for_every_architecture_it_names() {
        let bounding = crate::spec::caps::default_bounding();
        let profile = crate::spec::seccomp::default_profile(&bounding).unwrap();
        let filter = build(&profile).unwrap();
        let text = pfc(&filter);
        // Unknown syscalls fail with ENOSYS (38), denied known ones with
        // EPERM (1).
        assert!(text.contains("ERRNO(38)"), "{text}");
        for arch in profile.architectures().iter().flatten() {
            let arch: ScmpArch = name_of(arch).parse().unwrap();
            assert!(filter.is_arch_present(arch).unwrap());
        }
    }

    #[test]
    fn errno_values_and_argument_conditions_reach_the_filter() {
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 99,
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]
            }, {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
            }, {
                "names": ["no_such_syscall"],
                "action": "SCMP_ACT_ERRNO"
            }]
        }))
        .unwrap();
        let text = pfc(&build(&profile).unwrap());
        assert!(text.contains("ERRNO(99)"), "{text}");
        assert!(text.contains("ERRNO(1)"), "{text}");
        assert!(text.contains("personality"), "{text}");
        assert!(text.contains("& 0x7e020000"), "{text}");
    }

    #[test]
    fn conditions_on_one_argument_make_a_rule_each() {
        let arg = |index: usize, value: u64| {
            oci_spec::runtime::LinuxSeccompArgBuilder::default()
                .index(index)
                .value(value)
                .op(LinuxSeccompOperator::ScmpCmpEq)
                .build()
                .unwrap()
        };
        assert_eq!(condition_sets(&[arg(0, 1), arg(0, 2)]).len(), 2);
        assert_eq!(condition_sets(&[arg(0, 1), arg(1, 2)]).len(), 1);
    }

    #[test]
    fn a_notify_action_is_refused_by_name() {
        let error = action(LinuxSeccompAction::ScmpActNotify, None).unwrap_err();
        assert!(error.to_string().contains("SCMP_ACT_NOTIFY"));
    }
}
