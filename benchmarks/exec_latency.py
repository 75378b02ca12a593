#!/usr/bin/env python3
"""How long `/bin/true` takes in a running sandbox, by each way in (issue 14).

    python3 benchmarks/exec_latency.py [--runs N] [--cpus any|same|LIST]
                                       [--no-runsc]

Times, in one interleaved run (for each repetition: each way once, so that
slow drift of the machine hits every way alike), medians reported:

- native:      /bin/true
- umlpy-exec:  umlpy-exec NAME -- /bin/true      (the C client, _native/exec_client.c)
- umlpy exec:  python -m umlpy exec NAME -- /bin/true   (the Python client)
- umlpy run:   python -m umlpy run -- /bin/true   (a sandbox of its own: start-up included)
- runsc exec:  runsc exec ID /bin/true, into a running gVisor container
               (a bundle of the host's / read-only, --network=none), if runsc runs here

NAME is a sandbox this script creates and starts in a registry of its own
(UMLPY_REGISTRY in a temporary directory) and removes after.  Each command
is started with posix_spawn, stdio on /dev/null, and must exit 0.
--cpus as benchmarks/run.py: set on this process before anything starts,
so the sandbox's daemon, runsc and every command inherit it.  Standard
library only.  See benchmarks/README.md.
"""
import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import RUNSC_VARIANTS, cpu_list, parse_cpus, placement_text  # noqa: E402

CLIENT = os.path.join(REPO, "umlpy", "_native", "umlpy-exec")
UMLPY = [sys.executable, "-m", "umlpy"]     # from the repo root, as run.py runs it
NAME = "latency"
TRUE = "/bin/true"
SETUP_TIMEOUT = 60


def note(text):
    print(text, file=sys.stderr, flush=True)


def run_quietly(argv, env=None, timeout=SETUP_TIMEOUT):
    """(ok, the last line of its stderr).  stderr goes to a file, not a pipe:
    a daemon it leaves behind (runsc run --detach's) would hold a pipe open."""
    with tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, env=env, cwd=REPO, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, str(e)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return p.returncode == 0, (lines[-1] if lines else f"exit status {p.returncode}")


def timed(argv, env):
    """Seconds from spawn to reaped, or None if it did not exit 0."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
        start = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        took = time.perf_counter() - start
    finally:
        os.close(null)
    return took if os.waitstatus_to_exitcode(status) == 0 else None


# ---- the sandboxes -----------------------------------------------------------

class UmlpySandbox:
    def __init__(self, tmp):
        self.env = dict(os.environ, UMLPY_REGISTRY=os.path.join(tmp, "registry"))

    def start(self):
        for step in (["create", NAME], ["start", NAME]):
            ok, why = run_quietly(UMLPY + step, self.env)
            if not ok:
                raise SystemExit(f"umlpy {step[0]} {NAME}: {why}")

    def remove(self):
        run_quietly(UMLPY + ["rm", "-f", NAME], self.env)


class RunscContainer:
    """A container of the host's / (read-only) running sleep, to exec into."""

    def __init__(self, tmp):
        self.state = os.path.join(tmp, "runsc-state")
        self.bundle = os.path.join(tmp, "runsc-bundle")
        self.flags = None
        self.id = "umlpy-latency"
        self.why_not = None

    def start(self):
        """The exec command's prefix, or None (why_not says why)."""
        if shutil.which("runsc") is None:
            self.why_not = "runsc is not installed"
            return None
        os.makedirs(self.bundle)
        ok, why = run_quietly(["runsc", "spec", "--bundle", self.bundle])
        if not ok:
            self.why_not = f"runsc spec: {why}"
            return None
        path = os.path.join(self.bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["process"].update(args=["/bin/sleep", "infinity"], terminal=False)
        config["root"] = {"path": "/", "readonly": True}
        with open(path, "w") as f:
            json.dump(config, f)
        for flags in RUNSC_VARIANTS:
            prefix = ["runsc", f"--root={self.state}"] + flags
            # --detach returns once the container runs; its stdio is /dev/null,
            # so nothing of ours is held open by the sandbox
            ok, why = run_quietly(prefix + ["run", "--detach", "--bundle", self.bundle, self.id])
            if ok and run_quietly(prefix + ["exec", self.id, TRUE])[0]:
                self.flags = flags
                return prefix + ["exec", self.id]
            self.why_not = f"runsc {' '.join(flags)} run: {why}"
            self.remove(prefix)
        return None

    def remove(self, prefix=None):
        prefix = prefix or ["runsc", f"--root={self.state}"] + (self.flags or [])
        run_quietly(prefix + ["kill", self.id, "KILL"])
        run_quietly(prefix + ["delete", "--force", self.id])


# ---- the run -------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=50, help="repetitions of each (default 50)")
    p.add_argument("--cpus", default="any", metavar="any|same|LIST",
                   help="CPU placement of every process, as in run.py (default any)")
    p.add_argument("--no-runsc", action="store_true", help="leave runsc out")
    args = p.parse_args(argv)
    available = os.sched_getaffinity(0)
    try:
        cpus = parse_cpus(args.cpus, available)
    except ValueError as e:
        p.error(f"--cpus: {e}")
    if cpus is not None:
        os.sched_setaffinity(0, cpus)       # before any child: all inherit it
    placement = placement_text(cpus, available)
    os.chdir(REPO)      # python -m umlpy from the repo root, as run.py runs it
    if not os.access(CLIENT, os.X_OK):
        raise SystemExit(f"{CLIENT}: not built (pip install -e . builds it)")
    compileall.compile_dir(os.path.join(REPO, "umlpy"), quiet=1)    # no compile in a timed run

    with tempfile.TemporaryDirectory(prefix="umlpy-latency-") as tmp:
        os.chmod(tmp, 0o755)    # the sandbox's own host ids reach its upper layer through it
        sandbox = UmlpySandbox(tmp)
        runsc = RunscContainer(tmp)
        try:
            sandbox.start()
            runsc_exec = None if args.no_runsc else runsc.start()
            if args.no_runsc:
                runsc.why_not = "--no-runsc"
            ways = [("native", [TRUE]),
                    ("umlpy-exec (C)", [CLIENT, NAME, "--", TRUE]),
                    ("umlpy exec (Python)", UMLPY + ["exec", NAME, "--", TRUE]),
                    ("umlpy run", UMLPY + ["run", "--", TRUE])]
            if runsc_exec:
                ways.append(("runsc exec", runsc_exec + [TRUE]))
            times = measure(ways, sandbox.env, args.runs)
        finally:
            runsc.remove()
            sandbox.remove()
    report(ways, times, args.runs, placement, runsc)
    return 0 if all(None not in t for t in times.values()) else 1


def measure(ways, env, runs):
    times = {label: [] for label, _ in ways}
    for label, argv in ways:        # warm-up: page cache, bytecode, the daemon's first exec
        timed(argv, env)
    for _ in range(runs):
        for label, argv in ways:
            times[label].append(timed(argv, env))
    return times


def report(ways, times, runs, placement, runsc):
    native = statistics.median(times["native"])
    print(f"placement: {placement}")
    print(f"CPUs: {cpu_list(os.sched_getaffinity(0))} of {os.cpu_count()}; "
          f"{runs} runs each, interleaved; medians")
    print(f"{'':22} {'median ms':>10} {'min ms':>8} {'vs native ms':>13}")
    for label, _ in ways:
        samples = times[label]
        if None in samples:
            print(f"{label:22} {'FAILED':>10} ({samples.count(None)} of {runs} runs did not exit 0)")
            continue
        median = statistics.median(samples)
        print(f"{label:22} {median * 1e3:10.2f} {min(samples) * 1e3:8.2f} "
              f"{(median - native) * 1e3:+13.2f}")
    if "runsc exec" not in times:
        print(f"{'runsc exec':22} {'n/a':>10} ({runsc.why_not})")
    else:
        print(f"(runsc {' '.join(runsc.flags)}: a container of the host's / read-only)")


if __name__ == "__main__":
    sys.exit(main())
