"""Signals, timers that deliver signals, and sleeping (the signal family).

Sending a signal needs no decision, except SIGKILL aimed at the sandbox's
init: the host kernel protects a pid-namespace init from it, an ordinary
process (which the guest's first process is, natively) is not protected,
so the guest kernel delivers it from outside.
"""
import os
from errno import EAGAIN, EPERM

from ...abi.signal import SIGKILL
from ..decisions import ALLOW, AllowThen, fail
from .. import procfs
from .registry import TABLE, Guard, TimedWait

FAMILY = "signal"

# sigtimedwait fails with EINTR (never restarted): its deadline is the
# native tracer's to keep (registry.TimedWait)
TABLE.timed_wait(FAMILY, "rt_sigtimedwait", TimedWait(2, timespec=True,
                                                      timed_out=-EAGAIN))

TABLE.passthrough(
    FAMILY,
    "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigsuspend",
    "rt_sigreturn", "sigaltstack", "restart_syscall",
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


# --pid-host: the guest shares the host's pid space, where umlpy and its
# opener are processes like any other; one of the guest's uid (umlpy run
# by an ordinary user, or the opener, which carries the guest's ids) could
# be stopped or killed, and with it the sandbox's supervision (its
# watchdog) or every later /proc open.  Such signals fail with EPERM, as
# from a process that may not signal them; kill(-1), which reaches every
# process of the guest's uid, umlpy's included, fails so too.
def _umlpys_own(kernel):
    """(tids, process groups) of umlpy and its helper processes."""
    me = os.getpid()
    try:
        tids = {int(t) for t in os.listdir(f"/proc/{me}/task")}
    except OSError:
        tids = {me}
    groups = {os.getpgrp()}
    opener = kernel.opener.pid if kernel.opener is not None else None
    if opener is not None:
        tids.add(opener)
        group = procfs.process_group(opener)
        if group is not None:
            groups.add(group)
    return tids, groups


def _aims_at_umlpy(call):
    tids, groups = _umlpys_own(call.kernel)
    name = call.name
    if name == "kill":
        pid = call.int(0)
        if pid == -1:
            return True
        if pid == 0:
            return procfs.process_group(call.tid) in groups
        return -pid in groups if pid < 0 else pid in tids
    if name in ("tkill", "rt_sigqueueinfo"):
        return call.int(0) in tids
    if name in ("tgkill", "rt_tgsigqueueinfo"):
        return call.int(0) in tids or call.int(1) in tids
    if name == "pidfd_send_signal":
        return procfs.pidfd_target(call.tid, call.fd(0)) in tids
    return False


def refuse_signals_to_umlpy(call):
    return fail(EPERM) if _aims_at_umlpy(call) else None


TABLE.when("pid_host", *_SIG_ARG, why="refused (EPERM) when aimed at umlpy or its opener, "
           "which share the host's pid space")(refuse_signals_to_umlpy)
