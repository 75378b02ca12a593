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
import threading

from ..._native._tracer import ffi, lib
from ...abi.capability import CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, \
    CAP_FOWNER, CAP_FSETID
from ...abi.capset import CAP_USER_DATA, CAP_USER_HEADER, LINUX_CAPABILITY_VERSION_3, \
    PR_SET_KEEPCAPS
from ..syscalls.names import SYSCALL_NUMBERS

# What a guest's own root may do to the sandbox's own files (its upper
# layer), that its host ids alone may not: no CAP_MKNOD (a device node
# made there would be a host device), nothing beyond files.
OWNER_CAPS = CAP_CHOWN | CAP_DAC_OVERRIDE | CAP_DAC_READ_SEARCH | CAP_FOWNER | CAP_FSETID


class HostIdentity(tuple):
    """(fsuid, fsgid, groups, umask, caps) of a guest thread, in host
    terms; caps: the OWNER_CAPS its user namespace gives it."""
    __slots__ = ()

    def __new__(cls, uid, gid, groups=(), umask=0o022, caps=0):
        return tuple.__new__(cls, (uid, gid, tuple(sorted(groups)), umask, caps))

    uid = property(lambda self: self[0])
    gid = property(lambda self: self[1])
    groups = property(lambda self: self[2])
    umask = property(lambda self: self[3])
    caps = property(lambda self: self[4])

    @classmethod
    def from_status(cls, f):
        uid = int(f["Uid"].split()[3])
        gid = int(f["Gid"].split()[3])
        groups = [int(g) for g in f.get("Groups", "").split()]
        caps = int(f.get("CapEff", "0"), 16) & OWNER_CAPS
        return cls(uid, gid, groups, int(f.get("Umask", "0022"), 8), caps)

    @property
    def creds(self):
        """What a worker thread is switched to: the umask is per call, and
        capabilities only for the sandbox's own files (IdentityExecutor)."""
        return self[:3] + (0,)

    @property
    def owner_creds(self):
        return self[:3] + (self.caps,)


SYS_CAPSET = SYSCALL_NUMBERS["capset"]
_libc_handle = None


def _libc():
    """libc through ctypes, loaded at the first worker: ctypes costs about
    1 ms of the start of a run that may need no worker at all."""
    global _libc_handle
    if _libc_handle is None:
        import ctypes
        _libc_handle = ctypes.CDLL(None, use_errno=True)
        _libc_handle.syscall.restype = ctypes.c_long
    return _libc_handle


def _keep_only_caps(caps):
    """The calling thread's capabilities become caps, effective and
    permitted (after a change of ids that PR_SET_KEEPCAPS survived)."""
    import ctypes
    header = ctypes.create_string_buffer(
        CAP_USER_HEADER.pack(LINUX_CAPABILITY_VERSION_3, 0), CAP_USER_HEADER.size)
    low = CAP_USER_DATA.pack(caps, caps, 0)
    data = ctypes.create_string_buffer(low + CAP_USER_DATA.pack(0, 0, 0), 2 * len(low))
    if _libc().syscall(SYS_CAPSET, header, data) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


class _Worker(threading.Thread):
    def __init__(self, creds):
        import queue
        super().__init__(name=f"umlpy-as-{creds[0]}", daemon=True)
        self.creds = creds
        self.requests = queue.SimpleQueue()
        self.replies = queue.SimpleQueue()
        self.failed = None

    def run(self):
        try:
            self._become(*self.creds[:3], caps=self.creds[3])
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
    def _become(uid, gid, groups, caps=0):
        already = (os.geteuid(), os.getegid()) == (uid, gid) and os.geteuid() != 0
        if caps and _libc().prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0:
            import ctypes
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
        # an unprivileged umlpy is already this identity: it only unshares
        r = lib.umlpy_thread_become(-1 if already else uid, gid, len(groups),
                                    ffi.new("unsigned int[]", list(groups) or [0]),
                                    os.geteuid() != 0)
        if r < 0:
            raise OSError(-r, f"cannot act as host uid {uid}: {os.strerror(-r)}")
        if caps:
            _keep_only_caps(caps)
        os.umask(0)

    def call(self, fn, args):
        self.requests.put((fn, args))
        ok, value = self.replies.get()
        if ok:
            return value
        raise value


class IdentityExecutor:
    """Runs host operations as a guest thread's host identity.

    own_caps: the guest's ids are a block of the sandbox's own (umlpy runs
    as root, identity.py), so what its root may do to its own files by its
    namespace's capabilities, its worker may do there by the host's: on
    the sandbox's own files only (``own=True``: its upper layer), never
    on the lower layer or the host's binds."""

    def __init__(self, own_caps=False):
        self._workers = {}
        self._lock = threading.Lock()
        self.own_caps = own_caps

    def _worker(self, creds):
        w = self._workers.get(creds)
        if w is None:
            w = _Worker(creds)
            w.start()
            w.replies.get()
            self._workers[creds] = w
        return w

    def _creds(self, identity, own):
        return identity.owner_creds if own and self.own_caps else identity.creds

    def run(self, identity, fn, *args, own=False):
        """fn(*args) on the thread of identity's credentials; its
        exception, if any, is raised here.  own: fn changes the sandbox's
        own files."""
        with self._lock:
            w = self._worker(self._creds(identity, own))
            if w.failed is not None:
                # umlpy cannot take that identity: nothing is done for it
                raise OSError(errno.EPERM, f"cannot act as host uid {identity.uid}")
            return w.call(fn, args)

    def run_apart(self, identity, fn, *args, own=False):
        """fn(*args) as identity on a worker of its own, for an operation
        that may block for long (the open of a FIFO): the shared worker
        stays free for everybody else."""
        w = _Worker(self._creds(identity, own))
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
