"""Host operations run with the calling guest thread's host identity.

The guest kernel performs every change a path decision leads to itself
(mkdir, unlink, chmod, a copy-up's read of the lower file...), from
directory fds it holds.  It must do so as the guest would be on the host,
never with umlpy's own privileges: a copy-up made by a root supervisor
would hand the guest /etc/shadow.  Each distinct identity (filesystem uid,
gid and supplementary groups, as /proc/TID/status shows them from the host)
gets a worker thread that switched its own credentials with the raw
syscalls (glibc's setresuid would switch every thread of umlpy) and
unshared its fs_struct, so its umask is its own (0: the guest's umask is
applied to modes explicitly)."""
import errno
import os
import queue
import threading

from ..._native._tracer import ffi, lib


class HostIdentity(tuple):
    """(fsuid, fsgid, groups, umask) of a guest thread, in host terms."""
    __slots__ = ()

    def __new__(cls, uid, gid, groups=(), umask=0o022):
        return tuple.__new__(cls, (uid, gid, tuple(sorted(groups)), umask))

    uid = property(lambda self: self[0])
    gid = property(lambda self: self[1])
    groups = property(lambda self: self[2])
    umask = property(lambda self: self[3])

    @classmethod
    def from_status(cls, f):
        uid = int(f["Uid"].split()[3])
        gid = int(f["Gid"].split()[3])
        groups = [int(g) for g in f.get("Groups", "").split()]
        return cls(uid, gid, groups, int(f.get("Umask", "0022"), 8))

    @property
    def creds(self):
        """What a worker thread is switched to: the umask is per call."""
        return self[:3]


class _Worker(threading.Thread):
    def __init__(self, creds):
        super().__init__(name=f"umlpy-as-{creds[0]}", daemon=True)
        self.creds = creds
        self.requests = queue.SimpleQueue()
        self.replies = queue.SimpleQueue()
        self.failed = None

    def run(self):
        try:
            self._become(*self.creds)
        except OSError as e:
            self.failed = e
        self.replies.put(None)      # ready
        while True:
            job = self.requests.get()
            if job is None:
                return
            fn, args = job
            try:
                self.replies.put((True, fn(*args)))
            except BaseException as e:     # handed to the caller
                self.replies.put((False, e))

    @staticmethod
    def _become(uid, gid, groups):
        already = (os.geteuid(), os.getegid()) == (uid, gid) and os.geteuid() != 0
        # an unprivileged umlpy is already this identity: it only unshares
        r = lib.umlpy_thread_become(-1 if already else uid, gid, len(groups),
                                    ffi.new("unsigned int[]", list(groups) or [0]),
                                    os.geteuid() != 0)
        if r < 0:
            raise OSError(-r, f"cannot act as host uid {uid}: {os.strerror(-r)}")
        os.umask(0)

    def call(self, fn, args):
        self.requests.put((fn, args))
        ok, value = self.replies.get()
        if ok:
            return value
        raise value


class IdentityExecutor:
    """Runs host operations as a guest thread's host identity."""

    def __init__(self):
        self._workers = {}
        self._lock = threading.Lock()

    def _worker(self, creds):
        w = self._workers.get(creds)
        if w is None:
            w = _Worker(creds)
            w.start()
            w.replies.get()
            self._workers[creds] = w
        return w

    def run(self, identity, fn, *args):
        """fn(*args) on the thread of identity's credentials; its
        exception, if any, is raised here."""
        with self._lock:
            w = self._worker(identity.creds)
            if w.failed is not None:
                # umlpy cannot take that identity: nothing is done for it
                raise OSError(errno.EPERM, f"cannot act as host uid {identity.uid}")
            return w.call(fn, args)

    def run_apart(self, identity, fn, *args):
        """fn(*args) as identity on a worker of its own, for an operation
        that may block for long (the open of a FIFO): the shared worker
        stays free for everybody else."""
        w = _Worker(identity.creds)
        w.start()
        w.replies.get()
        try:
            if w.failed is not None:
                raise OSError(errno.EPERM, f"cannot act as host uid {identity.uid}")
            return w.call(fn, args)
        finally:
            w.requests.put(None)

    def close(self):
        with self._lock:
            for w in self._workers.values():
                w.requests.put(None)
            self._workers.clear()
