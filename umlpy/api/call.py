"""``Call``: one stopped syscall as a Sandbox handler sees it (who makes
it, its arguments and memory, and the decisions a handler can answer).

A handler's new string/bytes arguments (``call.rewrite(filename=...)``,
``call.emulate_open``'s memfd name) go to the top of the calling
thread's scratch slot, read-only for the guest, so no guest thread can
change them between the guest kernel's check and the host's use; the
guest kernel's own rewrites fill the slot from its start.
"""
import errno as _errno
import os

from ..abi import s32
from ..abi.fcntl import (AT_FDCWD, F_ADD_SEALS, OPEN_HOW, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK,
                         F_SEAL_WRITE, O_ACCMODE, O_CLOEXEC, O_CREAT, O_TRUNC)
from ..abi.mman import MFD_ALLOW_SEALING, MFD_CLOEXEC
from ..kernel.decisions import ALLOW, Return, Rewrite
from ..kernel.syscalls.names import prototype, syscall_nr

__all__ = ["Call", "nr_of", "user_area_writer", "USER_AREA"]

nr_of = syscall_nr

USER_AREA = 16 * 1024



def user_area_writer(kernel, call):
    """An ArgWriter over the top USER_AREA bytes of the calling thread's
    scratch slot (kernel.scratch_commit(call, writer) puts it there)."""
    from ..kernel.vfs.scratch import ArgWriter
    slot = kernel.scratch_writer(call)
    return ArgWriter(slot.base + slot.size - USER_AREA, USER_AREA)


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
        from ..kernel import procfs
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
        return self.raw.write(addr, data)

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
        return Rewrite(self.nr if nr is None else nr_of(nr), new)

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
        w = user_area_writer(kernel, self.raw)
        name_addr = w.string(name[:200])
        kernel.scratch_commit(self.raw, w)
        mfd_flags = (MFD_CLOEXEC if flags & O_CLOEXEC else 0) | \
            (0 if writable else MFD_ALLOW_SEALING)
        fd = self.raw.inject(nr_of("memfd_create"), name_addr, mfd_flags)
        if fd < 0:
            return Return(fd)
        from ..kernel.vfs.hostops import thread_fd
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
            return OPEN_HOW.get(self.read(a[2], OPEN_HOW.field_size("flags")), "flags")
        return os.O_RDONLY

    def __repr__(self):
        from ..trace.format import call_text
        return f"<Call {call_text(self.name, self.raw)} pid={self.pid}>"
