"""Extended attributes (Linux's fs/xattr.c) and inotify watches.

Every xattr call is decided by the guest kernel: the name and value are
read and checked as Linux's setxattr_copy and import_xattr_name do, the
object is looked up by the VFS, Linux's permission rules are applied in
the guest's terms (``vfs/xattrs.py``), and the attribute is read or changed
where it lives: on the host object (user.*, security.*, system.*: as the
caller's host identity), in the upper layer under a name umlpy reserves
(the emulated trusted.* and security.capability), in an image's PAX
records (read only: a change copies the file up first, its attributes
with it)."""
import errno
import os

from ....abi import MASK64
from ....abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, IN_DONT_FOLLOW
from ....abi.mman import PAGE_SIZE
from ....abi.xattr import XATTR_ARGS, XATTR_ARGS_SIZE_VER0, XATTR_CREATE, XATTR_LIST_MAX, \
    XATTR_NAME_CAPS, XATTR_NAME_MAX, XATTR_REPLACE, XATTR_SIZE_MAX
from ...decisions import Return, fail
from ...vfs import hostops, xattrs
from ...vfs.union import UnionFS
from ..registry import TABLE
from .common import FAMILY, checks_on_host, copy_up_for_change, done, lookup_at, \
    lookup_existing, may_copy_up, on_fd_itself, on_host, own_object, path_arg, present, \
    refuse_foreign, vfs_call, writable_mount


# ---- the arguments, as Linux copies them in ----------------------------------

def read_name(call, addr):
    """import_xattr_name: ERANGE for an empty name or one longer than
    XATTR_NAME_MAX."""
    if addr == 0:
        raise OSError(errno.EFAULT, "NULL name")
    try:
        raw = call.read_str(addr, XATTR_NAME_MAX + 1)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise OSError(errno.ERANGE, "xattr name") from None
        raise
    if not raw or len(raw) > XATTR_NAME_MAX:
        raise OSError(errno.ERANGE, "xattr name")
    return os.fsdecode(raw)


def read_change(call, name_addr, value_addr, size, flags):
    """setxattr_copy: (name, value), flags checked first, a value over
    XATTR_SIZE_MAX is E2BIG before it is read."""
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise OSError(errno.EINVAL, "xattr flags")
    name = read_name(call, name_addr)
    size &= MASK64
    if size > XATTR_SIZE_MAX:
        raise OSError(errno.E2BIG, "xattr value")
    return name, call.read(value_addr, size) if size else b""


def xattr_args(call, addr, usize):
    """struct xattr_args as copy_struct_from_user reads it: at least its
    first version, at most a page, any longer tail zero."""
    usize &= MASK64
    if usize < XATTR_ARGS_SIZE_VER0:
        raise OSError(errno.EINVAL, "xattr_args size")
    if usize > PAGE_SIZE:
        raise OSError(errno.E2BIG, "xattr_args size")
    raw = call.read(addr, usize)
    if any(raw[XATTR_ARGS.size:]):
        raise OSError(errno.E2BIG, "xattr_args tail")
    return XATTR_ARGS.todict(raw[:XATTR_ARGS.size])


def sized_result(call, value, buf, size, limit):
    """getxattr's and listxattr's convention: size 0 asks for the length;
    too small a buffer is ERANGE (E2BIG once it is the limit, which Linux
    never allocates past)."""
    size &= MASK64
    if size == 0:
        return Return(len(value))
    if len(value) > min(size, limit):
        return fail(errno.E2BIG if size >= limit else errno.ERANGE)
    call.write(buf, value)
    return Return(len(value))


# ---- where an attribute is ----------------------------------------------------

def records(call):
    return call.kernel.fs.union.xattr_records


def holds_user_xattrs(d):
    """Only regular files and directories can hold a user.* attribute, so
    only they keep the emulated ones in the upper layer."""
    return d.attr.is_reg() or d.attr.is_dir()


def image_xattrs(d):
    """An object the host does not check (an image file, a synthesised
    one): the image's attributes, or none."""
    if isinstance(d.fs, UnionFS):
        return d.fs.lower_xattrs(d)
    return []


def no_host_object(d):
    """/proc/self, /proc/thread-self: no host object of their own (ls -l
    asks every name for its label); procfs keeps no xattrs, as Linux says."""
    try:
        d.fs.host_path(d)
    except OSError as e:
        if e.errno != errno.ELOOP or not d.attr.is_link():
            raise
        return True
    return False


def on_object(task, d, write, own_op, callers_op, *args):
    """An emulated attribute's host operation.  On the sandbox's own files
    (its upper layer) the guest kernel makes it itself: it checked the
    guest as Linux checks trusted.* or security.capability, which the
    caller's host identity would be checked for as for user.*.  On any
    other host object (a writable bind, a lower file) the caller's host
    identity makes it: nothing the caller could not change is changed."""
    if own_object(d):
        with d.fs.object_dir(d, write) as h:
            return own_op(h.fd, h.name, *args)
    return on_host(task, d, hostops.in_dir, callers_op, *args, write=write)


def recorded(call, d):
    """The emulated attributes the records keep for d's object, {name: value}."""
    kept = records(call)
    if not kept.objects:
        return {}
    with d.fs.object_dir(d, False) as h:
        return kept.objects.get(hostops.object_key(h.fd, h.name), {})


def emulated_value(call, task, d, name):
    if holds_user_xattrs(d):
        try:
            return on_object(task, d, False, hostops.own_getxattr, hostops.lgetxattr,
                             xattrs.stored_name(name))
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.EACCES):
                raise
    value = recorded(call, d).get(name)
    if value is not None:
        return value
    # a host file's own (a lower file with real capabilities), if any
    return on_host(task, d, hostops.in_dir, hostops.lgetxattr, name, write=False)


def get_value(call, task, res, name):
    """vfs_getxattr as the guest sees it."""
    d = res.dentry
    err = xattrs.permission(task.creds, present(call, d.attr), name, write=False)
    if err:
        raise OSError(err, name)
    xattrs.check_namespace(name)
    if not checks_on_host(d):
        for n, v in image_xattrs(d):
            if n == name:
                return v
        raise OSError(errno.ENODATA, name)
    if no_host_object(d):
        raise OSError(errno.EOPNOTSUPP, name)
    if xattrs.emulated(name):
        return emulated_value(call, task, d, name)
    return on_host(task, d, hostops.in_dir, hostops.lgetxattr, name, write=False)


def list_names(call, task, res):
    """vfs_listxattr as the guest sees it: names NUL-ended."""
    d = res.dentry
    if not checks_on_host(d):
        names = [n for n, _ in image_xattrs(d)]
    elif no_host_object(d):
        names = []
    else:
        names = [xattrs.shown_name(n) for n in
                 on_host(task, d, hostops.in_dir, hostops.llistxattr, write=False)]
        names += list(recorded(call, d))
    return xattrs.list_bytes(xattrs.visible(task.creds, names))


def change(call, task, res, name, value=None, flags=0):
    """vfs_setxattr (value bytes) or vfs_removexattr (value None) as the
    guest sees it; a lower object is copied up first, its attributes with
    it."""
    writable_mount(res)
    d = res.dentry
    attr = present(call, d.attr)
    creds = task.creds
    if name == XATTR_NAME_CAPS:
        if value is not None:
            value = xattrs.capability_value(value)
        xattrs.check_capability_change(creds, attr)
    err = xattrs.permission(creds, attr, name, write=True)
    if err:
        raise OSError(err, name)
    xattrs.check_namespace(name)
    copy_up_for_change(task, res)
    if xattrs.emulated(name):
        change_emulated(call, task, d, name, value, flags)
    elif value is None:
        on_host(task, d, hostops.in_dir, hostops.lremovexattr, name)
    else:
        on_host(task, d, hostops.in_dir, hostops.lsetxattr, name, value, flags)
    return done()


def change_emulated(call, task, d, name, value, flags):
    """Checked as Linux checks it for the guest: kept under the reserved
    name (on_object) or in the guest kernel's records."""
    if holds_user_xattrs(d):
        stored = xattrs.stored_name(name)
        try:
            if value is None:
                on_object(task, d, True, hostops.own_removexattr, hostops.lremovexattr, stored)
            else:
                on_object(task, d, True, hostops.own_setxattr, hostops.lsetxattr, stored, value,
                          flags)
            return
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise
            # a filesystem without user.* attributes: the records keep it
    with d.fs.object_dir(d, True) as h:
        key = hostops.object_key(h.fd, h.name)
        if value is None:
            records(call).remove(key, name)
        else:
            records(call).set(key, name, value, flags & XATTR_CREATE, flags & XATTR_REPLACE,
                              d.fs.host_path(d))


def change_xattr(call, task, res, name_addr, value_addr=0, size=0, flags=0, remove=False):
    """setxattr/removexattr's arguments read, then the change on res."""
    if remove:
        return change(call, task, res, read_name(call, name_addr))
    name, value = read_change(call, name_addr, value_addr, size, flags)
    return change(call, task, res, name, value, flags)


# ---- the path calls -----------------------------------------------------------

def sys_getxattr(call, vfs, task, follow):
    a = call.args
    name = read_name(call, a[1])
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    return sized_result(call, get_value(call, task, res, name), a[2], a[3], XATTR_SIZE_MAX)


def sys_listxattr(call, vfs, task, follow):
    a = call.args
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    return sized_result(call, list_names(call, task, res), a[1], a[2], XATTR_LIST_MAX)


def sys_setxattr(call, vfs, task, follow):
    a = call.args
    name, value = read_change(call, a[1], a[2], a[3], call.int(4))
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    return change(call, task, res, name, value, call.int(4))


def sys_removexattr(call, vfs, task, follow):
    name = read_name(call, call.args[1])
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), follow)
    return change(call, task, res, name)


_READ = "read where the attribute lives (the host object, the upper layer's reserved names, " \
    "an image's PAX records)"
_LIST = "the host object's names (the emulated ones under theirs), an image's"
_SET = "on the upper copy of the object; trusted.* and security.capability emulated"
for _name, _follow, _fn, _why in (
        ("getxattr", True, sys_getxattr, _READ), ("lgetxattr", False, sys_getxattr, _READ),
        ("listxattr", True, sys_listxattr, _LIST), ("llistxattr", False, sys_listxattr, _LIST),
        ("setxattr", True, sys_setxattr, _SET), ("lsetxattr", False, sys_setxattr, _SET),
        ("removexattr", True, sys_removexattr, _SET),
        ("lremovexattr", False, sys_removexattr, _SET)):
    TABLE.emulated(FAMILY, _name, _why)(
        vfs_call(lambda call, vfs, task, f=_follow, fn=_fn: fn(call, vfs, task, f)))


# ---- the *xattrat calls (Linux 6.13) -------------------------------------------

AT_XATTR_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH


def lookup_xattrat(call, vfs, task):
    """The object of dirfd, pathname and at_flags, or None: an fd (with
    AT_EMPTY_PATH) that is no guest filesystem object."""
    return lookup_at(call, vfs, task, call.fd(0), 1, call.uint(2),
                     not call.uint(2) & AT_SYMLINK_NOFOLLOW)


def check_at_flags(call):
    if call.uint(2) & ~AT_XATTR_FLAGS:
        raise OSError(errno.EINVAL, "at_flags")


@TABLE.emulated(FAMILY, "setxattrat", "as setxattr, on the object dirfd, pathname and "
                "at_flags name")
@vfs_call
def sys_setxattrat(call, vfs, task):
    args = xattr_args(call, call.args[4], call.args[5])
    check_at_flags(call)
    name, value = read_change(call, call.args[3], args["value"], args["size"], args["flags"])
    res = lookup_xattrat(call, vfs, task)
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or on_fd_itself(call, 1)
    return change(call, task, res, name, value, args["flags"])


@TABLE.emulated(FAMILY, "getxattrat", "as getxattr, on the object dirfd, pathname and "
                "at_flags name")
@vfs_call
def sys_getxattrat(call, vfs, task):
    args = xattr_args(call, call.args[4], call.args[5])
    if args["flags"]:
        return fail(errno.EINVAL)
    check_at_flags(call)
    name = read_name(call, call.args[3])
    res = lookup_xattrat(call, vfs, task)
    if res is None:
        return on_fd_itself(call, 1)
    return sized_result(call, get_value(call, task, res, name), args["value"], args["size"],
                        XATTR_SIZE_MAX)


@TABLE.emulated(FAMILY, "listxattrat", "as listxattr, on the object dirfd, pathname and "
                "at_flags name")
@vfs_call
def sys_listxattrat(call, vfs, task):
    check_at_flags(call)
    res = lookup_xattrat(call, vfs, task)
    if res is None:
        return on_fd_itself(call, 1)
    return sized_result(call, list_names(call, task, res), call.args[3], call.args[4],
                        XATTR_LIST_MAX)


@TABLE.emulated(FAMILY, "removexattrat", "as removexattr, on the object dirfd, pathname "
                "and at_flags name")
@vfs_call
def sys_removexattrat(call, vfs, task):
    check_at_flags(call)
    name = read_name(call, call.args[3])
    res = lookup_xattrat(call, vfs, task)
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or on_fd_itself(call, 1)
    return change(call, task, res, name)


# ---- the fd calls (syscalls/fd.py declares them) -------------------------------

def fgetxattr(call, task, res):
    a = call.args
    name = read_name(call, a[1])
    return sized_result(call, get_value(call, task, res, name), a[2], a[3], XATTR_SIZE_MAX)


def flistxattr(call, task, res):
    a = call.args
    return sized_result(call, list_names(call, task, res), a[1], a[2], XATTR_LIST_MAX)


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
