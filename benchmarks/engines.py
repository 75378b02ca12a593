#!/usr/bin/env python3
"""podman with umlpy-oci as its OCI runtime, against runc and runsc.

    python3 benchmarks/engines.py [--rounds N] [--cpus any|same|LIST]
                                  [--runtimes umlpy-oci,runc,runsc,crun]
                                  [--umlpy-oci PATH] [--tree DIR]
                                  [--breakdown-rounds N] [--json FILE]

As root.  It makes a podman of its own: storage, run root and libpod's tmp
dir in a temporary directory (--root, --runroot, --tmpdir, the vfs driver,
file locks instead of the host-wide shared-memory ones), a CONTAINERS_CONF
with lower default ulimits (podman asks 1048576 open files and processes;
this host's hard RLIMIT_NOFILE is 20000, the hard RLIMIT_NPROC podman's
processes have here 32768, and root here lacks CAP_SYS_RESOURCE, so no
runtime could give them), cgroupfs and no events log.  The image is
a busybox root (rootfs/make-busybox-rootfs.sh) imported with podman import.

For the find workload it copies DIR (default /usr/share) with
`cp -a --attributes-only` (the tree, its names, modes and owners, every
file empty: find reads no file) and makes the copy readable to all (under
umlpy-oci the container's root is a subordinate id on the host, and the
host's /usr/share has a directory only polkitd may read), then binds it
read-only at /data.

Timed, interleaved (for each round: for each workload: each runtime, the
order rotated every round), wall clock around the whole podman command:

- true:  podman run --rm IMAGE /bin/true
- find:  podman run --rm -v COPY:/data:ro IMAGE time -f %e sh -c 'find /data | wc -l'
         (the whole podman run, and busybox time's container-side figure;
          every runtime must print the same count as the host's find)

Then the breakdown: each runtime is replaced by a bash wrapper of the same
name that runs it and logs how long every runtime command podman (or conmon)
called took ($EPOCHREALTIME, no fork); --breakdown-rounds runs of the true
workload per runtime.  And the runtimes' bare start-up (`--version`), with,
for umlpy-oci, its interpreter alone and the import of umlpy.oci.cli.

--cpus as benchmarks/run.py's: `same` pins every podman command (and so
conmon, the runtime and the container, which inherit it) to the first
available CPU, as `taskset -c 0 podman ...`.  Standard library only.
See benchmarks/README.md.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import cpu_list, machine_info, parse_cpus, placement_text  # noqa: E402

IMAGE = "localhost/bb:latest"
TIMEOUT = 600
RUNTIME_ORDER = ["umlpy-oci", "runc", "runsc", "crun"]
RUNTIME_COMMANDS = {"create", "start", "state", "kill", "delete", "exec", "ps",
                    "features", "checkpoint", "restore", "pause", "resume", "update"}
FIND_SCRIPT = "find /data | wc -l"
TIME_RE = re.compile(r"^find-seconds ([0-9.]+)$", re.M)


def note(text):
    print(text, file=sys.stderr, flush=True)


class Runtime:
    def __init__(self, name, path, flags=(), note=""):
        self.name, self.path, self.flags, self.note = name, path, list(flags), note

    def words(self, path=None):
        out = ["--runtime", path or self.path]
        for f in self.flags:
            out += ["--runtime-flag", f]
        return out

    def label(self):
        return self.name + (f" ({', '.join(self.flags)})" if self.flags else "")


class Podman:
    def __init__(self, top, cpus):
        self.top, self.cpus = top, cpus
        conf = os.path.join(top, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\n'
                    'default_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n'
                    'lock_type = "file"\n')
        os.chmod(conf, 0o644)
        self.env = {**os.environ, "CONTAINERS_CONF": conf}
        self.base = ["podman", "--root", os.path.join(top, "storage"),
                     "--runroot", os.path.join(top, "run"),
                     "--tmpdir", os.path.join(top, "libpod"),
                     "--storage-driver", "vfs"]

    def _preexec(self):
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    def run(self, words, timeout=TIMEOUT):
        """(returncode, stdout, stderr, seconds).  Output to files, not pipes:
        conmon, which outlives podman a little, must not hold a pipe open."""
        argv = self.base + words
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   env=self.env, timeout=timeout, preexec_fn=self._preexec)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            seconds = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            return rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds


def last_line(text, n=1):
    """The last n non-empty lines of text, joined with " / "."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return " / ".join(lines[-n:]) if lines else "(no output)"


# ---------------------------------------------------------------- set-up

def build_image(podman, top):
    rootfs = os.path.join(top, "rootfs")
    subprocess.run(["sh", os.path.join(REPO, "rootfs", "make-busybox-rootfs.sh"), rootfs],
                   check=True, stdout=subprocess.DEVNULL)
    tar = os.path.join(top, "rootfs.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    rc, _, err, _ = podman.run(["import", tar, IMAGE])
    if rc != 0:
        raise SystemExit(f"podman import failed: {last_line(err)}")


def copy_tree(tree, top):
    data = os.path.join(top, "data")
    subprocess.run(["cp", "-a", "--attributes-only", tree, data], check=True)
    subprocess.run(["chmod", "-R", "a+rX", data], check=True)
    count = subprocess.run(f"find {shlex.quote(data)} | wc -l", shell=True, check=True,
                           capture_output=True, text=True).stdout.strip()
    return data, int(count)


def probe(podman, name, path):
    """The Runtime to time, or (None, why not).  runsc first as the issue
    asks, plain; then with its own network off (--runtime-flag network=none)."""
    variants = [[]]
    if name == "runsc":
        variants.append(["network=none"])
    why = []
    for flags in variants:
        rt = Runtime(name, path, flags)
        rc, _, err, _ = podman.run(rt.words() + ["run", "--rm", IMAGE, "true"], timeout=120)
        if rc == 0:
            if why:
                rt.note = f"plain `podman --runtime {path} run` fails: {why[0]}"
            return rt, None
        why.append(f"exit {rc}: {last_line(err, 2)}")
        podman.run(["rm", "--all", "--force", "--time", "0"])
    return None, "; ".join(why)


def find_runtimes(names, umlpy_oci):
    found = {}
    for name in names:
        path = umlpy_oci if name == "umlpy-oci" else shutil.which(name)
        found[name] = path
    return found


# ---------------------------------------------------------------- workloads

def workload_argv(kind, rt, data, path=None):
    words = rt.words(path) + ["run", "--rm"]
    if kind == "true":
        return words + [IMAGE, "/bin/true"]
    return words + ["-v", f"{data}:/data:ro", IMAGE,
                    "time", "-f", "find-seconds %e", "sh", "-c", FIND_SCRIPT]


def one_run(podman, kind, rt, data, expect_count, path=None):
    """{"wall": s, "inside": s or None} or {"failure": text}."""
    rc, out, err, seconds = podman.run(workload_argv(kind, rt, data, path))
    if rc != 0:
        return {"failure": f"exit {rc}: {last_line(err)}"}
    if kind == "true":
        return {"wall": seconds}
    m = TIME_RE.search(err)
    got = out.strip()
    if got != str(expect_count):
        return {"failure": f"find counted {got!r}, the host {expect_count}"}
    return {"wall": seconds, "inside": float(m.group(1)) if m else None}


def measure(podman, runtimes, data, expect, rounds):
    results = {(k, rt.name): {"wall": [], "inside": [], "failures": []}
               for k in ("true", "find") for rt in runtimes}
    for rnd in range(rounds):
        shift = rnd % len(runtimes)
        order = runtimes[shift:] + runtimes[:shift]
        for kind in ("true", "find"):
            for rt in order:
                r = one_run(podman, kind, rt, data, expect)
                slot = results[kind, rt.name]
                if "failure" in r:
                    slot["failures"].append(r["failure"])
                    note(f"  FAILED round {rnd + 1} {kind} {rt.name}: {r['failure']}")
                    podman.run(["rm", "--all", "--force", "--time", "0"])
                    continue
                slot["wall"].append(r["wall"])
                if r.get("inside") is not None:
                    slot["inside"].append(r["inside"])
        note(f"round {rnd + 1}/{rounds} done")
    return results


# ---------------------------------------------------------------- breakdown

WRAPPER = """#!/bin/bash
t0=$EPOCHREALTIME
{real} "$@"
rc=$?
t1=$EPOCHREALTIME
printf '%s %s %s %s\\n' "$t0" "$t1" "$rc" "$*" >> {log}
exit $rc
"""


def make_wrapper(top, rt):
    """A bash script of the runtime's own name (podman looks at the name)
    that logs every command's duration."""
    d = os.path.join(top, "wrap", rt.name)
    os.makedirs(d, exist_ok=True)
    log = os.path.join(d, "log")
    path = os.path.join(d, os.path.basename(rt.path))
    with open(path, "w") as f:
        f.write(WRAPPER.format(real=shlex.quote(rt.path), log=shlex.quote(log)))
    os.chmod(path, 0o755)
    os.chmod(os.path.join(top, "wrap"), 0o755)
    os.chmod(d, 0o755)
    return path, log


def subcommand(args):
    for word in args.split():
        if word in RUNTIME_COMMANDS:
            return word
    return "?"


def breakdown(podman, top, runtimes, data, expect, rounds):
    """Per runtime: each runtime command's durations over `rounds` runs of
    the true workload, and those runs' wall times."""
    wrappers = {rt.name: make_wrapper(top, rt) for rt in runtimes}
    out = {}
    walls = {rt.name: [] for rt in runtimes}
    for rnd in range(rounds):
        shift = rnd % len(runtimes)
        for rt in runtimes[shift:] + runtimes[:shift]:
            r = one_run(podman, "true", rt, data, expect, path=wrappers[rt.name][0])
            if "failure" in r:
                note(f"  FAILED breakdown {rt.name}: {r['failure']}")
                podman.run(["rm", "--all", "--force", "--time", "0"])
            else:
                walls[rt.name].append(r["wall"])
    for rt in runtimes:
        per = {}
        log = wrappers[rt.name][1]
        if os.path.exists(log):
            with open(log) as f:
                for line in f:
                    t0, t1, rc, args = line.rstrip("\n").split(" ", 3)
                    cmd = subcommand(args)
                    per.setdefault(cmd, []).append((float(t1) - float(t0), int(rc)))
        ok_runs = len(walls[rt.name])
        out[rt.name] = {
            "wall": walls[rt.name],
            "commands": {cmd: {"seconds": [s for s, _ in v], "exit": [c for _, c in v],
                               "calls_per_run": len(v) / ok_runs if ok_runs else None,
                               "median": statistics.median(s for s, _ in v)}
                         for cmd, v in per.items()},
        }
    return out


def startup_times(runtimes, cpus, reps=5):
    """The bare start-up of each runtime binary (--version), and for
    umlpy-oci its interpreter alone and the import of its CLI module."""
    def pre():
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    def timed(argv):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           preexec_fn=pre)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    out = {}
    for rt in runtimes:
        out[f"{rt.name} --version"] = timed([rt.path, "--version"])
        if rt.name == "umlpy-oci":
            with open(rt.path, "rb") as f:
                first = f.readline().decode(errors="replace")
            if first.startswith("#!"):
                py = first[2:].strip().split()[0]
                out["umlpy-oci's python -c pass"] = timed([py, "-c", "pass"])
                out["umlpy-oci's python -c 'import umlpy.oci.cli'"] = timed(
                    [py, "-c", "import umlpy.oci.cli"])
    return out


# ---------------------------------------------------------------- report

def stats(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def cell(st, ref):
    if st is None:
        return "FAILED", "-"
    text = f"{st['median']:.3f} ({st['min']:.3f}–{st['max']:.3f})"
    ratio = f"{st['median'] / ref['median']:.2f}" if ref else "-"
    return text, ratio


def report(results, runtimes, rounds):
    rows = []
    header = ["runtime", "true: wall s (min–max)", "/runc",
              "find: wall s (min–max)", "/runc", "find inside s (min–max)", "/runc", "ok"]
    has_runc = ("true", "runc") in results
    ref = {"true": stats(results["true", "runc"]["wall"]) if has_runc else None,
           "find": stats(results["find", "runc"]["wall"]) if has_runc else None,
           "inside": stats(results["find", "runc"]["inside"]) if has_runc else None}
    for rt in runtimes:
        t = stats(results["true", rt.name]["wall"])
        fw = stats(results["find", rt.name]["wall"])
        fi = stats(results["find", rt.name]["inside"])
        ok = (f"{len(results['true', rt.name]['wall'])}/{rounds}, "
              f"{len(results['find', rt.name]['wall'])}/{rounds}")
        rows.append([f"`{rt.label()}`", *cell(t, ref["true"]), *cell(fw, ref["find"]),
                     *cell(fi, ref["inside"]), ok])
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def breakdown_report(bd):
    cmds = []
    for v in bd.values():
        for c in v["commands"]:
            if c not in cmds:
                cmds.append(c)
    order = [c for c in ("create", "start", "state", "kill", "delete") if c in cmds]
    order += [c for c in cmds if c not in order]
    header = ["runtime", "wall s"] + [f"{c} ms (calls/run)" for c in order] + ["sum ms/run"]
    rows = []
    for name, v in bd.items():
        wall = statistics.median(v["wall"]) if v["wall"] else None
        cells, total = [], 0.0
        for c in order:
            d = v["commands"].get(c)
            if d is None:
                cells.append("-")
                continue
            cells.append(f"{d['median'] * 1000:.1f} ({d['calls_per_run']:.1f})")
            if d["calls_per_run"]:
                total += d["median"] * d["calls_per_run"] * 1000
        rows.append([name, f"{wall:.3f}" if wall is not None else "FAILED"] + cells
                    + [f"{total:.0f}"])
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="podman run with umlpy-oci, runc and runsc.")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds (default 10)")
    p.add_argument("--cpus", default="any", metavar="any|same|LIST",
                   help="CPU placement of every podman command (and all it starts), "
                   "as run.py's: any (default, unpinned), same (the first available "
                   "CPU, as taskset -c 0), or a list")
    p.add_argument("--runtimes", default=",".join(RUNTIME_ORDER),
                   help="comma list of " + ",".join(RUNTIME_ORDER) + " (default all; "
                   "those that fail `podman run --rm IMAGE true` are skipped with the reason)")
    default_oci = os.path.join(os.path.dirname(sys.executable), "umlpy-oci")
    p.add_argument("--umlpy-oci", default=default_oci if os.path.exists(default_oci)
                   else shutil.which("umlpy-oci"), metavar="PATH",
                   help="the umlpy-oci command (default: next to this Python, else on PATH)")
    p.add_argument("--tree", default="/usr/share", help="host tree find walks (a copy)")
    p.add_argument("--breakdown-rounds", type=int, default=3,
                   help="true runs per runtime under the logging wrapper (0: none)")
    p.add_argument("--json", metavar="FILE", help="also write every timing as JSON")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    try:
        args.cpu_set = parse_cpus(args.cpus, os.sched_getaffinity(0))
    except ValueError as e:
        p.error(f"--cpus: {e}")
    args.runtimes = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    bad = [n for n in args.runtimes if n not in RUNTIME_ORDER]
    if bad:
        p.error(f"unknown runtime(s): {', '.join(bad)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root (podman with its own storage, as root)")
    info = machine_info()
    info["placement"] = placement_text(args.cpu_set, os.sched_getaffinity(0))
    if args.cpu_set is not None:
        info["placement"] += " (set on each podman command, as taskset -c " \
                             f"{cpu_list(args.cpu_set)} podman ...)"
    note(f"placement: {info['placement']}")
    top = tempfile.mkdtemp(prefix="umlpy-engines-", dir="/tmp")
    os.chmod(top, 0o755)
    podman = Podman(top, args.cpu_set)
    try:
        return run_all(args, info, podman, top)
    finally:
        podman.run(["rm", "--all", "--force", "--time", "0"])
        rc, _, err, _ = podman.run(["system", "reset", "--force"])
        if rc != 0:
            note(f"podman system reset: exit {rc}: {last_line(err)}")
        shutil.rmtree(top, ignore_errors=True)


def run_all(args, info, podman, top):
    started = time.perf_counter()
    build_image(podman, top)
    data, expect = copy_tree(args.tree, top)
    note(f"image {IMAGE} imported; {args.tree} copied to {data}: {expect} entries")
    paths = find_runtimes(args.runtimes, args.umlpy_oci)
    runtimes, skipped = [], {}
    for name in args.runtimes:
        if not paths[name]:
            skipped[name] = "not installed"
            continue
        rt, why = probe(podman, name, paths[name])
        if rt is None:
            skipped[name] = why
        else:
            runtimes.append(rt)
    versions = {}
    for rt in runtimes:
        v = subprocess.run([rt.path, "--version"], capture_output=True, text=True)
        versions[rt.name] = " ".join((v.stdout or v.stderr).split("\n")[0].split())
    for rt in runtimes:
        note(f"runtime {rt.label()}: {rt.path}, {versions[rt.name]}"
             + (f" [{rt.note}]" if rt.note else ""))
    for name, why in skipped.items():
        note(f"runtime {name}: skipped: {why}")
    if not runtimes:
        raise SystemExit("no runtime works")
    # check: one untimed run of each workload per runtime (and the warm-up)
    for rt in runtimes:
        for kind in ("true", "find"):
            r = one_run(podman, kind, rt, data, expect)
            if "failure" in r:
                note(f"check FAILED: {kind} {rt.name}: {r['failure']}")
    results = measure(podman, runtimes, data, expect, args.rounds)
    bd = (breakdown(podman, top, runtimes, data, expect, args.breakdown_rounds)
          if args.breakdown_rounds > 0 else {})
    starts = startup_times(runtimes, args.cpu_set)
    elapsed = time.perf_counter() - started
    pv = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()

    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, kernel {info['kernel']}, "
          f"{info['date']}, python {info['python']}, umlpy {info['umlpy_commit']}")
    print(f"placement: {info['placement']}")
    print(f"{pv}; image: busybox root (make-busybox-rootfs.sh), podman import, vfs storage")
    for rt in runtimes:
        print(f"  {rt.label():28s} {rt.path}: {versions[rt.name]}"
              + (f"\n    note: {rt.note}" if rt.note else ""))
    for name, why in skipped.items():
        print(f"  {name:28s} skipped: {why}")
    print(f"find: a readable copy of {args.tree} at /data (ro), {expect} entries; "
          f"`{FIND_SCRIPT}` timed inside with busybox time (10 ms resolution)")
    print(f"{args.rounds} interleaved rounds, medians (min–max) in seconds; "
          f"took {elapsed:.0f} s")
    print()
    print(report(results, runtimes, args.rounds))
    if bd:
        print()
        print(f"Runtime commands under a logging wrapper, {args.breakdown_rounds} runs of "
              "`podman run --rm IMAGE /bin/true` each (median ms per call, calls per run):")
        print()
        print(breakdown_report(bd))
    print()
    print("Bare start-up (median of 5):")
    for k, v in starts.items():
        print(f"  {k:50s} {v * 1000:7.1f} ms")
    if args.json:
        data_out = {
            "machine": info, "rounds": args.rounds,
            "placement": {"cpus": args.cpus, "text": info["placement"]},
            "podman": pv, "tree": args.tree, "entries": expect,
            "runtimes": {rt.name: {"path": rt.path, "flags": rt.flags, "note": rt.note,
                                   "version": versions[rt.name]} for rt in runtimes},
            "skipped": skipped,
            "results": {f"{k}/{n}": {**v, "wall_stats": stats(v["wall"]),
                                     "inside_stats": stats(v["inside"])}
                        for (k, n), v in results.items()},
            "breakdown": bd, "startup": starts,
        }
        with open(args.json, "w") as f:
            json.dump(data_out, f, indent=2)
    failed = [f"{k}/{n}" for (k, n), v in results.items() if v["failures"]]
    if failed:
        print(f"FAILED runs in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
