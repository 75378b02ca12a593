#!/usr/bin/env python3
"""Count the guest's syscalls by process, and add them up by process tree.

    python3 docs/examples/count_by_tree.py -- sh -c 'ls / | wc -l'

prints, after the run, to stderr:

    pid 1 dash: 31 calls, 562 with its descendants
      pid 2 ls: 418 calls
      pid 3 wc: 113 calls

A handler on "*" sees every syscall (each one then stops: this is what
trace_all does; the vDSO's clock calls are not among them).
"""
import sys
from collections import Counter

from umlpy import Sandbox

sb = Sandbox()
calls = Counter()       # guest pid -> syscalls it made
parent = {}             # guest pid -> guest pid of its parent (0: none in the sandbox)
program = {}            # guest pid -> last program it ran


@sb.syscall("*")
def count(call):
    pid = call.pid
    calls[pid] += 1
    if pid not in parent:
        parent[pid] = call.ppid         # at its first call, its parent is known
    program[pid] = call.program
    return None


def report(out=sys.stderr):
    children = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid if ppid in parent and ppid != pid else 0, []).append(pid)

    def total(pid):
        return calls[pid] + sum(total(c) for c in children.get(pid, ()))

    def show(pid, depth):
        kids = sorted(children.get(pid, ()))
        extra = f", {total(pid)} with its descendants" if kids else ""
        print(f"{'  ' * depth}pid {pid} {program.get(pid, '?')}: {calls[pid]} calls{extra}",
              file=out)
        for kid in kids:
            show(kid, depth + 1)
    for root in sorted(children.get(0, ())):
        show(root, 0)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    result = sb.run(argv or ["sh", "-c", "ls / | wc -l"])
    report()
    print(f"{sum(calls.values())} calls, {result.stats.stops} stops", file=sys.stderr)
    sys.exit(result.status)
