"""The id calls of a guest whose ids the guest kernel emulates: --root with
one id (fakeids.py says what that is and is not).  Each handler is put in
front of its call in sandboxes with --root (TABLE.when); where the guest
has many real ids (the kernel keeps no FakeIds) it returns None and the
call stays what syscalls/process.py declares it: the host's."""
from errno import EFAULT, EINVAL, EPERM, ESRCH

from ...abi import MASK32
from ...abi.capset import CAP_USER_DATA, CAP_USER_HEADER, LINUX_CAPABILITY_VERSION_1, \
    LINUX_CAPABILITY_VERSION_2, LINUX_CAPABILITY_VERSION_3, PR_CAP_AMBIENT, \
    PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_GET_KEEPCAPS, PR_SET_KEEPCAPS
from ...abi.capability import CAP_KILL, CAP_SETPCAP
from ...abi.resource import ID_T
from ...abi.signal import SIGCONT, SIGRTMAX
from ..decisions import Return, fail
from ..fakeids import id_arg
from .. import procfs
from .registry import TABLE

WHY = "where the guest has one id (no subordinate ids), the guest kernel's emulated " \
    "credentials (fakeids.py)"
CAP_DATA = {LINUX_CAPABILITY_VERSION_1: 1, LINUX_CAPABILITY_VERSION_2: 2,
            LINUX_CAPABILITY_VERSION_3: 2}     # version -> data structs (32 bits each)


def cred_of(call):
    """The calling thread's emulated Cred, or None (the host's ids)."""
    ids = call.kernel.fake_ids
    return None if ids is None else ids.of(call.tid)


def result(err):
    return fail(err) if err else Return(0)


def read_id(call, name):
    """get[e][ug]id: the emulated id, never an error."""
    cred = cred_of(call)
    return None if cred is None else Return(getattr(cred, name))


@TABLE.when("root", "getuid", why=WHY)
def sys_getuid(call):
    return read_id(call, "uid")


@TABLE.when("root", "geteuid", why=WHY)
def sys_geteuid(call):
    return read_id(call, "euid")


@TABLE.when("root", "getgid", why=WHY)
def sys_getgid(call):
    return read_id(call, "gid")


@TABLE.when("root", "getegid", why=WHY)
def sys_getegid(call):
    return read_id(call, "egid")


def put_ids(call, values):
    """getres[ug]id: each id to its pointer, in order; EFAULT at the first
    that cannot be written."""
    for i, value in enumerate(values):
        try:
            call.write(call.ptr(i), ID_T.pack(value))
        except OSError:
            return fail(EFAULT)
    return Return(0)


@TABLE.when("root", "getresuid", why=WHY)
def sys_getresuid(call):
    cred = cred_of(call)
    return None if cred is None else put_ids(call, (cred.uid, cred.euid, cred.suid))


@TABLE.when("root", "getresgid", why=WHY)
def sys_getresgid(call):
    cred = cred_of(call)
    return None if cred is None else put_ids(call, (cred.gid, cred.egid, cred.sgid))


def change(call, nargs, how):
    """A set*id call: how(cred, ids...) with the call's first nargs
    arguments as ids; 0 or its errno."""
    cred = cred_of(call)
    if cred is None:
        return None
    return result(how(cred, *(id_arg(a) for a in call.args[:nargs])))


@TABLE.when("root", "setuid", why=WHY)
def sys_setuid(call):
    return change(call, 1, lambda cred, uid: cred.setuid(uid))


@TABLE.when("root", "setgid", why=WHY)
def sys_setgid(call):
    return change(call, 1, lambda cred, gid: cred.setgid(gid))


@TABLE.when("root", "setreuid", why=WHY)
def sys_setreuid(call):
    return change(call, 2, lambda cred, ruid, euid: cred.setreuid(ruid, euid))


@TABLE.when("root", "setregid", why=WHY)
def sys_setregid(call):
    return change(call, 2, lambda cred, rgid, egid: cred.setregid(rgid, egid))


@TABLE.when("root", "setresuid", why=WHY)
def sys_setresuid(call):
    return change(call, 3, lambda cred, ruid, euid, suid: cred.setresuid(ruid, euid, suid))


@TABLE.when("root", "setresgid", why=WHY)
def sys_setresgid(call):
    return change(call, 3, lambda cred, rgid, egid, sgid: cred.setresgid(rgid, egid, sgid))


@TABLE.when("root", "setfsuid", why=WHY)
def sys_setfsuid(call):
    """The old fsuid, whether or not it changed."""
    cred = cred_of(call)
    return None if cred is None else Return(cred.setfsuid(id_arg(call.args[0])))


@TABLE.when("root", "setfsgid", why=WHY)
def sys_setfsgid(call):
    cred = cred_of(call)
    return None if cred is None else Return(cred.setfsgid(id_arg(call.args[0])))


@TABLE.when("root", "getgroups", why=WHY)
def sys_getgroups(call):
    """size 0: how many; too small a size: EINVAL; else the list."""
    cred = cred_of(call)
    if cred is None:
        return None
    size, groups = call.int(0), cred.groups
    if size < 0:
        return fail(EINVAL)
    if size:
        if len(groups) > size:
            return fail(EINVAL)
        try:
            call.write(call.ptr(1), b"".join(ID_T.pack(g) for g in groups))
        except OSError:
            return fail(EFAULT)
    return Return(len(groups))


@TABLE.when("root", "setgroups", why=WHY)
def sys_setgroups(call):
    """CAP_SETGID (EPERM), at most NGROUPS_MAX (EINVAL), then the list."""
    cred = cred_of(call)
    if cred is None:
        return None
    size = call.int(0)
    err = cred.may_setgroups(size)
    if err:
        return fail(err)
    try:
        data = call.read(call.ptr(1), size * ID_T.size) if size else b""
    except OSError:
        return fail(EFAULT)
    return result(cred.setgroups([ID_T.get(data, "id", i * ID_T.size) for i in range(size)]))


def cap_header(call):
    """(version, pid, number of data structs) of capget/capset's header;
    an unknown version is answered as Linux's cap_validate_magic does (the
    version it prefers written back, EINVAL): count None then."""
    at = call.ptr(0)
    header = call.read(at, CAP_USER_HEADER.size)
    version, pid = CAP_USER_HEADER.unpack(header)
    count = CAP_DATA.get(version)
    if count is None:
        call.write(at, CAP_USER_HEADER.pack(LINUX_CAPABILITY_VERSION_3, pid))
    return version, pid, count


@TABLE.when("root", "capget", why=WHY)
def sys_capget(call):
    ids = call.kernel.fake_ids
    if ids is None:
        return None
    try:
        _version, pid, count = cap_header(call)
    except OSError:
        return fail(EFAULT)
    data = call.ptr(1)
    if data == 0:
        return Return(0)            # a probe of the version (EINVAL or not)
    if count is None:
        return fail(EINVAL)
    if pid < 0:
        return fail(EINVAL)
    tid = call.tid
    if pid and pid != call.guest_tid:
        tid = call.kernel.processes.host_tid(pid)
        if tid is None:
            return fail(ESRCH)
    cred = ids.of(tid)
    out = b"".join(CAP_USER_DATA.pack((cred.effective >> 32 * i) & MASK32,
                                      (cred.permitted >> 32 * i) & MASK32,
                                      (cred.inheritable >> 32 * i) & MASK32) for i in range(count))
    try:
        call.write(data, out)
    except OSError:
        return fail(EFAULT)
    return Return(0)


@TABLE.when("root", "capset", why=WHY)
def sys_capset(call):
    """Only the caller's own sets (EPERM for another's), by capset(2)'s
    rules against its emulated ones."""
    ids = call.kernel.fake_ids
    if ids is None:
        return None
    try:
        _version, pid, count = cap_header(call)
    except OSError:
        return fail(EFAULT)
    if count is None:
        return fail(EINVAL)
    if pid and pid != call.guest_tid:
        return fail(EPERM)
    try:
        raw = call.read(call.ptr(1), count * CAP_USER_DATA.size)
    except OSError:
        return fail(EFAULT)
    sets = [0, 0, 0]
    for i in range(count):
        for j, value in enumerate(CAP_USER_DATA.unpack_from(raw, i * CAP_USER_DATA.size)):
            sets[j] |= value << 32 * i
    status = procfs.status_fields(call.tid)
    bounding = int(status.get("CapBnd", "0"), 16)
    valid = ids.initial(status).permitted | bounding     # the capabilities Linux knows
    effective, permitted, inheritable = (s & valid for s in sets)
    return result(ids.of(call.tid).capset(effective, permitted, inheritable, bounding))


@TABLE.when("root", "prctl", why="where the guest has one id, PR_SET_KEEPCAPS and "
            "PR_GET_KEEPCAPS set and read the emulated credentials' flag, and "
            "PR_CAPBSET_DROP and PR_CAP_AMBIENT_RAISE need the emulated capabilities "
            "Linux asks for (fakeids.py)")
def sys_prctl(call):
    """The keep-capabilities flag is the emulated credentials' (the rest
    of prctl is the host's).  The bounding set is the host's own (the
    thread's real one, inherited and applied at execve by the host, read
    by fakeids.exec_done), but dropping from it takes the emulated
    CAP_SETPCAP, and raising an ambient capability the emulated
    permitted and inheritable ones (security/commoncap.c cap_task_prctl):
    the host thread holds its namespace's whole set whatever the guest's
    emulated ids."""
    option = call.int(0)
    if option not in (PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT):
        return None
    cred = cred_of(call)
    if cred is None:
        return None
    if option == PR_CAPBSET_DROP:
        return None if cred.capable(CAP_SETPCAP) else fail(EPERM)
    if option == PR_CAP_AMBIENT:
        cap = call.args[2]
        if call.args[1] != PR_CAP_AMBIENT_RAISE or cap > 63 or any(call.args[3:5]):
            return None             # the host's answer (EINVAL for a bad one)
        need = 1 << cap
        return None if cred.permitted & cred.inheritable & need else fail(EPERM)
    if option == PR_GET_KEEPCAPS:
        return Return(int(cred.keepcaps))
    keep = call.args[1]
    if keep > 1:
        return fail(EINVAL)
    cred.keepcaps = bool(keep)
    return Return(0)


# (signal argument, target argument) of the calls that send a signal to one
# thread or process; a process group or every process (kill's pid 0 or
# less) is left to the host
SIGNAL_TARGETS = {"kill": (1, 0), "tkill": (1, 0), "tgkill": (2, 1),
                  "rt_sigqueueinfo": (1, 0), "rt_tgsigqueueinfo": (2, 1)}


@TABLE.when("root", *SIGNAL_TARGETS, why="where the guest has one id, a signal to one "
            "process or thread is refused (EPERM) as Linux refuses it between the emulated "
            "ids (fakeids.py)")
def signal_permission(call):
    """kill(2)'s rule (kernel/signal.c check_kill_permission): the sender's
    real or effective uid is the target's real or saved one, or it has
    CAP_KILL, or the target is of its own process, or SIGCONT within its
    session.  Anything else (no such target, a bad signal) is the host's."""
    ids = call.kernel.fake_ids
    if ids is None:
        return None
    sig_arg, target_arg = SIGNAL_TARGETS[call.name]
    sig, target = call.int(sig_arg), call.int(target_arg)
    if target <= 0 or not 0 <= sig <= SIGRTMAX:
        return None
    host = call.kernel.processes.host_tid(target)
    if host is None:
        return None
    sender, receiver = ids.of(call.tid), ids.of(host)
    if sender.capable(CAP_KILL) or \
            {sender.uid, sender.euid} & {receiver.uid, receiver.suid}:
        return None
    mine, theirs = procfs.status_fields(call.tid), procfs.status_fields(host)
    if not theirs or mine.get("Tgid") == theirs.get("Tgid"):
        return None
    if sig == SIGCONT and mine.get("NSsid") == theirs.get("NSsid"):
        return None
    return fail(EPERM)
