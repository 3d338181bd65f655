//! The spec every run starts from (podman's defaults, from
//! `default.json`) and the root filesystems it can be pointed at.

use oci_spec::runtime::Spec;

/// The PATH a container gets when the user gives none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The default spec: podman's defaults for capabilities, namespaces,
/// masked and read-only paths and mounts, running `args` as root.
pub fn default_spec(id: &str, args: &[String]) -> Spec {
    // The template is data of this crate, checked by a unit test.
    let mut spec: Spec = serde_json::from_str(include_str!("default.json"))
        .unwrap_or_else(|e| panic!("built-in default.json is invalid: {e}"));
    spec.set_hostname(Some(id.chars().take(12).collect()));
    if let Some(process) = spec.process_mut() {
        process.set_args(Some(args.to_vec()));
        process.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    }
    spec
}

/// Points the spec at a root filesystem.
pub fn set_rootfs(spec: &mut Spec, path: &std::path::Path, readonly: bool) {
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(path.to_path_buf());
    root.set_readonly(Some(readonly));
    spec.set_root(Some(root));
}

/// The embedded default rootfs: the host's `/`, which the runtime driver
/// binds read-only at the bundle's `rootfs`, with writable scratch space
/// on tmpfs where programs expect it.
pub fn use_host_rootfs(spec: &mut Spec) {
    set_rootfs(spec, std::path::Path::new("rootfs"), true);
    let mounts = spec.mounts_mut().get_or_insert_default();
    for destination in ["/tmp", "/var/tmp", "/run"] {
        let mut mount = oci_spec::runtime::Mount::default();
        mount.set_destination(destination.into());
        mount.set_typ(Some("tmpfs".into()));
        mount.set_source(Some("tmpfs".into()));
        mount.set_options(Some(
            ["nosuid", "nodev", "mode=1777"].map(String::from).to_vec(),
        ));
        mounts.push(mount);
    }
}

/// The spec as config.json (see [`super::to_json`]): pretty-printed, with capability lists sorted
/// so that the same spec always gives the same bytes (and digest).
pub(super) fn config_json(spec: &Spec) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(spec)?;
    if let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    let mut json = serde_json::to_string_pretty(&value)?;
    json.push('\n');
    Ok(json)
}
