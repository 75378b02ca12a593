"""A host directory packed as an OCI layer tar: a sandbox's upper layer
(with its whiteouts, opaque directories, set-ID bits and emulated
extended attributes, those of symlinks, FIFOs and devices from the
layer's records included, and its owners as the guest sees them) or a
directory --rootfs.

The upper layer is the guest's work, and a running sandbox may change it
under us: it is read only through directory fds opened with O_NOFOLLOW
(a symlink is archived as a symlink, never followed), one directory fd at
a time (any depth), and a file that shrinks while it is read is padded
to the size its header already gave."""
import os
import stat
import tarfile

from ..errors import UmlpyError
from ..kernel.vfs import hostops, setid, xattrs, xattrstore
from ..kernel.vfs.changes import OPAQUE, WH

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file must not hang the reader.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# umlpy's own records in an upper layer (LOWER_RECORD, setid.MARKER in its
# root): .wh..wh. names other than the opaque marker, no file of the guest's
_OWN_PREFIX = WH + WH
# Host attributes that say something of the host, not of the guest's file:
# an SELinux label is the host's policy, and a POSIX ACL names host ids.
_HOST_ONLY_XATTRS = ("security.selinux", "system.")


class LayerTarError(UmlpyError):
    """The directory could not be packed (one line)."""


def identity_ids(uid, gid):
    return uid, gid


class _Packer:
    def __init__(self, tar, ids, upper):
        self.tar = tar
        self.ids = ids            # (host uid, host gid) -> (uid, gid) in the layer
        self.upper = upper        # the tree is an upper layer: whiteouts, set-ID records
        self.links = {}           # (st_dev, st_ino) -> first member name
        self.setid_marked = False
        # {key: attrs}: the emulated attributes the upper layer keeps in its
        # records, not on the objects (symlinks, FIFOs, devices)
        self.kept = {}
        self.opaque = set()       # directories to mark opaque when they are reached

    # one object ------------------------------------------------------------
    def info(self, name, st, dir_fd, base):
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = self.ids(st.st_uid, st.st_gid)
        seconds, ns = divmod(st.st_mtime_ns, 1_000_000_000)
        info.mtime = max(seconds, 0)
        if ns or seconds < 0:
            info.pax_headers["mtime"] = f"{seconds}.{ns:09d}" if seconds >= 0 else \
                str(st.st_mtime_ns / 1e9)
        for key, value in self.xattrs(dir_fd, base):
            # raw bytes through tarfile's surrogateescape (hdrcharset=BINARY)
            info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        return info

    def xattrs(self, dir_fd, base):
        found = self.host_xattrs(dir_fd, base)
        recorded = self.recorded(dir_fd, base)
        if recorded:
            found = sorted({**dict(found), **recorded}.items())
        return found

    def recorded(self, dir_fd, base):
        """The guest's emulated attributes of the object kept in the upper
        layer's records (xattrstore.py), {name: value}."""
        if not self.kept:           # the usual case: no statx per object
            return {}
        try:
            attrs = self.kept.get(hostops.object_key(dir_fd, base), {})
        except OSError:
            return {}
        return {n: v for n, v in attrs.items() if xattrs.emulated(n)}

    def host_xattrs(self, dir_fd, base):
        try:
            names = os.listxattr(f"/proc/self/fd/{dir_fd}/{base}", follow_symlinks=False)
        except OSError:
            return []
        found = []
        for host_name in sorted(names):
            name = xattrs.shown_name(host_name) if self.upper else host_name
            if name is None or name.startswith(_HOST_ONLY_XATTRS):
                continue
            try:
                value = os.getxattr(f"/proc/self/fd/{dir_fd}/{base}", host_name,
                                    follow_symlinks=False)
            except OSError:
                continue
            found.append((name, value))
        return found

    def add(self, dir_fd, base, name, st):
        """A non-directory object base of dir_fd, as member name."""
        kind = stat.S_IFMT(st.st_mode)
        if self.upper and base.startswith(WH):
            # a whiteout or an opaque marker: an empty file, whatever the
            # host object is (overlayfs' own are 0/0 devices)
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, max(st.st_mtime_ns // 1_000_000_000, 0)
            self.tar.addfile(info)
            return
        if kind == stat.S_IFSOCK:
            return              # a tar cannot hold one (nor does docker export)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info = self.info(name, st, dir_fd, base)
            info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            info.pax_headers = {k: v for k, v in info.pax_headers.items() if k == "mtime"}
            self.tar.addfile(info)
            return
        info = self.info(name, st, dir_fd, base)
        if kind == stat.S_IFREG:
            self.add_file(dir_fd, base, info)
        else:
            if kind == stat.S_IFLNK:
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(base, dir_fd=dir_fd)
                info.mode = 0o777
            elif kind == stat.S_IFIFO:
                info.type = tarfile.FIFOTYPE
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        if st.st_nlink > 1:
            self.links[key] = name

    def add_file(self, dir_fd, base, info):
        fd = os.open(base, _READ_FLAGS, dir_fd=dir_fd)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise LayerTarError(f"/{info.name}: changed during the export")
            if self.setid_marked:
                info.mode |= setid.read_fd(fd)
            info.size = opened.st_size
            self.tar.addfile(info, _Exactly(fd, opened.st_size))
        finally:
            os.close(fd)

    def add_dir(self, name, st, dir_fd, base):
        info = self.info(name, st, dir_fd, base)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)

    # the walk ----------------------------------------------------------------
    def walk(self, root_fd):
        """Every object under root_fd, a directory before its contents.
        One directory fd at a time: a child is opened from its parent, the
        parent again through the child's '..', which must be the one left."""
        self.setid_marked = self.upper and setid.marked(root_fd)
        if self.upper:
            self.kept = xattrstore.kept(root_fd)
        fd = os.dup(root_fd)
        stack = [(os.fstat(fd), "", iter(self.dir_contents(fd, "")))]
        try:
            while stack:
                here, rel, subdirs = stack[-1]
                step = next(subdirs, None)
                if step is not None:
                    base, st = step
                    child_rel = f"{rel}/{base}" if rel else base
                    try:
                        child = os.open(base, _DIR_FLAGS, dir_fd=fd)
                    except OSError as e:
                        raise LayerTarError(f"/{child_rel}: {e.strerror}") from None
                    opened = os.fstat(child)
                    if not os.path.samestat(opened, st):
                        os.close(child)
                        raise LayerTarError(f"/{child_rel}: changed during the export")
                    self.add_dir(child_rel, opened, fd, base)
                    os.close(fd)
                    fd = child
                    stack.append((opened, child_rel, iter(self.dir_contents(fd, child_rel))))
                    continue
                stack.pop()
                if stack:
                    parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = parent
                    if not os.path.samestat(os.fstat(fd), stack[-1][0]):
                        raise LayerTarError(f"/{rel}: moved during the export")
        finally:
            os.close(fd)

    def dir_contents(self, fd, rel):
        """Archive the non-directories of the directory fd (at rel); its
        subdirectories, to walk into: [(name, lstat)], sorted."""
        entries = []
        with os.scandir(fd) as it:
            for e in it:
                if self.upper and e.name.startswith(_OWN_PREFIX) and e.name != OPAQUE:
                    continue
                try:
                    entries.append((e.name, e.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue        # gone since it was listed (a running sandbox)
        if self.upper:
            entries = self.whiteouts_first(entries, rel)
        else:
            entries.sort()
        subdirs = []
        for base, st in entries:
            name = f"{rel}/{base}" if rel else base
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((base, st))
                continue
            try:
                self.add(fd, base, name, st)
            except FileNotFoundError:
                continue
        return subdirs


    def whiteouts_first(self, entries, rel):
        """An upper directory's entries, the opaque marker and whiteouts
        first: a reader that applies the layer in order must not delete
        what the same layer made.  A whiteout beside an object of its name
        (the union shows the object) is dropped; beside a directory, it
        hides the lower one's contents: that directory becomes opaque."""
        names = {base: st for base, st in entries}
        kept = []
        for base, st in entries:
            hidden = base[len(WH):] if base.startswith(WH) and base != OPAQUE else None
            if hidden in names:
                if stat.S_ISDIR(names[hidden].st_mode):
                    self.opaque.add(f"{rel}/{hidden}" if rel else hidden)
                continue
            kept.append((base, st))
        if rel in self.opaque and OPAQUE not in names:
            self.opaque.discard(rel)
            info = tarfile.TarInfo(f"{rel}/{OPAQUE}")
            info.mode = 0o644
            self.tar.addfile(info)
        kept.sort(key=lambda item: (not item[0].startswith(WH), item[0] != OPAQUE, item[0]))
        return kept


class _Exactly:
    """size bytes of fd from offset 0: what the tar header promised, the
    file padded with zeros if it shrank, cut if it grew."""

    def __init__(self, fd, size):
        self.fd, self.left, self.offset = fd, size, 0

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = os.pread(self.fd, n, self.offset) if n else b""
        if n and not data:
            data = bytes(n)
        self.offset += len(data)
        self.left -= len(data)
        return data


def pack(path, out, ids=identity_ids, upper=False):
    """Write the tree at the host directory path to the file object out as
    an uncompressed PAX tar.  ids maps a host (uid, gid) to the layer's."""
    try:
        root_fd = os.open(path, _DIR_FLAGS & ~os.O_NOFOLLOW)
    except OSError as e:
        raise LayerTarError(f"{path}: {e.strerror}") from None
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            _Packer(tar, ids, upper).walk(root_fd)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise LayerTarError(f"{path}: {where}{e.strerror or e}") from None
    finally:
        os.close(root_fd)
