//! Each example plugin's effect, through `specgate spec` where the default
//! spec shows it, and in-process on a spec built for the case otherwise.

use oci_spec::runtime::{Capability, LinuxNamespaceType, Mount, Spec};
use specgate::policy::{
    Allocation, Entry, Grants, Limits, Mode, OnError, PluginHost, plugin::default_name,
};
use specgate::spec::caps::{self, CapSet};

use crate::util::*;

fn host() -> PluginHost {
    PluginHost::new(Some(shared_cache()), Limits::default(), Allocation::Pooled)
        .expect("plugin host")
}

/// Runs one plugin with settings over `spec`; the error message on failure.
fn run_one(name: &str, settings: &[(&str, &str)], spec: &mut Spec) -> Result<(), String> {
    let host = host();
    let path = plugin(name);
    let loaded = host
        .load(&default_name(&path), &path)
        .map_err(|e| e.to_string())?;
    let entry = Entry {
        plugin: &loaded,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        grants: Grants::default(),
        limits: Limits::default(),
        on_error: OnError::Deny,
    };
    host.run_chain(&[entry], spec, "test", Mode::Enforce)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn default_spec() -> Spec {
    specgate::spec::default_spec("test", &["/bin/sh".to_string()])
}

/// Adds capabilities to one set of the spec's process.
fn add_capabilities(spec: &mut Spec, set: CapSet, added: &[Capability]) {
    let process = spec.process_mut().get_or_insert_default();
    let mut all = process.capabilities().clone().unwrap_or_default();
    let mut current = caps::get(&all, set);
    current.extend(added.iter().copied());
    caps::put(&mut all, set, current);
    process.set_capabilities(Some(all));
}

/// The default spec sharing the host's namespaces of these kinds.
fn without_namespaces(kinds: &[LinuxNamespaceType]) -> Spec {
    let mut spec = default_spec();
    if let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        namespaces.retain(|ns| !kinds.contains(&ns.typ()));
    }
    spec
}

fn with_bind(mut spec: Spec, source: &str, destination: &str, options: &[&str]) -> Spec {
    let mut mount = Mount::default();
    mount.set_destination(destination.into());
    mount.set_typ(Some("bind".into()));
    mount.set_source(Some(source.into()));
    mount.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    spec.mounts_mut().get_or_insert_default().push(mount);
    spec
}

fn mount_options(spec: &Spec, destination: &str) -> Vec<String> {
    spec.mounts()
        .iter()
        .flatten()
        .find(|m| m.destination().to_str() == Some(destination))
        .and_then(|m| m.options().clone())
        .unwrap_or_default()
}

#[test]
fn without_plugins_the_default_spec_is_schema_valid() {
    let config = spec_with(&[], &[], &["/bin/sh", "-c", "echo hi"]).config();
    assert_eq!(config["process"]["args"][2], "echo hi");
    assert_eq!(cap_set(&config, "bounding").len(), 11);
}

#[test]
fn drop_capabilities_drops_the_configured_list_from_every_set() {
    let config = spec_with(
        &["drop-capabilities"],
        &["drop-capabilities.capabilities=chown, CAP_NET_BIND_SERVICE"],
        &["/bin/true"],
    )
    .config();
    for set in ["bounding", "effective", "permitted"] {
        let caps = cap_set(&config, set);
        assert!(!caps.contains(&"CAP_CHOWN".to_string()), "{set}: {caps:?}");
        assert!(!caps.contains(&"CAP_NET_BIND_SERVICE".to_string()), "{set}");
        assert!(caps.contains(&"CAP_KILL".to_string()), "{set}");
    }
}

#[test]
fn drop_capabilities_defaults_to_the_dangerous_set() {
    let mut spec = default_spec();
    add_capabilities(
        &mut spec,
        CapSet::Bounding,
        &[Capability::SysAdmin, Capability::NetRaw],
    );

    run_one("drop-capabilities", &[], &mut spec).unwrap();
    let bounding = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let bounding = bounding.bounding().clone().unwrap();
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert!(!bounding.contains(&Capability::NetRaw));
    assert!(bounding.contains(&Capability::Chown));
}

#[test]
fn drop_capabilities_refuses_unknown_settings() {
    let line = spec_with(
        &["drop-capabilities"],
        &["drop-capabilities.capabilites=CAP_CHOWN"],
        &["/bin/true"],
    )
    .failure(125)
    .to_string();
    assert!(
        line.starts_with("specgate: plugin drop-capabilities (")
            && line.ends_with("): configure: invalid settings: unknown setting `capabilites`"),
        "{line}"
    );
}

#[test]
fn readonly_mounts_makes_binds_read_only_except_allowed() {
    let spec = with_bind(default_spec(), "/srv/a", "/a", &["rbind", "rw"]);
    let mut spec = with_bind(spec, "/srv/b", "/b", &["rbind"]);
    let mut spec_allowed = spec.clone();

    // Neither bind set a flag, so each kept its source's: read-only sets
    // them all, since a remount would clear them (submounts read-only too).
    let read_only = ["rbind", "nosuid", "nodev", "noexec", "ro", "rro"];
    run_one("readonly-mounts", &[], &mut spec).unwrap();
    assert_eq!(mount_options(&spec, "/a"), read_only);
    assert_eq!(mount_options(&spec, "/b"), read_only);
    assert_eq!(mount_options(&spec, "/proc"), ["nosuid", "noexec", "nodev"]);

    run_one("readonly-mounts", &[("allow", "/b")], &mut spec_allowed).unwrap();
    assert_eq!(mount_options(&spec_allowed, "/a"), read_only);
    assert_eq!(mount_options(&spec_allowed, "/b"), ["rbind"]);
}

#[test]
fn require_namespaces_creates_what_is_missing() {
    let mut spec = without_namespaces(&[LinuxNamespaceType::Network, LinuxNamespaceType::Pid]);
    run_one("require-namespaces", &[], &mut spec).unwrap();
    let types: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|ns| ns.typ())
        .collect();
    assert!(types.contains(&LinuxNamespaceType::Network));
    assert!(types.contains(&LinuxNamespaceType::Pid));
}

#[test]
fn require_namespaces_takes_a_configured_set() {
    let config = spec_with(
        &["require-namespaces"],
        &["require-namespaces.namespaces=pid,time"],
        &["/bin/true"],
    )
    .config();
    assert!(namespace_types(&config).contains(&"time".to_string()));

    let line = spec_with(
        &["require-namespaces"],
        &["require-namespaces.namespaces=pid,bogus"],
        &["/bin/true"],
    )
    .failure(125)
    .to_string();
    assert!(
        line.ends_with(
            "configure: invalid settings: setting `namespaces`: `bogus` is not a namespace kind"
        ),
        "{line}"
    );
}

#[test]
fn mount_allowlist_denies_sources_outside_the_prefixes() {
    let settings = [("prefixes", "/srv/data")];
    let mut allowed = with_bind(default_spec(), "/srv/data/x", "/x", &["rbind"]);
    run_one("mount-allowlist", &settings, &mut allowed).unwrap();

    for source in ["/srv/database", "/srv/data/../../etc", "/etc"] {
        let mut spec = with_bind(default_spec(), source, "/x", &["rbind"]);
        let err = run_one("mount-allowlist", &settings, &mut spec).unwrap_err();
        assert!(
            err.ends_with(&format!(
                "validate: denied: bind mount of host path `{source}` at `/x` is not under an allowed prefix"
            )),
            "{err}"
        );
    }
}

#[test]
fn deny_privileged_denies_sys_admin_and_host_namespaces() {
    run_one("deny-privileged", &[], &mut default_spec()).unwrap();

    let mut spec = default_spec();
    add_capabilities(&mut spec, CapSet::Ambient, &[Capability::SysAdmin]);
    let err = run_one("deny-privileged", &[], &mut spec).unwrap_err();
    assert!(
        err.ends_with("validate: denied: privileged: the container holds CAP_SYS_ADMIN"),
        "{err}"
    );

    let mut spec = without_namespaces(&[LinuxNamespaceType::Network]);
    let err = run_one("deny-privileged", &[], &mut spec).unwrap_err();
    assert!(
        err.ends_with(
            "validate: denied: privileged: the container shares the host's network namespace"
        ),
        "{err}"
    );
    run_one("deny-privileged", &[("host-namespaces", "pid")], &mut spec).unwrap();
}

#[test]
fn a_chain_applies_plugins_in_order_and_validators_see_the_result() {
    // deny-privileged refuses CAP_CHOWN, which the default spec holds:
    // the run passes only because drop-capabilities, earlier in the chain,
    // removed it before the validators looked.
    let out = spec_with(
        &[
            "drop-capabilities",
            "require-namespaces",
            "readonly-mounts",
            "deny-privileged",
        ],
        &[
            "drop-capabilities.capabilities=CAP_CHOWN",
            "deny-privileged.capabilities=CAP_CHOWN",
        ],
        &["/bin/true"],
    );
    let config = out.config();
    assert!(!cap_set(&config, "effective").contains(&"CAP_CHOWN".to_string()));
}
