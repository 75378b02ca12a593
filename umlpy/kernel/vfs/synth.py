"""Filesystems the guest kernel makes up: /dev, a minimal /sys, and
single files such as /etc/hostname.  Their objects are either host
objects picked by name (a device node, a host directory subtree), symlinks,
or files whose contents Python writes when the guest opens them."""
import errno
import itertools
import os
import stat as _stat
import time

from .attr import Attr
from .fs import Dentry, FileSystem

_ino = itertools.count(1000)
SYNTH_DEV = os.makedev(0, 0x2F)


class SDir:
    def __init__(self, children=None, mode=0o755):
        self.children = children or {}
        self.attr = Attr(_stat.S_IFDIR | mode, next(_ino), SYNTH_DEV, 2,
                         mtime_ns=time.time_ns())


class SHost:
    """A host object shown under a guest name (e.g. /dev/null)."""
    def __init__(self, host_path):
        self.host_path = host_path


class SLink:
    def __init__(self, target):
        self.target = target
        self.attr = Attr(_stat.S_IFLNK | 0o777, next(_ino), SYNTH_DEV, 1,
                         size=len(target), mtime_ns=time.time_ns())


class SFile:
    """Contents made by produce() (bytes) each time the guest opens it."""
    def __init__(self, produce, mode=0o444):
        self.produce = produce
        self.attr = Attr(_stat.S_IFREG | mode, next(_ino), SYNTH_DEV, 1,
                         mtime_ns=time.time_ns())


class SynthFS(FileSystem):
    """A tree of made-up nodes.  spool_dir: where produced contents are
    written for the guest to open (a directory of the sandbox's state)."""
    host_backed = False

    def __init__(self, tree, spool_dir, idmap, fstype="tmpfs", source="none"):
        self.tree = tree
        self.spool_dir = spool_dir
        self.idmap = idmap
        self.fstype, self.source = fstype, source
        self._spooled = {}          # host path -> rel
        self._dir_hosts = {}
        self._seq = itertools.count()
        self._hosts = None

    def _node(self, rel):
        node = self.tree
        if rel:
            for part in rel.split("/"):
                if not isinstance(node, SDir):
                    return None
                node = node.children.get(part)
                if node is None:
                    return None
        return node

    def _attr(self, node):
        if isinstance(node, SHost):
            try:
                st = os.stat(node.host_path, follow_symlinks=False)
            except OSError:
                return None
            return self.idmap.attr_of(st)
        return node.attr

    def root(self):
        return Dentry(self, "", self.tree.attr)

    def lookup(self, parent, name):
        node = self._node(parent.rel)
        if not isinstance(node, SDir):
            return None
        child = node.children.get(name)
        if child is None:
            return None
        attr = self._attr(child)
        return None if attr is None else Dentry(self, parent.child_rel(name), attr)

    def readlink(self, dentry):
        node = self._node(dentry.rel)
        if isinstance(node, SLink):
            return node.target
        raise OSError(errno.EINVAL, "not a symlink")

    def listdir(self, dentry):
        node = self._node(dentry.rel)
        out = []
        for name, child in sorted(node.children.items()):
            attr = self._attr(child)
            if attr is not None:
                out.append((name, attr.d_type(), attr.ino))
        return out

    def host_path(self, dentry):
        node = self._node(dentry.rel)
        if isinstance(node, SHost):
            return node.host_path
        if isinstance(node, SFile):
            path = self.spool(node.produce)
            self._spooled[path] = dentry.rel
            return path
        if isinstance(node, SDir):
            # an empty host directory stands for it (a cwd, an fd to list)
            path = self._dir_hosts.get(dentry.rel)
            if path is None:
                path = os.path.join(self.spool_dir, f"d{node.attr.ino}")
                os.mkdir(path, 0o555)
                self._dir_hosts[dentry.rel] = path
                self._spooled[path] = dentry.rel
            return path
        raise OSError(errno.ENXIO, "no host object")

    def spool(self, produce):
        """Write produce()'s bytes to a new file for the guest to open."""
        path = os.path.join(self.spool_dir, f"f{next(self._seq)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        try:
            os.write(fd, produce())
        finally:
            os.close(fd)
        return path

    def reverse(self, host_path):
        rel = self._spooled.get(host_path)
        if rel is not None:
            return rel
        if self._hosts is None:         # the tree never changes: index it once
            self._hosts = {node.host_path: rel for rel, node in self._walk(self.tree, "")
                           if isinstance(node, SHost)}
        return self._hosts.get(host_path)

    def _walk(self, node, rel):
        if not isinstance(node, SDir):
            return
        for name, child in node.children.items():
            r = f"{rel}/{name}" if rel else name
            yield r, child
            if isinstance(child, SDir):
                yield from self._walk(child, r)

    def checks_on_host(self, dentry):
        return isinstance(self._node(dentry.rel), SHost)

    def statfs_path(self, dentry):
        return self.spool_dir


def dev_tree():
    """/dev as a guest sees it: the harmless host devices, its terminal,
    and links into /proc/self/fd."""
    devices = {name: SHost(f"/dev/{name}")
               for name in ("null", "zero", "full", "random", "urandom", "tty", "ptmx")
               if os.path.exists(f"/dev/{name}")}
    links = {"fd": SLink("/proc/self/fd"), "stdin": SLink("/proc/self/fd/0"),
             "stdout": SLink("/proc/self/fd/1"), "stderr": SLink("/proc/self/fd/2"),
             "core": SLink("/proc/kcore")}
    # pts and shm are mountpoints (host devpts, a tmpfs of the sandbox)
    dirs = {"pts": SDir(), "shm": SDir(mode=0o1777), "mqueue": SDir(mode=0o1777)}
    return SDir({**devices, **links, **dirs})


def sys_tree():
    """A minimal /sys: what libc and tools read about CPUs."""
    cpu = "/sys/devices/system/cpu"
    files = {n: SHost(f"{cpu}/{n}") for n in ("online", "possible", "present")
             if os.path.exists(f"{cpu}/{n}")}
    return SDir({"devices": SDir({"system": SDir({"cpu": SDir(files)})}),
                 "fs": SDir(), "kernel": SDir(), "class": SDir(), "bus": SDir()})
