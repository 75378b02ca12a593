"""What every filesystem of the guest VFS offers, and the simplest one: a
host directory tree (the lower layer of a host-directory root, a bind
mount, a tmpfs).

A filesystem answers questions about ``Dentry``s (one name, resolved,
inside that filesystem).  Path walking, symlinks, ``..`` and mounts are
the resolver's work (``namei``), never a filesystem's."""
import errno
import os
import stat as _stat

from ...abi.dirent import DT_DIR, DT_LNK, DT_REG
from ...abi.fcntl import O_PATH
from ..bounded import ByteBoundedCache, text_bytes
from . import hostops

# which directories hold names hidden from the guest, remembered (by bytes)
HIDES_BYTES = 4 << 20


class Dentry:
    """A resolved name in a filesystem: rel is its path below the
    filesystem's root ("" for the root), attr its attributes when looked
    up, flags private to the filesystem."""
    __slots__ = ("fs", "rel", "attr", "flags")

    def __init__(self, fs, rel, attr, flags=0):
        self.fs, self.rel, self.attr, self.flags = fs, rel, attr, flags

    @property
    def name(self):
        return self.rel.rpartition("/")[2]

    def child_rel(self, name):
        return f"{self.rel}/{name}" if self.rel else name

    def __repr__(self):
        return f"<Dentry {self.fs.fstype}:{self.rel!r} {self.attr!r}>"


def erofs(*_args, **_kw):
    raise OSError(errno.EROFS, "Read-only file system")


class FileSystem:
    """Base: a read-only filesystem with no objects of its own."""
    fstype = "none"
    source = "none"
    read_only = True
    # whether the guest's own process may run calls on host_path() objects
    # directly (they are real host objects with real permissions)
    host_backed = True
    # owner_access(rels, fn, refused): fn() again with the directories at
    # rels opened to their host owner, for a guest whose ids the guest
    # kernel emulates (it checked the guest's access itself), else raises
    # refused; set (build.py) only on the sandbox's own storage: the
    # union's upper layer, its tmpfs mounts
    owner_access = None

    def _past_modes(self, rels, fn):
        """fn(), an operation of the guest kernel's own on the sandbox's
        own storage (a lookup, a listing) that the VFS already let the
        guest make; if the host refuses umlpy's one user by a mode the
        guest set (root's 0000 directory, which Linux lets root search and
        read), fn() again through owner_access (vfs/ownermodes.py)."""
        try:
            return fn()
        except PermissionError as e:
            if e.errno != errno.EACCES or self.owner_access is None:
                raise
            refused = e
        return self.owner_access(rels, fn, refused)

    def root(self):
        raise NotImplementedError

    def lookup(self, parent, name):
        raise NotImplementedError

    def readlink(self, dentry):
        raise OSError(errno.EINVAL, "not a symlink")

    def listdir(self, dentry):
        """[(name, d_type, ino)] of the directory, without . and .."""
        return []

    def host_path(self, dentry):
        """The host object standing for dentry, as an absolute host path
        without symlinks: what the guest's own process opens, executes or
        changes directory to."""
        raise OSError(errno.EACCES, "no host object")

    def reverse(self, host_path):
        """rel for a host path that host_path() gave, or None."""
        return None

    def checks_on_host(self, dentry):
        """Whether the host's own permission checks on host_path() are the
        guest's (a real host object with its real owner and mode)."""
        return self.host_backed

    def read_head(self, dentry, size):
        with open(self.host_path(dentry), "rb") as f:
            return f.read(size)

    # changes (only writable filesystems have them)
    create_target = mkdir = unlink = rmdir = rename = link = symlink = erofs
    setattr_target = erofs

    def statfs_path(self, dentry):
        return self.host_path(dentry)

    def host_dir(self, rel):
        """An O_PATH fd of the directory holding rel's host object and its
        last component, for the guest kernel's own host operations."""
        erofs()

    def object_dir(self, dentry, write):
        """host_dir for an existing object; write=False: to look at it
        (access, xattrs, a watch), which read-only filesystems allow."""
        if write:
            erofs()
        return hostops.DirFd.of_path(self.host_path(dentry))


class HostTreeFS(FileSystem):
    """A host directory as a filesystem of the guest: read-only (a lower
    layer) or writable (a bind mount, a tmpfs).  ``hidden`` names host
    paths the guest must not see (umlpy's own state)."""
    fstype = "hostfs"

    def __init__(self, root, idmap, writable=False, hidden=(), fstype=None,
                 source=None):
        self.root_path = os.path.realpath(root)
        # a bind may be of a single file: then the root is that file
        self.root_fd = os.open(self.root_path, O_PATH)
        self.idmap = idmap
        self.read_only = not writable
        self.hidden = frozenset(os.path.realpath(h) for h in hidden)
        self.hidden_pattern = None      # host paths it matches are not shown (build.StatePaths)
        self.hidden_pattern_dir = None  # ... all of them in this directory
        self._hides = ByteBoundedCache(HIDES_BYTES)     # rel -> whether it holds hidden names
        if fstype:
            self.fstype = fstype
        self.source = source or self.root_path
        self.copy_on_write = False      # a union's lower layer (union.UnionFS)
        # the sandbox's own storage (a tmpfs of its state), whose objects
        # guest root may change by its capabilities, as the upper layer's
        # (syscalls/fs/common.own_object)
        self.sandbox_own = False

    def _attr(self, st):
        attr = self.idmap.attr_of(st)
        attr.cow = self.copy_on_write
        return attr

    def _host(self, rel):
        if not rel:
            return self.root_path
        return f"/{rel}" if self.root_path == "/" else f"{self.root_path}/{rel}"

    def root(self):
        return Dentry(self, "", self._attr(os.stat(self.root_fd)))

    def lookup(self, parent, name):
        rel = parent.child_rel(name)
        if self.hides_in(parent.rel) and self._hidden(self._host(rel)):
            return None
        if self.read_only:
            # nobody but the host changes a lower layer: no race to fear
            try:
                st = os.stat(rel, dir_fd=self.root_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
        else:
            st = self._past_modes([parent.rel],
                                  lambda: hostops.lstat_beneath(self.root_fd, rel))
            if st is None:
                return None
        return Dentry(self, rel, self._attr(st))

    def _hidden(self, host):
        return host in self.hidden or \
            (self.hidden_pattern is not None and self.hidden_pattern.match(host) is not None)

    def hides_in(self, rel):
        """Whether the directory rel holds something hidden from the guest
        (asked for every lookup: remembered, the answer never changes)."""
        known = self._hides.get(rel)
        if known is None:
            host = self._host(rel)
            known = any(os.path.dirname(h) == host for h in self.hidden) or \
                (self.hidden_pattern is not None and
                 self.hidden_pattern.match(host + "/umlpy-0") is not None)
            self._hides.put(rel, known, text_bytes(rel))
        return known

    def hides_below(self, rel):
        """Whether anything at or below the directory rel is hidden."""
        host = self._host(rel)
        below = host.rstrip("/") + "/"
        inside = [*self.hidden, *filter(None, [self.hidden_pattern_dir])]
        return any(h == host or h.startswith(below) for h in inside)

    def readlink(self, dentry):
        if not dentry.attr.is_link():
            raise OSError(errno.EINVAL, "not a symlink")
        if "/" not in dentry.rel or self.read_only:
            return os.fsdecode(os.readlink(dentry.rel, dir_fd=self.root_fd))
        def read():
            with hostops.DirFd(self.root_fd, dentry.rel) as d:
                return os.fsdecode(os.readlink(d.name, dir_fd=d.fd))
        return self._past_modes([dentry.rel.rpartition("/")[0]], read)

    def listdir(self, dentry):
        return self._past_modes([dentry.rel], lambda: self._list(dentry))

    def _list(self, dentry):
        out = []
        base = self._host(dentry.rel)
        hides = self.hides_in(dentry.rel)
        with os.scandir(base) as it:
            for e in it:
                if hides and self._hidden(f"{base}/{e.name}"):
                    continue
                try:
                    if e.is_symlink():
                        t = DT_LNK
                    elif e.is_dir(follow_symlinks=False):
                        t = DT_DIR
                    elif e.is_file(follow_symlinks=False):
                        t = DT_REG
                    else:
                        t = _stat.S_IFMT(e.stat(follow_symlinks=False).st_mode) >> 12
                    out.append((e.name, t, e.inode()))
                except OSError:
                    continue
        return out

    def host_path(self, dentry):
        return self._host(dentry.rel)

    def reverse(self, host_path):
        r = self.root_path
        if host_path == r:
            return ""
        if host_path.startswith(r + "/") or r == "/":
            rel = host_path[len(r):].lstrip("/")
            return rel
        return None

    # a writable host tree: the guest's own process makes the change on
    # the host object (its credentials, umask and the host's checks)
    def create_target(self, parent, name):
        if self.read_only:
            erofs()
        return self._host(parent.child_rel(name))

    mkdir = create_target

    def setattr_target(self, dentry):
        if self.read_only:
            erofs()
        return self._host(dentry.rel)

    def host_dir(self, rel):
        if self.read_only:
            erofs()
        return hostops.DirFd(self.root_fd, rel)

    def object_dir(self, dentry, write):
        if write and self.read_only:
            erofs()
        if not dentry.rel and not dentry.attr.is_dir():
            # a bind of one file: the file is named in its own directory
            return hostops.DirFd.of_path(self.root_path)
        return hostops.DirFd(self.root_fd, dentry.rel)
