#!/usr/bin/env python3
"""The Debian jail's workloads natively and in sandboxes, interleaved.

    python3 benchmarks/debian_jail.py [--rounds 3] [--image IMG.tar]
                                      [--only apt,pip,...] [--runners native,bwrap,...]
                                      [--json FILE]

The workloads are tests/test_debian_jail.py's (apt-get update + install jq,
a venv + pip install, git, gcc + make, useradd + su), each from a fresh
copy of a debootstrapped bookworm image (--image, default
$UMLPY_DEBIAN_IMAGE or the test's cached one, built with
rootfs/make-debian-image if missing).  Runners, all as root:

  native      chroot into the extracted image (in a private mount
              namespace: /proc mounted, /dev bound, the host's
              /etc/resolv.conf copied in)
  bwrap       bwrap --bind DIR / --proc /proc --dev /dev --unshare-ipc
              --unshare-pid --unshare-uts --unshare-cgroup-try: what
              --unshare-all --share-net does but the user namespace,
              which as root maps uid 0 alone (apt's _apt and useradd's
              users cannot exist there: apt-get update fails)
  runsc       gVisor, `runsc --rootless --network=host do -root DIR`
              (without --rootless, `do` sets up a veth with iptables
              unless --network=none); the first variant that starts
  umlpy-root  umlpy run --rootfs IMG --net host, umlpy as root
  umlpy-user  the same with --root, as uid 65534 with an /etc/subuid and
              /etc/subgid range (added for the benchmark's length, the
              files restored exactly afterwards)

Every run starts from the image: a fresh extraction for native, bwrap
and runsc (not timed), umlpy's throwaway upper.  Downloaded .deb files
are shared between runs (the test's cache directory, bound at /mnt/debs;
runsc, which does not see host mounts made for it, gets a copy), so
after the first round no runner downloads a package; apt-get update and
pip's download of one small wheel still go to the network each run.
Each round runs every workload under every runner, the runners' order
rotated per workload and round.  Printed: median seconds per workload
per runner, umlpy's over native's, and how many runs passed (the
workload printed what it must).

CPU placement: unpinned.  Nothing is pinned: the scheduler places every
process (runner, tracer, guest) on either of the machine's CPUs.  Not a
test: no timing is asserted anywhere.  Needs root.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import test_debian_jail as jail                                      # noqa: E402
from test_identities import _nobody_python                            # noqa: E402

RUNNERS = ["native", "bwrap", "runsc", "umlpy-root", "umlpy-user"]
RUNSC_VARIANTS = [
    ["--rootless", "--network=host"],
    ["--rootless", "--network=host", "--platform=ptrace"],
]
SUBID_LINE = "nobody:3000000:65536\n"
WORK_PARENT = "/var/tmp"


def note(text):
    print(text, file=sys.stderr, flush=True)


def guest_command(name):
    """The workload with a clean environment, for runners without -e."""
    env = dict(jail.GUEST_ENV, DEBS=jail.GUEST_DEBS)
    return ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()),
            "/bin/sh", "-c", jail.workload_script(name)]


def fresh_tree(image, debs=None):
    """The image extracted into a new directory, with the host's
    resolv.conf and CA bundle, and the shared .deb files copied in if
    `debs` (for a runner that cannot see a bind)."""
    root = tempfile.mkdtemp(prefix="debian-jail-bench.", dir=WORK_PARENT)
    os.chmod(root, 0o755)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(image), "-C", root], check=True)
    shutil.copyfile("/etc/resolv.conf", os.path.join(root, "etc/resolv.conf"))
    shutil.copyfile(jail.HOST_CA, os.path.join(root, jail.GUEST_CA.lstrip("/")))
    target = os.path.join(root, jail.GUEST_DEBS.lstrip("/"))
    os.makedirs(target, exist_ok=True)
    if debs is not None:
        for entry in os.listdir(debs):
            if entry.endswith(".deb"):
                shutil.copyfile(os.path.join(debs, entry), os.path.join(target, entry))
    return root


def remove_tree(root):
    subprocess.run(["rm", "-rf", "--one-file-system", root], check=False)


class Runner:
    """prepare(name) -> (argv, env, cleanup)."""

    def __init__(self, name, image, python=None, runsc=None):
        self.name, self.image, self.python, self.runsc = name, image, python, runsc

    def prepare(self, name):
        debs = str(jail.debs_dir(name))
        if self.name == "native":
            root = fresh_tree(self.image)
            script = ('mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && '
                      'mount --bind "$2" "$1/mnt/debs" && shift 2 && exec chroot "$@"')
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                    "sh", root, debs, root, *guest_command(name)]
            return argv, None, lambda: remove_tree(root)
        if self.name == "bwrap":
            root = fresh_tree(self.image)
            argv = ["bwrap", "--bind", root, "/", "--proc", "/proc", "--dev", "/dev",
                    "--bind", debs, jail.GUEST_DEBS, "--unshare-ipc", "--unshare-pid",
                    "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
                    *guest_command(name)]
            return argv, None, lambda: remove_tree(root)
        if self.name == "runsc":
            root = fresh_tree(self.image, debs=debs)
            argv = ["runsc", *self.runsc, "do", "-root", root, "-cwd", "/", "--",
                    *guest_command(name)]
            return argv, None, lambda: remove_tree(root)
        user = "user" if self.name == "umlpy-user" else "root"
        argv = jail.umlpy_argv(self.python, self.image, name, user, debs)
        return argv, jail.umlpy_env(jail.NOBODY if user == "user" else 0), lambda: None


def runsc_variant(image):
    """The first runsc variant that runs a shell in the image, or (None, why)."""
    if shutil.which("runsc") is None:
        return None, "runsc not installed"
    why = ""
    root = fresh_tree(image)
    try:
        for variant in RUNSC_VARIANTS:
            p = subprocess.run(["runsc", *variant, "do", "-root", root, "-cwd", "/", "--",
                                "/bin/sh", "-c", "cat /etc/debian_version"],
                               capture_output=True, text=True, timeout=120, cwd="/")
            if p.returncode == 0 and p.stdout.strip():
                return variant, None
            why = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]
            why = f"runsc {' '.join(variant)} do: {why[0]}"
    finally:
        remove_tree(root)
    return None, why


class SubIds:
    """/etc/subuid and /etc/subgid with a range for uid 65534, restored
    exactly on exit."""

    def __enter__(self):
        self.saved = {}
        for path in ("/etc/subuid", "/etc/subgid"):
            self.saved[path] = open(path).read() if os.path.exists(path) else None
            with open(path, "a") as f:
                f.write(SUBID_LINE)
        return self

    def __exit__(self, *exc):
        for path, text in self.saved.items():
            if text is None:
                os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(text)


def ensure_image(path):
    if os.path.isfile(path):
        return path
    jail.prepare_cache()
    p = subprocess.run([str(jail.MAKE_DEBIAN), path])
    if p.returncode != 0:
        raise SystemExit(f"cannot build {path}")
    os.chmod(path, 0o644)
    return path


def measure(runners, workloads, rounds, timeout):
    results = {(w, r.name): [] for w in workloads for r in runners}   # [(secs, failure)]
    for i in range(rounds):
        note(f"round {i + 1}/{rounds}")
        for j, name in enumerate(workloads):
            k = (i + j) % len(runners)
            for runner in runners[k:] + runners[:k]:
                argv, env, cleanup = runner.prepare(name)
                try:
                    start = time.monotonic()
                    try:
                        p = subprocess.run(argv, capture_output=True, env=env, cwd="/",
                                           timeout=timeout)
                        secs = time.monotonic() - start
                        why = jail.check_output(name, p)
                    except subprocess.TimeoutExpired:
                        secs, why = time.monotonic() - start, f"timed out after {timeout} s"
                finally:
                    cleanup()
                results[name, runner.name].append((secs, why))
                if why:
                    note(f"FAILED {name:8s} {runner.name:11s} {secs:7.1f} s: "
                         + why.strip().replace("\n", " | ")[-400:])
                else:
                    note(f"ok     {name:8s} {runner.name:11s} {secs:7.1f} s")
    return results


def report(runners, workloads, results, rounds, skipped):
    names = [r.name for r in runners]
    ratios = [n for n in ("umlpy-root", "umlpy-user") if n in names and "native" in names]
    head = f"{'workload':9s}" + "".join(f"{n:>13s}" for n in names) + \
        "".join(f"{n + '/native':>19s}" for n in ratios)
    print("placement: unpinned (no CPU affinity set; 2-core machine here)")
    print(f"median seconds over {rounds} rounds (a failed run: FAIL, not counted)")
    print(head)
    medians = {}
    for w in workloads:
        line = f"{w:9s}"
        for n in names:
            good = [s for s, why in results[w, n] if not why]
            medians[w, n] = statistics.median(good) if good else None
            line += f"{medians[w, n]:13.2f}" if good else f"{'FAIL':>13s}"
        for n in ratios:
            a, b = medians[w, n], medians[w, "native"]
            line += f"{a / b:19.2f}" if a and b else f"{'-':>19s}"
        print(line)
    print("passed")
    for w in workloads:
        print(f"{w:9s}" + "".join(
            f"{sum(1 for _, why in results[w, n] if not why):>10d}/{len(results[w, n]):<2d}"
            for n in names))
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}")
    return medians


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--image", default=os.environ.get("UMLPY_DEBIAN_IMAGE")
                    or str(jail.CACHE / "debian.tar"))
    ap.add_argument("--only", default=",".join(jail.WORKLOADS),
                    help="workloads: " + ",".join(jail.WORKLOADS))
    ap.add_argument("--runners", default=",".join(RUNNERS), help=",".join(RUNNERS))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", help="write every timing here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("debian_jail.py: run as root")
    workloads = [w for w in args.only.split(",") if w]
    unknown = [w for w in workloads if w not in jail.WORKLOADS]
    wanted = [r for r in args.runners.split(",") if r]
    if unknown or any(r not in RUNNERS for r in wanted):
        raise SystemExit(f"unknown workload or runner: {args.only} {args.runners}")
    image = ensure_image(args.image)
    jail.prepare_cache()
    # SIGTERM and SIGHUP end the run as ^C does, so /etc/subuid is restored.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    runners, skipped = [], {}
    for name in wanted:
        if name == "bwrap" and shutil.which("bwrap") is None:
            skipped[name] = "bwrap not installed"
        elif name == "runsc":
            variant, why = runsc_variant(image)
            if variant is None:
                skipped[name] = why
                note(f"runsc: skipped: {why}")
            else:
                note(f"runsc: runsc {' '.join(variant)} do")
                runners.append(Runner(name, image, runsc=variant))
        elif name == "umlpy-user":
            python = _nobody_python()
            if python is None or not shutil.which("newuidmap"):
                skipped[name] = "no python uid 65534 imports umlpy with, or no newuidmap"
            else:
                runners.append(Runner(name, image, python=python))
        elif name == "umlpy-root":
            runners.append(Runner(name, image, python=sys.executable))
        else:
            runners.append(Runner(name, image))

    with SubIds():
        results = measure(runners, workloads, args.rounds, args.timeout)
    medians = report(runners, workloads, results, args.rounds, skipped)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"placement": "unpinned", "rounds": args.rounds, "image": image,
                       "runs": {f"{w}/{n}": results[w, n] for w, n in results},
                       "medians": {f"{w}/{n}": m for (w, n), m in medians.items()},
                       "skipped": skipped}, f, indent=1)


if __name__ == "__main__":
    main()
