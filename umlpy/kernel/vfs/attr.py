"""File attributes as the guest sees them, and their struct layouts.

An ``Attr`` is what stat reports: ids in the guest's terms (after the
user-namespace map or fake ownership), the device and inode numbers the
guest can compare across calls."""
import stat as _stat
import struct

STAT_STRUCT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")      # struct stat, 144 bytes
STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")               # up to stx_attributes_mask
STATX_TIME = struct.Struct("<qIi")
STATX_TAIL = struct.Struct("<IIIIQ")
STATX_SIZE = 256
STATFS_STRUCT = struct.Struct("<qqQQQQQiiqqq32x")          # struct statfs, 120 bytes

STATX_BASIC_STATS = 0x7FF
STATX_MNT_ID = 0x1000


class Attr:
    __slots__ = ("mode", "ino", "dev", "nlink", "uid", "gid", "rdev", "size",
                 "blksize", "blocks", "atime_ns", "mtime_ns", "ctime_ns")

    def __init__(self, mode, ino=0, dev=0, nlink=1, uid=0, gid=0, rdev=0, size=0,
                 blksize=4096, blocks=None, atime_ns=0, mtime_ns=0, ctime_ns=None):
        self.mode = mode
        self.ino = ino
        self.dev = dev
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.blksize = blksize
        self.blocks = (size + 511) // 512 if blocks is None else blocks
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = mtime_ns if ctime_ns is None else ctime_ns

    @classmethod
    def from_host(cls, st, uid, gid):
        return cls(st.st_mode, st.st_ino, st.st_dev, st.st_nlink, uid, gid,
                   st.st_rdev, st.st_size, st.st_blksize, st.st_blocks,
                   st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)

    def copy(self, **changes):
        new = Attr.__new__(Attr)
        for name in Attr.__slots__:
            setattr(new, name, changes.get(name, getattr(self, name)))
        return new

    @property
    def kind(self):
        return _stat.S_IFMT(self.mode)

    def is_dir(self):
        return _stat.S_ISDIR(self.mode)

    def is_link(self):
        return _stat.S_ISLNK(self.mode)

    def is_reg(self):
        return _stat.S_ISREG(self.mode)

    def d_type(self):
        return (self.mode >> 12) & 0xF

    def pack_stat(self):
        a, m, c = self.atime_ns, self.mtime_ns, self.ctime_ns
        return STAT_STRUCT.pack(
            self.dev, self.ino, self.nlink, self.mode, self.uid, self.gid, 0,
            self.rdev, self.size, self.blksize, self.blocks,
            a // 10**9, a % 10**9, m // 10**9, m % 10**9, c // 10**9, c % 10**9)

    def pack_statx(self, mnt_id=0):
        def ts(ns):
            return STATX_TIME.pack(ns // 10**9, ns % 10**9, 0)
        head = STATX_HEAD.pack(
            STATX_BASIC_STATS | STATX_MNT_ID, self.blksize, 0, self.nlink,
            self.uid, self.gid, self.mode & 0xFFFF, 0, self.ino, self.size,
            self.blocks, 0)
        tail = STATX_TAIL.pack(
            (self.rdev >> 8) & 0xFFF | ((self.rdev >> 32) & ~0xFFF),
            (self.rdev & 0xFF) | ((self.rdev >> 12) & ~0xFF),
            (self.dev >> 8) & 0xFFF | ((self.dev >> 32) & ~0xFFF),
            (self.dev & 0xFF) | ((self.dev >> 12) & ~0xFF), mnt_id)
        # btime is not reported (stx_mask has no STATX_BTIME): zero it
        body = head + ts(self.atime_ns) + STATX_TIME.pack(0, 0, 0) + \
            ts(self.ctime_ns) + ts(self.mtime_ns) + tail
        return body + bytes(STATX_SIZE - len(body))

    def __repr__(self):
        return f"<Attr mode={self.mode:o} ino={self.ino} dev={self.dev:#x} size={self.size}>"
