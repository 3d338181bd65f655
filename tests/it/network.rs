//! CNI networks for `specgate run --network`, with Debian's
//! containernetworking-plugins (in /usr/lib/cni) and real runc. Every
//! network that touches more than the container's own namespace is made
//! inside a network namespace the test creates and removes, with address
//! ranges the tests own (10.123.0.0/16), so the host's networking is
//! never changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

const PLUGIN_DIR: &str = "/usr/lib/cni";

/// Fails, saying what to install, when the plugins or the tools the
/// tests drive them with are missing.
fn require_tools() {
    for plugin in ["loopback", "bridge", "host-local"] {
        assert!(
            Path::new(PLUGIN_DIR).join(plugin).is_file(),
            "{PLUGIN_DIR}/{plugin} is missing: install Debian's containernetworking-plugins (.ci/setup does)"
        );
    }
    for tool in ["/usr/bin/nsenter", "/usr/sbin/ip", "/usr/sbin/runc"] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: install util-linux, iproute2 and runc (.ci/setup does)"
        );
    }
}

/// A directory of CNI configurations, with a data directory for
/// host-local's leases.
struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    fn new() -> Self {
        require_tools();
        ConfigDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(name), text).unwrap();
    }

    /// Where host-local keeps the leases of `network`.
    fn leases(&self, network: &str) -> PathBuf {
        self.path().join("ipam").join(network)
    }

    /// A bridge network `name` on bridge `bridge` with addresses from
    /// `subnet`, leases kept in this directory.
    fn bridge(&self, file: &str, name: &str, bridge: &str, ipam_extra: &str, subnet: &str) {
        let data = self.path().join("ipam");
        self.write(
            file,
            &format!(
                r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge","bridge":"{bridge}","ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"{subnet}"{ipam_extra}}}]]}}}}]}}"#,
                data.display()
            ),
        );
    }

    /// The addresses host-local still has leased for `network`.
    fn leased(&self, network: &str) -> Vec<String> {
        std::fs::read_dir(self.leases(network))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A network namespace the test owns: the bridge networks' host side is
/// made in it, not in the host's. Removed when dropped.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(name: &str) -> Self {
        let name = format!("specgate-test-{name}");
        // Left over by an interrupted earlier run.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name} failed");
        TestNetns { name }
    }

    /// specgate, run in this namespace (only the network namespace:
    /// `ip netns exec` would also remount /sys, hiding the cgroups runc
    /// needs).
    fn specgate(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg(specgate_bin())
            .env("SPECGATE_CACHE_DIR", shared_cache())
            .env_remove("SPECGATE_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// The interfaces of this namespace.
    fn links(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Neither the run's bundle nor its container is left.
fn assert_nothing_left(name: &str) {
    let bundle = Path::new("/run/specgate").join(name);
    assert!(!bundle.exists(), "{} was left behind", bundle.display());
    let state = Command::new("runc")
        .args(["state", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!state.success(), "the container {name} was left behind");
}

/// The veths a bridge network made on the host side.
fn veths(links: &str) -> Vec<&str> {
    links.lines().filter(|l| l.contains("veth")).collect()
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    let rootfs = specgate_tests::busybox_rootfs();
    let out = run(specgate()
        .args(["run", "--network", "none", "--rootfs"])
        .arg(rootfs.path())
        .args([
            "--",
            "sh",
            "-c",
            "ls /sys/class/net; cat /sys/class/net/lo/flags",
        ]));
    // 0x9: IFF_UP | IFF_LOOPBACK.
    assert_eq!(out.success(), "lo\n0x9\n");
}

#[test]
fn a_loopback_network_is_added_and_gets_buildahs_sysctl() {
    let config = ConfigDir::new();
    config.write(
        "10-lo.conf",
        r#"{"cniVersion":"1.0.0","name":"lo-test","type":"loopback"}"#,
    );
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-loopback";
    let out = run(specgate()
        .env("SPECGATE_LOG", "specgate=debug")
        .args(cni_run_args(name, "lo-test", &config))
        .arg("--rootfs")
        .arg(rootfs.path())
        .args([
            "--",
            "sh",
            "-c",
            "ls /sys/class/net; cat /sys/class/net/lo/flags /proc/sys/net/ipv4/ping_group_range",
        ]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stdout, "lo\n0x9\n0\t0\n");
    assert!(
        out.stderr.contains("network lo-test added on if0 from"),
        "{}",
        out.stderr
    );
    assert_nothing_left(name);
}

#[test]
fn a_bridge_network_gives_an_address_and_del_removes_the_host_side() {
    let config = ConfigDir::new();
    config.bridge("10-br.conflist", "br-test", "sgtbr0", "", "10.123.1.0/24");
    let netns = TestNetns::new("cni-bridge");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-bridge";
    let script = "ip -o -4 addr show if0; ip -o link show if0 >/dev/null && echo if0 up; exit 7";
    for terminal in [false, true] {
        let mut cmd = netns.specgate();
        cmd.args(cni_run_args(name, "br-test", &config))
            .arg("--rootfs")
            .arg(rootfs.path())
            .arg(format!("--tty={terminal}"))
            .args(["--", "sh", "-c", script]);
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(7), "{out:#?}");
        assert!(
            out.stdout.contains("inet 10.123.1.") && out.stdout.contains("/24"),
            "no address from the network: {out:#?}"
        );
        assert!(out.stdout.contains("if0 up"), "{out:#?}");
        // DEL ran after the container exited: the veth's host side is gone
        // with its peer, and the address is free again.
        let links = netns.links();
        assert!(links.contains("sgtbr0"), "{links}");
        assert!(veths(&links).is_empty(), "a veth was left: {links}");
        assert_eq!(config.leased("br-test"), Vec::<String>::new());
        assert_nothing_left(name);
    }
}

#[test]
fn a_named_network_that_does_not_exist_is_refused() {
    let config = ConfigDir::new();
    config.write(
        "10-lo.conf",
        r#"{"cniVersion":"1.0.0","name":"lo-test","type":"loopback"}"#,
    );
    let name = "specgate-test-cni-unknown";
    let out = run(specgate()
        .args(cni_run_args(name, "lo-test,nope", &config))
        .args(["--", "true"]));
    assert_eq!(
        out.failure(125),
        format!(
            "specgate: --network nope: no such CNI network in {}",
            config.path().display()
        )
    );
    assert_nothing_left(name);
}

#[test]
fn a_malformed_configuration_is_refused_naming_the_file() {
    let config = ConfigDir::new();
    config.write(
        "10-lo.conf",
        r#"{"cniVersion":"1.0.0","name":"lo-test","type":"loopback"}"#,
    );
    config.write(
        "20-bad.conflist",
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":"#,
    );
    let name = "specgate-test-cni-malformed";
    let out = run(specgate()
        .args(cni_run_args(name, "private", &config))
        .args(["--", "true"]));
    let line = out.failure(125);
    let file = config.path().join("20-bad.conflist");
    assert!(
        line.starts_with(&format!(
            "specgate: {}: malformed CNI configuration: ",
            file.display()
        )),
        "{line}"
    );
    assert_nothing_left(name);
}

#[test]
fn a_missing_plugin_is_named_and_nothing_is_left() {
    let config = ConfigDir::new();
    config.write(
        "10-ghost.conf",
        r#"{"cniVersion":"1.0.0","name":"ghost","type":"specgate-no-such-plugin"}"#,
    );
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-missing-plugin";
    let out = run(specgate()
        .args(cni_run_args(name, "ghost", &config))
        .args(["--cni-plugin-path", PLUGIN_DIR, "--rootfs"])
        .arg(rootfs.path())
        .args(["--", "echo", "never"]));
    assert_eq!(
        out.failure(125),
        format!(
            "specgate: CNI plugin specgate-no-such-plugin of network ghost ({}): not found in {PLUGIN_DIR} (--cni-plugin-path)",
            config.path().join("10-ghost.conf").display()
        )
    );
    assert_eq!(out.stdout, "");
    assert_nothing_left(name);
}

#[test]
fn a_failing_add_in_the_second_network_undoes_the_first() {
    let config = ConfigDir::new();
    config.bridge("10-first.conflist", "first", "sgtbr1", "", "10.123.2.0/24");
    // host-local refuses a range start outside the subnet: the bridge
    // plugin has made its veth by then, and fails with IPAM's error.
    config.bridge(
        "20-second.conflist",
        "second",
        "sgtbr2",
        r#","rangeStart":"10.123.99.5""#,
        "10.123.3.0/24",
    );
    let netns = TestNetns::new("cni-undo");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-undo";
    let out = run(netns
        .specgate()
        .args(cni_run_args(name, "first,second", &config))
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "echo", "never"]));
    let line = out.failure(125);
    let file = config.path().join("20-second.conflist");
    assert!(
        line.starts_with(&format!(
            "specgate: CNI plugin bridge ADD for network second ({}): ",
            file.display()
        )),
        "{line}"
    );
    assert_eq!(out.stdout, "");
    // The first network was added (host-local leased an address from
    // it), then deleted: no veth, no lease.
    assert!(config.leases("first").join("last_reserved_ip.0").exists());
    let links = netns.links();
    assert!(links.contains("sgtbr1"), "{links}");
    assert!(veths(&links).is_empty(), "a veth was left: {links}");
    assert_eq!(config.leased("first"), Vec::<String>::new());
    assert_eq!(config.leased("second"), Vec::<String>::new());
    assert_nothing_left(name);
}

/// `specgate run` with the loopback network in `config`: the run goes
/// through create, ADD, start.
/// `run --name NAME --network NETWORKS --cni-config-dir CONFIG`.
fn cni_run_args(name: &str, networks: &str, config: &ConfigDir) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["run", "--name", name, "--network", networks]
        .into_iter()
        .map(Into::into)
        .collect();
    args.push("--cni-config-dir".into());
    args.push(config.path().into());
    args
}

fn loopback_run(config: &ConfigDir, rootfs: &Path, name: &str) -> Command {
    config.write(
        "10-lo.conf",
        r#"{"cniVersion":"1.0.0","name":"lo-test","type":"loopback"}"#,
    );
    let mut cmd = specgate();
    cmd.args(cni_run_args(name, "lo-test", config))
        .arg("--rootfs")
        .arg(rootfs);
    cmd
}

#[test]
fn a_networked_run_relays_every_byte_both_ways() {
    use std::io::Write;
    let config = ConfigDir::new();
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-stdio";
    let input: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut child = loopback_run(&config, rootfs.path(), name)
        .args(["-i", "--", "sh", "-c", "cat; echo done >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(&input).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:#?}");
    assert!(out.stdout == input, "stdout differs from stdin");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "done\n");
    assert_nothing_left(name);
}

#[test]
fn a_networked_run_forwards_signals_and_reports_the_containers_signal() {
    let config = ConfigDir::new();
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-signals";
    assert_sigterm_reaches_the_container(&mut loopback_run(&config, rootfs.path(), name), "\n");
    assert_nothing_left(name);

    // Outside a PID namespace of its own the command is not an init,
    // which ignores signals it has no handler for: it dies of its own.
    let out = run(loopback_run(&config, rootfs.path(), name).args([
        "--pid",
        "host",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]));
    assert_eq!(out.code, Some(128 + 15), "{out:#?}");
    assert_nothing_left(name);
}

/// A bridge network `name` on `bridge` whose host side masquerades the
/// container's address (iptables rules in the test's namespace).
fn masquerading_bridge(config: &ConfigDir, name: &str, bridge: &str, subnet: &str) {
    config.write(
        &format!("10-{name}.conflist"),
        &format!(
            r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":true,"ipam":{{"type":"host-local","dataDir":"{}","ranges":[[{{"subnet":"{subnet}"}}]]}}}}]}}"#,
            config.path().join("ipam").display()
        ),
    );
}

/// The record of a network's ADD for a container, in libcni's cache.
fn result_record(network: &str, container: &str) -> PathBuf {
    PathBuf::from(format!("/var/lib/cni/results/{network}-{container}-if0"))
}

impl TestNetns {
    /// The NAT rules of this namespace that name `container`.
    fn nat_rules_of(&self, container: &str) -> Vec<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["iptables-save", "-t", "nat"])
            .output()
            .unwrap();
        assert!(out.status.success(), "iptables-save: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(container))
            .map(str::to_string)
            .collect()
    }
}

/// Starts a networked run of a shell that says it is ready, then
/// sleeps; returns once the container runs, with its address.
fn start_networked(
    netns: &TestNetns,
    config: &ConfigDir,
    network: &str,
    name: &str,
    rootfs: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut cmd = netns.specgate();
    cmd.args(cni_run_args(name, network, config))
        .arg("--rootfs")
        .arg(rootfs)
        .args([
            "--",
            "sh",
            "-c",
            "ip -o -4 addr show if0; echo ready; exec sleep 100",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut address = String::new();
    stdout.read_line(&mut address).unwrap();
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n", "{address}");
    (child, address)
}

/// Asserts that the networked run `name` left nothing: no container, no
/// bundle, no lease, no veth, no NAT rule, no result record.
fn assert_no_network_left(netns: &TestNetns, config: &ConfigDir, network: &str, name: &str) {
    assert_nothing_left(name);
    assert_eq!(config.leased(network), Vec::<String>::new());
    let links = netns.links();
    assert!(veths(&links).is_empty(), "a veth was left: {links}");
    assert_eq!(netns.nat_rules_of(name), Vec::<String>::new());
    let record = result_record(network, name);
    assert!(!record.exists(), "{} was left", record.display());
}

#[test]
fn a_networked_run_killed_while_its_container_runs_leaves_nothing() {
    let config = ConfigDir::new();
    masquerading_bridge(&config, "kill-test", "sgtbr4", "10.123.4.0/24");
    let netns = TestNetns::new("cni-kill");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-killed";
    let (mut child, address) =
        start_networked(&netns, &config, "kill-test", name, rootfs.path(), &[]);
    assert!(address.contains("inet 10.123.4."), "{address}");
    // What the run made, and the record its cleanup will DEL from.
    assert_eq!(config.leased("kill-test").len(), 1);
    assert_eq!(veths(&netns.links()).len(), 1);
    assert!(!netns.nat_rules_of(name).is_empty());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(result_record("kill-test", name)).unwrap()).unwrap();
    assert_eq!(record["kind"], "cniCacheV1");
    assert_eq!(record["containerId"], name);
    assert_eq!(record["ifName"], "if0");
    assert_eq!(record["networkName"], "kill-test");
    assert!(
        record["result"]["ips"][0]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.123.4."))
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(30, || !bundle.exists());
    assert_no_network_left(&netns, &config, "kill-test", name);
}

#[test]
fn a_panic_while_a_networked_container_runs_is_not_a_clean_end() {
    let config = ConfigDir::new();
    masquerading_bridge(&config, "panic-test", "sgtbr5", "10.123.5.0/24");
    let netns = TestNetns::new("cni-panic");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-panic";
    // The debug build panics on the main thread as it starts waiting for
    // the container, after the ADD.
    let mut cmd = netns.specgate();
    cmd.env("SPECGATE_TEST_PANIC", "wait-container")
        .args(cni_run_args(name, "panic-test", &config))
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "sleep", "100"]);
    let out = cmd.output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    // Reported, then aborted: no destructor ran to say all was well.
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("panicked") && stderr.contains("SPECGATE_TEST_PANIC=wait-container"),
        "{stderr}"
    );
    // The guard deletes the container, its network and the bundle.
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(30, || !bundle.exists());
    assert_no_network_left(&netns, &config, "panic-test", name);
}

/// SIGKILLs the watcher of the run `name` (specgate's program, but not
/// `run`, the specgate that runs the container), and waits until it is
/// dead.
fn kill_watcher(name: &str, run: &std::process::Child) {
    let watchers: Vec<u32> = pids_with(name)
        .into_iter()
        .filter(|&pid| pid != run.id())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == specgate_bin())
        })
        .collect();
    assert_eq!(watchers.len(), 1, "{watchers:?}");
    let watcher = watchers[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watcher as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(10, || {
        !Path::new(&format!("/proc/{watcher}")).exists()
            || std::fs::read_to_string(format!("/proc/{watcher}/stat"))
                .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")))
    });
}

#[test]
fn gc_deletes_the_networks_a_killed_guard_left() {
    let config = ConfigDir::new();
    masquerading_bridge(&config, "gc-test", "sgtbr6", "10.123.6.0/24");
    let netns = TestNetns::new("cni-gc");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-gc";
    let (mut child, _) = start_networked(&netns, &config, "gc-test", name, rootfs.path(), &[]);
    // Its watcher goes first: nothing cleans up after the run.
    kill_watcher(name, &child);
    child.kill().unwrap();
    child.wait().unwrap();
    let bundle = Path::new("/run/specgate").join(name);
    assert!(bundle.exists());
    assert!(result_record("gc-test", name).exists());
    assert_eq!(config.leased("gc-test").len(), 1);

    // A gc in another network namespace (the host's) leaves the run
    // alone: its DEL would leave the NAT rules where the plugins made them.
    let elsewhere = run(specgate().arg("gc"));
    assert!(
        !elsewhere.success().lines().any(|l| l == name),
        "{elsewhere:#?}"
    );
    assert!(bundle.exists() && result_record("gc-test", name).exists());

    // gc, in the namespace the run's plugins made the host side in.
    let out = run(netns.specgate().arg("gc"));
    assert!(out.success().lines().any(|l| l == name), "{out:#?}");
    assert_no_network_left(&netns, &config, "gc-test", name);
}

#[test]
fn gc_deletes_a_network_whose_run_and_container_are_gone() {
    let config = ConfigDir::new();
    config.bridge(
        "10-orphan.conflist",
        "orphan-test",
        "sgtbr7",
        "",
        "10.123.7.0/24",
    );
    let netns = TestNetns::new("cni-orphan");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-orphan";
    let (mut child, _) = start_networked(&netns, &config, "orphan-test", name, rootfs.path(), &[]);
    kill_watcher(name, &child);
    child.kill().unwrap();
    child.wait().unwrap();
    // A cleanup killed after the container and bundle went, before its
    // DEL: only the record knows of the lease.
    let status = Command::new("runc")
        .args(["delete", "--force", name])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(Path::new("/run/specgate").join(name)).unwrap();
    assert_eq!(config.leased("orphan-test").len(), 1);

    let out = run(netns.specgate().arg("gc"));
    assert!(out.success().lines().any(|l| l == name), "{out:#?}");
    assert_eq!(config.leased("orphan-test"), Vec::<String>::new());
    assert!(!result_record("orphan-test", name).exists());
    assert_nothing_left(name);
}

#[test]
fn a_run_that_dies_after_its_container_exited_still_has_its_network_deleted() {
    let config = ConfigDir::new();
    masquerading_bridge(&config, "exited-test", "sgtbr8", "10.123.8.0/24");
    let netns = TestNetns::new("cni-exited");
    let rootfs = specgate_tests::busybox_rootfs();
    let name = "specgate-test-cni-exited";
    // The debug build panics on the main thread once the container
    // exited, before its DEL: the namespace's last holder in the run is
    // gone, and only what the run handed its watcher keeps it.
    let out = netns
        .specgate()
        .env("SPECGATE_TEST_PANIC", "container-exited")
        .args(cni_run_args(name, "exited-test", &config))
        .arg("--rootfs")
        .arg(rootfs.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    let bundle = Path::new("/run/specgate").join(name);
    wait_until(30, || !bundle.exists());
    // bridge removes masquerade rules for the addresses it finds in the
    // namespace: they are gone only if DEL entered it.
    assert_no_network_left(&netns, &config, "exited-test", name);
}
