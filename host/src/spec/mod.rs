//! The container's OCI runtime spec: defaults, and the user's options
//! applied to them. Pure functions over [`oci_spec::runtime::Spec`].

pub mod caps;
pub mod seccomp;

use oci_spec::runtime::Spec;

/// The PATH a container gets when the user gives none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building or writing a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec could not be turned into JSON.
    #[error("cannot serialise the spec: {0}")]
    Serialize(#[from] serde_json::Error),
}

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

/// The spec as config.json: pretty-printed, with capability lists sorted
/// so that the same spec always gives the same bytes (and digest).
pub fn to_json(spec: &Spec) -> Result<String, SpecError> {
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
