"""The working directory and the root of a process (Linux's fs/fs_struct
and the chdir family of fs/open.c).

The guest kernel holds each process's working directory itself
(vfs.FsContext): the guest's own process never changes directory on the
host, so no host path reaches it.  A chdir into a directory that anyone may
search in the lower layer is served in C from then on (fastpath.py keeps
the answer), as are the calls relative to it."""
import errno
import os

from ...abi.capability import CAP_SYS_CHROOT
from ...abi.fcntl import AT_FDCWD, X_OK
from ..decisions import Return, fail
from ..vfs import deaddir, hostops
from .fs import host_checks, lookup_existing, on_host, path_arg, vfs_call
from .registry import TABLE

FAMILY = "fs"


@TABLE.emulated(FAMILY, "getcwd", "the guest VFS's working directory of the process")
@vfs_call
def sys_getcwd(call, vfs, task):
    buf, size = call.args[0], call.args[1]
    cwd, gone = task.cwd
    if gone:
        return fail(errno.ENOENT)
    root = task.ctx.root
    if root != "/":
        if cwd == root:
            cwd = "/"
        elif cwd.startswith(root + "/"):
            cwd = cwd[len(root):]
        else:
            cwd = "(unreachable)" + cwd
    data = os.fsencode(cwd) + b"\0"
    if len(data) > size:
        return fail(errno.ERANGE)
    call.write(buf, data)
    return Return(len(data))


def may_enter(task, d):
    """0, or the errno of a chdir into directory d (search permission)."""
    if host_checks(task, d):
        on_host(task, d, hostops.access_nofollow, X_OK, False, write=False)
        return 0
    return task.creds.permission(d.attr, X_OK)


@TABLE.emulated(FAMILY, "chdir", "the guest kernel keeps the working directory")
@vfs_call
def sys_chdir(call, vfs, task):
    path = path_arg(call, 0)
    fastpath = call.kernel.fastpath
    res = vfs.resolve(task, AT_FDCWD, path, follow=True)
    d = res.dentry
    if d is None:
        fastpath.remember_chdir(task, res, AT_FDCWD, path, err=errno.ENOENT)
        return fail(errno.ENOENT)
    if not d.attr.is_dir():
        fastpath.remember_chdir(task, res, AT_FDCWD, path, err=errno.ENOTDIR)
        return fail(errno.ENOTDIR)
    err = may_enter(task, d)
    if err:
        return fail(err)
    if deaddir.is_dead(d):
        return Return(0)        # "." of a removed working directory: it stays there
    task.ctx.cwd = res.path
    fastpath.remember_chdir(task, res, AT_FDCWD, path)
    return Return(0)


@TABLE.emulated(FAMILY, "fchdir", "the guest kernel keeps the working directory")
@vfs_call
def sys_fchdir(call, vfs, task):
    fd = call.fd(0)
    res = vfs.resolve_fd(task, fd)
    if res is None:
        if fd >= 0 and vfs.removed_dir(task.tid, fd):
            return enter_removed(vfs, task, fd)
        # not a guest filesystem object: a pipe, a socket, or no fd at all
        exists = fd >= 0 and vfs.fd_host_path(task.tid, fd) is not None
        return fail(errno.ENOTDIR if exists else errno.EBADF)
    d = res.dentry
    if not d.attr.is_dir():
        return fail(errno.ENOTDIR)
    err = may_enter(task, d)
    if err:
        return fail(err)
    task.ctx.cwd = res.path
    call.kernel.fastpath.remember_fchdir(task, res, fd)
    return Return(0)


def enter_removed(vfs, task, fd):
    """fchdir into a directory that was removed (Linux lets a process work
    in it): the process's working directory is that dead directory, held
    from the guest's fd, where the guest kernel knows where it was."""
    where = vfs.guest_path_of_removed(task.tid, fd)
    if where is None:
        return fail(errno.ENOTDIR)
    held = deaddir.HeldDir.of_guest_fd(task.tid, task.tgid, fd)
    err = task.creds.permission(held.attr(vfs.idmap), X_OK)
    if err:
        return fail(err)
    task.ctx.enter_removed(where, held)
    return Return(0)


@TABLE.emulated(FAMILY, "chroot", "the guest VFS changes the process's root; the host's "
                "stays")
@vfs_call
def sys_chroot(call, vfs, task):
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True)
    if not res.dentry.attr.is_dir():
        return fail(errno.ENOTDIR)
    if deaddir.is_dead(res.dentry):
        return fail(errno.ENOENT)   # a root no path names: not kept (a deviation)
    if not task.creds.caps & CAP_SYS_CHROOT:
        return fail(errno.EPERM)
    call.kernel.fastpath.disable()      # its keys assume the real root
    task.ctx.root = res.path
    return Return(0)
