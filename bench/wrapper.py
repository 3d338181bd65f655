#!/usr/bin/env python3
"""specgate-runtime create against runc create, side by side and alternating.

The engine's view: `create` of one bundle (a busybox-static rootfs running
`/bin/true`) through raw runc, and through `specgate-runtime` with an empty
policy and with three example plugins (cached), round-robin, the order
reversed every other round, so that machine noise hits all alike. Each
create is followed, untimed, by `delete --force`, a fresh copy of the
engine's config.json, and a pause: `runc delete` returns before the kernel
has torn down the container's namespaces (a kernel worker does that
after), and without the pause that teardown lands in whichever create
comes next. Prints medians, ratios, the overhead over the base case, and
the median of each round's own difference to it (the figure least
disturbed by the machine's drift).

runc's own create takes tens of milliseconds and varies by several, so the
wrapper's cost is also measured alone: the same creates with `/bin/true`
standing in for the runtime, against `/bin/true` run directly. Since the
wrapper becomes the runtime, that difference is exactly what it adds.

With a second specgate binary (another build, e.g. of an earlier commit),
the wrapper-alone cases are also run through it, in the same rounds: the
way to compare two builds on a machine whose speed drifts.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/wrapper.py [ROUNDS] [OTHER_SPECGATE]
SPECGATE=path/to/specgate picks another build: target/dist/specgate
(`cargo build --profile dist`) is the binary to deploy.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import PLUGINS, SPECGATE, THREE, busybox_rootfs


# Seconds between a create's cleanup and the next create.
SETTLE = 0.05


def policy(path, plugins):
    with open(path, "w") as f:
        for name in plugins:
            f.write(f'[[plugin]]\npath = "{os.path.join(PLUGINS, name + ".wasm")}"\n')


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    runc = shutil.which("runc")
    work = tempfile.mkdtemp(prefix="specgate-bench-wrapper-")
    rootfs = os.path.join(work, "rootfs")
    busybox_rootfs(rootfs)
    cache = os.path.join(work, "cache")
    os.makedirs(cache, mode=0o700)
    state = os.path.join(work, "state")
    link = os.path.join(work, "specgate-runtime")
    os.symlink(SPECGATE, link)
    other = sys.argv[2] if len(sys.argv) > 2 else None
    if other:
        other_link = os.path.join(work, "other", "specgate-runtime")
        os.makedirs(os.path.dirname(other_link))
        os.symlink(os.path.abspath(other), other_link)
    policy(os.path.join(work, "none.toml"), [])
    policy(os.path.join(work, "three.toml"), THREE)

    # The engine's config.json: specgate's spec without the files its own
    # runs put in their bundle.
    spec = subprocess.run(
        [SPECGATE, "spec", "--no-default-policy", "--rootfs", rootfs, "--", "/bin/true"],
        check=True, capture_output=True, env=dict(os.environ, SPECGATE_CACHE_DIR=cache)).stdout
    config = json.loads(spec)
    config["mounts"] = [m for m in config["mounts"]
                        if not m.get("source", "").startswith("/run/specgate/")]
    original = json.dumps(config, indent=2).encode()
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)

    def case(program, policy_name, runtime=runc):
        env = dict(os.environ, SPECGATE_CACHE_DIR=cache,
                   SPECGATE_POLICY=os.path.join(work, f"{policy_name}.toml"),
                   SPECGATE_RUNTIME=runtime)

        def timed(i):
            with open(os.path.join(bundle, "config.json"), "wb") as f:
                f.write(original)
            cid = f"bench-wrapper-{i}"
            started = time.perf_counter()
            subprocess.run([program, "--root", state, "create", "--bundle", bundle, cid],
                           check=True, stdout=subprocess.DEVNULL, env=env)
            took = time.perf_counter() - started
            if runtime == runc:
                subprocess.run([runc, "--root", state, "delete", "--force", cid], check=True)
            time.sleep(SETTLE)
            return took
        return timed

    true = shutil.which("true")
    groups = [
        ("with runc", "runc create", {
            "runc create": case(runc, "none"),
            "specgate-runtime, 0 plugins": case(link, "none"),
            "specgate-runtime, 3 plugins": case(link, "three"),
        }),
        ("the wrapper alone, `true` as the runtime", "true", {
            "true": case(true, "none", true),
            "specgate-runtime, 0 plugins": case(link, "none", true),
            "specgate-runtime, 3 plugins": case(link, "three", true),
        }),
    ]
    if other:
        groups[1][2].update({
            "other build, 0 plugins": case(other_link, "none", true),
            "other build, 3 plugins": case(other_link, "three", true),
        })
    for title, base_name, cases in groups:
        # Warm up: the plugin cache, the page cache.
        for name, run in cases.items():
            run(f"warm-{len(name)}")
        samples = {name: [] for name in cases}
        for i in range(rounds):
            order = list(cases.items())
            if i % 2:
                order.reverse()
            for name, run in order:
                samples[name].append(run(f"{i}-{len(name)}"))
        base = statistics.median(samples[base_name])
        print(f"{title}: {rounds} rounds, median wall time of create, ratio, overhead,"
              " paired overhead")
        for name, values in samples.items():
            median = statistics.median(values)
            paired = statistics.median(v - b for v, b in zip(values, samples[base_name]))
            print(f"  {name:<28} {median * 1000:8.2f} ms  {median / base:5.2f}x"
                  f"  {(median - base) * 1000:+7.2f} ms  {paired * 1000:+7.2f} ms")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
