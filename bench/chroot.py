#!/usr/bin/env python3
"""specgate run --isolation chroot against --isolation oci, side by side.

Runs `/bin/true` in a busybox-static rootfs with no plugin, alternating the
two isolations round by round so that machine noise hits both alike; prints
medians and the ratio chroot/oci (bench/run.py sets specgate beside raw
runc).

Usage (as root, after `bash .ci/setup` and a build):
    python3 bench/chroot.py [ROUNDS]
SPECGATE=path/to/specgate picks the build (default the release build, else
the debug one).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import built


def specgate_path():
    if "SPECGATE" in os.environ:
        return os.environ["SPECGATE"]
    for profile in ["release", "debug"]:
        path = built(profile)
        if os.path.exists(path):
            return path
    sys.exit("no specgate build: cargo build first")


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
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    specgate = specgate_path()
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        busybox_rootfs(rootfs)
        runs = {
            "specgate --isolation oci": lambda i: [
                specgate, "run", "--no-default-policy", "--isolation", "oci",
                "--rootfs", rootfs, "--", "/bin/true",
            ],
            "specgate --isolation chroot": lambda i: [
                specgate, "run", "--no-default-policy", "--isolation", "chroot",
                "--rootfs", rootfs, "--", "/bin/true",
            ],
        }
        times = {name: [] for name in runs}
        for name, cmd in runs.items():
            timed(cmd(-1))  # warms the page cache
        for i in range(rounds):
            for name, cmd in runs.items():
                times[name].append(timed(cmd(i)))
    print(f"{rounds} rounds, /bin/true in a busybox rootfs, {specgate}")
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    for name, median in medians.items():
        print(f"  {name:30} median {median:7.2f} ms")
    oci = medians["specgate --isolation oci"]
    chroot = medians["specgate --isolation chroot"]
    print(f"  chroot / oci: {chroot / oci:.2f}x")


if __name__ == "__main__":
    main()
