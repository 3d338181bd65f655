#!/usr/bin/env python3
"""specgate run against raw runc, side by side and alternating.

Runs `/bin/true` in a busybox-static rootfs: raw `runc run` on an equivalent
bundle, `specgate run` with no plugin and with three example plugins (cached),
round-robin so that machine noise hits all alike; prints medians and ratios.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/run.py [ROUNDS]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECGATE = os.path.join(ROOT, "target/release/specgate")
PLUGINS = os.path.join(ROOT, "plugins/target/wasm32-wasip2/release")
THREE = ["drop_capabilities", "require_namespaces", "deny_privileged"]


def busybox_rootfs(path):
    os.makedirs(os.path.join(path, "bin"))
    for sub in ["etc", "tmp", "proc", "dev", "sys"]:
        os.makedirs(os.path.join(path, sub))
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    os.symlink("busybox", os.path.join(path, "bin/true"))


def timed(cmd, **kw):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    work = tempfile.mkdtemp(prefix="specgate-bench-")
    rootfs = os.path.join(work, "rootfs")
    busybox_rootfs(rootfs)
    cache = os.path.join(work, "cache")
    os.makedirs(cache, mode=0o700)
    env = dict(os.environ, SPECGATE_CACHE_DIR=cache)

    # The raw bundle: the config.json specgate would give runc.
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    spec = subprocess.run([SPECGATE, "spec", "--rootfs", rootfs, "--", "/bin/true"],
                          check=True, capture_output=True, env=env).stdout
    config = json.loads(spec)
    # The files specgate writes into its bundle (hosts, resolv.conf): the
    # host's, in this bundle.
    for mount in config.get("mounts", []):
        if mount.get("source", "").startswith("/run/specgate/"):
            name = os.path.basename(mount["source"])
            mount["source"] = os.path.join(bundle, name)
            shutil.copy(os.path.join("/etc", name), mount["source"])
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)

    plugin_args = []
    for name in THREE:
        plugin_args += ["--plugin", os.path.join(PLUGINS, name + ".wasm")]
    # Warm the plugin cache.
    subprocess.run([SPECGATE, "spec", *plugin_args], check=True,
                   stdout=subprocess.DEVNULL, env=env)

    cases = {
        "runc run": lambda i: timed(["runc", "run", "--bundle", bundle, f"bench-raw-{i}"]),
        "specgate, 0 plugins": lambda i: timed(
            [SPECGATE, "run", "--rootfs", rootfs, "--", "/bin/true"], env=env),
        "specgate, 3 plugins": lambda i: timed(
            [SPECGATE, "run", "--rootfs", rootfs, *plugin_args, "--", "/bin/true"], env=env),
    }
    samples = {name: [] for name in cases}
    for i in range(rounds):
        for name, case in cases.items():
            samples[name].append(case(i))
    base = statistics.median(samples["runc run"])
    print(f"{rounds} rounds, median wall time, ratio to raw runc run")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:<22} {median * 1000:8.2f} ms  {median / base:5.2f}x")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
