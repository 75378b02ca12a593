"""A directory --rootfs seen through an idmapped mount, so that it is what
a tar image is: its files' owners are the guest's ids.

A root filesystem unpacked on the host belongs to host ids 0..65535 (root
owns /etc, _apt owns /var/lib/apt/lists/partial).  The guest's ids are a
block of host ids of the sandbox's own (identity.py), to which those
owners mean nothing: guest root could not read its own /etc/shadow, and
_apt's directories would be no one's.  An idmapped mount of the directory
shows owner k as the block's first + k, for everyone who looks through
it: the guest kernel, the C fast path, the guest's own process.  It is
made where only umlpy sees it: in a mount namespace of umlpy's own
(propagation from the host still comes in), which goes away with umlpy
and its guests, so no mount outlives the sandbox on the host.

Possible when umlpy runs as root, is still one thread (a process leaves
its mount namespace only so), and the directory's filesystem supports
idmapped mounts (ext4, xfs, btrfs, tmpfs, overlayfs...); otherwise the
directory is used as it is (its owners then show as the overflow id)."""
import ctypes
import errno
import os
import threading

from ...abi.fcntl import AT_EMPTY_PATH, AT_FDCWD
from ...abi.mount import MNT_DETACH, MOUNT_ATTR, MOUNT_ATTR_IDMAP, MOVE_MOUNT_F_EMPTY_PATH, \
    MS_NODEV, MS_NOSUID, MS_REC, MS_SLAVE, OPEN_TREE_CLONE
from ...abi.sched import CLONE_NEWNS
from ..userns import NamespaceChild
from ..syscalls.names import SYSCALL_NUMBERS

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(r, what):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return r


def own_mount_namespace():
    """Move umlpy into a mount namespace of its own (once), receiving the
    host's mount events but sending none."""
    if getattr(own_mount_namespace, "done", False):
        return
    if threading.active_count() != 1:
        raise OSError(0, "umlpy already runs threads")
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    own_mount_namespace.done = True


def _user_namespace(first, count):
    """An fd of a user namespace mapping 0..count-1 to host ids from first
    (a short-lived child holds it while the maps are written)."""
    child = NamespaceChild()
    try:
        if not child.unshared:
            raise OSError(0, "no user namespace")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{child.pid}/{name}", "w") as f:
                f.write(f"0 {first} {count}\n")
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        child.release()
        os.waitpid(child.pid, 0)


def mount_idmapped(source, target, first, count, or_plain=False):
    """source, seen with owner k as host id first + k, at target (an empty
    directory); whether it is idmapped.  With or_plain, a filesystem that
    cannot be idmapped (overlayfs itself: a container engine's merged
    root) is mounted there as it is: the guest's ids then reach it through
    the state directory, whatever the directories above it let them
    search (an engine's storage is 0700).  OSError if the host cannot."""
    own_mount_namespace()
    userns = _user_namespace(first, count)
    tree = -1
    try:
        tree = _check(_libc.syscall(SYSCALL_NUMBERS["open_tree"], AT_FDCWD,
                                    os.fsencode(source), OPEN_TREE_CLONE | os.O_CLOEXEC),
                      "open_tree")
        attr = MOUNT_ATTR.pack(MOUNT_ATTR_IDMAP, 0, 0, userns)
        mapped = True
        try:
            _check(_libc.syscall(SYSCALL_NUMBERS["mount_setattr"], tree, b"", AT_EMPTY_PATH,
                                 attr, len(attr)), "mount_setattr(MOUNT_ATTR_IDMAP)")
        except OSError as e:
            if not or_plain or e.errno != errno.EINVAL:
                raise
            mapped = False
        _check(_libc.syscall(SYSCALL_NUMBERS["move_mount"], tree, b"", AT_FDCWD,
                             os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH), "move_mount")
        return mapped
    finally:
        os.close(userns)
        if tree >= 0:
            os.close(tree)


def mount_plain(source, target):
    """source mounted as it is at target (an empty directory, or an empty
    file for a file), in umlpy's own mount namespace.  OSError if the
    host cannot."""
    own_mount_namespace()
    tree = _check(_libc.syscall(SYSCALL_NUMBERS["open_tree"], AT_FDCWD, os.fsencode(source),
                                OPEN_TREE_CLONE | os.O_CLOEXEC), "open_tree")
    try:
        _check(_libc.syscall(SYSCALL_NUMBERS["move_mount"], tree, b"", AT_FDCWD,
                             os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH), "move_mount")
    finally:
        os.close(tree)


def mount_tmpfs(target, size):
    """A tmpfs of size bytes at target (a directory), in umlpy's own mount
    namespace: nosuid, nodev, as every guest mount behaves."""
    own_mount_namespace()
    _check(_libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", MS_NOSUID | MS_NODEV,
                       f"size={int(size)},mode=1777".encode()), "mount tmpfs")


def unmount(target):
    """Detach the mount at target; whether nothing is mounted there now
    (so that removing the directory cannot reach the files it showed)."""
    _libc.umount2(os.fsencode(target), MNT_DETACH)
    return not is_mountpoint(target)


def is_mountpoint(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == path:
                return True
    return False
