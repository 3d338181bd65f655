//! The gate holds: a plugin without grants cannot widen what a container
//! reaches through its mounts, however it words the change. Each attack
//! runs for real (runc, and specgate's chroot isolation), twice: enforcing,
//! where the run is refused naming the grant that would allow the change;
//! and in monitor mode, where the refused change is left out and the
//! container runs, to show what it actually sees.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use specgate::policy::{Allocation, Entry, Grants, Limits, Mode, OnError, PluginHost};

use crate::util::*;

const ISOLATIONS: [&str; 2] = ["oci", "chroot"];

/// The end of the error line of a mount change refused for want of the
/// `mount-options` grant.
const NEEDS_MOUNT_OPTIONS: &str = "widens the container and is not granted; the operator can \
     allow it with `mount-options = true` in this plugin's grants";

/// One run of `sh -c SCRIPT` with the hostile plugin in `behavior` (and
/// its other settings), in `rootfs` (none: the host's `/`).
struct Attack<'a> {
    isolation: &'a str,
    rootfs: Option<&'a Path>,
    behavior: &'a str,
    settings: Vec<String>,
    options: Vec<String>,
    before: Vec<&'a str>,
}

impl<'a> Attack<'a> {
    fn new(isolation: &'a str, rootfs: Option<&'a Path>, behavior: &'a str) -> Self {
        Attack {
            isolation,
            rootfs,
            behavior,
            settings: vec![],
            options: vec![],
            before: vec![],
        }
    }

    fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push(format!("hostile.{key}={value}"));
        self
    }

    fn option(mut self, option: &str) -> Self {
        self.options.push(option.to_string());
        self
    }

    /// A plugin (by crate name) to run before the hostile one.
    fn after(mut self, plugin: &'a str) -> Self {
        self.before.push(plugin);
        self
    }

    fn run(&self, monitor: bool, script: &str) -> Outcome {
        let mut cmd = specgate();
        cmd.args(["run", "--no-default-policy", "--isolation", self.isolation]);
        if monitor {
            cmd.args(["--policy-mode", "monitor"]);
        }
        self.finish(&mut cmd, &["hostile"], script)
    }

    /// The rest of a command line: rootfs, plugins, settings, options and
    /// the script.
    fn finish(&self, cmd: &mut std::process::Command, last: &[&str], script: &str) -> Outcome {
        if let Some(rootfs) = self.rootfs {
            cmd.arg("--rootfs").arg(rootfs);
        }
        let mut plugins = self.before.clone();
        plugins.extend(last);
        let mut settings = vec![format!("hostile.behavior={}", self.behavior)];
        settings.extend(self.settings.iter().cloned());
        let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
        with_chain(cmd, &plugins, &settings);
        cmd.args(&self.options)
            .args(["--", "/bin/sh", "-c", script]);
        run(cmd)
    }

    /// Runs with the hostile plugin granted `mount-options`: the change
    /// applies, which shows the probe would see it. The container's
    /// output.
    #[track_caller]
    fn granted(&self, script: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(
            &file,
            format!(
                "[[plugin]]\npath = {:?}\n[plugin.grants]\nmount-options = true\n",
                plugin("hostile")
            ),
        )
        .unwrap();
        let mut cmd = specgate();
        cmd.args(["run", "--policy"])
            .arg(&file)
            .args(["--isolation", self.isolation]);
        let out = self.finish(&mut cmd, &[], script);
        out.success().to_string()
    }

    /// Asserts the run is refused, naming the grant it lacks, and returns
    /// the error line.
    #[track_caller]
    fn refused(&self, script: &str) -> String {
        let out = self.run(false, script);
        let line = out.failure(125).to_string();
        assert!(
            line.contains("plugin hostile (") && line.contains("mounts: change 0 ("),
            "{}: {line}",
            self.isolation
        );
        line
    }

    /// Runs in monitor mode, where the refused change is left out; the
    /// container's output.
    #[track_caller]
    fn seen(&self, script: &str) -> String {
        let out = self.run(true, script);
        assert!(
            out.stderr
                .contains("would deny (monitor mode): plugin hostile"),
            "{}: {out:#?}",
            self.isolation
        );
        out.success().to_string()
    }
}

/// The options /proc/self/mounts shows for `dest` in a container's output
/// of `grep`.
fn mount_flags(output: &str, dest: &str) -> Vec<String> {
    let line = output
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest} in:\n{output}"));
    line.split(' ')
        .nth(3)
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// A busybox rootfs with `data` to mount on.
fn rootfs() -> tempfile::TempDir {
    let rootfs = specgate_tests::busybox_rootfs();
    std::fs::create_dir(rootfs.path().join("data")).unwrap();
    rootfs
}

/// A host directory holding `f` ("original").
fn volume() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "original\n").unwrap();
    dir
}

fn contents(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Tries to overwrite `path` in the container; prints whether it could.
fn overwrite(path: &str) -> String {
    format!("if echo pwned > {path} 2>/dev/null; then echo WROTE; else echo refused; fi; ")
}

#[test]
fn appending_rw_leaves_sys_and_the_cgroups_read_only() {
    let rootfs = rootfs();
    for isolation in ISOLATIONS {
        for dest in ["/sys", "/sys/fs/cgroup"] {
            let attack = Attack::new(isolation, Some(rootfs.path()), "append-options")
                .setting("destination", dest)
                .setting("options", "ro,rw");
            // A cgroup v1 host's /sys/fs/cgroup is a tmpfs holding the
            // hierarchies: a child cgroup is made in one of them.
            let script = format!(
                "grep -E ' {dest}(/memory)? ' /proc/self/mounts; \
                 d=/sys/fs/cgroup/memory; [ -d $d ] || d=/sys/fs/cgroup; \
                 if mkdir $d/specgate-gate 2>/dev/null; then \
                   rmdir $d/specgate-gate; \
                   echo WROTE $d $(awk '$2 == \"/sys/fs/cgroup\" {{print $3}}' /proc/self/mounts); \
                 else echo refused; fi"
            );
            let line = attack.refused(&script);
            assert!(line.ends_with(NEEDS_MOUNT_OPTIONS), "{isolation}: {line}");
            let seen = attack.seen(&script);
            let hierarchy = format!("{dest}/memory");
            let shown = match seen.contains(&format!(" {hierarchy} ")) {
                true => mount_flags(&seen, &hierarchy),
                false => mount_flags(&seen, dest),
            };
            // Under chroot isolation on a cgroup v1 host, /sys/fs/cgroup is a
            // fresh writable tmpfs of the container's own with no hierarchy
            // in it (as runc's, which runc fills with read-only
            // hierarchies): writing there reaches nothing of the host's.
            let own_tmpfs = isolation == "chroot"
                && seen.ends_with("WROTE /sys/fs/cgroup tmpfs\n")
                && !Path::new("/sys/fs/cgroup/specgate-gate").exists();
            assert!(
                shown.contains(&"ro".to_string()) || own_tmpfs && dest == "/sys/fs/cgroup",
                "{isolation} {dest}: {seen}"
            );
            assert!(
                seen.ends_with("refused\n") || own_tmpfs,
                "{isolation} {dest}: {seen}"
            );
        }
    }
}

#[test]
fn a_read_only_volume_stays_read_only_and_inert() {
    let rootfs = rootfs();
    let data = volume();
    let file = data.path().join("f");
    let script = format!("grep ' /data ' /proc/self/mounts; {}", overwrite("/data/f"));
    for isolation in ISOLATIONS {
        for (flags, appended) in [
            ("ro", "rw"),
            ("ro", "rw,suid,dev,exec"),
            ("ro", "rrw"),
            ("ro,nosuid,nodev,noexec", "suid"),
            ("ro,nosuid,nodev,noexec", "dev"),
            ("ro,nosuid,nodev,noexec", "exec"),
            ("ro,nosuid,nodev,noexec", "rsuid,rdev,rexec"),
        ] {
            let spec = format!("{}:/data:{flags}", data.path().display());
            let attack = Attack::new(isolation, Some(rootfs.path()), "append-options")
                .setting("destination", "/data")
                .setting("options", appended)
                .option("-v")
                .option(&spec);
            let line = attack.refused(&script);
            assert!(
                line.ends_with(NEEDS_MOUNT_OPTIONS),
                "{isolation} {appended}: {line}"
            );
            let seen = attack.seen(&script);
            let shown = mount_flags(&seen, "/data");
            for flag in flags.split(',') {
                assert!(
                    shown.contains(&flag.to_string()),
                    "{isolation} {appended}: {seen}"
                );
            }
            assert!(
                seen.ends_with("refused\n"),
                "{isolation} {appended}: {seen}"
            );
            assert_eq!(contents(&file), "original\n", "{isolation} {appended}");
        }
        // Granted, the change applies and the probe sees it.
        let other = volume();
        let spec = format!("{}:/data:ro", other.path().display());
        let attack = Attack::new(isolation, Some(rootfs.path()), "append-options")
            .setting("destination", "/data")
            .setting("options", "rw")
            .option("-v")
            .option(&spec);
        assert!(attack.granted(&script).ends_with("WROTE\n"), "{isolation}");
        assert_eq!(contents(&other.path().join("f")), "pwned\n");
    }
}

#[test]
fn removing_a_read_only_sub_bind_is_refused() {
    let rootfs = rootfs();
    let volume = volume();
    std::fs::create_dir(volume.path().join("sub")).unwrap();
    let file = volume.path().join("sub/f");
    std::fs::write(&file, "original\n").unwrap();
    let parent = format!("{}:/data", volume.path().display());
    let sub = format!("{}:/data/sub:ro", volume.path().join("sub").display());
    for isolation in ISOLATIONS {
        let attack = Attack::new(isolation, Some(rootfs.path()), "remove-mount")
            .setting("destination", "/data/sub")
            .option("-v")
            .option(&parent)
            .option("-v")
            .option(&sub);
        let script = overwrite("/data/sub/f");
        let line = attack.refused(&script);
        assert!(line.ends_with(NEEDS_MOUNT_OPTIONS), "{isolation}: {line}");
        assert_eq!(attack.seen(&script), "refused\n", "{isolation}");
        assert_eq!(contents(&file), "original\n", "{isolation}");
    }
    // Granted, the host's file is written through the parent.
    let attack = Attack::new("oci", Some(rootfs.path()), "remove-mount")
        .setting("destination", "/data/sub")
        .option("-v")
        .option(&parent)
        .option("-v")
        .option(&sub);
    assert_eq!(attack.granted(&overwrite("/data/sub/f")), "WROTE\n");
    assert_eq!(contents(&file), "pwned\n");
}

#[test]
fn removing_the_run_tmpfs_of_the_default_rootfs_is_refused() {
    for isolation in ISOLATIONS {
        let attack = Attack::new(isolation, None, "remove-mount").setting("destination", "/run");
        let script = "grep ' /run ' /proc/self/mounts; ls -A /run | wc -l";
        let line = attack.refused(script);
        assert!(line.ends_with(NEEDS_MOUNT_OPTIONS), "{isolation}: {line}");
        let seen = attack.seen(script);
        assert!(
            seen.starts_with("tmpfs /run tmpfs ") && seen.ends_with("\n0\n"),
            "{isolation}: the host's /run shows through: {seen}"
        );
        // Granted, the host's own /run shows through.
        let shown = attack.granted(script);
        assert!(!shown.ends_with("\n0\n"), "{isolation}: {shown}");
    }
}

/// `remount` appended to the /run tmpfs of the default rootfs would make
/// the runtime remount the host's own /run read-write instead of mounting
/// a tmpfs: refused at the boundary, and /run stays an empty tmpfs.
#[test]
fn remount_is_refused_and_the_hosts_run_stays_hidden() {
    for isolation in ISOLATIONS {
        let attack = Attack::new(isolation, None, "append-options")
            .setting("destination", "/run")
            .setting("options", "remount");
        let script = "grep ' /run ' /proc/self/mounts; ls -A /run | wc -l";
        let line = attack.refused(script);
        assert!(line.contains("`remount`"), "{isolation}: {line}");
        let seen = attack.seen(script);
        assert!(
            seen.starts_with("tmpfs /run tmpfs ") && seen.ends_with("\n0\n"),
            "{isolation}: the host's /run shows through: {seen}"
        );
    }
}

/// A tmpfs mounted on the host at `at` for the test's length.
struct HostMount(PathBuf);

impl HostMount {
    fn new(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "specgate-gate-test"])
            .arg(at)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "mount -t tmpfs at {}", at.display());
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn turning_a_bind_recursive_is_refused_and_the_submount_stays_out_of_reach() {
    let rootfs = rootfs();
    let volume = volume();
    let submount = HostMount::new(&volume.path().join("sub"));
    let secret = submount.0.join("secret");
    std::fs::write(&secret, "original\n").unwrap();
    let spec = format!("{}:/data:ro,bind", volume.path().display());
    for isolation in ISOLATIONS {
        let attack = Attack::new(isolation, Some(rootfs.path()), "make-recursive")
            .setting("destination", "/data")
            .option("-v")
            .option(&spec);
        let script = format!("ls -A /data/sub | wc -l; {}", overwrite("/data/sub/secret"));
        let line = attack.refused(&script);
        assert!(line.ends_with(NEEDS_MOUNT_OPTIONS), "{isolation}: {line}");
        assert_eq!(attack.seen(&script), "0\nrefused\n", "{isolation}");
        assert_eq!(contents(&secret), "original\n", "{isolation}");
        // Granted, the submount comes along, and `ro` does not cover it.
        assert_eq!(attack.granted(&script), "1\nWROTE\n", "{isolation}");
        std::fs::write(&secret, "original\n").unwrap();
    }
}

#[test]
fn another_spelling_of_a_destination_is_refused_and_the_owner_keeps_it() {
    let rootfs = rootfs();
    let volume = volume();
    let file = volume.path().join("f");
    let spec = format!("{}:/data", volume.path().display());
    let script = overwrite("/data/f");
    for isolation in ISOLATIONS {
        let respelled = Attack::new(isolation, Some(rootfs.path()), "append-options")
            .after("readonly-mounts")
            .setting("destination", "/data/")
            .setting("options", "ro,rw,suid,dev,exec")
            .option("-v")
            .option(&spec);
        let line = respelled.refused(&script);
        assert!(
            line.ends_with(
                "destination: the path is not clean (it has `.`, `..`, `//` or a trailing `/`)"
            ),
            "{isolation}: {line}"
        );
        assert_eq!(respelled.seen(&script), "refused\n", "{isolation}");

        // Spelled cleanly, even a restricting change to the field an
        // earlier plugin owns is a conflict.
        let same = Attack::new(isolation, Some(rootfs.path()), "append-options")
            .after("readonly-mounts")
            .setting("destination", "/data")
            .setting("options", "noatime")
            .option("-v")
            .option(&spec);
        let line = same.refused(&script);
        assert!(
            line.ends_with(
                "conflicts with plugin readonly-mounts, which already changed the mount at /data"
            ),
            "{isolation}: {line}"
        );
        assert_eq!(same.seen(&script), "refused\n", "{isolation}");
        assert_eq!(contents(&file), "original\n", "{isolation}");
    }
}

#[test]
fn control_characters_in_a_destination_are_refused_and_shown_escaped() {
    let out = run(with_chain(
        specgate().args(["spec", "--no-default-policy"]),
        &["hostile"],
        &[
            "hostile.behavior=remove-mount",
            "hostile.destination=/sys\n(no changes)\u{1b}[2K",
        ],
    )
    .args(["--", "/bin/true"]));
    let line = out.failure(125);
    assert!(
        line.ends_with(
            "mounts: change 0 (remove the mount at /sys\\n(no changes)\\u{1b}[2K): \
             destination: the path holds a control character (U+000A)"
        ),
        "{line}"
    );
}

fn host() -> PluginHost {
    PluginHost::new(Some(shared_cache()), Limits::default(), Allocation::Pooled)
        .expect("plugin host")
}

/// Runs one plugin, without grants, over `spec`.
fn run_one(name: &str, settings: &[(&str, &str)], spec: &mut Spec) -> Result<(), String> {
    let host = host();
    let path = plugin(name);
    let loaded = host.load(name, &path).map_err(|e| e.to_string())?;
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

fn with_bind(destination: &str, options: &[&str]) -> Spec {
    let mut spec = specgate::spec::default_spec("test", &["/bin/sh".to_string()]);
    let mut mount = Mount::default();
    mount.set_destination(destination.into());
    mount.set_typ(Some("bind".into()));
    mount.set_source(Some("/srv".into()));
    mount.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    spec.mounts_mut().get_or_insert_default().push(mount);
    spec
}

fn options_at(spec: &Spec, destination: &str) -> Vec<String> {
    spec.mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new(destination))
        .and_then(|m| m.options().clone())
        .unwrap_or_default()
}

#[test]
fn readonly_mounts_reads_options_as_the_host_does() {
    // `ro,rw` is read-write: the last wins. Made read-only, without
    // loosening the flags the remount would otherwise clear.
    let mut spec = with_bind("/data", &["rbind", "ro", "rw", "nosuid"]);
    run_one("readonly-mounts", &[], &mut spec).unwrap();
    assert_eq!(
        options_at(&spec, "/data"),
        ["rbind", "ro", "nosuid", "ro", "rro"]
    );
    // `rro` alone is not read-only under chroot isolation, which ignores
    // recursive forms; nor is `ro,rrw` under runc.
    for options in [&["rbind", "rro"][..], &["rbind", "ro", "rrw"]] {
        let mut spec = with_bind("/data", options);
        run_one("readonly-mounts", &[], &mut spec).unwrap();
        assert_eq!(
            options_at(&spec, "/data").last().map(String::as_str),
            Some("rro"),
            "{options:?}"
        );
    }
    // Already read-only: left alone.
    let mut spec = with_bind("/data", &["bind", "rw", "ro"]);
    run_one("readonly-mounts", &[], &mut spec).unwrap();
    assert_eq!(options_at(&spec, "/data"), ["bind", "rw", "ro"]);
    // A spelling the host refuses in a change is cleaned first.
    let mut spec = with_bind("/data/", &["rbind", "rw"]);
    run_one("readonly-mounts", &[], &mut spec).unwrap();
    assert_eq!(
        options_at(&spec, "/data"),
        ["rbind", "nosuid", "nodev", "noexec", "ro", "rro"]
    );
}

#[test]
fn deny_privileged_refuses_joining_a_namespace_by_path_unless_allowed() {
    let joined = |settings: &[&str]| {
        let mut cmd = specgate();
        cmd.args([
            "spec",
            "--no-default-policy",
            "--network",
            "ns:/proc/1/ns/net",
        ]);
        run(with_chain(&mut cmd, &["deny-privileged"], settings).args(["--", "/bin/true"]))
    };
    let out = joined(&[]);
    let line = out.failure(125);
    assert!(
        line.ends_with(
            "validate: denied: privileged: the container joins the network namespace at \
             `/proc/1/ns/net`, which `namespace-paths` does not allow"
        ),
        "{line}"
    );
    let allowed = joined(&["deny-privileged.namespace-paths=/proc/1/ns/net"]);
    assert!(allowed.success().contains("/proc/1/ns/net"), "{allowed:#?}");
    // Another spelling of the allowed path is the same path.
    joined(&["deny-privileged.namespace-paths=/proc/1/ns/./net/"]).success();
}
