"""Decisions a syscall handler can take, and the view of one stopped call
that a handler receives."""
from collections import namedtuple


class Allow:
    """Let the host execute the call as the guest made it."""
    __slots__ = ()

    def __repr__(self):
        return "ALLOW"


ALLOW = Allow()


class Return(namedtuple("Return", "value")):
    """Skip the call; the guest sees ``value`` (negative errno for errors)."""
    __slots__ = ()


def fail(err):
    return Return(-err)


class Rewrite(namedtuple("Rewrite", "nr args")):
    """Run ``nr(args)`` in place of the guest's call (registers only, so a
    guest thread cannot change it under us)."""
    __slots__ = ()


class AllowThen(namedtuple("AllowThen", "on_exit rewrite", defaults=(None,))):
    """Let the host run the call, then call ``on_exit(call, result)``; a
    non-None value it returns replaces the result.  ``rewrite`` optionally
    changes the call first."""
    __slots__ = ()


class SyscallCall:
    """One stopped syscall, as a handler sees it."""
    __slots__ = ("kernel", "tid", "nr", "args", "entry")

    def __init__(self, kernel, tid, nr, args, entry):
        self.kernel = kernel
        self.tid = tid
        self.nr = nr
        self.args = args
        self.entry = entry

    @property
    def name(self):
        return self.entry.name if self.entry else f"syscall_{self.nr}"

    def read(self, addr, size):
        return self.kernel.tracer.read_mem(self.tid, addr, size)

    def read_str(self, addr, limit=4096):
        return self.kernel.tracer.read_str(self.tid, addr, limit)

    def write(self, addr, data):
        return self.kernel.tracer.write_mem(self.tid, addr, data)

    def inject(self, nr, *args):
        return self.kernel.tracer.inject_syscall(self.tid, nr, args)

    def __repr__(self):
        return f"<{self.name}{tuple(hex(a) for a in self.args)} tid={self.tid}>"
