//! Plugins from an OCI registry: a real registry (Debian's
//! docker-registry, distribution 2.8) started on 127.0.0.1 for each test,
//! keys made by openssl, crafted manifests put with curl.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::util::*;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry of its own: storage, config and port, stopped on drop.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Registry {
    /// Starts a registry, with htpasswd auth for `user` when given.
    fn start(user: Option<(&str, &str)>) -> Self {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is missing: apt-get install apache2-utils");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: specgate-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(20, || TcpStream::connect(&addr).is_ok());
        assert!(
            TcpStream::connect(&addr).is_ok(),
            "the registry did not start"
        );
        Registry { child, dir, addr }
    }

    /// `ADDR/policies/NAME`.
    fn repo(&self, name: &str) -> String {
        format!("{}/policies/{name}", self.addr)
    }

    /// A blob's file in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// GETs a manifest with curl.
    fn get_manifest(&self, repo_and_tag: &str) -> serde_json::Value {
        let (repo, tag) = repo_and_tag.rsplit_once(':').unwrap();
        let repo = repo.trim_start_matches(&format!("{}/", self.addr));
        let out = Command::new("curl")
            .args([
                "-sSf",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
            ])
            .arg(format!("http://{}/v2/{repo}/manifests/{tag}", self.addr))
            .output()
            .expect("curl is missing");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// PUTs a manifest with curl, as a registry client with no checks of
    /// its own would.
    fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) -> String {
        let body = serde_json::to_vec(manifest).unwrap();
        let out = Command::new("curl")
            .args([
                "-sSf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
                "@-",
            ])
            .arg(format!(
                "http://{}/v2/policies/{repo}/manifests/{tag}",
                self.addr
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(&body)?;
                child.wait_with_output()
            })
            .expect("curl is missing");
        assert!(out.status.success(), "{out:?}");
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))
    }
}

/// The error of a command that failed with 125: its last line on stderr
/// (before it, only notes of plain HTTP).
trait Refused {
    fn refused(&self) -> String;
}

impl Refused for Outcome {
    #[track_caller]
    fn refused(&self) -> String {
        assert_eq!(self.code, Some(125), "expected exit 125, got {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines[..lines.len().saturating_sub(1)]
                .iter()
                .all(|l| l.contains("plain HTTP")),
            "{self:#?}"
        );
        lines.last().unwrap_or(&"").to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A specgate with its own cache, and credentials only from `auth` (no
/// file of the machine's).
fn cmd(cache: &Path, auth: Option<&Path>) -> Command {
    let mut cmd = specgate_with_cache(cache);
    cmd.env("HOME", cache).env_remove("XDG_RUNTIME_DIR");
    match auth {
        Some(file) => cmd.env("REGISTRY_AUTH_FILE", file),
        None => cmd.env("REGISTRY_AUTH_FILE", cache.join("no-auth.json")),
    };
    cmd
}

/// A key pair made by openssl: `dir/NAME.key` (PKCS#8) and `NAME.pub`.
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let sh = format!(
        "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out {0} && openssl ec -in {0} -pubout -out {1} 2>/dev/null",
        key.display(),
        public.display()
    );
    let status = Command::new("sh")
        .args(["-c", &sh])
        .status()
        .expect("openssl is missing");
    assert!(status.success());
    (key, public)
}

/// Pushes a test plugin; returns `repo@digest`.
fn push(registry: &Registry, cache: &Path, plugin_name: &str, tag: &str) -> String {
    let reference = format!("{}:{tag}", registry.repo(plugin_name));
    let out = run(cmd(cache, None)
        .args(["plugin", "push"])
        .arg(plugin(plugin_name))
        .arg(&reference));
    let pinned = out.success().trim().to_string();
    assert!(
        pinned.starts_with(&format!("{}@sha256:", registry.repo(plugin_name))),
        "{pinned}"
    );
    assert!(out.stderr.contains("plain HTTP"), "{}", out.stderr);
    pinned
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spec(cache: &Path, policy: &Path) -> Outcome {
    run(cmd(cache, None)
        .arg("spec")
        .arg("--policy")
        .arg(policy)
        .args(["--", "/bin/true"]))
}

fn store_file(cache: &Path, digest: &str) -> PathBuf {
    cache
        .join("store")
        .join(format!("sha256-{}", digest.trim_start_matches("sha256:")))
}

#[test]
fn a_plugin_is_pushed_and_pulled_by_digest_and_by_tag() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    let pinned = push(&registry, cache.path(), "drop-capabilities", "v1");
    let digest = pinned.rsplit_once('@').unwrap().1;

    // The artifact as the CNCF Wasm layout has it.
    let manifest = registry.get_manifest(&format!("{}:v1", registry.repo("drop-capabilities")));
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        layer,
        format!("sha256:{}", sha256_of(&plugin("drop-capabilities")))
    );

    let by_digest = private_tempdir();
    let out = run(cmd(by_digest.path(), None).args(["plugin", "pull", &pinned]));
    assert_eq!(out.success(), format!("{pinned}  pulled\n"));
    let out = run(cmd(by_digest.path(), None).args(["plugin", "pull", &pinned]));
    assert_eq!(out.success(), format!("{pinned}  already in the store\n"));
    assert_eq!(
        std::fs::read(store_file(by_digest.path(), layer)).unwrap(),
        std::fs::read(plugin("drop-capabilities")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(by_digest.path().join("store"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let by_tag = private_tempdir();
    let tagged = format!("{}:v1", registry.repo("drop-capabilities"));
    let out = run(cmd(by_tag.path(), None).args(["plugin", "pull", &tagged]));
    assert_eq!(out.success(), format!("{pinned}  pulled\n"));
    assert!(store_file(by_tag.path(), digest).exists());

    let missing = format!("{}:v2", registry.repo("drop-capabilities"));
    let line = run(cmd(by_tag.path(), None).args(["plugin", "pull", &missing]))
        .stderr
        .clone();
    assert!(
        line.contains(&missing) && line.contains("not found"),
        "{line}"
    );
}

#[test]
fn a_pulled_plugin_runs_with_no_registry_and_a_tag_is_refused_in_enforce() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    let pinned = push(&registry, cache.path(), "drop-capabilities", "v1");
    let tagged = format!("{}:v1", registry.repo("drop-capabilities"));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &format!("[[plugin]]\nref = {pinned:?}\nsettings = {{ capabilities = \"CAP_CHOWN\" }}\n"),
    );

    // Not pulled yet: the run fails at once, naming what to run.
    let line = spec(cache.path(), &policy).refused();
    assert!(
        line.contains(&format!("{pinned} is not in the plugin store"))
            && line.contains(&format!("`specgate plugin pull {pinned}`"))
            && line.contains(&format!(
                "`specgate plugin compile --policy {}`",
                policy.display()
            )),
        "{line}"
    );

    let out = run(cmd(cache.path(), None)
        .args(["plugin", "compile", "--policy"])
        .arg(&policy));
    assert!(
        out.success().starts_with("drop-capabilities  pulled\n"),
        "{out:?}"
    );

    // Pruning by the policy keeps the registry plugin's compiled entry.
    let layer = sha256_of(&plugin("drop-capabilities"));
    let out = run(cmd(cache.path(), None)
        .args(["plugin", "cache", "prune", "--policy"])
        .arg(&policy));
    assert!(!out.success().contains(&layer[..12]), "{out:?}");
    assert!(
        run(cmd(cache.path(), None).args(["plugin", "cache", "list"]))
            .success()
            .contains(&layer[..12])
    );

    // The registry gone: runs need no network.
    drop(registry);
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run(cmd(cache.path(), None)
        .args(["run", "--name", "specgate-test-registry-run", "--policy"])
        .arg(&policy)
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sh", "-c", "grep CapBnd /proc/self/status"]));
    let bounding = out.success().split_whitespace().last().unwrap().to_string();
    let bits = u64::from_str_radix(&bounding, 16).unwrap();
    assert_eq!(
        bits & 1,
        0,
        "CAP_CHOWN (bit 0) is still bounding: {bounding}"
    );
    assert_ne!(bits, 0);

    // A tag can move: refused in enforce mode, before anything loads.
    let enforce = write_policy(dir.path(), &format!("[[plugin]]\nref = {tagged:?}\n"));
    let line = spec(cache.path(), &enforce).refused();
    assert!(
        line.contains(&format!("{tagged} is a tag, which can move")),
        "{line}"
    );
    let line = run(cmd(cache.path(), None)
        .args(["plugin", "compile", "--policy"])
        .arg(&enforce))
    .refused();
    assert!(line.contains("is a tag"), "{line}");
    // In monitor mode a tag is taken as it was last pulled; this one never was.
    let monitor = write_policy(
        dir.path(),
        &format!("mode = \"monitor\"\n[[plugin]]\nref = {tagged:?}\n"),
    );
    let line = spec(cache.path(), &monitor).refused();
    assert!(line.contains("is not in the plugin store"), "{line}");
}

#[test]
fn a_tag_in_monitor_mode_runs_as_last_pulled() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    push(&registry, cache.path(), "drop-capabilities", "v1");
    let tagged = format!("{}:v1", registry.repo("drop-capabilities"));
    let dir = tempfile::tempdir().unwrap();
    let monitor = write_policy(
        dir.path(),
        &format!(
            "mode = \"monitor\"\n[[plugin]]\nref = {tagged:?}\nsettings = {{ capabilities = \"CAP_CHOWN\" }}\n"
        ),
    );
    run(cmd(cache.path(), None)
        .args(["plugin", "compile", "--policy"])
        .arg(&monitor))
    .success();
    drop(registry);
    let config = spec(cache.path(), &monitor).config();
    assert!(!cap_set(&config, "bounding").contains(&"CAP_CHOWN".to_string()));
}

#[test]
fn what_the_registry_or_the_store_changed_is_refused() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    let pinned = push(&registry, cache.path(), "drop-capabilities", "v1");
    let manifest = registry.get_manifest(&format!("{}:v1", registry.repo("drop-capabilities")));
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // A store entry changed after the pull: refused at load.
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &format!("[[plugin]]\nref = {pinned:?}\n"));
    run(cmd(cache.path(), None).args(["plugin", "pull", &pinned])).success();
    spec(cache.path(), &policy).config();
    let stored = store_file(cache.path(), &layer);
    std::fs::copy(plugin("deny-privileged"), &stored).unwrap();
    let line = spec(cache.path(), &policy).refused();
    assert!(line.contains("but the policy pins"), "{line}");
    // Nor is a link in the store followed.
    std::fs::remove_file(&stored).unwrap();
    std::os::unix::fs::symlink(plugin("drop-capabilities"), &stored).unwrap();
    let line = spec(cache.path(), &policy).refused();
    assert!(line.contains(&stored.display().to_string()), "{line}");

    // The registry serves another component under the layer's digest.
    let served = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&served).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&served, &bytes).unwrap();
    let fresh = private_tempdir();
    let line = run(cmd(fresh.path(), None).args(["plugin", "pull", &pinned])).refused();
    // The client's stream or the check after it: either names both digests.
    let actual = format!("sha256:{}", {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    });
    assert!(line.contains(&layer) && line.contains(&actual), "{line}");
    // The registry serves another manifest under the digest asked for.
    let manifest_file = registry.blob_file(pinned.rsplit_once('@').unwrap().1);
    let original = std::fs::read(&manifest_file).unwrap();
    let mut changed = original.clone();
    changed.push(b'\n');
    std::fs::write(&manifest_file, &changed).unwrap();
    let line = run(cmd(fresh.path(), None).args(["plugin", "pull", &pinned])).refused();
    assert!(
        line.contains(pinned.rsplit_once('@').unwrap().1)
            && (line.contains("Invalid digest") || line.contains("the registry sent a manifest")),
        "{line}"
    );
    std::fs::write(&manifest_file, &original).unwrap();
    // Longer than the manifest says: read no further.
    bytes.push(0);
    std::fs::write(&served, &bytes).unwrap();
    let line = run(cmd(fresh.path(), None).args(["plugin", "pull", &pinned])).refused();
    assert!(line.contains("the component is larger than"), "{line}");
    assert!(!store_file(fresh.path(), &layer).exists());
    assert!(!store_file(fresh.path(), pinned.rsplit_once('@').unwrap().1).exists());
}

#[test]
fn manifests_that_are_not_one_wasm_layer_are_refused() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    push(&registry, cache.path(), "drop-capabilities", "v1");
    let manifest = registry.get_manifest(&format!("{}:v1", registry.repo("drop-capabilities")));
    let pull = |manifest: &serde_json::Value, tag: &str| {
        let digest = registry.put_manifest("drop-capabilities", tag, manifest);
        let reference = format!("{}@{digest}", registry.repo("drop-capabilities"));
        let fresh = private_tempdir();
        run(cmd(fresh.path(), None).args(["plugin", "pull", &reference])).refused()
    };
    let mut two = manifest.clone();
    let layer = two["layers"][0].clone();
    two["layers"].as_array_mut().unwrap().push(layer);
    assert!(pull(&two, "two").contains("2 layers; a plugin artifact has exactly one"));
    let mut tar = manifest.clone();
    tar["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    assert!(
        pull(&tar, "tar").contains("layer media type `application/vnd.oci.image.layer.v1.tar`")
    );
    let mut image = manifest.clone();
    image["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    assert!(pull(&image, "image").contains("not a Wasm artifact"));
    let mut huge = manifest.clone();
    huge["layers"][0]["size"] = (1u64 << 40).into();
    assert!(pull(&huge, "huge").contains("over the plugin file limit"));
    // A size smaller than the blob: no more than announced is read.
    let mut short = manifest.clone();
    short["layers"][0]["size"] = 100.into();
    assert!(pull(&short, "short").contains("is larger than 100 bytes"));
}

/// A registry with a plugin pushed, keys, and a policy requiring a
/// signature by `team.pub`.
struct Signed {
    registry: Registry,
    cache: tempfile::TempDir,
    keys: tempfile::TempDir,
    pinned: String,
    policy: PathBuf,
}

impl Signed {
    fn new(annotations: &str) -> Self {
        let registry = Registry::start(None);
        let cache = private_tempdir();
        let pinned = push(&registry, cache.path(), "drop-capabilities", "v1");
        let keys = tempfile::tempdir().unwrap();
        keypair(keys.path(), "team");
        keypair(keys.path(), "other");
        let policy = write_policy(
            keys.path(),
            &format!(
                "[[plugin]]\nref = {pinned:?}\n[plugin.verify]\nkeys = [\"team.pub\"]\n{annotations}"
            ),
        );
        Signed {
            registry,
            cache,
            keys,
            pinned,
            policy,
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.path().join(name)
    }

    fn sign(&self, key: &str, annotations: &[&str]) {
        let mut command = cmd(self.cache.path(), None);
        command
            .args(["plugin", "sign", &self.pinned, "--key"])
            .arg(self.key(key));
        for a in annotations {
            command.args(["--annotation", a]);
        }
        let out = run(&mut command);
        assert!(out.success().trim().ends_with(".sig"), "{out:?}");
    }

    fn compile(&self) -> Outcome {
        run(cmd(self.cache.path(), None)
            .args(["plugin", "compile", "--policy"])
            .arg(&self.policy))
    }

    /// Compiling refuses the plugin, naming the team's key it does not
    /// verify with, and a run then refuses it as unsigned.
    fn assert_refused_by_team_key(&self) {
        let line = self.compile().refused();
        assert!(
            line.contains(&format!(
                "does not verify with key {}",
                self.key("team.pub").display()
            )),
            "{line}"
        );
        assert!(
            spec(self.cache.path(), &self.policy)
                .refused()
                .contains("must be signed by")
        );
    }
}

#[test]
fn an_unsigned_plugin_or_one_signed_by_another_key_is_refused() {
    let s = Signed::new("");
    let line = s.compile().refused();
    assert!(
        line.contains(&format!(
            "no valid signature by {}",
            s.key("team.pub").display()
        )) && line.contains("the registry has no signature"),
        "{line}"
    );
    // Pulled, but never verified: a run refuses it, naming the key.
    let line = spec(s.cache.path(), &s.policy).refused();
    assert!(
        line.contains(&format!(
            "must be signed by {}",
            s.key("team.pub").display()
        )) && line.contains("no signature by"),
        "{line}"
    );
    // Refused before anything of it was compiled.
    let layer = sha256_of(&plugin("drop-capabilities"));
    assert!(
        !run(cmd(s.cache.path(), None).args(["plugin", "cache", "list"]))
            .success()
            .contains(&layer[..12])
    );
    s.sign("other.key", &[]);
    s.assert_refused_by_team_key();
}

#[test]
fn a_signed_plugin_loads_without_verifying_again_until_its_keys_change() {
    let s = Signed::new("annotations = { team = \"infra\" }\n");
    s.sign("team.key", &["team=infra"]);
    let out = s.compile();
    assert!(
        out.success().contains(&format!(
            "drop-capabilities  verified with {}",
            s.key("team.pub").display()
        )),
        "{out:?}"
    );
    spec(s.cache.path(), &s.policy).config();
    // Verified once: the signature is not fetched again (the registry
    // is gone), and a second compile finds nothing to verify.
    let Signed {
        registry,
        cache,
        keys,
        pinned,
        policy,
    } = s;
    drop(registry);
    spec(cache.path(), &policy).config();
    let out = run(cmd(cache.path(), None)
        .args(["plugin", "compile", "--policy"])
        .arg(&policy));
    assert!(!out.success().contains("verified"), "{out:?}");
    // Another key list: no verification by it is recorded.
    let other = write_policy(
        keys.path(),
        &format!("[[plugin]]\nref = {pinned:?}\n[plugin.verify]\nkeys = [\"other.pub\"]\n"),
    );
    let line = spec(cache.path(), &other).refused();
    assert!(
        line.contains(&format!(
            "must be signed by {}",
            keys.path().join("other.pub").display()
        )),
        "{line}"
    );
    // Other annotations than the signature carries.
    let annotated = write_policy(
        keys.path(),
        &format!(
            "[[plugin]]\nref = {pinned:?}\n[plugin.verify]\nkeys = [\"team.pub\"]\nannotations = {{ team = \"web\" }}\n"
        ),
    );
    let line = spec(cache.path(), &annotated).refused();
    assert!(
        line.contains("lacks annotation team=web (it has team=infra)"),
        "{line}"
    );
    // The key file replaced by another key: its fingerprint has no record.
    std::fs::copy(keys.path().join("other.pub"), keys.path().join("team.pub")).unwrap();
    assert!(
        spec(cache.path(), &policy)
            .refused()
            .contains("must be signed by")
    );
}

#[test]
fn a_tampered_signature_is_refused() {
    let s = Signed::new("");
    s.sign("team.key", &[]);
    let digest = s.pinned.rsplit_once('@').unwrap().1;
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let mut manifest = s
        .registry
        .get_manifest(&format!("{}:{tag}", s.registry.repo("drop-capabilities")));
    // A signature by the right key, over something else.
    let other = s.keys.path().join("other-message");
    std::fs::write(&other, "something else").unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "openssl dgst -sha256 -sign {} {} | base64 -w0",
                s.key("team.key").display(),
                other.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] =
        String::from_utf8(out.stdout).unwrap().into();
    s.registry
        .put_manifest("drop-capabilities", &tag, &manifest);
    s.assert_refused_by_team_key();
}

#[test]
fn a_signed_file_is_verified_once_from_its_sig() {
    let keys = tempfile::tempdir().unwrap();
    let (team_key, _) = keypair(keys.path(), "team");
    keypair(keys.path(), "other");
    let file = keys.path().join("drop_capabilities.wasm");
    std::fs::copy(plugin("drop-capabilities"), &file).unwrap();
    let cache = private_tempdir();
    let policy = write_policy(
        keys.path(),
        "[[plugin]]\npath = \"drop_capabilities.wasm\"\nverify = { keys = [\"team.pub\"] }\n",
    );
    let compile = || {
        run(cmd(cache.path(), None)
            .args(["plugin", "compile", "--policy"])
            .arg(&policy))
    };
    let line = compile().refused();
    assert!(
        line.contains("no signature file") && line.contains(".wasm.sig"),
        "{line}"
    );
    // Signed as `cosign sign-blob` does, by openssl here.
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "openssl dgst -sha256 -sign {} {} | base64 -w0 > {}.sig",
                team_key.display(),
                file.display(),
                file.display()
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(compile().success().contains("verified with"));
    spec(cache.path(), &policy).config();
    // Verified once: the signature is no longer needed...
    std::fs::remove_file(format!("{}.sig", file.display())).unwrap();
    spec(cache.path(), &policy).config();
    // ...but another file is another digest, with no verification.
    std::fs::copy(plugin("deny-privileged"), &file).unwrap();
    let line = spec(cache.path(), &policy).refused();
    assert!(line.contains("must be signed by"), "{line}");
    // specgate signs files the same way.
    let out = run(cmd(cache.path(), None)
        .args(["plugin", "sign"])
        .arg(&file)
        .arg("--key")
        .arg(&team_key));
    assert_eq!(out.success().trim(), format!("{}.sig", file.display()));
    compile().success();
    spec(cache.path(), &policy).config();
}

#[test]
fn a_private_registry_takes_the_auth_files_credentials_and_says_nothing_of_them() {
    let registry = Registry::start(Some(("ci", "hunter2-secret")));
    let cache = private_tempdir();
    let reference = format!("{}:v1", registry.repo("drop-capabilities"));
    let auth = |password: &str| {
        let path = cache.path().join(format!("auth-{password}.json"));
        let encoded = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("ci:{password}"))
        };
        std::fs::write(
            &path,
            serde_json::json!({ "auths": { registry.addr.clone(): { "auth": encoded } } })
                .to_string(),
        )
        .unwrap();
        path
    };
    let push = |auth: Option<&Path>| {
        run(cmd(cache.path(), auth)
            .args(["plugin", "push"])
            .arg(plugin("drop-capabilities"))
            .arg(&reference))
    };
    let line = push(None).refused();
    assert!(
        line.contains("the registry refused the credentials"),
        "{line}"
    );
    let wrong = auth("wrong-password");
    let out = push(Some(&wrong));
    let line = out.refused();
    assert!(
        line.contains("the registry refused the credentials"),
        "{line}"
    );
    assert!(!out.stderr.contains("wrong-password") && !out.stdout.contains("wrong-password"));
    let right = auth("hunter2-secret");
    let out = push(Some(&right));
    let pinned = out.success().trim().to_string();
    assert!(!out.stderr.contains("hunter2"));
    // Docker's file, when no podman file has the registry.
    let home = private_tempdir();
    std::fs::create_dir(home.path().join(".docker")).unwrap();
    std::fs::copy(&right, home.path().join(".docker/config.json")).unwrap();
    let out = run(cmd(cache.path(), None)
        .env("HOME", home.path())
        .args(["plugin", "pull", &pinned]));
    assert_eq!(out.success(), format!("{pinned}  pulled\n"));
    // A wrong password on pull, with debug logs on: still not said.
    let fresh = private_tempdir();
    let out = run(cmd(fresh.path(), Some(&wrong))
        .env("SPECGATE_LOG", "trace")
        .args(["plugin", "pull", &pinned]));
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr.contains("refused the credentials"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"), "{}", out.stderr);
}

#[test]
fn inspect_shows_a_stored_plugins_digest_annotations_and_signatures() {
    let registry = Registry::start(None);
    let cache = private_tempdir();
    let keys = tempfile::tempdir().unwrap();
    let (team_key, team_pub) = keypair(keys.path(), "team");
    let out = run(cmd(cache.path(), None)
        .args([
            "plugin",
            "push",
            "--annotation",
            "org.opencontainers.image.version=1.2",
        ])
        .arg(plugin("drop-capabilities"))
        .arg(format!("{}:v1", registry.repo("drop-capabilities"))));
    let pinned = out.success().trim().to_string();
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();
    // Not pulled: said, with the command that pulls it.
    let line = run(cmd(cache.path(), None).args(["plugin", "inspect", &pinned])).refused();
    assert!(
        line.contains(&format!("`specgate plugin pull {pinned}`")),
        "{line}"
    );

    run(cmd(cache.path(), None)
        .args(["plugin", "sign", &pinned, "--key"])
        .arg(&team_key)
        .args(["-a", "team=infra"]))
    .success();
    let out = run(cmd(cache.path(), None)
        .args(["plugin", "pull", &pinned, "--key"])
        .arg(&team_pub));
    assert!(
        out.success()
            .contains(&format!("verified with {}", team_pub.display())),
        "{out:?}"
    );
    drop(registry);
    let text = run(cmd(cache.path(), None).args(["plugin", "inspect", &pinned]))
        .success()
        .to_string();
    assert!(text.contains(&format!("digest: {digest}\n")), "{text}");
    assert!(
        text.contains("annotations: org.opencontainers.image.version=1.2\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("signature: verified with {}", team_pub.display()))
            && text.contains("signed annotations: team=infra"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(
        run(cmd(cache.path(), None).args(["plugin", "inspect", "--json", &pinned])).success(),
    )
    .unwrap();
    assert_eq!(json["artifact"]["digest"], digest.as_str());
    assert_eq!(
        json["sha256"],
        sha256_of(&plugin("drop-capabilities")).as_str()
    );
    assert_eq!(
        json["artifact"]["signatures"][0]["key_path"],
        team_pub.display().to_string().as_str()
    );
    assert_eq!(
        json["artifact"]["signatures"][0]["annotations"]["team"],
        "infra"
    );
}
