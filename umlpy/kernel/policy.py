"""The policy: for each syscall number, what happens when a guest makes it.

Derived from the syscall table (and any user hooks) for one mode, then
handed to two consumers: the seccomp filter (which decides whether a call
stops at all) and the native loop's table (which decides, at a stop,
whether Python is needed).
"""

from .syscalls.names import X32_FIRST
from .syscalls.registry import Support

TABLE_SIZE = X32_FIRST      # must equal UMLPY_TABLE_SIZE in tracer_api.h


class Mode:
    DEFAULT = "default"       # calls that need no virtualisation never stop
    TRACE_ALL = "trace-all"   # every call stops and reaches the guest kernel
    ALL = (DEFAULT, TRACE_ALL)


class Action:
    ALLOW = 0     # same values as UMLPY_ACT_* in tracer_api.h
    ERRNO = 1
    PYTHON = 2
    NOTIFY = 4    # the filter's USER_NOTIF: the notification server (notify.py)
    TIMED = 5     # resume in C, noting when the wait began (registry.TimedWait)


class Rule:
    """What to do with one syscall number; a guard (with ALLOW) makes the
    call stop for Python when it matches; a wait (with TIMED) makes it stop
    for the native tracer alone when its timeout is finite (else it is
    allowed); C learns which calls are timed waits from the table itself,
    in every mode (GuestKernel.spawn, Tracer.set_wait)."""
    __slots__ = ("action", "errno", "guard", "wait")

    def __init__(self, action, errno=0, guard=None, wait=None):
        self.action = action
        self.errno = errno
        self.guard = guard
        self.wait = wait

    def _key(self):
        return (self.action, self.errno, self.guard, self.wait)

    def __eq__(self, other):
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"Rule(action={self.action}, errno={self.errno}, guard={self.guard}, "
                f"wait={self.wait})")


def rule_for(entry, mode, hooked):
    if entry is None:
        return Rule(Action.ERRNO, 38) if mode == Mode.DEFAULT else Rule(Action.PYTHON)
    if mode == Mode.TRACE_ALL or hooked:
        return Rule(Action.PYTHON)
    support = entry.support
    if support == Support.PASSTHROUGH:
        if entry.wait is not None:
            return Rule(Action.TIMED, wait=entry.wait)
        return Rule(Action.ALLOW)
    if support == Support.GUARDED:
        return Rule(Action.ALLOW, guard=entry.guard)
    if support in (Support.DENIED, Support.UNSUPPORTED):
        return Rule(Action.ERRNO, entry.errno)
    return Rule(Action.PYTHON)


def hook_guards(hooks):
    """{nr: Guard} of the calls in hooks (a dispatcher's {nr: [hook]})
    whose hooks all stop on one guard."""
    if not isinstance(hooks, dict):
        return {}
    out = {}
    for nr, fns in hooks.items():
        guards = {getattr(fn, "guard", None) for fn in fns}
        if fns and len(guards) == 1 and None not in guards:
            out[nr] = guards.pop()
    return out


def build_policy(table, mode, hooked_numbers=(), notified=None):
    """A list of TABLE_SIZE rules, one per syscall number.  notified maps
    emulated calls to the notification listener instead of a ptrace stop
    (nr -> a Guard: calls it matches still stop at ptrace, or None); not
    the ones a user hooked."""
    hooked = set(hooked_numbers)
    rules = [rule_for(table.by_nr.get(nr), mode, nr in hooked) for nr in range(TABLE_SIZE)]
    for nr, guard in hook_guards(hooked_numbers).items():
        # a passthrough call whose only hooks are an option rule's guarded
        # ones (registry.GuardedHook) stops when that guard matches
        if mode == Mode.DEFAULT and nr < TABLE_SIZE:
            own = rule_for(table.by_nr.get(nr), mode, False)
            if own == Rule(Action.ALLOW):
                rules[nr] = Rule(Action.ALLOW, guard=guard)
    for nr, guard in (notified or {}).items():
        if nr not in hooked and mode == Mode.DEFAULT and rules[nr] == Rule(Action.PYTHON):
            rules[nr] = Rule(Action.NOTIFY, guard=guard)
    return rules
