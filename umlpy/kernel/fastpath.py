"""The guest kernel's side of the native path cache
(umlpy/_native/pathcache.c): which answers may be replayed in C, under
which key, and when they stop being true.

Python stays the source of truth.  An answer is remembered only when it
cannot depend on who asks or on anything Python would not see change:

* the process's root is the real root (a chroot turns the cache off);
* every directory the lookup walked through is in the root filesystem,
  searchable by anyone, and either the union's root or a directory that
  exists only in the lower layer (the resolver reports them through the
  search-permission check, so nothing walked is missed, symlinks included);
* the object found is lower-only, or the name is absent (ENOENT).

Lower-only objects and directories change only through the guest kernel,
which bumps the union's generation: the cache is then dropped whole.  The
host may change the lower tree under a running sandbox, so an entry also
expires after TTL_MS.  User hooks, observers (umlpy trace), --trace-all
and fake ownership keep the calls in Python.

Below a delegated tree (delegate(), VFS.delegable: a lower-only host
directory with no mountpoint and nothing hidden at or below it), C needs no
entry per name: pathtree.c answers from the host itself by the same rule,
checking that every directory walked is one anyone may search."""
import os
import time

from .._native._tracer import ffi, lib
from ..abi.fcntl import AT_FDCWD, O_ACCMODE, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_PATH, \
    O_TMPFILE_BIT, O_TRUNC
from ..abi.stat import S_IXOTH
from .bounded import ByteBoundedCache, text_bytes
from .vfs.namei import Frame
from .vfs.union import IN_UPPER

STAT, STATX, LINK, OPEN, LISTING, ACCESS, CHDIR = b"s", b"x", b"l", b"o", b"d", b"a", b"c"
CACHED_CALLS = ("stat", "lstat", "newfstatat", "statx", "readlink", "readlinkat",
                "open", "openat", "openat2", "getdents64", "getdents", "access", "faccessat",
                "faccessat2", "chdir", "fchdir", "getcwd")
NATIVE = -1             # an entry's errno: a listing the host makes as the guest sees it
ON_FD = -2              # ... on its fd, with the empty path from scratch memory
TTL_MS = 3000
MAX_ENTRIES = 131072        # pathcache.c's: the table is emptied when full
DELEGABLE_BYTES = 8 << 20   # Python's answers on which directories C may list


class PathCache:
    def __init__(self, tracer):
        self._c = lib.umlpy_tracer_cache(tracer._t)
        self._tracer = tracer
        self.enabled = False
        self._numbers = ()
        self._trees_on = False
        self._trees = {}            # host dir -> when C was given it as a tree
        # guest path -> VFS.delegable's answer, bounded by bytes (issue 12)
        self._delegable_dirs = ByteBoundedCache(DELEGABLE_BYTES)

    def enable(self, numbers):
        """Answer calls numbers (already PYTHON's in the policy) from the cache."""
        self._numbers = tuple(numbers)
        for nr in self._numbers:
            self._tracer.set_action(nr, lib.UMLPY_ACT_CACHE)
        lib.umlpy_cache_configure(self._c, 1, TTL_MS)
        self.enabled = True

    def disable(self):
        if not self.enabled:
            return
        for nr in self._numbers:
            self._tracer.set_action(nr, lib.UMLPY_ACT_PYTHON)
        lib.umlpy_cache_configure(self._c, 0, TTL_MS)
        self.enabled = False

    def answer_trees(self, idmap):
        """Let C answer below the directories delegate() finds, presenting
        host ids through idmap."""
        if not self.enabled:
            return
        uids = [n for r in idmap.uid_ranges or () for n in r]
        gids = [n for r in idmap.gid_ranges or () for n in r]
        lib.umlpy_cache_idmap(self._c, 1 if idmap.identity else 0,
                              ffi.new("unsigned int[]", uids or [0]), len(uids) // 3,
                              ffi.new("unsigned int[]", gids or [0]), len(gids) // 3)
        self._trees_on = True

    def clear(self):
        if self.enabled:
            lib.umlpy_cache_clear(self._c)
            self._trees.clear()
            self._delegable_dirs.clear()

    def counts(self):
        """(hits, misses, entries)."""
        out = ffi.new("unsigned long[3]")
        lib.umlpy_cache_counts(self._c, out)
        return tuple(out)

    def remember(self, task, res, kind, follow, dirfd, path, data=b"", err=0):
        """Keep the answer Python gave to a looking call (data written back,
        or errno err), if it may be replayed to any caller."""
        if not self.enabled:
            return
        self.delegate(task, res)
        if not answer_is_shared(task, res):
            return
        self._put(self.key(task, kind, b"1" if follow else b"0", dirfd, path), data, err)

    def remember_open(self, task, res, dirfd, path, flags, host=None, err=0):
        """An open for reading of a lower-only object (host: what openat2
        opens) or of an absent name (err ENOENT)."""
        if not self.enabled:
            return
        self.delegate(task, res)
        # a replayed open (pathcache.c) is one for reading only
        if flags & (O_ACCMODE | O_CREAT | O_TRUNC | O_PATH | O_TMPFILE_BIT) or \
                not answer_is_shared(task, res):
            return
        variant = bytes([48 + (1 if flags & O_NOFOLLOW else 0) + (2 if flags & O_DIRECTORY else 0)])
        self._put(self.key(task, OPEN, variant, dirfd, path),
                  b"" if host is None else os.fsencode(host), err)

    def remember_chdir(self, task, res, dirfd, path, err=0):
        """A chdir's answer: into the directory res, which anyone may
        search (C moves the process there), or an errno that any caller
        would meet (ENOENT, ENOTDIR)."""
        if not self.enabled:
            return
        self.delegate(task, res)
        if not answer_is_shared(task, res) or \
                not err and not res.dentry.attr.mode & S_IXOTH:
            return
        self._put(self.key(task, CHDIR, b"1", dirfd, path),
                  b"" if err else os.fsencode(res.path), err)

    def remember_fchdir(self, task, res, fd):
        """An fchdir into fd's directory res, if anyone may search it: by
        what the fd is (its /proc link), as fstat's."""
        if not self.enabled or not answer_is_shared(task, res) or \
                not res.dentry.attr.mode & S_IXOTH:
            return
        link = task.vfs.fd_host_path(task.tid, fd)
        if link is None or not link.startswith("/") or link.endswith(" (deleted)"):
            return
        self._put(CHDIR + b"E" + os.fsencode(link) + b"\0", os.fsencode(res.path), 0)

    def remember_listing(self, task, res, host):
        """The directory res, open as the host's directory host, is listed by
        the host as the guest sees it: C may answer its getdents64 with the
        host's listing (made on a copy of the caller's fd)."""
        if not self.enabled:
            return
        if host is None or not host.startswith("/"):
            return
        self._put(LISTING + b"0" + os.fsencode(host) + b"\0", b"", NATIVE)
        self.delegate(task, res)

    def delegate(self, task, res):
        """Let C answer below the highest directory on res's way whose
        whole subtree the host shows as the guest sees it (VFS.delegable),
        reached from the root through directories anyone may search: there,
        pathtree.c answers the stat family, read-only opens, fstat and
        listings from the host, checking the one rule Python's own entries
        follow (every directory walked is searchable by anyone)."""
        if not self._trees_on or task.ctx.root != "/" or res is None:
            return
        vfs = task.vfs
        root = vfs.mounts.root
        frames = res.parents
        if res.dentry is not None and res.dentry.attr.is_dir():
            frames = [*frames, Frame(res.path, res.dentry, res.mount)]
        for depth, frame in enumerate(frames):
            if frame.mount is not root:
                # a bind's (a container's volume): from its root down, as
                # the root's lower directories
                if self._delegable(vfs, frame):
                    self._register(frame)
                return
            if depth and self._delegable(vfs, frame):
                self._register(frame)
                return
            if not vfs.shared_dir(frame.dentry):
                return

    def _delegable(self, vfs, frame):
        known = self._delegable_dirs.get(frame.path)
        if known is None:
            known = vfs.delegable(frame)
            self._delegable_dirs.put(frame.path, known, text_bytes(frame.path))
        return known

    def _register(self, frame):
        d = frame.dentry
        host = d.fs.host_path(d)
        now = time.monotonic()
        if self._trees.get(host, -1.0) > now - TTL_MS / 2000:
            return
        self._trees[host] = now
        lib.umlpy_cache_tree(self._c, os.fsencode(frame.path), os.fsencode(host),
                             d.attr.dev, d.attr.ino, frame.mount.id)

    def remember_fstat(self, task, fd, res, data=b"", kind=STAT):
        """fstat (newfstatat with an empty path; kind STATX: statx with
        one) of fd: the stat of a lower-only object (data), or, for an fd
        that is no guest filesystem object (res None: a pipe, a socket),
        the call made on the fd itself.  What the fd is comes from its
        /proc link."""
        if not self.enabled:
            return
        if res is not None and (res.mount is not task.vfs.mounts.root or
                                res.dentry.flags & IN_UPPER or
                                res.dentry.fs is not res.mount.fs):
            return
        link = task.vfs.fd_host_path(task.tid, fd)
        if link is None or link.endswith(" (deleted)"):
            return
        self._put(kind + b"E" + os.fsencode(link) + b"\0", data,
                  ON_FD if res is None else 0)

    def scratch_moved(self, tid, addr):
        """Thread tid's scratch slot is now at addr (0: it has none)."""
        lib.umlpy_cache_set_scratch(self._c, tid, addr)

    def _put(self, key, data, err):
        if key is not None:
            lib.umlpy_cache_put(self._c, key, len(key), err, data, len(data))

    @staticmethod
    def key(task, kind, variant, dirfd, path):
        raw = os.fsencode(path)
        if raw.startswith(b"/"):
            where = b""
        elif dirfd == AT_FDCWD:
            cwd, gone = task.cwd
            if gone:
                return None
            where = b"@" + os.fsencode(cwd)     # as workdir.c keeps it
        elif dirfd < 0:
            return None
        else:
            host = task.vfs.fd_host_path(task.tid, dirfd)
            if host is None or not host.startswith("/"):
                return None
            where = os.fsencode(host)
        return kind + variant + where + b"\0" + raw


class NativeWorkdirs:
    """Where vfs.FsContext keeps working directories: boxes in C
    (workdir.c), one per process, which C keys cwd-relative calls by and
    moves on the chdirs it serves."""

    def __init__(self, tracer):
        self._c = lib.umlpy_tracer_cache(tracer._t)

    def new(self):
        box = lib.umlpy_cwd_new(self._c)
        return None if box < 0 else box

    def free(self, box):
        lib.umlpy_cwd_free(self._c, box)

    def set(self, box, path):
        """path (None: removed); the box's change count."""
        return lib.umlpy_cwd_set(self._c, box, ffi.NULL if path is None else os.fsencode(path))

    def seq(self, box):
        return lib.umlpy_cwd_seq(self._c, box)

    def get(self, box):
        buf = ffi.new("char[]", 4097)
        n = lib.umlpy_cwd_get(self._c, box, buf, len(buf))
        return os.fsdecode(ffi.buffer(buf, n)[:]) if n >= 0 else None

    def attach(self, tid, box):
        lib.umlpy_cwd_attach(self._c, tid, box)

    def bump(self):
        lib.umlpy_cwd_bump(self._c)


def answer_is_shared(task, res):
    if not task.fast_ok or task.ctx.root != "/" or res is None:
        return False
    root = task.vfs.mounts.root
    if res.mount is not root:
        return False
    d = res.dentry
    return d is None or (d.fs is root.fs and not d.flags & IN_UPPER)
