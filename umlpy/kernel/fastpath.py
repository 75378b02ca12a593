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
and fake ownership keep the calls in Python."""
import os
import time
from collections import deque

from .._native._tracer import ffi, lib
from .vfs.union import IN_UPPER

STAT, STATX, LINK, OPEN, LISTING, ACCESS = b"s", b"x", b"l", b"o", b"d", b"a"
CACHED_CALLS = ("stat", "lstat", "newfstatat", "statx", "readlink", "readlinkat",
                "open", "openat", "getdents64", "getdents", "access", "faccessat",
                "faccessat2")
NATIVE = -1             # an entry's errno: the call runs as the guest made it
ON_FD = -2              # ... on its fd, with the empty path from scratch memory
# open flags a replayed open may carry (pathcache.c): reading only
O_ACCMODE, O_CREAT, O_TRUNC = 0o3, 0o100, 0o1000
O_DIRECTORY, O_NOFOLLOW, O_PATH, O_TMPFILE = 0o200000, 0o400000, 0o10000000, 0o20000000
TTL_MS = 3000
PREFILL_BUDGET = 1000       # entries listed ahead per directory Python lists
MAX_ENTRIES = 131072        # pathcache.c's: the table is emptied when full
AT_FDCWD = -100


class PathCache:
    def __init__(self, tracer):
        self._c = lib.umlpy_tracer_cache(tracer._t)
        self._tracer = tracer
        self.enabled = False
        self._numbers = ()
        self._prefilled = {}        # host dir -> when its entries were put
        self._listed = {}           # host dir -> when the guest last listed it

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

    def clear(self):
        if self.enabled:
            lib.umlpy_cache_clear(self._c)
            self._prefilled.clear()

    def counts(self):
        """(hits, misses, entries)."""
        out = ffi.new("unsigned long[3]")
        lib.umlpy_cache_counts(self._c, out)
        return tuple(out)

    def remember(self, task, res, kind, follow, dirfd, path, data=b"", err=0):
        """Keep the answer Python gave to a looking call (data written back,
        or errno err), if it may be replayed to any caller."""
        if not self.enabled or not answer_is_shared(task, res):
            return
        self._put(self.key(task, kind, b"1" if follow else b"0", dirfd, path), data, err)

    def remember_open(self, task, res, dirfd, path, flags, host=None, err=0):
        """An open for reading of a lower-only object (host: what openat2
        opens) or of an absent name (err ENOENT)."""
        if not self.enabled or flags & (O_ACCMODE | O_CREAT | O_TRUNC | O_PATH | O_TMPFILE) \
                or not answer_is_shared(task, res):
            return
        variant = bytes([48 + (1 if flags & O_NOFOLLOW else 0) + (2 if flags & O_DIRECTORY else 0)])
        self._put(self.key(task, OPEN, variant, dirfd, path),
                  b"" if host is None else os.fsencode(host), err)

    def remember_listing(self, task, res, fd):
        """The directory open on fd is listed by the host as the guest sees
        it: its getdents may run with no stop.  A program that walks a tree
        (find, ls -lR, tar, du: it lists a directory whose parent it listed
        just before) looks at every entry next: their lstat/stat/fstat and
        opens are answered now, while the listing is at hand, and so are
        those of the directories below, breadth first, up to PREFILL_BUDGET
        entries.  One that only lists (an import system looking into a few
        directories) is not worth it: each entry costs Python about half
        what the stop it saves would."""
        if not self.enabled:
            return
        host = task.vfs.fd_host_path(task.tid, fd)
        if host is None or not host.startswith("/"):
            return
        self._put(LISTING + b"0" + os.fsencode(host) + b"\0", b"", NATIVE)
        vfs = task.vfs
        now = time.monotonic()
        walking = self._listed.get(os.fsencode(os.path.dirname(host)), -1.0) > \
            now - TTL_MS / 1000
        self._listed[os.fsencode(host)] = now
        if len(self._listed) > MAX_ENTRIES:
            self._listed.clear()
        if not walking or task.ctx.root != "/" or res.mount is not vfs.mounts.root or \
                not all(vfs.shared_dir(f.dentry) for f in [*res.parents, res]):
            return
        put = self._put
        fresh = now - TTL_MS / 2000
        budget = PREFILL_BUDGET
        todo = deque([(res.dentry, os.fsencode(host), res.path)])
        while todo and budget > 0:
            d, where, path = todo.popleft()
            if self._prefilled.get(where, -1.0) > fresh:
                continue
            self._prefilled[where] = now
            self._listed[where] = now       # listed natively from now on
            # its getdents may run with no stop only now that its entries'
            # answers are in: a directory listed natively is never prefilled
            put(LISTING + b"0" + where + b"\0", b"", NATIVE)
            fs = d.fs
            where += b"\0"
            # the same names spelled from the root, as an import system does
            absolute = b"\0" + os.fsencode(path.rstrip("/") + "/")
            for name, _dtype, _ino in fs.listdir(d):
                budget -= 1
                child = fs.lookup(d, name)
                if child is None or child.flags & IN_UPPER:
                    continue
                raw = os.fsencode(name)
                attr = child.attr
                st = attr.pack_stat()
                if attr.is_link():
                    put(b"s0" + where + raw, st, 0)
                    put(b"s0" + absolute + raw, st, 0)
                    continue
                put(b"sA" + where + raw, st, 0)         # followed or not
                put(b"sA" + absolute + raw, st, 0)
                if not (attr.is_dir() or attr.is_reg()):
                    continue
                child_host = os.fsencode(fs.host_path(child))
                put(b"sE" + child_host + b"\0", st, 0)
                if fs.checks_on_host(child) or attr.mode & 0o004:
                    # a directory opens alike with any flags; a file with
                    # any but O_DIRECTORY (ENOTDIR is Python's to say)
                    variant = b"o*" if attr.is_dir() else b"oF"
                    put(variant + where + raw, child_host, 0)
                    put(variant + absolute + raw, child_host, 0)
                child_path = path.rstrip("/") + "/" + name
                if attr.is_dir() and vfs.shared_dir(child) and \
                        vfs.host_lists(child, child_path, res.mount):
                    todo.append((child, child_host, child_path))
        if len(self._prefilled) > MAX_ENTRIES:
            self._prefilled.clear()

    def remember_fstat(self, task, fd, res, data=b""):
        """fstat (newfstatat with an empty path) of fd: the stat of a
        lower-only object (data), or, for an fd that is no guest
        filesystem object (res None: a pipe, a socket), the call made on the
        fd itself.  What the fd is comes from its /proc link."""
        if not self.enabled:
            return
        if res is not None and (res.mount is not task.vfs.mounts.root or
                                res.dentry.flags & IN_UPPER or
                                res.dentry.fs is not res.mount.fs):
            return
        link = task.vfs.fd_host_path(task.tid, fd)
        if link is None or link.endswith(" (deleted)"):
            return
        self._put(STAT + b"E" + os.fsencode(link) + b"\0", data,
                  ON_FD if res is None else 0)

    def scratch_moved(self, tid, addr):
        """Thread tid's scratch slot is now at addr (0: it has none)."""
        lib.umlpy_cache_set_scratch(self._c, tid, addr)

    def _put(self, key, data, err):
        if key is not None and lib.umlpy_cache_put(self._c, key, len(key), err, data,
                                                   len(data)) == 1:
            self._prefilled.clear()     # the table was full: emptied

    @staticmethod
    def key(task, kind, variant, dirfd, path):
        raw = os.fsencode(path)
        if raw.startswith(b"/"):
            where = b""
        elif dirfd == AT_FDCWD or dirfd < 0:
            return None         # the cwd is the guest kernel's: not in C's reach
        else:
            host = task.vfs.fd_host_path(task.tid, dirfd)
            if host is None or not host.startswith("/"):
                return None
            where = os.fsencode(host)
        return kind + variant + where + b"\0" + raw


def answer_is_shared(task, res):
    if not task.fast_ok or task.ctx.root != "/" or res is None:
        return False
    root = task.vfs.mounts.root
    if res.mount is not root:
        return False
    d = res.dentry
    return d is None or (d.fs is root.fs and not d.flags & IN_UPPER)
