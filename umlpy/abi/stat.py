"""File metadata: st_mode's type and permission bits, device numbers,
struct stat (stat, lstat, fstat, newfstatat), struct statx and its mask
bits, struct statfs."""
from .layout import Layout

S_IFMT = 0o170000
S_IFSOCK = 0o140000
S_IFLNK = 0o120000
S_IFREG = 0o100000
S_IFBLK = 0o060000
S_IFDIR = 0o040000
S_IFCHR = 0o020000
S_IFIFO = 0o010000
S_ISUID, S_ISGID, S_ISVTX = 0o4000, 0o2000, 0o1000
S_IXUSR, S_IXGRP, S_IXOTH = 0o100, 0o010, 0o001
S_IRWXO = 0o007
S_IROTH = 0o004
S_IRWXUGO = 0o777
S_IALLUGO = S_ISUID | S_ISGID | S_ISVTX | S_IRWXUGO
S_IXUGO = S_IXUSR | S_IXGRP | S_IXOTH

STATX_TYPE = 0x1
STATX_MODE = 0x2
STATX_NLINK = 0x4
STATX_UID = 0x8
STATX_GID = 0x10
STATX_ATIME = 0x20
STATX_MTIME = 0x40
STATX_CTIME = 0x80
STATX_INO = 0x100
STATX_SIZE = 0x200
STATX_BLOCKS = 0x400
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
STATX_DIOALIGN = 0x2000
STATX__RESERVED = 0x80000000    # a mask with it is refused (EINVAL)


def dev_major(dev):
    """The major number of a dev_t (glibc's gnu_dev_major)."""
    return ((dev >> 8) & 0xFFF) | ((dev >> 32) & 0xFFFFF000)


def dev_minor(dev):
    """The minor number of a dev_t (glibc's gnu_dev_minor)."""
    return (dev & 0xFF) | ((dev >> 12) & 0xFFFFFF00)


# x86_64's struct stat (the kernel's and glibc's are one)
STAT = Layout("stat", (
    ("st_dev", "Q"), ("st_ino", "Q"), ("st_nlink", "Q"),
    ("st_mode", "I"), ("st_uid", "I"), ("st_gid", "I"), (None, "4x"),
    ("st_rdev", "Q"), ("st_size", "q"), ("st_blksize", "q"), ("st_blocks", "q"),
    ("st_atime", "q"), ("st_atime_nsec", "q"),
    ("st_mtime", "q"), ("st_mtime_nsec", "q"),
    ("st_ctime", "q"), ("st_ctime_nsec", "q"),
    (None, "24x"),
))


def _statx_timestamp(name):
    return ((name + "_sec", "q"), (name + "_nsec", "I"), (None, "4x"))


STATX = Layout("statx", (
    ("stx_mask", "I"), ("stx_blksize", "I"), ("stx_attributes", "Q"),
    ("stx_nlink", "I"), ("stx_uid", "I"), ("stx_gid", "I"),
    ("stx_mode", "H"), (None, "2x"),
    ("stx_ino", "Q"), ("stx_size", "Q"), ("stx_blocks", "Q"), ("stx_attributes_mask", "Q"),
    *_statx_timestamp("stx_atime"), *_statx_timestamp("stx_btime"),
    *_statx_timestamp("stx_ctime"), *_statx_timestamp("stx_mtime"),
    ("stx_rdev_major", "I"), ("stx_rdev_minor", "I"),
    ("stx_dev_major", "I"), ("stx_dev_minor", "I"),
    ("stx_mnt_id", "Q"), ("stx_dio_mem_align", "I"), ("stx_dio_offset_align", "I"),
    (None, "96x"),
))

STATFS = Layout("statfs", (
    ("f_type", "q"), ("f_bsize", "q"), ("f_blocks", "Q"), ("f_bfree", "Q"),
    ("f_bavail", "Q"), ("f_files", "Q"), ("f_ffree", "Q"),
    ("f_fsid0", "i"), ("f_fsid1", "i"), ("f_namelen", "q"), ("f_frsize", "q"),
    ("f_flags", "q"), (None, "32x"),
))
