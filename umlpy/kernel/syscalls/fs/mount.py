"""mount(2) and umount2(2) (Linux's fs/namespace.c), in the guest VFS's
mount table, never the host's (vfs/guestmounts.py).  The sandbox is one
mount namespace: a mount is seen by every guest process, and propagation
types change nothing.  Filesystems: tmpfs (new, of the sandbox's own
storage), bind mounts of any directory or file, proc, sysfs and devpts
(the sandbox's own, at another path), mqueue (the queues of the caller's
IPC namespace, always one of the sandbox's: vfs/mqueuefs.py).  Block
devices and loop mounts are not there: ENODEV.  MS_NOEXEC is kept as
the mount's (a bind copies its source mount's, remount sets it; a
noexec the sandbox's options gave may not be cleared: EPERM); execve
honours it always, mmap and mprotect in a sandbox that started with a
noexec mount (the filter stops them only there: syscalls/memory.py)."""
import errno

from ....abi import MASK64
from ....abi.capability import CAP_SYS_ADMIN
from ....abi.fcntl import AT_FDCWD
from ....abi.mman import PAGE_SIZE
from ....abi.mount import MNT_DETACH, MNT_EXPIRE, MNT_FORCE, MS_BIND, MS_MGC_MSK, MS_MGC_VAL, \
    MS_MOVE, MS_NOEXEC, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SHARED, MS_SLAVE, \
    MS_UNBINDABLE, UMOUNT_NOFOLLOW
from ...decisions import fail
from ...vfs.build import OWN_MOUNTS
from ...vfs.guestmounts import tmpfs_mode
from ..registry import TABLE
from .common import FAMILY, done, path_arg, vfs_call

PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE
# filesystems umlpy has mounted, which another mount of that type shows again
ALREADY_MOUNTED = {"proc": "/proc", "sysfs": "/sys", "devpts": "/dev/pts"}


def _string(call, i):
    """A string argument (the filesystem type, its options), or None."""
    if call.args[i] == 0:
        return None
    return call.read_str(call.args[i], PAGE_SIZE).decode(errors="replace")


def _existing(vfs, task, path, follow=True):
    res = vfs.resolve(task, AT_FDCWD, path, follow)
    if res.dentry is None:
        raise OSError(errno.ENOENT, path)
    return res


@TABLE.emulated(FAMILY, "mount", "in the guest VFS's mount table (tmpfs, bind, proc, sysfs, "
                "devpts, mqueue); never the host's")
@vfs_call
def sys_mount(call, vfs, task):
    if not task.creds.caps & CAP_SYS_ADMIN:
        return fail(errno.EPERM)
    flags = call.args[3] & MASK64
    if flags & MS_MGC_MSK == MS_MGC_VAL:
        flags &= ~MS_MGC_MSK            # the old magic number: ignored, as Linux does
    target = _existing(vfs, task, path_arg(call, 1))
    mounts, made = vfs.mounts, call.kernel.fs.guest_mounts
    if flags & PROPAGATION:
        # one mount namespace: nothing propagates anywhere to begin with
        if flags & ~(PROPAGATION | MS_REC) & 0xFFFFFFFF:
            return fail(errno.EINVAL)
        return done()
    if flags & MS_REMOUNT:
        m = mounts.by_path.get(target.path)
        if m is None:
            return fail(errno.EINVAL)
        if not flags & MS_RDONLY and m.fs.read_only:
            return fail(errno.EACCES)     # a read-only filesystem stays so
        if not flags & MS_NOEXEC and m.noexec_locked:
            return fail(errno.EPERM)      # the sandbox's owner made it noexec (MNT_LOCK_NOEXEC)
        m.read_only = bool(flags & MS_RDONLY)
        m.noexec = bool(flags & MS_NOEXEC)
        made.changed()
        return done()
    if flags & MS_MOVE:
        source = _existing(vfs, task, path_arg(call, 0))
        m = mounts.by_path.get(source.path)
        if m is None or source.path in OWN_MOUNTS:
            return fail(errno.EINVAL)
        if target.path == source.path or target.path.startswith(source.path.rstrip("/") + "/"):
            return fail(errno.ELOOP)
        mounts.remove(source.path)
        mounts.add(target.path, m.fs, m.read_only, m.options, m.noexec, m.noexec_locked)
        made.changed()
        return done()
    if flags & MS_BIND:
        source = _existing(vfs, task, path_arg(call, 0))
        if source.dentry.attr.is_dir() != target.dentry.attr.is_dir():
            return fail(errno.ENOTDIR)
        fs = made.bind(source.dentry, bool(flags & MS_RDONLY))
        # a bind is a copy of the source's mount, with its flags and locks
        # (clone_mnt): a noexec mount's subtree stays noexec elsewhere
        noexec, locked = source.mount.noexec or bool(flags & MS_NOEXEC), \
            source.mount.noexec_locked
    else:
        noexec, locked = bool(flags & MS_NOEXEC), False
        fstype = _string(call, 2)
        if fstype is None:
            return fail(errno.EINVAL)
        if not target.dentry.attr.is_dir():
            return fail(errno.ENOTDIR)
        if fstype == "tmpfs":
            identity = task.host_identity
            fs = made.tmpfs((identity.uid, identity.gid), tmpfs_mode(_string(call, 4)))
        elif fstype == "mqueue":
            fs = made.mqueue(call.tid, _string(call, 0))
        elif fstype in ALREADY_MOUNTED:
            fs = made.already(ALREADY_MOUNTED[fstype])
            if fs is None:
                return fail(errno.ENODEV)
        else:
            return fail(errno.ENODEV)
    if target.path in getattr(call.kernel.fs, "own_noexec", ()):
        noexec = locked = True      # --noexec named the place (/dev/mqueue, say)
    mounts.add(target.path, fs, read_only=bool(flags & MS_RDONLY), noexec=noexec,
               noexec_locked=locked)
    made.changed()
    return done()


@TABLE.emulated(FAMILY, "umount2", "in the guest VFS's mount table; umlpy's own mounts "
                "(/, /proc, /dev, /sys) stay: EBUSY")
@vfs_call
def sys_umount2(call, vfs, task):
    if not task.creds.caps & CAP_SYS_ADMIN:
        return fail(errno.EPERM)
    flags = call.int(1)
    if flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) or \
            (flags & MNT_EXPIRE and flags & (MNT_FORCE | MNT_DETACH)):
        return fail(errno.EINVAL)
    target = _existing(vfs, task, path_arg(call, 0), follow=not flags & UMOUNT_NOFOLLOW)
    mounts = vfs.mounts
    if target.path not in mounts.by_path:
        return fail(errno.EINVAL)
    if target.path in OWN_MOUNTS:
        return fail(errno.EBUSY)
    prefix = target.path.rstrip("/") + "/"
    below = sorted((p for p in mounts.by_path if p.startswith(prefix)), key=len, reverse=True)
    if below and not flags & MNT_DETACH:
        return fail(errno.EBUSY)
    for path in below + [target.path]:
        mounts.remove(path)
    call.kernel.fs.guest_mounts.changed()
    return done()
