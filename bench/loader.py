#!/usr/bin/env python3
"""What linking glibc dynamically adds to a start of specgate: the dynamic
loader mapping and binding libc, libm, libgcc_s and libseccomp, the four
libraries specgate links.

Builds one small program that uses libseccomp and libm twice, linked as
specgate is (dynamically) and as it was (a static position-independent
executable with a static glibc and libseccomp), then starts each in turn,
alternating, and prints the medians and the median of the per-pair
differences. The program is written to a temporary directory; nothing in
the tree changes.

Usage (after `bash .ci/setup`, which installs libseccomp-dev):
    python3 bench/loader.py [PAIRS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

MANIFEST = """[package]
name = "loader-cost"
version = "0.1.0"
edition = "2024"

[dependencies]
libseccomp = "0.4"
"""

MAIN = """fn main() {
    let version = libseccomp::ScmpVersion::current().map(|v| v.major).unwrap_or(0);
    let x = std::env::args().count() as f64;
    if x.sin() > 2.0 || version == 99 {
        println!("{version}");
    }
}
"""


def build(work):
    os.makedirs(os.path.join(work, "src"))
    with open(os.path.join(work, "Cargo.toml"), "w") as f:
        f.write(MANIFEST)
    with open(os.path.join(work, "src", "main.rs"), "w") as f:
        f.write(MAIN)
    host = subprocess.run(["rustc", "--print", "host-tuple"], capture_output=True,
                          text=True, check=True).stdout.strip()
    cargo = ["cargo", "build", "--quiet", "--release", "--manifest-path",
             os.path.join(work, "Cargo.toml")]
    subprocess.run(cargo, check=True)
    static_env = dict(os.environ, LIBSECCOMP_LINK_TYPE="static",
                      RUSTFLAGS=f"-C target-feature=+crt-static -L native=/usr/lib/{host.replace('-unknown', '')}")
    subprocess.run(cargo + ["--target", host], check=True, env=static_env)
    return (os.path.join(work, "target", "release", "loader-cost"),
            os.path.join(work, "target", host, "release", "loader-cost"))


def once(path):
    started = time.perf_counter_ns()
    pid = os.posix_spawn(path, [path], {})
    os.waitpid(pid, 0)
    return time.perf_counter_ns() - started


def main():
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as work:
        dynamic, static = build(work)
        for _ in range(50):
            once(dynamic)
            once(static)
        d, s, diff = [], [], []
        for i in range(pairs):
            if i % 2:
                x, y = once(dynamic), once(static)
            else:
                y, x = once(static), once(dynamic)
            d.append(x)
            s.append(y)
            diff.append(x - y)
    ms = lambda ns: ns / 1e6
    print(f"{pairs} pairs: dynamic {ms(statistics.median(d)):.3f} ms, "
          f"static {ms(statistics.median(s)):.3f} ms, "
          f"paired difference {ms(statistics.median(diff)):+.3f} ms")


if __name__ == "__main__":
    main()
