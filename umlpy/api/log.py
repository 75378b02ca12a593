"""``umlpy run --log-level LEVEL``: the guest kernel's decisions as log
records of the "umlpy" logger (``umlpy.kernel``: the policy, each exec,
every decided call and its decision; ``umlpy.vfs``: each path
resolution).  A call and a value it returns are rendered by umlpy
trace's decoders (trace/decode.py, through trace/format.py), as
``umlpy trace`` prints them; the line around them is this module's:

    umlpy.kernel DEBUG: [pid 1] openat(AT_FDCWD, "/etc/hostname", O_RDONLY) → the guest ...

The ``logging`` module is imported only when logging is installed.
"""
import os
import sys

from ..abi.fcntl import AT_FDCWD
from ..errors import BadInput
from ..kernel.decisions import ALLOW, AllowThen, Deferred, Install, Return, Rewrite
from ..kernel.syscalls.names import SYSCALL_NAMES
from .handlers import wrap_method

__all__ = ["LEVELS", "level_of", "install_logging", "format_call", "format_decision"]


LEVELS = ("critical", "error", "warning", "info", "debug")


def level_of(name):
    import logging
    if isinstance(name, int):
        return name
    if str(name).lower() not in LEVELS:
        raise BadInput(f"--log-level {name}: expected one of {', '.join(LEVELS)}")
    return getattr(logging, str(name).upper())


def install_logging(kernel, level_name):
    """The guest kernel's decisions as log records of the "umlpy" logger:
    info: the policy, each exec and the end; debug: every decided call
    with its decision, and each path resolution (guest path -> host
    path).  Installed only if the logger is enabled at info or below."""
    import logging
    log = logging.getLogger("umlpy")
    if level_name is not None:
        log.setLevel(level_of(level_name))
        if not log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
            log.addHandler(handler)
            log.propagate = False
    if not log.isEnabledFor(logging.INFO):
        return
    klog = logging.getLogger("umlpy.kernel")
    vlog = logging.getLogger("umlpy.vfs")
    debug = klog.isEnabledFor(logging.DEBUG)
    vdebug = vlog.isEnabledFor(logging.DEBUG)
    kernel.logs_every_call = debug or vdebug
    dispatcher = kernel.dispatcher
    decide = dispatcher.decide
    state = {"started": False}

    def started():
        state["started"] = True
        _log_policy(kernel, klog)
        if vdebug and kernel.vfs is not None:
            _log_resolution(kernel, vlog)

    def logged(call):
        if not state["started"]:
            started()
        if not debug:
            return decide(call)
        before = format_call(kernel, call)
        pid = kernel.processes.guest_tid(call.tid)
        try:
            decision = decide(call)
        except BaseException as e:
            klog.debug("[pid %s] %s: the guest kernel's handler raised %s", pid, before,
                       type(e).__name__)
            raise
        klog.debug("[pid %s] %s → %s", pid, before, format_decision(kernel, call, decision))
        return decision
    dispatcher.decide = logged

    def on_exec(tid, former_tid):
        exe = kernel.vfs.exe.get(kernel.vfs.tgids.get(tid, tid)) if kernel.vfs else None
        klog.info("[pid %s] exec %s", kernel.processes.guest_tid(tid), exe or "?")
    wrap_method(kernel, "_fs_exec", on_exec)

    def on_exit(tid, status):
        if tid == kernel.processes.main:
            from ..kernel import exit_status_of
            klog.info("the first process (host pid %d) ended: status %d; the sandbox ends",
                      tid, exit_status_of(kernel.main_status))
    wrap_method(kernel, "_on_exit", on_exit)


def _log_policy(kernel, log):
    from ..kernel.policy import Action
    policy = kernel.policy()
    counts = {Action.ALLOW: 0, Action.ERRNO: 0, Action.PYTHON: 0, Action.NOTIFY: 0}
    guarded = 0
    for nr, rule in enumerate(policy):
        if nr not in SYSCALL_NAMES:
            continue
        # a timed wait runs on the host; it stops for the native tracer alone
        counts[Action.ALLOW if rule.action == Action.TIMED else rule.action] += 1
        guarded += rule.guard is not None or rule.wait is not None
    hooked = sorted(SYSCALL_NAMES.get(nr, str(nr)) for nr in kernel.dispatcher.hooks)
    log.info("policy: mode %s; %d calls run on the host without a stop (%d of them "
             "stop when a guard matches), %d fail in the filter, %d stop for the guest "
             "kernel, %d are served by it without a stop%s", kernel.mode, counts[Action.ALLOW],
             guarded, counts[Action.ERRNO], counts[Action.PYTHON], counts[Action.NOTIFY],
             f" (hooked: {', '.join(hooked[:12])}"
             f"{', ...' if len(hooked) > 12 else ''})" if hooked else "")
    o = kernel.config
    root = o.rootfs or "the host's tree (read-only)"
    log.info("filesystem: root %s%s, upper %s; net %s%s", root,
             f" + {len(o.layers)} layer(s)" if o.layers else "",
             o.upper or "throwaway",
             kernel.net.mode, "; limits " + ", ".join(
                 f"{k}={v}" for k, v in vars(kernel.limits).items() if v is not None)
             if kernel.limits is not None else "")


def _log_resolution(kernel, log):
    vfs = kernel.vfs
    resolve = vfs.resolve

    def resolved(task, dirfd, path, follow=True, **how):
        where = "" if path.startswith("/") else \
            " from the cwd" if dirfd == AT_FDCWD else f" from dirfd {dirfd}"
        try:
            res = resolve(task, dirfd, path, follow, **how)
        except OSError as e:
            from ..trace.consts import errno_name
            log.debug("resolve %r%s → %s", path, where, errno_name(e.errno))
            raise
        log.debug("resolve %r%s → %s → %s", path, where, res.path, _host_of(res))
        return res
    vfs.resolve = resolved


def _host_of(res):
    """The host object behind a lookup, where naming it has no side effect
    (an image file is materialised only when the host must touch it)."""
    from ..kernel.vfs.fs import HostTreeFS
    from ..kernel.vfs.union import IN_UPPER, UnionFS
    d = res.dentry
    if d is None:
        return "missing"
    fs = d.fs
    try:
        if isinstance(fs, HostTreeFS):
            return f"host {fs.host_path(d)}"
        if isinstance(fs, UnionFS):
            if d.flags & IN_UPPER:
                return f"upper {fs._upper_host(d.rel)}"
            if isinstance(fs.lower, HostTreeFS):
                return f"lower {fs.lower.host_path(fs._lower_dentry(d))}"
            return f"lower {fs.lower.fstype}:{d.rel or '/'}"
    except OSError:
        pass
    return f"{fs.fstype}:{d.rel or '/'}"


# ---- calls and decisions, as umlpy trace renders them -----------------------------

class _AsRewritten:
    """call's thread and memory, with a rewrite's arguments."""
    __slots__ = ("call", "args")

    def __init__(self, call, args):
        self.call, self.args = call, tuple(args)

    def read(self, addr, size):
        return self.call.read(addr, size)

    def read_some(self, addr, size):
        return self.call.read_some(addr, size)

    def read_str(self, addr, limit=4096):
        return self.call.read_str(addr, limit)


def format_call(kernel, call, nr=None, args=None):
    """name(arg, ...) as umlpy trace decodes a call at its entry (paths
    and strings read from the guest's memory, flags by name); what the
    kernel would write is shown by address.  nr, args: a rewrite's."""
    from ..trace.format import call_text
    nr = call.nr if nr is None else nr
    if args is not None:
        call = _AsRewritten(call, args)
    return call_text(SYSCALL_NAMES.get(nr, f"syscall_{nr}"), call)


def format_decision(kernel, call, decision):
    if decision is ALLOW:
        return "passes to the host"
    if isinstance(decision, Return):
        from ..trace.format import result_value_text
        return f"= {result_value_text(call.name, call, decision.value)}; " \
            "emulated: the host never runs it"
    if isinstance(decision, Rewrite):
        return "host runs " + format_call(kernel, call, decision.nr, decision.args)
    if isinstance(decision, AllowThen):
        rw = decision.rewrite
        first = "host runs " + format_call(kernel, call, rw.nr, rw.args) if rw is not None \
            else "passes to the host"
        return first + ", then the guest kernel sees the result"
    if isinstance(decision, Install):
        try:
            what = os.readlink(f"/proc/self/fd/{decision.fd}")
        except OSError:
            what = f"fd {decision.fd}"
        return f"the guest kernel opened {what}; the caller gets the fd"
    if isinstance(decision, Deferred):
        return "the guest kernel opens it on a thread of its own (it waits for the other end)"
    return repr(decision)
