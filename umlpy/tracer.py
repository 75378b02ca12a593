"""Python face of the native tracer (umlpy/_native/tracer.c)."""
import errno as _errno
import os

from ._native._tracer import ffi, lib
from .abi.args import MASK64
from .errors import UmlpyError

EV_NONE = lib.UMLPY_EV_NONE
EV_SYSCALL = lib.UMLPY_EV_SYSCALL
EV_SYSCALL_EXIT = lib.UMLPY_EV_SYSCALL_EXIT
EV_CHILD = lib.UMLPY_EV_CHILD
EV_EXEC = lib.UMLPY_EV_EXEC
EV_EXIT = lib.UMLPY_EV_EXIT
EV_NEW = lib.UMLPY_EV_NEW
EV_SIGNAL = lib.UMLPY_EV_SIGNAL
EV_GROUP_STOP = lib.UMLPY_EV_GROUP_STOP

SETUP_STAGES = {
    lib.UMLPY_SETUP_SYNC: "start",
    lib.UMLPY_SETUP_USERNS: "user namespace",
    lib.UMLPY_SETUP_CHROOT: "chroot",
    lib.UMLPY_SETUP_CHDIR: "chdir",
    lib.UMLPY_SETUP_SECCOMP: "seccomp",
    lib.UMLPY_SETUP_EXEC: "exec",
    lib.UMLPY_SETUP_MOUNT_PROC: "mounting the sandbox's /proc",
    lib.UMLPY_SETUP_HOSTNAME: "setting the hostname",
    lib.UMLPY_SETUP_ID_MAP: "writing the user namespace's id maps",
    lib.UMLPY_SETUP_SETUID: "dropping host privileges",
    lib.UMLPY_SETUP_NET: "bringing up the sandbox's loopback",
    lib.UMLPY_SETUP_RLIMIT: "setting resource limits",
}

NEWNS = lib.UMLPY_NEWNS
NEWUTS = lib.UMLPY_NEWUTS
NEWIPC = lib.UMLPY_NEWIPC
NEWUSER = lib.UMLPY_NEWUSER
NEWPID = lib.UMLPY_NEWPID
NEWNET = lib.UMLPY_NEWNET


class TracerError(OSError):
    """A ptrace operation on a guest thread failed."""


def _check(ret, what):
    if ret < 0:
        raise TracerError(-ret, f"{what}: {os.strerror(-ret)}")
    return ret


class GuestStartError(UmlpyError, OSError):
    """The guest's first process could not be made: an OSError with its
    errno for the API, one line for the command."""

    def __str__(self):
        return self.strerror


def _traced_hint(err):
    """A tracer cannot trace while it is traced itself (strace, gdb)."""
    if err != _errno.EPERM:
        return ""
    try:
        with open("/proc/self/status") as f:
            traced = any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)
    except OSError:
        return ""
    return " (umlpy is traced itself: it runs no guest under strace or a debugger)" \
        if traced else ""


class SetupFailure(Exception):
    """The guest's child process could not get as far as exec."""

    def __init__(self, stage, err):
        self.stage = stage
        self.errno = err
        super().__init__(f"{SETUP_STAGES.get(stage, stage)}: {os.strerror(err)}")


class Tracer:
    """One ptrace tracer.  All calls must come from the thread that
    spawned the guest: ptrace ties tracees to the tracing thread."""

    def __init__(self):
        self._t = ffi.gc(lib.umlpy_tracer_new(), lib.umlpy_tracer_free)
        if self._t == ffi.NULL:
            raise MemoryError("cannot allocate the tracer")
        self.ev = ffi.new("struct umlpy_event *")
        self._regs = ffi.new("struct umlpy_regs *")
        self._args = ffi.new("unsigned long[6]")
        self._result = ffi.new("long *")

    # policy -------------------------------------------------------------
    def set_action(self, nr, action, err=0):
        lib.umlpy_set_action(self._t, nr, int(action), err)

    def set_wait(self, nr, how):
        """nr is a timed wait (how: TimedWait.code(); -1: none): its
        deadline is kept whatever its action (tracer.c, timed waits)."""
        lib.umlpy_set_wait(self._t, nr, how)

    def set_spin(self, spin_ns):
        """Poll for the next stop this long before sleeping (0: never)."""
        lib.umlpy_set_spin(self._t, int(spin_ns))

    def report_signals(self, on):
        lib.umlpy_set_report_signals(self._t, 1 if on else 0)

    def ignore_by_default(self, mask):
        """The signals whose default action is to ignore them (bit sig-1):
        one the guest would not have received natively is dropped at its
        delivery stop, and the call it woke goes on."""
        lib.umlpy_set_ignored_by_default(self._t, mask)

    @staticmethod
    def harden_self():
        """The tracer's process becomes non-dumpable: out of reach of
        ptrace, process_vm_writev and pidfd_getfd from its own user."""
        _check(lib.umlpy_harden_self(), "prctl(PR_SET_DUMPABLE)")

    # spawning -----------------------------------------------------------
    def spawn(self, path, argv, env, bpf, cwd=None, root=None, clone_flags=0,
              uid_inside=-1, gid_inside=-1, uid_outside=-1, gid_outside=-1,
              switch_ids=False, hostname=None, mount_proc=False,
              new_pgrp=False, tty_fd=-1, rlimits=(), notify=False, preserve_fds=0,
              uid_map=None, gid_map=None):
        """Start argv under this tracer; returns (host pid, status fd).
        notify: the filter sends some calls to a user-notification
        listener, whose copy is left in self.listener (None if the child
        failed before it had one).  preserve_fds: our fds 3..3+N-1 reach
        the guest; every other one above 2 is closed at its exec."""
        keep = []

        def cstr(s):
            b = ffi.new("char[]", os.fsencode(s))
            keep.append(b)
            return b

        def cvec(items):
            v = ffi.new("char *[]", len(items) + 1)
            for i, s in enumerate(items):
                v[i] = cstr(s)
            v[len(items)] = ffi.NULL
            return v

        c_argv = cvec(argv)
        c_env = cvec([f"{k}={v}" for k, v in env.items()])
        status_fd = ffi.new("int *", -1)
        opts = ffi.new("struct umlpy_spawn_opts *")
        opts.cwd = cstr(cwd) if cwd is not None else ffi.NULL
        opts.root = cstr(root) if root is not None else ffi.NULL
        opts.clone_flags = clone_flags
        opts.uid_inside = uid_inside
        opts.gid_inside = gid_inside
        opts.uid_outside = uid_outside
        opts.gid_outside = gid_outside
        opts.switch_ids = 1 if switch_ids else 0
        opts.uid_map = cstr(uid_map) if uid_map else ffi.NULL
        opts.gid_map = cstr(gid_map) if gid_map else ffi.NULL
        opts.hostname = cstr(hostname) if hostname is not None else ffi.NULL
        opts.mount_proc = 1 if mount_proc else 0
        opts.new_pgrp = 1 if new_pgrp else 0
        opts.tty_fd = tty_fd
        if len(rlimits) > 6:
            raise ValueError("at most 6 resource limits")
        opts.nrlimits = len(rlimits)
        for i, (resource, value) in enumerate(rlimits):
            opts.rlimit_resource[i] = resource
            opts.rlimit_value[i] = value
        opts.notify = 1 if notify else 0
        opts.preserve_fds = preserve_fds
        listener = ffi.new("int *", -1)
        pid = lib.umlpy_spawn_notified(self._t, cstr(path), c_argv, c_env, opts,
                                       bpf, len(bpf) // 8, status_fd, listener)
        self.listener = listener[0] if listener[0] >= 0 else None
        if pid < 0:
            raise GuestStartError(-pid, f"umlpy: cannot start the guest: {os.strerror(-pid)}"
                                        f"{_traced_hint(-pid)}")
        return pid, status_fd[0]

    @staticmethod
    def read_setup_failure(status_fd):
        """The child's set-up failure, or None if it reached exec."""
        try:
            data = os.read(status_fd, 8)
        finally:
            os.close(status_fd)
        if len(data) < 8:
            return None
        stage = int.from_bytes(data[:4], "little", signed=True)
        err = int.from_bytes(data[4:], "little", signed=True)
        return SetupFailure(stage, err)

    def set_init_pid(self, pid):
        lib.umlpy_set_init_pid(self._t, pid)

    def report_init_stops(self, on):
        lib.umlpy_report_init_stops(self._t, 1 if on else 0)

    def listen(self, tid):
        return lib.umlpy_listen(self._t, tid)

    @staticmethod
    def set_forward_mode(tty_to_group):
        lib.umlpy_set_forward_mode(1 if tty_to_group else 0)

    @staticmethod
    def forward_signals_to(pid):
        lib.umlpy_forward_signals_to(pid)

    @staticmethod
    def restore_signals():
        lib.umlpy_restore_signals()

    # the loop -----------------------------------------------------------
    def wait(self):
        """Wait for the next event that needs Python; returns its kind
        (details in self.ev)."""
        r = lib.umlpy_wait(self._t, self.ev)
        if r < 0:
            raise TracerError(-r, f"waitpid: {os.strerror(-r)}")
        return self.ev.kind

    def cont(self, tid, sig=0):
        return lib.umlpy_cont(self._t, tid, sig)

    def cont_to_exit(self, tid):
        return lib.umlpy_cont_to_exit(self._t, tid)

    def skip(self, tid, value):
        return lib.umlpy_skip(self._t, tid, value)

    def set_retval(self, tid, value):
        return lib.umlpy_set_retval(tid, value)

    def set_syscall(self, tid, nr, args):
        a = self._args
        for i in range(6):
            a[i] = (args[i] if i < len(args) else 0) & MASK64
        return _check(lib.umlpy_set_syscall(tid, nr, a), "set syscall")

    def stop_kind(self, tid):
        return lib.umlpy_stop_kind(self._t, tid)

    # registers and memory -------------------------------------------------
    def get_regs(self, tid):
        regs = ffi.new("struct umlpy_regs *")
        _check(lib.umlpy_get_regs(tid, regs), "PTRACE_GETREGS")
        return regs

    def set_regs(self, tid, regs):
        _check(lib.umlpy_set_regs(tid, regs), "PTRACE_SETREGS")

    def read_mem(self, tid, addr, size):
        buf = ffi.new("char[]", size)
        n = lib.umlpy_read_mem(tid, addr, buf, size)
        _check(n, f"read guest memory at {addr:#x}")
        return ffi.buffer(buf, n)[:]

    def write_mem(self, tid, addr, data):
        n = lib.umlpy_write_mem(tid, addr, data, len(data))
        return _check(n, f"write guest memory at {addr:#x}")

    def write_user(self, tid, addr, data):
        """Write where the guest may write (not read-only pages)."""
        n = lib.umlpy_write_user(tid, addr, data, len(data))
        return _check(n, f"write guest memory at {addr:#x}")

    def read_str(self, tid, addr, limit=4096):
        """A NUL-terminated string from guest memory, as bytes."""
        buf = ffi.new("char[]", limit)
        n = lib.umlpy_read_str(tid, addr, buf, limit)
        if n < 0:
            raise TracerError(-n, f"read guest string at {addr:#x}: {os.strerror(-n)}")
        return ffi.buffer(buf, n)[:]

    def to_syscall_exit(self, tid):
        """From the event stop of a fork, on to the fork's syscall-exit
        stop (where inject_syscall works) before it returns."""
        _check(lib.umlpy_to_syscall_exit(self._t, tid), "run to the call's exit")

    def inject_syscall(self, tid, nr, args):
        """Run nr(*args) in the stopped thread tid; returns the raw result
        (negative errno on failure).  tid must sit in a seccomp stop or a
        syscall-exit stop, and is left in it, registers unchanged."""
        a = self._args
        for i in range(6):
            a[i] = (args[i] if i < len(args) else 0) & MASK64
        r = lib.umlpy_inject_syscall(self._t, tid, nr, a, self._result)
        if r == -_errno.EINVAL:
            raise TracerError(_errno.EINVAL, "inject: the thread must sit in a "
                              "syscall stop, and the call must return to it")
        _check(r, "inject syscall")
        return self._result[0]


class Notifier:
    """The native user-notification server over one listener fd (which it
    owns and closes).  next() serves in C what the path cache answers and
    returns the first call Python must decide: call it from one thread."""

    def __init__(self, listener_fd, tracer):
        self._n = ffi.gc(lib.umlpy_notifier_new(listener_fd, lib.umlpy_tracer_cache(tracer._t)),
                         lib.umlpy_notifier_free)
        if self._n == ffi.NULL:
            os.close(listener_fd)
            raise MemoryError("umlpy_notifier_new")
        self.req = ffi.new("struct umlpy_notif_req *")

    def identity(self, uid, gid, groups=()):
        groups = list(groups)
        arr = ffi.new("unsigned int[]", groups or [0])
        _check(lib.umlpy_notifier_identity(self._n, uid, gid, arr, len(groups)),
               "notifier identity")

    def next(self):
        """True when self.req holds a call for Python; False once stopped."""
        r = lib.umlpy_notifier_next(self._n, self.req)
        if r < 0:
            raise OSError(-r, f"seccomp listener: {os.strerror(-r)}")
        return r == 1

    def valid(self, req_id):
        return bool(lib.umlpy_notifier_valid(self._n, req_id))

    def reply(self, req_id, value):
        return lib.umlpy_notifier_reply(self._n, req_id, value)

    def install(self, req_id, fd, cloexec):
        """fd becomes the caller's; it is closed here (by C, at once)."""
        return lib.umlpy_notifier_install(self._n, req_id, fd, 1 if cloexec else 0)

    def stop(self):
        lib.umlpy_notifier_stop(self._n)

    def _counts(self):
        out = ffi.new("unsigned long[4]")
        lib.umlpy_notifier_counts(self._n, out)
        return out

    def counts(self):
        """(opens answered in C, calls handed to Python)."""
        out = self._counts()
        return out[0], out[1]

    @property
    def empty_receives(self):
        """Receives that found no call to serve."""
        return self._counts()[3]

    @property
    def sync_wake(self):
        """Whether the kernel wakes the server on the caller's CPU."""
        return bool(self._counts()[2])
