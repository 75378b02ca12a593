"""``Sandbox``: umlpy's guest kernel as a Python API for experiments.

    from umlpy import Sandbox

    sb = Sandbox(net="none", memory="256M")

    @sb.syscall("openat")
    def log_open(call):
        print(call.pid, call.path(1))       # None: let the guest kernel decide

    result = sb.run(["cat", "/etc/hostname"], capture=True)
    result.status, result.stdout, result.stats.calls["openat"]

A handler sees each call before the guest kernel does, and may let it
pass (None or ``ALLOW``), deny it (``call.deny(errno)``), emulate it
(``call.emulate(value)``: the host never runs it), or change it
(``call.rewrite(...)``, or return a ``Rewrite``).  Handlers compose with
the guest kernel instead of bypassing it: a changed call is decided by
the guest kernel as if the guest had made it (its hooks, then the
syscall table, exactly as ``netrate.py`` re-decides a call), so a new
path goes through the guest VFS like any other and can never name a
host path.  Denying and emulating skip the host call, which is always
safe.

The same module provides ``umlpy run --break`` (pdb inside the guest
kernel) and ``--log-level`` (the guest kernel's decisions through the
``logging`` module, under the "umlpy" logger); both are installed on a
kernel only when asked for, so a run without them pays nothing.
"""
import errno as _errno
import os
import struct
import sys

from .abi import s32
from .errors import BadInput
from .kernel.decisions import ALLOW, AllowThen, Deferred, Install, Return, Rewrite
from .kernel.syscalls.names import SYSCALL_NAMES, SYSCALL_NUMBERS, prototype

__all__ = ["Sandbox", "Result", "Stats", "Call", "ALLOW", "Rewrite", "install_debugging"]

# Calls the vDSO answers without entering the kernel (x86_64): a handler on
# one of them only sees calls if the guest does not use the vDSO.
VDSO_CALLS = frozenset({"clock_gettime", "clock_getres", "gettimeofday", "time", "getcpu"})

# A handler's new string/bytes arguments go to the top of the calling
# thread's scratch slot (read-only for the guest, so no guest thread can
# change them between the guest kernel's check and the host's use); the
# guest kernel's own rewrites fill the slot from its start.
USER_AREA = 16 * 1024

AT_FDCWD = -100
AT_NULL, AT_IGNORE, AT_SYSINFO_EHDR = 0, 1, 33
O_ACCMODE, O_CLOEXEC, O_CREAT, O_TRUNC = 0o3, 0o2000000, 0o100, 0o1000
MFD_CLOEXEC, MFD_ALLOW_SEALING = 1, 2
F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8


def _nr_of(name):
    if isinstance(name, int):
        if name not in SYSCALL_NAMES:
            raise ValueError(f"no x86_64 syscall number {name}")
        return name
    try:
        return SYSCALL_NUMBERS[name]
    except KeyError:
        raise ValueError(f"no x86_64 syscall named {name!r}") from None


# ---- guest memory, written as copy_to_user would -------------------------

_pvw = None


def _copy_to_user(pid, addr, data):
    """Write data at addr in pid's memory only where the guest itself may
    write (process_vm_writev): a read-only page (its code, the guest
    kernel's scratch memory) gives EFAULT, as copy_to_user would.  (The
    tracer's write_mem falls back to /proc/PID/mem, which ignores
    protections: right for the guest kernel's own scratch, wrong for an
    address the guest chose.)"""
    global _pvw
    if not data:
        return 0
    import ctypes
    if _pvw is None:
        class IoVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.process_vm_writev
        fn.restype = ctypes.c_ssize_t
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                       ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]
        _pvw = (fn, IoVec)
    fn, IoVec = _pvw
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    local = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    remote = IoVec(addr, len(data))
    n = fn(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n != len(data):
        err = ctypes.get_errno() if n < 0 else _errno.EFAULT
        raise OSError(err or _errno.EFAULT, f"guest memory at {addr:#x} is not writable")
    return n


def _user_commit(kernel, tid, writer):
    data = bytes(writer.buf)
    if data and kernel.tracer.write_mem(tid, writer.base, data) != len(data):
        raise OSError(_errno.EFAULT, "scratch memory could not be written")


def _user_writer(kernel, tid):
    """An ArgWriter over the top USER_AREA bytes of tid's scratch slot."""
    from .kernel.vfs.scratch import ArgWriter
    base, size = kernel.scratch.slot(tid, kernel.vfs.tgid_of(tid))
    return ArgWriter(base + size - USER_AREA, USER_AREA)


# ---- the view of one call a handler gets ------------------------------------

class Call:
    """One stopped syscall, as a Sandbox handler sees it.

    ``name``, ``nr``, ``args`` (six unsigned ints), ``arg(i_or_name)``;
    who makes it: ``pid``/``tid`` (guest ids), ``ppid``, ``host_pid``/
    ``host_tid``, ``program``, ``exe``, ``comm``, ``argv``; its memory:
    ``path(i)``, ``read(addr, n)``, ``read_str(addr)``, ``write(addr,
    data)``, ``regs``.  Decisions: ``deny(errno)``, ``emulate(value)``,
    ``emulate_open(data)``, ``rewrite(...)``; ``after(fn)`` sees the
    result."""

    def __init__(self, kernel, raw):
        self.kernel = kernel
        self.raw = raw            # the guest kernel's SyscallCall
        self._after = None
        self._host_pid = None

    # what is called --------------------------------------------------------
    @property
    def name(self):
        return self.raw.name

    @property
    def nr(self):
        return self.raw.nr

    @property
    def args(self):
        return self.raw.args

    def arg(self, which, signed=False):
        """An argument by index or by its prototype name (``"filename"``);
        signed=True reads it as a C int."""
        i = which if isinstance(which, int) else self._arg_index(which)
        v = self.raw.args[i]
        return s32(v) if signed else v

    def _arg_index(self, name):
        proto = prototype(self.name)
        names = [n for _, n in proto[1]] if proto else []
        if name in names:
            return names.index(name)
        if name.startswith("arg") and name[3:].isdigit():
            return int(name[3:])
        raise KeyError(f"{self.name} has no argument named {name!r} (it has {names})")

    # who calls --------------------------------------------------------------
    @property
    def host_tid(self):
        return self.raw.tid

    @property
    def host_pid(self):
        if self._host_pid is None:
            vfs = self.kernel.vfs
            self._host_pid = vfs.tgid_of(self.raw.tid) if vfs is not None else self.raw.tid
        return self._host_pid

    @property
    def tid(self):
        """The calling thread's id as the guest sees it."""
        return self.kernel.processes.guest_tid(self.raw.tid)

    @property
    def pid(self):
        """The calling process's id as the guest sees it (getpid())."""
        return self.kernel.processes.guest_tid(self.host_pid)

    @property
    def ppid(self):
        """The parent's pid as the guest sees it (0 for the sandbox's init)."""
        from .kernel import procfs
        ppid = procfs.status_fields(self.host_pid).get("PPid")
        return self.kernel.processes.guest_tid(int(ppid)) if ppid else 0

    @property
    def exe(self):
        """The guest path of the program the process runs (None if the
        guest kernel did not see its exec)."""
        vfs = self.kernel.vfs
        return None if vfs is None else vfs.exe.get(self.host_pid)

    @property
    def comm(self):
        try:
            with open(f"/proc/{self.raw.tid}/comm") as f:
                return f.read().rstrip("\n")
        except OSError:
            return ""

    @property
    def argv(self):
        try:
            with open(f"/proc/{self.host_pid}/cmdline", "rb") as f:
                data = f.read()
        except OSError:
            return []
        return [os.fsdecode(a) for a in data.split(b"\0")[:-1]]

    @property
    def program(self):
        """The program's name: the last component of its guest path."""
        exe = self.exe
        return os.path.basename(exe) if exe else self.comm

    # its memory ---------------------------------------------------------------
    def read(self, addr, size):
        """size bytes of guest memory (OSError EFAULT if any is unmapped)."""
        return self.raw.read(addr, size)

    def read_str(self, addr, limit=4096):
        """A NUL-terminated string of guest memory, as bytes."""
        return self.raw.read_str(addr, limit)

    def path(self, i):
        """Argument i read as a path string (as the guest wrote it)."""
        addr = self.raw.args[i]
        if addr == 0:
            raise OSError(_errno.EFAULT, "NULL path")
        return os.fsdecode(self.raw.read_str(addr, 4096))

    def abspath(self, i, dirfd=None):
        """Argument i as an absolute guest path, made from the process's cwd
        or from the directory fd in argument ``dirfd`` (by name, not
        resolved: symlinks and .. are left to the guest VFS)."""
        path = self.path(i)
        if path.startswith("/"):
            return path
        vfs = self.kernel.vfs
        fd = AT_FDCWD if dirfd is None else s32(self.raw.args[dirfd])
        if fd == AT_FDCWD:
            base = vfs.context(self.host_pid).cwd
        else:
            base = vfs.fd_path(self.raw.tid, fd)
            if base is None:
                raise OSError(_errno.EBADF, "dirfd is no directory of the guest's")
        return base.rstrip("/") + "/" + path if path else base

    def write(self, addr, data):
        """Write into the guest's memory where it may write itself (EFAULT
        on unmapped or read-only pages, as copy_to_user)."""
        return _copy_to_user(self.raw.tid, addr, data)

    @property
    def regs(self):
        """The thread's registers (a cffi struct umlpy_regs: rip, rsp,
        orig_rax, rdi, ...); read-only here."""
        return self.kernel.tracer.get_regs(self.raw.tid)

    # decisions ------------------------------------------------------------
    @staticmethod
    def deny(err=_errno.EPERM):
        """Fail the call with errno err; the host never runs it."""
        return Return(-abs(int(err)))

    @staticmethod
    def emulate(value=0):
        """Answer the call with value (a negative value is -errno); the host
        never runs it."""
        return Return(int(value))

    @staticmethod
    def allow():
        """Leave the call to the next handler, then the guest kernel."""
        return ALLOW

    def rewrite(self, *args, nr=None, **named):
        """Make the call with changed arguments: positional values replace
        args from the first, named ones go by prototype name
        (``filename="/etc/motd"``) or ``argN``; ``nr`` (a number or a name)
        makes it another syscall.  A str or bytes value is copied into
        memory the guest cannot change and passed by address.  The guest
        kernel then decides the changed call as if the guest had made it."""
        new = list(self.raw.args) + [0] * (6 - len(self.raw.args))
        if len(args) > 6:
            raise ValueError("a syscall has at most 6 arguments")
        new[:len(args)] = args
        for key, value in named.items():
            new[self._arg_index(key)] = value
        return Rewrite(self.nr if nr is None else _nr_of(nr), new)

    def after(self, fn):
        """Call fn(result) when the call returns (result: what the guest
        will see, -errno on failure); a value fn returns replaces it."""
        if self._after is None:
            self._after = []
        self._after.append(fn)
        return None

    def emulate_open(self, data, name="umlpy-virtual", writable=False):
        """Answer an open with a new fd whose contents are data: a memfd the
        guest kernel creates in the guest (an injected memfd_create, then
        filled and sealed through a duplicate of that very descriptor).
        Nothing on the host is named.  An open for writing gets EACCES
        unless writable."""
        if isinstance(data, str):
            data = data.encode()
        flags = self._open_flags()
        if not writable and (flags & O_ACCMODE != os.O_RDONLY or flags & O_TRUNC):
            return self.deny(_errno.EACCES)
        kernel, tid = self.kernel, self.raw.tid
        w = _user_writer(kernel, tid)
        name_addr = w.string(name[:200])
        _user_commit(kernel, tid, w)
        mfd_flags = (MFD_CLOEXEC if flags & O_CLOEXEC else 0) | \
            (0 if writable else MFD_ALLOW_SEALING)
        fd = self.raw.inject(_nr_of("memfd_create"), name_addr, mfd_flags)
        if fd < 0:
            return Return(fd)
        from .kernel.vfs.hostops import thread_fd
        dup = thread_fd(tid, self.host_pid, fd)
        try:
            if not os.readlink(f"/proc/self/fd/{dup}").startswith("/memfd:"):
                # another guest thread put something else at fd meanwhile:
                # fill nothing (the guest sees its own file)
                return Return(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(dup, view):]
            os.lseek(dup, 0, os.SEEK_SET)       # the guest's offset: one description
            if not writable:
                import fcntl
                fcntl.fcntl(dup, F_ADD_SEALS,
                            F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
        finally:
            os.close(dup)
        return Return(fd)

    def _open_flags(self):
        name, a = self.name, self.raw.args
        if name == "open":
            return s32(a[1])
        if name == "openat":
            return s32(a[2])
        if name == "creat":
            return O_CREAT | os.O_WRONLY | O_TRUNC
        if name == "openat2":
            return struct.unpack("<Q", self.read(a[2], 8))[0]
        return os.O_RDONLY

    def __repr__(self):
        return f"<Call {format_call(self.kernel, self.raw)} pid={self.pid}>"


# ---- handlers in front of the guest kernel ------------------------------------

class _Abort(BaseException):
    """A handler raised: ends the run (BaseException, so the guest
    kernel's fail-closed EFAULT does not swallow it); Sandbox.run
    re-raises the handler's own exception."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _is_front(hook):
    return getattr(hook, "_umlpy_front", False)


def kernel_decision(kernel, call):
    """The guest kernel's own decision on call (its hooks, then the
    syscall table), without the handlers in front of it."""
    for hook in kernel.dispatcher.hooks.get(call.nr, ()):
        if _is_front(hook):
            continue
        decision = hook(call)
        if decision is not None:
            return decision
    return kernel.dispatcher.decide_table(call)


def _changed(kernel, raw, nr, args):
    """raw becomes the call nr(args) (str/bytes copied to scratch memory);
    the guest kernel decides it."""
    args = list(args) + [0] * (6 - len(args))
    if any(isinstance(a, (str, bytes, bytearray)) for a in args):
        w = _user_writer(kernel, raw.tid)
        for i, a in enumerate(args):
            if isinstance(a, str):
                args[i] = w.string(os.fsencode(a))
            elif isinstance(a, (bytes, bytearray)):
                args[i] = w.add(bytes(a))
        _user_commit(kernel, raw.tid, w)
    args = tuple(int(a) & 0xFFFFFFFFFFFFFFFF for a in args)
    raw.nr, raw.args = nr, args
    raw.entry = kernel.table.by_nr.get(nr)
    decision = kernel_decision(kernel, raw)
    # the host must run the changed call, not the guest's
    if decision is ALLOW:
        return Rewrite(nr, args)
    if isinstance(decision, AllowThen) and decision.rewrite is None:
        return AllowThen(decision.on_exit, rewrite=Rewrite(nr, args))
    return decision


def _with_after(decision, afters):
    """decision, then each fn(result) of afters (a value replaces it)."""
    def settle(result):
        replaced = False
        for fn in afters:
            value = fn(result)
            if value is not None:
                result, replaced = int(value), True
        return result, replaced
    if isinstance(decision, Return):
        return Return(settle(decision.value)[0])
    inner = decision.on_exit if isinstance(decision, AllowThen) else None
    rewrite = decision.rewrite if isinstance(decision, AllowThen) else \
        decision if isinstance(decision, Rewrite) else None

    def on_exit(call, result):
        first = inner(call, result) if inner is not None else None
        if first is not None:
            result = first
        result, replaced = settle(result)
        return result if replaced or first is not None else None
    return AllowThen(on_exit, rewrite=rewrite)


def make_front(kernel, handlers, errors="raise"):
    """A dispatcher hook that runs handlers (fn(Call)) before the guest
    kernel.  The first decision wins: deny/emulate (Return) is final;
    a Rewrite or an AllowThen's rewrite changes the call, which the guest
    kernel then decides; None or ALLOW leaves it to the next handler and
    finally to the guest kernel.  errors="raise": a handler that raises
    ends the run (see _Abort); "efault": the call fails with EFAULT."""
    def front(raw):
        view = Call(kernel, raw)
        decision = None
        try:
            for handler in handlers:
                d = handler(view)
                if d is None or d is ALLOW:
                    continue
                decision = d
                break
        except _Abort:
            raise
        except Exception as e:
            if _guest_fault(e):
                return Return(-e.errno)     # a bad guest pointer, a thread gone: the guest's
            if errors == "raise":
                raise _Abort(e) from e
            _say_once(raw.name, e)
            return Return(-_errno.EFAULT)
        # From here on it is the guest kernel's decision: its errors are its
        # own (it fails the call with EFAULT and says so), not the handler's.
        if decision is None:
            if not view._after:
                return None                 # the guest kernel's, as usual
            decision = kernel_decision(kernel, raw)
        elif isinstance(decision, Return):
            pass
        elif isinstance(decision, Rewrite):
            decision = _changed(kernel, raw, decision.nr, decision.args)
        elif isinstance(decision, AllowThen):
            on_exit = decision.on_exit
            view.after(lambda result: on_exit(raw, result))
            rw = decision.rewrite
            decision = kernel_decision(kernel, raw) if rw is None else \
                _changed(kernel, raw, rw.nr, rw.args)
        else:
            raise _Abort(TypeError(f"a handler of {raw.name} returned {decision!r}: expected "
                                   "None, ALLOW, call.deny/emulate/rewrite(...) or a Rewrite"))
        if view._after:
            decision = _with_after(decision, [_guarded(fn, errors) for fn in view._after])
        return decision
    front._umlpy_front = True
    return front


_said = set()


def _say_once(name, error):
    key = (name, type(error))
    if key not in _said:
        _said.add(key)
        sys.stderr.write(f"umlpy: a handler of {name} raised {type(error).__name__}: {error} "
                         "(the call fails with EFAULT)\n")


def _guest_fault(error):
    """An error the guest caused (memory it named is unmapped, the thread
    is gone), not a bug of the handler's."""
    from .tracer import TracerError
    return isinstance(error, TracerError) or \
        isinstance(error, OSError) and error.errno in (_errno.EFAULT, _errno.ESRCH)


def _guarded(fn, errors):
    def call(result):
        try:
            return fn(result)
        except Exception as e:
            if errors == "raise" and not _guest_fault(e):
                raise _Abort(e) from e
            return None
    return call


def install_front(kernel, nr, handlers, errors="raise"):
    """Put handlers in front of every other hook of syscall nr."""
    kernel.dispatcher.hooks.setdefault(nr, []).insert(0, make_front(kernel, handlers, errors))


def _wrap_method(obj, name, after):
    """obj.name(*a) then after(*a) (an instance attribute: other
    instances are untouched)."""
    inner = getattr(obj, name)

    def wrapped(*a):
        result = inner(*a)
        after(*a)
        return result
    setattr(obj, name, wrapped)


def hide_vdso(kernel):
    """At every exec, the new program's AT_SYSINFO_EHDR auxv entry becomes
    AT_IGNORE before it runs an instruction: glibc (dynamic or static)
    then finds no vDSO and makes clock_gettime, gettimeofday, time and
    getcpu real syscalls, which stop like any other."""
    tracer = kernel.tracer

    def patch_auxv(tid, former_tid):
        # the new stack: argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL
        try:
            sp = tracer.get_regs(tid).rsp
            stack = tracer.read_mem(tid, sp, 64 * 1024)     # fewer at the stack's top
        except OSError:
            return              # the process is gone
        words = struct.unpack(f"<{len(stack) // 8}Q", stack[:len(stack) // 8 * 8])
        if not words:
            return
        i = words[0] + 2                        # past argc, argv[] and its NULL
        while i < len(words) and words[i]:
            i += 1                              # envp[]
        i += 1
        while i + 1 < len(words) and words[i] != AT_NULL:
            if words[i] == AT_SYSINFO_EHDR:
                tracer.write_mem(tid, sp + 8 * i, struct.pack("<Q", AT_IGNORE))
                return
            i += 2
    _wrap_method(kernel, "_fs_exec", patch_auxv)


# ---- results --------------------------------------------------------------------

class Stats:
    """What the guest kernel saw: ``calls`` counts the stopped calls by
    syscall name (every call with trace_all=True; in the default mode only
    those that stop: the guest kernel's and hooked ones), ``stops`` is
    the number of syscall stops."""

    def __init__(self):
        from collections import Counter
        self.calls = Counter()
        self.stops = 0

    def __repr__(self):
        top = ", ".join(f"{n}={c}" for n, c in self.calls.most_common(5))
        return f"<Stats stops={self.stops} {top}>"


class Result:
    """``status`` (the shell's: the exit code, or 128+N if signal N killed
    the first process), ``stdout``/``stderr`` (bytes when captured, else
    None), ``stats`` and ``timed_out``."""

    def __init__(self, status, stdout, stderr, stats, timed_out=False):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.stats = stats
        self.timed_out = timed_out

    @property
    def returncode(self):
        return self.status

    def __repr__(self):
        return f"<Result status={self.status} stops={self.stats.stops}>"


def _guest_cwd(cwd, rootfs):
    """A relative cwd is taken from ours on the host's tree, from / in a rootfs."""
    if cwd is None or cwd.startswith("/"):
        return cwd
    return os.path.normpath(os.path.join(os.getcwd() if rootfs is None else "/", cwd))


# ---- the sandbox ------------------------------------------------------------------

class Sandbox:
    """A recipe for sandboxes: options (the same as ``umlpy run``'s) and
    handlers; each ``run`` makes a fresh guest kernel from it."""

    ALLOW = ALLOW

    def __init__(self, rootfs=None, layers=(), upper=None, binds=(), tmpfs=(), cwd=None,
                 env=None, net=None, net_rate=None, memory=None, pids=None, cpu_time=None,
                 disk=None, nofile=None, hostname=None, kernel_release=None, root=False,
                 host_root=False, pid_host=False, trace_all=False, hide_vdso=None,
                 log_level=None, breaks=(), errors="raise"):
        """rootfs: a host directory or tar image (default: the host's tree,
        read-only); layers: tar images over it; upper: keep the changes
        there; binds: "HOST:GUEST[:ro]" strings or (host, guest[, ro]);
        tmpfs: guest paths; cwd; env: variables added to os.environ's;
        net: "none" | "loopback" | "host" | "allow=CIDR[:PORT],..."; net_rate:
        bytes/s ("1M"); memory, pids, cpu_time, disk, nofile: limits as
        the command line takes them; hostname, kernel_release; root: fake
        root; host_root; pid_host: no pid namespace; trace_all: every call
        stops.  hide_vdso: hide the vDSO from the guest (None: when a
        handler is on clock_gettime, gettimeofday, time, clock_getres or
        getcpu).  log_level: "debug", "info", ... (see ``--log-level``);
        breaks: ``--break`` specs.  errors: "raise" (a handler that raises
        ends the run, and run() raises it) or "efault" (the call fails)."""
        from .kernel.limits import Limits
        from .kernel.netpolicy import NetPolicy
        from .kernel.netrate import parse_rate
        from .kernel.vfs.build import parse_bind
        if rootfs is not None:
            if not os.path.exists(rootfs):
                raise BadInput(f"rootfs {rootfs}: No such file or directory")
            rootfs = os.path.abspath(rootfs)
        for layer in layers:
            if not os.path.isfile(layer):
                raise BadInput(f"layer {layer}: No such file")
        cwd = _guest_cwd(cwd, rootfs)
        if hostname is not None and not 0 < len(hostname.encode()) <= 64:
            raise BadInput(f"hostname {hostname!r}: 1 to 64 bytes")
        if errors not in ("raise", "efault"):
            raise ValueError("errors: 'raise' or 'efault'")
        self._fs = dict(rootfs=rootfs, layers=[os.path.abspath(p) for p in layers],
                        upper=upper, tmpfs=list(tmpfs), cwd=cwd, hostname=hostname,
                        binds=[parse_bind(b if isinstance(b, str) else
                                          f"{b[0]}:{b[1]}" + (":ro" if len(b) > 2 and b[2]
                                                              else ""))
                               for b in binds])
        self.env = dict(env or {})
        self.net = net if isinstance(net, NetPolicy) else NetPolicy.parse(net)
        self.net_rate = None if net_rate is None else \
            net_rate if isinstance(net_rate, int) else parse_rate(str(net_rate))
        self.limits = Limits.from_options(memory=memory, pids=pids, cpu_time=cpu_time,
                                          disk=disk, nofile=nofile)
        self.options = dict(pid_namespace=not pid_host, hostname=hostname,
                            kernel_release=kernel_release, fake_root=root,
                            host_root=host_root)
        self.trace_all = trace_all
        self.hide_vdso = hide_vdso
        self.log_level = log_level
        self.breaks = [parse_break(b) for b in breaks]
        if log_level is not None:
            _level(log_level)
        self.errors = errors
        self.handlers = {}          # nr -> [fn(Call)]
        self._vdso_named = False    # a handler names a call the vDSO answers
        self.kernel = None          # the last run's GuestKernel

    def syscall(self, *names):
        """Decorator: fn(call) runs at each call of these syscalls (names or
        numbers; "*" for every syscall), before the guest kernel."""
        if not names:
            raise TypeError("syscall() needs at least one syscall name")
        nrs = []
        for name in names:
            if name == "*":
                nrs.extend(sorted(SYSCALL_NAMES))
            else:
                nrs.append(_nr_of(name))
                self._vdso_named |= SYSCALL_NAMES[nrs[-1]] in VDSO_CALLS

        def register(fn):
            for nr in nrs:
                self.handlers.setdefault(nr, []).append(fn)
            return fn
        return register

    def _wants_vdso_hidden(self):
        if self.hide_vdso is not None:
            return self.hide_vdso
        return self._vdso_named

    def make_kernel(self):
        """A fresh GuestKernel with this sandbox's options and handlers."""
        from .kernel import GuestKernel, Mode
        from .kernel.vfs.build import FsOptions
        fs = self._fs
        kernel = GuestKernel(Mode.TRACE_ALL if self.trace_all else Mode.DEFAULT,
                             fs_options=FsOptions(**{k: (list(v) if isinstance(v, list) else v)
                                                     for k, v in fs.items()}),
                             net=self.net, net_rate=self.net_rate,
                             limits=self.limits if self.limits.any() else None,
                             **self.options)
        for nr, fns in self.handlers.items():
            install_front(kernel, nr, list(fns), self.errors)
        if self._wants_vdso_hidden():
            hide_vdso(kernel)
        return kernel

    def run(self, argv, capture=False, input=None, env=None, cwd=None, timeout=None):
        """Run argv in a fresh sandbox until its first process exits.
        capture: collect stdout and stderr (else they are ours); input:
        bytes for its stdin (else ours); env: more variables; cwd: the
        guest's working directory; timeout: seconds, then the sandbox is
        killed (status 137, result.timed_out).  Raises CommandNotFound
        (127) / CommandNotExecutable (126) as ``umlpy run`` exits."""
        import tempfile
        kernel = self.kernel = self.make_kernel()
        stats = Stats()
        decide = kernel.dispatcher.decide

        def counted(call):
            stats.calls[call.name] += 1
            return decide(call)
        kernel.dispatcher.decide = counted
        install_debugging(kernel, self.breaks, self.log_level, api=True)
        full_env = dict(os.environ)
        full_env.update(self.env)
        full_env.update(env or {})
        if isinstance(argv, str):
            argv = [argv]
        files, saved = {}, {}
        timer, timed_out = None, []
        try:
            if capture:
                files[1] = tempfile.TemporaryFile()
                files[2] = tempfile.TemporaryFile()
            if input is not None:
                files[0] = tempfile.TemporaryFile()
                files[0].write(input if isinstance(input, bytes) else input.encode())
                files[0].seek(0)
            # the guest's first process inherits our fds 0-2 when it is
            # forked: lend it the files for that moment
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, f in files.items():
                saved[fd] = os.dup(fd)
                os.dup2(f.fileno(), fd)
            try:
                kernel.spawn(list(argv), env=full_env,
                             cwd=_guest_cwd(cwd, self._fs["rootfs"]))
            finally:
                for fd, old in saved.items():
                    os.dup2(old, fd)
                    os.close(old)
                saved.clear()
            if timeout is not None:
                import threading
                main = kernel.processes.main

                def expire():
                    timed_out.append(True)
                    try:
                        os.kill(main, 9)
                    except OSError:
                        pass
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            try:
                status = kernel.run()
            except _Abort as abort:
                raise abort.error from None
            stats.stops = kernel.syscalls_seen
            out = err = None
            if capture:
                files[1].seek(0)
                out = files[1].read()
                files[2].seek(0)
                err = files[2].read()
            return Result(status, out, err, stats, bool(timed_out))
        finally:
            if timer is not None:
                timer.cancel()
            for f in files.values():
                f.close()


# ---- --break and --log-level --------------------------------------------------------

class Break:
    __slots__ = ("nr", "text", "code")

    def __init__(self, nr, text, code):
        self.nr, self.text, self.code = nr, text, code


def parse_break(spec):
    """'SYSCALL[:COND]' -> Break (BadInput if the name or COND is wrong)."""
    if isinstance(spec, Break):
        return spec
    name, sep, cond = spec.partition(":")
    name = name.strip()
    try:
        nr = _nr_of(int(name) if name.isdigit() else name)
    except ValueError as e:
        raise BadInput(f"--break {spec}: {e}") from None
    code = None
    if sep and cond.strip():
        try:
            code = compile(cond.strip(), "<--break condition>", "eval")
        except SyntaxError as e:
            raise BadInput(f"--break {spec}: bad condition: {e.msg}") from None
    return Break(nr, cond.strip() if sep else "", code)


def install_debugging(kernel, breaks=(), log_level=None, api=False):
    """Install --break points and --log-level logging on kernel (before it
    spawns).  Nothing is installed for what is not asked for, so the
    guest kernel's paths pay nothing.  api=True: log also when the "umlpy"
    logger is enabled by the program's own logging configuration."""
    breaks = [parse_break(b) for b in breaks or ()]
    by_nr = {}
    for b in breaks:
        by_nr.setdefault(b.nr, []).append(b)
    for nr, points in by_nr.items():
        install_front(kernel, nr, [_break_handler(kernel, points)], errors="raise")
    if log_level is not None or api:
        _install_logging(kernel, log_level)


_warned_conditions = set()


def _break_handler(kernel, points):
    def handler(call):
        if getattr(kernel, "_umlpy_breaks_off", False):
            return None
        for b in points:
            if b.code is not None:
                try:
                    hit = eval(b.code, {"__builtins__": __builtins__, "errno": _errno,
                                        "os": os}, {"call": call, "args": call.args})
                except Exception as e:
                    key = (b.text, type(e))
                    if key not in _warned_conditions:
                        _warned_conditions.add(key)
                        sys.stderr.write(f"umlpy: --break condition {b.text!r} raised "
                                         f"{type(e).__name__}: {e} (taken as false)\n")
                    hit = False
                if not hit:
                    continue
            return _stop_in_pdb(kernel, call, b)
        return None
    return handler


def _stop_in_pdb(kernel, call, point):
    """pdb in the guest kernel, at the stopped call.  Locals: call (a
    Call), args, regs (kernel.tracer.get_regs), kernel, mem(addr, n),
    and decision: set it (e.g. decision = call.deny(13)) to decide the
    call; 'c' lets the guest kernel decide as usual."""
    import bdb
    import pdb
    tty = _take_terminal(kernel)
    try:
        args = call.args                        # noqa: F841 (for pdb)
        regs = kernel.tracer.get_regs(call.raw.tid)     # noqa: F841
        mem = call.read                         # noqa: F841
        decision = None
        sys.stdout.write(f"umlpy: break at {format_call(kernel, call.raw)} "
                         f"(pid {call.pid}, {call.program or '?'}); the guest waits. "
                         "Locals: call, args, regs, kernel, mem(addr, n), decision; "
                         "'c' continues.\n")
        sys.stdout.flush()
        debugger = _kernel_pdb(pdb, kernel)
        try:
            debugger.set_trace(sys._getframe())
            decision = decision                 # the guest's thread waits here
        except bdb.BdbQuit:
            # q (or the end of our stdin): no more breaks, the guest runs on
            kernel._umlpy_breaks_off = True
            decision = None
        if decision is not None and decision is not ALLOW and \
                not isinstance(decision, (Return, Rewrite, AllowThen)):
            sys.stdout.write(f"umlpy: decision {decision!r} is no decision (call.deny(e), "
                             "call.emulate(v), call.rewrite(...)): the guest kernel decides\n")
            decision = None
        return decision
    finally:
        _give_back_terminal(kernel, tty)


def _kernel_pdb(pdb, kernel):
    """A Pdb whose q (and the end of its input) detaches instead of raising
    BdbQuit, which would land in whatever guest kernel code it stopped in
    (a breakpoint set in a handler) and fail the guest's call.  nosigint:
    umlpy's own SIGINT handler (forwarding to the guest) stays."""
    class KernelPdb(pdb.Pdb):
        def set_quit(self):
            kernel._umlpy_breaks_off = True         # no more --break stops
            self.clear_all_breaks()
            self.set_continue()                     # no breakpoints: tracing off
    return KernelPdb(nosigint=True)


def _take_terminal(kernel):
    """If the guest holds our terminal, take it back (with sane line
    settings) for pdb; returns what to restore."""
    if not getattr(kernel, "_tty_handed", False):
        return None
    try:
        import termios
        fg = os.tcgetpgrp(0)
        attrs = termios.tcgetattr(0)
    except OSError:
        return None
    kernel._give_terminal_to(os.getpgrp())
    sane = list(attrs)
    sane[0] |= termios.ICRNL
    sane[1] |= termios.OPOST | termios.ONLCR
    sane[3] |= termios.ICANON | termios.ECHO | termios.ECHOE | termios.ISIG
    try:
        termios.tcsetattr(0, termios.TCSADRAIN, sane)
    except OSError:
        pass
    return fg, attrs


def _give_back_terminal(kernel, saved):
    if saved is None:
        return
    import termios
    fg, attrs = saved
    try:
        termios.tcsetattr(0, termios.TCSADRAIN, attrs)
    except OSError:
        pass
    kernel._give_terminal_to(fg)


LEVELS = ("critical", "error", "warning", "info", "debug")


def _level(name):
    import logging
    if isinstance(name, int):
        return name
    if str(name).lower() not in LEVELS:
        raise BadInput(f"--log-level {name}: expected one of {', '.join(LEVELS)}")
    return getattr(logging, str(name).upper())


def _install_logging(kernel, level_name):
    """The guest kernel's decisions as log records of the "umlpy" logger:
    info: the policy, each exec and the end; debug: every decided call
    with its decision, and each path resolution (guest path -> host
    path).  Installed only if the logger is enabled at info or below."""
    import logging
    log = logging.getLogger("umlpy")
    if level_name is not None:
        log.setLevel(_level(level_name))
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
    _wrap_method(kernel, "_fs_exec", on_exec)

    def on_exit(tid, status):
        if tid == kernel.processes.main:
            from .kernel import exit_status_of
            klog.info("the first process (host pid %d) ended: status %d; the sandbox ends",
                      tid, exit_status_of(kernel.main_status))
    _wrap_method(kernel, "_on_exit", on_exit)


def _log_policy(kernel, log):
    from .kernel.policy import Action
    policy = kernel.policy()
    counts = {Action.ALLOW: 0, Action.ERRNO: 0, Action.PYTHON: 0, Action.NOTIFY: 0}
    guarded = 0
    for nr, rule in enumerate(policy):
        if nr not in SYSCALL_NAMES:
            continue
        counts[rule.action] += 1
        guarded += rule.guard is not None
    hooked = sorted(SYSCALL_NAMES.get(nr, str(nr)) for nr in kernel.dispatcher.hooks)
    log.info("policy: mode %s; %d calls run on the host without a stop (%d of them "
             "stop when a guard matches), %d fail in the filter, %d stop for the guest "
             "kernel, %d are served by it without a stop%s", kernel.mode, counts[Action.ALLOW],
             guarded, counts[Action.ERRNO], counts[Action.PYTHON], counts[Action.NOTIFY],
             f" (hooked: {', '.join(hooked[:12])}"
             f"{', ...' if len(hooked) > 12 else ''})" if hooked else "")
    o = kernel.fs_options
    root = o.rootfs or "the host's tree (read-only)"
    log.info("filesystem: root %s%s, upper %s; net %s%s", root,
             f" + {len(o.layers)} layer(s)" if o.layers else "",
             getattr(kernel.fs, "upper", None) or o.upper or "throwaway",
             kernel.net.mode, "; limits " + ", ".join(
                 f"{k}={v}" for k, v in vars(kernel.limits).items() if v is not None)
             if kernel.limits is not None else "")


def _log_resolution(kernel, log):
    vfs = kernel.vfs
    resolve = vfs.resolve

    def resolved(task, dirfd, path, follow=True):
        where = "" if path.startswith("/") else \
            " from the cwd" if dirfd == AT_FDCWD else f" from dirfd {dirfd}"
        try:
            res = resolve(task, dirfd, path, follow)
        except OSError as e:
            log.debug("resolve %r%s → %s", path, where, _errno.errorcode.get(e.errno, e.errno))
            raise
        log.debug("resolve %r%s → %s → %s", path, where, res.path, _host_of(res))
        return res
    vfs.resolve = resolved


def _host_of(res):
    """The host object behind a lookup, where naming it has no side effect
    (an image file is materialised only when the host must touch it)."""
    from .kernel.vfs.fs import HostTreeFS
    from .kernel.vfs.union import IN_UPPER, UnionFS
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


# ---- formatting calls for logs and pdb ------------------------------------------

def _is_path_arg(ctype, name):
    return "char *" in ctype and "*const" not in ctype.replace(" ", "") and \
        any(k in name for k in ("name", "path", "file", "target", "special", "library"))


def _quote(raw):
    text = raw.decode("utf-8", "backslashreplace")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_call(kernel, call, nr=None, args=None):
    """name(arg, ...) with path arguments read as strings."""
    nr = call.nr if nr is None else nr
    args = call.args if args is None else args
    name = SYSCALL_NAMES.get(nr, f"syscall_{nr}")
    proto = prototype(name)
    params = proto[1] if proto else [("long", f"arg{i}") for i in range(len(args))]
    out = []
    for i, (ctype, pname) in enumerate(params):
        if i >= len(args):
            break
        v = args[i]
        if _is_path_arg(ctype, pname) and v:
            try:
                out.append(_quote(kernel.tracer.read_str(call.tid, v, 256)))
                continue
            except OSError:
                pass
        if "*" in ctype:
            out.append(hex(v) if v else "NULL")
        elif pname in ("flags", "mode") or pname.endswith("_flags"):
            out.append(oct(v) if pname == "mode" else hex(v))
        elif ctype in ("int", "pid_t", "clockid_t") or pname in ("fd", "dfd", "dirfd",
                                                                "olddfd", "newdfd"):
            s = s32(v)
            out.append("AT_FDCWD" if s == AT_FDCWD and "d" in pname else str(s))
        else:
            out.append(str(v) if v < 4096 else hex(v))
    return f"{name}({', '.join(out)})"


def format_decision(kernel, call, decision):
    if decision is ALLOW:
        return "passes to the host"
    if isinstance(decision, Return):
        v = decision.value
        if -4096 < v < 0:
            return f"= -1 {_errno.errorcode.get(-v, -v)} (emulated: the host never runs it)"
        return f"= {v} (emulated: the host never runs it)"
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
