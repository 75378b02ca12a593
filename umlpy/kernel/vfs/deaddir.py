"""A directory that was removed while a process still had it: as its
working directory, or open as a dirfd.

Linux keeps such a directory alive, unlinked (st_nlink 0) and empty:
its "." is the directory itself (stat answers with its attributes, a
mkdir of "." is EEXIST), nothing is found in it and nothing can be made
in it (ENOENT).  The guest kernel shows it as a filesystem of one
object that holds no names; its attributes are read from a host fd of
the directory itself: the guest's own dirfd, or one the guest kernel
took before it removed a working directory (HeldDir)."""
import errno
import os
import stat as _stat

from ...abi.fcntl import O_PATH
from . import hostops
from .fs import Dentry, FileSystem
from .namei import Frame, Lookup


def gone(*_args, **_kw):
    raise OSError(errno.ENOENT, "the directory was removed")


class DeadDirFS(FileSystem):
    """The removed directory and nothing else."""
    fstype = "removed"
    read_only = False
    # its permission checks are the guest kernel's (a host object's owner
    # may be one the guest's namespace shows otherwise)
    host_backed = False

    def __init__(self, attr):
        self.attr = attr

    def root(self):
        return Dentry(self, "", self.attr)

    def lookup(self, parent, name):
        return None

    # no host object the guest kernel could name by path: every change to
    # it or in it is refused as Linux refuses a change in a dead directory
    host_path = statfs_path = object_dir = host_dir = gone
    create_target = mkdir = unlink = rmdir = rename = link = symlink = gone
    setattr_target = gone


class HeldDir:
    """An O_PATH fd of a working directory, taken just before the guest
    kernel removed it, and the identity (st_dev, st_ino) the guest saw it
    with.  lower: it was the union's lower directory, which the removal
    only hid (a whiteout), so the host still links it."""
    __slots__ = ("fd", "dev", "ino", "lower")

    def __init__(self, fd, dev, ino, lower):
        self.fd, self.dev, self.ino, self.lower = fd, dev, ino, lower

    @classmethod
    def of(cls, dentry, lower):
        """Hold dentry's host directory (None if it cannot be reached)."""
        try:
            with dentry.fs.object_dir(dentry, False) as h:
                fd = os.open(h.name or ".", O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW |
                             os.O_CLOEXEC, dir_fd=h.fd)
        except OSError:
            return None
        return cls(fd, dentry.attr.dev, dentry.attr.ino, lower)

    @classmethod
    def of_guest_fd(cls, tid, tgid, fd):
        """Hold the directory the guest's fd names: reopened O_PATH through
        the guest kernel's own copy of the fd, so no open file of the
        guest's is kept."""
        dup = hostops.thread_fd(tid, tgid, fd)
        try:
            held = os.open(f"/proc/self/fd/{dup}", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        finally:
            os.close(dup)
        st = os.stat(held)
        return cls(held, st.st_dev, st.st_ino, False)

    def attr(self, idmap):
        attr = idmap.attr_of(os.stat(self.fd))
        changes = {"dev": self.dev, "ino": self.ino}
        if self.lower:
            changes.update(nlink=0)
        return attr.copy(**changes)

    def __del__(self):
        # shared by every process whose working directory it is (fork
        # copies the reference): closed with the last of them
        try:
            os.close(self.fd)
        except (OSError, TypeError):
            pass


def is_dead(dentry):
    return isinstance(dentry.fs, DeadDirFS)


def itself(path):
    """Whether a path relative to a directory names the directory itself
    ("", ".", "./", "././"...)."""
    return all(name in ("", ".") for name in path.split("/"))


def lookup_of(attr, where, mount):
    """The Lookup of the removed directory itself, which was at guest path
    where (or None) in mount."""
    dentry = DeadDirFS(attr).root()
    path = where or "/"
    frame = Frame(path, dentry, mount)
    return Lookup([frame], path.rpartition("/")[2] or "/", dentry, path, mount, True)


def attr_of_fd(tid, fd, idmap):
    """The attributes of a guest's dirfd that names a removed directory,
    as fstat of it shows them (None if it is no longer one)."""
    try:
        st = os.stat(f"/proc/{tid}/fd/{fd}")
    except OSError:
        return None
    return idmap.attr_of(st) if _stat.S_ISDIR(st.st_mode) else None
