"""Each run's private state directory in <tmp>/umlpy-<uid> (its throwaway
upper layer, spool, aliases, an idmapped --rootfs mount point), and the
sweep that removes those of runs that died without removing their own
(SIGKILL, a crash): otherwise hundreds accumulate.

A run holds an flock on the file LOCK in its directory for as long as it
lives: the lock dies with the process (and with every process that
inherited the open file), whatever kills it.  The file appears under its
name only once locked, so a directory whose LOCK can be locked belongs to
no live run.  A directory without LOCK is one a run is still making, or
one of an older umlpy that took no lock: never swept.

A state directory may hold the mount point of an idmapped --rootfs
(idmapped.py).  That mount lives in its run's own mount namespace, which
dies with the run; should one still show at or below the directory here,
the directory is left alone, never emptied through the mount."""
import fcntl
import os

from .tmpdirs import make_private_dir, remove_tree

LOCK = ".lock"
_BORN = ".lock.new"
_NAME_CHARS = frozenset("0123456789abcdef")
_NAME_LEN = 12      # make_private_dir's names: 6 random bytes in hex


def claim(root):
    """Sweep root, then make this run's state directory in it: (path, the
    fd of its lock, to keep open until the directory is removed)."""
    sweep(root)
    path = make_private_dir(root)
    born = os.path.join(path, _BORN)
    fd = os.open(born, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(born, os.path.join(path, LOCK))
    except BaseException:
        os.close(fd)
        raise
    return path, fd


def sweep(root):
    """Remove the state directories in root whose run is gone; how many."""
    try:
        with os.scandir(root) as it:
            names = [e.name for e in it if len(e.name) == _NAME_LEN and
                     _NAME_CHARS.issuperset(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    swept = 0
    mounts = None
    for name in names:
        path = os.path.join(root, name)
        lock = _stale_lock(path)
        if lock is None:
            continue
        try:
            if mounts is None:
                mounts = _mount_points()
            if not _mounted_at_or_below(path, mounts):
                remove_tree(path)
                swept += 1
        finally:
            os.close(lock)
    return swept


def _stale_lock(path):
    """The lock of a state directory no live run holds, taken (close it
    after the removal), or None."""
    try:
        fd = os.open(os.path.join(path, LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _mount_points():
    """The mount points this process sees, as mountinfo writes them."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            return [line.split(b" ", 5)[4] for line in f]
    except OSError:
        return None


def _mangled(path):
    """path as mountinfo shows it (the kernel's mangle: octal escapes)."""
    out = bytearray()
    for byte in os.fsencode(path):
        out += b"\\%03o" % byte if byte in b" \t\n\\" else bytes([byte])
    return bytes(out)


def _mounted_at_or_below(path, mounts):
    if mounts is None:
        return True     # not known: leave it
    top = _mangled(os.path.realpath(path))
    return any(m == top or m.startswith(top + b"/") for m in mounts)
