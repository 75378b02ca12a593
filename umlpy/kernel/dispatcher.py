"""The one dispatcher that routes a stopped syscall to its handler."""
import errno as _errno

from .decisions import ALLOW, AllowThen, Return
from .syscalls.registry import Support


class HandlerFailure(Exception):
    """A handler of the guest kernel's own table raised: a guest kernel bug,
    which fails the call closed (a user's hook raising is the user's, and
    propagates as it is)."""

    def __init__(self, call, error):
        super().__init__(f"{type(error).__name__}: {error}")
        self.call, self.error = call, error


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
        try:
            decision = entry.handler(call)
        except Exception as e:
            raise HandlerFailure(call, e) from e
        if isinstance(decision, AllowThen):
            decision = AllowThen(_guarded_exit(decision.on_exit), rewrite=decision.rewrite)
        return decision


def _guarded_exit(on_exit):
    def run(call, result):
        try:
            return on_exit(call, result)
        except Exception as e:
            raise HandlerFailure(call, e) from e
    return run
