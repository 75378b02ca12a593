"""Scheduling (Linux's kernel/sched/syscalls.c): policies, priorities,
affinity.

Guest root is root only inside the sandbox's user namespace, and Linux
asks for CAP_SYS_NICE of the host's namespace before a thread may take a
real-time policy: natively in such a namespace, sched_setscheduler(FIFO)
fails with EPERM.  A program that runs as root expects it to work, so the
guest kernel emulates the real-time policies for a guest that holds
CAP_SYS_NICE in its own namespace:

* emulated: SCHED_FIFO and SCHED_RR with priority 1..99 (and
  SCHED_RESET_ON_FORK), set by sched_setscheduler, sched_setparam or
  sched_setattr on a thread of the sandbox; the guest kernel records them
  per thread (inherited by the threads and processes it then creates,
  unless reset-on-fork) and sched_getscheduler, sched_getparam and
  sched_getattr report them;
* not emulated: what they would do.  The host runs the thread at
  SCHED_OTHER (with its nice value): it gets no real-time priority over
  the host's threads (nor over the guest's own), and SCHED_RR's time slice
  (sched_rr_get_interval) is the host's answer for that policy.
  SCHED_DEADLINE (admission control on the host's CPUs) is not emulated:
  EPERM as Linux in a user namespace.

Every call runs on the host first: a guest with a real right to it (umlpy
as root with --host-root, or RLIMIT_RTPRIO) gets the real policy, and a
call the host refuses for another reason (EINVAL, ESRCH, EFAULT) keeps its
errno.  Only an EPERM for a guest holding CAP_SYS_NICE becomes an emulated
success; a guest without it keeps Linux's EPERM."""
import errno
import os
import weakref

from ...abi.capability import CAP_SYS_NICE
from ...abi.sched import MAX_RT_PRIO, SCHED_ATTR, SCHED_FIFO, SCHED_FLAG_KEEP_PARAMS, \
    SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_RESET_ON_FORK, SCHED_OTHER, SCHED_PARAM, SCHED_RESET_ON_FORK, \
    SCHED_RR
from .. import procfs
from ..decisions import ALLOW, AllowThen, Return, fail
from .registry import TABLE

FAMILY = "sched"

REAL_TIME = (SCHED_FIFO, SCHED_RR)


class Inherited:
    """Values the guest kernel keeps for the guest's threads (or processes)
    in place of the host's, as Linux keeps them in a task: a value is set
    for a key (a tid, or a process's tgid) and valid while the process
    table's thread of that key is the one it was set for (a tid reused
    after an exit starts afresh); a key with none has its creator's (the
    thread that cloned or forked it), through inherit(value) (None: the
    host's own), as Linux copies a task's at fork.  A value set for a key
    is first copied to the keys it created that have none of their own,
    so they keep what they inherited when it was set."""

    def __init__(self, kernel, up, inherit=lambda value: value):
        self.kernel = kernel
        self.up = up                    # thread -> the key it inherits from, or None
        self.inherit = inherit
        self.values = {}                # key -> (Thread, value)

    def _own(self, key):
        thread = self.kernel.processes.threads.get(key)
        kept = self.values.get(key)
        if thread is not None and kept is not None and kept[0] is thread:
            return True, kept[1]
        return False, None

    def get(self, key):
        """key's value (None: the host's own)."""
        seen = set()
        hops = 0
        while key is not None and key not in seen:
            seen.add(key)
            found, value = self._own(key)
            if found:
                return value if hops == 0 else self.inherit(value)
            thread = self.kernel.processes.threads.get(key)
            if thread is None:
                return None
            key = self.up(thread)
            hops += 1
        return None

    def set(self, key, value):
        threads = self.kernel.processes.threads
        before = self.get(key)
        for thread in list(threads.values()):
            if thread.tid != key and self.up(thread) == key and not self._own(thread.tid)[0]:
                self.values[thread.tid] = (thread, self.inherit(before))
        thread = threads.get(key)
        if thread is not None:
            self.values[key] = (thread, value)
        if len(self.values) > 2 * len(threads) + 64:
            self.values = {k: v for k, v in self.values.items() if threads.get(k) is v[0]}


_STATE = weakref.WeakKeyDictionary()


def emulated_policies(kernel):
    """The per-thread real-time policies of the kernel's guest:
    (policy, priority, reset_on_fork) or None."""
    state = _STATE.get(kernel)
    if state is None:
        state = _STATE[kernel] = Inherited(
            kernel, lambda thread: thread.parent,
            lambda value: None if value is None or value[2] else value)
    return state


def capabilities(tid):
    """The thread's effective capabilities (in its own namespace)."""
    return int(procfs.status_fields(tid).get("CapEff", "0"), 16)


def target_tid(call, pid):
    """The host tid a pid argument names (0: the caller), None if it is no
    thread of the sandbox."""
    if pid == 0:
        return call.tid
    return call.kernel.processes.host_tid(pid)


def read_priority(call, addr):
    return SCHED_PARAM.unpack(call.read(addr, SCHED_PARAM.size))[0]


def real_time(policy, priority):
    return policy in REAL_TIME and 1 <= priority < MAX_RT_PRIO


def set_policy(tid, policy, priority, reset):
    """on_exit of a host call that sets a policy: an EPERM for a caller
    with CAP_SYS_NICE becomes the emulated real-time policy; a success is
    the host's own policy (the emulated one is gone)."""
    def on_exit(call, result):
        policies = emulated_policies(call.kernel)
        if result == -errno.EPERM and real_time(policy, priority) and \
                capabilities(call.tid) & CAP_SYS_NICE:
            try:
                # the host runs it as SCHED_OTHER, whatever it ran as
                # (its children then start as natively after a reset)
                os.sched_setscheduler(tid, SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass
            policies.set(tid, (policy, priority, reset))
            return 0
        if result == 0:
            policies.set(tid, None)
        return None
    return on_exit


@TABLE.emulated(FAMILY, "sched_setscheduler", "SCHED_FIFO/SCHED_RR refused by the host "
                "to guest root (CAP_SYS_NICE): recorded and reported, the thread runs at "
                "SCHED_OTHER")
def sys_sched_setscheduler(call):
    pid, policy, param = call.int(0), call.int(1), call.args[2]
    if pid < 0 or not param or policy < 0:
        return ALLOW                    # EINVAL, from Linux itself
    tid = target_tid(call, pid)
    if tid is None:
        return ALLOW                    # ESRCH, or another sandbox's thread
    try:
        priority = read_priority(call, param)
    except OSError:
        return ALLOW                    # EFAULT
    return AllowThen(set_policy(tid, policy & ~SCHED_RESET_ON_FORK, priority,
                                bool(policy & SCHED_RESET_ON_FORK)))


@TABLE.emulated(FAMILY, "sched_setparam", "a thread's emulated real-time priority "
                "(sched_setscheduler) changes in the guest kernel's record")
def sys_sched_setparam(call):
    pid, param = call.int(0), call.args[1]
    if pid < 0 or not param:
        return ALLOW
    tid = target_tid(call, pid)
    emulated = emulated_policies(call.kernel).get(tid) if tid is not None else None
    if emulated is None:
        return ALLOW
    try:
        priority = read_priority(call, param)
    except OSError:
        return fail(errno.EFAULT)
    if not real_time(emulated[0], priority):
        return fail(errno.EINVAL)
    emulated_policies(call.kernel).set(tid, (emulated[0], priority, emulated[2]))
    return Return(0)


@TABLE.emulated(FAMILY, "sched_getscheduler", "reports a thread's emulated real-time "
                "policy")
def sys_sched_getscheduler(call):
    pid = call.int(0)
    tid = target_tid(call, pid) if pid >= 0 else None
    emulated = emulated_policies(call.kernel).get(tid) if tid is not None else None
    if emulated is None:
        return ALLOW
    return Return(emulated[0] | (SCHED_RESET_ON_FORK if emulated[2] else 0))


@TABLE.emulated(FAMILY, "sched_getparam", "reports a thread's emulated real-time priority")
def sys_sched_getparam(call):
    pid, param = call.int(0), call.args[1]
    tid = target_tid(call, pid) if pid >= 0 and param else None
    emulated = emulated_policies(call.kernel).get(tid) if tid is not None else None
    if emulated is None:
        return ALLOW
    try:
        call.write(param, SCHED_PARAM.pack(emulated[1]))
    except OSError:
        return fail(errno.EFAULT)
    return Return(0)


@TABLE.emulated(FAMILY, "sched_setattr", "SCHED_FIFO/SCHED_RR as sched_setscheduler's; "
                "SCHED_DEADLINE is not emulated")
def sys_sched_setattr(call):
    pid, addr = call.int(0), call.args[1]
    if pid < 0 or not addr:
        return ALLOW
    tid = target_tid(call, pid)
    if tid is None:
        return ALLOW
    try:
        attr = SCHED_ATTR.todict(call.read(addr, SCHED_ATTR.size))
    except OSError:
        return ALLOW        # EFAULT, or a smaller struct: the host's errno
    flags = attr["sched_flags"]
    if flags & (SCHED_FLAG_KEEP_POLICY | SCHED_FLAG_KEEP_PARAMS):
        return ALLOW        # (not emulated: changes nice or utilisation only)
    return AllowThen(set_policy(tid, attr["sched_policy"], attr["sched_priority"],
                                bool(flags & SCHED_FLAG_RESET_ON_FORK)))


@TABLE.emulated(FAMILY, "sched_getattr", "reports a thread's emulated real-time policy "
                "and priority in what the host wrote")
def sys_sched_getattr(call):
    pid, addr, size = call.int(0), call.args[1], call.uint(2)
    tid = target_tid(call, pid) if pid >= 0 and addr else None
    emulated = emulated_policies(call.kernel).get(tid) if tid is not None else None
    if emulated is None:
        return ALLOW
    policy, priority, reset = emulated

    def on_exit(call, result):
        if result != 0 or size < SCHED_ATTR.offset("sched_nice"):
            return None
        try:
            flags = SCHED_ATTR.get(call.read(addr, SCHED_ATTR.size), "sched_flags")
            flags = flags | SCHED_FLAG_RESET_ON_FORK if reset else \
                flags & ~SCHED_FLAG_RESET_ON_FORK
            call.write(addr + SCHED_ATTR.offset("sched_policy"), policy.to_bytes(4, "little"))
            call.write(addr + SCHED_ATTR.offset("sched_flags"), flags.to_bytes(8, "little"))
            call.write(addr + SCHED_ATTR.offset("sched_priority"),
                       priority.to_bytes(4, "little"))
        except OSError:
            return -errno.EFAULT
        return None
    return AllowThen(on_exit)


TABLE.passthrough(
    FAMILY,
    "sched_yield", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_setaffinity", "sched_getaffinity", "getcpu",
)
