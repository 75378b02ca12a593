"""The looking calls (Linux's fs/stat.c and the access and readlink of
fs/open.c and fs/namei.c): answered by the guest kernel from its VFS, and
kept for the native path cache when any caller would get the same."""
import errno
import os
import stat as _stat

from ....abi.fcntl import AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, \
    AT_STATX_SYNC_TYPE, AT_SYMLINK_NOFOLLOW, W_OK
from ....abi.stat import S_IRWXO, STATX__RESERVED
from ...decisions import Return, fail
from ...fastpath import ACCESS, LINK, STAT, STATX
from ...vfs import hostops
from ..registry import TABLE
from .common import FAMILY, done, host_checks, lookup_at, on_fd_itself, on_host, path_arg, \
    present, stat_of_copy, vfs_call


def write_stat(call, res, buf):
    call.write(buf, present(call, res.dentry.attr).pack_stat())
    return Return(0)


def look(call, vfs, task, dirfd, path, follow, kind):
    """The existing object path names, for a looking call whose answer the
    native path cache may keep (an absent name too)."""
    res = vfs.resolve(task, dirfd, path, follow)
    if res.dentry is None:
        call.kernel.fastpath.remember(task, res, kind, follow, dirfd, path, err=errno.ENOENT)
        raise OSError(errno.ENOENT, path)
    return res


def answer_stat(call, vfs, task, dirfd, path, follow, buf):
    res = look(call, vfs, task, dirfd, path, follow, STAT)
    data = present(call, res.dentry.attr).pack_stat()
    call.write(buf, data)
    call.kernel.fastpath.remember(task, res, STAT, follow, dirfd, path, data)
    return Return(0)


@TABLE.emulated(FAMILY, "stat", "answered from the guest VFS (replayed from the native "
                "path cache)")
@vfs_call
def sys_stat(call, vfs, task):
    return answer_stat(call, vfs, task, AT_FDCWD, path_arg(call, 0), True, call.args[1])


@TABLE.emulated(FAMILY, "lstat", "answered from the guest VFS (replayed from the native "
                "path cache)")
@vfs_call
def sys_lstat(call, vfs, task):
    return answer_stat(call, vfs, task, AT_FDCWD, path_arg(call, 0), False, call.args[1])


@TABLE.emulated(FAMILY, "newfstatat", "answered from the guest VFS (replayed from the "
                "native path cache)")
@vfs_call
def sys_newfstatat(call, vfs, task):
    a = call.args
    flags = call.int(3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800):
        return fail(errno.EINVAL)
    if a[1] and not flags & AT_EMPTY_PATH:
        return answer_stat(call, vfs, task, call.fd(0), path_arg(call, 1),
                           not flags & AT_SYMLINK_NOFOLLOW, a[2])
    res = lookup_at(call, vfs, task, call.fd(0), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    fstat = call.fd(0) != AT_FDCWD and not (a[1] and call.read_str(a[1], 1))
    if res is None:
        if fstat:
            call.kernel.fastpath.remember_fstat(task, call.fd(0), None)
        if call.notified:
            return stat_of_copy(call, task, call.fd(0), a[2])
        return on_fd_itself(call, 1)
    data = present(call, res.dentry.attr).pack_stat()
    call.write(a[2], data)
    if fstat:
        call.kernel.fastpath.remember_fstat(task, call.fd(0), res, data)
    return Return(0)


STATX_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE


@TABLE.emulated(FAMILY, "statx", "answered from the guest VFS (replayed from the native "
                "path cache)")
@vfs_call
def sys_statx(call, vfs, task):
    a = call.args
    flags = call.int(2)
    if flags & ~STATX_FLAGS or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE or \
            a[3] & STATX__RESERVED:
        return fail(errno.EINVAL)
    if a[1] and not flags & AT_EMPTY_PATH:
        path, follow = path_arg(call, 1), not flags & AT_SYMLINK_NOFOLLOW
        res = look(call, vfs, task, call.fd(0), path, follow, STATX)
        data = present(call, res.dentry.attr).pack_statx(res.mount.id)
        call.write(a[4], data)
        call.kernel.fastpath.remember(task, res, STATX, follow, call.fd(0), path, data)
        return Return(0)
    res = lookup_at(call, vfs, task, call.fd(0), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    of_fd = call.fd(0) != AT_FDCWD and not (a[1] and call.read_str(a[1], 1))
    if res is None:
        if of_fd:
            call.kernel.fastpath.remember_fstat(task, call.fd(0), None, kind=STATX)
        return on_fd_itself(call, 1)
    data = present(call, res.dentry.attr).pack_statx(res.mount.id)
    call.write(a[4], data)
    if of_fd:
        call.kernel.fastpath.remember_fstat(task, call.fd(0), res, data, kind=STATX)
    return Return(0)


@TABLE.emulated(FAMILY, "access", "answered by the guest VFS")
@vfs_call
def sys_access(call, vfs, task):
    return access(call, vfs, task, AT_FDCWD, path_arg(call, 0), call.uint(1), 0)


@TABLE.emulated(FAMILY, "faccessat", "answered by the guest VFS")
@vfs_call
def sys_faccessat(call, vfs, task):
    return access(call, vfs, task, call.fd(0), path_arg(call, 1), call.uint(2), 0)


@TABLE.emulated(FAMILY, "faccessat2", "answered by the guest VFS")
@vfs_call
def sys_faccessat2(call, vfs, task):
    a = call.args
    flags = call.int(3)
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    return access(call, vfs, task, call.fd(0), path_arg(call, 1) if a[1] else "",
                  call.uint(2), flags)


def access(call, vfs, task, dirfd, path, mode, flags):
    if mode & ~S_IRWXO:
        return fail(errno.EINVAL)
    if path == "" and not flags & AT_EMPTY_PATH:
        return fail(errno.ENOENT)
    if path:        # an absent name's ENOENT may be replayed (fastpath.py)
        res = look(call, vfs, task, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW, ACCESS)
    elif dirfd != AT_FDCWD:
        res = vfs.resolve_fd(task, dirfd)
    else:
        res = vfs.resolve(task, dirfd, ".", True)
    if res is None:
        return on_fd_itself(call, 1)
    d = res.dentry
    if mode & W_OK and res.mount.read_only and not (d.attr.kind in (_stat.S_IFCHR, _stat.S_IFBLK,
                                                                    _stat.S_IFIFO, _stat.S_IFSOCK)):
        return fail(errno.EROFS)
    if mode == 0:
        return Return(0)
    if host_checks(task, d):
        on_host(task, d, hostops.access_nofollow, mode, bool(flags & AT_EACCESS), write=False)
        return done()
    creds = task.creds
    if vfs.fake_ids is not None and not flags & AT_EACCESS:
        creds = vfs.fake_ids.access_creds(task.tid, task.status(), vfs.idmap)
    err = creds.permission(d.attr, mode)
    return fail(err) if err else Return(0)


def do_readlink(call, vfs, task, dirfd, path, buf, size):
    if size <= 0 or size & 0x80000000:
        return fail(errno.EINVAL)
    res = look(call, vfs, task, dirfd, path, False, LINK)
    d = res.dentry
    if not d.attr.is_link():
        call.kernel.fastpath.remember(task, res, LINK, False, dirfd, path, err=errno.EINVAL)
        return fail(errno.EINVAL)
    whole = os.fsencode(d.fs.readlink(d))
    target = whole[:size]
    call.write(buf, target)
    call.kernel.fastpath.remember(task, res, LINK, False, dirfd, path, whole)
    return Return(len(target))


@TABLE.emulated(FAMILY, "readlink", "answered from the guest VFS")
@vfs_call
def sys_readlink(call, vfs, task):
    a = call.args
    return do_readlink(call, vfs, task, AT_FDCWD, path_arg(call, 0), a[1], call.int(2))


@TABLE.emulated(FAMILY, "readlinkat", "answered from the guest VFS")
@vfs_call
def sys_readlinkat(call, vfs, task):
    a = call.args
    path = path_arg(call, 1) if a[1] else ""
    if path == "":
        res = vfs.resolve_fd(task, call.fd(0))
        if res is None or not res.dentry.attr.is_link():
            return fail(errno.ENOENT)      # Linux: an empty path names no link
        target = os.fsencode(res.dentry.fs.readlink(res.dentry))[:call.int(3)]
        call.write(a[2], target)
        return Return(len(target))
    return do_readlink(call, vfs, task, call.fd(0), path, a[2], call.int(3))
