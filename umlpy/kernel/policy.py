"""The policy: for each syscall number, what happens when a guest makes it.

Derived from the syscall table (and any user hooks) for one mode, then
handed to two consumers: the seccomp filter (which decides whether a call
stops at all) and the native loop's table (which decides, at a stop,
whether Python is needed).
"""
import enum
from collections import namedtuple

from .syscalls.names import X32_FIRST
from .syscalls.registry import Support

TABLE_SIZE = X32_FIRST      # must equal UMLPY_TABLE_SIZE in tracer_api.h


class Mode(enum.Enum):
    DEFAULT = "default"       # calls that need no virtualisation never stop
    TRACE_ALL = "trace-all"   # every call stops and reaches the guest kernel


class Action(enum.IntEnum):
    ALLOW = 0     # same values as UMLPY_ACT_* in tracer_api.h
    ERRNO = 1
    PYTHON = 2


class Rule(namedtuple("Rule", "action errno guard", defaults=(0, None))):
    """What to do with one syscall number; a guard (with ALLOW) makes the
    call stop for Python when it matches."""
    __slots__ = ()


def rule_for(entry, mode, hooked):
    if entry is None:
        return Rule(Action.ERRNO, 38) if mode is Mode.DEFAULT else Rule(Action.PYTHON)
    if mode is Mode.TRACE_ALL or hooked:
        return Rule(Action.PYTHON)
    support = entry.support
    if support is Support.PASSTHROUGH:
        return Rule(Action.ALLOW)
    if support is Support.GUARDED:
        return Rule(Action.ALLOW, guard=entry.guard)
    if support in (Support.DENIED, Support.UNSUPPORTED):
        return Rule(Action.ERRNO, entry.errno)
    return Rule(Action.PYTHON)


def build_policy(table, mode, hooked_numbers=()):
    """A list of TABLE_SIZE rules, one per syscall number."""
    hooked = set(hooked_numbers)
    return [rule_for(table.by_nr.get(nr), mode, nr in hooked)
            for nr in range(TABLE_SIZE)]
