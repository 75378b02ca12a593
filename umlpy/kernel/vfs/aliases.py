"""Host names for objects in the guest's writable trees that the guest's
own process must still name by path (a UNIX socket it connects or sends
to, a program of its own it executes).

A host path inside the upper layer (or a writable bind) runs through
directories the guest can change: between the guest kernel's check and
the host's lookup, a racing guest thread could swap one for a symlink to
the host.  So the guest kernel hard-links the very inode it checked into
a directory of the sandbox's state that no guest path reaches (and which
only the tracer's user may change), from directory fds, without following
anything, and hands the host that alias: a path with no component the
guest controls.  Aliases are kept per inode (bounded, oldest dropped)."""
import errno
import os
import stat as _stat
from collections import OrderedDict

MAX_ALIASES = 1024


class Aliases:
    def __init__(self, directory):
        self.dir = directory
        os.mkdir(directory)
        os.chmod(directory, 0o711)      # whatever umlpy's umask (the caller's) is
        self.dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        self.dev = os.stat(self.dir_fd).st_dev
        self._by_inode = OrderedDict()      # (dev, ino) -> alias name
        self._counter = 0

    def of(self, dentry, kind):
        """The alias host path of dentry's object, which must be of kind
        (S_IFSOCK, S_IFREG); None when its filesystem is another device
        than the sandbox's state, or another mount of it (a bind elsewhere,
        or one mounted in the state: no hard link across)."""
        with dentry.fs.object_dir(dentry, False) as d:
            st = os.stat(d.name, dir_fd=d.fd, follow_symlinks=False)
            if _stat.S_IFMT(st.st_mode) != kind:
                raise OSError(errno.ECONNREFUSED if kind == _stat.S_IFSOCK else errno.EACCES,
                              "not the object that was checked")
            if st.st_dev != self.dev:
                return None
            key = (st.st_dev, st.st_ino)
            name = self._by_inode.get(key)
            if name is not None:
                try:
                    if os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False).st_ino \
                            == st.st_ino:
                        self._by_inode.move_to_end(key)
                        return f"{self.dir}/{name}"
                except FileNotFoundError:
                    pass
            self._counter += 1
            name = str(self._counter)
            try:
                os.link(d.name, name, src_dir_fd=d.fd, dst_dir_fd=self.dir_fd,
                        follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                return None     # another mount of the same device: no link across
        # the link is of what the name held when linked: check it is still
        # the object (a guest may have swapped the name in between)
        linked = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
        if (linked.st_dev, linked.st_ino) != key:
            os.unlink(name, dir_fd=self.dir_fd)
            raise OSError(errno.EAGAIN, "the object changed under the guest kernel")
        self._by_inode[key] = name
        while len(self._by_inode) > MAX_ALIASES:
            _key, old = self._by_inode.popitem(last=False)
            try:
                os.unlink(old, dir_fd=self.dir_fd)
            except OSError:
                pass
        return f"{self.dir}/{name}"
