"""``--compare A B``: two recorded runs (say, one program under two
sandbox configurations) side by side.

Processes are matched by their place in the process tree, not by pid:
the first process is ``1``, the second child it created ``1.2``, that
child's first child ``1.2.1`` (from the results of clone/fork/vfork).
Each process's calls are compared in order on (syscall, result), with
results normalised: errors by name, addresses (mmap, brk...) as ADDR,
pids as the process they name.  The report gives the first divergence
(the earliest one in run A's order) and a per-syscall count delta table.
Exit status: 0 when the runs agree, 1 when they differ."""
from .record import load

CREATORS = frozenset({"clone", "clone3", "fork", "vfork"})
ADDRESSES = frozenset({"mmap", "brk", "mremap", "shmat"})
PIDS = frozenset({"getpid", "gettid", "getppid", "getpgrp", "getpgid", "getsid", "setsid",
                  "set_tid_address", "wait4", "waitid"})


class Run:
    def __init__(self, path, records):
        self.path = path
        self.records = sorted(records, key=lambda r: r.get("seq", 0))
        self.names = {}         # pid -> tree name
        self.calls = {}         # tree name -> [record, ...]
        self._name_processes()
        for r in self.records:
            self.calls.setdefault(self.names[r["pid"]], []).append(r)

    def _name_processes(self):
        children = {}
        order = []
        for r in self.records:
            pid = r["pid"]
            if pid not in order:
                order.append(pid)
            ret = r.get("ret")
            if r["syscall"] in CREATORS and isinstance(ret, int) and ret > 0:
                children.setdefault(pid, []).append(ret)
        if not order:
            return
        has_parent = {c for kids in children.values() for c in kids}
        roots = [p for p in order if p not in has_parent]
        stack = [(roots[0], "1")] if roots else []
        for k, extra in enumerate(roots[1:], 1):
            stack.append((extra, f"?{k}"))
        while stack:
            pid, name = stack.pop(0)
            if pid in self.names:
                continue
            self.names[pid] = name
            for i, child in enumerate(children.get(pid, ()), 1):
                stack.append((child, f"{name}.{i}"))
        for pid in order:
            self.names.setdefault(pid, f"?{pid}")

    def key(self, r):
        """(syscall, normalised result) of record r."""
        name, ret = r["syscall"], r.get("ret")
        if ret is None:
            return name, "?"
        if r.get("errno"):
            return name, r["errno"]
        if name in CREATORS and ret > 0:
            return name, "<" + self.names.get(ret, "PID") + ">"
        if name in PIDS and ret > 0:
            return name, "PID"
        if name in ADDRESSES:
            return name, "ADDR"
        return name, str(ret)

    def counts(self):
        c = {}
        for r in self.records:
            c[r["syscall"]] = c.get(r["syscall"], 0) + 1
        return c


def show(r):
    if r is None:
        return "(no more calls)"
    args = r.get("decoded")
    if args is None:
        args = [hex(a) for a in r.get("args", [])]
    ret = r.get("retstr") or str(r.get("ret"))
    line = f"{r['syscall']}({', '.join(args)}) = {ret}"
    if r.get("injected"):
        line += f" ({r['injected']})"
    return line


def divergences(a, b):
    """[(order, process name, index, record in a, record in b)] per process."""
    found = []
    for proc in a.calls:
        if proc not in b.calls:
            continue
        ca, cb = a.calls[proc], b.calls[proc]
        for i in range(max(len(ca), len(cb))):
            ra = ca[i] if i < len(ca) else None
            rb = cb[i] if i < len(cb) else None
            if ra is None or rb is None or a.key(ra) != b.key(rb):
                order = ra["seq"] if ra is not None else ca[-1]["seq"] + 0.5 if ca else 0
                found.append((order, proc, i, ra, rb))
                break
    found.sort(key=lambda d: d[0])
    return found


def report(path_a, path_b, out):
    a = Run(path_a, load(path_a))
    b = Run(path_b, load(path_b))
    w = out.write
    w(f"a: {path_a}: {len(a.records)} calls, {len(a.calls)} processes\n")
    w(f"b: {path_b}: {len(b.records)} calls, {len(b.calls)} processes\n")
    same = True
    found = divergences(a, b)
    if found:
        same = False
        _, proc, i, ra, rb = found[0]
        pa = ra["pid"] if ra else a.calls[proc][0]["pid"]
        pb = rb["pid"] if rb else b.calls[proc][0]["pid"]
        w(f"first divergence: process {proc} (pid {pa} in a, pid {pb} in b), "
          f"call #{i + 1}:\n")
        w(f"  a: {show(ra)}\n  b: {show(rb)}\n")
        for _, proc, i, _, _ in found[1:]:
            w(f"also diverges: process {proc} at call #{i + 1}\n")
    only_a = [p for p in a.calls if p not in b.calls]
    only_b = [p for p in b.calls if p not in a.calls]
    for label, only, run in (("a", only_a, a), ("b", only_b, b)):
        if only:
            same = False
            procs = ", ".join(f"{p} (pid {run.calls[p][0]['pid']})" for p in only)
            w(f"processes only in {label}: {procs}\n")
    if same:
        w("no divergence: every process made the same calls with the same results\n")
    ca, cb = a.counts(), b.counts()
    rows = [(n, ca.get(n, 0), cb.get(n, 0)) for n in set(ca) | set(cb)]
    rows = [r for r in rows if r[1] != r[2]]
    rows.sort(key=lambda r: (-abs(r[2] - r[1]), r[0]))
    w("\n")
    if rows:
        w(f"{'syscall':24s} {'a':>8s} {'b':>8s} {'delta':>8s}\n")
        for name, x, y in rows:
            w(f"{name:24s} {x:8d} {y:8d} {y - x:+8d}\n")
        ta, tb = len(a.records), len(b.records)
        w(f"{'total':24s} {ta:8d} {tb:8d} {tb - ta:+8d}\n")
    else:
        w("per-syscall counts: no differences\n")
    return 0 if same and not rows else 1
