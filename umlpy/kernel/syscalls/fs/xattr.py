"""Extended attributes (Linux's fs/xattr.c) and inotify watches: on the
host object the VFS chose, by the caller's host identity."""
import errno
import os

from ....abi import MASK64
from ....abi.fcntl import AT_FDCWD, IN_DONT_FOLLOW
from ....abi.resource import XATTR_NAME_MAX, XATTR_SIZE_MAX
from ...decisions import Return, fail
from ...vfs import hostops
from ...vfs.union import UnionFS
from ..registry import TABLE
from .attr import owner_check
from .common import FAMILY, checks_on_host, copy_up_for_change, done, lookup_existing, \
    may_copy_up, on_host, path_arg, vfs_call


def xattr_get(call, vfs, task, follow, name_nr):
    a = call.args
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    d = res.dentry
    if not checks_on_host(d):
        return fail(errno.ENODATA) if name_nr != "llistxattr" else Return(0)
    try:
        host = d.fs.host_path(d)
    except OSError as e:
        if e.errno != errno.ELOOP or not d.attr.is_link():
            raise
        # /proc/self, /proc/thread-self: no host object of their own (ls -l
        # asks every name for its label); procfs keeps no xattrs, as Linux says
        return fail(errno.EOPNOTSUPP) if name_nr != "llistxattr" else Return(0)
    del host
    if name_nr == "llistxattr":
        names = on_host(task, d, hostops.in_dir, hostops.llistxattr, write=False)
        value = b"".join(os.fsencode(n) + b"\0" for n in names)
        return sized_result(call, value, a[1], a[2])
    attr_name = xattr_name(call, a[1])
    value = on_host(task, d, hostops.in_dir, hostops.lgetxattr, attr_name, write=False)
    return sized_result(call, value, a[2], a[3])


def xattr_name(call, addr):
    name = call.read_str(addr, XATTR_NAME_MAX + 1)
    if not name or len(name) > XATTR_NAME_MAX:
        raise OSError(errno.ERANGE, "xattr name")
    return os.fsdecode(name)


def sized_result(call, value, buf, size):
    """getxattr's convention: size 0 asks for the length; too small a
    buffer is ERANGE."""
    size &= MASK64
    if size == 0:
        return Return(len(value))
    if len(value) > size:
        return fail(errno.ERANGE)
    call.write(buf, value)
    return Return(len(value))


def change_xattr(call, task, res, name_addr, value_addr=0, size=0, flags=0, remove=False):
    """setxattr/removexattr on the object (a lower one copied up first)."""
    owner_check(task, res)
    attr_name = xattr_name(call, name_addr)
    if size > XATTR_SIZE_MAX:
        return fail(errno.E2BIG)
    value = call.read(value_addr, size) if size else b""
    if flags & ~3:
        return fail(errno.EINVAL)
    copy_up_for_change(task, res)
    if remove:
        on_host(task, res.dentry, hostops.in_dir, hostops.lremovexattr, attr_name)
    else:
        on_host(task, res.dentry, hostops.in_dir, hostops.lsetxattr, attr_name, value, flags)
    return done()


def xattr_set(call, vfs, task, follow, name_nr):
    a = call.args
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    if name_nr == "lremovexattr":
        return change_xattr(call, task, res, a[1], remove=True)
    return change_xattr(call, task, res, a[1], a[2], a[3], call.int(4))


for _name, _follow, _target in (("getxattr", True, "lgetxattr"),
                                ("lgetxattr", False, "lgetxattr"),
                                ("listxattr", True, "llistxattr"),
                                ("llistxattr", False, "llistxattr")):
    TABLE.emulated(FAMILY, _name, "read from the object's host copy (none for image "
                   "files)")(vfs_call(lambda call, vfs, task, f=_follow, t=_target:
                                      xattr_get(call, vfs, task, f, t)))
for _name, _follow, _target in (("setxattr", True, "lsetxattr"),
                                ("lsetxattr", False, "lsetxattr"),
                                ("removexattr", True, "lremovexattr"),
                                ("lremovexattr", False, "lremovexattr")):
    TABLE.emulated(FAMILY, _name, "on the upper copy of the object")(
        vfs_call(lambda call, vfs, task, f=_follow, t=_target:
                 xattr_set(call, vfs, task, f, t)))


@TABLE.emulated(FAMILY, "inotify_add_watch", "watches the object's host copy (a directory "
                "is copied up, so the guest's own changes are seen)")
@vfs_call
def sys_inotify_add_watch(call, vfs, task):
    mask = call.uint(2)
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 1), not mask & IN_DONT_FOLLOW)
    d = res.dentry
    if isinstance(d.fs, UnionFS) and d.attr.is_dir() and not res.mount.read_only:
        may_copy_up(task, res)
        d.fs.copy_up(d, res.parent_dentries())
    inotify_fd = hostops.thread_fd(call.tid, task.tgid, call.fd(0))
    try:
        wd = on_host(task, d, hostops.in_dir, hostops.inotify_add_watch, inotify_fd,
                     mask | IN_DONT_FOLLOW, write=False)
    finally:
        os.close(inotify_fd)
    return Return(wd)
