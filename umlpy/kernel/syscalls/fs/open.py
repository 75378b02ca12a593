"""open, openat, openat2 and creat (Linux's fs/open.c): the guest kernel
resolves the path, checks, and opens the host object itself (or, at a
ptrace stop, rewrites the call to openat2 of the host path in sealed
scratch memory)."""
import errno
import os
import stat as _stat

from ....abi.fcntl import AT_FDCWD, F_SETFD, OPEN_HOW, O_ACCMODE, O_CLOEXEC, O_CREAT, \
    O_DIRECTORY, O_EXCL, O_LARGEFILE, O_NOFOLLOW, O_PATH, O_PATH_FLAGS, O_TMPFILE, O_TMPFILE_BIT, \
    O_NONBLOCK, O_TRUNC, R_OK, RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT, \
    RESOLVE_NO_SYMLINKS, VALID_OPEN_FLAGS, VALID_RESOLVE_FLAGS, W_OK, X_OK
from ....abi.mman import PAGE_SIZE
from ....abi.stat import S_IALLUGO, S_IROTH
from ... import procfs
from ...decisions import Deferred, Install, fail
from ...vfs import hostopen, hostops
from ...vfs.mqueuefs import MQ_OPEN_FLAGS, MqueueFS, ns_of
from ...vfs.union import IN_UPPER, UnionFS
from ..names import SYSCALL_NUMBERS as NR
from ..registry import TABLE
from .common import FAMILY, checks_on_host, copy_up, copy_up_for_change, done, host_checks, \
    lookup_existing, on_host_at, overriding_modes, own_storage_of, path_arg, rewrite, then, \
    vfs_call, writable_mount


def open_file(call, vfs, task, dirfd, path, flags, mode, resolve=0):
    """open/openat/openat2 of path relative to dirfd; resolve: openat2's
    RESOLVE_* bits, applied by the resolver as Linux's namei does."""
    if flags & O_TMPFILE == O_TMPFILE:
        res = lookup_existing(vfs, task, dirfd, path, True) if not resolve else \
            vfs.resolve(task, dirfd, path, True, scope=resolve)
        if res.dentry is None:
            raise OSError(errno.ENOENT, path)
        if not res.dentry.attr.is_dir():
            raise OSError(errno.ENOTDIR, path)
        host = copy_up_for_change(task, res)
        return open_object(call, task, host, flags, mode & ~task.host_identity.umask
                           if call.notified else mode)
    follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
    res = vfs.resolve(task, dirfd, path, follow, scope=resolve)
    acc = flags & O_ACCMODE
    writes = not flags & O_PATH and (acc != os.O_RDONLY or flags & O_TRUNC)
    d = res.dentry
    if d is None:
        if not flags & O_CREAT:
            if not resolve:
                call.kernel.fastpath.remember_open(task, res, dirfd, path, flags,
                                                   err=errno.ENOENT)
            raise OSError(errno.ENOENT, path)
        if res.dir_required:
            raise OSError(errno.EISDIR, path)
        if isinstance(res.fs, MqueueFS):
            return queue_open(call, task, res, flags, mode)
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
    if isinstance(d.fs, MqueueFS) and d.rel:
        return queue_open(call, task, res, flags, mode)
    if writes and attr.kind in (_stat.S_IFCHR, _stat.S_IFBLK, _stat.S_IFIFO, _stat.S_IFSOCK):
        host = d.fs.host_path(d)        # a device is written, not its directory entry
    elif writes:
        writable_mount(res)
        if not host_checks(task, d) or (isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER):
            err = task.creds.permission(attr, W_OK | (R_OK if acc == os.O_RDWR else 0))
            if err:
                raise OSError(err, path)
        if isinstance(d.fs, UnionFS):
            host = copy_up(task, res)
        else:
            host = d.fs.host_path(d)
    else:
        if not host_checks(task, d) and not flags & O_PATH:
            err = task.creds.permission(attr, R_OK)
            if err:
                raise OSError(err, path)
        host = d.fs.host_path(d)
        if vfs.is_spooled(host):
            return open_object(call, task, host, flags, mode, after=forget_produced(host))
        if (checks_on_host(d) or attr.mode & S_IROTH) and not resolve and \
                attr.kind in (_stat.S_IFREG, _stat.S_IFDIR):
            # the same for every caller
            call.kernel.fastpath.remember_open(task, res, dirfd, path, flags, host)
    return open_object(call, task, host, flags, mode)


def checks_all(task):
    """Whether the guest kernel checks the caller's access to every object
    itself: a thread whose ids it emulates (fakeids.py), since the host
    sees only its one user, who owns them all."""
    return task.vfs.fake_ids is not None


def record_owner(task, parent, fs, name):
    """A thread whose ids the guest kernel emulates made name in parent:
    stat shows it as its fsuid's and fsgid's (fakeids.py)."""
    fake = task.vfs.fake_ids
    if fake is None:
        return
    try:
        d = fs.lookup(parent, name)
    except OSError:
        return
    if d is not None:
        fake.record_created(d.attr, task.tid, parent.attr)


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
    procfs = vfs.procfs
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
    roots = vfs.own_storage
    return any(host.startswith(r.rstrip("/") + "/") for r in roots)


def fd_table_private(vfs, task):
    if procfs.status_fields(task.tgid).get("Threads", "1") != "1":
        return False
    return not any(hostops.same_fd_table(task.tgid, other)
                   for other in set(vfs.tgids.values()) if other != task.tgid)


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
        flags = (flags & VALID_OPEN_FLAGS) | O_LARGEFILE
    if not flags & (O_CREAT | O_TMPFILE_BIT):
        mode = 0
    resolve = 0 if host.startswith("/proc/") else RESOLVE_NO_SYMLINKS
    return flags, mode & S_IALLUGO, resolve


def open_how_args(call, host, flags, mode):
    """openat2's arguments, its open_how packed for scratch memory."""
    how = bytearray(OPEN_HOW.pack(*open_how(host, flags, mode)))
    return (AT_FDCWD, host, how, OPEN_HOW.size)


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
        fd = open_own(task, host, lambda: task.as_host(
            hostopen.open_unblocked, host, flags, mode, resolve,
            own=task.vfs.owns_host_path(host)))
    except OSError:
        if holding is not None:
            os.close(holding)
        raise
    if fd is None:      # a FIFO: its open waits for the other end
        return Deferred(lambda: opened(lambda: task.as_host_apart(
            hostopen.open_waiting, host, flags, mode, resolve,
            own=task.vfs.owns_host_path(host))))
    return opened(lambda: fd)


def queue_open(call, task, res, flags, mode):
    """An open of a POSIX message queue's file in an mqueue mount
    (vfs/mqueuefs.py), which no host path names: the guest kernel opens it
    beneath the mount's root fd, as the caller's host identity, and hands
    it over.  At a ptrace stop, where no fd can be handed over, the call
    becomes mq_open of the name, which opens (or makes) the same queue in
    the caller's IPC namespace: only if that is the mount's, and only for
    flags mq_open has (else EOPNOTSUPP, documented)."""
    fs, d = res.fs, res.dentry
    name = d.rel if d is not None else res.name
    acc = flags & O_ACCMODE
    if not flags & O_PATH and (flags & (O_CREAT | O_TRUNC) or acc != os.O_RDONLY):
        writable_mount(res)
    if d is not None and not flags & O_PATH:
        want = {os.O_RDONLY: R_OK, os.O_WRONLY: W_OK}.get(acc, R_OK | W_OK)
        err = task.creds.permission(d.attr, want)
        if err:
            raise OSError(err, res.path)
    if call.notified:
        how_flags, how_mode, _ = open_how(name, flags, mode)
        fd = task.as_host(fs.open, name, how_flags, how_mode & ~task.host_identity.umask,
                          own=True)
        return Install(fd, bool(flags & O_CLOEXEC))
    if flags & ~MQ_OPEN_FLAGS or ns_of(call.tid) != fs.ns:
        raise OSError(errno.EOPNOTSUPP, "a queue's open at a ptrace stop")
    rewritten = rewrite(call, "mq_open", name, flags & (O_ACCMODE | O_CREAT | O_EXCL | O_NONBLOCK),
                        mode, 0)
    if flags & O_CLOEXEC:
        return rewritten

    def inherited(call, result):
        # mq_open's fd is close-on-exec; open's is not unless asked
        if result >= 0:
            call.inject(NR["fcntl"], result, F_SETFD, 0)
        return None
    return then(rewritten, inherited)


def open_own(task, host, fn):
    """fn(), an open of host; for a file of the sandbox's own the guest
    kernel let the guest open, with its modes overridden if the host
    refuses (overriding_modes): root writes its own 0444 file."""
    if task.vfs.fake_ids is None or not task.vfs.owns_host_path(host):
        return fn()
    root_fd, rel = None, None
    try:
        return fn()
    except PermissionError as e:
        if e.errno != errno.EACCES:
            raise
        root_fd, rel = own_storage_of(task.vfs, host)
        if root_fd is None:
            raise
    try:
        return overriding_modes(task, root_fd, [rel], fn)
    finally:
        os.close(root_fd)


def create_open(call, task, res, flags, mode):
    """A notified open that creates res's missing name: made by the guest
    kernel as the caller's host identity, with the caller's umask; a
    whiteout the name replaces comes back if that fails."""
    parent, fs, host, removed = prepare_create(task, res)
    try:
        made = open_object(call, task, host, flags, mode & S_IALLUGO & ~task.host_identity.umask)
    except OSError:
        if removed:
            fs.restore_whiteout(parent, res.name)
        raise
    record_owner(task, parent, fs, res.name)
    return made


def prepare_create(task, res):
    """Check that res's missing name may be created and make room for it:
    (parent dentry, its filesystem, host path, whether a whiteout of the
    name was removed)."""
    writable_mount(res)
    parent = res.parent.dentry
    fs = parent.fs
    if isinstance(fs, UnionFS):
        err = 0 if host_checks(task, parent) and parent.flags & IN_UPPER else \
            task.creds.permission(parent.attr, W_OK | X_OK)
        if err:
            raise OSError(err, res.path)
        host, removed = overriding_modes(
            task, fs.upper_fd, [parent.rel],
            lambda: fs.create_target(parent, res.name, res.parent_dentries()[:-1]))
    else:
        host, removed = fs.create_target(parent, res.name), False
    return parent, fs, host, removed


def create_then(call, vfs, task, res, nr_name, make_args, is_dir=False):
    """Create res's missing name: the guest's own process makes it on the
    host (an open with O_CREAT: the fd must end up in its table); a
    whiteout the name replaces comes back if that fails."""
    parent, fs, host, removed = prepare_create(task, res)
    rewritten = rewrite(call, nr_name, *make_args(host))
    if not removed and task.vfs.fake_ids is None:
        return rewritten

    def settle(call, result):
        if result < 0:
            if removed:
                fs.restore_whiteout(parent, res.name)
            return None
        if removed and is_dir:
            fs.make_opaque(parent.child_rel(res.name))
        record_owner(task, parent, fs, res.name)
        return None
    return then(rewritten, settle)


def create_here(call, vfs, task, res, make, is_dir=False, new=True):
    """Create res's missing name: the guest kernel makes it, as the calling
    thread's host identity (make(dirfd, name)); a whiteout the name
    replaces comes back if that fails.  new: a new object (not a link)."""
    parent, fs, _host, removed = prepare_create(task, res)
    rel = parent.child_rel(res.name)
    try:
        on_host_at(task, fs, rel, make)
    except OSError:
        if removed:
            fs.restore_whiteout(parent, res.name)
        raise
    if removed and is_dir:
        overriding_modes(task, fs.upper_fd, [rel], lambda: fs.make_opaque(rel))
    if new:
        record_owner(task, parent, fs, res.name)
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
    return open_file(call, vfs, task, AT_FDCWD, path_arg(call, 0),
                     legacy_open_flags(call.int(1)), call.uint(2))


@TABLE.emulated(FAMILY, "openat", "resolved by the guest VFS; opens the chosen host object")
@vfs_call
def sys_openat(call, vfs, task):
    return open_file(call, vfs, task, call.fd(0), path_arg(call, 1),
                     legacy_open_flags(call.int(2)), call.uint(3))


@TABLE.emulated(FAMILY, "creat", "open(path, O_CREAT|O_WRONLY|O_TRUNC)")
@vfs_call
def sys_creat(call, vfs, task):
    return open_file(call, vfs, task, AT_FDCWD, path_arg(call, 0),
                     O_CREAT | os.O_WRONLY | O_TRUNC, call.uint(1))




@TABLE.emulated(FAMILY, "openat2", "resolved by the guest VFS (RESOLVE_* applied by "
                "the resolver as Linux's namei)")
@vfs_call
def sys_openat2(call, vfs, task):
    a = call.args
    size = a[3]
    if size < OPEN_HOW.size:                # OPEN_HOW_SIZE_VER0
        return fail(errno.EINVAL)
    if size > PAGE_SIZE:
        return fail(errno.E2BIG)
    # copy_struct_from_user: a larger struct (a newer libc's) is accepted
    # when the fields this kernel does not know are all zero
    try:
        raw = call.read(a[2], size)
    except OSError:
        return fail(errno.EFAULT)
    if any(raw[OPEN_HOW.size:]):
        return fail(errno.E2BIG)
    flags, mode, resolve = OPEN_HOW.unpack(raw[:OPEN_HOW.size])
    if flags & ~(VALID_OPEN_FLAGS | O_LARGEFILE) or resolve & ~VALID_RESOLVE_FLAGS or \
            mode & ~S_IALLUGO or (mode and not flags & (O_CREAT | O_TMPFILE_BIT)):
        return fail(errno.EINVAL)
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        return fail(errno.EINVAL)
    if resolve & RESOLVE_CACHED:
        return fail(errno.EAGAIN)
    return open_file(call, vfs, task, call.fd(0), path_arg(call, 1), flags, mode, resolve)
