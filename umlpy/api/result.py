"""What a run or an exec gives back: ``Result`` (status, output,
``Stats``).  Its own module: ``Sandbox.run`` (sandbox.py) and a named
sandbox's ``exec`` (named.py) both make one."""
from collections import Counter

__all__ = ["Result", "Stats"]


class Stats:
    """What the guest kernel saw: ``calls`` counts the stopped calls by
    syscall name (every call with trace_all=True; in the default mode only
    those that stop: the guest kernel's and hooked ones), ``stops`` is
    the number of syscall stops."""

    def __init__(self):
        self.calls = Counter()
        self.stops = 0

    def __repr__(self):
        top = ", ".join(f"{n}={c}" for n, c in self.calls.most_common(5))
        return f"<Stats stops={self.stops} {top}>"


class Result:
    """``status`` (the shell's: the exit code, or 128+N if signal N killed
    the first process), ``stdout``/``stderr`` (bytes when captured, else
    None), ``stats`` and ``timed_out``.  A named sandbox's exec has no
    stats (None): its guest kernel counts in another process."""

    def __init__(self, status, stdout, stderr, stats, timed_out=False):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.stats = stats
        self.timed_out = timed_out

    @property
    def returncode(self):
        return self.status

    def __repr__(self):
        stops = f" stops={self.stats.stops}" if self.stats is not None else ""
        return f"<Result status={self.status}{stops}" + \
            (" timed out>" if self.timed_out else ">")
