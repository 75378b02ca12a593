"""A read-only filesystem tree served from uncompressed tar images
(OCI / ``docker export`` layers) mapped with mmap.

An image is indexed once by one pass over its headers; the index is
cached beside the image (or in the user's cache) and reused while the
image is unchanged.  Several images stack as OCI layers, lowest first,
with ``.wh.`` whiteouts and ``.wh..wh..opq`` opaque directories.  The
tree answers metadata from memory; file data comes from the mapping, or,
when the host itself must open a member (exec, mmap), from a read-only
copy in the shared content cache (``contentcache``).

Paths are relative to the root with no leading slash (``""`` is the
root) and are never resolved through symlinks here: that is the VFS's
job."""
import gc
import marshal
import os
import stat
import sys

from umlpy.abi.resource import XATTR_NAME_MAX, XATTR_SIZE_MAX
from umlpy.abi.xattr import XATTR_LIST_MAX
from umlpy.errors import BadInput

from umlpy.kernel.vfs.xattrs import RESERVED

# Bump when the index layout or the meaning of its fields changes (3:
# LIBARCHIVE.xattr records read, umlpy's reserved names dropped; an index
# of 2 lacks them).
INDEX_FORMAT = ("umlpy-tar-index", 3)
# Bump when the tree built from the same images would differ (inode
# numbering, synthesised entries): cached content is keyed by it.
TREE_FORMAT = b"umlpy-tar-tree 1"
INDEX_SUFFIX = ".umlpy-index"

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
DIR_SIZE = 4096              # what stat shows for a directory, as on ext4
IMPLIED_DIR_MODE = stat.S_IFDIR | 0o755
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
HARDLINK = 0                 # the mode of an index record that is a hard link
XATTR_KEY = "SCHILY.xattr."  # a PAX record of an extended attribute (GNU tar, bsdtar, star)
LIBARCHIVE_XATTR_KEY = "LIBARCHIVE.xattr."  # bsdtar's: the name URL-encoded, the value base64
_S_IFMT, _S_IFDIR = 0o170000, stat.S_IFDIR

_TYPES = {
    b"0": stat.S_IFREG, b"\0": stat.S_IFREG, b"7": stat.S_IFREG,
    b"2": stat.S_IFLNK, b"3": stat.S_IFCHR, b"4": stat.S_IFBLK,
    b"5": stat.S_IFDIR, b"D": stat.S_IFDIR, b"6": stat.S_IFIFO,
    b"1": HARDLINK,
}
# Types whose data blocks follow the header (POSIX: none for 1-6).
_HAS_DATA = {b"0", b"\0", b"7", b"D"}


class Entry:
    """One file of the tree.  Hard links share one Entry."""
    __slots__ = ("mode", "uid", "gid", "size", "mtime_ns", "linkname", "rdev",
                 "ino", "nlink", "layer", "offset", "xattrs")

    def __init__(self, mode, uid, gid, size, mtime_ns, linkname, rdev, offset, layer,
                 xattrs=None):
        self.mode, self.uid, self.gid, self.size = mode, uid, gid, size
        self.mtime_ns, self.linkname, self.rdev = mtime_ns, linkname, rdev
        self.offset, self.layer = offset, layer   # data: which image, where
        self.xattrs = xattrs                      # ((name, value), ...) or None
        self.ino = self.nlink = 0                 # set once the tree is complete

    @property
    def kind(self):
        return stat.S_IFMT(self.mode)

    def __repr__(self):
        return (f"<Entry ino={self.ino} mode={self.mode:o} size={self.size} "
                f"nlink={self.nlink}{' -> ' + self.linkname if self.linkname else ''}>")


def _implied_dir():
    return Entry(IMPLIED_DIR_MODE, 0, 0, DIR_SIZE, 0, None, 0, 0, -1)


class _GcPaused:
    """Building 100k objects that hold no cycles: the cyclic collector
    would only rescan them over and over (it halves the load time)."""

    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()


class _Broken(Exception):
    """Why an image is not a valid tar (the reason of a BadInput)."""


# ---------------------------------------------------------------- scanning

def _number(field):
    """A numeric header field: octal text, or GNU base-256 binary."""
    if field and field[0] & 0x80:
        if field[0] == 0xFF:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(text)
    return int(text, 8)


def _cstr(field):
    return field.split(b"\0", 1)[0]


def _decode(raw):
    return raw.decode("utf-8", "surrogateescape")


def _checksum_ok(block):
    try:
        stored = _number(block[148:156])
    except ValueError:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
    if stored == unsigned:
        return True
    # Some old tars summed signed chars.
    high = sum(b >> 7 for b in block) - sum(b >> 7 for b in block[148:156])
    return stored == unsigned - 256 * high


def _normalise(name, what="member"):
    parts = []
    for part in name.split("/"):
        if part == "..":
            raise _Broken(f"{what} name {name!r} contains '..'")
        if part and part != ".":
            parts.append(part)
    return "/".join(parts)


def _pax_records(data, offset):
    """The key=value records of a pax extended header."""
    records = {}
    pos = 0
    try:
        while pos < len(data) and data[pos] != 0:
            space = data.index(b" ", pos)
            length = int(data[pos:space])
            record = data[space + 1:pos + length]
            if length <= 0 or not record.endswith(b"\n"):
                raise ValueError
            key, eq, value = record[:-1].partition(b"=")
            if not eq:
                raise ValueError
            records[key.decode("utf-8", "surrogateescape")] = value
            pos += length
    except ValueError:
        raise _Broken(f"bad pax header at offset {offset}") from None
    return records


def _pax_time_ns(value):
    """'1234.5678' seconds as integer nanoseconds, exactly."""
    text = value.decode("ascii")
    negative = text.startswith("-")
    seconds, _, fraction = text.lstrip("-").partition(".")
    ns = int(seconds or "0") * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


def _scan(mm, size, report=None):
    """One pass over the headers of the tar in `mm`: (records, whiteouts,
    opaque dirs, digest of all headers).  A record is (path, mode, uid,
    gid, size, mtime_ns, linkname, rdev, data offset, xattrs) in archive
    order; a hard link has mode HARDLINK and its target path as linkname."""
    import hashlib
    headers = hashlib.sha256()
    records, whiteouts, opaque = [], [], []
    global_pax = {}
    pending = {}            # what L, K and x headers said about the next member
    pos = 0
    next_report = 0
    while True:
        if report is not None and pos >= next_report:
            report(pos)
            next_report = pos + (size >> 7) + 1
        if pos + BLOCK > size:
            if pos >= size:
                raise _Broken("no end-of-archive marker (truncated?)")
            raise _Broken(f"truncated header at offset {pos}")
        block = mm[pos:pos + BLOCK]
        if block == ZERO_BLOCK:
            if pending:
                raise _Broken(f"extended header without a member before offset {pos}")
            break
        if not _checksum_ok(block):
            raise _Broken(f"bad header checksum at offset {pos}")
        headers.update(block)
        typeflag = block[156:157]
        try:
            hsize = _number(block[124:136])
        except ValueError:
            raise _Broken(f"bad size field at offset {pos}") from None
        data_at = pos + BLOCK

        if typeflag in (b"L", b"K", b"x", b"g"):
            if data_at + hsize > size:
                raise _Broken(f"extended header at offset {pos} runs past the end of the file")
            data = mm[data_at:data_at + hsize]
            headers.update(data)
            if typeflag == b"L":
                pending["path"] = _cstr(data)
            elif typeflag == b"K":
                pending["linkpath"] = _cstr(data)
            elif typeflag == b"x":
                pending.update(_pax_records(data, pos))
            else:
                global_pax.update(_pax_records(data, pos))
            pos = data_at + _padded(hsize)
            continue

        record, data_size = _member(block, pos, typeflag, hsize, global_pax, pending)
        pending = {}
        if data_at + data_size > size:
            raise _Broken(f"data of {record[0]!r} at offset {data_at} runs past the end "
                          f"of the file ({data_size} bytes, file has {size})")
        pos = data_at + _padded(data_size)
        directory, _, base = record[0].rpartition("/")
        if not base.startswith(WHITEOUT_PREFIX):
            records.append(record)
        elif base == OPAQUE_MARKER:
            opaque.append(directory)
        elif not base.startswith(WHITEOUT_PREFIX * 2):   # other .wh..wh.* are aufs' own
            hidden = base[len(WHITEOUT_PREFIX):]
            whiteouts.append(f"{directory}/{hidden}" if directory else hidden)
    if report is not None:
        report(size)
    return records, whiteouts, opaque, headers.hexdigest()


def _padded(n):
    return (n + BLOCK - 1) & ~(BLOCK - 1)


def _member(block, pos, typeflag, hsize, global_pax, pending):
    """(record, size of the data blocks that follow) for one member."""
    pax = dict(global_pax)
    pax.update(pending)
    xattrs = _xattrs(pax)       # before: an attribute's value may be empty
    pax = {k: v for k, v in pax.items() if v != b""}   # empty: back to the header
    if "path" in pax:
        raw_name = pax["path"]
    else:
        raw_name = _cstr(block[0:100])
        prefix = _cstr(block[345:500])
        if block[257:263] == b"ustar\0" and prefix:
            raw_name = prefix + b"/" + raw_name
    name = _decode(raw_name)
    if typeflag == b"S" or any(k.startswith("GNU.sparse.") for k in pax):
        raise _Broken(f"sparse file {name!r} at offset {pos} is not supported")
    kind = _TYPES.get(typeflag)
    if kind is None:
        raise _Broken(f"unsupported member type {typeflag!r} for {name!r} at offset {pos}")
    if typeflag == b"\0" and raw_name.endswith(b"/"):
        kind = stat.S_IFDIR          # pre-POSIX tars mark directories so
    path = _normalise(name)

    try:
        perm = _number(block[100:108]) & 0o7777
        uid = int(pax["uid"]) if "uid" in pax else _number(block[108:116])
        gid = int(pax["gid"]) if "gid" in pax else _number(block[116:124])
        size = int(pax["size"]) if "size" in pax else hsize
        mtime_ns = (_pax_time_ns(pax["mtime"]) if "mtime" in pax
                    else _number(block[136:148]) * 1_000_000_000)
        rdev = 0
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            rdev = os.makedev(_number(block[329:337]), _number(block[337:345]))
    except (ValueError, OverflowError):
        raise _Broken(f"bad numeric field in the header of {name!r} at offset {pos}") from None
    if size < 0:
        raise _Broken(f"negative size for {name!r} at offset {pos}")
    data_size = size if typeflag in _HAS_DATA else 0

    linkname = None
    if kind in (stat.S_IFLNK, HARDLINK):
        linkname = _decode(pax["linkpath"] if "linkpath" in pax else _cstr(block[157:257]))
        if kind == HARDLINK:
            linkname = _normalise(linkname, "hard link target")
    if kind == stat.S_IFREG:
        entry_size, offset = size, pos + BLOCK
    elif kind == stat.S_IFDIR:
        entry_size, offset = DIR_SIZE, 0
    elif kind == stat.S_IFLNK:
        entry_size, offset = len(linkname.encode("utf-8", "surrogateescape")), 0
    else:
        entry_size, offset = 0, 0
    if kind == stat.S_IFLNK:
        perm = 0o777             # what Linux shows for every symlink
    mode = kind | perm if kind != HARDLINK else HARDLINK
    return (path, mode, uid, gid, entry_size, mtime_ns, linkname, rdev, offset,
            xattrs), data_size


def _xattrs(pax):
    """A member's extended attributes from its PAX records, ((name,
    value), ...) in archive order, or None.  SCHILY.xattr.NAME holds the
    raw value (GNU tar, star); bsdtar writes LIBARCHIVE.xattr.NAME with
    NAME URL-encoded and the value in base64, and beside it a SCHILY twin
    under the same encoded NAME, which is that attribute again.  Only what
    Linux could have held is kept (a name of 1 to 255 bytes, a value of at
    most XATTR_SIZE_MAX, XATTR_LIST_MAX of names in all), as an extraction
    would have kept it: an image cannot make the index grow past that.
    Names of umlpy's own (RESERVED) are no image's to give."""
    decoded = {}                # encoded NAME of a LIBARCHIVE record -> (name, value)
    for key, value in pax.items():
        if key.startswith(LIBARCHIVE_XATTR_KEY):
            encoded = key[len(LIBARCHIVE_XATTR_KEY):]
            attribute = _libarchive_xattr(encoded, value)
            if attribute is not None:
                decoded[encoded] = attribute
    found, seen, listed = [], set(), 0
    for key, value in pax.items():
        if key.startswith(LIBARCHIVE_XATTR_KEY):
            attribute = decoded.get(key[len(LIBARCHIVE_XATTR_KEY):])
        elif key.startswith(XATTR_KEY) and key[len(XATTR_KEY):] not in decoded:
            attribute = key[len(XATTR_KEY):], bytes(value)
        else:
            continue
        if attribute is None or attribute[0] in seen:
            continue
        name, value = attribute
        size = len(name.encode("utf-8", "surrogateescape"))
        if not 0 < size <= XATTR_NAME_MAX or len(value) > XATTR_SIZE_MAX \
                or listed + size + 1 > XATTR_LIST_MAX or name.startswith(RESERVED):
            continue
        listed += size + 1
        seen.add(name)
        found.append((name, value))
    return tuple(found) or None


def _libarchive_xattr(encoded, value):
    """(name, value) of a LIBARCHIVE.xattr record, None if it does not
    decode (then its SCHILY twin, if any, is read as it is)."""
    import base64
    import binascii
    from urllib.parse import unquote_to_bytes
    try:
        raw = bytes(value).strip()
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    name = unquote_to_bytes(encoded.encode("utf-8", "surrogateescape"))
    return name.decode("utf-8", "surrogateescape"), data


# ------------------------------------------------------------ the index

def _identity(st):
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _fallback_index_path(realpath, index_dir):
    """Where an image's index lives when it cannot live beside the image:
    named after the image's real path, in index_dir or the user's cache."""
    import hashlib
    if index_dir is None:
        from .contentcache import user_cache_dir
        try:
            index_dir = user_cache_dir("index")
        except Exception:       # no usable cache anywhere: go without
            return None
    name = hashlib.sha256(os.fsencode(realpath)).hexdigest()[:16]
    return os.path.join(index_dir, f"{name}-{os.path.basename(realpath)}{INDEX_SUFFIX}")


def _beside_writable(index_path):
    # os.access also says no on a read-only filesystem, even to root.
    return os.access(os.path.dirname(index_path), os.W_OK)


def _load_index(path, identity, image_uid):
    """The cached index at path if it is ours and describes this very
    image, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # Someone who can plant an index could as well replace the image,
        # unless it is another user in a shared directory.
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (os.geteuid(), image_uid):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f, _GcPaused():
            index = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    if (type(index) is not tuple or len(index) != 6 or index[0] != INDEX_FORMAT
            or index[1] != identity):
        return None
    return index


def _write_index(path, index):
    """Write atomically: a crash leaves the old index or none, never half
    of one.  False if the directory refuses."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(index, 4))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


class TarImage:
    """One mapped tar image and its index."""

    def __init__(self, path, mapping, identity, digest, records, whiteouts, opaque, index_path):
        self.path = path
        self.map = mapping
        self.identity = identity
        self.digest = digest          # of the image's identity and headers
        self.records = records
        self.whiteouts = whiteouts
        self.opaque = opaque
        self.index_path = index_path  # where the index is cached (None: nowhere)

    def close(self):
        self.map.close()

    def __repr__(self):
        return f"<TarImage {self.path!r} {len(self.records)} members>"


def open_image(path, index_dir=None, progress=None):
    """Map the tar image at path and load its index, building (and
    caching) it if it is missing or stale.  `progress`: None draws a bar
    on stderr when it is a terminal, False never, True always, or a
    callable(done_bytes, total_bytes).  A broken image raises BadInput."""
    import mmap
    path = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO named as an image must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise BadInput(f"{path}: cannot open image: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{path}: not a valid tar image: not a regular file")
        if st.st_size == 0:
            raise BadInput(f"{path}: not a valid tar image: empty file")
        mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        compression = not _checksum_ok(mapping[:BLOCK]) and _compression(mapping[:6])
        if compression:
            mapping.close()
            raise BadInput(f"{path}: not a valid tar image: {compression}-compressed; "
                           f"decompress it first (images are mapped, not unpacked)")
    finally:
        os.close(fd)
    try:
        return _indexed(path, mapping, st, index_dir, progress)
    except BaseException:
        mapping.close()
        raise


_MAGICS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _compression(head):
    for magic, name in _MAGICS.items():
        if head.startswith(magic):
            return name
    return None


def _indexed(path, mapping, st, index_dir, progress):
    identity = _identity(st)
    realpath = os.path.realpath(path)
    beside = realpath + INDEX_SUFFIX
    index = _load_index(beside, identity, st.st_uid)
    if index is not None:
        return TarImage(path, mapping, identity, *index[2:], beside)
    fallback = None
    if index_dir is not None or not _beside_writable(beside):
        fallback = _fallback_index_path(realpath, index_dir)
        index = fallback and _load_index(fallback, identity, st.st_uid)
        if index is not None:
            return TarImage(path, mapping, identity, *index[2:], fallback)

    report, finish = _progress_for(progress, path, st.st_size)
    try:
        records, whiteouts, opaque, headers = _scan(mapping, st.st_size, report)
        _validate(records, whiteouts, opaque)
    except _Broken as e:
        _discard_stale([beside, fallback])
        raise BadInput(f"{path}: not a valid tar image: {e}") from None
    finally:
        finish()
    import hashlib
    digest = hashlib.sha256(repr((INDEX_FORMAT, identity, headers)).encode()).hexdigest()
    index = (INDEX_FORMAT, identity, digest, tuple(records), tuple(whiteouts), tuple(opaque))
    written = None
    if _beside_writable(beside) and _write_index(beside, index):
        written = beside
    else:
        fallback = fallback or _fallback_index_path(realpath, index_dir)
        if fallback and _write_index(fallback, index):
            written = fallback
    return TarImage(path, mapping, identity, *index[2:], written)


def _discard_stale(candidates):
    for candidate in candidates:
        if candidate is not None:
            try:
                os.unlink(candidate)
            except OSError:
                pass


def _validate(records, whiteouts, opaque):
    """Replay the image alone, strictly: members below non-directories and
    dangling hard links make the image broken."""
    builder = _TreeBuilder()
    builder.add_layer(0, records, whiteouts, opaque, strict=True)


# ----------------------------------------------------- stacking layers

class _TreeBuilder:
    """Replays layers' members over a growing tree, lowest layer first."""

    def __init__(self):
        self.entries = {"": _implied_dir()}
        self.kids = {"": set()}            # directory path -> names in it

    def add_layer(self, layer, records, whiteouts, opaque, strict=False):
        entries, kids = self.entries, self.kids
        # Whiteouts hide what lower layers have, never this layer's own
        # members, so they go first.
        for path in whiteouts:
            self._remove(path)
        for path in opaque:
            for name in list(kids.get(path, ())):
                self._remove(f"{path}/{name}" if path else name)
        for record in records:
            path = record[0]
            if record[1] == HARDLINK:
                entry = entries.get(record[6])
                if entry is None or stat.S_ISDIR(entry.mode):
                    if strict:
                        why = "missing" if entry is None else "directory"
                        raise _Broken(f"hard link {path!r} to {why} {record[6]!r}")
                    continue
            else:
                entry = Entry(*record[1:9], layer, record[9])
            is_dir = entry.mode & _S_IFMT == _S_IFDIR
            if not path:
                if not is_dir:
                    if strict:
                        raise _Broken("the root member is not a directory")
                    continue
                entries[""] = entry
                continue
            parent, _, name = path.rpartition("/")
            if parent not in kids:
                self._make_parents(parent, path, strict)
            old = entries.get(path)
            if old is not None:
                if is_dir and old.mode & _S_IFMT == _S_IFDIR:   # a directory again: same contents
                    entries[path] = entry
                    continue
                self._remove(path)
            entries[path] = entry
            kids[parent].add(name)
            if is_dir:
                kids[path] = set()

    def _make_parents(self, parent, member, strict):
        missing = []
        while parent not in self.kids:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for path in reversed(missing):
            if path in self.entries:       # not in kids: not a directory
                if strict:
                    raise _Broken(f"{member!r} is below non-directory {path!r}")
                self._remove(path)
            self.entries[path] = _implied_dir()
            up, _, name = path.rpartition("/")
            self.kids[up].add(name)
            self.kids[path] = set()

    def _remove(self, path):
        """Remove path and everything below it, if present."""
        if not path or self.entries.pop(path, None) is None:
            return
        parent, _, name = path.rpartition("/")
        self.kids[parent].discard(name)
        if path not in self.kids:
            return
        stack = [path]
        while stack:
            directory = stack.pop()
            for name in self.kids.pop(directory):
                child = f"{directory}/{name}"
                del self.entries[child]
                if child in self.kids:
                    stack.append(child)

    def finish(self):
        """Number inodes in sorted breadth-first order (stable for the same
        images, so every process names cached content alike), count links,
        sort each directory: (entries, children, by_ino)."""
        entries, kids = self.entries, self.kids
        children, by_ino = {}, {}
        root = entries[""]
        root.ino = 1
        by_ino[1] = ("", root)
        next_ino = 2
        order = [""]
        for directory in order:                # grows as subdirectories are found
            listing = []
            prefix = f"{directory}/" if directory else ""
            for name in sorted(kids[directory]):
                path = prefix + name
                entry = entries[path]
                if not entry.ino:
                    entry.ino = next_ino
                    by_ino[next_ino] = (path, entry)
                    next_ino += 1
                if path in kids:
                    order.append(path)
                else:
                    entry.nlink += 1
                listing.append((name, entry))
            entries[directory].nlink = 2 + sum(1 for _, e in listing if e.mode & _S_IFMT == _S_IFDIR)
            children[directory] = tuple(listing)
        return entries, children, by_ino


class TarTree:
    """The tree a stack of images shows, read-only."""

    def __init__(self, images, cache=None):
        import hashlib
        self._images = list(images)
        self.images = [image.path for image in self._images]
        with _GcPaused():
            builder = _TreeBuilder()
            for layer, image in enumerate(self._images):
                builder.add_layer(layer, image.records, image.whiteouts, image.opaque)
            self._entries, self._children, self._by_ino = builder.finish()
        stack_id = TREE_FORMAT + b"".join(image.digest.encode() for image in self._images)
        self.digest = hashlib.sha256(stack_id).hexdigest()[:32]
        self._cache = cache
        self._published = {}       # ino -> host path

    def lookup(self, relpath):
        return self._entries.get(relpath)

    def children(self, relpath):
        return list(self._children.get(relpath, ()))

    def xattrs(self, entry):
        """entry's extended attributes, ((name, value), ...), from its
        PAX records."""
        return entry.xattrs or ()

    def read(self, entry, offset=0, size=-1):
        if not stat.S_ISREG(entry.mode):
            raise ValueError(f"not a regular file: {entry!r}")
        offset = max(0, min(offset, entry.size))
        end = entry.size if size < 0 else min(entry.size, offset + size)
        start = entry.offset + offset
        return self._images[entry.layer].map[start:start + max(0, end - offset)]

    @property
    def cache(self):
        if self._cache is None:
            from .contentcache import ContentCache
            self._cache = ContentCache()
        return self._cache

    def materialise(self, entry):
        """A host path of a read-only file with entry's content, mtime and
        execute bits, shared by every sandbox using the same images."""
        if not stat.S_ISREG(entry.mode):
            raise ValueError(f"not a regular file: {entry!r}")
        path = self._published.get(entry.ino)
        if path is not None:
            return path
        with memoryview(self._images[entry.layer].map) as whole:
            with whole[entry.offset:entry.offset + entry.size] as data:
                path = self.cache.publish_file(self.digest, str(entry.ino), data,
                                               entry.mode, entry.mtime_ns)
        self._published[entry.ino] = path
        return path

    def materialise_dir(self, entry):
        """A host path of an empty directory standing for entry (one per
        directory entry: the VFS maps host inodes back to entries)."""
        if not stat.S_ISDIR(entry.mode):
            raise ValueError(f"not a directory: {entry!r}")
        path = self._published.get(entry.ino)
        if path is not None:
            return path
        path = self.cache.publish_dir(self.digest, f"d{entry.ino}", entry.mtime_ns)
        self._published[entry.ino] = path
        return path

    def entry_for_host_path(self, host_path):
        """(relpath, entry) for a path materialise or materialise_dir gave."""
        found = self.cache.locate(host_path)
        if found is None or found[0] != self.digest:
            return None
        key = found[1]
        want_dir = key.startswith("d")
        digits = key[1:] if want_dir else key
        if not digits.isdigit():
            return None
        hit = self._by_ino.get(int(digits))
        if hit is None or stat.S_ISDIR(hit[1].mode) != want_dir:
            return None
        return hit

    def __len__(self):
        return len(self._entries)

    def close(self):
        for image in self._images:
            image.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stack_images(paths, index_dir=None, progress=None, cache=None):
    """The tree of the images at paths stacked as OCI layers, lowest
    first.  cache: the ContentCache for materialise (default: the user's)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    images = []
    try:
        for path in paths:
            images.append(open_image(path, index_dir, progress))
        return TarTree(images, cache)
    except BaseException:
        for image in images:
            image.close()
        raise


# --------------------------------------------------------------- progress

def _progress_for(progress, path, total):
    """(report(done) or None, finish()) for the chosen kind of progress."""
    if progress is None:
        progress = sys.stderr is not None and sys.stderr.isatty()
    if progress is False:
        return None, lambda: None
    if callable(progress):
        return (lambda done: progress(done, total)), lambda: None
    bar = _ProgressBar(os.path.basename(path), total, sys.stderr)
    return bar.update, bar.finish


class _ProgressBar:
    """One line on a terminal, redrawn at most ten times a second."""
    WIDTH = 30

    def __init__(self, name, total, stream):
        import time
        self._clock = time.monotonic
        self.name, self.total, self.stream = name, max(total, 1), stream
        self._last = -1.0

    def update(self, done):
        now = self._clock()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        filled = self.WIDTH * done // self.total
        self.stream.write(f"\rumlpy: indexing {self.name} [{'#' * filled}{' ' * (self.WIDTH - filled)}] "
                          f"{_human(done)}/{_human(self.total)}")
        self.stream.flush()

    def finish(self):
        self.stream.write("\r\033[K")
        self.stream.flush()


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
