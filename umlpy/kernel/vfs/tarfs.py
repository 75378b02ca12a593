"""A stack of tar images (``tarimage.TarTree``) as the guest's read-only
lower layer: metadata from the index, data materialised into the shared
content cache only when the host must touch a file."""
import errno
import os

from .attr import Attr
from .fs import Dentry, FileSystem


class TarFS(FileSystem):
    fstype = "tarfs"
    host_backed = False

    def __init__(self, tree):
        self.tree = tree
        self.source = ",".join(tree.images)
        self.dev = os.makedev(0, 0x40 + (hash(tree.digest) & 0x3F))

    def _attr(self, e):
        return Attr(e.mode, e.ino, self.dev, e.nlink, e.uid, e.gid, e.rdev, e.size,
                    atime_ns=e.mtime_ns, mtime_ns=e.mtime_ns)

    def root(self):
        return Dentry(self, "", self._attr(self.tree.lookup("")))

    def lookup(self, parent, name):
        rel = parent.child_rel(name)
        e = self.tree.lookup(rel)
        return None if e is None else Dentry(self, rel, self._attr(e))

    def _entry(self, dentry):
        e = self.tree.lookup(dentry.rel)
        if e is None:
            raise OSError(errno.ENOENT, dentry.rel)
        return e

    def readlink(self, dentry):
        e = self._entry(dentry)
        if e.linkname is None or not dentry.attr.is_link():
            raise OSError(errno.EINVAL, "not a symlink")
        return e.linkname

    def listdir(self, dentry):
        return [(name, (e.mode >> 12) & 0xF, e.ino) for name, e in self.tree.children(dentry.rel)]

    def host_path(self, dentry):
        e = self._entry(dentry)
        if dentry.attr.is_dir():
            return self.tree.materialise_dir(e)
        if dentry.attr.is_reg():
            return self.tree.materialise(e)
        raise OSError(errno.ENXIO, "no host object for this image entry")

    def reverse(self, host_path):
        found = self.tree.entry_for_host_path(host_path)
        return None if found is None else found[0]

    def read_head(self, dentry, size):
        return self.tree.read(self._entry(dentry), 0, size)
