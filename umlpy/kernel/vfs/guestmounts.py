"""Mounts a guest makes itself (mount(2), umount2(2)), in the guest VFS's
mount table: never the host's.  A container's init and test suites mount
a tmpfs, bind a directory elsewhere, mount another proc or sysfs; these
are filesystems the guest kernel already has, put at another path, and
the POSIX message queues of the guest's own IPC namespace (mqueuefs.py).
Block devices and loop mounts are not (ENODEV): the sandbox has no disks."""
import errno
import os

from .mqueuefs import MqueueFS, mount_for


class SubtreeFS:
    """A bind mount: the directory (or file) at rel of another filesystem
    as the root of a mount.  Every object below is that filesystem's own
    (its dentries, its rules); only the root and the host-to-guest path
    mapping are this mount's."""

    def __init__(self, base, rel, read_only=False):
        self.base, self.rel = base, rel
        self.read_only = read_only or base.read_only

    def __getattr__(self, name):
        return getattr(self.base, name)

    def root(self):
        """Looked up again at each crossing: the object may have been
        copied up (or removed) since the bind."""
        d = self.base.root()
        for name in filter(None, self.rel.split("/")):
            d = self.base.lookup(d, name)
            if d is None:
                raise OSError(errno.ENOENT, "the bind's source is gone")
        return d

    def reverse(self, host_path):
        rel = self.base.reverse(host_path)
        if rel is None or not self.rel:
            return rel
        if rel == self.rel:
            return ""
        return rel[len(self.rel) + 1:] if rel.startswith(self.rel + "/") else None


class GuestMounts:
    """What mount(2) may put in the table: new tmpfs directories in the
    sandbox's state, and the filesystems already mounted (proc, sysfs,
    devpts) at another path."""

    def __init__(self, sandbox_fs):
        self.sandbox_fs = sandbox_fs
        self.made = 0

    def tmpfs(self, owner, mode):
        """A new, empty tmpfs of the sandbox's own storage, its root owned
        by owner (host uid, gid) with mode."""
        self.made += 1
        fs = self.sandbox_fs._tmpfs(f"gm{self.made}", None, mode)
        try:
            os.chown(fs.root_path, *owner)
        except PermissionError:
            pass            # umlpy is that user already
        return fs

    def mqueue(self, tid, source):
        """The queues of guest thread tid's IPC namespace, as Linux shows
        the mounting process's."""
        root_fd, ns = mount_for(tid)
        # its queues' fds are known by their device (vfs.fd_path)
        self.sandbox_fs.vfs.queue_devs.add(os.stat(root_fd).st_dev)
        self.made += 1
        stand_in = os.path.join(self.sandbox_fs.spool, f"mq{self.made}")
        try:
            os.mkdir(stand_in, 0o555)
        except OSError:
            os.close(root_fd)
            raise
        return MqueueFS(root_fd, ns, self.sandbox_fs.idmap, stand_in, source)

    def already(self, guest_path):
        """The filesystem umlpy mounted at guest_path (/proc, /sys...)."""
        m = self.sandbox_fs.mounts.by_path.get(guest_path)
        return None if m is None else m.fs

    def bind(self, dentry, read_only):
        fs = dentry.fs
        if isinstance(fs, SubtreeFS):
            fs = fs.base
        return SubtreeFS(fs, dentry.rel, read_only)

    def changed(self):
        """Resolutions cached before may now cross (or miss) a mount."""
        union = self.sandbox_fs.union
        union.generation += 1


def tmpfs_mode(data):
    """tmpfs's mode= option (octal), default 1777."""
    for option in (data or "").split(","):
        key, _, value = option.partition("=")
        if key == "mode":
            try:
                return int(value, 8) & 0o7777
            except ValueError:
                raise OSError(errno.EINVAL, "tmpfs mode") from None
    return 0o1777

