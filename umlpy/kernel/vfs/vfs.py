"""The guest VFS: the mount table, the resolver, each process's root and
working directory, and the map from host objects (what the guest's fds
really are) back to guest paths."""
import errno
import os
import stat

from ...abi.fcntl import AT_FDCWD, RESOLVE_IN_ROOT, X_OK
from ...abi.stat import S_IXOTH
from .. import procfs
from ..bounded import ByteBoundedCache, text_bytes
from . import deaddir, hostops
from .creds import Creds
from .hostid import HostIdentity, IdentityExecutor
from .namei import SCOPED, Frame, Resolver, join
from .fs import HostTreeFS
from .mqueuefs import is_queue_fd
from .union import IN_UPPER, UnionFS

# The frames of directory paths kept (issue 12: by bytes, as a path's frames
# grow with its depth): an estimate per frame.
FRAMES_BYTES = 16 << 20
_FRAME_BYTES = 200


class RemovedDir(OSError):
    """A dirfd names a directory that was removed (path: where it was;
    fd: the dirfd, of thread tid)."""

    def __init__(self, path, tid, fd):
        super().__init__(errno.ENOENT, "the directory was removed")
        self.path, self.tid, self.fd = path, tid, fd


class FsContext:
    """A process's root and working directory, as canonical guest paths.

    The working directory is the directory itself, not its name: a rename
    of it or of an ancestor moves it (VFS.moved), and once it is removed
    (rmdir, a rename over it) it is gone: getcwd fails and nothing is
    found in it, but ".." still leads to where its parent was, as in
    Linux.  Where the native path cache keeps working directories
    (fastpath.NativeWorkdirs), this is a view of the process's box there:
    C keys cwd-relative calls by it, and a chdir C serves moves it.
    held: once gone, the directory itself (deaddir.HeldDir), whose "."
    still answers stat, or None."""
    __slots__ = ("root", "_cwd", "_gone", "_store", "_box", "_seq", "_held")

    def __init__(self, root="/", cwd="/", store=None, gone=False, held=None):
        self.root = root
        self._cwd, self._gone = cwd, gone
        self._held = held if gone else None
        self._store = store
        self._box = store.new() if store is not None else None
        if self._box is not None:
            self._seq = store.set(self._box, None if gone else cwd)

    def _sync(self):
        store, box = self._store, self._box
        seq = store.seq(box)
        if seq != self._seq:
            path = store.get(box)
            self._seq = seq
            if path is None:
                self._gone = True
            else:
                self._cwd, self._gone, self._held = path, False, None

    @property
    def cwd(self):
        """The working directory's path (its last one, once gone)."""
        if self._box is not None:
            self._sync()
        return self._cwd

    @cwd.setter
    def cwd(self, path):
        self._cwd, self._gone, self._held = path, False, None
        if self._box is not None:
            self._seq = self._store.set(self._box, path)

    @property
    def gone(self):
        if self._box is not None:
            self._sync()
        return self._gone

    @property
    def held(self):
        return self._held if self.gone else None

    def remove(self, held=None):
        """The working directory was removed (held: the directory itself,
        deaddir.HeldDir, or None)."""
        if self._box is not None:
            self._sync()
            self._seq = self._store.set(self._box, None)
        self._gone, self._held = True, held

    def enter_removed(self, path, held):
        """Work in a directory that was removed (fchdir to a dirfd of it):
        it was at guest path path; held, deaddir.HeldDir, is it."""
        self.cwd = path
        self.remove(held)

    def copy(self, store=None):
        return FsContext(self.root, self.cwd, store, self.gone, self.held)

    def attach(self, tid):
        """Thread tid works in this context (C keys its calls by it)."""
        if self._box is not None:
            self._store.attach(tid, self._box)

    def release(self):
        if self._box is not None:
            self._store.free(self._box)
            self._box = None


class Task:
    """The calling thread, as the VFS needs it for one syscall."""
    __slots__ = ("tid", "tgid", "ctx", "_status", "_creds", "_host_identity", "vfs",
                 "fast_ok", "_cwd")

    def __init__(self, vfs, tid, tgid, ctx):
        self.vfs, self.tid, self.tgid, self.ctx = vfs, tid, tgid, ctx
        self._status = None
        self._cwd = None
        self._creds = None
        self._host_identity = None
        # no directory walked so far makes the answer depend on the caller
        # or on changes the guest kernel does not see (fastpath.py)
        self.fast_ok = True

    @property
    def cwd(self):
        """(path, gone) of the working directory, read once per call: what
        a lookup starts from is what its answer is kept under (C may move
        the directory meanwhile)."""
        if self._cwd is None:
            ctx = self.ctx
            self._cwd = (ctx.cwd, ctx.gone)
        return self._cwd

    def status(self):
        """/proc/TID/status, read once per call: both views of the thread's
        identity come from it."""
        if self._status is None:
            self._status = procfs.status_fields(self.tid)
            if not self._status:
                raise ProcessLookupError(self.tid)
        return self._status

    @property
    def host_identity(self):
        """Who the thread is on the host: what its host operations run as."""
        if self._host_identity is None:
            self._host_identity = HostIdentity.from_status(self.status())
        return self._host_identity

    def as_host(self, fn, *args, own=False):
        """fn(*args) performed by the guest kernel as this thread's host
        identity; own: on the sandbox's own files (hostid.IdentityExecutor)."""
        return self.vfs.executor.run(self.host_identity, fn, *args, own=own)

    def as_host_apart(self, fn, *args, own=False):
        """as_host, on a worker of its own: for what may block for long."""
        return self.vfs.executor.run_apart(self.host_identity, fn, *args, own=own)

    @property
    def creds(self):
        if self._creds is None:
            fake = self.vfs.fake_ids     # --root with one id: the emulated ids
            self._creds = Creds.from_status(self.status(), self.vfs.idmap) if fake is None \
                else fake.creds(self.tid, self.status(), self.vfs.idmap)
        return self._creds


class VFS:
    def __init__(self, mounts, idmap, cwd="/"):
        self.mounts = mounts
        self.idmap = idmap
        self.initial = FsContext("/", cwd)
        self.contexts = {}          # tgid -> FsContext
        self.tgids = {}             # host tid -> host tgid
        self.exe = {}               # host tgid -> guest path of its program
        self.current = None         # the Task being served (for /proc/self)
        self.resolver = Resolver(mounts)
        self.spool_dir = None       # where produced files are written
        self.executor = IdentityExecutor()
        self.workdirs = None        # where working directories are kept (FsContext)
        self.procfs = None          # the /proc filesystem, once build.py mounts it
        self.own_storage = ()       # host directories of the sandbox's own storage
        self.fake_ids = None        # fakeids.FakeIds, where the guest kernel emulates the ids
        self.queue_devs = set()     # devices of the mqueue filesystems the guest mounted
        self._attached = {}         # host tid -> the FsContext it was attached to
        # dir path -> frames below the root (see frames_of_path)
        self._frames = ByteBoundedCache(FRAMES_BYTES)
        self._frames_generation = None

    # processes ------------------------------------------------------------

    def owns_host_path(self, host):
        """Whether host (a path the guest kernel chose) is in the sandbox's
        own storage, whose files its root may change by capability."""
        return any(host == root or host.startswith(root.rstrip("/") + "/")
                   for root in self.own_storage)
    def tgid_of(self, tid):
        tgid = self.tgids.get(tid)
        if tgid is None:
            f = procfs.status_fields(tid)
            tgid = int(f.get("Tgid", tid))
            self.tgids[tid] = tgid
        return tgid

    def context(self, tgid):
        ctx = self.contexts.get(tgid)
        if ctx is None:
            # A new process can call before its parent's fork event is
            # seen (the ptrace loop and the notification server run
            # apart): it starts where its parent is.
            ptgid = self._parent_tgid(tgid)
            ctx = self.contexts[tgid] = self._new_context(ptgid, tgid)
        return ctx

    def _new_context(self, ptgid, tgid):
        """A new process's root and working directory: its parent's own
        (shared, as clone(CLONE_FS) shares them) or a copy (fork)."""
        parent = self.contexts.get(ptgid)
        if parent is not None and hostops.same_fs(ptgid, tgid):
            return parent
        return (parent or self.initial).copy(self.workdirs)

    def _all_contexts(self):
        """Every context once (processes sharing one by CLONE_FS list it
        each)."""
        return [*{id(c): c for c in self.contexts.values()}.values(), self.initial]

    def keep_workdirs(self, store):
        """Keep the working directories in store (fastpath.NativeWorkdirs)
        from now on."""
        self.workdirs = store
        for tgid, ctx in list(self.contexts.items()):
            self.contexts[tgid] = ctx.copy(store)
            ctx.release()
        self._attached.clear()

    def _attach(self, tid, ctx):
        if self._attached.get(tid) is not ctx:
            self._attached[tid] = ctx
            ctx.attach(tid)

    @staticmethod
    def _parent_tgid(tgid):
        try:
            return int(procfs.status_fields(tgid).get("PPid", 0))
        except (OSError, ValueError):
            return 0

    def task(self, tid):
        tgid = self.tgid_of(tid)
        ctx = self.context(tgid)
        if self.workdirs is not None:
            self._attach(tid, ctx)
        t = Task(self, tid, tgid, ctx)
        self.current = t
        return t

    def child_created(self, parent_tid, child_tid):
        ptgid = self.tgid_of(parent_tid)
        if child_tid not in self.tgids:
            # A new child cannot have left yet (it starts in a stop of its
            # tracer's), so it is a thread of the parent's exactly when
            # the parent's process lists it: one stat, not a status read.
            threaded = os.path.exists(f"/proc/{ptgid}/task/{child_tid}")
            self.tgids[child_tid] = ptgid if threaded else child_tid
        ctgid = self.tgids[child_tid]
        if ctgid != ptgid and ctgid not in self.contexts:
            self.context(ptgid)
            self.contexts[ctgid] = self._new_context(ptgid, ctgid)
            if ptgid in self.exe:
                self.exe[ctgid] = self.exe[ptgid]
        if self.workdirs is not None:
            self._attach(child_tid, self.context(ctgid))

    def moved(self, old, new, exchange=False, replaced=False, held=None):
        """A directory (or any object) renamed from guest path old to new
        (swapped with it for RENAME_EXCHANGE; replaced: over an empty
        directory, now gone, held as removed() holds it): every working
        directory and root at or below it follows, as a process's cwd is
        the directory itself, not its name."""
        def follow(path):
            for a, b in ((old, new), (new, old)) if exchange else ((old, new),):
                if path == a:
                    return b
                if path.startswith(a.rstrip("/") + "/"):
                    return b.rstrip("/") + path[len(a.rstrip("/")):]
            return path
        if self.workdirs is not None:
            self.workdirs.bump()    # a chdir C looked up before does not land after
        if replaced:
            self.removed(new, held)
        for ctx in self._all_contexts():
            ctx.root = follow(ctx.root)
            if not ctx.gone:
                cwd = ctx.cwd
                moved = follow(cwd)
                if moved != cwd:
                    ctx.cwd = moved

    def removing(self, res):
        """The directory res is about to be removed: if it is a process's
        working directory, a HeldDir of it (its "." stays the directory
        itself, as in Linux), to give removed(); else None."""
        if not any(not ctx.gone and ctx.cwd == res.path for ctx in self._all_contexts()):
            return None
        d = res.dentry
        lower = isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER
        return deaddir.HeldDir.of(d, lower)

    def removed(self, path, held=None):
        """The directory at guest path was removed: the working directory
        of every process in it is gone (held: what removing() took)."""
        if self.workdirs is not None:
            self.workdirs.bump()
        for ctx in self._all_contexts():
            if not ctx.gone and ctx.cwd == path:
                ctx.remove(held)

    def thread_gone(self, tid):
        """tid no longer names a thread of the process it did (it exited,
        or exec made it the leader's)."""
        ctx = self._attached.pop(tid, None)
        if ctx is not None and self.workdirs is not None:
            self.workdirs.attach(tid, -1)

    def exited(self, tid):
        tgid = self.tgids.pop(tid, None)
        self.thread_gone(tid)
        if tgid == tid:
            ctx = self.contexts.pop(tgid, None)
            if ctx is not None and not any(c is ctx for c in self.contexts.values()):
                ctx.release()       # the last process that had it
            self.exe.pop(tgid, None)

    # resolution -------------------------------------------------------------
    def root_frames(self, task):
        return self.resolver.root_frames(task.ctx.root)

    def frames_of_path(self, task, root, path):
        """Frames down to and including the directory at canonical path
        (root: the frames of the guest's real root)."""
        union = self.mounts.root.fs
        generation = getattr(union, "generation", None)
        if generation != self._frames_generation:
            self._frames.clear()
            self._frames_generation = generation
        cached = self._frames.get(path)
        if cached is not None:
            return [root[0]] + cached
        frames = self._frames_of_path(task, root, path)
        if generation is not None and self._cacheable(frames):
            self._frames.put(path, frames[1:], text_bytes(path) + _FRAME_BYTES * len(frames))
        return frames

    def _cacheable(self, frames):
        """Directories only in the lower layer of the root union: nothing
        but the tracer's own changes (which bump the generation) can
        change how they resolve."""
        root_mount = self.mounts.root
        for f in frames:
            if f.dentry.attr.mode & S_IXOTH == 0:
                return False    # searching it depends on who asks
        for f in frames[1:]:
            if f.mount is not root_mount or f.dentry.flags & IN_UPPER:
                return False
        return True

    def _frames_of_path(self, task, root, path):
        res = self.resolver.walk(root, root, path, follow_last=True, magic=self._magic(task),
                                 search=self._search(task))
        if res.dentry is None:
            raise OSError(errno.ENOENT, path)
        if not res.dentry.attr.is_dir():
            raise OSError(errno.ENOTDIR, path)
        if res.path == res.parents[-1].path and res.dentry is res.parents[-1].dentry:
            return list(res.parents)
        return list(res.parents) + [Frame(res.path, res.dentry, res.mount)]

    def start_frames(self, task, root, dirfd):
        # cwd and fd paths are canonical paths from the real root
        if task.ctx.root != "/":
            root = self.resolver.root_frames("/")
        if dirfd == AT_FDCWD:
            cwd, gone = task.cwd
            if gone:
                raise OSError(errno.ENOENT, "the working directory was removed")
            return self.frames_of_path(task, root, cwd)
        path = self.fd_path(task.tid, dirfd)
        if path is None:
            if not self._fd_exists(task.tid, dirfd):
                raise OSError(errno.EBADF, "dirfd")
            if self.removed_dir(task.tid, dirfd):
                raise RemovedDir(self.guest_path_of_removed(task.tid, dirfd), task.tid, dirfd)
            raise OSError(errno.ENOTDIR, "dirfd")
        return self.frames_of_path(task, root, path)

    def resolve(self, task, dirfd, path, follow=True, scope=0):
        """Lookup for path as task's thread names it relative to dirfd.
        scope: openat2's RESOLVE_* bits
        (Resolver.walk); with BENEATH or IN_ROOT, dirfd's directory is the
        root of the walk."""
        if not path:
            # ENOENT before dirfd is looked at (Linux: getname() refuses it)
            raise OSError(errno.ENOENT, "empty path")
        root = self.root_frames(task)
        search, magic = self._search(task), self._magic(task)
        if scope:
            # an absolute path starts at the root, whatever dirfd is; but
            # IN_ROOT's root is dirfd's directory
            if not path.startswith("/") or scope & RESOLVE_IN_ROOT:
                start = self.start_frames(task, root, dirfd)
                if scope & SCOPED:
                    root = start
            else:
                start = root
            return self.resolver.walk(root, start, path, follow, magic=magic, search=search,
                                      scope=scope)
        if path.startswith("/"):
            parent, _, name = path.rpartition("/")
            if parent and name not in ("", ".", "..") and task.ctx.root == "/":
                # the directory part through the cache of directory chains
                start = self.frames_of_path(task, root, parent)
                return self.resolver.walk(root, start, name, follow, magic=magic, search=search)
            start = root
        else:
            if dirfd == AT_FDCWD and task.cwd[1]:
                held = task.ctx.held
                if deaddir.itself(path) and held is not None:
                    return self._removed_itself(task, task.cwd[0], held.attr(self.idmap))
                start, path = self._from_removed(task, root, task.cwd[0], path)
            else:
                try:
                    start = self.start_frames(task, root, dirfd)
                except RemovedDir as gone:
                    attr = deaddir.attr_of_fd(gone.tid, gone.fd, self.idmap) \
                        if deaddir.itself(path) else None
                    if attr is not None:
                        return self._removed_itself(task, gone.path, attr)
                    start, path = self._from_removed(task, root, gone.path, path)
        return self.resolver.walk(root, start, path, follow, magic=magic, search=search)

    def _removed_itself(self, task, where, attr):
        """The Lookup of a removed directory's "." (where: its guest path
        of old, or None): the directory itself, unlinked and empty, which
        only its holders reach (never an answer for the path cache)."""
        task.fast_ok = False
        mount = self.mounts.covering(where) if where else self.mounts.root
        return deaddir.lookup_of(attr, where, mount or self.mounts.root)

    def _from_removed(self, task, root, where, path):
        """Where path starts, and what is left of it, relative to a
        directory that was removed (the working directory, or a dirfd's)
        whose guest path was where (None: not known): nothing is found in
        it, and nothing can be made in it (ENOENT, as Linux's lookup in a
        dead directory), but ".." is the directory its parent was (Linux
        keeps the parent of a removed directory)."""
        names = path.split("/")
        while names and names[0] in ("", "."):
            names.pop(0)
        if not names or names[0] != ".." or where is None:
            raise OSError(errno.ENOENT, "the directory was removed")
        parent = where.rpartition("/")[0] or "/"
        if task.ctx.root != "/":
            root = self.resolver.root_frames("/")
        return self.frames_of_path(task, root, parent), "/".join(names[1:]) or "."

    def removed_dir(self, tid, fd):
        """Whether fd (no guest path: fd_path gave None) is a directory that
        was removed: Linux looks names up in it (finding none), where it
        refuses a file that is no directory with ENOTDIR."""
        host = self.fd_host_path(tid, fd)
        if host is None or not host.endswith(" (deleted)"):
            return False
        try:
            return stat.S_ISDIR(os.stat(f"/proc/{tid}/fd/{fd}").st_mode)
        except OSError:
            return False

    def guest_path_of_removed(self, tid, fd):
        """The guest path a removed directory fd had (None if it was no
        guest directory)."""
        host = self.fd_host_path(tid, fd) or ""
        return self.guest_path_of_host(host[:-len(" (deleted)")]) \
            if host.endswith(" (deleted)") else None

    def _search(self, task):
        return lambda dentry: self.search_ok(task, dentry)

    def resolve_fd(self, task, fd):
        """The Lookup of what an fd is (AT_EMPTY_PATH), or None if it is not
        a guest filesystem object (a pipe, a socket...)."""
        return self.resolve_link(task, self.fd_path(task.tid, fd))

    def resolve_link(self, task, path):
        """The Lookup of the guest path an fd's link names (fd_path), or None."""
        if path is None:
            return None
        root = self.resolver.root_frames("/")
        try:
            if path == "/":
                return self.resolver.walk(root, root, path, follow_last=False)
            parent, _, name = path.rpartition("/")
            start = self.frames_of_path(task, root, parent or "/")
            res = self.resolver.walk(root, start, name, follow_last=False)
        except OSError:
            return None
        # gone from its directory (a produced /proc file): no guest object
        return res if res.dentry is not None else None

    def _magic(self, task):
        procfs_fs = self.procfs
        if procfs_fs is None:
            return None
        return lambda dentry: procfs_fs.follow_magic(self, task, dentry) \
            if dentry.fs is procfs_fs else None

    def search_ok(self, task, dentry):
        """May task search this directory?  The guest kernel answers stat,
        readlink and access itself (the tracer could see anything), so it
        checks what the host would: the guest's ids against the owner and
        mode (capabilities count only for owners its namespace maps)."""
        attr = dentry.attr
        if task.fast_ok and not self.shared_dir(dentry):
            task.fast_ok = False
        if attr.mode & S_IXOTH:
            return 0            # anyone may
        return task.creds.permission(attr, X_OK)

    def host_lists(self, dentry, path, mount):
        """Whether the host's own listing of this directory is the guest's:
        a directory of the host tree below the root, with nothing of the
        upper layer, or of a bind mount (as Linux lists a bind's, ".." of
        its root included), with no mountpoint and none of umlpy's hidden
        state in it."""
        fs = dentry.fs
        if mount is not self.mounts.root:
            lower = fs if type(fs) is HostTreeFS and fs.host_backed else None
        elif not isinstance(fs, UnionFS) or dentry.flags & IN_UPPER:
            return False
        else:
            lower = fs.lower
        if not isinstance(lower, HostTreeFS) or lower.hides_in(dentry.rel):
            return False
        return not self.mounts.mounted_names(path)

    def delegable(self, frame):
        """A directory whose whole subtree the host shows exactly as the
        guest sees it (fastpath.py lets C answer below it from the host),
        searchable by anyone: in the root filesystem, one only in the
        union's lower layer (so all below it is), or the root of a bind
        mount; a host directory with no mountpoint and nothing hidden at
        or below it, which no other mount shows under another name."""
        dentry = frame.dentry
        fs = dentry.fs
        if not dentry.attr.is_dir() or not dentry.attr.mode & S_IXOTH:
            return False
        if frame.mount is self.mounts.root:
            if not isinstance(fs, UnionFS) or dentry.flags & IN_UPPER or not dentry.rel:
                return False
            lower = fs.lower
        else:
            # a bind mount's root (--bind, a container's volume): the host
            # directory is what the guest sees below it, whole
            if type(fs) is not HostTreeFS or dentry.rel or \
                    frame.path != frame.mount.path or not fs.host_backed:
                return False
            lower = fs
        if not isinstance(lower, HostTreeFS) or lower.hides_below(dentry.rel):
            return False
        below = frame.path.rstrip("/") + "/"
        if any(p == frame.path and m is not frame.mount or p.startswith(below)
               for p, m in self.mounts.by_path.items()):
            return False
        # C finds a relative lookup's tree by its directory's host path: no
        # other mount may show the same host directories under other names
        host = fs.host_path(dentry) + "/"

        def shows(other):
            return isinstance(other, HostTreeFS) and (
                host.startswith(other.root_path.rstrip("/") + "/") or
                other.root_path.startswith(host))
        root = self.mounts.root
        return not any(shows(m.fs) for m in self.mounts.by_path.values()
                       if m is not root and m is not frame.mount) and \
            (frame.mount is root or not shows(root.fs.lower))

    def shared_dir(self, dentry):
        """A directory whose lookups answer every caller alike and change
        only through the guest kernel: in the root filesystem, searchable
        by anyone, the union's root or only in its lower layer."""
        return dentry.fs is self.mounts.root.fs and dentry.attr.mode & S_IXOTH and \
            (not dentry.flags & IN_UPPER or dentry.rel == "")

    # host objects ↔ guest paths ---------------------------------------------
    def guest_path_of_host(self, host_path):
        for m in self.mounts.by_specificity():
            rel = m.fs.reverse(host_path)
            if rel is not None:
                return join(m.path, rel) if rel else m.path
        return None

    def is_spooled(self, host_path):
        """Whether host_path is a produced file (a /proc or /etc file whose
        contents the guest kernel wrote for one open): it is unlinked once
        opened, and still shows its guest path."""
        spool = self.spool_dir
        return spool is not None and host_path.startswith(spool + "/f")

    def fd_host_path(self, tid, fd):
        try:
            return os.readlink(f"/proc/{tid}/fd/{fd}")
        except OSError:
            return None

    def _fd_exists(self, tid, fd):
        return os.path.lexists(f"/proc/{tid}/fd/{fd}")

    def fd_path(self, tid, fd):
        """The guest path an fd refers to, or None (not a path of the guest's
        filesystems: a pipe, a socket, an anonymous inode)."""
        if fd < 0:
            return None
        host = self.fd_host_path(tid, fd)
        if self.queue_devs and is_queue_fd(self, tid, fd, host):
            return None
        return self.guest_path_of_link(host)

    def guest_path_of_link(self, host):
        """The guest path of an fd's /proc link text, or None."""
        if host is None or not host.startswith("/"):
            return None
        if host.endswith(" (deleted)"):
            host = host[:-len(" (deleted)")]
            if not self.is_spooled(host):
                return None
        return self.guest_path_of_host(host)

    def fd_link_text(self, tid, fd):
        """What readlink(/proc/PID/fd/N) shows the guest."""
        host = self.fd_host_path(tid, fd)
        if host is None:
            raise OSError(errno.ENOENT, "no such fd")
        if not host.startswith("/"):
            return host
        deleted = host.endswith(" (deleted)")
        if deleted:
            host = host[:-len(" (deleted)")]
            deleted = not self.is_spooled(host)
        guest = self.guest_path_of_host(host)
        if guest is None:
            return "/"          # not a guest object: never show a host path
        return guest + (" (deleted)" if deleted else "")
