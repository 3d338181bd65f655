#!/usr/bin/env python3
"""How specgate's cost grows, in one run: with the chain's length, with
concurrent runs, and in memory.

1. Chain length: `specgate spec` with a policy of 0, 1, 5, 10 and 20
   cached Rust plugins (the four example plugins that act on any
   container, repeated under their own names), round-robin and
   alternating; the median of each round's difference to no plugin,
   divided by the length, is the marginal cost of a plugin. `spec` runs
   the whole chain and builds the whole config.json but starts no
   container, so runc's variance does not hide it.
2. Concurrency: batches of 1, 8 and 32 concurrent `specgate run` of
   `/bin/true` with three cached plugins, against the same batches of raw
   `runc run` on the config.json specgate gives runc: runs per second.
3. Memory: the peak RSS (VmHWM) of specgate's own process during `run`
   of `sleep 0.5` with no plugin, three Rust plugins, the Python and the
   JavaScript example, and both; and how much of the largest RSS sampled
   was private and how much mapped from files (see `run.peak_rss`);
   medians of three runs.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/scaling.py [ROUNDS]
SPECGATE=path/to/specgate picks another build.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from compile import COMPONENTS
from run import PLUGINS, SPECGATE, THREE, busybox_rootfs, paired, peak_rss, raw_bundle, timed

# Example plugins that accept any container with their default settings.
ANY = ["drop_capabilities", "require_namespaces", "deny_privileged", "readonly_mounts"]
LENGTHS = [0, 1, 5, 10, 20]
BATCHES = [1, 8, 32]


def chain_policy(path, length):
    with open(path, "w") as f:
        for i in range(length):
            name = ANY[i % len(ANY)]
            f.write(f'[[plugin]]\nname = "p{i}"\n'
                    f'path = "{os.path.join(PLUGINS, name + ".wasm")}"\n')


def batch(lines, env=None):
    """Wall seconds for all of `lines` run at once."""
    started = time.perf_counter()
    procs = [subprocess.Popen(line, stdout=subprocess.DEVNULL, env=env) for line in lines]
    for proc, line in zip(procs, lines):
        if proc.wait() != 0:
            raise SystemExit(f"{' '.join(line)}: exit {proc.returncode}")
    return time.perf_counter() - started


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    work = tempfile.mkdtemp(prefix="specgate-bench-scaling-")
    rootfs = os.path.join(work, "rootfs")
    busybox_rootfs(rootfs)
    cache = os.path.join(work, "cache")
    os.makedirs(cache, mode=0o700)
    env = dict(os.environ, SPECGATE_CACHE_DIR=cache)

    lines = {}
    for length in LENGTHS:
        policy = os.path.join(work, f"policy-{length}.toml")
        chain_policy(policy, length)
        lines[length] = [SPECGATE, "spec", "--policy", policy, "--", "/bin/true"]
    # Fill the cache, let its entries settle (a check is recorded only for
    # an entry unchanged for two seconds), and load them once more.
    for line in lines.values():
        subprocess.run(line, check=True, stdout=subprocess.DEVNULL, env=env)
    time.sleep(2.5)
    for line in lines.values():
        subprocess.run(line, check=True, stdout=subprocess.DEVNULL, env=env)
    samples = {length: [] for length in LENGTHS}
    for i in range(rounds):
        order = LENGTHS if i % 2 == 0 else list(reversed(LENGTHS))
        for length in order:
            samples[length].append(timed(lines[length], env=env))
    print(f"chain length: {rounds} rounds of `specgate spec --policy`, cached plugins")
    for length in LENGTHS:
        median = statistics.median(samples[length]) * 1000
        if length == 0:
            print(f"  {length:>2} plugins {median:8.2f} ms")
            continue
        added = paired(samples[length], samples[0]) * 1000
        print(f"  {length:>2} plugins {median:8.2f} ms  {added:+8.2f} ms  "
              f"{added / length:6.2f} ms a plugin")

    bundle = raw_bundle(work, rootfs, env)
    plugin_args = []
    for name in THREE:
        plugin_args += ["--plugin", os.path.join(PLUGINS, name + ".wasm")]
    print(f"concurrency: {max(2, rounds // 4)} batches each, /bin/true, runs per second")
    serial = 0
    for size in BATCHES:
        ours, raw = [], []
        for b in range(max(2, rounds // 4)):
            ours.append(batch([[SPECGATE, "run", "--rootfs", rootfs, *plugin_args, "--",
                                "/bin/true"]] * size, env=env))
            raw.append(batch([["runc", "run", "--bundle", bundle, f"bench-scale-{serial + i}"]
                              for i in range(size)]))
            serial += size
        ours_rate = size / statistics.median(ours)
        raw_rate = size / statistics.median(raw)
        print(f"  {size:>2} at once: specgate, 3 plugins {ours_rate:7.1f}/s   "
              f"raw runc run {raw_rate:7.1f}/s   ratio {ours_rate / raw_rate:5.2f}")

    python = ["--plugin", os.path.join(COMPONENTS, "deny_commands.wasm")]
    javascript = ["--plugin", os.path.join(COMPONENTS, "tmpfs.wasm")]
    print("peak RSS of specgate's own process during `run ... sleep 0.5`; "
          "private and file-backed at the largest RSS sampled")
    for label, args in [("no plugin", []), ("3 Rust plugins", plugin_args),
                        ("Python", python), ("JavaScript", javascript),
                        ("Python + JavaScript", python + javascript)]:
        line = [SPECGATE, "run", "--rootfs", rootfs, *args, "--", "sleep", "0.5"]
        subprocess.run(line, check=True, stdout=subprocess.DEVNULL, env=env)  # cache
        samples = [peak_rss(line, env=env) for _ in range(3)]
        peak, private, file_backed = (statistics.median(s[i] for s in samples)
                                      for i in range(3))
        print(f"  {label:<22} {peak / 1024:6.1f} MiB   private {private / 1024:5.1f} MiB   "
              f"file-backed {file_backed / 1024:5.1f} MiB")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
