"""The one dispatcher that routes a stopped syscall to its handler."""
import errno as _errno

from .decisions import ALLOW, Return
from .syscalls.registry import Support


class Dispatcher:
    """Routes each stopped call: user hooks first, then the table entry."""

    def __init__(self, table):
        self.table = table
        self.hooks = {}

    def add_hook(self, nr, hook):
        self.hooks.setdefault(nr, []).append(hook)

    def decide(self, call):
        for hook in self.hooks.get(call.nr, ()):
            decision = hook(call)
            if decision is not None:
                return decision
        return self.decide_table(call)

    def decide_table(self, call):
        """The table's decision alone (a hook that wraps it calls this)."""
        entry = call.entry
        if entry is None:
            return Return(-_errno.ENOSYS)
        support = entry.support
        if support == Support.PASSTHROUGH:
            return ALLOW
        if support == Support.DENIED or support == Support.UNSUPPORTED:
            return Return(-entry.errno)
        if support == Support.GUARDED and not entry.guard.matches(call.args):
            return ALLOW        # stopped only because every call stops (trace-all)
        return entry.handler(call)
