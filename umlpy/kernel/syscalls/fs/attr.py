"""Calls that change an object's attributes (Linux's fs/attr.c, fs/utimes.c,
fs/open.c's chmod and chown, truncate) and statfs: checked by the guest
kernel, made on the host object by the caller's host identity."""
import errno
import os

from ....abi import MASK32, u32
from ....abi.capability import CAP_CHOWN
from ....abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, O_PATH, \
    RESOLVE_NO_SYMLINKS, W_OK
from ....abi.stat import S_IALLUGO, S_ISGID, S_ISUID, S_IXGRP
from ....abi.time import TIMESPEC, TIMEVAL, UTIMBUF, UTIME_NOW, UTIME_OMIT
from ...decisions import ALLOW, Return, fail
from ...fakeids import valid
from ...vfs import hostops
from ...vfs.mqueuefs import MqueueFS
from ...vfs.union import IN_UPPER, UnionFS
from ..registry import TABLE
from .common import FAMILY, copy_up_for_change, done, host_checks, lookup_at, lookup_existing, \
    on_fd_itself, on_host, own_object, path_arg, present, refuse_foreign, vfs_call, writable_mount


def owner_check(task, res):
    d = res.dentry
    if not host_checks(task, d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
        if not task.creds.owns(d.attr):
            raise OSError(errno.EPERM, "not the owner")


def chmod(call, vfs, task, res, mode):
    """res None: fd 0 (AT_EMPTY_PATH) is no guest filesystem object."""
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or on_fd_itself(call, 1)
    owner_check(task, res)
    copy_up_for_change(task, res)
    d = res.dentry
    if own_object(d):
        result = host_result(lambda: chmod_own(task, d, mode))
    else:
        result = host_result(lambda: on_host(task, d, hostops.fchmod_nofollow, mode))
    fake = call.kernel.fake_ownership
    if fake is not None:
        faked = fake.chmod_result(res.dentry.attr, mode, result)
        result = result if faked is None else faked
    return Return(result)


def chmod_own(task, d, mode):
    """mode on an object of the sandbox's own storage: its set-ID bits
    kept apart from the host file (union.py, setid.py)."""
    key = on_host(task, d, hostops.chmod_setid_apart, mode)
    if key is not None:
        d.fs.note_setid(key, mode, d.rel)


def set_id_after_chown(mode):
    """What a chown leaves of a non-directory's set-ID bits, as Linux
    (chown_common's ATTR_KILL_SUID|ATTR_KILL_SGID, whoever calls, whether
    or not an id changes): set-user-ID goes; set-group-ID goes with group
    execute (without it, it marks mandatory locking and stays)."""
    mode &= ~S_ISUID
    if mode & S_IXGRP:
        mode &= ~S_ISGID
    return mode


def host_result(fn):
    """0, or the negative errno of the host operation fn performs."""
    try:
        fn()
        return 0
    except OSError as e:
        if e.errno is None:
            raise
        return -e.errno


@TABLE.emulated(FAMILY, "chmod", "on the upper copy of the object")
@vfs_call
def sys_chmod(call, vfs, task):
    return chmod(call, vfs, task, lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True),
                 call.uint(1) & S_IALLUGO)


@TABLE.emulated(FAMILY, "fchmodat", "on the upper copy of the object")
@vfs_call
def sys_fchmodat(call, vfs, task):
    return chmod(call, vfs, task, lookup_existing(vfs, task, call.fd(0), path_arg(call, 1), True),
                 call.uint(2) & S_IALLUGO)


@TABLE.emulated(FAMILY, "fchmodat2", "on the upper copy of the object")
@vfs_call
def sys_fchmodat2(call, vfs, task):
    flags = call.int(3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    res = lookup_at(call, vfs, task, call.fd(0), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    if res is not None and res.dentry.attr.is_link():
        return fail(errno.EOPNOTSUPP)
    return chmod(call, vfs, task, res, call.uint(2) & S_IALLUGO)


def chown(call, vfs, task, res, uid, gid):
    if res is None:
        return refuse_foreign(call, vfs, task, call.fd(0)) or on_fd_itself(call, 1)
    fake = call.kernel.fake_ownership
    guest_uid, guest_gid = id_arg(uid), id_arg(gid)
    attr = res.dentry.attr
    writable_mount(res)
    if vfs.fake_ids is not None and not (valid_id(guest_uid) and valid_id(guest_gid)):
        return fail(errno.EINVAL)       # no such id in the guest's namespace
    err = may_chown(task.creds, present(call, attr), guest_uid, guest_gid)
    if err:
        return fail(err)
    copy_up_for_change(task, res)
    idmap = vfs.idmap
    host_uid = -1 if guest_uid == -1 else idmap.uid_out(guest_uid)
    host_gid = -1 if guest_gid == -1 else idmap.gid_out(guest_gid)
    if host_uid is None or host_gid is None:
        result = -errno.EINVAL          # no host id for it in the namespace
    else:
        result = host_result(lambda: on_host(
            task, res.dentry, lambda fd, name: os.chown(name, host_uid, host_gid, dir_fd=fd,
                                                        follow_symlinks=False)))
        d = res.dentry
        # the host drops the bits of its own files itself; ours are kept apart
        if result == 0 and own_object(d) and not d.attr.is_dir() and not d.attr.is_link() \
                and d.attr.mode & (S_ISUID | S_ISGID):
            mode = d.attr.mode & S_IALLUGO
            result = host_result(lambda: chmod_own(task, d, set_id_after_chown(mode)))
    if fake is not None:
        faked = fake.chown_result(attr, guest_uid, guest_gid, result)
        result = result if faked is None else faked
    return Return(result)


def may_chown(creds, attr, uid, gid):
    """0 or EPERM: Linux's chown_ok and chgrp_ok (fs/attr.c).  The owner
    may "change" the owner to itself and the group to one of its groups;
    anything else needs CAP_CHOWN over the file (guest root's over a lower
    object too: the change is made to its own copy).  -1 changes nothing
    and needs nothing.  attr: the object as stat shows it (fake ownership
    applied)."""
    if creds.capable_of_copy(CAP_CHOWN, attr):
        return 0
    owner = creds.is_owner(attr)
    if uid != -1 and not (owner and uid == attr.uid):
        return errno.EPERM
    if gid != -1 and not (owner and (gid == attr.gid or creds.in_group(gid))):
        return errno.EPERM
    return 0


def valid_id(ident):
    return ident == -1 or valid(ident)


def id_arg(value):
    """A uid_t/gid_t argument: unsigned, with (uid_t)-1 meaning -1."""
    value = u32(value)
    return -1 if value == MASK32 else value


@TABLE.emulated(FAMILY, "chown", "on the upper copy of the object")
@vfs_call
def sys_chown(call, vfs, task):
    a = call.args
    return chown(call, vfs, task, lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True),
                 a[1], a[2])


@TABLE.emulated(FAMILY, "lchown", "on the upper copy of the object")
@vfs_call
def sys_lchown(call, vfs, task):
    a = call.args
    return chown(call, vfs, task, lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), False),
                 a[1], a[2])


@TABLE.emulated(FAMILY, "fchownat", "on the upper copy of the object")
@vfs_call
def sys_fchownat(call, vfs, task):
    a = call.args
    flags = call.int(4)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    res = lookup_at(call, vfs, task, call.fd(0), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    return chown(call, vfs, task, res, a[2], a[3])


@TABLE.emulated(FAMILY, "utimensat", "on the upper copy of the object")
@vfs_call
def sys_utimensat(call, vfs, task):
    a = call.args
    flags = call.int(3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    if a[1] == 0:
        res = vfs.resolve_fd(task, call.fd(0)) if call.fd(0) != AT_FDCWD else None
        if res is None:
            return refuse_foreign(call, vfs, task, call.fd(0)) or ALLOW
    else:
        res = lookup_at(call, vfs, task, call.fd(0), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
        if res is None:
            return refuse_foreign(call, vfs, task, call.fd(0)) or on_fd_itself(call, 1)
    times = call.read(a[2], 2 * TIMESPEC.size) if a[2] else None
    return set_times(task, res, times)


def set_times(task, res, times):
    """utimensat's rules: setting both times to now needs ownership or
    write permission, any other change ownership; checked before a lower
    object is copied up."""
    d = res.dentry
    if times is not None:
        nsecs = [TIMESPEC.get(times, "tv_nsec", i * TIMESPEC.size) for i in (0, 1)]
        if any(n not in (UTIME_NOW, UTIME_OMIT) and not 0 <= n < 10**9 for n in nsecs):
            return fail(errno.EINVAL)
        if all(n == UTIME_OMIT for n in nsecs):
            return done()
    if not host_checks(task, d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
        creds = task.creds
        to_now = times is None or all(n == UTIME_NOW for n in nsecs)
        if not creds.owns(d.attr):
            if not to_now:
                return fail(errno.EPERM)
            if creds.permission(d.attr, W_OK):
                return fail(errno.EACCES)
    copy_up_for_change(task, res)
    on_host(task, d, hostops.utimens_nofollow, times)
    return done()


def old_utime(call, vfs, task, dirfd, path, name, addr):
    res = lookup_existing(vfs, task, dirfd, path, True)
    if not addr:
        return set_times(task, res, None)
    if name == "utime":             # struct utimbuf: two time_t
        secs = list(UTIMBUF.unpack(call.read(addr, UTIMBUF.size)))
        nsecs = [0, 0]
    else:                           # struct timeval[2]
        raw = call.read(addr, 2 * TIMEVAL.size)
        secs, usecs = zip(*(TIMEVAL.unpack_from(raw, i * TIMEVAL.size) for i in (0, 1)))
        if any(not 0 <= u < 10**6 for u in usecs):
            return fail(errno.EINVAL)
        nsecs = [u * 1000 for u in usecs]
    times = b"".join(TIMESPEC.pack(s, n) for s, n in zip(secs, nsecs))
    return set_times(task, res, times)


@TABLE.emulated(FAMILY, "utime", "on the upper copy of the object")
@vfs_call
def sys_utime(call, vfs, task):
    return old_utime(call, vfs, task, AT_FDCWD, path_arg(call, 0), "utime", call.args[1])


@TABLE.emulated(FAMILY, "utimes", "on the upper copy of the object")
@vfs_call
def sys_utimes(call, vfs, task):
    return old_utime(call, vfs, task, AT_FDCWD, path_arg(call, 0), "utimes", call.args[1])


@TABLE.emulated(FAMILY, "futimesat", "on the upper copy of the object")
@vfs_call
def sys_futimesat(call, vfs, task):
    a = call.args
    return old_utime(call, vfs, task, call.fd(0), path_arg(call, 1), "futimesat", a[2])


@TABLE.emulated(FAMILY, "truncate", "on the upper copy of the file")
@vfs_call
def sys_truncate(call, vfs, task):
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True)
    if res.dentry.attr.is_dir():
        return fail(errno.EISDIR)
    if not host_checks(task, res.dentry) or not res.dentry.flags & IN_UPPER:
        err = task.creds.permission(res.dentry.attr, W_OK)
        if err:
            return fail(err)
    length = call.long(1)
    if length < 0:
        return fail(errno.EINVAL)
    copy_up_for_change(task, res)
    quota = call.kernel.disk_quota
    if quota is not None and length > res.dentry.attr.size:
        quota.reserve(length - res.dentry.attr.size)       # --disk: ENOSPC
    on_host(task, res.dentry, hostops.truncate_regular, length)
    return done()


@TABLE.emulated(FAMILY, "statfs", "the filesystem holding the object's host copy")
@vfs_call
def sys_statfs(call, vfs, task):
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True)
    fs = res.dentry.fs
    if isinstance(fs, MqueueFS):
        # no host path: the mount's own root fd (the same superblock)
        data = hostops.fstatfs_bytes(fs.root_fd)
    else:
        fd = hostops.openat2(AT_FDCWD, fs.statfs_path(res.dentry), O_PATH, 0,
                             RESOLVE_NO_SYMLINKS)
        try:
            data = hostops.fstatfs_bytes(fd)
        finally:
            os.close(fd)
    call.write(call.args[1], data)
    return done()
