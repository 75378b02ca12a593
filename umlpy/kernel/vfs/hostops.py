"""The tracer's own file operations on host trees: every path it touches
below a layer's root is opened with openat2 so that no symlink is followed
and nothing outside the root can be reached, whoever swapped what."""
import errno
import os

from ..._native._tracer import lib

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
SAFE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

O_PATH = 0o10000000


def openat2(dirfd, path, flags, mode=0, resolve=SAFE):
    fd = lib.umlpy_openat2(dirfd, os.fsencode(path), flags, mode, resolve)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), path)
    return fd


def renameat2(olddirfd, old, newdirfd, new, flags=0):
    r = lib.umlpy_renameat2(olddirfd, os.fsencode(old), newdirfd, os.fsencode(new), flags)
    if r < 0:
        raise OSError(-r, os.strerror(-r), old)


def pidfd_getfd(pidfd, fd):
    r = lib.umlpy_pidfd_getfd(pidfd, fd)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return r


PIDFD_THREAD = os.O_EXCL        # Linux 6.9: a pidfd of one thread, not of its group


def thread_fd(tid, tgid, fd):
    """Thread tid's fd, duplicated into the tracer (close it).  Without
    PIDFD_THREAD, pidfd_open refuses a thread that does not lead its group
    (ENOENT): older kernels take the fd from the leader's table, which is
    the thread's unless it unshared it."""
    try:
        pidfd = os.pidfd_open(tid, PIDFD_THREAD)
    except OSError:
        pidfd = os.pidfd_open(tgid)
    try:
        return pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)


KCMP_FILES = 2
SYS_KCMP = 312


def same_fd_table(pid1, pid2):
    """Whether two processes share one fd table (CLONE_FILES)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.syscall(SYS_KCMP, pid1, pid2, KCMP_FILES, 0, 0)
    return r == 0


class DirFd:
    """An O_PATH fd of the directory holding rel's last component, below
    root_fd, reached without following any symlink."""
    __slots__ = ("fd", "name")

    def __init__(self, root_fd, rel):
        parent, _, name = rel.rpartition("/")
        self.name = name
        self.fd = openat2(root_fd, parent, O_PATH | os.O_DIRECTORY) if parent else -1
        if not parent:
            self.fd = os.dup(root_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def lstat_beneath(root_fd, rel):
    """lstat of rel below root_fd, or None if it does not exist."""
    try:
        if not rel:
            return os.stat(root_fd)
        if "/" not in rel:
            return os.stat(rel, dir_fd=root_fd, follow_symlinks=False)
        with DirFd(root_fd, rel) as d:
            return os.stat(d.name, dir_fd=d.fd, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if e.errno in (errno.ELOOP, errno.EXDEV):
            return None     # a symlink swapped in under us: not a path of ours
        raise
