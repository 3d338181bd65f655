#!/usr/bin/env python3
"""specgate run against raw runc, side by side and alternating.

Runs `/bin/true` in a busybox-static rootfs: raw `runc run` on an equivalent
bundle, `specgate run` with no plugin and with three example plugins (cached),
round-robin so that machine noise hits all alike; prints medians, ratios,
and the median of each round's own difference to runc.

Beside them, when installed: `podman run --rootfs` (cgroupfs, the ulimits
these machines need, no network, its own storage) and `buildah run` of a
scratch container holding the same files. Then the peak RSS of specgate (3
plugins) and of podman during a run.

Then the stdio relay: 1 GiB of the container's stdout read from a pipe,
through specgate's relay and through raw `runc run` with inherited stdio
(throughput ratio); and the exit latency, the wall time of `run -- sleep 0.2`
less 0.2 s beside that of `run -- /bin/true`.

With a second specgate binary (another build, e.g. of an earlier commit),
its runs with 0 and 3 plugins join the same rounds, and the median of each
round's difference between the two builds is printed: the way to compare
two builds on a machine whose speed drifts.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/run.py [ROUNDS] [OTHER_SPECGATE]
SPECGATE=path/to/specgate picks another build: target/dist/specgate
(`cargo build --profile dist`) is the binary to deploy.
"""

import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def built(profile="release"):
    """The specgate binary cargo built in target/PROFILE/."""
    return os.path.join(ROOT, "target", profile, "specgate")


SPECGATE = os.environ.get("SPECGATE") or built()
PLUGINS = os.path.join(ROOT, "plugins/target/wasm32-wasip2/release")
THREE = ["drop_capabilities", "require_namespaces", "deny_privileged"]


def busybox_rootfs(path):
    os.makedirs(os.path.join(path, "bin"))
    for sub in ["etc", "tmp", "proc", "dev", "sys"]:
        os.makedirs(os.path.join(path, sub))
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    for applet in ["true", "dd", "sleep"]:
        os.symlink("busybox", os.path.join(path, "bin", applet))


def paired(values, others):
    """The median of each round's own difference: the figure the machine's
    drift between rounds disturbs least."""
    return statistics.median(v - o for v, o in zip(values, others))


def timed(cmd, **kw):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


GIB = 1 << 30
DD = ["dd", "if=/dev/zero", "bs=1M", "count=1024", "iflag=fullblock"]


def timed_read(cmd, **kw):
    """Wall time to read all of cmd's stdout from a pipe; checks 1 GiB came."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)
    total = 0
    fd = proc.stdout.fileno()
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
    proc.wait()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or total != GIB:
        raise SystemExit(f"{cmd[0]}: exit {proc.returncode}, {total} bytes of {GIB}")
    return elapsed


Memory = collections.namedtuple("Memory", "peak private file_backed")


def peak_rss(cmd, **kw):
    """The memory of cmd's own process while it runs, in KiB: its peak RSS
    (VmHWM), and how much of the largest RSS sampled was private
    (RssAnon) and how much mapped from files (RssFile: the binary, the
    libraries, cache entries, shared through the page cache). Reads
    /proc/PID/status in a loop, without pausing: a chain's peak lasts a
    few milliseconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    peak, largest, split = 0, 0, (0, 0)
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f)
            kib = {k: int(fields[k].split()[0])
                   for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}
        except (OSError, KeyError, ValueError):
            continue  # not started yet, exiting, or a zombie
        peak = max(peak, kib["VmHWM"])
        if kib["VmRSS"] > largest:
            largest, split = kib["VmRSS"], (kib["RssAnon"], kib["RssFile"])
    return Memory(peak, *split)


def engines(work, rootfs):
    """Command lines for podman and buildah running /bin/true, if present."""
    found = {}
    if shutil.which("podman"):
        storage = ["--root", os.path.join(work, "podman-root"),
                   "--runroot", os.path.join(work, "podman-run"),
                   "--cgroup-manager=cgroupfs"]
        found["podman run --rootfs"] = lambda cmd: [
            "podman", *storage, "run", "--rm", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--rootfs", rootfs, *cmd]
    if shutil.which("buildah"):
        storage = ["--root", os.path.join(work, "buildah-root"),
                   "--runroot", os.path.join(work, "buildah-run")]
        container = subprocess.run(["buildah", *storage, "from", "scratch"], check=True,
                                   capture_output=True, text=True).stdout.strip()
        subprocess.run(["buildah", *storage, "copy", container, rootfs + "/", "/"],
                       check=True, stdout=subprocess.DEVNULL)
        found["buildah run"] = lambda cmd: [
            "buildah", *storage, "run", "--isolation", "oci", "--network", "none",
            container, "--", *cmd]
    return found


def relay(rounds, bundle, rootfs, env):
    """Throughput of 1 GiB of stdout, and exit latency."""
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["process"]["args"] = DD
    with open(config_path, "w") as f:
        json.dump(config, f)
    through = {"runc run, inherited stdio": [], "specgate run, relayed": []}
    for i in range(rounds):
        through["runc run, inherited stdio"].append(
            timed_read(["runc", "run", "--bundle", bundle, f"bench-dd-{i}"]))
        through["specgate run, relayed"].append(
            timed_read([SPECGATE, "run", "--rootfs", rootfs, "--", *DD], env=env))
    base = statistics.median(through["runc run, inherited stdio"])
    print(f"{rounds} rounds, 1 GiB of stdout into a pipe, median, throughput ratio to raw runc")
    for name, values in through.items():
        median = statistics.median(values)
        print(f"  {name:<26} {median * 1000:8.1f} ms  {GIB / median / 2**20:7.0f} MiB/s"
              f"  {base / median:5.2f}x")

    latency = {"/bin/true": [], "sleep 0.2, less 0.2 s": []}
    for _ in range(rounds):
        latency["/bin/true"].append(
            timed([SPECGATE, "run", "--rootfs", rootfs, "--", "/bin/true"], env=env))
        latency["sleep 0.2, less 0.2 s"].append(
            timed([SPECGATE, "run", "--rootfs", rootfs, "--", "sleep", "0.2"], env=env) - 0.2)
    print(f"{rounds} rounds, specgate run, median wall time")
    for name, values in latency.items():
        print(f"  {name:<26} {statistics.median(values) * 1000:8.2f} ms")


def raw_bundle(work, rootfs, env):
    """The raw bundle: the config.json specgate would give runc, with the
    files specgate writes into its bundle (hosts, resolv.conf) taken from
    the host, in this bundle."""
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    spec = subprocess.run([SPECGATE, "spec", "--rootfs", rootfs, "--", "/bin/true"],
                          check=True, capture_output=True, env=env).stdout
    config = json.loads(spec)
    for mount in config.get("mounts", []):
        if mount.get("source", "").startswith("/run/specgate/"):
            name = os.path.basename(mount["source"])
            mount["source"] = os.path.join(bundle, name)
            shutil.copy(os.path.join("/etc", name), mount["source"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    work = tempfile.mkdtemp(prefix="specgate-bench-")
    rootfs = os.path.join(work, "rootfs")
    busybox_rootfs(rootfs)
    cache = os.path.join(work, "cache")
    os.makedirs(cache, mode=0o700)
    env = dict(os.environ, SPECGATE_CACHE_DIR=cache)

    bundle = raw_bundle(work, rootfs, env)

    plugin_args = []
    for name in THREE:
        plugin_args += ["--plugin", os.path.join(PLUGINS, name + ".wasm")]
    builds = {"specgate": SPECGATE}
    if len(sys.argv) > 2:
        builds["other build"] = os.path.abspath(sys.argv[2])
    cases = {"runc run": lambda i: timed(["runc", "run", "--bundle", bundle, f"bench-raw-{i}"])}
    for label, binary in builds.items():
        # Warm the plugin cache.
        subprocess.run([binary, "spec", *plugin_args], check=True,
                       stdout=subprocess.DEVNULL, env=env)
        cases[f"{label}, 0 plugins"] = lambda i, binary=binary: timed(
            [binary, "run", "--rootfs", rootfs, "--", "/bin/true"], env=env)
        cases[f"{label}, 3 plugins"] = lambda i, binary=binary: timed(
            [binary, "run", "--rootfs", rootfs, *plugin_args, "--", "/bin/true"], env=env)
    others = engines(work, rootfs)
    for name, line in others.items():
        subprocess.run(line(["/bin/true"]), check=True)  # first use sets up storage
        cases[name] = lambda i, line=line: timed(line(["/bin/true"]))
    samples = {name: [] for name in cases}
    for i in range(rounds):
        for name, case in cases.items():
            samples[name].append(case(i))
    raw = samples["runc run"]
    base = statistics.median(raw)
    print(f"{rounds} rounds, median wall time, ratio to raw runc run, "
          "median of each round's difference to it")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:<22} {median * 1000:8.2f} ms  {median / base:5.2f}x  "
              f"{paired(values, raw) * 1000:+8.2f} ms")
    three = statistics.median(samples["specgate, 3 plugins"])
    for name in others:
        print(f"  {name} / specgate with 3 plugins: "
              f"{statistics.median(samples[name]) / three:5.2f}x")
    if "other build" in builds:
        print("this build against the other: median of each round's difference")
        for plugins in ("0 plugins", "3 plugins"):
            difference = paired(samples[f"specgate, {plugins}"],
                                samples[f"other build, {plugins}"])
            print(f"  {plugins:<22} {difference * 1000:+8.2f} ms")

    rss = {"specgate run, 3 plugins": peak_rss(
        [SPECGATE, "run", "--rootfs", rootfs, *plugin_args, "--", "sleep", "0.5"], env=env).peak}
    if "podman run --rootfs" in others:
        rss["podman run --rootfs"] = peak_rss(others["podman run --rootfs"](["sleep", "0.5"])).peak
    print("peak RSS of the engine's own process during `sleep 0.5`")
    for name, kib in rss.items():
        print(f"  {name:<26} {kib / 1024:8.1f} MiB")
    relay(max(3, rounds // 3), bundle, rootfs, env)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
