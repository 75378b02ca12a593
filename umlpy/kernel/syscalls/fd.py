"""Operations on open file descriptors (the fd family).

The guest's descriptor table is the host's (dup, close-on-exec, CLONE_FILES
and offsets behave exactly as Linux's); the guest kernel knows what each
descriptor is from the host object behind it (vfs.fd_path), and answers the
calls whose result depends on the guest's view of that object."""
import errno
import os
import stat

from ...abi import s32, u32
from ...abi.aio import IOCB, IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV, IOCB_POINTER
from ...abi.fcntl import FALLOC_FL_PUNCH_HOLE
from ...abi.dirent import DT_DIR, pack_dirent, pack_dirent64
from ...abi.fcntl import F_NOTIFY, F_OFD_SETLK, F_OFD_SETLKW, F_SETLEASE, F_SETLK, F_SETLKW
from ...abi.ioctl import FS_IOC32_SETFLAGS, FS_IOC32_SETVERSION, FS_IOC_FSSETXATTR, \
    FS_IOC_SETFLAGS, FS_IOC_SETVERSION, TIOCLINUX, TIOCSTI
from ...abi.uio import IOVEC, UIO_MAXIOV
from ..bounded import ByteBoundedCache, text_bytes
from ..decisions import ALLOW, Return, Rewrite, fail
from ..terminal import SETTERS as TERMINAL_SETTERS
from ..vfs.hostops import getdents64, thread_fd
from .fs import change_xattr, chmod, chown, foreign_host_file, host_checks, host_path_is_ours, \
    refuse_foreign, vfs_call, write_stat
from .fs.xattr import fgetxattr, flistxattr
from .registry import TABLE, Guard, TimedWait

FAMILY = "fd"

# epoll_wait fails with EINTR where poll and select are restarted with the
# time they had left: its deadline is the native tracer's to keep
TABLE.timed_wait(FAMILY, "epoll_wait", TimedWait(3, timespec=False))
TABLE.timed_wait(FAMILY, "epoll_pwait", TimedWait(3, timespec=False))
TABLE.timed_wait(FAMILY, "epoll_pwait2", TimedWait(3, timespec=True))

TABLE.passthrough(
    FAMILY,
    "read", "write", "pread64", "pwrite64", "readv", "writev",
    "preadv", "pwritev", "preadv2", "pwritev2",
    "close", "close_range", "dup", "dup2", "dup3", "lseek",
    "pipe", "pipe2", "select", "pselect6", "poll", "ppoll",
    "epoll_create", "epoll_create1", "epoll_ctl",
    "eventfd", "eventfd2", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
    "fallocate", "fadvise64", "readahead", "ftruncate",
    "fsync", "fdatasync", "sync_file_range", "syncfs",
    "fstatfs",
    "cachestat",
    "memfd_create", "memfd_secret",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents",
)

# inode flags and project attributes (chattr): changes of the object itself
FS_ATTR_SETTERS = (FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR, FS_IOC_SETVERSION,
                   FS_IOC32_SETVERSION)


@TABLE.guarded(FAMILY, "ioctl",
               Guard(1, value=(TIOCSTI, TIOCLINUX) + FS_ATTR_SETTERS + tuple(TERMINAL_SETTERS)),
               why="TIOCSTI and TIOCLINUX would push input into (or read) the terminal "
               "umlpy shares with the user's shell; what a guest sets on that terminal "
               "(line settings, window size, TIOCEXCL, foreground...) is set back when the "
               "sandbox ends; inode flags may change only objects of the sandbox's own "
               "storage")
@vfs_call
def sys_ioctl(call, vfs, task):
    cmd = call.uint(1)
    if cmd == TIOCSTI:
        return fail(errno.EIO)      # as Linux with dev.tty.legacy_tiocsti = 0
    if cmd == TIOCLINUX:
        return fail(errno.EPERM)
    fd = call.fd(0)
    if cmd in TERMINAL_SETTERS:
        terminal = call.kernel.terminal
        if terminal is not None:
            terminal.note(cmd, call.tid, fd)
        return ALLOW
    if not host_object_of_the_hosts(vfs, task, fd) and not foreign_host_file(vfs, task.tid, fd):
        return ALLOW
    return fail(errno.EPERM)    # a host (lower) object: as to a non-owner


LOCKS = (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW)


@TABLE.guarded(FAMILY, "fcntl", Guard(1, value=LOCKS + (F_SETLEASE, F_NOTIFY)),
               why="locks, leases and directory notification on an object of the host's "
               "tree would reach the host's processes")
@vfs_call
def sys_fcntl(call, vfs, task):
    fd = call.fd(0)
    cmd = call.uint(1)
    if not host_object_of_the_hosts(vfs, task, fd):
        # A lease on a file umlpy's caller handed over would delay the
        # host's opens of it; its locks are real (they change nothing, and
        # end with the sandbox).
        if cmd == F_SETLEASE and foreign_host_file(vfs, task.tid, fd):
            return fail(errno.EACCES)
        return ALLOW
    if cmd == F_SETLEASE:
        return fail(errno.EACCES)       # as for a file one does not own
    # A lock on a read-only host object holds among the guest's own
    # processes only in spirit: it is granted, and the host never sees it
    # (a real one would block the host's processes).
    return Return(0)


@TABLE.emulated(FAMILY, "flock", "a lock on an object of the host's tree is granted without "
                "the host seeing it (it would block the host's processes)")
@vfs_call
def sys_flock(call, vfs, task):
    fd = call.fd(0)
    if not host_object_of_the_hosts(vfs, task, fd):
        return ALLOW
    return Return(0)


TABLE.unsupported(
    FAMILY, "names a path relative to a dirfd, with its attributes in memory; the VFS "
    "does not serve it yet", "file_getattr", "file_setattr",
)
TABLE.denied(
    FAMILY, errno.EPERM, "could fill pages of the guest kernel's scratch memory (as with "
    "vm.unprivileged_userfaultfd = 0)", "userfaultfd",
)

TABLE.unsupported(
    FAMILY,
    "io_uring runs file and network operations in the kernel without a "
    "syscall the sandbox could see; programs fall back to plain syscalls",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)


@TABLE.emulated(FAMILY, "fstat", "answered from the guest VFS for its objects")
@vfs_call
def sys_fstat(call, vfs, task):
    res = vfs.resolve_fd(task, call.fd(0))
    if res is None:
        return ALLOW            # a pipe, a socket...: the host knows it
    return write_stat(call, res, call.args[1])


def lower_object(vfs, task, fd):
    """The Lookup of fd's object unless the host object behind fd is one
    the guest may change in place (in the sandbox's own storage or a
    writable bind) and the host's checks are the guest's; else changing
    it goes through the guest path (copy-up; under emulated ids the guest
    kernel's checks, fs.host_checks).  Judged by the fd's host object, not
    by the guest path: an fd opened before its file was copied up still
    holds the lower (host) file."""
    res = vfs.resolve_fd(task, fd)
    if res is None:
        return None
    if host_object_is_ours(vfs, task.tid, fd):
        d = res.dentry
        if host_checks(task, d) and not res.mount.read_only:
            return None
    return res


def host_object_of_the_hosts(vfs, task, fd):
    """Whether fd is a guest filesystem object whose host object belongs to
    the host's own tree (not to the sandbox's storage or a writable bind):
    changing it in place would change the host."""
    return vfs.resolve_fd(task, fd) is not None and not host_object_is_ours(vfs, task.tid, fd)


def host_object_is_ours(vfs, tid, fd):
    return host_path_is_ours(vfs, vfs.fd_host_path(tid, fd))


@TABLE.emulated(FAMILY, "fchmod", "a lower object is copied up and changed there")
@vfs_call
def sys_fchmod(call, vfs, task):
    res = lower_object(vfs, task, call.fd(0))
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or ALLOW
    return chmod(call, vfs, task, res, call.args[1] & 0o7777)


@TABLE.emulated(FAMILY, "fchown", "a lower object is copied up and changed there")
@vfs_call
def sys_fchown(call, vfs, task):
    res = lower_object(vfs, task, call.fd(0))
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or ALLOW
    return chown(call, vfs, task, res, call.args[1], call.args[2])


# The xattr calls on an fd are the path calls' (fs/xattr.py) on what the
# fd is, whatever host object holds it: the emulated attributes live under
# names the host would show.  An fd that is no guest filesystem object (a
# pipe, a socket, a bad fd) is the host's to answer, but a change through
# a host file umlpy's caller handed over is refused.

@TABLE.emulated(FAMILY, "fgetxattr", "read where the fd's object keeps the attribute")
@vfs_call
def sys_fgetxattr(call, vfs, task):
    res = vfs.resolve_fd(task, call.fd(0))
    return ALLOW if res is None else fgetxattr(call, task, res)


@TABLE.emulated(FAMILY, "flistxattr", "the names of the fd's object, as listxattr's")
@vfs_call
def sys_flistxattr(call, vfs, task):
    res = vfs.resolve_fd(task, call.fd(0))
    return ALLOW if res is None else flistxattr(call, task, res)


@TABLE.emulated(FAMILY, "fsetxattr", "a lower object is copied up and changed there")
@vfs_call
def sys_fsetxattr(call, vfs, task):
    a = call.args
    res = vfs.resolve_fd(task, call.fd(0))
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or ALLOW
    return change_xattr(call, task, res, a[1], a[2], a[3], call.int(4))


@TABLE.emulated(FAMILY, "fremovexattr", "a lower object is copied up and changed there")
@vfs_call
def sys_fremovexattr(call, vfs, task):
    a = call.args
    res = vfs.resolve_fd(task, call.fd(0))
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or ALLOW
    return change_xattr(call, task, res, a[1], remove=True)


# ---- directory listings ---------------------------------------------------

# The listings kept for guests reading on (issue 12: 150 listings of a
# 20k-entry directory through fds kept open held 980 MB).  A listing
# dropped early is made again where the guest reads on.
LISTINGS_BYTES = 16 << 20
_ENTRY_BYTES = 160      # a (name, type, ino) tuple, its str and int, a list slot


class Listings:
    """The entries of directories being read, per (tid, fd, path): a
    listing is made when a read starts at offset 0 and kept while the guest
    reads on, in a cache bounded by bytes (kernel/bounded.py), whatever
    the guest varies (fds, threads, paths)."""

    def __init__(self, limit=LISTINGS_BYTES):
        self.cache = ByteBoundedCache(limit)

    def entries(self, key, pos, make):
        cached = self.cache.get(key)
        if pos == 0 or cached is None:
            cached = make()
            size = sum(len(e[0]) for e in cached) + _ENTRY_BYTES * len(cached)
            self.cache.put(key, cached, size + text_bytes(key[2]))
        return cached

    def forget_threads(self, tids):
        """Drop the listings of these threads (an exec closed their fds)."""
        for key in [k for k in self.cache if k[0] in tids]:
            self.cache.pop(key)


def directory_entries(vfs, res):
    d = res.dentry
    parent = res.parents[-1].dentry if res.parents and res.parents[-1].dentry is not d else d
    out = [(".", DT_DIR, d.attr.ino), ("..", DT_DIR, parent.attr.ino)]
    names = set()
    for name, dtype, ino in d.fs.listdir(d):
        names.add(name)
        out.append((name, dtype, ino))
    for name in vfs.mounts.mounted_names(res.path):
        if name not in names:
            mount = vfs.mounts.by_path[res.path.rstrip("/") + "/" + name]
            try:
                attr = mount.fs.root().attr     # a file bind is no directory
                dtype, ino = attr.d_type(), attr.ino
            except OSError:
                dtype, ino = DT_DIR, 0xFFFF0000 + len(out)
            out.append((name, dtype, ino))
    return out


def host_listing(call, dup, buf, count):
    """getdents64 on our copy of the guest's fd (the same open file, so the
    same offset): the host's own listing, as the guest would get it."""
    try:
        data = getdents64(dup, count)
    finally:
        os.close(dup)
    if isinstance(data, int):
        return fail(-data)
    if data:
        call.write(buf, data)
    return Return(len(data))


def getdents(call, vfs, task, new_layout):
    fd = call.fd(0)
    buf, count = call.args[1], call.uint(2)
    # Listed here, on a copy of the caller's fd whose link is read once:
    # what is checked is what is listed and remembered, whatever another
    # guest thread does to its fd table meanwhile.
    try:
        dup = thread_fd(call.tid, task.tgid, fd)
    except OSError as e:
        return fail(e.errno or errno.EBADF)
    host = vfs.fd_host_path(os.getpid(), dup)
    # only a directory is listed: the link of an fd of another mount
    # namespace's object (an mq_open queue's "/name") may name a guest
    # directory, which the caller's fd is not
    is_dir = stat.S_ISDIR(os.fstat(dup).st_mode)
    res = vfs.resolve_link(task, vfs.guest_path_of_link(host)) if is_dir else None
    if res is None or not res.dentry.attr.is_dir():
        os.close(dup)
        if res is None and is_dir:
            # a directory of no guest filesystem (none is ever opened for a
            # guest): not listed
            return fail(errno.EPERM)
        return fail(errno.ENOTDIR)
    if vfs.host_lists(res.dentry, res.path, res.mount):
        call.kernel.fastpath.remember_listing(task, res, host)
        if new_layout:
            return host_listing(call, dup, buf, count)
    try:
        pos = os.lseek(dup, 0, os.SEEK_CUR)
        kernel = call.kernel
        entries = kernel.listings.entries((call.tid, fd, res.path), pos,
                                          lambda: directory_entries(vfs, res))
        out = bytearray()
        i = pos
        while i < len(entries):
            name, dtype, ino = entries[i]
            raw = os.fsencode(name)
            rec = (pack_dirent64 if new_layout else pack_dirent)(ino or 1, i + 1, dtype, raw)
            if len(out) + len(rec) > count:
                if not out:
                    return fail(errno.EINVAL)
                break
            out += rec
            i += 1
        if out:
            call.write(buf, bytes(out))
        os.lseek(dup, i, os.SEEK_SET)
    finally:
        os.close(dup)
    return Return(len(out))


@TABLE.emulated(FAMILY, "getdents64", "listed by the guest VFS (layers merged, whiteouts "
                "hidden, mountpoints shown)")
@vfs_call
def sys_getdents64(call, vfs, task):
    return getdents(call, vfs, task, True)


@TABLE.emulated(FAMILY, "getdents", "listed by the guest VFS")
@vfs_call
def sys_getdents(call, vfs, task):
    return getdents(call, vfs, task, False)


# --disk: every call that can grow a file in the sandbox's storage is
# granted bytes by the sandbox's quota (kernel/limits.py DiskQuota).  A
# write that does not fit is shortened to what fits, then fails with
# ENOSPC, as on a full filesystem.  A file grown by ftruncate counts at
# its new size, holes too: what a shared mapping writes into it then
# stays within what was counted (there is no call to count it by).
QUOTA_WHY = "counted against the sandbox's quota: shortened, then ENOSPC"
MAX_S64 = 0x7FFFFFFFFFFFFFFF        # a count the host takes as a size_t, at most SSIZE_MAX


def _granted(call, fd_index, count_index, count):
    """The decision for a call writing count bytes to args[fd_index]."""
    fd = s32(call.args[fd_index])
    if fd < 0:
        return None
    try:
        path = os.readlink(f"/proc/{call.tid}/fd/{fd}")
    except OSError:
        return None
    quota = call.kernel.disk_quota
    if quota is None or not path.startswith("/") or not quota.covers(path):
        return None
    granted = quota.grant(count)
    if granted == count:
        return None
    if granted <= 0 or count_index is None:
        return fail(errno.ENOSPC)
    args = list(call.args)
    args[count_index] = granted
    return Rewrite(call.nr, args)


def _quota_plain(fd_index, count_index):
    def grant(call):
        return _granted(call, fd_index, count_index, call.args[count_index] & MAX_S64)
    return grant


def _quota_vectored(fd_index, iov_index, cnt_index):
    def grant(call):
        count = min(u32(call.args[cnt_index]), UIO_MAXIOV)
        try:
            raw = call.read(call.args[iov_index], IOVEC.size * count) if count else b""
        except OSError:
            return None
        total = sum(IOVEC.unpack_from(raw, i * IOVEC.size)[1] for i in range(count))
        return _granted(call, fd_index, None, total)
    return grant


for _names, _grant in (
        (("write", "pwrite64"), _quota_plain(0, 2)),
        (("writev", "pwritev", "pwritev2"), _quota_vectored(0, 1, 2)),
        (("copy_file_range", "splice"), _quota_plain(2, 4)),
        (("sendfile",), _quota_plain(0, 3))):
    TABLE.when("disk", *_names, why=QUOTA_WHY)(_grant)


def _storage_file(call, fd):
    """The size of the file fd is, if it is in the sandbox's storage."""
    if fd < 0:
        return None
    try:
        path = os.readlink(f"/proc/{call.tid}/fd/{fd}")
        st = os.stat(f"/proc/{call.tid}/fd/{fd}")
    except OSError:
        return None
    quota = call.kernel.disk_quota
    if quota is None or not path.startswith("/") or not quota.covers(path) or \
            not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size


@TABLE.when("disk", "ftruncate", why="a file grows only as far as the quota allows "
            "(ENOSPC), holes counted")
def ftruncate_quota(call):
    size = _storage_file(call, call.fd(0))
    growth = call.long(1) - (size or 0)
    if size is None or growth <= 0:
        return None
    try:
        call.kernel.disk_quota.reserve(growth)
    except OSError as e:
        return fail(e.errno)
    return None


@TABLE.when("disk", "io_submit", why="AIO writes into the sandbox's storage are counted; "
            "a submission that does not fit fails whole with ENOSPC")
def io_submit_quota(call):
    count = min(call.long(1), 4096)
    if count <= 0:
        return None
    try:
        pointers = call.read(call.ptr(2), count * IOCB_POINTER.size)
    except OSError:
        return None             # the host fails it with EFAULT
    total = 0
    for i in range(count):
        try:
            address = IOCB_POINTER.get(pointers, "iocb", i * IOCB_POINTER.size)
            cb = IOCB.todict(call.read(address, IOCB.size))
        except OSError:
            return None
        if cb["aio_lio_opcode"] not in (IOCB_CMD_PWRITE, IOCB_CMD_PWRITEV):
            continue
        if _storage_file(call, s32(cb["aio_fildes"])) is None:
            continue
        if cb["aio_lio_opcode"] == IOCB_CMD_PWRITE:
            total += cb["aio_nbytes"]
        else:
            vectors = min(cb["aio_nbytes"], UIO_MAXIOV)
            try:
                raw = call.read(cb["aio_buf"], IOVEC.size * vectors) if vectors else b""
            except OSError:
                return None
            total += sum(IOVEC.unpack_from(raw, j * IOVEC.size)[1] for j in range(vectors))
    if total:
        try:
            call.kernel.disk_quota.reserve(total)
        except OSError as e:
            return fail(e.errno)
    return None


@TABLE.when("disk", "fallocate", why=QUOTA_WHY)
def fallocate_quota(call):
    if u32(call.args[1]) & FALLOC_FL_PUNCH_HOLE:
        return None
    return _granted(call, 0, None, call.args[3] & MAX_S64)
