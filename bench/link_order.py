#!/usr/bin/env python3
"""Writes host/link-order.txt: the functions of the specgate binary that a
`specgate-runtime create` with three cached plugins executes, for the
linker to place side by side.

The binary's text is 16 MB, and the wrapper's path runs about 1 MB of it
spread all over: each first touch of a 64 KiB stretch is a page fault.
Placed together, those functions take a few faults instead of ~90. The
list comes from callgrind (every function executed, however briefly),
stopped where the process hands its memory to the holder before the exec.

Names are mangled, with hashes that change with the compiler, the crate
versions and features, not with the code of a function: regenerate after
updating either. A stale name is ignored by the linker.

Usage (as root, after `bash .ci/setup` and `cargo build --release`; needs
valgrind):
    python3 bench/link_order.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

# bench/ is on sys.path when this runs as a script.
from run import ROOT, SPECGATE, THREE, busybox_rootfs
from wrapper import policy as write_policy

OUT = os.path.join(ROOT, "host", "link-order.txt")


def executed_functions(profile, binary):
    """The functions callgrind saw run in `binary`, sorted: within the
    group their order matters little, and callgrind's own varies from run
    to run with the threads, which would churn the file."""
    objects, names, seen = {}, {}, {}
    current = None
    for line in open(profile):
        m = re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        called, kind, index, name = m.groups()
        table = objects if kind == "ob" else names
        if name:
            table[index] = name
        if called:
            continue
        if kind == "ob":
            current = objects.get(index)
        elif current == binary:
            seen.setdefault(names[index], None)
    return sorted(seen)


def main():
    work = tempfile.mkdtemp(prefix="specgate-link-order-")
    binary = os.path.join(work, "specgate-runtime")
    shutil.copy(SPECGATE, binary)
    rootfs = os.path.join(work, "rootfs")
    busybox_rootfs(rootfs)
    cache = os.path.join(work, "cache")
    os.makedirs(cache, mode=0o700)
    policy = os.path.join(work, "three.toml")
    write_policy(policy, THREE)
    env = dict(os.environ, SPECGATE_CACHE_DIR=cache, SPECGATE_POLICY=policy,
               SPECGATE_RUNTIME=shutil.which("true"))
    spec = subprocess.run(
        [SPECGATE, "spec", "--no-default-policy", "--rootfs", rootfs, "--", "/bin/true"],
        check=True, capture_output=True, env=env).stdout
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(spec)
    create = [binary, "--root", os.path.join(work, "state"), "create", "--bundle", bundle]
    # Compile into the cache first: the order is that of a cached load.
    subprocess.run(create + ["warm"], check=True, env=env)
    profile = os.path.join(work, "callgrind.out")
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={profile}",
         # valgrind cannot follow the holder's clone: the profile is
         # written just before it.
         "--dump-before=*clone_sharer*"] + create + ["profiled"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dumps = [p for p in os.listdir(work) if p.startswith("callgrind.out.")]
    if not dumps:
        sys.exit("link_order.py: callgrind wrote no profile")
    functions = executed_functions(os.path.join(work, sorted(dumps)[0]), binary)
    with open(OUT, "w") as f:
        f.write("".join(name + "\n" for name in functions))
    print(f"{OUT}: {len(functions)} functions")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
