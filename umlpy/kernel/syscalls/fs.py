"""Paths, files and their metadata (the VFS family).

Every path the guest names is resolved by the guest VFS
(``umlpy/kernel/vfs``).  A call then either is answered by the guest kernel
(stat, readlink, getcwd, a deletion that leaves a whiteout...) or runs on
the host object the VFS chose, with the host path written into the
thread's scratch slot: the host never resolves a name the guest wrote."""
import errno
import os
import stat as _stat

from ..decisions import ALLOW, AllowThen, Deferred, Install, Rewrite, Return, fail
from ..fastpath import ACCESS, LINK, STAT, STATX
from ..vfs.creds import R_OK, W_OK, X_OK
from ..vfs import hostopen, hostops
from ..vfs.hostops import RESOLVE_NO_SYMLINKS
from ..vfs.vfs import WalkWatch
from ..vfs.union import IN_LOWER, IN_UPPER, RENAME_EXCHANGE, RENAME_NOREPLACE, \
    RENAME_WHITEOUT, UnionFS
from .names import SYSCALL_NUMBERS as NR
from .registry import TABLE

FAMILY = "fs"

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EACCESS = 0x200
AT_EMPTY_PATH = 0x1000

O_ACCMODE = 0o3
O_CREAT, O_EXCL, O_TRUNC = 0o100, 0o200, 0o1000
O_DIRECTORY, O_NOFOLLOW = 0o200000, 0o400000
O_PATH = 0o10000000
O_TMPFILE = 0o20000000 | O_DIRECTORY
O_LARGEFILE = 0o100000
O_CLOEXEC = 0o2000000
O_PATH_FLAGS = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
OPEN_FLAGS = 0o37777703      # Linux's VALID_OPEN_FLAGS: what openat2 accepts
IN_DONT_FOLLOW = 0x02000000
CAP_CHOWN = 1 << 0
CAP_MKNOD = 1 << 27


def s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def vfs_call(fn):
    """Run a handler; an OSError it raises is the guest's errno."""
    def handler(call):
        try:
            return fn(call, call.kernel.vfs, call.kernel.vfs.task(call.tid))
        except OSError as e:
            if e.errno is None:
                raise
            return fail(e.errno)
    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def path_arg(call, i):
    if call.args[i] == 0:
        raise OSError(errno.EFAULT, "NULL path")
    try:
        raw = call.read_str(call.args[i], 4096)
    except OSError as e:
        raise OSError(e.errno, "bad path") from None
    return os.fsdecode(raw)


def checks_on_host(d):
    return d.fs.checks_on_host(d)


def writable_mount(res):
    if res.mount.read_only:
        raise OSError(errno.EROFS, "read-only file system")


def rewrite(call, nr_name, *args, status=None):
    """Rewrite the call to nr_name(args); str args go to scratch memory
    (status: as for GuestKernel.scratch_writer)."""
    kernel = call.kernel
    w = kernel.scratch_writer(call, status)
    out = []
    for a in args:
        if isinstance(a, (str, bytes)):
            out.append(w.string(a))
        elif isinstance(a, bytearray):
            out.append(w.add(bytes(a)))
        else:
            out.append(a & 0xFFFFFFFFFFFFFFFF)
    kernel.scratch_commit(call, w)
    return Rewrite(NR[nr_name], out)


def on_fd_itself(call, path_index):
    """The call as the guest made it, on an fd that is no guest filesystem
    object (a pipe, a socket, a memfd): the host answers.  Its empty path
    is copied to scratch memory, so no other guest thread can turn it
    into a path between this check and the host reading it."""
    args = list(call.args)
    if args[path_index]:
        w = call.kernel.scratch_writer(call)
        args[path_index] = w.string("")
        call.kernel.scratch_commit(call, w)
    return Rewrite(call.nr, args)


def stat_of_copy(call, task, fd, buf):
    """fstat of an fd that is no guest filesystem object (a pipe, a socket,
    a memfd), at the listener: the host's stat of the guest kernel's own
    copy of the fd, with ids as the guest's user namespace shows them."""
    dup = hostops.thread_fd(call.tid, task.tgid, fd)
    try:
        st = os.fstat(dup)
    finally:
        os.close(dup)
    call.write(buf, call.kernel.fs.union.idmap.attr_of(st).pack_stat())
    return Return(0)


def then(rewritten, on_exit):
    return AllowThen(on_exit, rewrite=rewritten)


def present(call, attr):
    fake = getattr(call.kernel, "fake_ownership", None)
    return fake.apply(attr) if fake is not None else attr


def lookup_existing(vfs, task, dirfd, path, follow):
    res = vfs.resolve(task, dirfd, path, follow)
    if res.dentry is None:
        raise OSError(errno.ENOENT, path)
    return res


def lookup_at(call, vfs, task, dirfd, path_index, flags, follow):
    """A *at call's object, with AT_EMPTY_PATH meaning the dirfd itself."""
    path = path_arg(call, path_index) if call.args[path_index] else ""
    if path == "" and flags & AT_EMPTY_PATH:
        if dirfd == AT_FDCWD:
            return vfs.resolve(task, AT_FDCWD, ".", True)
        res = vfs.resolve_fd(task, dirfd)
        return res              # None: not a guest filesystem object
    return lookup_existing(vfs, task, dirfd, path, follow)


def copy_up_for_change(task, res):
    """The host path to change res's object on: a lower object is copied up
    first (if the caller may change it at all)."""
    writable_mount(res)
    d = res.dentry
    if isinstance(d.fs, UnionFS):
        may_copy_up(task, res)
        return d.fs.copy_up(d, res.parent_dentries())
    return d.fs.setattr_target(d)


def may_copy_up(task, res):
    """A copy-up reads the lower object for the guest: only what the guest
    may read is copied (a directory: read and search, since its merged
    listing shows the lower's names).  The copy itself is read as the
    guest's host identity too (union.open_lower)."""
    d = res.dentry
    if d.flags & IN_UPPER or d.attr.is_link():
        return
    want = R_OK | X_OK if d.attr.is_dir() else R_OK
    if d.attr.is_reg() or d.attr.is_dir():
        err = task.creds.permission(d.attr, want)
        if err:
            raise OSError(err, "copy-up of an object the caller may not read")


def on_host(task, d, op, *args, write=True):
    """op(dirfd, name, *args) performed by the guest kernel on d's host
    object, as the calling thread's host identity: from an fd of its parent
    directory that the guest kernel opened without following symlinks, on
    the last component, which op never follows."""
    with d.fs.object_dir(d, write) as h:
        return task.as_host(op, h.fd, h.name, *args)


def on_host_at(task, fs, rel, op, *args):
    with fs.host_dir(rel) as h:
        return task.as_host(op, h.fd, h.name, *args)


def done(result=0):
    return Return(result)


# ---- open ---------------------------------------------------------------

def open_file(call, vfs, task, dirfd, path, flags, mode, resolve=0):
    if flags & O_TMPFILE == O_TMPFILE:
        res = lookup_existing(vfs, task, dirfd, path, True)
        if not res.dentry.attr.is_dir():
            raise OSError(errno.ENOTDIR, path)
        host = copy_up_for_change(task, res)
        return open_object(call, task, host, flags, mode & ~task.host_identity.umask
                           if call.notified else mode)
    follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
    res = vfs.resolve(task, dirfd, path, follow)
    acc = flags & O_ACCMODE
    writes = not flags & O_PATH and (acc != os.O_RDONLY or flags & O_TRUNC)
    d = res.dentry
    if d is None:
        if not flags & O_CREAT:
            call.kernel.fastpath.remember_open(task, res, dirfd, path, flags, err=errno.ENOENT)
            raise OSError(errno.ENOENT, path)
        if res.dir_required:
            raise OSError(errno.EISDIR, path)
        if call.notified:
            return create_open(call, task, res, flags, mode)
        return create_then(call, vfs, task, res, "openat2", lambda host: open_how_args(
            call, host, flags, mode))
    if flags & O_CREAT and flags & O_EXCL:
        raise OSError(errno.EEXIST, path)
    attr = d.attr
    if attr.is_link():
        if not flags & O_PATH:
            own = own_fd_object(vfs, task, d)
            if own is None:
                raise OSError(errno.ELOOP, path)
            return reopen_fd_object(call, task, d, own, flags, mode)
        return open_object(call, task, d.fs.host_path(d), flags, 0)
    if attr.is_dir() and (writes or flags & O_CREAT):
        raise OSError(errno.EISDIR, path)
    if flags & O_DIRECTORY and not attr.is_dir():
        raise OSError(errno.ENOTDIR, path)
    if writes and attr.kind in (_stat.S_IFCHR, _stat.S_IFBLK, _stat.S_IFIFO, _stat.S_IFSOCK):
        host = d.fs.host_path(d)        # a device is written, not its directory entry
    elif writes:
        writable_mount(res)
        if not checks_on_host(d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
            err = task.creds.permission(attr, W_OK | (R_OK if acc == os.O_RDWR else 0))
            if err:
                raise OSError(err, path)
        if isinstance(d.fs, UnionFS):
            host = d.fs.copy_up(d, res.parent_dentries())
        else:
            host = d.fs.host_path(d)
    else:
        if not checks_on_host(d) and not flags & O_PATH:
            err = task.creds.permission(attr, R_OK)
            if err:
                raise OSError(err, path)
        host = d.fs.host_path(d)
        if vfs.is_spooled(host):
            return open_object(call, task, host, flags, mode, after=forget_produced(host))
        if (checks_on_host(d) or attr.mode & 0o004) and attr.kind in (_stat.S_IFREG, _stat.S_IFDIR):
            # the same for every caller
            call.kernel.fastpath.remember_open(task, res, dirfd, path, flags, host)
    return open_object(call, task, host, flags, mode)


def forget_produced(host):
    """A produced file serves one open: unlinked after it, so a guest that
    polls /proc/meminfo does not fill the disk."""
    def on_exit(call, result):
        try:
            os.unlink(host)
        except OSError:
            pass
        return None
    return on_exit


def own_fd_object(vfs, task, d):
    """For /proc/PID/fd/N naming a pipe, socket, memfd or other object
    with no guest path, in the caller's own process: its link text
    ("pipe:[123]"), if the host may reopen it through that link.  Only when
    nobody else can change the fd table meanwhile (one thread, no process
    sharing it by CLONE_FILES): otherwise a dup2 onto N between this check
    and the host's open could make the host open a file of its own."""
    procfs = getattr(vfs, "procfs", None)
    if procfs is None or d.fs is not procfs:
        return None
    parts = d.rel.split("/")
    if len(parts) == 5 and parts[1] == "task":
        parts = [parts[0], parts[3], parts[4]]
    if len(parts) != 3 or parts[1] != "fd" or not parts[2].isdigit():
        return None
    host = procfs._host_pid(parts[0])
    if host is None or vfs.tgid_of(host) != task.tgid:
        return None
    link = vfs.fd_host_path(task.tid, int(parts[2]))
    if link is None or not reopenable(vfs, link) or not fd_table_private(vfs, task):
        return None
    return link, int(parts[2])


def reopenable(vfs, link):
    """Objects without a guest path that Linux lets a process reopen by its
    /proc fd link: pipes, sockets, anonymous inodes, memfds, and deleted
    files of the sandbox's own storage."""
    if not link.startswith("/") or link.startswith("/memfd:"):
        return True
    if not link.endswith(" (deleted)"):
        return False
    host = link[:-len(" (deleted)")]
    roots = getattr(vfs, "own_storage", ())
    return any(host.startswith(r.rstrip("/") + "/") for r in roots)


def fd_table_private(vfs, task):
    from ..procfs import status_fields
    from ..vfs.hostops import same_fd_table
    if status_fields(task.tgid).get("Threads", "1") != "1":
        return False
    return not any(same_fd_table(task.tgid, other) for other in set(vfs.tgids.values())
                   if other != task.tgid)


def reopen_fd_object(call, task, d, own, flags, mode):
    """The host reopens the object through the magic link, as Linux does
    (a pipe or memfd gets a new open file description; a socket ENXIO);
    afterwards the new fd must be that same object."""
    link, number = own
    if call.notified:
        # our own copy of the caller's fd, checked, then reopened through
        # our own /proc/self/fd link as the caller's identity
        dup = hostops.thread_fd(task.tid, task.tgid, number)
        try:
            if os.readlink(f"/proc/self/fd/{dup}") != link:
                raise OSError(errno.EACCES, "the fd changed")
        except OSError:
            os.close(dup)
            raise
        return open_object(call, task, f"/proc/self/fd/{dup}", flags, mode, holding=dup)
    rewritten = open_rewrite(call, "/proc/" + d.rel, flags, mode)

    def verify(call, result):
        if result < 0:
            return None
        try:
            same = os.readlink(f"/proc/{call.tid}/fd/{result}") == link
        except OSError:
            same = False
        if same:
            return None
        call.inject(NR["close"], result)
        return -errno.EACCES
    return then(rewritten, verify)


def open_how(host, flags, mode):
    """(flags, mode, resolve) of the openat2 that opens host for the
    guest's open flags and mode."""
    if flags & O_PATH:
        # open/openat ignore the other flags with O_PATH; openat2 refuses them
        flags &= O_PATH_FLAGS
    else:
        flags = (flags & OPEN_FLAGS) | O_LARGEFILE
    if not flags & (O_CREAT | 0o20000000):
        mode = 0
    resolve = 0 if host.startswith("/proc/") else RESOLVE_NO_SYMLINKS
    return flags, mode & 0o7777, resolve


def open_how_args(call, host, flags, mode):
    """openat2's arguments, its open_how packed for scratch memory."""
    how = bytearray(b"".join(v.to_bytes(8, "little") for v in open_how(host, flags, mode)))
    return (AT_FDCWD, host, how, 24)


def open_rewrite(call, host, flags, mode):
    return rewrite(call, "openat2", *open_how_args(call, host, flags, mode))


def open_object(call, task, host, flags, mode, after=None, holding=None):
    """Open the host object the VFS chose for the caller.  A notified call
    (notify.py): the guest kernel opens it, as the calling thread's host
    identity and never following a symlink, and hands over the fd.  A
    ptrace stop: the call becomes openat2 of the host path, from scratch
    memory.  after(call, result) runs once the open is made; holding: an
    fd of ours that host names, closed then."""
    if not call.notified:
        rewritten = open_rewrite(call, host, flags, mode)
        return then(rewritten, after) if after is not None else rewritten
    flags, mode, resolve = open_how(host, flags, mode)
    cloexec = bool(flags & O_CLOEXEC)
    flags |= O_CLOEXEC          # our copy; the caller's flag is given with it

    def opened(open_fn):
        try:
            fd = open_fn()
        finally:
            if holding is not None:
                os.close(holding)
        if after is not None:
            after(call, fd)
        return Install(fd, cloexec)
    if host == "/dev/tty":
        return opened(lambda: hostopen.open_controlling_tty(task.tid, flags))
    if holding is None and hostopen.names_umlpy_itself(host):
        # our worker threads pass procfs's "same process" checks for
        # umlpy's own /proc entries (its fds, its memory): never for a guest
        raise OSError(errno.EACCES, host)
    opener = call.kernel.opener
    if holding is None and opener is not None and (host == "/proc" or host.startswith("/proc/")):
        # what procfs shows depends on who opens: the guest's opener opens
        # it, in the guest's namespaces (its /proc) and as the guest
        return opened(lambda: opener.open(host, flags, mode))
    try:
        fd = task.as_host(hostopen.open_unblocked, host, flags, mode, resolve)
    except OSError:
        if holding is not None:
            os.close(holding)
        raise
    if fd is None:      # a FIFO: its open waits for the other end
        return Deferred(lambda: opened(lambda: task.as_host_apart(
            hostopen.open_waiting, host, flags, mode, resolve)))
    return opened(lambda: fd)


def create_open(call, task, res, flags, mode):
    """A notified open that creates res's missing name: made by the guest
    kernel as the caller's host identity, with the caller's umask; a
    whiteout the name replaces comes back if that fails."""
    parent, fs, host, removed = prepare_create(task, res)
    try:
        return open_object(call, task, host, flags, mode & 0o7777 & ~task.host_identity.umask)
    except OSError:
        if removed:
            fs.restore_whiteout(parent, res.name)
        raise


def prepare_create(task, res):
    """Check that res's missing name may be created and make room for it:
    (parent dentry, its filesystem, host path, whether a whiteout of the
    name was removed)."""
    writable_mount(res)
    parent = res.parent.dentry
    fs = parent.fs
    if isinstance(fs, UnionFS):
        err = 0 if checks_on_host(parent) and parent.flags & IN_UPPER else \
            task.creds.permission(parent.attr, W_OK | X_OK)
        if err:
            raise OSError(err, res.path)
        host, removed = fs.create_target(parent, res.name, res.parent_dentries()[:-1])
    else:
        host, removed = fs.create_target(parent, res.name), False
    return parent, fs, host, removed


def create_then(call, vfs, task, res, nr_name, make_args, is_dir=False):
    """Create res's missing name: the guest's own process makes it on the
    host (an open with O_CREAT: the fd must end up in its table); a
    whiteout the name replaces comes back if that fails."""
    parent, fs, host, removed = prepare_create(task, res)
    rewritten = rewrite(call, nr_name, *make_args(host))
    if not removed:
        return rewritten

    def settle(call, result):
        if result < 0:
            fs.restore_whiteout(parent, res.name)
        elif is_dir:
            fs.make_opaque(parent.child_rel(res.name))
        return None
    return then(rewritten, settle)


def create_here(call, vfs, task, res, make, is_dir=False):
    """Create res's missing name: the guest kernel makes it, as the calling
    thread's host identity (make(dirfd, name)); a whiteout the name
    replaces comes back if that fails."""
    parent, fs, _host, removed = prepare_create(task, res)
    rel = parent.child_rel(res.name)
    try:
        on_host_at(task, fs, rel, make)
    except OSError:
        if removed:
            fs.restore_whiteout(parent, res.name)
        raise
    if removed and is_dir:
        fs.make_opaque(rel)
    return done()


def legacy_open_flags(flags):
    """open/openat: O_PATH beats everything else (Linux's build_open_how
    keeps only O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC beside it), before
    O_CREAT|O_EXCL or a directory's EISDIR is considered; openat2 refuses
    the other flags instead."""
    return flags & O_PATH_FLAGS if flags & O_PATH else flags


@TABLE.emulated(FAMILY, "open", "resolved by the guest VFS; opens the chosen host object")
@vfs_call
def sys_open(call, vfs, task):
    a = call.args
    return open_file(call, vfs, task, AT_FDCWD, path_arg(call, 0), legacy_open_flags(s32(a[1])),
                     a[2])


@TABLE.emulated(FAMILY, "openat", "resolved by the guest VFS; opens the chosen host object")
@vfs_call
def sys_openat(call, vfs, task):
    a = call.args
    return open_file(call, vfs, task, s32(a[0]), path_arg(call, 1),
                     legacy_open_flags(s32(a[2])), a[3])


@TABLE.emulated(FAMILY, "creat", "open(path, O_CREAT|O_WRONLY|O_TRUNC)")
@vfs_call
def sys_creat(call, vfs, task):
    return open_file(call, vfs, task, AT_FDCWD, path_arg(call, 0),
                     O_CREAT | os.O_WRONLY | O_TRUNC, call.args[1])


RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_XDEV = 0x08, 0x10, 0x01
RESOLVE_NO_MAGICLINKS, RESOLVE_CACHED = 0x02, 0x20


@TABLE.emulated(FAMILY, "openat2", "resolved by the guest VFS (RESOLVE_* honoured "
                "by the resolver)")
@vfs_call
def sys_openat2(call, vfs, task):
    a = call.args
    size = a[3]
    if size < 24:
        return fail(errno.EINVAL)
    raw = call.read(a[2], 24)
    flags = int.from_bytes(raw[:8], "little")
    mode = int.from_bytes(raw[8:16], "little")
    resolve = int.from_bytes(raw[16:24], "little")
    if flags & ~(OPEN_FLAGS | O_LARGEFILE) or resolve & ~0x3F or mode & ~0o7777 \
            or (mode and not flags & (O_CREAT | 0o20000000)):
        return fail(errno.EINVAL)
    if resolve & RESOLVE_CACHED:
        return fail(errno.EAGAIN)
    path = path_arg(call, 1)
    dirfd = s32(a[0])
    if resolve & (RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS) and not resolve & RESOLVE_IN_ROOT:
        err = crossing(vfs, task, dirfd, path, flags, resolve)
        if err:
            return fail(err)
    if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT):
        return beneath_open(call, vfs, task, dirfd, path, flags, mode, resolve)
    if resolve & RESOLVE_NO_SYMLINKS and symlink_on_way(vfs, task, dirfd, path, flags):
        return fail(errno.ELOOP)
    return open_file(call, vfs, task, dirfd, path, flags, mode)


def crossing(vfs, task, dirfd, path, flags, resolve):
    """EXDEV if resolving path leaves the filesystem it starts in (a
    mountpoint, a bind, a symlink into another mount) under
    RESOLVE_NO_XDEV; ELOOP if it follows a magic link under
    RESOLVE_NO_MAGICLINKS; else 0."""
    watch = WalkWatch()
    res = vfs.resolve(task, dirfd, path, follow=not flags & O_NOFOLLOW, watch=watch)
    if resolve & RESOLVE_NO_MAGICLINKS and watch.magic:
        return errno.ELOOP
    filesystems = watch.filesystems | ({res.dentry.fs} if res.dentry is not None else set())
    if resolve & RESOLVE_NO_XDEV and len(filesystems) > 1:
        return errno.EXDEV
    return 0


def symlink_on_way(vfs, task, dirfd, path, flags):
    """Would resolving path follow any symlink?"""
    res = vfs.resolve(task, dirfd, path, follow=False)
    walked = vfs.resolve(task, dirfd, path, follow=not flags & O_NOFOLLOW)
    return res.path != walked.path or (res.dentry is not None and res.dentry.attr.is_link()
                                       and not flags & O_NOFOLLOW)


def beneath_open(call, vfs, task, dirfd, path, flags, mode, resolve):
    """RESOLVE_BENEATH / RESOLVE_IN_ROOT: dirfd's directory is the root."""
    base = vfs.start_frames(task, vfs.root_frames(task), dirfd)
    start_path = base[-1].path
    saved = task.ctx.root
    if resolve & RESOLVE_IN_ROOT:
        task.ctx.root = start_path
        try:
            res = vfs.resolve(task, dirfd, path.lstrip("/") or ".", True)
        finally:
            task.ctx.root = saved
        if res.dentry is None and not flags & O_CREAT:
            return fail(errno.ENOENT)
        return open_file(call, vfs, task, AT_FDCWD, res.path, flags, mode)
    if path.startswith("/"):
        return fail(errno.EXDEV)
    res = vfs.resolve(task, dirfd, path, follow=not flags & O_NOFOLLOW)
    prefix = start_path.rstrip("/") + "/"
    if res.path != start_path and not res.path.startswith(prefix) and start_path != "/":
        return fail(errno.EXDEV)
    return open_file(call, vfs, task, dirfd, path, flags, mode)


# ---- looking ------------------------------------------------------------

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
    flags = s32(a[3])
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800):
        return fail(errno.EINVAL)
    if a[1] and not flags & AT_EMPTY_PATH:
        return answer_stat(call, vfs, task, s32(a[0]), path_arg(call, 1),
                           not flags & AT_SYMLINK_NOFOLLOW, a[2])
    res = lookup_at(call, vfs, task, s32(a[0]), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    fstat = s32(a[0]) != AT_FDCWD and not (a[1] and call.read_str(a[1], 1))
    if res is None:
        if fstat:
            call.kernel.fastpath.remember_fstat(task, s32(a[0]), None)
        if call.notified:
            return stat_of_copy(call, task, s32(a[0]), a[2])
        return on_fd_itself(call, 1)
    data = present(call, res.dentry.attr).pack_stat()
    call.write(a[2], data)
    if fstat:
        call.kernel.fastpath.remember_fstat(task, s32(a[0]), res, data)
    return Return(0)


STATX_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800 | 0x6000


@TABLE.emulated(FAMILY, "statx", "answered from the guest VFS (replayed from the native "
                "path cache)")
@vfs_call
def sys_statx(call, vfs, task):
    a = call.args
    flags = s32(a[2])
    if flags & ~STATX_FLAGS or flags & 0x6000 == 0x6000 or a[3] & 0x80000000:
        return fail(errno.EINVAL)
    if a[1] and not flags & AT_EMPTY_PATH:
        path, follow = path_arg(call, 1), not flags & AT_SYMLINK_NOFOLLOW
        res = look(call, vfs, task, s32(a[0]), path, follow, STATX)
        data = present(call, res.dentry.attr).pack_statx(res.mount.id)
        call.write(a[4], data)
        call.kernel.fastpath.remember(task, res, STATX, follow, s32(a[0]), path, data)
        return Return(0)
    res = lookup_at(call, vfs, task, s32(a[0]), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    of_fd = s32(a[0]) != AT_FDCWD and not (a[1] and call.read_str(a[1], 1))
    if res is None:
        if of_fd:
            call.kernel.fastpath.remember_fstat(task, s32(a[0]), None, kind=STATX)
        return on_fd_itself(call, 1)
    data = present(call, res.dentry.attr).pack_statx(res.mount.id)
    call.write(a[4], data)
    if of_fd:
        call.kernel.fastpath.remember_fstat(task, s32(a[0]), res, data, kind=STATX)
    return Return(0)


@TABLE.emulated(FAMILY, "access", "answered by the guest VFS")
@vfs_call
def sys_access(call, vfs, task):
    return access(call, vfs, task, AT_FDCWD, path_arg(call, 0), call.args[1] & 0xFFFFFFFF, 0)


@TABLE.emulated(FAMILY, "faccessat", "answered by the guest VFS")
@vfs_call
def sys_faccessat(call, vfs, task):
    a = call.args
    return access(call, vfs, task, s32(a[0]), path_arg(call, 1), a[2] & 0xFFFFFFFF, 0)


@TABLE.emulated(FAMILY, "faccessat2", "answered by the guest VFS")
@vfs_call
def sys_faccessat2(call, vfs, task):
    a = call.args
    flags = s32(a[3])
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    return access(call, vfs, task, s32(a[0]), path_arg(call, 1) if a[1] else "",
                  a[2] & 0xFFFFFFFF, flags)


def access(call, vfs, task, dirfd, path, mode, flags):
    if mode & ~7:
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
    if checks_on_host(d):
        on_host(task, d, hostops.access_nofollow, mode, bool(flags & AT_EACCESS), write=False)
        return done()
    err = task.creds.permission(d.attr, mode)
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
    return do_readlink(call, vfs, task, AT_FDCWD, path_arg(call, 0), a[1], s32(a[2]))


@TABLE.emulated(FAMILY, "readlinkat", "answered from the guest VFS")
@vfs_call
def sys_readlinkat(call, vfs, task):
    a = call.args
    path = path_arg(call, 1) if a[1] else ""
    if path == "":
        res = vfs.resolve_fd(task, s32(a[0]))
        if res is None or not res.dentry.attr.is_link():
            return fail(errno.ENOENT)      # Linux: an empty path names no link
        target = os.fsencode(res.dentry.fs.readlink(res.dentry))[:s32(a[3])]
        call.write(a[2], target)
        return Return(len(target))
    return do_readlink(call, vfs, task, s32(a[0]), path, a[2], s32(a[3]))


# ---- changing the tree --------------------------------------------------

def make_node(call, vfs, task, dirfd, path, make, is_dir=False):
    res = vfs.resolve(task, dirfd, path, follow=False)
    if res.dentry is not None:
        return fail(errno.EEXIST)
    if res.dir_required and not is_dir:
        return fail(errno.ENOENT)
    return create_here(call, vfs, task, res, make, is_dir)


def mkdir(call, vfs, task, dirfd, path, mode):
    mode = mode & 0o7777 & ~task.host_identity.umask
    return make_node(call, vfs, task, dirfd, path,
                     lambda fd, name: os.mkdir(name, mode, dir_fd=fd), True)


@TABLE.emulated(FAMILY, "mkdir", "made in the upper layer (or a writable mount) by the "
                "guest kernel")
@vfs_call
def sys_mkdir(call, vfs, task):
    return mkdir(call, vfs, task, AT_FDCWD, path_arg(call, 0), call.args[1])


@TABLE.emulated(FAMILY, "mkdirat", "made in the upper layer (or a writable mount) by the "
                "guest kernel")
@vfs_call
def sys_mkdirat(call, vfs, task):
    a = call.args
    return mkdir(call, vfs, task, s32(a[0]), path_arg(call, 1), a[2])


def mknod(call, vfs, task, dirfd, path, mode, dev):
    mode &= 0xFFFFFFFF
    kind = _stat.S_IFMT(mode)
    if kind not in (0, _stat.S_IFREG, _stat.S_IFIFO, _stat.S_IFSOCK, _stat.S_IFCHR,
                    _stat.S_IFBLK):
        return fail(errno.EINVAL)
    mode = (kind or _stat.S_IFREG) | (mode & 0o7777 & ~task.host_identity.umask)
    dev &= 0xFFFFFFFF
    return make_node(call, vfs, task, dirfd, path,
                     lambda fd, name: os.mknod(name, mode, dev, dir_fd=fd))


@TABLE.emulated(FAMILY, "mknod", "fifos, sockets and files in the upper layer")
@vfs_call
def sys_mknod(call, vfs, task):
    a = call.args
    return mknod(call, vfs, task, AT_FDCWD, path_arg(call, 0), a[1], a[2])


@TABLE.emulated(FAMILY, "mknodat", "fifos, sockets and files in the upper layer")
@vfs_call
def sys_mknodat(call, vfs, task):
    a = call.args
    return mknod(call, vfs, task, s32(a[0]), path_arg(call, 1), a[2], a[3])


def symlink(call, vfs, task, target_index, dirfd, path):
    target = call.read_str(call.args[target_index], 4096)
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
    a = call.args
    return symlink(call, vfs, task, 0, s32(a[1]), path_arg(call, 2))


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
    return create_here(call, vfs, task, new, make)


def may_link(task, res):
    """Linux's may_linkat (fs.protected_hardlinks): the owner, or a regular
    file the caller may read and write that is neither setuid nor
    setgid-executable."""
    a = res.dentry.attr
    if task.creds.owns(a):
        return
    if not a.is_reg() or a.mode & 0o4000 or a.mode & 0o2010 == 0o2010 or \
            task.creds.permission(a, R_OK | W_OK):
        raise OSError(errno.EPERM, "may not link")


@TABLE.emulated(FAMILY, "link", "hard links within the upper layer (the source copied up)")
@vfs_call
def sys_link(call, vfs, task):
    return link(call, vfs, task, AT_FDCWD, 0, AT_FDCWD, path_arg(call, 1), 0)


@TABLE.emulated(FAMILY, "linkat", "hard links within the upper layer (the source copied up)")
@vfs_call
def sys_linkat(call, vfs, task):
    a = call.args
    return link(call, vfs, task, s32(a[0]), 1, s32(a[2]), path_arg(call, 3), s32(a[4]))


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
    if not isinstance(fs, UnionFS) or (not d.flags & IN_LOWER and not is_dir):
        on_host(task, d, unlink_dir if is_dir else unlink_file)
    else:
        err = task.creds.may_delete(res.parent.dentry.attr, d.attr)
        if err:
            return fail(err)
        if is_dir and fs.listdir(d):
            return fail(errno.ENOTEMPTY)
        fs.remove(res.parent.dentry, d, res.parent_dentries()[:-1], is_dir)
    if is_dir:
        vfs.removed(res.path)
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
    a = call.args
    flags = s32(a[2])
    if flags & ~AT_REMOVEDIR:
        return fail(errno.EINVAL)
    return remove(call, vfs, task, s32(a[0]), path_arg(call, 1), bool(flags & AT_REMOVEDIR))


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
    fs = od.fs
    if not isinstance(fs, UnionFS):
        fs.create_target(new.parent.dentry, new.name)     # writable at all?
        new_rel = new.parent.dentry.child_rel(new.name)

        def move(fd, name):
            with fs.host_dir(new_rel) as n:
                hostops.renameat2(fd, name, n.fd, n.name, flags)
        on_host(task, od, move)
        vfs.moved(old.path, new.path, exchange=bool(flags & RENAME_EXCHANGE),
                  replaced=replaces_dir)
        return done()
    creds = task.creds
    err = creds.may_delete(old.parent.dentry.attr, od.attr)
    if not err and nd is not None:
        err = creds.may_delete(new.parent.dentry.attr, nd.attr)
    elif not err:
        err = creds.permission(new.parent.dentry.attr, W_OK | X_OK)
    if err:
        return fail(err)
    fs.rename(old.parent.dentry, od, new.parent.dentry, new.name, nd,
              old.parent_dentries()[:-1], new.parent_dentries()[:-1], flags & ~RENAME_WHITEOUT)
    if flags & RENAME_WHITEOUT:
        host = fs.upper_host(od)
        os.mknod(host, _stat.S_IFCHR | 0o600, 0)
    vfs.moved(old.path, new.path, exchange=bool(flags & RENAME_EXCHANGE),
              replaced=replaces_dir)
    return Return(0)


@TABLE.emulated(FAMILY, "rename", "in the upper layer; lower objects are copied up")
@vfs_call
def sys_rename(call, vfs, task):
    return rename(call, vfs, task, AT_FDCWD, path_arg(call, 0), AT_FDCWD, path_arg(call, 1), 0)


@TABLE.emulated(FAMILY, "renameat", "in the upper layer; lower objects are copied up")
@vfs_call
def sys_renameat(call, vfs, task):
    a = call.args
    return rename(call, vfs, task, s32(a[0]), path_arg(call, 1), s32(a[2]),
                  path_arg(call, 3), 0)


@TABLE.emulated(FAMILY, "renameat2", "in the upper layer (NOREPLACE, EXCHANGE; WHITEOUT "
                "needs host CAP_MKNOD)")
@vfs_call
def sys_renameat2(call, vfs, task):
    a = call.args
    return rename(call, vfs, task, s32(a[0]), path_arg(call, 1), s32(a[2]),
                  path_arg(call, 3), a[4] & 0xFFFFFFFF)


# ---- changing attributes -----------------------------------------------

def owner_check(task, res):
    d = res.dentry
    if not checks_on_host(d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
        if not task.creds.owns(d.attr):
            raise OSError(errno.EPERM, "not the owner")


def chmod(call, vfs, task, res, mode):
    if res is None:
        return on_fd_itself(call, 1)
    owner_check(task, res)
    copy_up_for_change(task, res)
    result = host_result(lambda: on_host(task, res.dentry, hostops.fchmod_nofollow, mode))
    fake = getattr(call.kernel, "fake_ownership", None)
    if fake is not None:
        faked = fake.chmod_result(res.dentry.attr, mode, result)
        result = result if faked is None else faked
    return Return(result)


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
                 call.args[1] & 0o7777)


@TABLE.emulated(FAMILY, "fchmodat", "on the upper copy of the object")
@vfs_call
def sys_fchmodat(call, vfs, task):
    a = call.args
    return chmod(call, vfs, task, lookup_existing(vfs, task, s32(a[0]), path_arg(call, 1), True),
                 a[2] & 0o7777)


@TABLE.emulated(FAMILY, "fchmodat2", "on the upper copy of the object")
@vfs_call
def sys_fchmodat2(call, vfs, task):
    a = call.args
    flags = s32(a[3])
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    res = lookup_at(call, vfs, task, s32(a[0]), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    if res is not None and res.dentry.attr.is_link():
        return fail(errno.EOPNOTSUPP)
    return chmod(call, vfs, task, res, a[2] & 0o7777)


def chown(call, vfs, task, res, uid, gid):
    if res is None:
        return on_fd_itself(call, 1)
    fake = getattr(call.kernel, "fake_ownership", None)
    guest_uid, guest_gid = id_arg(uid), id_arg(gid)
    attr = res.dentry.attr
    if fake is None and not task.creds.owns(attr) and \
            not task.creds.capable_wrt(CAP_CHOWN, attr):
        return fail(errno.EPERM)
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
    if fake is not None:
        faked = fake.chown_result(attr, guest_uid, guest_gid, result)
        result = result if faked is None else faked
    return Return(result)


def id_arg(value):
    """A uid_t/gid_t argument: its low 32 bits, with (uid_t)-1 meaning -1."""
    value &= 0xFFFFFFFF
    return -1 if value == 0xFFFFFFFF else value


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
    flags = s32(a[4])
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    res = lookup_at(call, vfs, task, s32(a[0]), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
    return chown(call, vfs, task, res, a[2], a[3])


@TABLE.emulated(FAMILY, "utimensat", "on the upper copy of the object")
@vfs_call
def sys_utimensat(call, vfs, task):
    a = call.args
    flags = s32(a[3])
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return fail(errno.EINVAL)
    if a[1] == 0:
        res = vfs.resolve_fd(task, s32(a[0])) if s32(a[0]) != AT_FDCWD else None
        if res is None:
                return ALLOW
    else:
        res = lookup_at(call, vfs, task, s32(a[0]), 1, flags, not flags & AT_SYMLINK_NOFOLLOW)
        if res is None:
            return on_fd_itself(call, 1)
    times = call.read(a[2], 32) if a[2] else None
    return set_times(task, res, times)


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def set_times(task, res, times):
    """utimensat's rules: setting both times to now needs ownership or
    write permission, any other change ownership; checked before a lower
    object is copied up."""
    d = res.dentry
    if times is not None:
        nsecs = [int.from_bytes(times[i:i + 8], "little", signed=True) for i in (8, 24)]
        if any(n not in (UTIME_NOW, UTIME_OMIT) and not 0 <= n < 10**9 for n in nsecs):
            return fail(errno.EINVAL)
        if all(n == UTIME_OMIT for n in nsecs):
            return done()
    if not checks_on_host(d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
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
        raw = call.read(addr, 16)
        secs = [raw[0:8], raw[8:16]]
        nsecs = [0, 0]
    else:                           # struct timeval[2]
        raw = call.read(addr, 32)
        secs = [raw[0:8], raw[16:24]]
        usecs = [int.from_bytes(raw[i:i + 8], "little", signed=True) for i in (8, 24)]
        if any(not 0 <= u < 10**6 for u in usecs):
            return fail(errno.EINVAL)
        nsecs = [u * 1000 for u in usecs]
    times = b"".join(s + n.to_bytes(8, "little") for s, n in zip(secs, nsecs))
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
    return old_utime(call, vfs, task, s32(a[0]), path_arg(call, 1), "futimesat", a[2])


@TABLE.emulated(FAMILY, "truncate", "on the upper copy of the file")
@vfs_call
def sys_truncate(call, vfs, task):
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True)
    if res.dentry.attr.is_dir():
        return fail(errno.EISDIR)
    if not checks_on_host(res.dentry) or not res.dentry.flags & IN_UPPER:
        err = task.creds.permission(res.dentry.attr, W_OK)
        if err:
            return fail(err)
    length = call.args[1]
    length = length - (1 << 64) if length & (1 << 63) else length
    if length < 0:
        return fail(errno.EINVAL)
    copy_up_for_change(task, res)
    on_host(task, res.dentry, hostops.truncate_regular, length)
    return done()


@TABLE.emulated(FAMILY, "statfs", "the filesystem holding the object's host copy")
@vfs_call
def sys_statfs(call, vfs, task):
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 0), True)
    host = res.dentry.fs.statfs_path(res.dentry)
    fd = hostops.openat2(AT_FDCWD, host, hostops.O_PATH, 0, RESOLVE_NO_SYMLINKS)
    try:
        data = hostops.fstatfs_bytes(fd)
    finally:
        os.close(fd)
    call.write(call.args[1], data)
    return done()


# ---- extended attributes -----------------------------------------------

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


XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536


def xattr_name(call, addr):
    name = call.read_str(addr, XATTR_NAME_MAX + 1)
    if not name or len(name) > XATTR_NAME_MAX:
        raise OSError(errno.ERANGE, "xattr name")
    return os.fsdecode(name)


def sized_result(call, value, buf, size):
    """getxattr's convention: size 0 asks for the length; too small a
    buffer is ERANGE."""
    size &= 0xFFFFFFFFFFFFFFFF
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
    return change_xattr(call, task, res, a[1], a[2], a[3], s32(a[4]))


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
    a = call.args
    mask = a[2] & 0xFFFFFFFF
    res = lookup_existing(vfs, task, AT_FDCWD, path_arg(call, 1), not mask & IN_DONT_FOLLOW)
    d = res.dentry
    if isinstance(d.fs, UnionFS) and d.attr.is_dir() and not res.mount.read_only:
        may_copy_up(task, res)
        d.fs.copy_up(d, res.parent_dentries())
    from ..vfs.hostops import thread_fd
    inotify_fd = thread_fd(call.tid, task.tgid, s32(a[0]))
    try:
        wd = on_host(task, d, hostops.in_dir, hostops.inotify_add_watch, inotify_fd,
                     mask | IN_DONT_FOLLOW, write=False)
    finally:
        os.close(inotify_fd)
    return Return(wd)


TABLE.passthrough(
    FAMILY,
    "umask", "sync", "ustat", "sysfs",
    "inotify_init", "inotify_init1", "inotify_rm_watch",
    why="no path of the guest's reaches the host",
)
TABLE.unsupported(
    FAMILY, "names paths relative to a dirfd with flags in memory the VFS does not read yet",
    "setxattrat", "getxattrat", "listxattrat", "removexattrat",
)
TABLE.denied(FAMILY, errno.EOPNOTSUPP, "file handles name host inodes, not guest paths",
             "name_to_handle_at")
TABLE.denied(FAMILY, errno.EPERM, "watches host filesystems", "fanotify_init", "fanotify_mark")
TABLE.denied(
    FAMILY, errno.EPERM,
    "would change the host's mount table; the guest's own mounts are made with --bind "
    "and --tmpfs",
    "mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "open_tree", "open_tree_attr", "mount_setattr",
    "statmount", "listmount",
)
TABLE.denied(FAMILY, errno.EPERM, "opens any host inode by handle, bypassing paths",
             "open_by_handle_at")
TABLE.denied(FAMILY, errno.EPERM, "host administration", "quotactl", "quotactl_fd",
             "swapon", "swapoff", "acct")
