#!/usr/bin/env python3
"""What an interpreted plugin adds: `specgate spec` with no plugin, with the
Python example (`deny-commands`, componentize-py), with the JavaScript one
(`tmpfs`, jco), and with both, all cached, round-robin and alternating.

`spec` runs the whole chain and builds the whole config.json but starts no
container, so runc's variance (several ms) does not hide the plugins'
cost; what a plugin adds to `spec` is what it adds to a run. Prints, per
case, the median wall time, the median of each round's own difference to
no plugin, and the peak RSS of the process (from wait4).

With a second specgate binary (another build), the same cases run through
it in the same rounds, and each case's paired difference between the two
builds is printed.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/interpreted.py [ROUNDS] [OTHER_SPECGATE]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from compile import COMPONENTS
from run import SPECGATE, paired

CASES = {
    "no plugin": [],
    "Python": ["deny_commands.wasm"],
    "JavaScript": ["tmpfs.wasm"],
    "Python + JavaScript": ["deny_commands.wasm", "tmpfs.wasm"],
}


def measured(cmd, env):
    """Wall seconds and peak RSS (KiB) of one run of cmd."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)}: status {status}")
    return elapsed, usage.ru_maxrss


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    builds = {"this build": SPECGATE}
    if len(sys.argv) > 2:
        builds["other build"] = os.path.abspath(sys.argv[2])
    cache = tempfile.mkdtemp(prefix="specgate-bench-interpreted-")
    env = dict(os.environ, SPECGATE_CACHE_DIR=cache)
    lines = {}
    for build, binary in builds.items():
        for case, files in CASES.items():
            args = [binary, "spec"]
            for name in files:
                args += ["--plugin", os.path.join(COMPONENTS, name)]
            lines[(build, case)] = args + ["--", "/bin/true"]
    # Compile into the cache, then let its entries settle (a check is
    # recorded only for an entry unchanged for two seconds) and load each
    # once more, so that every timed load is a steady-state hit.
    for line in lines.values():
        measured(line, env)
    time.sleep(2.5)
    for line in lines.values():
        measured(line, env)
    wall = {key: [] for key in lines}
    rss = {key: [] for key in lines}
    for i in range(rounds):
        keys = list(lines) if i % 2 == 0 else list(reversed(lines))
        for key in keys:
            elapsed, kib = measured(lines[key], env)
            wall[key].append(elapsed)
            rss[key].append(kib)
    print(f"{rounds} rounds of `specgate spec`, cached plugins: median wall time, "
          "median of each round's difference to no plugin, median peak RSS")
    for (build, case), values in wall.items():
        base = wall[(build, "no plugin")]
        print(f"  {build:<11} {case:<20} {statistics.median(values) * 1000:8.2f} ms  "
              f"{paired(values, base) * 1000:+8.2f} ms  "
              f"{statistics.median(rss[(build, case)]) / 1024:6.1f} MiB")
    if "other build" in builds:
        print("this build against the other: median of each round's difference")
        for case in CASES:
            difference = paired(wall[("this build", case)], wall[("other build", case)])
            print(f"  {case:<20} {difference * 1000:+8.2f} ms")
    subprocess.run(["rm", "-rf", cache], check=True)


if __name__ == "__main__":
    main()
