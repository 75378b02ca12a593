#!/usr/bin/env python3
"""Is a parent served while its children keep the guest kernel busy?

    python3 benchmarks/fairness.py [--runs N] [--children 16] [--child-calls 10000]
                                   [--parent-calls 2000] [--child-op connect]
                                   [--parent-op socket] [--trace-all] [--tree DIR ...]

benchmarks/fairness.c forks the children, each making calls the guest
kernel serves (connect() to a closed port stops at ptrace), waits 300 ms
so they are all busy, then times the parent's own calls.  Run natively
and inside umlpy (each --tree: a checkout whose umlpy is run, to compare
two builds), pinned to one CPU (taskset -c 0) and not; medians in ms.

Inside, the program runs below `sh -c`: the sandbox's first process is
the tracer's own child, which waitpid(-1) looks at first anyway; a parent
deeper in the tree is where the order of service shows.  Standard library
only; not a test (no timing is asserted anywhere).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def build(outdir):
    exe = os.path.join(outdir, "fairness")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(HERE, "fairness.c")],
                   check=True)
    os.chmod(outdir, 0o755)     # uid 65534 (the guest as root's) runs it
    return exe


def once(argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    m = re.search(r"forks ([\d.]+) parent ([\d.]+) all ([\d.]+)", p.stdout)
    if not m:
        raise SystemExit(f"{argv}: {p.stdout}{p.stderr}")
    return tuple(float(x) for x in m.groups())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--children", type=int, default=16)
    ap.add_argument("--child-calls", type=int, default=10000)
    ap.add_argument("--parent-calls", type=int, default=2000)
    ap.add_argument("--child-op", default="connect", choices=["connect", "socket", "open"])
    ap.add_argument("--parent-op", default="socket", choices=["socket", "connect", "pipe", "open"])
    ap.add_argument("--trace-all", action="store_true",
                    help="umlpy run --trace-all: every call of the parent stops too")
    ap.add_argument("--tree", action="append", default=[],
                    help="a checkout whose umlpy to run (default: this one)")
    args = ap.parse_args()
    trees = args.tree or [REPO]
    with tempfile.TemporaryDirectory(prefix="fairness-") as tmp:
        exe = build(tmp)
        prog = [exe, str(args.children), str(args.child_calls), str(args.parent_calls),
                args.child_op, args.parent_op]
        runners = [("native", None, prog)]
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            mode = ["--trace-all"] if args.trace_all else []
            runners.append((f"umlpy {tree}", env, [sys.executable, "-m", "umlpy", "run", *mode,
                                                   "--", "sh", "-c", " ".join(prog) + "; true"]))
        print(f"{args.children} children x {args.child_calls} {args.child_op}, parent "
              f"{args.parent_calls} {args.parent_op}; medians of {args.runs} runs, ms")
        print(f"{'runner':40} {'cpus':6} {'forks':>8} {'parent':>8} {'all':>8}")
        for name, env, argv in runners:
            for cpus, prefix in (("0", ["taskset", "-c", "0"]), ("any", [])):
                results = [once(prefix + argv, env) for _ in range(args.runs)]
                med = [statistics.median(r[i] for r in results) for i in range(3)]
                print(f"{name[-40:]:40} {cpus:6} {med[0]:8.1f} {med[1]:8.1f} {med[2]:8.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
