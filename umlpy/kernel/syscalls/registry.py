"""The guest kernel's syscall table.

Every x86_64 syscall is declared exactly once, by the family module it
belongs to, with its support level.  The seccomp filter, the native
policy table and the compatibility page are all derived from this table;
nothing else decides how a syscall is treated.
"""
import errno as _errno

from ...abi import MASK32, MASK64
from .names import SYSCALL_NAMES, SYSCALL_NUMBERS, prototype


class Support:
    """Support levels (plain strings: enum costs start-up time)."""
    PASSTHROUGH = "passthrough"   # the host runs it unchanged
    GUARDED = "guarded"           # passes, unless an argument needs a decision
    EMULATED = "emulated"         # the guest kernel's handler decides each call
    DENIED = "denied"             # fails with a fixed errno
    UNSUPPORTED = "unsupported"   # fails with ENOSYS


class Guard:
    """Stop the call only when ``args[arg]`` masked with ``mask`` is
    non-zero (``value`` None), or when its low 32 bits masked equal
    ``value`` (one number, or a tuple of them).  A pointer argument is
    guarded whole (the default mask): a guest may place memory where the
    low half of its address is 0."""
    __slots__ = ("arg", "mask", "value")

    def __init__(self, arg, mask=MASK64, value=None):
        if value is not None:
            mask &= MASK32              # a value is compared with the argument's low half
            if isinstance(value, (tuple, list, set, frozenset)):
                value = tuple(sorted({v & mask for v in value}))
                if len(value) == 1:
                    value = value[0]
            else:
                value &= mask
        self.arg = arg
        self.mask = mask
        self.value = value

    @property
    def values(self):
        """The values that stop the call (empty: any non-zero one)."""
        if self.value is None:
            return ()
        return self.value if isinstance(self.value, tuple) else (self.value,)

    def matches(self, args):
        v = args[self.arg] & self.mask
        return v != 0 if self.value is None else v in self.values

    def _key(self):
        return (self.arg, self.mask, self.value)

    def __eq__(self, other):
        return isinstance(other, Guard) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Guard(arg={self.arg}, mask={self.mask:#x}, value={self.value})"


class TimedWait:
    """A passthrough call that waits with a relative timeout, args[arg]:
    milliseconds in an int (negative: no timeout), or a struct timespec
    pointer (NULL: none).  Under ptrace a signal Linux would have discarded
    still wakes it with EINTR, and the native tracer makes it again; so
    that it keeps its deadline rather than waiting its whole timeout anew,
    the call stops (in C only) when its timeout is finite and not zero,
    and the tracer notes when it began (tracer.c, drop_signal); at a stop
    for Python (--trace-all, a hook) the tracer notes it all the same.
    timed_out: what the call returns when its time is up (0, or -EAGAIN)."""
    __slots__ = ("arg", "timespec", "timed_out")

    def __init__(self, arg, timespec, timed_out=0):
        self.arg, self.timespec, self.timed_out = arg, timespec, timed_out

    def matches(self, args):
        """Whether the call stops: a finite, non-zero timeout."""
        v = args[self.arg]
        if self.timespec:
            return v & MASK64 != 0
        v &= MASK32
        return v != 0 and not v & 0x80000000

    def code(self):
        """The native tracer's word for it (UMLPY_WAIT_* in tracer_api.h)."""
        return (self.arg | (UMLPY_WAIT_TIMESPEC if self.timespec else 0) |
                (UMLPY_WAIT_EAGAIN if self.timed_out == -_errno.EAGAIN else 0))

    def _key(self):
        return (self.arg, self.timespec, self.timed_out)

    def __eq__(self, other):
        return isinstance(other, TimedWait) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"TimedWait(arg={self.arg}, timespec={self.timespec})"


# the same values as in tracer_api.h
UMLPY_WAIT_TIMESPEC = 0x10
UMLPY_WAIT_EAGAIN = 0x20


class Entry:
    """One syscall's declaration: who owns it and how it is supported."""
    __slots__ = ("nr", "name", "family", "support", "why", "errno", "handler", "guard",
                 "wait")

    def __init__(self, nr, name, family, support, why="", errno=0, handler=None,
                 guard=None, wait=None):
        self.nr = nr
        self.name = name
        self.family = family
        self.support = support
        self.why = why
        self.errno = errno
        self.handler = handler
        self.guard = guard
        self.wait = wait

    def __repr__(self):
        return f"<Entry {self.nr} {self.name} {self.family} {self.describe()}>"

    @property
    def prototype(self):
        return prototype(self.name)

    def describe(self):
        if self.support == Support.DENIED:
            return f"denied ({_errno.errorcode.get(self.errno, self.errno)})"
        if self.support == Support.UNSUPPORTED:
            return "unsupported (ENOSYS)"
        return self.support


class OptionRule:
    """A handler that a sandbox option puts in front of a call: it runs
    only in sandboxes where the option is set, or where condition(config)
    holds when it has one (a decision takes the call, None lets the
    table's own treatment go on).  With a guard, the call stops for it
    only when the guard matches (a passthrough call: GuardedHook)."""
    __slots__ = ("option", "handler", "why", "guard", "condition")

    def __init__(self, option, handler, why, guard=None, condition=None):
        self.option = option        # a keyword of umlpy/config/options.py
        self.handler = handler
        self.why = why
        self.guard = guard
        self.condition = condition

    def holds(self, config):
        return self.condition(config) if self.condition is not None else \
            config.is_set(self.option)


class GuardedHook:
    """An option rule's handler as a dispatcher hook that need not stop
    every call: policy.build_policy gives a passthrough call whose hooks
    are all GuardedHooks of one guard that guard, so the filter stops it
    only when the guard matches (any other hook on it: every call stops,
    and the handler looks at the arguments itself)."""
    __slots__ = ("handler", "guard")

    def __init__(self, handler, guard):
        self.handler, self.guard = handler, guard

    def __call__(self, call):
        return self.handler(call)

    def __repr__(self):
        return f"GuardedHook({self.handler.__name__}, {self.guard})"


class DeclarationError(Exception):
    """A syscall family declared a call twice, or one that does not exist."""


class SyscallTable:
    def __init__(self):
        self.by_nr = {}
        self.option_rules = {}      # nr -> [OptionRule]

    def _add(self, entry):
        if entry.nr in self.by_nr:
            raise DeclarationError(
                f"syscall {entry.name} declared by {self.by_nr[entry.nr].family} "
                f"and again by {entry.family}")
        self.by_nr[entry.nr] = entry
        return entry

    def _nr(self, name):
        try:
            return SYSCALL_NUMBERS[name]
        except KeyError:
            raise DeclarationError(f"no x86_64 syscall named {name!r}") from None

    def passthrough(self, family, *names, why=""):
        for name in names:
            self._add(Entry(self._nr(name), name, family, Support.PASSTHROUGH, why))

    def timed_wait(self, family, name, wait):
        """A passthrough call that waits with a timeout (TimedWait)."""
        self._add(Entry(self._nr(name), name, family, Support.PASSTHROUGH,
                        "with a finite timeout, stops in the native tracer, which keeps "
                        "its deadline when a signal the guest never gets wakes it",
                        wait=wait))

    def denied(self, family, err, why, *names):
        for name in names:
            self._add(Entry(self._nr(name), name, family, Support.DENIED, why, err))

    def unsupported(self, family, why, *names):
        for name in names:
            self._add(Entry(self._nr(name), name, family, Support.UNSUPPORTED,
                            why, _errno.ENOSYS))

    def emulated(self, family, name, why=""):
        def register(handler):
            self._add(Entry(self._nr(name), name, family, Support.EMULATED, why,
                            handler=handler))
            return handler
        return register

    def guarded(self, family, name, guard, why):
        def register(handler):
            self._add(Entry(self._nr(name), name, family, Support.GUARDED, why,
                            handler=handler, guard=guard))
            return handler
        return register

    def when(self, option, *names, why, guard=None, condition=None):
        """Decorator: handler(call) runs at each of these calls in the
        sandboxes whose configuration sets `option` (or where
        condition(config) holds, if given); the call then stops whatever
        its support level, or, with a guard, a passthrough call stops only
        when the guard matches (docs/SYSCALLS.md says "with --FLAG")."""
        def register(handler):
            for name in names:
                self.option_rules.setdefault(self._nr(name), []).append(
                    OptionRule(option, handler, why, guard, condition))
            return handler
        return register

    def rules_for(self, config):
        """[(nr, handler)] of the option rules this configuration turns on
        (a guarded rule's handler as a GuardedHook)."""
        return [(nr, rule.handler if rule.guard is None else
                 GuardedHook(rule.handler, rule.guard))
                for nr, rules in sorted(self.option_rules.items())
                for rule in rules if rule.holds(config)]

    def entry(self, name_or_nr):
        nr = name_or_nr if isinstance(name_or_nr, int) else self._nr(name_or_nr)
        return self.by_nr.get(nr)

    def missing(self):
        """Names of x86_64 syscalls that no family declared."""
        return sorted(name for nr, name in SYSCALL_NAMES.items()
                      if nr not in self.by_nr)

    def __iter__(self):
        return iter(sorted(self.by_nr.values(), key=lambda e: e.nr))


TABLE = SyscallTable()
