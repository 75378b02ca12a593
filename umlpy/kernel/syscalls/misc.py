"""Time, system information, System V and POSIX IPC, keys, and the calls
that administer the host (the misc family)."""
from errno import EAGAIN, EFAULT, EPERM

from ..._native._tracer import ffi, lib
from ...abi.sysinfo import SYSINFO
from ...abi.utsname import UTSNAME, utsname_field
from ..decisions import AllowThen, Return, fail
from .names import SYSCALL_NUMBERS
from .registry import TABLE, TimedWait

FAMILY = "misc"

# semtimedop fails with EINTR (never restarted): its deadline is the
# native tracer's to keep (registry.TimedWait)
TABLE.timed_wait(FAMILY, "semtimedop", TimedWait(3, timespec=True, timed_out=-EAGAIN))

TABLE.passthrough(
    FAMILY,
    "uname", "getrandom",
    "gettimeofday", "time", "clock_gettime", "clock_getres",
    "clock_nanosleep", "nanosleep",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
    "mq_getsetattr",
    "perf_event_open",
)

TABLE.unsupported(
    FAMILY, "the kernel's keyrings are the host user's (and umlpy's session keyring): "
    "the guest has none", "add_key", "request_key", "keyctl",
)

TABLE.denied(
    FAMILY, EPERM, "changes the host itself",
    "reboot", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
    "syslog", "bpf",
)

TABLE.unsupported(
    FAMILY, "not implemented by Linux on x86_64 (removed or never wired)",
    "_sysctl", "create_module", "get_kernel_syms", "query_module",
    "nfsservctl", "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security",
    "vserver", "epoll_ctl_old", "epoll_wait_old", "uselib",
    "set_thread_area", "get_thread_area", "lookup_dcookie",
)


SYS_SYSINFO = SYSCALL_NUMBERS["sysinfo"]


@TABLE.emulated(FAMILY, "sysinfo", "the sandbox's uptime and threads; with --memory, its "
                "limit and the guests' own memory")
def sys_sysinfo(call):
    host = ffi.new(f"char[{SYSINFO.size}]")
    r = lib.umlpy_syscall6(SYS_SYSINFO, int(ffi.cast("intptr_t", host)), 0, 0, 0, 0, 0)
    if r < 0:
        return fail(-r)
    data = call.kernel.system.sysinfo(ffi.buffer(host)[:])
    try:
        call.write(call.args[0], data)
    except OSError:
        return fail(EFAULT)
    return Return(0)


# uname runs on the host; an option that names one of its fields has it
# rewritten in the guest's buffer on the way out.  option -> utsname field
UNAME_FIELDS = {"kernel_release": "release", "machine": "machine"}


@TABLE.when("kernel_release", "uname", why="the release field says --kernel-release")
@TABLE.when("machine", "uname", why="the machine field says --machine")
def uname_fields(call):
    return AllowThen(_patch_uname)


def _patch_uname(call, result):
    if result != 0:
        return None
    config = call.kernel.config
    for option, field in UNAME_FIELDS.items():
        value = getattr(config, option)
        if value is not None:
            try:
                call.write(call.args[0] + UTSNAME.offset(field), utsname_field(value))
            except OSError:
                return -EFAULT
    return None
