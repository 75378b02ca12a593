"""The emulated attributes of the upper layer's objects that cannot hold a
``user.*`` one (symlinks, FIFOs, sockets, devices, every object of an
upper filesystem without user.* attributes), kept on disk so that they
outlive the run with a kept ``--upper``, as those of regular files and
directories do (behind xattrs.RESERVED, on the file itself).

xattrs.Records keeps them in memory and tells a Store of each change:
each object's attributes in a file of its own in DIR (a ``.wh..wh.``
name in the upper's root: no guest can name or make it, union.py), named
after the object's inode number and birth time, so the record follows
the object through renames and is never given to a new object that
reuses the inode number (where the filesystem tells a birth time).  The
next run loads them back into its Records, within their limit.

No hostops here: `umlpy diff` and `commit` import the name DIR."""
import os

from ...abi.resource import XATTR_NAME_MAX, XATTR_SIZE_MAX

DIR = ".wh..wh..xattrs"
_MAGIC = b"umlpy-xattrs 1\n"
_LEN_SIZE = 4          # a length: 4 bytes, little-endian (the file is ours, no ABI)

# A file bigger than the records may ever hold is none of ours.
_MAX_FILE = 8 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _length(n):
    return n.to_bytes(_LEN_SIZE, "little")


def _file_name(ino, born):
    return f"{ino}-{born[0]}.{born[1]}" if born is not None else f"{ino}-"


def _parse_name(name):
    """(ino, born) of a record's file name, or None for any other name."""
    ino, dash, born = name.partition("-")
    try:
        if not dash or not ino.isdigit():
            return None
        if not born:
            return int(ino), None
        sec, dot, nsec = born.partition(".")
        if not dot:
            return None
        return int(ino), (int(sec), int(nsec))
    except ValueError:
        return None


def encode(rel, attrs):
    out = [_MAGIC, _length(len(rel)), rel]
    for name, value in attrs.items():
        raw = os.fsencode(name)
        out += [_length(len(raw)), raw, _length(len(value)), value]
    return b"".join(out)


def decode(data):
    """(rel, {name: value}); ValueError for anything not written by encode
    within the kernel's limits."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a record")
    pos = len(_MAGIC)

    def field(limit):
        nonlocal pos
        if pos + _LEN_SIZE > len(data):
            raise ValueError("truncated")
        n = int.from_bytes(data[pos:pos + _LEN_SIZE], "little")
        pos += _LEN_SIZE
        if n > limit or pos + n > len(data):
            raise ValueError("field too long")
        pos += n
        return data[pos - n:pos]
    rel = field(4096)
    attrs = {}
    while pos < len(data):
        name = os.fsdecode(field(XATTR_NAME_MAX))
        attrs[name] = field(XATTR_SIZE_MAX)
    return rel, attrs


class Store:
    """The records' files of one upper layer (upper_fd: an fd of its root,
    upper_path: its real path, as the records' host paths begin)."""

    def __init__(self, upper_fd, upper_path):
        self.upper_fd = upper_fd
        self.prefix = upper_path.rstrip("/") + "/"
        st = os.stat(upper_fd)
        self.dev = (os.major(st.st_dev), os.minor(st.st_dev))

    def _where(self, key, where):
        """The file name and the upper-relative path of key's record, or
        None for an object that is not the upper layer's."""
        if where is None or not where.startswith(self.prefix) or tuple(key[:2]) != self.dev:
            return None
        return _file_name(key[2], key[3]), os.fsencode(where[len(self.prefix):])

    def _dir(self, create):
        try:
            return os.open(DIR, _DIR_FLAGS, dir_fd=self.upper_fd)
        except FileNotFoundError:
            if not create:
                return None
        try:
            os.mkdir(DIR, 0o700, dir_fd=self.upper_fd)
        except FileExistsError:
            pass
        return os.open(DIR, _DIR_FLAGS, dir_fd=self.upper_fd)

    def _existing_dir(self):
        """An fd of the records' directory, or None if there is none (or
        it cannot be opened: then nothing was kept there)."""
        try:
            return self._dir(False)
        except OSError:
            return None

    def save(self, key, attrs, where):
        """Keep key's attributes (all of them, as they are now).  False if
        the upper refuses: then they last the run only, as before."""
        found = self._where(key, where)
        if found is None:
            return False
        name, rel = found
        try:
            fd = self._dir(True)
        except OSError:
            return False
        tmp = f".{name}.{os.getpid()}"
        try:
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=fd)
            try:
                data = memoryview(encode(rel, attrs))
                while data:
                    data = data[os.write(wfd, data):]
            finally:
                os.close(wfd)
            # a rename: a crash leaves the old record or the new, never half
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            return True
        except OSError:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            return False
        finally:
            os.close(fd)

    def drop(self, key):
        if tuple(key[:2]) != self.dev:
            return
        fd = self._existing_dir()
        if fd is None:
            return
        try:
            os.unlink(_file_name(key[2], key[3]), dir_fd=fd)
        except OSError:
            pass        # none, or it lasts stale: its key names no live object
        finally:
            os.close(fd)

    def load(self, records):
        """Give records the attributes kept by earlier runs, until their
        limit; a file that is not a record is left alone."""
        for key, rel, attrs in _records(self.upper_fd, self.dev):
            where = self.prefix + os.fsdecode(rel)
            try:
                for attr, value in attrs.items():
                    records.set(key, attr, value, False, False, where, keep=False)
            except OSError:
                return          # full: the rest last on disk, unseen this run


def kept(upper_fd):
    """{key: {name: value}}: every record an upper layer keeps on disk, for
    `umlpy diff`, `commit` and `export`, which carry the attributes of its
    symlinks, FIFOs and devices as those of its files.  A record's key
    is hostops.object_key's, so a stale one (its object gone, its inode
    number given to another: another birth time) matches no object."""
    st = os.fstat(upper_fd)
    return {key: attrs for key, _rel, attrs in
            _records(upper_fd, (os.major(st.st_dev), os.minor(st.st_dev)))}


def _records(upper_fd, dev):
    """(key, rel, attrs) of each record file in upper_fd's DIR; a file that
    is not a record is skipped."""
    try:
        fd = os.open(DIR, _DIR_FLAGS, dir_fd=upper_fd)
    except OSError:
        return              # none, or unreadable: then nothing was kept there
    try:
        for name in sorted(os.listdir(fd)):
            parsed = _parse_name(name)
            if parsed is None:
                continue
            try:
                rel, attrs = decode(_read(fd, name))
            except (OSError, ValueError):
                continue
            yield (*dev, *parsed), rel, attrs
    finally:
        os.close(fd)


def _read(dir_fd, name):
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        data = os.read(fd, _MAX_FILE + 1)
        if len(data) > _MAX_FILE:
            raise ValueError("too big")
        return data
    finally:
        os.close(fd)
