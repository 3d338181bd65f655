//! What specgate's integration tests share beyond their own `util`
//! module: the plugins built from `plugins/` by this crate's build script,
//! and the OCI runtime-spec schema every config.json must satisfy.

use std::path::{Path, PathBuf};

/// The directory holding the compiled plugins.
pub fn plugins_dir() -> &'static Path {
    Path::new(env!("SPECGATE_TEST_PLUGINS"))
}

/// The directory `.ci/setup` builds the Python and JavaScript example
/// plugins into.
pub fn components_dir() -> PathBuf {
    repo_root().join("plugins/target/components")
}

/// A compiled plugin by crate name (`drop-capabilities`, `hostile`, ...),
/// or by the name of a component `.ci/setup` builds (`deny-commands` from
/// Python, `tmpfs` from JavaScript).
///
/// # Panics
/// When the plugin was not built: the build script builds the Rust ones,
/// `.ci/setup` the others.
pub fn plugin(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let rust = plugins_dir().join(&file);
    if rust.is_file() {
        return rust;
    }
    let component = components_dir().join(&file);
    assert!(
        component.is_file(),
        "plugin {name} was not built at {} nor {}: run .ci/setup, which builds the \
         Python and JavaScript example plugins",
        rust.display(),
        component.display()
    );
    component
}

/// The repository's root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("SPECGATE_REPO_ROOT"))
}

/// The OCI runtime-spec schema directory, in `shared/` beside the
/// repository.
pub fn schema_dir() -> PathBuf {
    repo_root().join("../shared/oci-runtime-spec/schema")
}

/// Checks a config.json against the OCI runtime-spec schema; the error
/// lists every violation with its location.
pub fn validate_config(config: &serde_json::Value) -> Result<(), String> {
    let dir = schema_dir()
        .canonicalize()
        .map_err(|e| format!("schema directory {}: {e}", schema_dir().display()))?;
    let path = dir.join("config-schema.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .with_base_uri(format!("file://{}", path.display()))
        .with_retriever(SchemaFiles { dir })
        .build(&schema)
        .map_err(|e| format!("schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Serves the schema's `$ref`s from the schema directory. The platform
/// sections that directory lacks (FreeBSD, Solaris, z/OS, ...) are
/// accepted as anything: specgate never writes them.
struct SchemaFiles {
    dir: PathBuf,
}

impl jsonschema::Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri.path().as_str();
        let name = path.rsplit('/').next().unwrap_or(path);
        let file = self.dir.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(serde_json::from_str(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `config-solaris.json#/solaris`, say: an open section.
                let section = name
                    .strip_prefix("config-")
                    .and_then(|n| n.strip_suffix(".json"))
                    .ok_or_else(|| format!("{}: {e}", file.display()))?;
                Ok(serde_json::json!({ section: {} }))
            }
            Err(e) => Err(format!("{}: {e}", file.display()).into()),
        }
    }
}

/// A root filesystem made of Debian's busybox-static: `/bin/busybox` and a
/// link per applet, plus `/etc` and `/tmp`. Removed when dropped.
///
/// # Panics
/// When busybox-static is not installed: `.ci/setup` installs it.
pub fn busybox_rootfs() -> tempfile::TempDir {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: install Debian's busybox-static (.ci/setup does)"
    );
    let dir = tempfile::tempdir().expect("temporary rootfs");
    let bin = dir.path().join("bin");
    for sub in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("rootfs directory");
    }
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
    }
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nwheel:x:10:nobody\nnogroup:x:65534:\n",
    )
    .expect("group");
    dir
}

pub mod cri;
