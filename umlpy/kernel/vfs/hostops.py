"""The tracer's own file operations on host trees: every path it touches
below a layer's root is opened with openat2 so that no symlink is followed
and nothing outside the root can be reached, whoever swapped what."""
import errno
import os
import stat

from ..._native._tracer import ffi, lib
from ...abi.fcntl import AT_EACCESS, AT_FDCWD, AT_SYMLINK_NOFOLLOW, O_PATH, \
    RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS
from ...abi.sched import KCMP_FILES, KCMP_FS
from ...abi.stat import S_ISGID, S_ISUID, STATFS, STATX, STATX_BTIME, STATX_INO
from ...abi.time import TIMESPEC
from ..syscalls.names import SYSCALL_NUMBERS

SAFE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


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


def getdents64(fd, count):
    """The bytes getdents64 gives on our fd fd, or -errno."""
    count = min(count, 1 << 20)
    buf = ffi.new("char[]", count)
    n = lib.umlpy_getdents64(fd, buf, count)
    return n if n < 0 else ffi.buffer(buf, n)[:]


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


SYS_KCMP = SYSCALL_NUMBERS["kcmp"]


def same_fd_table(pid1, pid2):
    """Whether two processes share one fd table (CLONE_FILES)."""
    try:
        return syscall(SYS_KCMP, pid1, pid2, KCMP_FILES, 0, 0) == 0
    except OSError:
        return False


def same_fs(pid1, pid2):
    """Whether two processes share one root and working directory
    (CLONE_FS)."""
    try:
        return syscall(SYS_KCMP, pid1, pid2, KCMP_FS, 0, 0) == 0
    except OSError:
        return False


class DirFd:
    """An O_PATH fd of the directory holding rel's last component, below
    root_fd, reached without following any symlink."""
    __slots__ = ("fd", "name")

    @classmethod
    def of_path(cls, host_path):
        """For an absolute host path of the host's own (a lower layer, the
        content cache): its directory is opened without following symlinks."""
        return cls(AT_FDCWD, host_path.lstrip("/"), beneath=False)

    def __init__(self, root_fd, rel, beneath=True):
        parent, _, name = rel.rpartition("/")
        self.name = name or "."     # the root itself
        if not beneath:
            self.fd = openat2(AT_FDCWD, "/" + parent, O_PATH | os.O_DIRECTORY, 0,
                              RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
        elif parent:
            self.fd = openat2(root_fd, parent, O_PATH | os.O_DIRECTORY)
        else:
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


# ---- operations the guest kernel performs for a guest thread --------------
# Each runs on an identity worker (hostid.py) whose working directory is the
# parent directory fd, on one component that is never followed if it is a
# symlink: nothing the guest swaps in can send the operation elsewhere.

SYS_FCHMODAT2 = SYSCALL_NUMBERS["fchmodat2"]
SYS_UTIMENSAT = SYSCALL_NUMBERS["utimensat"]


def syscall(nr, *args):
    """nr(*args) made by this thread (on an identity worker: as its
    identity).  A bytes argument is passed as a pointer to a NUL-ended
    copy, None as NULL; OSError on failure."""
    keep, values = [], []
    for a in args:
        if a is None:
            values.append(0)
        elif isinstance(a, (bytes, bytearray)):
            buf = ffi.new("char[]", bytes(a))
            keep.append(buf)
            values.append(int(ffi.cast("intptr_t", buf)))
        else:
            values.append(a)
    r = lib.umlpy_syscall6(nr, *values, *[0] * (6 - len(values)))
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return r


def fchmod_nofollow(dirfd, name, mode):
    """fchmodat2(AT_SYMLINK_NOFOLLOW): a symlink gets EOPNOTSUPP, as Linux's."""
    syscall(SYS_FCHMODAT2, dirfd, os.fsencode(name), mode, AT_SYMLINK_NOFOLLOW)


def chmod_setid_apart(dirfd, name, mode):
    """fchmod_nofollow, but a regular file gets no set-user-ID or
    set-group-ID bit on the host (union.UnionFS.note_setid keeps them):
    (st_dev, st_ino) of a regular file, else None."""
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        fchmod_nofollow(dirfd, name, mode)
        return None
    fchmod_nofollow(dirfd, name, mode & ~(S_ISUID | S_ISGID))
    return st.st_dev, st.st_ino


def utimens_nofollow(dirfd, name, times):
    """times: None (now) or the bytes of struct timespec[2] (UTIME_NOW and
    UTIME_OMIT as the guest gave them)."""
    syscall(SYS_UTIMENSAT, dirfd, os.fsencode(name),
            None if times is None else bytes(times)[:2 * TIMESPEC.size],
            AT_SYMLINK_NOFOLLOW)


def truncate_regular(dirfd, name, length):
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY,
                 dir_fd=dirfd)
    try:
        import stat as _st
        if not _st.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.ftruncate(fd, length)
    finally:
        os.close(fd)


def in_dir(dirfd, name, fn, *args):
    """fn(name, *args) with the worker's own working directory at dirfd
    (for the calls that take only a path: xattrs, inotify watches); name
    is one component, never followed."""
    os.fchdir(dirfd)
    return fn(name, *args)


def llistxattr(name):
    return os.listxattr(name, follow_symlinks=False)


def lgetxattr(name, attr):
    return os.getxattr(name, attr, follow_symlinks=False)


def lsetxattr(name, attr, value, flags):
    os.setxattr(name, attr, value, flags, follow_symlinks=False)


def lremovexattr(name, attr):
    os.removexattr(name, attr, follow_symlinks=False)


# ---- the guest kernel's own xattr operations -------------------------------
# The attributes umlpy emulates (trusted.*, security.capability: xattrs.py)
# are kept and read by the guest kernel itself, after its own checks, which
# are Linux's for them: the caller's host identity would be checked as for
# user.*.  They reach the object through the parent directory's fd (opened
# beneath the layer, no symlink followed) and never follow the last
# component, without changing the tracer's working directory.

def _beneath(dirfd, name):
    return f"/proc/self/fd/{dirfd}/{name}"


def own_listxattr(dirfd, name):
    return os.listxattr(_beneath(dirfd, name), follow_symlinks=False)


def own_getxattr(dirfd, name, attr):
    return os.getxattr(_beneath(dirfd, name), attr, follow_symlinks=False)


def own_setxattr(dirfd, name, attr, value, flags):
    os.setxattr(_beneath(dirfd, name), attr, value, flags, follow_symlinks=False)


def own_removexattr(dirfd, name, attr):
    os.removexattr(_beneath(dirfd, name), attr, follow_symlinks=False)


def own_xattrs(dirfd, name):
    """[(host name, value)] of the object, as the guest kernel reads them."""
    found = []
    for attr in own_listxattr(dirfd, name):
        try:
            found.append((attr, own_getxattr(dirfd, name, attr)))
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.EACCES, errno.EPERM, errno.EOPNOTSUPP):
                raise
    return found


SYS_STATX = SYSCALL_NUMBERS["statx"]


def object_key(dirfd, name):
    """What tells one host object from every other, even after its inode
    number is given to a new one: its device, inode number and birth time
    (where the filesystem has one), not followed."""
    buf = ffi.new(f"char[{STATX.size}]")
    path = ffi.new("char[]", os.fsencode(name))
    r = lib.umlpy_syscall6(SYS_STATX, dirfd, int(ffi.cast("intptr_t", path)), AT_SYMLINK_NOFOLLOW,
                           STATX_INO | STATX_BTIME, int(ffi.cast("intptr_t", buf)), 0)
    if r < 0:
        raise OSError(-r, os.strerror(-r), name)
    x = STATX.todict(ffi.buffer(buf)[:])
    born = (x["stx_btime_sec"], x["stx_btime_nsec"]) if x["stx_mask"] & STATX_BTIME else None
    return x["stx_dev_major"], x["stx_dev_minor"], x["stx_ino"], born


def path_key(host_path):
    """object_key of an absolute host path (None if nothing is there)."""
    parent, _, name = host_path.rpartition("/")
    try:
        fd = os.open(parent or "/", O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        return object_key(fd, name)
    except OSError:
        return None
    finally:
        os.close(fd)


SYS_INOTIFY_ADD_WATCH = SYSCALL_NUMBERS["inotify_add_watch"]


def inotify_add_watch(name, inotify_fd, mask):
    """mask carries IN_DONT_FOLLOW: name is never followed."""
    return syscall(SYS_INOTIFY_ADD_WATCH, inotify_fd, os.fsencode(name), mask)


SYS_FACCESSAT2 = SYSCALL_NUMBERS["faccessat2"]


def access_nofollow(dirfd, name, mode, eaccess):
    flags = AT_SYMLINK_NOFOLLOW | (AT_EACCESS if eaccess else 0)
    syscall(SYS_FACCESSAT2, dirfd, os.fsencode(name), mode, flags)


SYS_FSTATFS = SYSCALL_NUMBERS["fstatfs"]


def fstatfs_bytes(fd):
    """struct statfs of the filesystem fd is on."""
    buf = ffi.new(f"char[{STATFS.size}]")
    r = lib.umlpy_syscall6(SYS_FSTATFS, fd, int(ffi.cast("intptr_t", buf)), 0, 0, 0, 0)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return ffi.buffer(buf)[:]
