"""File attributes as the guest sees them, and their struct layouts.

An ``Attr`` is what stat reports: ids in the guest's terms (after the
user-namespace map or fake ownership), the device and inode numbers the
guest can compare across calls."""
import stat as _stat

from ...abi.dirent import IFTODT
from ...abi.stat import STAT, STATX, STATX_BASIC_STATS, STATX_MNT_ID, dev_major, dev_minor


UNMAPPED_UID, UNMAPPED_GID = 1, 2


class Attr:
    __slots__ = ("mode", "ino", "dev", "nlink", "uid", "gid", "rdev", "size",
                 "blksize", "blocks", "atime_ns", "mtime_ns", "ctime_ns", "cow",
                 "unmapped")

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
        # a host object of a union's lower layer: a change makes the
        # sandbox's own copy of it (creds.Creds.permission)
        self.cow = False
        # UNMAPPED_UID | UNMAPPED_GID: a host owner the guest's namespace
        # does not map, shown as the overflow id (which may also be an id
        # of the guest's own: never matched against the caller's)
        self.unmapped = 0

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
        return IFTODT(self.mode)

    def pack_stat(self):
        """The struct stat stat(2) fills."""
        a, m, c = self.atime_ns, self.mtime_ns, self.ctime_ns
        return STAT.pack(
            self.dev, self.ino, self.nlink, self.mode, self.uid, self.gid,
            self.rdev, self.size, self.blksize, self.blocks,
            a // 10**9, a % 10**9, m // 10**9, m % 10**9, c // 10**9, c % 10**9)

    def pack_statx(self, mnt_id=0):
        """The struct statx statx(2) fills: the basic stats and the mount id
        (btime is not reported, stx_mask has no STATX_BTIME: it is zero)."""
        a, m, c = self.atime_ns, self.mtime_ns, self.ctime_ns
        return STATX.pack(
            STATX_BASIC_STATS | STATX_MNT_ID, self.blksize, 0, self.nlink,
            self.uid, self.gid, self.mode & 0xFFFF, self.ino, self.size, self.blocks, 0,
            a // 10**9, a % 10**9, 0, 0, c // 10**9, c % 10**9, m // 10**9, m % 10**9,
            dev_major(self.rdev), dev_minor(self.rdev), dev_major(self.dev), dev_minor(self.dev),
            mnt_id, 0, 0)

    def __repr__(self):
        return f"<Attr mode={self.mode:o} ino={self.ino} dev={self.dev:#x} size={self.size}>"
