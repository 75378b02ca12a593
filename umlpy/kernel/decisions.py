"""Decisions a syscall handler can take, and the view of one stopped call
that a handler receives."""
from ..abi.args import MASK64, s32, s64, u32


class Allow:
    """Let the host execute the call as the guest made it."""
    __slots__ = ()

    def __repr__(self):
        return "ALLOW"


ALLOW = Allow()


class Return:
    """Skip the call; the guest sees ``value`` (negative errno for errors)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Return) and other.value == self.value

    def __repr__(self):
        return f"Return({self.value})"


def fail(err):
    return Return(-err)


class Rewrite:
    """Run ``nr(args)`` in place of the guest's call (registers only, so a
    guest thread cannot change it under us)."""
    __slots__ = ("nr", "args")

    def __init__(self, nr, args):
        self.nr = nr
        self.args = tuple(args)

    def __repr__(self):
        return f"Rewrite({self.nr}, {self.args})"


class AllowThen:
    """Let the host run the call, then call ``on_exit(call, result)``; a
    non-None value it returns replaces the result.  ``rewrite`` optionally
    changes the call first."""
    __slots__ = ("on_exit", "rewrite")

    def __init__(self, on_exit, rewrite=None):
        self.on_exit = on_exit
        self.rewrite = rewrite


def then(decision, on_exit):
    """decision, and on_exit(call, result) once the host has run the call
    (before any on_exit the decision has; a Return runs nothing and has
    no exit)."""
    if decision is ALLOW:
        return AllowThen(on_exit)
    if isinstance(decision, Rewrite):
        return AllowThen(on_exit, rewrite=decision)
    if isinstance(decision, AllowThen):
        inner = decision.on_exit

        def both(call, result):
            on_exit(call, result)
            return inner(call, result)
        return AllowThen(both, rewrite=decision.rewrite)
    return decision


class Install:
    """For a call the guest kernel made itself (a notified open): the host
    fd it opened becomes the caller's, and the call returns its number.
    The guest kernel closes its own copy."""
    __slots__ = ("fd", "cloexec")

    def __init__(self, fd, cloexec):
        self.fd = fd
        self.cloexec = cloexec

    def __repr__(self):
        return f"Install({self.fd}, cloexec={self.cloexec})"


class Deferred:
    """For a notified call that may block (the open of a FIFO waits for the
    other end): ``work()`` runs on a thread of its own and its decision
    (Return or Install) answers the call; the caller waits, as natively."""
    __slots__ = ("work",)

    def __init__(self, work):
        self.work = work


class SyscallCall:
    """One stopped syscall, as a handler sees it.  ``notified``: the call
    came through the seccomp listener, not a ptrace stop: the caller's
    registers cannot be changed and nothing can be injected; the guest
    kernel makes the call itself (Install, Return)."""
    __slots__ = ("kernel", "tid", "nr", "args", "entry")
    notified = False

    def __init__(self, kernel, tid, nr, args, entry):
        self.kernel = kernel
        self.tid = tid
        self.nr = nr
        self.args = args
        self.entry = entry

    # The arguments as the call's C prototype types them (the registers
    # hold unsigned 64-bit values): a handler never decodes one by hand.
    def int(self, i):
        """Argument i as a C int (flags, a signal, a pid...)."""
        return s32(self.args[i])

    def uint(self, i):
        """Argument i as a C unsigned int (a mode, a mask, a length...)."""
        return u32(self.args[i])

    def long(self, i):
        """Argument i as a C long (an offset, a size that may be negative)."""
        return s64(self.args[i])

    def ptr(self, i):
        """Argument i as an address (unsigned 64 bits; 0 is NULL)."""
        return self.args[i] & MASK64

    def fd(self, i):
        """Argument i as a file descriptor or dirfd (Linux's int fd:
        AT_FDCWD is -100, -1 is no fd)."""
        return s32(self.args[i])

    @property
    def guest_tid(self):
        """The calling thread's tid as the guest knows it."""
        return self.kernel.processes.guest_tid(self.tid)

    @property
    def name(self):
        return self.entry.name if self.entry else f"syscall_{self.nr}"

    def read(self, addr, size):
        """size bytes of guest memory; OSError(EFAULT) if any is unmapped
        (as copy_from_user fails)."""
        data = self.kernel.tracer.read_mem(self.tid, addr, size)
        if len(data) < size:
            raise OSError(14, f"guest memory at {addr:#x} is not readable")
        return data

    def read_some(self, addr, size):
        """Up to size bytes of guest memory, fewer at an unmapped page."""
        return self.kernel.tracer.read_mem(self.tid, addr, size)

    def read_str(self, addr, limit=4096):
        return self.kernel.tracer.read_str(self.tid, addr, limit)

    def write(self, addr, data):
        """Write a result into guest memory, as copy_to_user: only where the
        guest may write itself; OSError(EFAULT) otherwise (never into
        read-only pages, such as the guest kernel's scratch slots)."""
        try:
            n = self.kernel.tracer.write_user(self.tid, addr, data)
        except OSError:
            n = -1
        if n != len(data):
            raise OSError(14, f"guest memory at {addr:#x} is not writable")
        return n

    def inject(self, nr, *args):
        return self.kernel.tracer.inject_syscall(self.tid, nr, args)

    def __repr__(self):
        return f"<{self.name}{tuple(hex(a) for a in self.args)} tid={self.tid}>"


class NotifiedCall(SyscallCall):
    """A call held by the seccomp listener.  Every read of the caller's
    memory is checked to still be the caller's: a thread killed while it
    waited, and its tid reused, must not lend its memory to a decision."""
    __slots__ = ("req_id", "notifier")
    notified = True

    def __init__(self, kernel, tid, nr, args, entry, req_id, notifier):
        super().__init__(kernel, tid, nr, args, entry)
        self.req_id = req_id
        self.notifier = notifier

    def _still_waiting(self, data):
        if not self.notifier.valid(self.req_id):
            raise OSError(3, "the caller is gone")      # ESRCH: nobody gets the answer
        return data

    def read(self, addr, size):
        return self._still_waiting(super().read(addr, size))

    def read_some(self, addr, size):
        return self._still_waiting(super().read_some(addr, size))

    def read_str(self, addr, limit=4096):
        return self._still_waiting(super().read_str(addr, limit))

    def write(self, addr, data):
        self._still_waiting(None)       # never into a thread that took its place
        return super().write(addr, data)

    def inject(self, nr, *args):
        raise OSError(38, "a notified call has no stop to inject into")
