"""Opens the guest kernel makes itself, for a notified open (notify.py):
of the host object the VFS chose, as the calling thread's host identity,
never following a symlink; the fd is then installed in the caller's table.

Three kinds of object need more than an open:
* what procfs shows, and to whom, depends on who opens it (its own
  process, its user namespace, its capabilities): /proc is opened by the
  guest's opener (``Opener``, ``_native/opener.c``), a process in the
  sandbox's namespaces with the guest's ids, as a guest would;
* a FIFO's open waits for the other end: it is made on a thread of its
  own (decisions.Deferred), so the server goes on serving;
* /dev/tty means the *caller's* controlling terminal, which an open by the
  guest kernel would take for its own: the caller's terminal is opened by
  its device number instead.
"""
import errno
import fcntl
import os
import stat

from ..._native._tracer import ffi, lib
from ...abi.fcntl import AT_FDCWD, O_NOCTTY, O_NONBLOCK, O_PATH, O_TMPFILE
from ...abi.signal import SIGKILL       # (the signal module would pull in enum at start-up)
from ...abi.stat import dev_major, dev_minor
from .hostops import openat2


def open_unblocked(path, flags, mode, resolve):
    """The open of path, or None if it names a FIFO whose open must wait.
    The object is first held with O_PATH (which never blocks, nor wakes a
    FIFO's other end) and then reopened through our own fd link: the same
    inode, whatever is renamed meanwhile."""
    if flags & (O_NONBLOCK | O_PATH) or flags & O_TMPFILE == O_TMPFILE:
        return openat2(AT_FDCWD, path, flags, mode, resolve)
    try:
        held = openat2(AT_FDCWD, path, O_PATH | os.O_CLOEXEC | (flags & os.O_NOFOLLOW), 0,
                       resolve)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
        return _create(path, flags, mode, resolve)
    try:
        st = os.fstat(held)
        if stat.S_ISFIFO(st.st_mode):
            return None
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), path)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        return openat2(AT_FDCWD, f"/proc/self/fd/{held}",
                       flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW), 0, 0)
    finally:
        os.close(held)


def _create(path, flags, mode, resolve):
    """A new name: made by this open, so it cannot be a FIFO unless the
    guest raced itself, which then gets the open it asked for, on a
    thread of its own."""
    fd = openat2(AT_FDCWD, path, flags | O_NONBLOCK, mode, resolve)
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_waiting(path, flags, mode, resolve):
    """The open as asked, blocking (a FIFO waits for its other end)."""
    return openat2(AT_FDCWD, path, flags, mode, resolve)


def names_umlpy_itself(host):
    """Whether a host path is one of umlpy's own /proc entries
    (/proc/self, /proc/thread-self, /proc/PID for a thread of umlpy's):
    procfs lets a thread of the same process into them, so an open the
    guest kernel makes there would not be checked as the guest's."""
    parts = host.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "proc":
        return False
    first = parts[2]
    if first in ("self", "thread-self"):
        return True
    return first.isdigit() and (int(first) == os.getpid() or
                                os.path.exists(f"/proc/self/task/{int(first)}"))


def controlling_tty(tid):
    """Host path of thread tid's controlling terminal, from tty_nr in
    /proc/TID/stat; ENXIO if it has none (as open("/dev/tty") fails)."""
    with open(f"/proc/{tid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    tty_nr = int(fields[4])
    if tty_nr == 0:
        raise OSError(errno.ENXIO, "no controlling terminal")
    major, minor = dev_major(tty_nr), dev_minor(tty_nr)
    if 136 <= major < 144:
        return f"/dev/pts/{(major - 136) * 256 + minor}"
    rdev = os.makedev(major, minor)
    for name in os.listdir("/dev"):
        path = "/dev/" + name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
            return path
    raise OSError(errno.ENXIO, "controlling terminal not found")


def open_controlling_tty(tid, flags):
    """The caller's terminal.  Having it as controlling terminal is what
    lets a process open /dev/tty, whoever owns the device node, so the
    guest kernel opens it with its own rights; never as a new controlling
    terminal of umlpy's."""
    path = controlling_tty(tid)
    fd = os.open(path, (flags & ~O_PATH) | O_NOCTTY | O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode):
        os.close(fd)
        raise OSError(errno.ENXIO, path)
    if not flags & O_NONBLOCK:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_NONBLOCK)
    return fd


class Opener:
    """The guest's opener process, started on first use (a procfs open)
    and again if it died; killed with the sandbox."""

    def __init__(self, init_pid, clone_flags, uid, gid):
        self.init_pid, self.clone_flags, self.uid, self.gid = init_pid, clone_flags, uid, gid
        self.sock = None
        self.pid = None

    def _start(self):
        pid = ffi.new("int *")
        sock = lib.umlpy_opener_start(self.init_pid, self.clone_flags, self.uid, self.gid, pid)
        if sock < 0:
            raise OSError(-sock, f"cannot start the guest's opener: {os.strerror(-sock)}")
        self.sock, self.pid = sock, pid[0]

    def open(self, path, flags, mode=0):
        for attempt in (0, 1):
            if self.sock is None:
                self._start()
            fd = lib.umlpy_opener_open(self.sock, os.fsencode(path), flags, mode)
            if fd >= 0:
                return fd
            if -fd not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN) or attempt:
                raise OSError(-fd, os.strerror(-fd), path)
            self.close()            # it died (killed from outside): once more

    def close(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, SIGKILL)
            except ProcessLookupError:
                pass
        if self.sock is not None:
            os.close(self.sock)
        self.sock = self.pid = None
