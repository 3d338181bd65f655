#!/usr/bin/env python3
"""CreateContainer + StartContainer through containerd's CRI: the `runc`
handler against the `specgate` handler (specgate-runtime with three cached
plugins that admit a pod's containers: drop-capabilities, require-namespaces
for pid only, readonly-mounts), paired, the order alternating pair by pair.

It is the integration binary's ignored test `cri::create_and_start_latency`:
that test starts a containerd of its own with the CRI plugin, the handler
block of docs/engines.md, a CNI bridge network and two local images, runs
one pod per handler, and times kubelet's two calls for each container (its
stop and removal are not timed). Prints both medians and the median of the
pairs' differences, the figure least disturbed by the machine's drift.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/cri.py [PAIRS]
SPECGATE=path/to/specgate picks the binary behind the link (default
target/release/specgate; target/dist/specgate is the binary to deploy).
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    pairs = sys.argv[1] if len(sys.argv) > 1 else "30"
    binary = os.environ.get("SPECGATE", os.path.join(ROOT, "target/release/specgate"))
    if not os.path.isfile(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release`, or set SPECGATE")
    env = dict(os.environ, SPECGATE=os.path.abspath(binary), CRI_BENCH_PAIRS=pairs)
    subprocess.run(
        ["cargo", "test", "--quiet", "--test", "integration", "--",
         "--ignored", "--exact", "cri::create_and_start_latency", "--nocapture"],
        cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    main()
