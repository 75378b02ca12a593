"""mqueue: the POSIX message queues of a guest's IPC namespace as a
filesystem (Linux's ipc/mqueue.c), for a guest's ``mount -t mqueue``.

A queue made by mq_open in the guest (a call the host serves itself, in
the sandbox's own IPC namespace) shows as a file of the mount; reading it
gives its "QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:..." line, unlinking
it is mq_unlink, an open with O_CREAT makes a queue.

The guest kernel holds the filesystem as a detached mount (``opener.c``
``umlpy_mqueue_mount``: made in the IPC namespace of the guest thread
that mounts it, attached nowhere): every object is reached beneath that
fd, one name deep, without following links, and every operation is the
guest kernel's own, as the caller's host identity.  No host path leads
into it, so nothing the guest's own process runs can name it: the root
directory is stood for by an empty host directory (a working directory,
an fd to list, as synth.py's directories are), and a queue's file is
opened by the guest kernel and handed over (at a ptrace stop, where no
fd can be handed over, the guest's own process opens it by mq_open in
that same namespace: the same object, see ``open_rewrite``)."""
import errno
import os

from ..._native._tracer import lib
from ...abi.dirent import DT_REG
from ...abi.fcntl import O_CLOEXEC, O_CREAT, O_EXCL, O_LARGEFILE, O_NOCTTY, O_NOFOLLOW, \
    O_NONBLOCK, O_TRUNC
from . import hostops
from .fs import Dentry, FileSystem

# what an open of a queue's file at a ptrace stop may ask of mq_open,
# which takes the access mode, O_CREAT, O_EXCL and O_NONBLOCK (O_TRUNC
# changes nothing on a queue, O_CLOEXEC is set again as asked)
MQ_OPEN_FLAGS = os.O_ACCMODE | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC | O_TRUNC | \
    O_LARGEFILE | O_NOCTTY | O_NOFOLLOW


def ns_of(tid):
    """(st_dev, st_ino) of thread tid's IPC namespace."""
    st = os.stat(f"/proc/{tid}/ns/ipc")
    return st.st_dev, st.st_ino


def mount_for(tid):
    """A detached mount of the mqueue filesystem of guest thread tid's IPC
    namespace (an O_PATH fd of its root), and that namespace's identity.

    The thread is stopped in its mount call and cannot be reaped while
    the guest kernel decides (the ptrace loop takes the same lock), so
    its tid names it throughout.  Guests always have an IPC namespace of
    their own; one that is umlpy's (the host's) is refused all the same:
    its queues are never the guest's."""
    fd = os.open(f"/proc/{tid}/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        ns = (st.st_dev, st.st_ino)
        if ns == ns_of("self"):
            raise OSError(errno.EPERM, "the host's IPC namespace")
        root = lib.umlpy_mqueue_mount(fd)
    finally:
        os.close(fd)
    if root < 0:
        raise OSError(-root, os.strerror(-root))
    return root, ns


def is_queue_fd(vfs, tid, fd, link):
    """Whether a guest's fd (link: its /proc link text) is a queue of the
    filesystem of a mount the guest made.  Its link names it by its name
    in the queues' own root ("/q", as an mq_open fd's does), which would
    pass for a guest path: a queue is no guest path's object."""
    if not vfs.queue_devs or not link or not link.startswith("/") or "/" in link[1:]:
        return False
    try:
        return os.stat(f"/proc/{tid}/fd/{fd}").st_dev in vfs.queue_devs
    except OSError:
        return False


class MqueueFS(FileSystem):
    """One IPC namespace's queues: a directory of files, one name deep."""
    fstype = "mqueue"
    read_only = False
    # no host path reaches its objects: the guest kernel checks and acts
    host_backed = False

    def __init__(self, root_fd, ns, idmap, stand_in, source):
        self.root_fd, self.ns, self.idmap = root_fd, ns, idmap
        self.stand_in = stand_in        # the empty host directory standing for the root
        self.source = source or "none"

    def root(self):
        return Dentry(self, "", self.idmap.attr_of(os.stat(self.root_fd)))

    def lookup(self, parent, name):
        # no cache: queues come and go by mq_open and mq_unlink, which the
        # host serves without the guest kernel
        if parent.rel or name in (".", "..") or "/" in name:
            return None
        try:
            st = os.stat(name, dir_fd=self.root_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Dentry(self, name, self.idmap.attr_of(st))

    def listdir(self, dentry):
        if dentry.rel:
            raise OSError(errno.ENOTDIR, dentry.rel)
        fd = hostops.openat2(self.root_fd, ".", os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
        try:
            with os.scandir(fd) as it:
                return [(e.name, DT_REG, e.inode()) for e in it]
        finally:
            os.close(fd)

    def host_path(self, dentry):
        if not dentry.rel:
            return self.stand_in
        raise OSError(errno.EACCES, "a queue has no host path")

    def reverse(self, host_path):
        return "" if host_path == self.stand_in else None

    def read_head(self, dentry, size):
        raise OSError(errno.EACCES, "not executable")

    # changes: made beneath the root fd by the guest kernel (common.on_host,
    # on_host_at), so the host's mqueue says what it allows (no mkdir,
    # symlink, link or rename: EPERM)
    def create_target(self, parent, name):
        return None

    mkdir = create_target

    def setattr_target(self, dentry):
        return None

    def host_dir(self, rel):
        return hostops.DirFd(self.root_fd, rel)

    def object_dir(self, dentry, write):
        return hostops.DirFd(self.root_fd, dentry.rel)

    def open(self, name, flags, mode):
        """Our own fd of the queue name (opened beneath the root, never
        following a link), for the caller's open."""
        return hostops.openat2(self.root_fd, name, flags | O_CLOEXEC, mode)

    def __del__(self):
        # with the last mount showing it (a bind of it, a moved mount
        # share this object): the queues stay, they are the namespace's
        try:
            os.close(self.root_fd)
        except (OSError, TypeError):
            pass
