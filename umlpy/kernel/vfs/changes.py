"""What a sandbox changed: its upper layer compared with the lower
(`diff`), applied to a host directory (`commit`), or dropped (`discard`),
as Mbox offers them.

The upper directory mirrors guest paths in the OCI/overlay layout the VFS
writes (see union.py): changed objects at their guest paths, an empty
``.wh.NAME`` for a deleted lower NAME, ``.wh..wh..opq`` in a directory
through which nothing of the lower shows.

The upper layer is the guest's work, so it is read and the target is
written only through directory fds opened with O_NOFOLLOW: a symlink the
guest planted, in the upper layer or already in the target, is copied as
a symlink and never followed.

Extended attributes count as the guest saw them (xattrs.guest_view):
the user.* ones and the emulated trusted.* and security.capability, kept
on regular files and directories behind xattrs.RESERVED, and those of
symlinks, FIFOs and devices in the layer's records (xattrstore.py).  A
commit writes them under their real names, on a symlink itself
(lsetxattr); what the target refuses (trusted.* and security.capability
but as root; Linux gives an ordinary user no attribute of a symlink's)
is skipped and told."""
import errno
import os
import stat

from ...abi.xattr import XATTR_USER_PREFIX
from ...errors import BadInput, UmlpyError
from . import hostops, setid, xattrs, xattrstore
from .tmpdirs import empty_dir, open_dir_to_empty

WH = ".wh."
OPAQUE = ".wh..wh..opq"
# In the upper root: the lower it was made over, as JSON ({"rootfs": its
# real path, "/" for the host's tree; "layers": [...]}), written by the
# first run that uses it.  A .wh. name: no guest can name, make or change
# it (union.py), and no change of the guest's.
LOWER_RECORD = ".wh..wh..lower"

# Every walk here is iterative and holds a bounded number of fds, so an
# upper tree of any depth is compared, applied and removed (issue 12): the
# scan keeps one directory fd, a _DirChain at most _CHAIN_RECENT plus one
# per _CHAIN_EVERY levels.
_CHAIN_RECENT = 16
_CHAIN_EVERY = 64
_CHUNK = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file must not hang the reader.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_TYPE_NAMES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "device", stat.S_IFBLK: "device",
}
_KIND_LETTERS = {"added": "A", "modified": "M", "deleted": "D"}


class LayerError(UmlpyError):
    """A layer could not be read or applied."""


class Change:
    """One difference between the merged view and the lower: kind is
    added/modified/deleted, path the guest's absolute path, type one of
    file/dir/symlink/fifo/socket/device (the lower's type for a deletion)."""
    __slots__ = ("kind", "path", "type")

    def __init__(self, kind, path, type):
        self.kind = kind
        self.path = path
        self.type = type

    def __eq__(self, other):
        return isinstance(other, Change) and \
            (self.kind, self.path, self.type) == (other.kind, other.path, other.type)

    def __hash__(self):
        return hash((self.kind, self.path, self.type))

    def __repr__(self):
        return f"Change({self.kind!r}, {self.path!r}, {self.type!r})"

    def as_dict(self):
        return {"kind": self.kind, "path": self.path, "type": self.type}

    def line(self):
        """`A /path`, `M /path` or `D /path`, the path quoted if unprintable."""
        return f"{_KIND_LETTERS[self.kind]} {quote_path(self.path)}"


def quote_path(path):
    """A path as one printable line: as is, or C-quoted like git does."""
    raw = os.fsencode(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for b in raw:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append({0x0A: "\\n", 0x09: "\\t"}.get(b, f"\\{b:03o}"))
    return '"' + "".join(out) + '"'


def type_name(mode):
    return _TYPE_NAMES.get(stat.S_IFMT(mode), "file")


def _guest(rel):
    return "/" + rel


def _join(rel, name):
    return f"{rel}/{name}" if rel else name


def _path_key(path):
    # Component order puts a directory right before its own contents.
    return path.split("/")


# The lower layer -------------------------------------------------------

class LowerEntry:
    """What diff needs to know of a lower object (lstat-like)."""
    __slots__ = ("mode", "size", "linkname", "rdev", "handle")

    def __init__(self, mode, size, linkname, rdev, handle):
        self.mode = mode
        self.size = size
        self.linkname = linkname      # str, for symlinks only
        self.rdev = rdev
        self.handle = handle          # the implementation's own reference

    @property
    def kind(self):
        return stat.S_IFMT(self.mode)


class LowerView:
    """The read-only lower layer, by guest path relative to / ("" is the
    root).  Lookups never go through a symlink of the lower."""

    def lookup(self, relpath):
        """LowerEntry, or None if nothing is there."""
        raise NotImplementedError

    def children(self, relpath):
        """[(name, LowerEntry)] of a directory."""
        raise NotImplementedError

    def read(self, entry, offset=0, size=-1):
        """Bytes of a regular file's content."""
        raise NotImplementedError

    def xattrs(self, entry):
        """{guest name: value} of the attributes a copy carries."""
        return {}


class HostDirLower(LowerView):
    """A host directory as the lower layer (`--rootfs DIR`, or /)."""

    def __init__(self, path):
        self.root = os.path.abspath(path)
        self._real_dirs = {"": True}

    def _host(self, relpath):
        return os.path.join(self.root, relpath) if relpath else self.root

    def _is_real_dir(self, relpath):
        # Every component must itself be a directory, not a symlink to
        # one: the guest's path never went through the lower's symlinks.
        # Iterative: the nearest known ancestor, then down from it.
        known = self._real_dirs.get(relpath)
        if known is not None:
            return known
        unknown = []
        while known is None:
            unknown.append(relpath)
            relpath = relpath.rpartition("/")[0]
            known = self._real_dirs.get(relpath)
        for path in reversed(unknown):
            known = known and self._lstat_is_dir(path)
            self._real_dirs[path] = known
        return known

    def _lstat_is_dir(self, relpath):
        try:
            return stat.S_ISDIR(os.lstat(self._host(relpath)).st_mode)
        except OSError:
            return False

    def _entry(self, path, st):
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        return LowerEntry(st.st_mode, st.st_size, link, st.st_rdev, path)

    def lookup(self, relpath):
        path = self._host(relpath)
        try:
            if not relpath:
                return self._entry(path, os.stat(path))   # --rootfs may be a symlink
            if not self._is_real_dir(relpath.rpartition("/")[0]):
                return None
            return self._entry(path, os.lstat(path))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def children(self, relpath):
        if relpath and not self._is_real_dir(relpath):
            return []
        out = []
        with os.scandir(self._host(relpath)) as it:
            for e in it:
                out.append((e.name, self._entry(e.path, e.stat(follow_symlinks=False))))
        return out

    def xattrs(self, entry):
        return xattrs.guest_view(host_xattrs(entry.handle))

    def read(self, entry, offset=0, size=-1):
        fd = os.open(entry.handle, _READ_FLAGS)
        try:
            if size < 0:
                size = max(os.fstat(fd).st_size - offset, 0)
            return _pread_full(fd, size, offset)
        finally:
            os.close(fd)


class TarLower(LowerView):
    """Stacked tar images (a TarTree of tarimage.py) as the lower layer."""

    def __init__(self, tree):
        self.tree = tree

    @staticmethod
    def _entry(e):
        link = e.linkname if stat.S_ISLNK(e.mode) else None
        if isinstance(link, bytes):
            link = os.fsdecode(link)
        return LowerEntry(e.mode, e.size, link, getattr(e, "rdev", 0), e)

    def lookup(self, relpath):
        e = self.tree.lookup(relpath)
        if e is None:
            # an image need not list its root directory
            return LowerEntry(stat.S_IFDIR | 0o755, 0, None, 0, None) if not relpath else None
        return self._entry(e)

    def children(self, relpath):
        return [(name, self._entry(e)) for name, e in self.tree.children(relpath)]

    def read(self, entry, offset=0, size=-1):
        return self.tree.read(entry.handle, offset, size)

    def xattrs(self, entry):
        found = getattr(entry.handle, "xattrs", None) or ()
        return {n: v for n, v in found if xattrs.carried(n)}


def host_xattrs(path):
    """[(host name, value)] of the object at path (not followed) or of an
    open fd; what
    cannot be read (no xattrs there, a name gone meanwhile, one its
    reader may not read) is left out, on both sides of a comparison."""
    # an fd is its own object; a path's last component is never followed
    follow = isinstance(path, int)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
            return []
        raise
    found = []
    for name in names:
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=follow)))
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.EACCES, errno.EPERM, errno.EOPNOTSUPP):
                raise
    return found


def _in_dir(dir_fd, name):
    """A path the host resolves through our own directory fd (name itself
    is never followed by the calls given it)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def _guest_xattrs(dir_fd, name):
    return xattrs.guest_view(host_xattrs(_in_dir(dir_fd, name)))


def _holdable(attrs, mode):
    """What of attrs an object of mode can hold: user.* only a regular
    file or a directory (Linux's xattr_permission; an image may claim
    one of a symlink's, which no copy of it keeps)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return attrs
    return {n: v for n, v in attrs.items() if not n.startswith(XATTR_USER_PREFIX)}


class _Kept:
    """The emulated attributes an upper layer keeps in its records
    (xattrstore.py), not on the objects: those of its symlinks, FIFOs and
    devices, which cannot hold the user.* attribute that would keep them
    (and of every object of an upper without user.* attributes)."""

    def __init__(self, upper_fd):
        self.records = xattrstore.kept(upper_fd)

    def of(self, dir_fd, name):
        """{guest name: value} recorded for the object name of dir_fd."""
        if not self.records:        # the usual case: no statx per object
            return {}
        try:
            found = self.records.get(hostops.object_key(dir_fd, name), {})
        except OSError:
            return {}
        return {n: v for n, v in found.items() if xattrs.emulated(n)}

    def guest_xattrs(self, dir_fd, name):
        """What the guest saw of the object's attributes: on it, and recorded."""
        found = _guest_xattrs(dir_fd, name)
        found.update(self.of(dir_fd, name))
        return found


# Which lower an upper layer was made over -----------------------------------

def describe_lower(rootfs, layers=()):
    """What identifies a lower: the real paths of its root (None: the
    host's /) and of the images stacked over it."""
    return {"rootfs": os.path.realpath(rootfs) if rootfs is not None else "/",
            "layers": [os.path.realpath(layer) for layer in layers]}


def _lower_words(lower):
    words = f"--rootfs {lower['rootfs']}" if lower["rootfs"] != "/" else "the host's /"
    return words + "".join(f" --layer {layer}" for layer in lower["layers"])


def recorded_lower(upper_dir):
    """The lower recorded in upper_dir (describe_lower's dict), or None."""
    import json
    fd = _open_layer_dir(upper_dir, "--upper")
    try:
        rfd = os.open(LOWER_RECORD, _READ_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LayerError(f"{upper_dir}/{LOWER_RECORD}: {e.strerror}") from None
    finally:
        os.close(fd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read(1 << 20)
    try:
        lower = json.loads(data)
        if isinstance(lower.get("rootfs"), str) and isinstance(lower.get("layers"), list):
            return lower
    except (ValueError, AttributeError):
        pass
    raise LayerError(f"{upper_dir}/{LOWER_RECORD}: not a record of a lower layer")


def record_lower(upper_dir, rootfs, layers=()):
    """Record the lower in upper_dir unless one is recorded already (the
    first run over an upper decides what it was made over); BadInput (one
    line) when another lower is recorded: its whiteouts and copies are of
    that one's files."""
    import json
    data = json.dumps(describe_lower(rootfs, layers)).encode() + b"\n"
    fd = _open_layer_dir(upper_dir, "--upper")
    try:
        wfd = os.open(LOWER_RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o644, dir_fd=fd)
    except FileExistsError:
        recorded, given = recorded_lower(upper_dir), describe_lower(rootfs, layers)
        if recorded is not None and recorded != given:
            raise BadInput(f"--upper {upper_dir} was made over {_lower_words(recorded)}, "
                           f"not {_lower_words(given)}") from None
        return
    finally:
        os.close(fd)
    with os.fdopen(wfd, "wb") as f:
        f.write(data)


def lower_to_compare(upper_dir, rootfs, layers=()):
    """(rootfs, layers) to compare upper_dir with: the ones given, the
    recorded ones when none is given; BadInput (one line) when the given
    ones are not what the upper was made over."""
    recorded = recorded_lower(upper_dir)
    if recorded is None:
        return rootfs, list(layers)
    if rootfs is None and not layers:
        rootfs = None if recorded["rootfs"] == "/" else recorded["rootfs"]
        return rootfs, list(recorded["layers"])
    given = describe_lower(rootfs, layers)
    if given != recorded:
        raise BadInput(f"--upper {upper_dir} was made over {_lower_words(recorded)}, "
                       f"not {_lower_words(given)}")
    return rootfs, list(layers)


# Comparing the upper layer with the lower ---------------------------------

def diff(upper_dir, lower):
    """The changes of the upper layer over `lower` (a LowerView), sorted by
    path (a directory before its contents)."""
    upper_fd = _open_layer_dir(upper_dir, "--upper")
    try:
        return [change for change, _st in _scan(upper_fd, lower)]
    finally:
        os.close(upper_fd)


def _scan(upper_fd, lower):
    """[(Change, upper lstat or None for deletions)], sorted."""
    found = []
    root = lower.lookup("")
    root_is_dir = root is not None and root.kind == stat.S_IFDIR
    # Depth first, iterative, with one directory fd: a child is opened
    # from its parent's fd, and the parent again through the child's
    # "..", which must be the directory it was (the upper layer must not
    # change under the scan).
    fd = os.dup(upper_fd)
    # set-ID bits recorded on upper files (setid.py) count in their mode
    marked = setid.marked(upper_fd)
    kept = _Kept(upper_fd)
    stack = [(os.fstat(fd), iter(_scan_dir(fd, "", lower, root_is_dir, False, found,
                                           marked, kept)))]
    try:
        while stack:
            here, subdirs = stack[-1]
            step = next(subdirs, None)
            if step is not None:
                name, rel, compare_inside, hidden = step
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    raise LayerError(f"{_guest(rel)}: {e.strerror}") from None
                os.close(fd)
                fd = child
                st = os.fstat(fd)
                stack.append((st, iter(_scan_dir(fd, rel, lower, compare_inside, hidden,
                                                 found, marked, kept))))
                continue
            stack.pop()
            if stack:
                parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                if not os.path.samestat(os.fstat(fd), stack[-1][0]):
                    raise LayerError("the upper layer changed during the scan")
    finally:
        os.close(fd)
    found.sort(key=lambda f: _path_key(f[0].path))
    return found


def _scan_dir(dir_fd, rel, lower, lower_is_dir, hidden, found, marked, kept):
    """Compare the upper directory at rel (open as dir_fd) with the lower,
    adding to found; returns its subdirectories to scan, as
    [(name, rel, lower_is_dir, hidden)].

    lower_is_dir: the lower has a directory at rel to compare with.
    hidden: an ancestor is opaque, so none of the lower shows here either:
    the merged view of this directory is the upper one alone.  marked: the
    layer records set-ID bits (setid.py).  kept: its _Kept attributes."""
    where = rel
    subdirs = []
    try:
        entries = {}
        whiteouts = []
        opaque = False
        with os.scandir(dir_fd) as it:
            for e in it:
                if e.name == OPAQUE:
                    opaque = True
                elif e.name in (LOWER_RECORD, setid.MARKER, xattrstore.DIR) and not rel:
                    continue
                elif e.name.startswith(WH):
                    whiteouts.append(e.name[len(WH):])
                else:
                    where = _join(rel, e.name)
                    entries[e.name] = e.stat(follow_symlinks=False)
        if lower_is_dir:
            if hidden or opaque:
                # Whatever of the lower the upper does not re-create is gone.
                for name, le in lower.children(rel):
                    if name not in entries and not name.startswith(WH):
                        found.append((Change("deleted", _guest(_join(rel, name)),
                                             type_name(le.mode)), None))
            else:
                for name in whiteouts:
                    where = _join(rel, name)
                    le = lower.lookup(where) if name and name not in entries else None
                    if le is not None:
                        found.append((Change("deleted", _guest(where), type_name(le.mode)),
                                      None))
        for name, st in entries.items():
            where = child = _join(rel, name)
            le = lower.lookup(child) if lower_is_dir else None
            is_dir = stat.S_ISDIR(st.st_mode)
            compare_inside = False
            if le is None:
                kind = "added"
            elif le.kind != stat.S_IFMT(st.st_mode):
                kind = "modified"
            elif is_dir:
                differs = stat.S_IMODE(st.st_mode) != stat.S_IMODE(le.mode) \
                    or kept.guest_xattrs(dir_fd, name) != lower.xattrs(le)
                kind, compare_inside = ("modified" if differs else None), True
            else:
                bits = setid.read(dir_fd, name) if marked and stat.S_ISREG(st.st_mode) else 0
                differs = _differs(dir_fd, name, st, le, lower, bits) \
                    or _holdable(kept.guest_xattrs(dir_fd, name), st.st_mode) \
                    != _holdable(lower.xattrs(le), st.st_mode)
                kind = "modified" if differs else None
            if kind is not None:
                found.append((Change(kind, _guest(child), type_name(st.st_mode)), st))
            if is_dir:
                subdirs.append((name, child, compare_inside, hidden or opaque))
    except OSError as e:
        raise LayerError(f"{_guest(where)}: {e.strerror}") from None
    return subdirs


def _differs(dir_fd, name, st, le, lower, setid_bits=0):
    """Does an upper non-directory (with the set-ID bits recorded for it)
    differ from the lower one of its type?"""
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFLNK:
        return os.readlink(name, dir_fd=dir_fd) != le.linkname
    if stat.S_IMODE(st.st_mode) | setid_bits != stat.S_IMODE(le.mode):
        return True
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        return st.st_rdev != le.rdev
    if kind != stat.S_IFREG:
        return False
    if st.st_size != le.size:
        return True
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    try:
        return not _same_content(fd, st.st_size, le, lower)
    finally:
        os.close(fd)


def _same_content(fd, size, le, lower):
    # A copied-up file keeps its size; only its bytes tell if it changed.
    offset = 0
    while offset < size:
        mine = _pread_full(fd, min(_CHUNK, size - offset), offset)
        if not mine or lower.read(le, offset, len(mine)) != mine:
            return False
        offset += len(mine)
    return True


def _pread_full(fd, size, offset):
    parts = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


# Applying the upper layer to a host directory ------------------------------

def commit(upper_dir, target_dir, lower=None, dry_run=False, keep=False, skipped=None):
    """Apply the upper layer's changes over `lower` (default: target_dir
    itself) to the host directory target_dir, then empty the upper
    directory unless keep or dry_run.  Returns the changes applied (or,
    with dry_run, that would be).  skipped, a list, gets (guest path,
    attribute name, errno) of each attribute the target refused."""
    upper_fd = _open_layer_dir(upper_dir, "--upper")
    try:
        target_fd = _open_layer_dir(target_dir, "commit target")
        try:
            if os.path.samestat(os.fstat(upper_fd), os.fstat(target_fd)):
                raise BadInput(f"{upper_dir}: the upper directory cannot be its own target")
            found = _scan(upper_fd, lower if lower is not None else HostDirLower(target_dir))
            if not dry_run:
                _Applier(upper_fd, target_fd, skipped).apply(found)
        finally:
            os.close(target_fd)
    finally:
        os.close(upper_fd)
    if not dry_run and not keep:
        discard(upper_dir)
    return [change for change, _st in found]


class _DirChain:
    """Directory fds along one path below a root, reused between
    neighbouring paths; a symlink on the way is an error, never followed.
    Only the last _CHAIN_RECENT levels and one in _CHAIN_EVERY keep their
    fd open: a level whose fd was closed is opened again from the nearest
    one kept above it."""

    def __init__(self, root_fd, label):
        self.root_fd = root_fd
        self.label = label
        self.names = []
        self.fds = []             # per level: an fd, or None if closed

    def parent_of(self, rel):
        """(fd of rel's parent directory, rel's last name)."""
        *dirs, name = rel.split("/")
        keep = 0
        while keep < len(self.names) and keep < len(dirs) and self.names[keep] == dirs[keep]:
            keep += 1
        self._truncate(keep)
        for d in dirs[keep:]:
            parent = self._fd(len(self.fds) - 1)
            self.fds.append(self._open(parent, d, self.names))
            self.names.append(d)
            self._thin()
        return self._fd(len(self.fds) - 1), name

    def _open(self, parent, d, above):
        try:
            return os.open(d, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            here = _guest("/".join(above + [d]))
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise LayerError(f"{here} is a symlink or not a directory in the "
                                 f"{self.label}; not followed") from None
            raise LayerError(f"{here} in the {self.label}: {e.strerror}") from None

    def _fd(self, level):
        """The fd of level (-1: the root), opened again if it was closed."""
        if level < 0:
            return self.root_fd
        if self.fds[level] is None:
            start = level
            while start >= 0 and self.fds[start] is None:
                start -= 1
            fd = self.fds[start] if start >= 0 else self.root_fd
            for i in range(start + 1, level + 1):
                try:
                    nxt = self._open(fd, self.names[i], self.names[:i])
                finally:
                    if i - 1 > start:        # an fd of our own on the way
                        os.close(fd)
                fd = nxt
            self.fds[level] = fd
        return self.fds[level]

    def _thin(self):
        old = len(self.fds) - _CHAIN_RECENT - 1
        if old >= 0 and self.fds[old] is not None and old % _CHAIN_EVERY != _CHAIN_EVERY - 1:
            os.close(self.fds[old])
            self.fds[old] = None

    def forget(self, rel):
        """rel was removed or replaced: drop fds that pass through it."""
        parts = rel.split("/")
        if self.names[:len(parts)] == parts:
            self._truncate(len(parts) - 1)

    def _truncate(self, n):
        while len(self.fds) > n:
            fd = self.fds.pop()
            if fd is not None:
                os.close(fd)
            self.names.pop()

    def close(self):
        self._truncate(0)


class _Applier:
    """Writes the scanned changes into the target directory."""

    def __init__(self, upper_fd, target_fd, skipped=None):
        self.skipped = skipped if skipped is not None else []
        self.kept = _Kept(upper_fd)
        self.upper = _DirChain(upper_fd, "upper layer")
        self.target = _DirChain(target_fd, "target")
        self.first_links = {}     # (dev, ino) in upper -> rel of its first copy
        self.dirs = []            # (rel, upper lstat): mode and times set last
        # As root, a replaced object keeps its owner: committing an edited
        # file of a user must not hand it to root.
        self.keep_owner = os.geteuid() == 0

    def apply(self, found):
        try:
            for change, st in found:
                try:
                    self._apply_one(change, st)
                except OSError as e:
                    raise LayerError(f"{change.path}: {e.strerror}") from None
            # Children first: a directory's times and a read-only mode come
            # after everything written inside it.
            for rel, st in reversed(self.dirs):
                try:
                    self._finish_dir(rel, st)
                except OSError as e:
                    raise LayerError(f"{_guest(rel)}: {e.strerror}") from None
        finally:
            self.upper.close()
            self.target.close()

    def _apply_one(self, change, st):
        rel = change.path[1:]
        pfd, name = self.target.parent_of(rel)
        old = _lstat_or_none(pfd, name)
        if change.kind == "deleted":
            if old is not None:
                _remove(pfd, name, old)
            self.target.forget(rel)
            return
        if stat.S_ISDIR(st.st_mode):
            if old is not None and not stat.S_ISDIR(old.st_mode):
                os.unlink(name, dir_fd=pfd)
                old = None
            if old is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
            self.dirs.append((rel, st))
            return
        # Built under a temporary name and renamed over the old object, so
        # the target never holds half a file (nor an ETXTBSY for a running
        # binary).
        tmp = self._make_copy(rel, st, pfd, old)
        try:
            if old is not None and stat.S_ISDIR(old.st_mode):
                _remove(pfd, name, old)
                self.target.forget(rel)
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            os.unlink(tmp, dir_fd=pfd)
            raise

    def _make_copy(self, rel, recorded, tfd, old):
        ufd, uname = self.upper.parent_of(rel)
        st = os.stat(uname, dir_fd=ufd, follow_symlinks=False)
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(recorded.st_mode):
            raise LayerError(f"{_guest(rel)}: the upper layer changed during the commit")
        kind = stat.S_IFMT(st.st_mode)
        owner = (old.st_uid, old.st_gid) if old is not None and self.keep_owner else None
        key = (st.st_dev, st.st_ino)
        if kind == stat.S_IFREG and st.st_nlink > 1 and key in self.first_links:
            return self._link_to_first(self.first_links[key], tfd)
        if kind == stat.S_IFREG:
            tmp = self._copy_file(ufd, uname, st, tfd, owner, rel,
                                  self.kept.of(ufd, uname))
            if st.st_nlink > 1:
                self.first_links[key] = rel
            return tmp
        if kind == stat.S_IFLNK:
            dest = os.readlink(uname, dir_fd=ufd)
            tmp = _fresh_name(tfd, lambda n: os.symlink(dest, n, dir_fd=tfd))
        else:
            tmp = _fresh_name(tfd, lambda n: os.mknod(n, kind | 0o600, st.st_rdev,
                                                       dir_fd=tfd))
        try:
            if owner is not None:
                os.chown(tmp, *owner, dir_fd=tfd, follow_symlinks=False)
            if kind != stat.S_IFLNK:
                _chmod_special(tfd, tmp, stat.S_IMODE(st.st_mode))
            # after the chown, which would drop a security.capability;
            # a path's last name is never followed: a symlink's own
            self._give_xattrs(_in_dir(tfd, tmp), self.kept.guest_xattrs(ufd, uname), {}, rel)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=tfd,
                     follow_symlinks=False)
        except BaseException:
            os.unlink(tmp, dir_fd=tfd)
            raise
        return tmp

    def _copy_file(self, ufd, uname, st, tfd, owner, rel, recorded):
        src = os.open(uname, _READ_FLAGS, dir_fd=ufd)
        try:
            opened = os.fstat(src)
            if opened.st_ino != st.st_ino or not stat.S_ISREG(opened.st_mode):
                raise LayerError(f"{uname}: the upper layer changed during the commit")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            holder = []
            tmp = _fresh_name(tfd, lambda n: holder.append(os.open(n, flags, 0o600,
                                                                   dir_fd=tfd)))
            dst = holder[0]
            try:
                _copy_data(src, dst)
                if owner is not None:
                    os.fchown(dst, *owner)
                # after chown, which drops setuid; the set-ID bits the host
                # file could not carry are the target's (setid.py)
                os.fchmod(dst, stat.S_IMODE(st.st_mode) | setid.read_fd(src))
                # after the data and the chown, which would drop a
                # security.capability
                self._give_xattrs(dst, {**xattrs.guest_view(host_xattrs(src)), **recorded},
                                  {}, rel)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                os.close(dst)
                os.unlink(tmp, dir_fd=tfd)
                raise
            os.close(dst)
            return tmp
        finally:
            os.close(src)

    def _give_xattrs(self, obj, wanted, had, rel):
        """Make the target object's attributes (obj: open as an fd, or a
        path whose last name is not followed; `had`, as the guest would
        see them) the upper's `wanted`, under their real names: an
        emulated trusted.* becomes a real one, which only root may set.  A
        refusal is recorded and skipped, never half a commit."""
        changes = [(n, v) for n, v in wanted.items() if had.get(n) != v]
        changes += [(n, None) for n in had if n not in wanted]
        follow = isinstance(obj, int)     # an fd is its own object
        for name, value in changes:
            try:
                if value is None:
                    os.removexattr(obj, name, follow_symlinks=follow)
                else:
                    os.setxattr(obj, name, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno != errno.ENODATA:
                    self.skipped.append((_guest(rel), name, e.errno))

    def _link_to_first(self, first_rel, tfd):
        chain = _DirChain(self.target.root_fd, "target")
        try:
            ffd, fname = chain.parent_of(first_rel)
            return _fresh_name(tfd, lambda n: os.link(fname, n, src_dir_fd=ffd, dst_dir_fd=tfd,
                                                      follow_symlinks=False))
        finally:
            chain.close()

    def _finish_dir(self, rel, st):
        ufd, uname = self.upper.parent_of(rel)
        wanted = self.kept.guest_xattrs(ufd, uname)
        pfd, name = self.target.parent_of(rel)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            # the directory stays: only what the guest changed changes
            had = xattrs.guest_view(host_xattrs(fd))
            self._give_xattrs(fd, wanted, had, rel)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)


_serial = 0


def _fresh_name(dir_fd, create):
    """Call create(name) with an unused temporary name in dir_fd; the name."""
    global _serial
    for _ in range(100):
        _serial += 1
        name = f".umlpy-commit.{os.getpid()}.{_serial}"
        try:
            create(name)
            return name
        except FileExistsError:
            continue
    raise LayerError("no free temporary name in the target")


_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


def _copy_data(src, dst):
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
    except OSError as e:
        if e.errno not in _NO_COPY_FILE_RANGE:
            raise
    # The file offsets moved with whatever was copied: read on from there
    # (some filesystems also end copy_file_range early with 0).
    while True:
        data = os.read(src, _CHUNK)
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]


def _chmod_special(dir_fd, name, mode):
    """chmod without following a symlink, for objects that cannot be opened
    (sockets, devices): through an O_PATH fd's /proc/self/fd link."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    except FileNotFoundError:        # no /proc: name is ours, just made in dir_fd
        os.chmod(name, mode, dir_fd=dir_fd)
    finally:
        os.close(fd)


def _lstat_or_none(dir_fd, name):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


# Removing ---------------------------------------------------------------------

def discard(upper_dir):
    """Remove everything inside the upper directory (not the directory
    itself), never following a symlink.  Returns how many objects went."""
    if os.path.realpath(upper_dir) == "/":
        raise BadInput("refusing to discard everything under /")
    fd = _open_layer_dir(upper_dir, "--upper")
    try:
        return empty_dir(fd)
    except OSError as e:
        raise LayerError(f"{upper_dir}: {e.strerror}") from None
    finally:
        os.close(fd)


def _remove(dir_fd, name, st):
    """Remove name (an object lstat'ed as st) in dir_fd, recursively."""
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    fd = open_dir_to_empty(dir_fd, name)
    try:
        count = empty_dir(fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return count + 1


def _open_layer_dir(path, what):
    """A directory the user named (followed if a symlink: the user's word)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise BadInput(f"{what} {path}: {e.strerror}") from None
