"""Directory entries: d_type values and the records getdents64 (struct
linux_dirent64) and the old getdents (struct linux_dirent) fill a buffer with."""
from .layout import Layout

DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK = 0, 1, 2, 4, 6
DT_REG, DT_LNK, DT_SOCK, DT_WHT = 8, 10, 12, 14


def IFTODT(mode):
    """The d_type of an st_mode."""
    return (mode >> 12) & 0xF


# the fixed head of each record; d_name follows, NUL-ended, and the
# record is padded to 8 bytes
DIRENT64 = Layout("linux_dirent64", (("d_ino", "Q"), ("d_off", "q"), ("d_reclen", "H"),
                                     ("d_type", "B")))
# the old layout: d_type is the record's last byte, after d_name's NUL
DIRENT = Layout("linux_dirent", (("d_ino", "Q"), ("d_off", "q"), ("d_reclen", "H")))


def pack_dirent64(ino, off, dtype, name):
    """One getdents64 record for name (bytes)."""
    reclen = (DIRENT64.size + len(name) + 1 + 7) & ~7
    rec = DIRENT64.pack(ino, off, reclen, dtype) + name
    return rec + bytes(reclen - len(rec))


def pack_dirent(ino, off, dtype, name):
    """One record of the old getdents for name (bytes)."""
    reclen = (DIRENT.size + len(name) + 2 + 7) & ~7
    rec = DIRENT.pack(ino, off, reclen) + name
    return rec + bytes(reclen - len(rec) - 1) + bytes((dtype,))
