#!/usr/bin/env python3
"""Faults specgate must survive, and what each leaves behind.

Each scenario runs real `specgate run`s in a busybox-static rootfs, then
checks that nothing of theirs is left: no runc state, no bundle, no mount,
no cgroup, no process, and for networked runs no address lease, no veth,
no iptables rule and no CNI result record. Prints one line per scenario
(PASS or FAIL, with its figures) and what was found left; exits 1 if any
scenario failed.

  killed-early     40 runs SIGKILLed at random moments in their first 300 ms
  killed-running   5 runs SIGKILLed while their container runs
  concurrent       32 concurrent runs with three plugins, each of which must
                   print its own line and nothing else
  first-compiles   8 concurrent first compiles of one plugin into an empty
                   cache: all succeed, one cache entry
  corrupt-cache    a run over corrupted cache entries: recompiled, with a
                   warning
  full-audit-log   an audit log on a full filesystem (a 64 KiB tmpfs): the
                   run is refused with 125
  sequential       300 sequential runs, all exit 0
  killed-network   40 networked runs (a CNI bridge + host-local network with
                   masquerading, in a private configuration directory and a
                   network namespace this script makes) SIGKILLed at random
                   moments within the time a whole networked run of `true`
                   takes (create, ADD, start, the container, delete, DEL);
                   half of them run `true`, so that kills also land after
                   the container exited

Killed runs are cleaned up by their guard (the watcher that execs
`specgate guard`); the script waits for it, up to 60 s, and prints how long
the cleanups took.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/faults.py [SCENARIO...]
SPECGATE=path/to/specgate picks another build (a debug build takes longer
per run, so the kills land earlier in its runs).
"""

import glob
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import PLUGINS, SPECGATE, THREE

PREFIX = "specgate-faults-"
NETNS = "specgate-faults"
NETWORK = "faults-br"
BRIDGE = "sgfaults0"
SUBNET = "10.123.210.0/24"
# The container's sleep, recognisable among the host's processes.
SLEEP = ["sleep", "987"]
STATE = "/run/specgate"
RESULTS = "/var/lib/cni/results"


def busybox_rootfs(path):
    os.makedirs(os.path.join(path, "bin"))
    for sub in ["etc", "tmp", "proc", "dev", "sys"]:
        os.makedirs(os.path.join(path, sub))
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    for applet in ["true", "sleep", "sh", "echo", "ip"]:
        os.symlink("busybox", os.path.join(path, "bin", applet))


class Work:
    """The script's scratch space, rootfs, plugin cache and network."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix=PREFIX)
        self.rootfs = os.path.join(self.dir, "rootfs")
        busybox_rootfs(self.rootfs)
        self.cache = os.path.join(self.dir, "cache")
        self.env = dict(os.environ, SPECGATE_CACHE_DIR=self.cache)
        self.env.pop("SPECGATE_LOG", None)
        self.conf = os.path.join(self.dir, "net.d")
        self.ipam = os.path.join(self.dir, "ipam")
        self.serial = 0

    def name(self, scenario):
        self.serial += 1
        return f"{PREFIX}{scenario}-{self.serial}"

    def run_args(self, name, *extra):
        return [SPECGATE, "run", "--name", name, "--rootfs", self.rootfs, *extra]

    def make_network(self):
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", NETNS], check=True)
        os.makedirs(self.conf, exist_ok=True)
        with open(os.path.join(self.conf, "10-faults.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": NETWORK, "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "dataDir": self.ipam,
                         "ranges": [[{"subnet": SUBNET}]]}}]}, f)

    def close(self):
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def ours(text):
    return PREFIX in text


def leftovers(work):
    """What runs of this script left, by kind."""
    found = {}

    def note(kind, what):
        found.setdefault(kind, []).append(what)

    listed = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True)
    for line in listed.stdout.split():
        if ours(line):
            note("runc state", line)
    for path in glob.glob(os.path.join(STATE, PREFIX + "*")):
        note("bundle", path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if ours(fields[4]) and not fields[4].startswith(work.dir + "/"):
                note("mount", fields[4])
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if ours(d):
                note("cgroup", os.path.join(root, d))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                plugin = f"\0CNI_CONTAINERID={PREFIX}".encode() in b"\0" + f.read()
        except OSError:
            plugin = False
        if int(pid) != os.getpid() and (ours(cmdline) or cmdline == " ".join(SLEEP) or plugin):
            note("process", f"{pid} {cmdline}")
    for path in glob.glob(os.path.join(RESULTS, f"*{PREFIX}*")):
        note("CNI result record", path)
    if os.path.isdir(os.path.join(work.ipam, NETWORK)):
        for lease in os.listdir(os.path.join(work.ipam, NETWORK)):
            if lease.startswith("10."):
                note("lease", lease)
    if os.path.exists(f"/run/netns/{NETNS}"):
        links = subprocess.run(["ip", "-n", NETNS, "-o", "link", "show"],
                               capture_output=True, text=True).stdout
        for line in links.splitlines():
            if "veth" in line:
                note("veth", line.split(":")[1].strip())
        rules = subprocess.run(["nsenter", f"--net=/run/netns/{NETNS}", "iptables-save",
                                "-t", "nat"], capture_output=True, text=True).stdout
        for line in rules.splitlines():
            if ours(line):
                note("iptables rule", line)
    return found


def settle(work, limit=60.0):
    """Waits until the guards have cleaned up, or `limit` seconds; returns
    the time it took and what is left."""
    started = time.perf_counter()
    while True:
        left = leftovers(work)
        elapsed = time.perf_counter() - started
        if not left or elapsed > limit:
            return elapsed, left
        time.sleep(0.05)


def kill_at(cmd, delay, env, probe=None):
    """Starts cmd, SIGKILLs it `delay` seconds later; returns what `probe`
    said just before the kill and whether the process had already ended."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    seen = probe() if probe else None
    ended = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seen, ended


def killed_early(work):
    delays = []
    ended = 0
    for _ in range(40):
        delay = random.uniform(0, 0.3)
        delays.append(delay)
        _, done = kill_at(work.run_args(work.name("early"), "--", *SLEEP), delay, work.env)
        ended += done
    took, left = settle(work)
    return not left and not ended, (
        f"40 kills at {min(delays)*1000:.0f}-{max(delays)*1000:.0f} ms, "
        f"cleaned up {took:.2f} s after the last"), left


def killed_running(work):
    for _ in range(5):
        name = work.name("running")
        proc = subprocess.Popen(
            work.run_args(name, "--", "sh", "-c", "echo ready; " + " ".join(SLEEP)),
            env=work.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        line = proc.stdout.readline()
        if line != b"ready\n":
            proc.kill()
            proc.wait()
            return False, f"{name}: no container ({line!r})", {}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    took, left = settle(work)
    return not left, f"5 kills, cleaned up {took:.2f} s after the last", left


def plugin_args():
    args = []
    for name in THREE:
        args += ["--plugin", os.path.join(PLUGINS, name + ".wasm")]
    return args


def concurrent(work):
    # Warm the cache, so that the runs race on running, not compiling.
    subprocess.run([SPECGATE, "spec", *plugin_args()], env=work.env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    started = time.perf_counter()
    for i in range(32):
        token = f"run {i} of 32"
        procs.append((token, subprocess.Popen(
            work.run_args(work.name("concurrent"), *plugin_args(), "--", "echo", token),
            env=work.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)))
    wrong = []
    for token, proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0 or out != (token + "\n").encode() or err:
            wrong.append(f"{token}: exit {proc.returncode}, stdout {out!r}, stderr {err!r}")
    wall = time.perf_counter() - started
    took, left = settle(work)
    if wrong:
        left["wrong output"] = wrong
    return not left, f"32 runs in {wall:.2f} s, each printed its own line only", left


def first_compiles(work):
    cache = os.path.join(work.dir, "empty-cache")
    env = dict(work.env, SPECGATE_CACHE_DIR=cache)
    plugin = os.path.join(PLUGINS, THREE[0] + ".wasm")
    started = time.perf_counter()
    procs = [subprocess.Popen(
        work.run_args(work.name("compile"), "--plugin", plugin, "--", "true"),
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(8)]
    failed = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"exit {proc.returncode}: {err.decode(errors='replace').strip()}")
    wall = time.perf_counter() - started
    entries = glob.glob(os.path.join(cache, "*.cwasm"))
    took, left = settle(work)
    if failed:
        left["failed run"] = failed
    if len(entries) != 1:
        left["cache entries"] = entries
    return not left, f"8 runs in {wall:.2f} s, {len(entries)} cache entry", left


def corrupt_cache(work):
    cache = os.path.join(work.dir, "corrupt-cache")
    env = dict(work.env, SPECGATE_CACHE_DIR=cache)
    subprocess.run([SPECGATE, "spec", *plugin_args()], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    entries = sorted(glob.glob(os.path.join(cache, "*.cwasm")))
    good = {}
    for i, entry in enumerate(entries):
        with open(entry, "rb") as f:
            good[entry] = f.read()
        damaged = bytearray(good[entry])
        if i % 3 == 0:
            damaged[len(damaged) // 2] ^= 0x40
        elif i % 3 == 1:
            damaged = damaged[:len(damaged) // 3]
        else:
            damaged = b"garbage"
        with open(entry, "wb") as f:
            f.write(damaged)
    out = subprocess.run(
        work.run_args(work.name("corrupt"), *plugin_args(), "--", "echo", "ran"),
        env=env, capture_output=True, text=True)
    warnings = out.stderr.count("corrupt; recompiling")
    restored = all(open(e, "rb").read() == good[e] for e in entries)
    took, left = settle(work)
    if out.returncode != 0 or out.stdout != "ran\n":
        left["run"] = [f"exit {out.returncode}, stdout {out.stdout!r}, stderr {out.stderr!r}"]
    if warnings != len(entries) or not restored:
        left["cache"] = [f"{warnings} warnings for {len(entries)} damaged entries, "
                         f"restored: {restored}"]
    return not left, (f"{len(entries)} damaged entries, {warnings} warnings, "
                      f"recompiled identical: {restored}"), left


def full_audit_log(work):
    mount = os.path.join(work.dir, "full")
    os.makedirs(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/filler", "bs=4k"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = os.path.join(mount, "audit.log")
        out = subprocess.run(
            work.run_args(work.name("audit"), "--audit-log", log, "--", "echo", "ran"),
            env=work.env, capture_output=True, text=True)
        took, left = settle(work)
        message = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
        if out.returncode != 125 or "audit log" not in message:
            left["run"] = [f"exit {out.returncode}, stderr {out.stderr!r}"]
        return not left, f"exit {out.returncode}: {message}", left
    finally:
        subprocess.run(["umount", mount], check=True)


def sequential(work):
    times = []
    failed = 0
    for _ in range(300):
        started = time.perf_counter()
        code = subprocess.run(work.run_args(work.name("seq"), "--", "true"), env=work.env,
                              stdin=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - started)
        failed += code != 0
    took, left = settle(work)
    if failed:
        left["failed runs"] = [str(failed)]
    return not left, (f"300 runs in {sum(times):.1f} s, median {statistics.median(times)*1000:.1f} ms, "
                      f"max {max(times)*1000:.1f} ms"), left


def killed_network(work):
    work.make_network()
    phases = {"before ADD": 0, "during ADD": 0, "after ADD": 0}
    ended = 0
    def networked(name, *command):
        return ["nsenter", f"--net=/run/netns/{NETNS}",
                *work.run_args(name, "--network", NETWORK, "--cni-config-dir", work.conf,
                               "--", *command)]

    # Kills land anywhere in a whole run, teardown included: the window is
    # the longest of three networked runs of `true`.
    whole = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(networked(work.name("net"), "true"), env=work.env, check=True)
        whole.append(time.perf_counter() - started)
    window = max(whole)
    for i in range(40):
        name = work.name("net")
        record = os.path.join(RESULTS, f"{NETWORK}-{name}-if0")

        def probe():
            try:
                with open(record) as f:
                    return "after ADD" if json.load(f).get("result") else "during ADD"
            except (OSError, ValueError):
                return "before ADD"

        # Every other container exits at once, so that kills also land
        # between its exit and the DEL, when only specgate holds its
        # network namespace.
        command = SLEEP if i % 2 == 0 else ["true"]
        phase, done = kill_at(networked(name, *command), random.uniform(0, window),
                              work.env, probe)
        phases[phase] += 1
        ended += done
    took, left = settle(work)
    spread = ", ".join(f"{n} {p}" for p, n in phases.items())
    return not left, (f"40 kills in {window*1000:.0f} ms ({spread}; {ended} of the 20 "
                      f"`true` runs had ended), "
                      f"cleaned up {took:.2f} s after the last"), left


SCENARIOS = {
    "killed-early": killed_early,
    "killed-running": killed_running,
    "concurrent": concurrent,
    "first-compiles": first_compiles,
    "corrupt-cache": corrupt_cache,
    "full-audit-log": full_audit_log,
    "sequential": sequential,
    "killed-network": killed_network,
}


def main():
    if os.geteuid() != 0:
        raise SystemExit("faults.py runs containers and networks: run it as root")
    chosen = sys.argv[1:] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]}; known: {', '.join(SCENARIOS)}")
    print(f"specgate: {SPECGATE}")
    work = Work()
    failed = 0
    try:
        before = leftovers(work)
        if before:
            raise SystemExit(f"leftovers of an earlier run of this script: {before}")
        for scenario in chosen:
            started = time.perf_counter()
            ok, figures, left = SCENARIOS[scenario](work)
            elapsed = time.perf_counter() - started
            print(f"{'PASS' if ok else 'FAIL'} {scenario:<15} {elapsed:6.1f} s  {figures}",
                  flush=True)
            for kind, what in left.items():
                print(f"     left: {kind}: {len(what)}: {what[:5]}", flush=True)
            failed += not ok
    finally:
        work.close()
    print(f"{len(chosen) - failed} of {len(chosen)} passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
