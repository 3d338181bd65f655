#!/usr/bin/env python3
"""specgate run --isolation rootless as an unprivileged user, beside
specgate run --isolation oci as root, side by side and alternating.

Runs `/bin/true` on the embedded default rootfs (the host's /) and in a
busybox-static rootfs (owned by whoever runs it, as an unpacked image would
be), no plugins, round-robin so that machine noise hits all alike; prints
medians and the rootless/oci ratios; and the busybox run rootless with the
single mapping (PATH without newuidmap), which shows what the setuid
helpers cost.

Both sides start the same way, through `setpriv ... env -i`, with a private
XDG_RUNTIME_DIR, so only specgate's own work differs. The unprivileged user
(with subordinate ids) is made for the run and removed after it.

Usage (as root, after `bash .ci/setup` and `cargo build --release`):
    python3 bench/rootless.py [ROUNDS]
SPECGATE=path/to/specgate picks another build.
"""

import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# bench/ is on sys.path when this runs as a script.
from run import SPECGATE

# The integration tests' prefix, which .ci/run cleans up after a killed run.
USER = f"specgate-t{os.getpid()}-bench"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


def test_user():
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    entry = pwd.getpwnam(USER)
    with open("/etc/subuid") as f:
        if not any(line.startswith(USER + ":") for line in f):
            subprocess.run(["usermod", "--add-subuids", "3000000-3065535",
                            "--add-subgids", "3000000-3065535", USER], check=True)
    return entry


def busybox_rootfs(path, uid, gid):
    os.makedirs(os.path.join(path, "bin"))
    for sub in ["etc", "tmp", "proc", "dev", "sys"]:
        os.makedirs(os.path.join(path, sub))
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    os.symlink("busybox", os.path.join(path, "bin/true"))
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, uid, gid)


def session(tmp, name, uid, gid):
    """A private XDG_RUNTIME_DIR and HOME owned by uid."""
    dirs = {}
    for key in ["run", "home"]:
        path = os.path.join(tmp, f"{name}-{key}")
        os.makedirs(path, mode=0o700)
        os.chown(path, uid, gid)
        dirs[key] = path
    return dirs


def command(uid, gid, dirs, args, path=PATH):
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups",
            "env", "-i", f"PATH={path}", f"HOME={dirs['home']}",
            f"XDG_RUNTIME_DIR={dirs['run']}", SPECGATE, "run", "--no-default-policy"] + args


def timed(cmd):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    user = test_user()
    try:
        measure(rounds, user)
    finally:
        subprocess.run(["userdel", "--force", USER], check=True)


def measure(rounds, user):
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        root_dirs = session(tmp, "root", 0, 0)
        user_dirs = session(tmp, "user", user.pw_uid, user.pw_gid)
        root_fs = os.path.join(tmp, "rootfs-root")
        user_fs = os.path.join(tmp, "rootfs-user")
        busybox_rootfs(root_fs, 0, 0)
        busybox_rootfs(user_fs, user.pw_uid, user.pw_gid)
        # A PATH with runc and no newuidmap: the single mapping.
        runc_only = os.path.join(tmp, "runc-only")
        os.makedirs(runc_only)
        os.symlink(shutil.which("runc"), os.path.join(runc_only, "runc"))
        cases = {
            "host /, oci as root": command(0, 0, root_dirs, ["--isolation", "oci", "--", "true"]),
            "host /, rootless as user": command(
                user.pw_uid, user.pw_gid, user_dirs, ["--isolation", "rootless", "--", "true"]),
            "busybox, oci as root": command(
                0, 0, root_dirs, ["--isolation", "oci", "--rootfs", root_fs, "--", "/bin/true"]),
            "busybox, rootless as user": command(
                user.pw_uid, user.pw_gid, user_dirs,
                ["--isolation", "rootless", "--rootfs", user_fs, "--", "/bin/true"]),
            "busybox, rootless, 1 id": command(
                user.pw_uid, user.pw_gid, user_dirs,
                ["--isolation", "rootless", "--rootfs", user_fs, "--", "/bin/true"], runc_only),
        }
        for cmd in cases.values():  # warm up, and fail early
            timed(cmd)
        times = {name: [] for name in cases}
        for _ in range(rounds):
            for name, cmd in cases.items():
                times[name].append(timed(cmd))
        med = {name: statistics.median(t) * 1000 for name, t in times.items()}
        print(f"{rounds} rounds, medians:")
        for name, ms in med.items():
            print(f"  {name:<28} {ms:7.1f} ms")
        for where in ["host /", "busybox"]:
            ratio = med[f"{where}, rootless as user"] / med[f"{where}, oci as root"]
            print(f"  {where}: rootless/oci = {ratio:.2f}x")
        single = med["busybox, rootless, 1 id"] / med["busybox, oci as root"]
        print(f"  busybox: rootless with the single mapping/oci = {single:.2f}x")


if __name__ == "__main__":
    main()
