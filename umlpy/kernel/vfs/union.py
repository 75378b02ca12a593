"""The guest's root filesystem: a read-only lower layer (a host directory
or stacked tar images) under a copy-on-write upper directory.

The upper directory has the OCI/overlay layout that `umlpy diff/commit`
read: changed objects at their guest paths, ``.wh.NAME`` for a deleted
lower NAME, ``.wh..wh..opq`` in a directory that hides its lower
contents.  Names starting with ``.wh.`` are therefore not the guest's."""
import errno
import os
import stat as _stat

from ...abi.dirent import DT_DIR, IFTODT
from ...abi.fcntl import O_PATH, RENAME_EXCHANGE
from ...abi.resource import NAME_MAX
from . import hostops, setid, xattrs, xattrstore
from .attr import UNMAPPED_GID, UNMAPPED_UID
from .fs import Dentry, FileSystem

SETID_BITS = setid.BITS

WH = ".wh."
OPAQUE = ".wh..wh..opq"

# Upper-only directories shown on a lower layer's device keep their upper
# inode number with this bit set: it cannot be a lower one's (overlayfs's xino).
UPPER_INO_TAG = 1 << 63

IN_UPPER = 1        # the object exists in the upper directory
IN_LOWER = 2        # a lower object of that name shows (or would, under upper)
LOWER_OPEN = 4      # directory whose lower contents show through


def refuse_lower_read(path):
    raise OSError(errno.EACCES, "no identity to read the lower file as")


class UnionFS(FileSystem):
    fstype = "overlay"
    source = "umlpy"
    read_only = False

    def __init__(self, lower, upper_dir, idmap, owner=None):
        """lower: a read-only FileSystem.  owner: host (uid, gid) that
        copied-up and new objects made by the tracer belong to (the
        guest's host ids), None to keep the tracer's."""
        self.lower = lower
        if hasattr(lower, "copy_on_write"):
            lower.copy_on_write = True
        self.upper_path = os.path.realpath(upper_dir)
        self.upper_fd = os.open(self.upper_path, O_PATH | os.O_DIRECTORY)
        self.idmap = idmap
        self.owner = owner
        self.on_change = []         # called at every change to the upper layer
        # (st_dev, st_ino) -> S_ISUID|S_ISGID of files whose bits the upper
        # filesystem could not keep (note_setid)
        self.setid_bits = {}
        self.setid_marked = setid.marked(self.upper_fd)
        self._generation = 0
        self._root_generation = None
        self.upper_dev = os.stat(self.upper_fd).st_dev
        self._lower_root = None
        # opens a lower file for a copy-up: as the guest's host identity
        # (build.py sets it), so a copy-up never reads what the guest could not
        self.open_lower = refuse_lower_read
        # --disk: reserve_space(bytes) before a copy-up takes them, which
        # raises OSError(ENOSPC) when they do not fit (None: no quota)
        self.reserve_space = None
        # emulated xattrs of objects that cannot hold a user.* one (xattrs.py)
        self.xattr_records = xattrs.Records(key_of=hostops.path_key)
        # ... and those of the upper's objects outlive the run (a kept --upper)
        self.xattr_records.store = xattrstore.Store(self.upper_fd, self.upper_path)
        self.xattr_records.store.load(self.xattr_records)

    @property
    def generation(self):
        """Bumped by every change the tracer makes to the upper layer: what
        was looked up before may have moved (the VFS's lookup cache, the
        native path cache)."""
        return self._generation

    @generation.setter
    def generation(self, value):
        self._generation = value
        for notify in self.on_change:
            notify()

    # looking ------------------------------------------------------------
    def _attr(self, st, rel=None):
        attr = self.idmap.attr_of(st)
        if _stat.S_ISREG(st.st_mode) and (self.setid_bits or self.setid_marked):
            bits = self.setid_bits.get((st.st_dev, st.st_ino))
            if bits is None and self.setid_marked and rel:
                bits = self._recorded_setid(rel)
            attr.mode |= bits or 0
        return attr

    def _recorded_setid(self, rel):
        if "/" not in rel:
            return setid.read(self.upper_fd, rel)
        try:
            with hostops.DirFd(self.upper_fd, rel) as d:
                return setid.read(d.fd, d.name)
        except OSError:
            return 0

    def note_setid(self, key, mode, rel):
        """The set-user-ID and set-group-ID bits the guest gave the upper
        regular file key ((st_dev, st_ino)) at rel: never on the host file,
        which any host user who reached it could run with its owner's ids
        (inside, NO_NEW_PRIVS makes the bits inert anyway), but recorded
        on it (setid.py), so a later run over a kept upper sees them."""
        with hostops.DirFd(self.upper_fd, rel) as d:
            self._keep_setid(d.fd, d.name, key, mode)
        self.generation += 1

    def _keep_setid(self, dir_fd, name, key, mode):
        bits = mode & SETID_BITS
        if bits and not self.setid_marked:
            # marked first: a record is never there unread
            setid.mark(self.upper_fd)
            self.setid_marked = True
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == key and setid.record(dir_fd, name, mode):
            self.setid_bits.pop(key, None)
        elif bits:
            self.setid_bits[key] = bits     # this run's only
        else:
            self.setid_bits.pop(key, None)

    def _upper_stat(self, rel):
        return self._past_modes([rel.rpartition("/")[0]],
                                lambda: hostops.lstat_beneath(self.upper_fd, rel))

    def _whiteout_stat(self, parent, name):
        """lstat of the upper whiteout for name in parent, or None.  A name
        within 4 bytes of NAME_MAX has no room for one (and none exists)."""
        if len(os.fsencode(name)) + len(WH) > NAME_MAX:
            return None
        return self._upper_stat(parent.child_rel(WH + name))

    def _opaque(self, rel):
        return self._upper_stat(f"{rel}/{OPAQUE}" if rel else OPAQUE) is not None

    def _dir_identity(self, attr, lower, dev):
        """The st_dev and st_ino a directory shows, as overlayfs's: the
        lower directory's while there is one (copy-up changes neither), else
        the device of the directory it is in (dev).  So st_dev changes only
        where a lower layer's does: git looks for .git up to there, find
        -xdev descends that far."""
        if lower is not None and lower.is_dir():
            return attr.copy(dev=lower.dev, ino=lower.ino)
        if attr.dev == dev:
            return attr
        return attr.copy(dev=dev, ino=attr.ino | UPPER_INO_TAG)

    def root(self):
        st = os.stat(self.upper_fd)
        if self._root_generation != self.generation:
            self._root_flags = IN_UPPER if self._opaque("") else \
                IN_UPPER | IN_LOWER | LOWER_OPEN
            self._root_generation = self.generation
        if self._lower_root is None:
            self._lower_root = self.lower.root().attr
        lower = self._lower_root
        attr = self._dir_identity(self._attr(st), lower if self._root_flags & IN_LOWER else None,
                                  lower.dev)
        return Dentry(self, "", attr, self._root_flags)

    def lookup(self, parent, name):
        if name.startswith(WH):
            return None
        rel = parent.child_rel(name)
        upper = self._upper_stat(rel) if parent.flags & IN_UPPER else None
        lower = None
        if parent.flags & LOWER_OPEN:
            # even under an upper object: whether a lower one exists decides
            # whether removing it must leave a whiteout
            whited = parent.flags & IN_UPPER and upper is None and \
                self._whiteout_stat(parent, name) is not None
            if not whited:
                lower = self.lower.lookup(self._lower_dentry(parent), name)
        if upper is not None:
            flags = IN_UPPER
            if lower is not None:
                flags |= IN_LOWER
                if _stat.S_ISDIR(upper.st_mode) and lower.attr.is_dir() \
                        and not self._opaque(rel):
                    flags |= LOWER_OPEN
            attr = self._attr(upper, rel)
            if attr.is_dir():
                attr = self._dir_identity(attr, lower and lower.attr, parent.attr.dev)
            return Dentry(self, rel, attr, flags)
        if lower is not None:
            flags = IN_LOWER | (LOWER_OPEN if lower.attr.is_dir() else 0)
            return Dentry(self, rel, lower.attr, flags)
        return None

    def _lower_dentry(self, d):
        # lower filesystems only need rel (and a dentry to hang it on)
        return Dentry(self.lower, d.rel, d.attr)

    def readlink(self, dentry):
        if not dentry.attr.is_link():
            raise OSError(errno.EINVAL, "not a symlink")
        if dentry.flags & IN_UPPER:
            def read():
                with hostops.DirFd(self.upper_fd, dentry.rel) as d:
                    return os.fsdecode(os.readlink(d.name, dir_fd=d.fd))
            return self._past_modes([dentry.rel.rpartition("/")[0]], read)
        return self.lower.readlink(self._lower_dentry(dentry))

    def listdir(self, dentry):
        names = {}
        whiteouts = set()
        if dentry.flags & IN_UPPER:
            self._past_modes([dentry.rel], lambda: self._list_upper(dentry, names, whiteouts))
        if dentry.flags & LOWER_OPEN:
            for n, t, ino in self.lower.listdir(self._lower_dentry(dentry)):
                if n in whiteouts or n.startswith(WH):
                    continue
                mine = names.get(n)
                if mine is None or mine[1] == t == DT_DIR:    # merged: the lower's number
                    names[n] = (n, t, ino)
        return sorted(names.values())

    def _list_upper(self, dentry, names, whiteouts):
        names.clear()
        whiteouts.clear()
        with os.scandir(self._upper_host(dentry.rel)) as it:
            for e in it:
                n = e.name
                if n.startswith(WH):
                    if n != OPAQUE:
                        whiteouts.add(n[len(WH):])
                    continue
                try:
                    t = IFTODT(e.stat(follow_symlinks=False).st_mode)
                except OSError:
                    continue
                ino = e.inode()
                if t == DT_DIR and dentry.attr.dev != self.upper_dev:
                    ino |= UPPER_INO_TAG            # as _dir_identity shows it
                names[n] = (n, t, ino)

    def _upper_host(self, rel):
        return f"{self.upper_path}/{rel}" if rel else self.upper_path

    def host_path(self, dentry):
        if dentry.flags & IN_UPPER:
            return self._upper_host(dentry.rel)
        return self.lower.host_path(self._lower_dentry(dentry))

    def reverse(self, host_path):
        u = self.upper_path
        if host_path == u:
            return ""
        if host_path.startswith(u + "/"):
            return host_path[len(u) + 1:]
        return self.lower.reverse(host_path)

    def checks_on_host(self, dentry):
        return bool(dentry.flags & IN_UPPER) or self.lower.checks_on_host(dentry)

    def read_head(self, dentry, size):
        if dentry.flags & IN_UPPER:
            return super().read_head(dentry, size)
        return self.lower.read_head(self._lower_dentry(dentry), size)

    def statfs_path(self, dentry):
        return self.upper_path

    def lower_xattrs(self, dentry):
        """The extended attributes of dentry's lower object, [(guest name,
        value)]: an image's from its PAX records (a TarFS lower has the
        tree), a host object's as the guest kernel reads them (its user.*,
        security.* and system.* ones, emulated ones an earlier sandbox
        kept; never a real trusted.*, which is the host's own)."""
        lower = self.lower
        tree = getattr(lower, "tree", None)
        if tree is not None:
            entry = tree.lookup(dentry.rel)
            return list(tree.xattrs(entry)) if entry is not None else []
        if not lower.host_backed:
            return []
        try:
            with lower.object_dir(self._lower_dentry(dentry), False) as h:
                found = hostops.own_xattrs(h.fd, h.name)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENXIO, errno.ELOOP,
                               errno.EOPNOTSUPP):
                raise
            return []       # an object the guest kernel added, with no host one
        return [(xattrs.shown_name(n), v) for n, v in found
                if xattrs.shown_name(n) is not None and not n.startswith("trusted.")]

    # copy-up ------------------------------------------------------------
    def _chown(self, name, dir_fd, attr):
        """A copy's owner: its lower object's, in the guest's terms; an
        owner the guest's namespace does not map (shown as 65534) makes it
        guest root's (the owner given), never guest 65534's."""
        uid = None if attr.unmapped & UNMAPPED_UID else self.idmap.uid_out(attr.uid)
        gid = None if attr.unmapped & UNMAPPED_GID else self.idmap.gid_out(attr.gid)
        if self.owner is not None:
            uid = self.owner[0] if uid is None else uid
            gid = self.owner[1] if gid is None else gid
        try:
            os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid,
                     dir_fd=dir_fd, follow_symlinks=False)
        except PermissionError:
            pass

    def copy_up(self, dentry, resolver_parents):
        """Make dentry an upper object (its parents first); returns its
        upper host path.  resolver_parents: the dentries of its parent
        directories, root first."""
        if dentry.flags & IN_UPPER:
            return self._upper_host(dentry.rel)
        for p in resolver_parents:
            if p.fs is self and not p.flags & IN_UPPER:
                self._copy_up_one(p)
                p.flags |= IN_UPPER
        self._copy_up_one(dentry)
        dentry.flags |= IN_UPPER
        return self._upper_host(dentry.rel)

    def _copy_up_one(self, d):
        self.generation += 1
        a = d.attr
        with hostops.DirFd(self.upper_fd, d.rel) as parent:
            name, pfd = d.name, parent.fd
            if a.is_dir():
                os.mkdir(name, 0o700, dir_fd=pfd)
            elif a.is_link():
                os.symlink(self.lower.readlink(self._lower_dentry(d)), name, dir_fd=pfd)
            elif a.is_reg():
                self._copy_file_up(d, name, pfd)
            elif _stat.S_ISFIFO(a.mode) or _stat.S_ISSOCK(a.mode):
                # a socket inode copies up as a socket no one listens on
                os.mknod(name, _stat.S_IFMT(a.mode) | 0o600, dir_fd=pfd)
            else:
                os.mknod(name, a.mode, a.rdev, dir_fd=pfd)     # EPERM unless root
            self._copy_xattrs_up(d, name, pfd)
            self._chown(name, pfd, a)
            if a.is_reg() and a.mode & SETID_BITS:
                os.chmod(name, _stat.S_IMODE(a.mode) & ~SETID_BITS, dir_fd=pfd)
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                self._keep_setid(pfd, name, (st.st_dev, st.st_ino), a.mode)
            elif not a.is_link():
                os.chmod(name, _stat.S_IMODE(a.mode), dir_fd=pfd)
            os.utime(name, ns=(a.atime_ns, a.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _copy_xattrs_up(self, d, name, pfd):
        """The lower object's user.*, trusted.* and security.capability
        attributes onto its copy (the rest are the host's or a security
        module's business), kept as xattrs.py keeps them.  What the upper
        layer cannot hold is left behind (overlayfs leaves what its upper
        does not support)."""
        found = [(n, v) for n, v in self.lower_xattrs(d)
                 if n.startswith("user.") or xattrs.emulated(n)]
        if not found:
            return
        a = d.attr
        for n, v in found:
            try:
                if a.is_reg() or a.is_dir():
                    hostops.own_setxattr(pfd, name, xattrs.stored_name(n), v, 0)
                elif xattrs.emulated(n):
                    key = hostops.object_key(pfd, name)
                    self.xattr_records.set(key, n, v, False, False, self._upper_host(d.rel))
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.ENOSPC, errno.E2BIG, errno.EPERM):
                    raise

    def _copy_file_up(self, d, name, pfd):
        tmp = f".wh.copyup.{os.getpid()}.{name}"[:255]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=pfd)
        try:
            src = self.lower.host_path(self._lower_dentry(d))
            if self.reserve_space is not None:
                self.reserve_space(d.attr.size)
            with os.fdopen(self.open_lower(src), "rb") as fsrc, \
                    os.fdopen(fd, "wb", closefd=False) as fdst:
                while chunk := fsrc.read(1 << 20):
                    fdst.write(chunk)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=pfd)
            raise
        os.close(fd)
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)

    # changes ------------------------------------------------------------
    def _check_name(self, name):
        if name.startswith(WH):
            raise OSError(errno.EPERM, "names starting with .wh. are reserved")

    def create_target(self, parent, name, parents):
        """Prepare a new name in parent for the guest to create; returns
        (host path, whiteout_removed)."""
        self.generation += 1
        self._check_name(name)
        self.copy_up(parent, parents)
        rel = parent.child_rel(name)
        wh = parent.child_rel(WH + name)
        removed = False
        if self._whiteout_stat(parent, name) is not None:
            with hostops.DirFd(self.upper_fd, wh) as d:
                os.unlink(d.name, dir_fd=d.fd)
            removed = True
        return self._upper_host(rel), removed

    def restore_whiteout(self, parent, name):
        self._whiteout(parent.child_rel(name))

    def make_opaque(self, rel):
        self.generation += 1
        with hostops.DirFd(self.upper_fd, f"{rel}/{OPAQUE}") as d:
            fd = os.open(d.name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=d.fd)
            os.close(fd)

    def _whiteout(self, rel):
        self.generation += 1
        parent, _, name = rel.rpartition("/")
        wh = f"{parent}/{WH}{name}" if parent else WH + name
        with hostops.DirFd(self.upper_fd, wh) as d:
            fd = os.open(d.name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=d.fd)
            os.close(fd)

    def remove(self, parent, dentry, parents, is_dir):
        """unlink/rmdir dentry (checked by the caller): drop the upper
        object, and leave a whiteout if a lower one would show."""
        self.generation += 1
        self.copy_up(parent, parents)
        if dentry.flags & IN_UPPER:
            with hostops.DirFd(self.upper_fd, dentry.rel) as d:
                if is_dir:
                    # its whiteouts go first: root may empty its 0000 one
                    self._past_modes([dentry.rel], lambda: self._clear_dir(d.fd, d.name))
                    os.rmdir(d.name, dir_fd=d.fd)
                else:
                    self._forget_xattrs(d.fd, d.name)
                    os.unlink(d.name, dir_fd=d.fd)
        if dentry.flags & IN_LOWER:
            self._whiteout(dentry.rel)

    def _forget_xattrs(self, pfd, name):
        """An object's emulated attributes kept in records go with its last
        name (its inode number may be given to another)."""
        key = self.records_key(pfd, name)
        if key is not None:
            self.xattr_records.forget(key)

    def records_key(self, pfd, name):
        """The records' key of an object about to lose its last name, None
        when the records keep nothing of it (namei.py's unlink of an upper
        object calls it, then forget_records once the object is gone)."""
        if not self.xattr_records.objects:
            return None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if st.st_nlink <= 1 and not (_stat.S_ISREG(st.st_mode) or _stat.S_ISDIR(st.st_mode)):
                key = hostops.object_key(pfd, name)
                return key if key in self.xattr_records.objects else None
        except OSError:
            pass
        return None

    def forget_records(self, key):
        self.xattr_records.forget(key)

    def _clear_dir(self, pfd, name):
        """An upper directory the guest sees as empty holds only whiteouts."""
        fd = hostops.openat2(pfd, name, os.O_RDONLY | os.O_DIRECTORY, 0, hostops.SAFE)
        try:
            for n in os.listdir(fd):
                if n.startswith(WH):
                    os.unlink(n, dir_fd=fd)
        finally:
            os.close(fd)

    def copy_up_tree(self, dentry, parents):
        """Copy a whole directory up (a rename moves all of it).  Iterative
        (a lower tree may be deeper than Python's recursion limit): each
        directory copied up is made opaque after its children."""
        self.copy_up(dentry, parents)
        stack = [(dentry, None)]
        while stack:
            d, children = stack.pop()
            if children is None:
                if not d.attr.is_dir() or not d.flags & LOWER_OPEN:
                    continue
                children = iter(self.listdir(d))
            for name, _t, _ino in children:
                child = self.lookup(d, name)
                if child is not None and not child.flags & IN_UPPER:
                    # its parents are all upper now: d is the only one to name
                    self.copy_up(child, [d])
                    stack.append((d, children))
                    stack.append((child, None))
                    break
            else:
                self.make_opaque(d.rel)

    def rename(self, old_parent, old, new_parent, new_name, new, parents_old,
               parents_new, flags):
        """Move old (a dentry under old_parent) to new_parent/new_name,
        replacing new (a dentry or None).  The caller checked permissions
        and Linux's rules."""
        self.generation += 1
        self._check_name(new_name)
        self.copy_up_tree(old, parents_old + [old_parent])
        self.copy_up(new_parent, parents_new)
        new_rel = new_parent.child_rel(new_name)
        exchange = flags & RENAME_EXCHANGE
        if new is not None and not exchange:
            if new.attr.is_dir() and new.flags & IN_UPPER:
                with hostops.DirFd(self.upper_fd, new.rel) as d:
                    self._clear_dir(d.fd, d.name)
        elif new is not None and exchange:
            self.copy_up_tree(new, parents_new + [new_parent])
        had_wh = self._whiteout_stat(new_parent, new_name) is not None
        with hostops.DirFd(self.upper_fd, old.rel) as o, \
                hostops.DirFd(self.upper_fd, new_rel) as n:
            if new is not None and not exchange and new.flags & IN_UPPER:
                self._forget_xattrs(n.fd, n.name)
            hostops.renameat2(o.fd, o.name, n.fd, n.name, flags & RENAME_EXCHANGE)
            if had_wh:
                os.unlink(WH + new_name, dir_fd=n.fd)
        moved_dir = old.attr.is_dir()
        if moved_dir and (had_wh or (new is not None and new.flags & IN_LOWER)):
            self.make_opaque(new_rel)       # nothing of the old lower dir shows
        if exchange and new.attr.is_dir() and old.flags & IN_LOWER:
            self.make_opaque(old.rel)
        if not exchange and old.flags & IN_LOWER:
            self._whiteout(old.rel)

    def host_dir(self, rel):
        return hostops.DirFd(self.upper_fd, rel)

    def object_dir(self, dentry, write):
        if write or dentry.flags & IN_UPPER:
            return hostops.DirFd(self.upper_fd, dentry.rel)
        return self.lower.object_dir(self._lower_dentry(dentry), False)

    def upper_host(self, dentry):
        return self._upper_host(dentry.rel)

