#!/usr/bin/env python3
"""Benchmark umlpy against native execution and peer sandboxes.

    python3 benchmarks/run.py [--quick] [--runs N] [--only NAME,...]
                              [--runners NAME,...] [--cpus any|same|LIST]
                              [--json FILE] [--markdown]

Runs are interleaved (for each run: for each workload: for each runner) so
that slow drift of the machine hits every runner alike; medians are reported.
Standard library only. See benchmarks/README.md.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MICRO_SRC = os.path.join(HERE, "micro.c")
SMOKE_TIMEOUT = 60

# name (= mode of micro.c), iterations per thread, threads, syscalls per op
# (None: not meaningful), what. ops = iterations * threads: with 2 threads the
# per-op overhead is wall-clock time over all the calls of both threads.
MICRO = [
    ("getpid", 200_000, 1, 1, "syscall(SYS_getpid)"),
    ("open", 200_000, 1, 2, "open+close of a file"),
    ("stat", 200_000, 1, 1, "stat of a file"),
    ("stat-2t", 100_000, 2, 1, "stat of a file, in 2 threads at once"),
    ("read", 200_000, 1, 1, "pread of 1 byte from an open file"),
    ("fork", 2_000, 1, None, "fork+_exit+wait"),
    ("exec", 500, 1, None, "fork+exec(/bin/true)+wait"),
]
QUICK_DIVISOR = 10
# The micro binary run with N=0: each runner's fixed cost (sandbox start-up and
# teardown), subtracted before dividing by N so that per-op overheads are not
# inflated by e.g. Python's start-up in quick runs. Added whenever a micro
# workload is selected.
STARTUP = ("startup", "start and exit of the static micro binary (N=0)")

MACRO = [
    ("sh-loop", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done"]),
    ("find", ["sh", "-c", "find /usr/lib -type f | wc -l"]),
    ("python", ["/usr/bin/python3", "-c", "import json, email, http.client"]),
    ("tar", ["sh", "-c", "tar cf - /usr/include | wc -c"]),
]

RUNNER_ORDER = ["native", "umlpy", "umlpy-warm", "umlpy-trace-all", "strace", "proot",
                "proot-termux", "runsc"]
# optional; each runner is named after its tool
PEERS = ("strace", "proot", "proot-termux", "runsc")
RUNNER_LABELS = {
    "native": "native", "umlpy": "umlpy", "umlpy-warm": "umlpy (warm pool)",
    "umlpy-trace-all": "umlpy --trace-all",
    "strace": "strace -f", "proot": "proot", "proot-termux": "proot-termux", "runsc": "runsc",
}
UMLPY_RUNNERS = ("umlpy", "umlpy-warm", "umlpy-trace-all")
# The peer umlpy is compared with directly (see compare_report): termux's PRoot
# fork with its seccomp filter, so that it stops only on the calls it rewrites.
REFERENCE_PEER = "proot-termux"
# Tried in order; the first that runs /bin/true with status 0 is used.
# gVisor's ptrace platform first: it is the tracer-based design umlpy competes with.
RUNSC_VARIANTS = [
    ["--network=none", "--platform=ptrace"],
    ["--rootless", "--network=none", "--platform=ptrace"],
    ["--network=none"],
    ["--rootless", "--network=none"],
]


@dataclass
class Workload:
    name: str
    argv: list
    ops: int = None            # micro workloads: operations per run (all threads)
    syscalls_per_op: int = None
    what: str = ""
    threads: int = 1

    @property
    def micro(self):
        return self.ops is not None


@dataclass
class Runner:
    name: str
    prefix: list
    note: str = ""
    broken: str = None  # why the smoke test failed (umlpy runners are kept, as FAILED)

    @property
    def label(self):
        return RUNNER_LABELS[self.name]


@dataclass
class Result:
    times: list = field(default_factory=list)
    failure: str = None

    @property
    def median(self):
        return statistics.median(self.times) if self.times and not self.failure else None


# ---------------------------------------------------------------- helpers

def note(msg):
    print(msg, file=sys.stderr, flush=True)


def loud(msg):
    note(f"\n!!! {msg}\n")


def run_cmd(argv, timeout, capture=False):
    """Run argv from the repo root; return (seconds, returncode, stdout, stderr).

    returncode is None on timeout. The wait blocks in waitpid: subprocess's
    own timeout polls with sleeps of up to 50 ms, which would quantize the
    timings. On timeout a timer kills the whole process group instead."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    env = None
    while argv and "=" in argv[0] and "/" not in argv[0].split("=")[0]:
        # leading NAME=VALUE words: the runner's environment, as a shell reads them
        env = dict(os.environ if env is None else env)
        name, _, value = argv[0].partition("=")
        env[name] = value
        argv = argv[1:]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out, start_new_session=True, env=env)
    timed_out = threading.Event()
    timer = threading.Timer(timeout, lambda: (timed_out.set(), kill_group(proc.pid)))
    timer.start()
    try:
        stdout, stderr = proc.communicate()
    finally:
        timer.cancel()
    secs = time.perf_counter() - start
    rc = None if timed_out.is_set() else proc.returncode
    return secs, rc, stdout or b"", stderr or b""


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def describe_status(rc, timeout):
    return f"timed out after {timeout:.0f} s" if rc is None else f"exit status {rc}"


def smoke(prefix):
    """Does prefix + /bin/true work? Returns an error string or None."""
    try:
        _, rc, _, _ = run_cmd(prefix + ["/bin/true"], SMOKE_TIMEOUT)
    except OSError as e:
        return str(e)
    return None if rc == 0 else describe_status(rc, SMOKE_TIMEOUT)


# ---------------------------------------------------------------- placement

def parse_cpus(text, available):
    """--cpus: None for any (unpinned), else the set of CPUs to confine every
    process to: "same" is the first available CPU, or a list like 0 or 0,1 or 0-1."""
    if text == "any":
        return None
    if text == "same":
        return {min(available)}
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"not a CPU list: {text!r}")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    if not cpus or not cpus <= available:
        raise ValueError(f"CPUs {cpu_list(cpus)} are not all available "
                         f"(available: {cpu_list(available)})")
    return cpus


def cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))


def placement_text(cpus, available):
    if cpus is None:
        return f"unpinned: the scheduler places tracer and tracee on any of CPUs {cpu_list(available)}"
    if len(cpus) == 1:
        return (f"every process pinned to CPU {cpu_list(cpus)} "
                f"(as with taskset -c {cpu_list(cpus)}): tracer and tracee share one CPU")
    return f"every process confined to CPUs {cpu_list(cpus)} (as with taskset -c {cpu_list(cpus)})"


# ---------------------------------------------------------------- runners

def umlpy_prefix(path):
    # Without --umlpy, "python -m umlpy" run from the repo root (sys.path[0]
    # is the cwd), so the guest does not inherit a PYTHONPATH.
    return [path, "run"] if path else [sys.executable, "-m", "umlpy", "run"]


def candidate_runners(umlpy):
    """Runner name -> list of command prefixes to try, in order."""
    base = umlpy_prefix(umlpy)
    return {
        "native": [[]],
        # cold even while the warm runner's pool is up
        "umlpy": [["UMLPY_WARM=0"] + base + ["--"]],
        # a run the pool of the default options serves (the installed front end)
        "umlpy-warm": [base + ["--"]],
        "umlpy-trace-all": [base + ["--trace-all", "--"]],
        "strace": [["strace", "-f", "-o", "/dev/null"]],
        "proot": [["proot", "-r", "/"]],
        "proot-termux": [["proot-termux", "-r", "/"]],
        "runsc": [["runsc"] + v + ["do"] for v in RUNSC_VARIANTS],
    }


def tool_version(name):
    """A one-line version note for a peer tool ("" for umlpy and native)."""
    flag = {"strace": "-V", "proot": "--version", "proot-termux": "--version",
            "runsc": "--version"}.get(name)
    if not flag:
        return ""
    try:
        out = subprocess.run([name, flag], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    if name.startswith("proot"):  # ASCII-art banner ending in the version, then accelerators
        version = next((l.split()[-1] for l in lines if l.startswith("|__")), "?")
        accel = next((l for l in lines if "accelerators" in l), "")
        text = f"{shutil.which(name)}: PRoot {version}; {accel}"
        if "PROOT_NO_SECCOMP" in os.environ:
            text += "; PROOT_NO_SECCOMP is set: seccomp_filter NOT used"
        return text
    return lines[0] if lines else ""


def detect_runners(names, umlpy):
    """Pick a working variant of each requested runner; note the skipped ones."""
    cands = candidate_runners(umlpy)
    runners = []
    for name in names:
        if name in PEERS and not shutil.which(name):
            note(f"note: skipping {name}: not installed")
            continue
        errors = []
        for prefix in cands[name]:
            err = smoke(prefix)
            if err is None:
                runners.append(Runner(name, prefix, tool_version(name)))
                break
            errors.append(f"`{' '.join(prefix)} /bin/true`: {err}")
        else:
            why = "smoke test failed: " + "; ".join(errors)
            if name in PEERS:
                note(f"note: skipping {name}: {why}")
            else:
                loud(f"{name}: {why}")
                runners.append(Runner(name, cands[name][0], broken=why))
    return runners


# ---------------------------------------------------------------- workloads

def build_micro(tmp):
    """Compile micro.c statically; return (binary, data file)."""
    binary = os.path.join(tmp, "micro")
    subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", binary, MICRO_SRC], check=True)
    data = os.path.join(tmp, "data")
    with open(data, "wb") as f:
        f.write(bytes(range(256)) * 16)
    return binary, data


def make_workloads(only, quick, tmp):
    wanted = lambda name: not only or name in only
    workloads = []
    if any(wanted(m[0]) for m in MICRO + [STARTUP]):
        binary, data = build_micro(tmp)
        workloads.append(Workload(STARTUP[0], [binary, "getpid", "0", data], what=STARTUP[1]))
        for name, n, threads, per_op, what in MICRO:
            if wanted(name):
                n = max(1, n // QUICK_DIVISOR) if quick else n
                workloads.append(Workload(name, [binary, name, str(n), data], n * threads,
                                          per_op, what, threads))
    for name, argv in MACRO:
        if wanted(name):
            what = argv[-1] if argv[0] == "sh" else shlex.join(argv)
            workloads.append(Workload(name, argv, what=what))
    return workloads


# ---------------------------------------------------------------- measuring

def check(workloads, runners, timeout):
    """Run everything once (also a warm-up) and compare stdout with native's.

    Returns {(workload, runner): Result}; failed pairs already carry a failure."""
    results = {}
    for w in workloads:
        reference = None
        for r in runners:
            res = results[w.name, r.name] = Result()
            if r.broken:
                res.failure = r.broken
                continue
            _, rc, out, err = run_cmd(r.prefix + w.argv, timeout, capture=True)
            if rc != 0:
                last = err.decode(errors="replace").strip().splitlines()[-1:]
                res.failure = f"check run: {describe_status(rc, timeout)}" + \
                    (f" (stderr: {last[0][:200]})" if last else "")
            elif r.name == "native":
                reference = out
            elif reference is not None and out != reference:
                res.failure = (f"check run: output {out[:80]!r} differs from "
                               f"native's {reference[:80]!r}")
            if res.failure:
                loud(f"FAILED {w.name} under {r.label}: {res.failure}")
            else:
                note(f"ok    {w.name:8s} {r.label:18s} {out.decode(errors='replace').strip()[:60]}")
    return results


def measure(workloads, runners, results, runs, timeout):
    for i in range(runs):
        note(f"run {i + 1}/{runs}")
        for j, w in enumerate(workloads):
            # Rotate the order so no runner always follows the same one
            # (runsc, say, leaves work behind for whoever runs next).
            k = (i + j) % len(runners)
            for r in runners[k:] + runners[:k]:
                res = results[w.name, r.name]
                if res.failure:
                    continue
                secs, rc, _, _ = run_cmd(r.prefix + w.argv, timeout)
                if rc != 0:
                    res.failure = f"run {i + 1}: {describe_status(rc, timeout)}"
                    loud(f"FAILED {w.name} under {r.label}: {res.failure}")
                else:
                    res.times.append(secs)
                    note(f"  {w.name:8s} {r.label:18s} {secs:9.4f} s")


# ---------------------------------------------------------------- reporting

def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "umlpy_commit": git_commit(),
    }


def git_commit():
    try:
        out = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def median_of(results, workload, runner):
    res = results.get((workload, runner))
    return res.median if res else None


def overhead_us(w, results, runner):
    """Per-op and per-syscall overhead over native in µs, or None where unknown.

    ((runner - runner's startup) - (native - native's startup)) / ops."""
    if not w.micro or runner == "native":
        return None, None
    times = [median_of(results, w.name, r) for r in (runner, "native")]
    startups = [median_of(results, STARTUP[0], r) if (STARTUP[0], r) in results else 0.0
                for r in (runner, "native")]
    if None in times + startups:
        return None, None
    per_op = ((times[0] - startups[0]) - (times[1] - startups[1])) / w.ops * 1e6
    per_sc = per_op / w.syscalls_per_op if w.syscalls_per_op else None
    return per_op, per_sc


def ratio_of(results, w, runner):
    mine, native = median_of(results, w.name, runner), median_of(results, w.name, "native")
    return mine / native if mine is not None and native else None


def ratio_to(results, w, runner, reference):
    """runner's median over reference's on workload w, or None."""
    mine, ref = median_of(results, w.name, runner), median_of(results, w.name, reference)
    return mine / ref if mine is not None and ref else None


def ops_text(w):
    if w.threads > 1:
        return f"{w.ops // w.threads} each = {w.ops} ops"
    return f"{w.ops} ops"


def workload_header(w):
    if not w.micro:
        return f"== {w.name}: {w.what}"
    sc = (f"{w.syscalls_per_op} syscall{'s' if w.syscalls_per_op > 1 else ''}/op"
          if w.syscalls_per_op else "per-syscall cost not meaningful")
    return f"== {w.name}: {w.what}, {ops_text(w)} ({sc})"


def fmt(value, spec, width):
    return f"{'-':>{width}s}" if value is None else format(value, f"{width}{spec}")


def text_report(workloads, runners, results):
    lines = ["ratio: median over native's"]
    ref = REFERENCE_PEER if any(r.name == REFERENCE_PEER for r in runners) else None
    if ref:
        lines.append(f"/{ref}: median over {ref}'s")
    if any(w.micro for w in workloads):
        lines.append("us/op and us/syscall: overhead over native, net of each runner's "
                     "startup time (see the startup workload)")
    for w in workloads:
        lines += ["", workload_header(w),
                  f"  {'runner':18s} {'median s':>10s} {'ratio':>8s} "
                  + (f"{'/' + ref:>13s} " if ref else "")
                  + f"{'us/op':>9s} {'us/syscall':>10s} {'runs':>5s}"]
        for r in runners:
            res = results[w.name, r.name]
            if res.failure:
                lines.append(f"  {r.label:18s} FAILED: {res.failure}")
                continue
            per_op, per_sc = overhead_us(w, results, r.name)
            lines.append(f"  {r.label:18s} {res.median:10.4f} "
                         f"{fmt(ratio_of(results, w, r.name), '.2f', 8)} "
                         + (f"{fmt(ratio_to(results, w, r.name, ref), '.2f', 13)} " if ref else "")
                         + f"{fmt(per_op, '.2f', 9)} {fmt(per_sc, '.2f', 10)} {len(res.times):5d}")
    return "\n".join(lines)


def overhead_value(w, results, runner):
    """The overhead the tables show: per syscall where meaningful, else per op."""
    per_op, per_sc = overhead_us(w, results, runner)
    return per_sc if w.syscalls_per_op else per_op


def geomean(values):
    """None unless every value is known (a FAILED workload voids the mean)."""
    if not values or any(v is None or v <= 0 for v in values):
        return None
    return statistics.geometric_mean(values)


def compare_report(workloads, runners, results):
    """umlpy's runners against REFERENCE_PEER, workload by workload."""
    names = [r.name for r in runners]
    ours = [n for n in UMLPY_RUNNERS if n in names]
    ref = REFERENCE_PEER
    if not ours:
        return ""
    if ref not in names:
        return f"(no umlpy/{ref} comparison: {ref} is not among the runners)"
    timed = [(n, max(8, len(RUNNER_LABELS[n]))) for n in ours]
    overhead = [(n, max(8, len(RUNNER_LABELS[n]))) for n in ours + [ref]]
    lines = [f"== umlpy vs {ref}",
             f"  time: median over {ref}'s (< 1: umlpy faster); us: overhead over native "
             "per syscall (per op for fork, exec), net of start-up",
             f"  {'workload':10s} | time: " +
             " ".join(f"{RUNNER_LABELS[n]:>{wd}s}" for n, wd in timed) + " | us: " +
             " ".join(f"{RUNNER_LABELS[n]:>{wd}s}" for n, wd in overhead)]
    for w in workloads:
        cells = " ".join(fmt(ratio_to(results, w, n, ref), ".2f", wd) for n, wd in timed)
        line = f"  {w.name:10s} |       {cells}"
        if w.micro:
            line += " |     " + " ".join(fmt(overhead_value(w, results, n), ".2f", wd)
                                        for n, wd in overhead)
        lines.append(line)
    macro_names = {m[0] for m in MACRO}
    for kind, group in (("micro", [w for w in workloads if w.micro]),
                        ("macro", [w for w in workloads if w.name in macro_names])):
        if group:
            means = [geomean([ratio_to(results, w, n, ref) for w in group]) for n in ours]
            lines.append(f"  geometric mean of the time ratios over the {len(group)} {kind} "
                         "workloads: " + ", ".join(f"{RUNNER_LABELS[n]}/{ref} {fmt(m, '.2f', 0)}"
                                                   for n, m in zip(ours, means)))
    return "\n".join(lines)


def md_time_cell(results, w, runner):
    res = results.get((w.name, runner))
    if res is None:
        return "n/a"
    if res.failure:
        return "FAILED"
    ratio = ratio_of(results, w, runner)
    if runner == "native" or ratio is None:
        return f"{res.median:.3f} s"
    return f"{res.median:.3f} s ({ratio:.1f}×)"


def md_overhead_cell(results, w, runner):
    res = results.get((w.name, runner))
    if res is None:
        return "n/a"
    if res.failure:
        return "FAILED"
    per_op, per_sc = overhead_us(w, results, runner)
    value = per_sc if w.syscalls_per_op else per_op
    return "?" if value is None else f"{value:.1f}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(workloads, runner_names, results):
    labels = [RUNNER_LABELS[n] for n in runner_names]
    rows = []
    for w in workloads:
        if w.micro and w.threads > 1:
            name = f"`{w.name}` {w.threads}×{w.ops // w.threads}"
        elif w.micro:
            name = f"`{w.name}` ×{w.ops}"
        else:
            what = w.what.replace("|", "\\|")  # a pipe would end the table cell
            name = "start-up (N=0)" if w.name == STARTUP[0] else f"`{what}`"
        rows.append([name] + [md_time_cell(results, w, n) for n in runner_names])
    out = md_table(["workload"] + labels, rows)
    micro = [w for w in workloads if w.micro]
    others = [n for n in runner_names if n != "native"]
    if micro and others:
        rows = []
        for w in micro:
            unit = f"per syscall, {w.syscalls_per_op}/op" if w.syscalls_per_op else "per op"
            rows.append([f"`{w.name}`: {w.what} ({unit})"] +
                        [md_overhead_cell(results, w, n) for n in others])
        out += ["", "Overhead over native in µs, net of start-up:", ""]
        out += md_table(["micro workload"] + labels[1:], rows)
    ours = [n for n in UMLPY_RUNNERS if n in runner_names]
    if REFERENCE_PEER in runner_names and ours:
        rows = []
        for w in workloads:
            cells = []
            for n in ours:
                r = ratio_to(results, w, n, REFERENCE_PEER)
                cells.append("–" if r is None else f"{r:.2f}")
            rows.append([f"`{w.name}`"] + cells)
        out += ["", f"Median time over {REFERENCE_PEER}'s (< 1: umlpy faster):", ""]
        out += md_table(["workload"] + [f"{RUNNER_LABELS[n]} / {REFERENCE_PEER}" for n in ours],
                        rows)
    return "\n".join(out)


def json_report(path, info, args, workloads, runners, results):
    data = {
        "machine": info,
        "runs": args.runs, "quick": args.quick,
        "placement": {"cpus": args.cpus, "text": info["placement"]},
        "runners": {r.name: {"command": r.prefix, "note": r.note} for r in runners},
        "workloads": [],
    }
    for w in workloads:
        entry = {"name": w.name, "argv": w.argv, "ops": w.ops, "threads": w.threads,
                 "syscalls_per_op": w.syscalls_per_op, "results": {}}
        for r in runners:
            res = results[w.name, r.name]
            per_op, per_sc = overhead_us(w, results, r.name)
            entry["results"][r.name] = {
                "times": res.times, "median": res.median, "failure": res.failure,
                "ratio": ratio_of(results, w, r.name),
                "ratio_to_" + REFERENCE_PEER.replace("-", "_"):
                    ratio_to(results, w, r.name, REFERENCE_PEER),
                "overhead_us_per_op": per_op, "overhead_us_per_syscall": per_sc}
        data["workloads"].append(entry)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def print_machine(info, runners):
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, kernel {info['kernel']}, "
          f"{info['date']}, python {info['python']}, umlpy {info['umlpy_commit']}")
    print(f"placement: {info['placement']}")
    for r in runners:
        extra = f"  ({r.note})" if r.note else ""
        print(f"  {r.label:18s} {' '.join(r.prefix) or '(direct)'} CMD{extra}")


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark umlpy against native and peer sandboxes.")
    p.add_argument("--quick", action="store_true",
                   help=f"micro iterations / {QUICK_DIVISOR} and 2 runs (unless --runs)")
    p.add_argument("--runs", type=int, help="timed runs per workload and runner (default 5)")
    p.add_argument("--only", help="comma-separated workloads: " +
                   ",".join(m[0] for m in [STARTUP] + MICRO + MACRO))
    p.add_argument("--runners", help="comma-separated runners: " + ",".join(RUNNER_ORDER))
    p.add_argument("--umlpy", metavar="PATH", help="umlpy executable "
                   "(default: python -m umlpy from the repo root)")
    p.add_argument("--cpus", default="any", metavar="any|same|LIST",
                   help="CPU placement of every process, runners and workloads alike: "
                   "any (default, unpinned), same (all on the first available CPU, "
                   "as with taskset -c 0), or a taskset-style list such as 1 or 0-1")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    p.add_argument("--json", metavar="FILE", help="also write all timings as JSON")
    p.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    if args.runs < 1:
        p.error("--runs must be at least 1")
    try:
        args.cpu_set = parse_cpus(args.cpus, os.sched_getaffinity(0))
    except ValueError as e:
        p.error(f"--cpus: {e}")
    known = {m[0] for m in MICRO + [STARTUP] + MACRO}
    args.only = split_names(p, args.only, known, "workload")
    names = split_names(p, args.runners, set(RUNNER_ORDER), "runner") or RUNNER_ORDER
    # native is the reference for checks and ratios: always run it, always first.
    args.runners = ["native"] + [n for n in RUNNER_ORDER if n in names and n != "native"]
    return args


def split_names(parser, text, known, what):
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        parser.error(f"unknown {what}(s): {', '.join(bad)} (known: {', '.join(sorted(known))})")
    return names


def main(argv=None):
    args = parse_args(argv)
    info = machine_info()
    available = os.sched_getaffinity(0)
    info["placement"] = placement_text(args.cpu_set, available)
    if args.cpu_set is not None:
        # Before any thread or child exists: every process started from here
        # on (timer threads, runners, workloads) inherits the mask.
        os.sched_setaffinity(0, args.cpu_set)
    note(f"placement: {info['placement']}")
    # Bytecode first: where PYTHONDONTWRITEBYTECODE is set, every umlpy run
    # would otherwise compile the package again (tens of ms of start-up).
    import compileall
    compileall.compile_dir(os.path.join(REPO, "umlpy"), quiet=1)
    with warm_pool(args):
        return measure_and_report(args, info)


@contextlib.contextmanager
def warm_pool(args):
    """For the umlpy-warm runner: a pool of the default options, kept by the
    installed `umlpy` front end (python -m umlpy has none), stopped after."""
    if "umlpy-warm" not in args.runners:
        yield
        return
    front = args.umlpy
    if not front or not open(front, "rb").read(4) == b"\x7fELF":
        note("note: skipping umlpy-warm: give --umlpy the installed umlpy command "
             "(the C front end that claims warm sandboxes)")
        args.runners.remove("umlpy-warm")
        yield
        return
    # The pool is the user's daemon, started apart from the runs: it makes
    # its spares on any CPU (a claimed spare takes the run's own CPUs).
    every_cpu = set(range(os.cpu_count() or 1))
    started = subprocess.run([front, "warm", "start", "--size", "2"], capture_output=True,
                             text=True, preexec_fn=lambda: os.sched_setaffinity(0, every_cpu))
    if started.returncode != 0:
        note(f"note: skipping umlpy-warm: {started.stderr.strip()}")
        args.runners.remove("umlpy-warm")
        yield
        return
    try:
        yield
    finally:
        subprocess.run([front, "warm", "stop"], capture_output=True)


def measure_and_report(args, info):
    runners = detect_runners(args.runners, args.umlpy)
    if runners[0].broken:
        loud("native runs fail; nothing to compare against")
        return 1
    with tempfile.TemporaryDirectory(prefix="umlpy-bench-") as tmp:
        # run as root, umlpy's guest is nobody on the host: it must reach the binary
        os.chmod(tmp, 0o755)
        workloads = make_workloads(args.only, args.quick, tmp)
        start = time.perf_counter()
        results = check(workloads, runners, args.timeout)
        measure(workloads, runners, results, args.runs, args.timeout)
        elapsed = time.perf_counter() - start
    print_machine(info, runners)
    print(f"{args.runs} interleaved runs, medians; took {elapsed:.0f} s")
    print(text_report(workloads, runners, results))
    comparison = compare_report(workloads, runners, results)
    if comparison:
        print()
        print(comparison)
    if args.markdown:
        print()
        print(markdown_report(workloads, args.runners, results))
    if args.json:
        json_report(args.json, info, args, workloads, runners, results)
    failed = [k for k, v in results.items() if v.failure]
    if failed:
        loud(f"{len(failed)} workload/runner pair(s) FAILED: " +
             ", ".join(f"{w}/{r}" for w, r in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
