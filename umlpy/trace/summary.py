"""``-c``: strace's summary table of calls, errors and time per syscall.

Times are wall-clock latencies, from the call's entry stop to its exit
stop (strace's ``-w``): a tracer outside the kernel cannot charge a call
its system time alone.  Calls that never returned (exit, exit_group, a
thread killed in a call) are not counted, as in strace."""

SORT_KEYS = {
    "time": lambda row: (-row[1], row[0]), "calls": lambda row: (-row[2], row[0]),
    "name": lambda row: row[0], "errors": lambda row: (-row[3], row[0]),
    "nothing": None,
}
SORT_ALIASES = {"time_total": "time", "total_time": "time", "count": "calls",
                "syscall": "name", "syscall_name": "name", "error": "errors",
                "none": "nothing"}

RULE = "------ ----------- ----------- --------- --------- ----------------"


def sort_key(name):
    name = SORT_ALIASES.get(name, name)
    return name if name in SORT_KEYS else None


class SummarySink:
    def __init__(self, out, sort="time"):
        from .format import guarded
        self.out = guarded(out)
        self.sort = sort
        self.stats = {}         # name -> [seconds, calls, errors]
        self.order = []

    def exit(self, rec):
        if rec.result is None:
            return
        row = self.stats.get(rec.name)
        if row is None:
            row = self.stats[rec.name] = [0.0, 0, 0]
            self.order.append(rec.name)
        row[0] += rec.duration or 0.0
        row[1] += 1
        if -4096 < rec.result < 0:
            row[2] += 1

    def rows(self):
        rows = [(name, *self.stats[name]) for name in self.order]
        key = SORT_KEYS.get(self.sort)
        if key is not None:
            rows.sort(key=key)
        return rows

    def table(self):
        rows = self.rows()
        total = sum(r[1] for r in rows)
        calls = sum(r[2] for r in rows)
        errors = sum(r[3] for r in rows)
        lines = ["% time     seconds  usecs/call     calls    errors syscall", RULE]
        for name, seconds, n, errs in rows:
            lines.append(_row(seconds / total * 100 if total else 0.0, seconds,
                              int(seconds * 1e6 / n) if n else 0, n, errs, name))
        lines.append(RULE)
        lines.append(_row(100.0, total, int(total * 1e6 / calls) if calls else 0, calls,
                          errors, "total"))
        return "\n".join(lines) + "\n"

    def close(self):
        self.out.write(self.table())
        self.out.flush()


def _row(percent, seconds, usecs, calls, errors, name):
    err = f"{errors:9d}" if errors else " " * 9
    return f"{percent:6.2f} {seconds:11.6f} {usecs:11d} {calls:9d} {err} {name}"
