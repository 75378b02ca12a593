"""Paths, files and their metadata (the VFS family): what its sub-families
(open, stat, namei, attr, xattr) share, and the calls it does not serve.

Every path the guest names is resolved by the guest VFS
(``umlpy/kernel/vfs``).  A call then either is answered by the guest kernel
(stat, readlink, getcwd, a deletion that leaves a whiteout...) or runs on
the host object the VFS chose, with the host path written into the
thread's scratch slot: the host never resolves a name the guest wrote."""
import errno
import os

from ....abi import MASK64
from ....abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, R_OK, X_OK
from ....abi.resource import PATH_MAX
from ...decisions import AllowThen, Rewrite, Return, fail
from ...vfs import hostops, ownermodes
from ...vfs.fs import HostTreeFS
from ...vfs.mqueuefs import MqueueFS, is_queue_fd
from ...vfs.union import IN_UPPER, UnionFS
from ..names import SYSCALL_NUMBERS as NR
from ..registry import TABLE

FAMILY = "fs"


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
        raw = call.read_str(call.args[i], PATH_MAX)
    except OSError as e:
        raise OSError(e.errno, "bad path") from None
    return os.fsdecode(raw)


def checks_on_host(d):
    return d.fs.checks_on_host(d)


def host_checks(task, d):
    """Whether the host's check of the caller's host identity decides its
    access to d: an object the host can check, for a guest whose ids are
    the host's.  Where the guest kernel emulates the ids (fakeids.py) the
    host sees one user, who owns every file of the sandbox: the guest
    kernel checks the emulated ids against the ownership it recorded."""
    return checks_on_host(d) and task.vfs.fake_ids is None


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
            out.append(a & MASK64)          # a negative int as the register holds it
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


def host_path_is_ours(vfs, host):
    """Whether a host path (an fd's link text) lies in the sandbox's own
    storage or a writable bind: changing its object changes only what the
    guest was given to change."""
    if host is None or not host.startswith("/"):
        return False
    if host.endswith(" (deleted)"):
        host = host[:-len(" (deleted)")]
    roots = list(vfs.own_storage)
    roots += [m.fs.root_path for m in vfs.mounts
              if isinstance(m.fs, HostTreeFS) and not m.read_only and m is not vfs.mounts.root]
    return any(host == r or host.startswith(r.rstrip("/") + "/") for r in roots)


def foreign_host_file(vfs, tid, fd):
    """Whether fd, which is no guest filesystem object (vfs.resolve_fd gave
    None), is nonetheless a host file: one umlpy's caller handed over
    (stdin, stdout, stderr, --preserve-fds) that no guest path reaches, or
    a host file deleted behind the guest's back.  Not a pipe, a socket, an
    anonymous inode, a memfd ("/memfd:NAME (deleted)") or a file of the
    sandbox's own storage.  Its data is the guest's to read or write as the
    descriptor allows; its metadata (mode, owner, times, xattrs, inode
    flags) is not the sandbox's to change."""
    host = vfs.fd_host_path(tid, fd)
    if host is None or not host.startswith("/") or host.startswith("/memfd:"):
        return False
    if is_queue_fd(vfs, tid, fd, host):
        return False        # a queue of the sandbox's own IPC namespace
    return not host_path_is_ours(vfs, host)


def refuse_foreign(call, vfs, task, fd):
    """fail(EPERM) for a metadata change through a foreign host file (as
    Linux answers a process that does not own it), else None."""
    if foreign_host_file(vfs, task.tid, fd):
        return fail(errno.EPERM)
    return None


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
    fake = call.kernel.fake_ownership
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
        return copy_up(task, res)
    return d.fs.setattr_target(d)


def copy_up(task, res):
    """res's union object copied up (its directories first), into
    directories of the sandbox's own whose modes the guest set
    (overriding_modes)."""
    d = res.dentry
    parent = res.parent.dentry.rel if res.parents else ""
    return overriding_modes(task, d.fs.upper_fd, [parent],
                            lambda: d.fs.copy_up(d, res.parent_dentries()))


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
    own = own_object(d)
    # the queues of an mqueue mount are the sandbox's own IPC namespace's,
    # and a tmpfs of its state (/dev/shm, --tmpfs) is its own storage: its
    # root's capabilities hold over them too (vfs/mqueuefs.py)
    caps = own or isinstance(d.fs, MqueueFS) or \
        (isinstance(d.fs, HostTreeFS) and d.fs.sandbox_own)

    def run():
        with d.fs.object_dir(d, write) as h:
            return task.as_host(op, h.fd, h.name, *args, own=caps)
    return overriding_modes(task, d.fs.upper_fd if own else None, [d.rel], run)


def on_host_at(task, fs, rel, op, *args):
    own = isinstance(fs, UnionFS)

    def run():
        with fs.host_dir(rel) as h:
            return task.as_host(op, h.fd, h.name, *args, own=own)
    return overriding_modes(task, fs.upper_fd if own else None, [rel], run)


def overriding_modes(task, root_fd, rels, fn):
    """fn(); and if the host refused it (EACCES) on the sandbox's own
    storage (root_fd: a directory of it, rels below it; None: not its
    own) for a guest whose ids the guest kernel emulates (fakeids.py),
    fn() once more with the objects at rels and the directories above them
    opened to their host owner for the time of the call, then given their
    modes back (vfs/ownermodes.py).  The guest kernel has decided that
    guest's access itself, by the modes and owners the guest sees
    (common.host_checks); the host checks only its one user, who owns
    every file of the sandbox, against modes that are the guest's to set:
    root writes its own 0444 file or creates in its 0555 directory, as
    Linux's CAP_DAC_OVERRIDE lets it, and uid 1000 writes the 0606 file of
    root's the others' bits give it.  Nothing outside the sandbox's own
    storage is opened."""
    try:
        return fn()
    except PermissionError as e:
        if e.errno != errno.EACCES or root_fd is None or task.vfs.fake_ids is None:
            raise
    return ownermodes.with_owner_access(task, root_fd, rels, fn)


def own_storage_of(vfs, host):
    """(an O_PATH fd of the directory of the sandbox's own storage that
    holds host path, host's path below it), or (None, None)."""
    for root in vfs.own_storage:
        top = root.rstrip("/")
        if host == top or host.startswith(top + "/"):
            fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
            return fd, host[len(top) + 1:]
    return None, None


def own_object(d):
    """Whether d is the sandbox's own file (its upper layer), which a
    guest's root may change by its capabilities (hostid.IdentityExecutor)."""
    return isinstance(d.fs, UnionFS) and bool(d.flags & IN_UPPER)


def done(result=0):
    return Return(result)


TABLE.passthrough(
    FAMILY,
    "umask", "sync", "ustat", "sysfs",
    "inotify_init", "inotify_init1", "inotify_rm_watch",
    why="no path of the guest's reaches the host",
)
TABLE.denied(FAMILY, errno.EOPNOTSUPP, "file handles name host inodes, not guest paths",
             "name_to_handle_at")
TABLE.denied(FAMILY, errno.EPERM, "watches host filesystems", "fanotify_init", "fanotify_mark")
TABLE.denied(
    FAMILY, errno.EPERM,
    "would change the host's mount table; the guest's own mounts are made with mount(2) "
    "(fs/mount.py), --bind and --tmpfs",
    "pivot_root", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "open_tree", "open_tree_attr", "mount_setattr",
    "statmount", "listmount",
)
TABLE.denied(FAMILY, errno.EPERM, "opens any host inode by handle, bypassing paths",
             "open_by_handle_at")
TABLE.denied(FAMILY, errno.EPERM, "host administration", "quotactl", "quotactl_fd",
             "swapon", "swapoff", "acct")
