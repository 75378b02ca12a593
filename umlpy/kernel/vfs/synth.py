"""Filesystems the guest kernel makes up: /dev, a minimal /sys, and
single files such as /etc/hostname.  Their objects are either host
objects picked by name (a device node, a host directory subtree), symlinks,
or files whose contents Python writes when the guest opens them."""
import errno
import itertools
import os
import stat as _stat
import time

from . import hostops
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


class WithFiles:
    """A read-only filesystem (a lower layer) with files of the guest
    kernel's added, as if the image held them (``with_files``): being in
    the lower layer, a guest that may write there replaces them as any
    image file, by a copy-up or a rename over them, and ``umlpy diff``
    shows only what the guest did.  Mixed in front of the lower's own
    class, so what the VFS knows of that class (a host directory's
    listings and delegated trees) still holds, except for the
    directories holding an added file (``hides_in``/``hides_below``:
    their host listing is not the guest's)."""

    def _added(self, rel):
        return self.added_files.get(rel)

    def lookup(self, parent, name):
        rel = parent.child_rel(name)
        node = self._added(rel)
        if node is not None:        # its size is what an open would read
            size = len(node.produce())
            return Dentry(self, rel, node.attr.copy(size=size, blocks=(size + 511) // 512))
        return super().lookup(parent, name)

    def listdir(self, dentry):
        out = super().listdir(dentry)
        names = {name for name, _t, _ino in out}
        for rel, node in self.added_files.items():
            parent, _, name = rel.rpartition("/")
            if parent == dentry.rel and name not in names:
                out.append((name, node.attr.d_type(), node.attr.ino))
        return out

    def host_path(self, dentry):
        node = self._added(dentry.rel)
        if node is None:
            return super().host_path(dentry)
        path = self.added_spool.spool(node.produce)
        self.added_spooled[path] = dentry.rel
        return path

    def reverse(self, host_path):
        rel = self.added_spooled.get(host_path)
        return rel if rel is not None else super().reverse(host_path)

    def readlink(self, dentry):
        if self._added(dentry.rel) is not None:
            raise OSError(errno.EINVAL, "not a symlink")
        return super().readlink(dentry)

    def checks_on_host(self, dentry):
        # a spooled copy is the tracer's: permissions are the attr's
        return self._added(dentry.rel) is None and super().checks_on_host(dentry)

    def read_head(self, dentry, size):
        node = self._added(dentry.rel)
        return node.produce()[:size] if node is not None else super().read_head(dentry, size)

    def object_dir(self, dentry, write):
        if self._added(dentry.rel) is None:
            return super().object_dir(dentry, write)
        if write:
            raise OSError(errno.EROFS, "Read-only file system")
        return hostops.DirFd.of_path(self.host_path(dentry))

    def hides_in(self, rel):
        return any(r.rpartition("/")[0] == rel for r in self.added_files) or \
            super().hides_in(rel)

    def hides_below(self, rel):
        below = rel.rstrip("/") + "/" if rel else ""
        return any(r.startswith(below) for r in self.added_files) or super().hides_below(rel)


def with_files(lower, files, spool):
    """lower (a read-only FileSystem, left as it was) with files {rel:
    SFile} added, whose parent directories it has; spool: a SynthFS whose
    spool holds their contents when the host must open them."""
    cls = type(f"{type(lower).__name__}WithFiles", (WithFiles, type(lower)), {})
    fs = cls.__new__(cls)
    fs.__dict__.update(lower.__dict__)
    fs.added_files, fs.added_spool, fs.added_spooled = dict(files), spool, {}
    return fs


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
