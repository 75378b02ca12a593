"""Where the set-user-ID and set-group-ID bits of the upper layer's files
are kept.

The host file never carries them: any host user who reached the upper
layer could run it with its owner's ids.  They are kept on the file
itself, in an extended attribute of umlpy's reserved namespace
(xattrs.RESERVED, which no guest can see, read or set), so they follow
the file through renames and hard links, die with it, and outlive the
run with a kept ``--upper``; `umlpy diff` counts them in the mode and
`umlpy commit` gives them to the target's file.

A layer that ever held one is marked by an empty file in its root
(MARKER, a ``.wh.`` name no guest can make): only then does a lookup of
an upper regular file read the attribute."""
import errno
import os

from ...abi.stat import S_ISGID, S_ISUID
from .xattrs import RESERVED

BITS = S_ISUID | S_ISGID
XATTR = RESERVED + "setid"
MARKER = ".wh..wh..setid"

# A filesystem that cannot hold the attribute (no user.* xattrs): the bits
# are then the run's only (union.UnionFS keeps them in memory).
_NOT_KEPT = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.ENOSPC,
             errno.E2BIG)


def _path(dir_fd, name):
    """A path the host resolves through our own directory fd, never
    following name itself."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def marked(upper_fd):
    """Whether the upper layer (an fd of its root) ever held set-ID bits."""
    try:
        os.stat(MARKER, dir_fd=upper_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def mark(upper_fd):
    try:
        os.close(os.open(MARKER, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=upper_fd))
    except FileExistsError:
        pass


def _decode(value):
    try:
        return int(value, 8) & BITS
    except ValueError:
        return 0


def read(dir_fd, name):
    """The bits recorded on the regular file name in dir_fd (0: none)."""
    try:
        return _decode(os.getxattr(_path(dir_fd, name), XATTR, follow_symlinks=False))
    except OSError:
        return 0


def read_fd(fd):
    """The bits recorded on an open regular file (0: none)."""
    try:
        return _decode(os.getxattr(fd, XATTR))
    except OSError:
        return 0


def record(dir_fd, name, mode):
    """Keep mode's set-ID bits on the regular file name in dir_fd (none:
    drop the record).  False if the filesystem cannot keep them."""
    bits = mode & BITS
    path = _path(dir_fd, name)
    try:
        if bits:
            os.setxattr(path, XATTR, b"%o" % bits, follow_symlinks=False)
        else:
            os.removexattr(path, XATTR, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return True
        if e.errno in _NOT_KEPT:
            return False
        raise
    return True
