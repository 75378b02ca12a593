"""Calls that change the tree (Linux's fs/namei.c): mkdir, mknod, symlink,
link, unlink, rmdir and rename, made by the guest kernel in the upper layer
or a writable mount, from directory fds it holds."""
import errno
import os
import stat as _stat

from ....abi.capability import CAP_MKNOD
from ....abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, R_OK, \
    RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, W_OK, X_OK
from ....abi.resource import PATH_MAX
from ....abi.stat import S_IALLUGO, S_ISGID, S_ISUID, S_IXGRP
from ...decisions import Return, fail
from ...vfs import hostops
from ...vfs.union import IN_LOWER, UnionFS
from ..registry import TABLE
from .common import FAMILY, copy_up_for_change, done, lookup_at, on_host, overriding_modes, \
    path_arg, vfs_call, writable_mount
from .open import checks_all, create_here


def make_node(call, vfs, task, dirfd, path, make, is_dir=False):
    res = vfs.resolve(task, dirfd, path, follow=False)
    if res.dentry is not None:
        return fail(errno.EEXIST)
    if res.dir_required and not is_dir:
        return fail(errno.ENOENT)
    return create_here(call, vfs, task, res, make, is_dir)


def mkdir(call, vfs, task, dirfd, path, mode):
    mode = mode & S_IALLUGO & ~task.host_identity.umask
    return make_node(call, vfs, task, dirfd, path,
                     lambda fd, name: os.mkdir(name, mode, dir_fd=fd), True)


@TABLE.emulated(FAMILY, "mkdir", "made in the upper layer (or a writable mount) by the "
                "guest kernel")
@vfs_call
def sys_mkdir(call, vfs, task):
    return mkdir(call, vfs, task, AT_FDCWD, path_arg(call, 0), call.uint(1))


@TABLE.emulated(FAMILY, "mkdirat", "made in the upper layer (or a writable mount) by the "
                "guest kernel")
@vfs_call
def sys_mkdirat(call, vfs, task):
    return mkdir(call, vfs, task, call.fd(0), path_arg(call, 1), call.uint(2))


def mknod(call, vfs, task, dirfd, path, mode, dev):
    kind = _stat.S_IFMT(mode)
    if kind not in (0, _stat.S_IFREG, _stat.S_IFIFO, _stat.S_IFSOCK, _stat.S_IFCHR,
                    _stat.S_IFBLK):
        return fail(errno.EINVAL)
    mode = (kind or _stat.S_IFREG) | (mode & S_IALLUGO & ~task.host_identity.umask)
    return make_node(call, vfs, task, dirfd, path,
                     lambda fd, name: os.mknod(name, mode, dev, dir_fd=fd))


@TABLE.emulated(FAMILY, "mknod", "fifos, sockets and files in the upper layer")
@vfs_call
def sys_mknod(call, vfs, task):
    return mknod(call, vfs, task, AT_FDCWD, path_arg(call, 0), call.uint(1), call.uint(2))


@TABLE.emulated(FAMILY, "mknodat", "fifos, sockets and files in the upper layer")
@vfs_call
def sys_mknodat(call, vfs, task):
    return mknod(call, vfs, task, call.fd(0), path_arg(call, 1), call.uint(2), call.uint(3))


def symlink(call, vfs, task, target_index, dirfd, path):
    target = call.read_str(call.args[target_index], PATH_MAX)
    if not target:
        return fail(errno.ENOENT)
    return make_node(call, vfs, task, dirfd, path,
                     lambda fd, name: os.symlink(target, name, dir_fd=fd))


@TABLE.emulated(FAMILY, "symlink", "made in the upper layer; the host never follows it")
@vfs_call
def sys_symlink(call, vfs, task):
    return symlink(call, vfs, task, 0, AT_FDCWD, path_arg(call, 1))


@TABLE.emulated(FAMILY, "symlinkat", "made in the upper layer; the host never follows it")
@vfs_call
def sys_symlinkat(call, vfs, task):
    return symlink(call, vfs, task, 0, call.fd(1), path_arg(call, 2))


def link(call, vfs, task, olddirfd, oldpath_i, newdirfd, newpath, flags):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    old = lookup_at(call, vfs, task, olddirfd, oldpath_i, flags, bool(flags & AT_SYMLINK_FOLLOW))
    if old is None:
        return fail(errno.ENOENT)
    if old.dentry.attr.is_dir():
        return fail(errno.EPERM)
    new = vfs.resolve(task, newdirfd, newpath, follow=False)
    if new.dentry is not None:
        return fail(errno.EEXIST)
    if new.dir_required:
        return fail(errno.ENOENT)
    if new.mount is not old.mount:
        return fail(errno.EXDEV)
    may_link(task, old)
    copy_up_for_change(task, old)
    od = old.dentry
    # the copy-up may have copied new's directory up too: look again
    new = vfs.resolve(task, newdirfd, newpath, follow=False)
    if new.dentry is not None:
        return fail(errno.EEXIST)

    def make(fd, name):
        with od.fs.host_dir(od.rel) as o:
            os.link(o.name, name, src_dir_fd=o.fd, dst_dir_fd=fd, follow_symlinks=False)
    return create_here(call, vfs, task, new, make, new=False)


def may_link(task, res):
    """Linux's may_linkat (fs.protected_hardlinks): the owner, or a regular
    file the caller may read and write that is neither setuid nor
    setgid-executable."""
    a = res.dentry.attr
    if task.creds.owns(a):
        return
    if not a.is_reg() or a.mode & S_ISUID or a.mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP or \
            task.creds.permission(a, R_OK | W_OK):
        raise OSError(errno.EPERM, "may not link")


@TABLE.emulated(FAMILY, "link", "hard links within the upper layer (the source copied up)")
@vfs_call
def sys_link(call, vfs, task):
    return link(call, vfs, task, AT_FDCWD, 0, AT_FDCWD, path_arg(call, 1), 0)


@TABLE.emulated(FAMILY, "linkat", "hard links within the upper layer (the source copied up)")
@vfs_call
def sys_linkat(call, vfs, task):
    return link(call, vfs, task, call.fd(0), 1, call.fd(2), path_arg(call, 3), call.int(4))


def remove(call, vfs, task, dirfd, path, is_dir):
    res = vfs.resolve(task, dirfd, path, follow=False)
    d = res.dentry
    if d is None:
        return fail(errno.ENOENT)
    if is_dir:
        if path.rstrip("/").endswith("/.") or path.rstrip("/") == ".":
            return fail(errno.EINVAL)
        if not d.attr.is_dir():
            return fail(errno.ENOTDIR)
    elif d.attr.is_dir():
        return fail(errno.EISDIR)
    if res.path in vfs.mounts.by_path or res.path == res.parent.path:
        return fail(errno.EBUSY)
    writable_mount(res)
    fs = d.fs
    held = vfs.removing(res) if is_dir else None
    if not isinstance(fs, UnionFS) or (not d.flags & IN_LOWER and not is_dir):
        if checks_all(task):
            err = task.creds.may_delete(res.parent.dentry.attr, d.attr)
            if err:
                return fail(err)
        gone = []

        def unlink(fd, name):
            # an upper object's emulated attributes kept in records go with
            # it, forgotten here, not by the caller's host identity
            if isinstance(fs, UnionFS) and not is_dir:
                gone.append(fs.records_key(fd, name))
            (unlink_dir if is_dir else unlink_file)(fd, name)
        on_host(task, d, unlink)
        if gone and gone[0] is not None:
            fs.forget_records(gone[0])
    else:
        err = task.creds.may_delete(res.parent.dentry.attr, d.attr)
        if err:
            return fail(err)
        if is_dir and fs.listdir(d):
            return fail(errno.ENOTEMPTY)
        overriding_modes(task, fs.upper_fd, [res.parent.dentry.rel], lambda: fs.remove(
            res.parent.dentry, d, res.parent_dentries()[:-1], is_dir))
    if is_dir:
        vfs.removed(res.path, held)
    return Return(0)


@TABLE.emulated(FAMILY, "unlink", "removes the upper object and/or leaves a whiteout")
@vfs_call
def sys_unlink(call, vfs, task):
    return remove(call, vfs, task, AT_FDCWD, path_arg(call, 0), False)


@TABLE.emulated(FAMILY, "rmdir", "removes the upper directory and/or leaves a whiteout")
@vfs_call
def sys_rmdir(call, vfs, task):
    return remove(call, vfs, task, AT_FDCWD, path_arg(call, 0), True)


@TABLE.emulated(FAMILY, "unlinkat", "removes the upper object and/or leaves a whiteout")
@vfs_call
def sys_unlinkat(call, vfs, task):
    flags = call.int(2)
    if flags & ~AT_REMOVEDIR:
        return fail(errno.EINVAL)
    return remove(call, vfs, task, call.fd(0), path_arg(call, 1), bool(flags & AT_REMOVEDIR))


def unlink_dir(fd, name):
    os.rmdir(name, dir_fd=fd)


def unlink_file(fd, name):
    os.unlink(name, dir_fd=fd)


def is_ancestor(a, b):
    return b == a or b.startswith(a.rstrip("/") + "/")


def rename(call, vfs, task, olddirfd, oldpath, newdirfd, newpath, flags):
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or \
            (flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
        return fail(errno.EINVAL)
    old = vfs.resolve(task, olddirfd, oldpath, follow=False)
    if old.dentry is None:
        return fail(errno.ENOENT)
    new = vfs.resolve(task, newdirfd, newpath, follow=False) if not \
        newpath.rstrip("/").endswith(("/.", "/..")) and newpath not in (".", "..") else None
    if new is None or old.path == "/" or oldpath.rstrip("/").split("/")[-1] in (".", ".."):
        return fail(errno.EBUSY)
    if old.mount is not new.mount:
        return fail(errno.EXDEV)
    od, nd = old.dentry, new.dentry
    if flags & RENAME_NOREPLACE and nd is not None:
        return fail(errno.EEXIST)
    if flags & RENAME_EXCHANGE and nd is None:
        return fail(errno.ENOENT)
    if flags & RENAME_WHITEOUT and not (task.creds.caps & CAP_MKNOD and vfs.idmap.identity):
        return fail(errno.EPERM)
    if new.dir_required and not od.attr.is_dir() or old.dir_required and not od.attr.is_dir():
        return fail(errno.ENOTDIR)
    if old.path == new.path:
        return Return(0)
    if od.attr.is_dir() and is_ancestor(old.path, new.path) or \
            flags & RENAME_EXCHANGE and nd.attr.is_dir() and is_ancestor(new.path, old.path):
        return fail(errno.EINVAL)
    if nd is not None and not flags & RENAME_EXCHANGE:
        if od.attr.is_dir() and not nd.attr.is_dir():
            return fail(errno.ENOTDIR)
        if not od.attr.is_dir() and nd.attr.is_dir():
            return fail(errno.EISDIR)
        if nd.attr.is_dir() and nd.fs.listdir(nd):
            return fail(errno.ENOTEMPTY)
        if nd.fs is od.fs and nd.attr.ino == od.attr.ino and nd.attr.dev == od.attr.dev:
            return Return(0)        # two names of one file: nothing to do
    if old.path in vfs.mounts.by_path or new.path in vfs.mounts.by_path:
        return fail(errno.EBUSY)
    writable_mount(old)
    # an empty directory renamed over is gone, whoever works in it
    replaces_dir = nd is not None and not flags & RENAME_EXCHANGE and nd.attr.is_dir()
    held = vfs.removing(new) if replaces_dir else None
    fs = od.fs
    if isinstance(fs, UnionFS) or checks_all(task):
        err = may_rename(task.creds, old, new, flags)
        if err:
            return fail(err)
    if not isinstance(fs, UnionFS):
        fs.create_target(new.parent.dentry, new.name)     # writable at all?
        new_rel = new.parent.dentry.child_rel(new.name)

        def move(fd, name):
            with fs.host_dir(new_rel) as n:
                hostops.renameat2(fd, name, n.fd, n.name, flags)
        on_host(task, od, move)
        vfs.moved(old.path, new.path, exchange=bool(flags & RENAME_EXCHANGE),
                  replaced=replaces_dir, held=held)
        return done()
    overriding_modes(task, fs.upper_fd, [old.parent.dentry.rel, new.parent.dentry.rel],
                     lambda: fs.rename(old.parent.dentry, od, new.parent.dentry, new.name, nd,
                                       old.parent_dentries()[:-1], new.parent_dentries()[:-1],
                                       flags & ~RENAME_WHITEOUT))
    if flags & RENAME_WHITEOUT:
        host = fs.upper_host(od)
        os.mknod(host, _stat.S_IFCHR | 0o600, 0)
    vfs.moved(old.path, new.path, exchange=bool(flags & RENAME_EXCHANGE),
              replaced=replaces_dir, held=held)
    return Return(0)


def may_rename(creds, old, new, flags):
    """0 or the errno, as Linux's vfs_rename: the old name removed from its
    directory, the new one removed or created in its own (may_delete,
    may_create); a directory that moves to another parent is written
    (its ".." changes), and so is the other one of an exchange."""
    err = creds.may_delete(old.parent.dentry.attr, old.dentry.attr)
    if not err and new.dentry is not None:
        err = creds.may_delete(new.parent.dentry.attr, new.dentry.attr)
    elif not err:
        err = creds.permission(new.parent.dentry.attr, W_OK | X_OK)
    if not err and old.parent.path != new.parent.path:
        if old.dentry.attr.is_dir():
            err = creds.permission(old.dentry.attr, W_OK)
        if not err and flags & RENAME_EXCHANGE and new.dentry.attr.is_dir():
            err = creds.permission(new.dentry.attr, W_OK)
    return err


@TABLE.emulated(FAMILY, "rename", "in the upper layer; lower objects are copied up")
@vfs_call
def sys_rename(call, vfs, task):
    return rename(call, vfs, task, AT_FDCWD, path_arg(call, 0), AT_FDCWD, path_arg(call, 1), 0)


@TABLE.emulated(FAMILY, "renameat", "in the upper layer; lower objects are copied up")
@vfs_call
def sys_renameat(call, vfs, task):
    return rename(call, vfs, task, call.fd(0), path_arg(call, 1), call.fd(2),
                  path_arg(call, 3), 0)


@TABLE.emulated(FAMILY, "renameat2", "in the upper layer (NOREPLACE, EXCHANGE; WHITEOUT "
                "needs host CAP_MKNOD)")
@vfs_call
def sys_renameat2(call, vfs, task):
    return rename(call, vfs, task, call.fd(0), path_arg(call, 1), call.fd(2),
                  path_arg(call, 3), call.uint(4))
