#!/usr/bin/env python3
"""The cost of CNI networks in `specgate run`, side by side and alternating.

Runs `/bin/true` in a busybox-static rootfs with `--network none` (one
foreground `runc run`), with a loopback-only CNI network (create, ADD
loopback, start, delete, DEL) and with a bridge + host-local network
(veth pair, address lease). Every run happens inside a network namespace
this script creates and removes, so the bridge is never the host's;
addresses come from 10.123.200.0/24. Round-robin so that machine noise
hits all alike; prints medians and ratios to `--network none`.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/network.py [ROUNDS]
SPECGATE=path/to/specgate picks another build.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import SPECGATE

NETNS = "specgate-bench-cni"


def busybox_rootfs(path):
    os.makedirs(os.path.join(path, "bin"))
    for sub in ["etc", "tmp", "proc", "dev", "sys"]:
        os.makedirs(os.path.join(path, sub))
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    os.symlink("busybox", os.path.join(path, "bin", "true"))


def timed(cmd):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    work = tempfile.mkdtemp(prefix="specgate-bench-cni-")
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        rootfs = os.path.join(work, "rootfs")
        busybox_rootfs(rootfs)
        conf = os.path.join(work, "net.d")
        os.makedirs(conf)
        with open(os.path.join(conf, "10-lo.conf"), "w") as f:
            f.write('{"cniVersion":"1.0.0","name":"bench-lo","type":"loopback"}')
        with open(os.path.join(conf, "20-br.conflist"), "w") as f:
            f.write('{"cniVersion":"1.0.0","name":"bench-br","plugins":[{"type":"bridge",'
                    '"bridge":"sgbench0","ipam":{"type":"host-local","dataDir":"%s",'
                    '"ranges":[[{"subnet":"10.123.200.0/24"}]]}}]}' % os.path.join(work, "ipam"))
        # Only the network namespace: `ip netns exec` would remount /sys.
        base = ["nsenter", f"--net=/run/netns/{NETNS}", SPECGATE, "run",
                "--cni-config-dir", conf, "--rootfs", rootfs]
        variants = {
            "--network none": base + ["--network", "none", "--", "true"],
            "loopback CNI network": base + ["--network", "bench-lo", "--", "true"],
            "bridge + host-local": base + ["--network", "bench-br", "--", "true"],
        }
        times = {name: [] for name in variants}
        for cmd in variants.values():
            timed(cmd)  # warm up
        for _ in range(rounds):
            for name, cmd in variants.items():
                times[name].append(timed(cmd))
        none = statistics.median(times["--network none"])
        print(f"{rounds} rounds, median wall time of `specgate run -- true`:")
        for name, samples in times.items():
            median = statistics.median(samples)
            print(f"  {name:24} {median * 1000:7.1f} ms  {median / none:5.2f}x")
    finally:
        subprocess.run(["ip", "netns", "del", NETNS])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
