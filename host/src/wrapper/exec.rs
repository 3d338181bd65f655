//! `exec` through the wrapper: the process it would start may never hold
//! more than the container's process was allowed at `create`, after the
//! chain.
//!
//! The process comes from `--process FILE` (what engines pass: containerd
//! builds it from the spec it stored, before the chain ran; podman from
//! the bundle, or with every capability for `--privileged`), or from the
//! container's config.json and the flags (`--cap`, `--user`, ...), as
//! runc builds it. Either way the chain runs over the container as the
//! exec would make it (config.json as the chain left it at create, with
//! the exec's process in it), so that what the policy drops is dropped
//! and what it denies is denied, with the plugin's reason. What is left
//! is then held to the container's process: no capability outside its
//! sets, `noNewPrivileges` kept, no root user it did not have, no other
//! AppArmor profile or SELinux label.
//!
//! A process file's result is given to the runtime as a sealed memfd in
//! place of the engine's file, so that the bytes checked are the bytes the
//! runtime reads. A process built from flags is passed on unchanged when
//! nothing had to be taken from it, and refused otherwise: flags are what
//! a person types, and silently running something else than asked would
//! surprise them.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::error::{self, Ceiling, EXIT_RUNTIME_FAILURE, Error, GoIntError, SealError};
use super::invocation::Invocation;
use crate::policy::audit;
use crate::policy::setup::{ChainSetup, LoadedChain};
use crate::runtime::config::ProcessFile;
use crate::runtime::{BundleConfig, Runtime};
use crate::spec::caps::{self, CapSet};

/// Where the exec's process comes from.
enum Requested {
    /// `--process FILE`.
    File(PathBuf, ProcessFile),
    /// config.json's process and the flags, as runc builds it.
    Flags(Process),
}

impl Requested {
    fn process(&self) -> &Process {
        match self {
            Requested::File(_, file) => &file.process,
            Requested::Flags(process) => process,
        }
    }
}

/// What the check needs of the container, read while the plugins load.
struct Target {
    bundle: PathBuf,
    config: BundleConfig,
    requested: Requested,
}

/// Checks `exec`'s process against the policy and the container's, and
/// returns the arguments to give `runtime` when they are not the ones
/// received.
pub(super) fn prepare(
    setup: &ChainSetup,
    runtime: &Runtime,
    inv: &Invocation,
    received: &[OsString],
    id: &str,
) -> Result<Option<Vec<OsString>>, Error> {
    let (chain, target) = setup.load(|| inspect(runtime, inv, id))?;
    let target = target?;
    let process = target.requested.process();
    let rootfs = target.config.spec().root().as_ref().map_or_else(
        || target.bundle.join("rootfs"),
        |r| target.bundle.join(r.path()),
    );
    let mut record = chain.record(
        id,
        process.args().clone().unwrap_or_default(),
        rootfs.display().to_string(),
        runtime.program().display().to_string(),
    );
    let outcome = decide(&chain, &target, inv, received, id, &mut record);
    if let Err(error) = &outcome {
        record.exit_status = Some(EXIT_RUNTIME_FAILURE);
        record.denial.get_or_insert_with(|| error::line(error));
    }
    if let Some(log) = chain.audit_log() {
        record.append(log).map_err(|source| Error::Audit {
            path: log.to_path_buf(),
            source,
        })?;
    }
    outcome
}

/// The container's bundle (from the runtime's state), its config.json
/// and the process the exec asks for.
fn inspect(runtime: &Runtime, inv: &Invocation, id: &str) -> Result<Target, Error> {
    let bundle = bundle_of(runtime, inv, id)?;
    let config = BundleConfig::read(&bundle)?;
    let requested = match inv.value("process") {
        Some(path) => {
            let path = PathBuf::from(path);
            let file = ProcessFile::read(&path).map_err(Error::ProcessFile)?;
            Requested::File(path, file)
        }
        None => {
            let Some(base) = config.spec().process() else {
                return Err(Error::NoBaseProcess {
                    id: id.to_string(),
                    config: config.path().to_path_buf(),
                });
            };
            Requested::Flags(from_flags(base, inv)?)
        }
    };
    Ok(Target {
        bundle,
        config,
        requested,
    })
}

/// The bundle of container `id`, from `runtime state` with the global
/// flags given (`--root` says where the runtime keeps its state).
fn bundle_of(runtime: &Runtime, inv: &Invocation, id: &str) -> Result<PathBuf, Error> {
    #[derive(serde::Deserialize)]
    struct State {
        bundle: PathBuf,
    }
    let output = std::process::Command::new(runtime.program())
        .args(&inv.globals)
        .arg("state")
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Execute {
            program: runtime.program().to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(Error::State {
            id: id.to_string(),
            program: runtime.program().to_path_buf(),
            said: said.map_or_else(|| format!("exited with {}", output.status), str::to_string),
        });
    }
    let state: State =
        serde_json::from_slice(&output.stdout).map_err(|source| Error::StateJson {
            id: id.to_string(),
            program: runtime.program().to_path_buf(),
            source,
        })?;
    if !state.bundle.is_absolute() {
        return Err(Error::RelativeBundle {
            id: id.to_string(),
            bundle: state.bundle,
        });
    }
    Ok(state.bundle)
}

/// The exec's process as runc 1.1 to 1.3 build it without `--process`:
/// config.json's, with the command after the id and the flags over it.
/// `--cap` goes to every set but the inheritable one (runc 1.1 always adds
/// it to the ambient set, later versions when the inheritable set is
/// there: the larger is what is checked; crun's `--cap` gives only the
/// capabilities named, less still).
fn from_flags(base: &Process, inv: &Invocation) -> Result<Process, Error> {
    let mut process = base.clone();
    if inv.args.is_empty() {
        return Err(Error::NoCommand);
    }
    process.set_args(Some(inv.args.clone()));
    let text = |name: &str| {
        inv.value(name)
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(cwd) = text("cwd") {
        process.set_cwd(PathBuf::from(cwd));
    }
    if let Some(profile) = text("apparmor") {
        process.set_apparmor_profile(Some(profile));
    }
    if let Some(label) = text("process-label") {
        process.set_selinux_label(Some(label));
    }
    let added: Vec<Capability> = inv
        .all_values("cap")
        .map(|name| {
            let name = name.to_string_lossy();
            caps::parse(&name).ok_or_else(|| Error::Cap(name.into_owned()))
        })
        .collect::<Result<_, _>>()?;
    if !added.is_empty() {
        let mut sets = process.capabilities().clone().unwrap_or_default();
        for set in [
            CapSet::Bounding,
            CapSet::Effective,
            CapSet::Permitted,
            CapSet::Ambient,
        ] {
            let mut members = members(Some(&sets), set);
            members.extend(added.iter().copied());
            caps::put(&mut sets, set, members);
        }
        process.set_capabilities(Some(sets));
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(
        inv.all_values("env")
            .map(|e| e.to_string_lossy().into_owned()),
    );
    process.set_env(Some(env));
    process.set_terminal(Some(inv.switch("tty").unwrap_or(false)));
    if let Some(no_new_privs) = inv.switch("no-new-privs") {
        process.set_no_new_privileges(Some(no_new_privs));
    }
    let mut user = process.user().clone();
    if let Some(spec) = text("user") {
        let (uid, gid) = match spec.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (spec.as_str(), None),
        };
        if let Some(gid) = gid {
            user.set_gid(go_uint32(gid, 10).map_err(|source| Error::User {
                spec: spec.clone(),
                source,
            })?);
        }
        user.set_uid(go_uint32(uid, 10).map_err(|source| Error::User {
            spec: spec.clone(),
            source,
        })?);
    }
    let mut gids = user.additional_gids().clone().unwrap_or_default();
    for gid in inv.all_values("additional-gids") {
        let gid = gid.to_string_lossy();
        gids.push(go_uint32(&gid, 0).map_err(|source| Error::AdditionalGid {
            gid: gid.to_string(),
            source,
        })?);
    }
    if !gids.is_empty() {
        user.set_additional_gids(Some(gids));
    }
    process.set_user(user);
    Ok(process)
}

/// An id as runc reads it: a Go int (`strconv.ParseInt`, base 10, or 0:
/// from its prefix) converted to uint32, which wraps (`4294967296` is
/// uid 0). A negative additional gid is refused by runc; a negative user
/// wraps like a large one.
fn go_uint32(text: &str, base: u32) -> Result<u32, GoIntError> {
    let invalid = || GoIntError::NotANumber(text.to_string());
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if base == 0 {
        let lower = digits.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, &digits[2..])
        } else if lower.starts_with("0o") {
            (8, &digits[2..])
        } else if lower.starts_with("0b") {
            (2, &digits[2..])
        } else if digits.len() > 1 && digits.starts_with('0') {
            (8, &digits[1..])
        } else {
            (10, digits)
        }
    } else {
        (base, digits)
    };
    let digits: String = if base == 0 {
        digits.chars().filter(|c| *c != '_').collect()
    } else {
        digits.to_string()
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(invalid());
    }
    let value = i64::from_str_radix(&digits, radix).map_err(|_| invalid())?;
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    if base == 0 && value < 0 {
        return Err(GoIntError::Negative(text.to_string()));
    }
    Ok(value as u32)
}

/// The members of one capability set (none when absent).
fn members(caps: Option<&LinuxCapabilities>, set: CapSet) -> HashSet<Capability> {
    let Some(caps) = caps else {
        return HashSet::new();
    };
    let members = match set {
        CapSet::Bounding => caps.bounding(),
        CapSet::Effective => caps.effective(),
        CapSet::Inheritable => caps.inheritable(),
        CapSet::Permitted => caps.permitted(),
        CapSet::Ambient => caps.ambient(),
    };
    members.clone().unwrap_or_default()
}

/// Runs the chain over the container as the exec would make it, holds the
/// result to the container's process and returns the arguments to give
/// the runtime, when they change.
fn decide(
    chain: &LoadedChain,
    target: &Target,
    inv: &Invocation,
    received: &[OsString],
    id: &str,
    record: &mut audit::Record,
) -> Result<Option<Vec<OsString>>, Error> {
    let requested = target.requested.process();
    let mut spec = target.config.spec().clone();
    spec.set_process(Some(requested.clone()));
    let report = chain
        .run(&mut spec, id)
        .inspect_err(|e| record.denial = Some(e.to_string()))?;
    record.add_chain(chain.plugins(), &report);
    let mut decided = spec.process().clone().ok_or(Error::NoDecidedProcess)?;
    let ceiling = target
        .config
        .spec()
        .process()
        .as_ref()
        .ok_or_else(|| Error::NoCeiling {
            id: id.to_string(),
            config: target.config.path().to_path_buf(),
        })?;
    let taken = hold_to(&mut decided, ceiling).map_err(|source| Error::Ceiling {
        id: id.to_string(),
        source,
    })?;
    for what in &taken {
        record.changes.push(audit::ChangeRecord {
            plugin: "specgate".into(),
            hook: "exec",
            change: what.clone(),
            effect: "restricting",
            grant: None,
        });
    }
    let changed = differences(requested, &decided);
    std::mem::forget(report);
    match &target.requested {
        Requested::Flags(_) if changed.is_empty() => Ok(None),
        Requested::Flags(_) => Err(Error::MoreThanAllowed {
            id: id.to_string(),
            changed: changed.join("; "),
        }),
        Requested::File(path, file) => {
            let bytes = if changed.is_empty() {
                file.bytes.clone()
            } else {
                tracing::info!("exec {id}: {}", changed.join("; "));
                let mut raw = file.raw.clone();
                write_decided(&mut raw, requested, &decided)?;
                let mut bytes = serde_json::to_vec(&raw)?;
                bytes.push(b'\n');
                bytes
            };
            let fd = sealed_file(&bytes, inv).map_err(|source| Error::Seal {
                path: path.clone(),
                source,
            })?;
            Ok(Some(replace_process_arg(inv, received, fd)?))
        }
    }
}

/// Holds `process` to `ceiling`, the container's process as the chain
/// left it: capabilities outside its sets are removed, `noNewPrivileges`
/// is kept, and what cannot be taken away (a root user or group the
/// container's process does not have, another AppArmor profile or SELinux
/// label) fails. Returns what was taken, in words.
fn hold_to(process: &mut Process, ceiling: &Process) -> Result<Vec<String>, Ceiling> {
    let mut taken = Vec::new();
    // A process without capabilities gets the container's from the
    // runtime: nothing to hold.
    if let Some(mut sets) = process.capabilities().clone() {
        for set in CapSet::ALL {
            let have = members(Some(&sets), set);
            let allowed = members(ceiling.capabilities().as_ref(), set);
            let mut extra: Vec<&str> = have.difference(&allowed).map(|c| caps::name(*c)).collect();
            if extra.is_empty() {
                continue;
            }
            extra.sort_unstable();
            taken.push(format!(
                "{} removed from the {} set: the container's process does not hold {}",
                extra.join(", "),
                set.name(),
                if extra.len() == 1 { "it" } else { "them" }
            ));
            caps::put(
                &mut sets,
                set,
                have.intersection(&allowed).copied().collect(),
            );
        }
        process.set_capabilities(Some(sets));
    }
    if ceiling.no_new_privileges() == Some(true) && process.no_new_privileges() != Some(true) {
        process.set_no_new_privileges(Some(true));
        taken.push("noNewPrivileges set, as the container's process has it".into());
    }
    let (user, theirs) = (process.user(), ceiling.user());
    let their_gids: Vec<u32> = std::iter::once(theirs.gid())
        .chain(theirs.additional_gids().iter().flatten().copied())
        .collect();
    if user.uid() == 0 && theirs.uid() != 0 {
        return Err(Ceiling::RootUser(theirs.uid()));
    }
    for gid in std::iter::once(user.gid()).chain(user.additional_gids().iter().flatten().copied()) {
        if gid == 0 && !their_gids.contains(&0) {
            return Err(Ceiling::RootGroup);
        }
    }
    let label = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    for (what, ours, theirs) in [
        (
            "AppArmor profile",
            label(process.apparmor_profile()),
            label(ceiling.apparmor_profile()),
        ),
        (
            "SELinux label",
            label(process.selinux_label()),
            label(ceiling.selinux_label()),
        ),
    ] {
        // Without one the runtime gives the exec the container's.
        if let (Some(ours), Some(theirs)) = (&ours, &theirs)
            && ours != theirs
        {
            return Err(Ceiling::Label {
                what,
                ours: ours.clone(),
                theirs: theirs.clone(),
            });
        }
    }
    Ok(taken)
}

/// What the check changed in the process, in words.
fn differences(requested: &Process, decided: &Process) -> Vec<String> {
    let mut changed = Vec::new();
    if let Some(sets) = requested.capabilities() {
        for set in CapSet::ALL {
            let before = members(Some(sets), set);
            let after = members(decided.capabilities().as_ref(), set);
            let mut gone: Vec<&str> = before.difference(&after).map(|c| caps::name(*c)).collect();
            gone.sort_unstable();
            if !gone.is_empty() {
                changed.push(format!("{} in the {} set", gone.join(", "), set.name()));
            }
        }
    }
    if requested.no_new_privileges() != decided.no_new_privileges() {
        changed.push("noNewPrivileges off".into());
    }
    changed
}

/// Writes the decided capability sets and `noNewPrivileges` into the
/// process file's JSON; every other field stays as the engine wrote it.
/// A set is written whole, in name order.
fn write_decided(
    raw: &mut serde_json::Value,
    requested: &Process,
    decided: &Process,
) -> Result<(), Error> {
    let object = raw.as_object_mut().ok_or(Error::ProcessNotObject)?;
    if let Some(sets) = decided.capabilities() {
        let capabilities = object
            .entry("capabilities")
            .or_insert_with(|| serde_json::json!({}));
        let capabilities = capabilities
            .as_object_mut()
            .ok_or(Error::CapabilitiesNotObject)?;
        for set in CapSet::ALL {
            let before = members(requested.capabilities().as_ref(), set);
            let after = members(Some(sets), set);
            if before != after {
                capabilities.insert(set.name().to_string(), caps::names(sets, set).into());
            }
        }
    }
    if requested.no_new_privileges() != decided.no_new_privileges() {
        object.insert(
            "noNewPrivileges".into(),
            decided.no_new_privileges().unwrap_or(false).into(),
        );
    }
    Ok(())
}

/// `bytes` in a sealed memfd, at a descriptor the runtime inherits and
/// does not pass to the container: above the ones `--preserve-fds` and
/// `LISTEN_FDS` hand on. Returns that descriptor.
fn sealed_file(bytes: &[u8], inv: &Invocation) -> Result<RawFd, SealError> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let memfd: OwnedFd = memfd_create(
        c"specgate-exec-process",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(SealError::Create)?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(bytes).map_err(SealError::Write)?;
    fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )
    .map_err(SealError::Seal)?;
    // As the runtime reads them (a Go int, any base); one it cannot read
    // fails the runtime anyway.
    let count = |text: Option<String>| {
        text.and_then(|t| go_uint32(&t, 0).ok())
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0)
    };
    let preserved = count(
        inv.value("preserve-fds")
            .map(|v| v.to_string_lossy().into_owned()),
    );
    let listen = count(std::env::var("LISTEN_FDS").ok());
    let floor = 3i32.saturating_add(preserved).saturating_add(listen);
    // Without close-on-exec: the runtime opens it by its /proc path.
    let fd = fcntl(&file, FcntlArg::F_DUPFD(floor)).map_err(SealError::Place)?;
    debug_assert!(fd != file.as_raw_fd());
    Ok(fd)
}

/// The arguments received, with `--process`'s value replaced by `fd`'s
/// path.
fn replace_process_arg(
    inv: &Invocation,
    received: &[OsString],
    fd: RawFd,
) -> Result<Vec<OsString>, Error> {
    let Some((index, inline)) = inv.process_at else {
        return Err(Error::ProcessArgMissing);
    };
    let path = Path::new("/proc/self/fd").join(fd.to_string());
    let mut args = received.to_vec();
    let slot = args.get_mut(index).ok_or(Error::ProcessArgMissing)?;
    *slot = if inline {
        let text = slot.to_string_lossy();
        let (flag, _) = text.split_once('=').unwrap_or((&text, ""));
        let mut arg = OsString::from(flag);
        arg.push("=");
        arg.push(&path);
        arg
    } else {
        path.into_os_string()
    };
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_as_go_and_wrap_as_runc_converts_them() {
        assert_eq!(go_uint32("1000", 10).unwrap(), 1000);
        assert_eq!(go_uint32("+7", 10).unwrap(), 7);
        assert_eq!(go_uint32("4294967296", 10).unwrap(), 0, "wraps to root");
        assert_eq!(go_uint32("-1", 10).unwrap(), u32::MAX);
        assert_eq!(go_uint32("0x10", 0).unwrap(), 16);
        assert_eq!(go_uint32("010", 0).unwrap(), 8);
        assert_eq!(go_uint32("0b1_0", 0).unwrap(), 2);
        assert_eq!(go_uint32("4294967296", 0).unwrap(), 0);
        assert!(go_uint32("-1", 0).is_err(), "runc refuses a negative gid");
        assert!(go_uint32("1a", 10).is_err());
        assert!(go_uint32("", 10).is_err());
        assert!(go_uint32("--1", 10).is_err());
    }

    fn process(json: serde_json::Value) -> Process {
        serde_json::from_value(json).unwrap()
    }

    fn ceiling() -> Process {
        process(serde_json::json!({
            "cwd": "/",
            "user": {"uid": 1000, "gid": 1000},
            "noNewPrivileges": true,
            "apparmorProfile": "container-default",
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"]
            }
        }))
    }

    #[test]
    fn what_the_container_lacks_is_taken_from_the_exec() {
        let mut exec = process(serde_json::json!({
            "cwd": "/",
            "user": {"uid": 1000, "gid": 1000},
            "capabilities": {
                "bounding": ["CAP_KILL", "CAP_SYS_ADMIN"],
                "effective": ["CAP_KILL", "CAP_CHOWN"],
                "ambient": ["CAP_KILL"]
            }
        }));
        let requested = exec.clone();
        let taken = hold_to(&mut exec, &ceiling()).unwrap();
        assert_eq!(
            members(exec.capabilities().as_ref(), CapSet::Bounding).len(),
            1
        );
        assert_eq!(
            members(exec.capabilities().as_ref(), CapSet::Effective),
            [Capability::Kill].into_iter().collect()
        );
        assert!(members(exec.capabilities().as_ref(), CapSet::Ambient).is_empty());
        assert_eq!(exec.no_new_privileges(), Some(true));
        assert_eq!(taken.len(), 4, "{taken:?}");
        let changed = differences(&requested, &exec);
        assert_eq!(
            changed,
            [
                "CAP_SYS_ADMIN in the bounding set",
                "CAP_CHOWN in the effective set",
                "CAP_KILL in the ambient set",
                "noNewPrivileges off"
            ]
        );
        let mut raw = serde_json::json!({"cwd": "/", "engineField": [1, 2], "capabilities": {
            "bounding": ["CAP_SYS_ADMIN", "CAP_KILL"], "effective": ["CAP_CHOWN", "CAP_KILL"],
            "ambient": ["CAP_KILL"], "unknownSet": ["x"]}});
        write_decided(&mut raw, &requested, &exec).unwrap();
        assert_eq!(
            raw["capabilities"]["bounding"],
            serde_json::json!(["CAP_KILL"])
        );
        assert_eq!(raw["capabilities"]["ambient"], serde_json::json!([]));
        assert_eq!(raw["capabilities"]["unknownSet"], serde_json::json!(["x"]));
        assert_eq!(raw["engineField"], serde_json::json!([1, 2]));
        assert_eq!(raw["noNewPrivileges"], true);
    }

    #[test]
    fn root_and_other_labels_are_refused() {
        let mut root = ceiling();
        root.user_mut().set_uid(0);
        let err = hold_to(&mut root, &ceiling()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the process would run as uid 0; the container's runs as uid 1000"
        );
        let mut group = ceiling();
        group.user_mut().set_additional_gids(Some(vec![0]));
        assert!(hold_to(&mut group, &ceiling()).is_err());
        let mut unconfined = ceiling();
        unconfined.set_apparmor_profile(Some("unconfined".into()));
        let err = hold_to(&mut unconfined, &ceiling()).unwrap_err();
        assert!(err.to_string().contains("`unconfined`"), "{err}");
        // Without a profile the runtime gives the container's.
        let mut unnamed = ceiling();
        unnamed.set_apparmor_profile(None);
        assert!(hold_to(&mut unnamed, &ceiling()).unwrap().is_empty());
    }

    #[test]
    fn the_checked_process_is_a_sealed_file_above_the_passed_descriptors() {
        let received: Vec<OsString> = [
            "--root",
            "/r",
            "exec",
            "--preserve-fds",
            "0x5",
            "--process",
            "/engine.json",
            "c1",
        ]
        .map(OsString::from)
        .to_vec();
        let inv = super::super::invocation::scan(&received).unwrap();
        let fd = sealed_file(b"{\"cwd\":\"/\"}", &inv).unwrap();
        assert!(fd >= 3 + 5, "{fd} is among the descriptors passed on");
        let args = replace_process_arg(&inv, &received, fd).unwrap();
        let path = format!("/proc/self/fd/{fd}");
        assert_eq!(args[6], OsString::from(&path));
        assert_eq!(args[..6], received[..6]);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"cwd\":\"/\"}");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{}"));
        assert!(written.is_err(), "the sealed file cannot be written");
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"cwd\":\"/\"}");
        nix::unistd::close(fd).unwrap();
    }
}
