"""Resource limits (Linux's kernel/sys.c): getrlimit, setrlimit, prlimit64.

Raising a hard limit needs CAP_SYS_RESOURCE of the host's namespace, and
guest root is root only inside the sandbox's user namespace: natively in
such a namespace, root's setrlimit above its hard limit fails with EPERM.
A program that runs as root expects it to work, so the guest kernel
emulates the raise for a guest that holds CAP_SYS_RESOURCE in its own
namespace:

* emulated: the limits asked (soft and hard) are recorded per process,
  inherited by the processes it then forks, and getrlimit and prlimit64
  (its old value too) report them; lowering an emulated hard limit again
  needs no capability, as lowering any hard limit (any guest may then
  raise it back up to the recorded one);
* not emulated: the raise itself.  The host keeps its hard limit (so the
  sandbox's own limits stay in force: --nofile, --memory's RLIMIT_DATA,
  --cpu-time's RLIMIT_CPU), and its soft limit becomes the one asked, at
  most that hard limit: the guest may believe in more than it gets, and
  meets the host's limit where it would have met its own.
  /proc/PID/limits shows the host's limits.

A limit the host accepts is the host's again (nothing emulated is left
for it).  The sandbox's own limits are never raised, not even in
appearance: RLIMIT_CORE (held at 0: no core is written into a host
directory), RLIMIT_MEMLOCK (set on purpose in every sandbox,
limits.memlock_limit: an emulated raise would be reported by getrlimit
while mlock still met the real limit with ENOMEM) and what --nofile,
--memory, --cpu-time set stay EPERM for guest root, as an
administrator's hard limits for a container's root.  RLIMIT_NOFILE above
fs.nr_open stays EPERM, for root too, as Linux; a guest without
CAP_SYS_RESOURCE keeps Linux's EPERM."""
import errno
import weakref

from ...abi.capability import CAP_SYS_RESOURCE
from ...abi.resource import RLIM_INFINITY, RLIMIT, RLIMIT_CORE, RLIMIT_MEMLOCK, RLIMIT_NOFILE
from ..decisions import ALLOW, AllowThen, Return, fail
from .registry import TABLE
from .sched import Inherited, capabilities

FAMILY = "rlimit"

_STATE = weakref.WeakKeyDictionary()


def emulated_limits(kernel):
    """The per-process emulated limits of the kernel's guest, by tgid:
    {resource: (soft, hard)} or None."""
    state = _STATE.get(kernel)
    if state is None:
        vfs = kernel.vfs

        def creator_process(thread):
            # a process's limits come from the process that forked it;
            # only a process's own leader holds them
            if not thread.parent or vfs.tgid_of(thread.tid) != thread.tid:
                return None
            return vfs.tgid_of(thread.parent)
        state = _STATE[kernel] = Inherited(kernel, creator_process)
    return state


def target_tgid(call, pid):
    """The host tgid of the process a pid argument names (0: the
    caller's), None if it is none of the sandbox's."""
    vfs = call.kernel.vfs
    if pid == 0:
        return vfs.tgid_of(call.tid)
    tid = call.kernel.processes.host_tid(pid)
    return vfs.tgid_of(tid) if tid is not None else None


def sandbox_limits(kernel):
    """The resources whose limits are the sandbox's own (core size 0,
    locked memory, and --nofile's, --memory's, --cpu-time's...): their
    hard limit is a real one for guest root too, as an administrator's for
    a container's root."""
    limits = kernel.limits
    return {RLIMIT_CORE, RLIMIT_MEMLOCK} | (limits.resources() if limits is not None
                                            else set())


def nr_open():
    """fs.nr_open: no RLIMIT_NOFILE above it, even for root."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def read_rlimit(call, addr):
    return RLIMIT.unpack(call.read(addr, RLIMIT.size))


def settle(tgid, resource_nr, new, old_addr):
    """on_exit of a host call that sets a limit: an EPERM for raising a
    hard limit becomes the emulated limit when the caller may (see the
    module's docstring); a success leaves the host's limit alone."""
    def on_exit(call, result):
        limits = emulated_limits(call.kernel)
        recorded = dict(limits.get(tgid) or {})
        emulated = recorded.get(resource_nr)
        if result == 0:
            if emulated is not None:
                if old_addr:
                    try:
                        call.write(old_addr, RLIMIT.pack(*emulated))
                    except OSError:
                        return -errno.EFAULT
                del recorded[resource_nr]
                limits.set(tgid, recorded or None)
            return None
        if result != -errno.EPERM:
            return None
        soft, hard = new
        if resource_nr == RLIMIT_NOFILE and hard > nr_open() or \
                resource_nr in sandbox_limits(call.kernel):
            return None
        if not capabilities(call.tid) & CAP_SYS_RESOURCE and \
                (emulated is None or hard > emulated[1]):
            return None
        import resource     # here, not at start-up
        try:
            # Python's RLIM_INFINITY is -1; the ABI's is all ones
            host = tuple(v & RLIM_INFINITY for v in resource.prlimit(tgid, resource_nr))
            asked = (min(soft, host[1]), host[1])
            resource.prlimit(tgid, resource_nr, tuple(
                resource.RLIM_INFINITY if v == RLIM_INFINITY else v for v in asked))
        except (OSError, ValueError, OverflowError):
            return None
        if old_addr:
            try:
                call.write(old_addr, RLIMIT.pack(*(emulated or host)))
            except OSError:
                return -errno.EFAULT
        recorded[resource_nr] = (soft, hard)
        limits.set(tgid, recorded)
        return 0
    return on_exit


def report(call, tgid, resource_nr, addr):
    """The emulated limit written at addr (Return(0)), or None when the
    host's is the guest's."""
    emulated = (emulated_limits(call.kernel).get(tgid) or {}).get(resource_nr)
    if emulated is None:
        return None
    try:
        call.write(addr, RLIMIT.pack(*emulated))
    except OSError:
        return fail(errno.EFAULT)
    return Return(0)


@TABLE.emulated(FAMILY, "getrlimit", "reports a hard limit guest root raised (emulated: "
                "the host keeps its own)")
def sys_getrlimit(call):
    if not call.args[1]:
        return ALLOW
    return report(call, target_tgid(call, 0), call.uint(0), call.args[1]) or ALLOW


@TABLE.emulated(FAMILY, "setrlimit", "guest root may raise a hard limit: recorded and "
                "reported, the host keeps its own")
def sys_setrlimit(call):
    try:
        new = read_rlimit(call, call.args[1])
    except OSError:
        return ALLOW                    # EFAULT, from Linux itself
    return AllowThen(settle(target_tgid(call, 0), call.uint(0), new, 0))


@TABLE.emulated(FAMILY, "prlimit64", "as getrlimit and setrlimit, for the caller or "
                "another process of the sandbox")
def sys_prlimit64(call):
    pid, resource_nr, new_addr, old_addr = call.int(0), call.uint(1), call.args[2], \
        call.args[3]
    tgid = target_tgid(call, pid) if pid >= 0 else None
    if tgid is None:
        return ALLOW
    if not new_addr:
        if not old_addr:
            return ALLOW
        return report(call, tgid, resource_nr, old_addr) or ALLOW
    try:
        new = read_rlimit(call, new_addr)
    except OSError:
        return ALLOW
    return AllowThen(settle(tgid, resource_nr, new, old_addr))
