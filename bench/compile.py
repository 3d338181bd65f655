#!/usr/bin/env python3
"""`specgate plugin compile` of example plugins, cold cache: one
invocation per plugin, one after the other (sequential), against one
invocation with all of them (compiled in parallel, one thread each).

Each round starts both from an empty cache directory and alternates which
goes first, so that machine noise hits both alike; prints per-round times,
medians and the ratio.

Usage (after `bash .ci/setup` and `cargo build --release`):
    python3 bench/compile.py [ROUNDS] [--all]
The five Rust examples by default; with --all, the Python and JavaScript
examples too (each takes seconds to compile).
SPECGATE=path/to/specgate picks another build.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import SPECGATE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, "plugins/target/wasm32-wasip2/release")
COMPONENTS = os.path.join(ROOT, "plugins/target/components")
EXAMPLES = [
    "deny_privileged",
    "drop_capabilities",
    "mount_allowlist",
    "readonly_mounts",
    "require_namespaces",
]


def compile_into(cache, files):
    """Wall time of one `plugin compile` of `files` into `cache`."""
    started = time.perf_counter()
    subprocess.run(
        [SPECGATE, "--cache-dir", cache, "plugin", "compile", *files],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "SPECGATE_PROGRESS_AFTER": "3600s"},
    )
    return time.perf_counter() - started


def fresh_cache(parent, tag):
    path = os.path.join(parent, tag)
    os.mkdir(path, 0o700)
    return path


def main():
    args = [a for a in sys.argv[1:] if a != "--all"]
    rounds = int(args[0]) if args else 5
    files = [os.path.join(PLUGINS, f"{name}.wasm") for name in EXAMPLES]
    if "--all" in sys.argv[1:]:
        files += [os.path.join(COMPONENTS, name) for name in ["deny_commands.wasm", "tmpfs.wasm"]]
    for f in files:
        if not os.path.isfile(f):
            raise SystemExit(f"{f} missing: run `bash .ci/setup` first")
    sequential, parallel = [], []
    with tempfile.TemporaryDirectory() as parent:
        for i in range(rounds):
            def seq():
                cache = fresh_cache(parent, f"seq{i}")
                return sum(compile_into(cache, [f]) for f in files)

            def par():
                return compile_into(fresh_cache(parent, f"par{i}"), files)

            order = [("seq", seq), ("par", par)] if i % 2 == 0 else [("par", par), ("seq", seq)]
            for tag, run in order:
                (sequential if tag == "seq" else parallel).append(run())
            print(f"round {i + 1}: sequential {sequential[-1]:.3f} s, parallel {parallel[-1]:.3f} s")
    s, p = statistics.median(sequential), statistics.median(parallel)
    print(f"\n{len(files)} example plugins, cold cache, {os.cpu_count()} CPUs, median of {rounds}:")
    print(f"  sequential (one `plugin compile` per plugin): {s:.3f} s ({s / len(files):.3f} s per plugin)")
    print(f"  parallel (one `plugin compile` with all):     {p:.3f} s")
    print(f"  sequential / parallel: {s / p:.2f}x")


if __name__ == "__main__":
    main()
