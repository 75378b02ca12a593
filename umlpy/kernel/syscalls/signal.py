"""Signals, timers that deliver signals, and sleeping (the signal family).

Sending a signal needs no decision, except SIGKILL aimed at the sandbox's
init: the host kernel protects a pid-namespace init from it, an ordinary
process (which the guest's first process is, natively) is not protected,
so the guest kernel delivers it from outside.
"""
from ...abi.signal import SIGKILL
from ..decisions import ALLOW, AllowThen
from .. import procfs
from .registry import TABLE, Guard

FAMILY = "signal"

TABLE.passthrough(
    FAMILY,
    "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "pause", "alarm", "setitimer", "getitimer",
    "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun",
    "timer_delete",
)


def targets_init(call):
    """Does this signal-sending call reach the sandbox's init?"""
    kernel = call.kernel
    init = kernel.init_host_pid
    if init is None:
        return False
    name = call.name
    if name == "kill":
        pid = call.int(0)
        if pid == 1:
            return True
        if pid == 0:
            return procfs.process_group(call.tid) == procfs.process_group(init)
        if pid == -1:       # every process but the caller and the namespace's init
            return False
        if pid < -1:
            pgid = procfs.status_fields(init).get("NSpgid", "")
            return procfs.innermost_ids(pgid) == -pid
        return False
    if name in ("tkill", "rt_sigqueueinfo"):
        return call.int(0) == 1
    if name in ("tgkill", "rt_tgsigqueueinfo"):
        return call.int(1) == 1
    if name == "pidfd_send_signal":
        return procfs.pidfd_target(call.tid, call.fd(0)) == init
    return False


def send_signal(call):
    if not targets_init(call):
        return ALLOW

    def deliver_to_init(call, result):
        if result == 0:
            call.kernel.kill_init(SIGKILL)
        return None
    return AllowThen(deliver_to_init)


_SIG_ARG = {"kill": 1, "tkill": 1, "tgkill": 2, "rt_sigqueueinfo": 1,
            "rt_tgsigqueueinfo": 2, "pidfd_send_signal": 1}

for _name, _arg in _SIG_ARG.items():
    TABLE.guarded(FAMILY, _name, Guard(_arg, value=SIGKILL),
                  "SIGKILL may be aimed at the sandbox's init")(send_signal)
