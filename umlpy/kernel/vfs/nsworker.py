"""Host operations as guest ids umlpy itself cannot take.

An ordinary user's sandbox with subordinate ids (identity.py) has users
that are not umlpy's own host user: umlpy, unprivileged, cannot switch a
thread to them.  A process that joined the sandbox's user namespace can:
there it holds the namespace's capabilities, and takes any of its ids as a
guest process would (setns needs a single-threaded process, so it is a
process of its own, started at the first such operation).  It runs the
operation exactly as hostid's workers do, on a thread switched to those
ids, from the directory fd the guest kernel passes with it.

The protocol, over a SOCK_SEQPACKET pair: a request is a pickled
(ids, function, arguments, whether arguments[0] is a passed fd) with that
fd; a reply is a pickled (ok, value or exception, whether the value is a
passed fd) with that fd."""
import array
import ctypes
import errno
import os
import pickle
import socket
import subprocess
import sys
import threading

from ...abi.sched import CLONE_NEWUSER

MAX_MESSAGE = 1 << 20
# the functions whose result is an fd of the worker's, passed back
_RETURNS_FD = {("posix", "open"), ("umlpy.kernel.vfs.hostopen", "open_unblocked"),
               ("umlpy.kernel.vfs.hostopen", "open_waiting")}


def _returns_fd(fn):
    return (getattr(fn, "__module__", None), getattr(fn, "__name__", None)) in _RETURNS_FD


def _send(sock, obj, fd=None):
    fds = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    sock.sendmsg([pickle.dumps(obj)], fds)


def _receive(sock):
    data, ancillary, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4))
    if not data:
        raise EOFError("the other end is gone")
    fd = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fd = array.array("i", payload[:4])[0]
    return pickle.loads(data), fd


class NamespaceWorker:
    """umlpy's end: one process in the sandbox's user namespace, started
    at its first use; calls are made one at a time."""

    def __init__(self, userns_fd):
        self.userns_fd = userns_fd
        self._sock = None
        self._proc = None
        self._lock = threading.Lock()

    def _start(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "umlpy.kernel.vfs.nsworker", str(self.userns_fd),
             str(theirs.fileno())],
            pass_fds=(self.userns_fd, theirs.fileno()), stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        theirs.close()
        try:
            ready, _ = _receive(ours)
        except EOFError:
            ready = OSError(errno.EPERM, "the worker did not start")
        if ready is not True:
            ours.close()
            self._proc.wait()
            self._proc = None
            raise OSError(errno.EPERM, f"cannot enter the sandbox's user namespace: {ready}")
        self._sock = ours

    def run(self, ids, fn, args):
        """fn(*args) as the guest's ids (inside ids: (uid, gid, groups))."""
        if not _picklable(fn):
            return _run_forked(self.userns_fd, ids, fn, args)
        with self._lock:
            if self._sock is None:
                self._start()
            passes = bool(args) and isinstance(args[0], int)
            request = (ids, fn, args[1:] if passes else args, passes)
            _send(self._sock, request, args[0] if passes else None)
            (ok, value, is_fd), fd = _receive(self._sock)
        if not ok:
            raise value
        return fd if is_fd else value

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            self._proc.wait()
            self._proc = None


def _picklable(fn):
    try:
        pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _enter(userns_fd, ids):
    """The calling process (single-threaded) joins the namespace and takes
    the guest's ids there, as its guest would."""
    from ..._native._tracer import ffi, lib
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(userns_fd, CLONE_NEWUSER) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")
    uid, gid, groups = ids
    r = lib.umlpy_thread_become(uid, gid, len(groups),
                                ffi.new("unsigned int[]", list(groups) or [0]), 1)
    if r < 0:
        raise OSError(-r, f"cannot act as uid {uid} of the sandbox: {os.strerror(-r)}")
    os.umask(0)


def _run_forked(userns_fd, ids, fn, args):
    """fn(*args) in a child of ours that joined the namespace: what cannot
    be sent to the worker (an operation that closes over the guest
    kernel's objects) runs there, with our descriptors as they are."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            try:
                _enter(userns_fd, ids)
                value = fn(*args)
                passes = _returns_fd(fn) and value is not None
                _send(theirs, (True, None if passes else value, passes), value if passes else None)
            except BaseException as e:
                _send(theirs, (False, e, False))
        finally:
            os._exit(0)
    theirs.close()
    try:
        (ok, value, is_fd), fd = _receive(ours)
    except EOFError:
        ok, value, is_fd, fd = False, OSError(errno.EPERM, "the operation's process died"), \
            False, None
    finally:
        ours.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass        # the tracer's wait for any child took it
    if not ok:
        raise value
    return fd if is_fd else value


def _serve(userns_fd, sock):
    from .hostid import _Worker
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(userns_fd, CLONE_NEWUSER) < 0:
        e = ctypes.get_errno()
        _send(sock, OSError(e, os.strerror(e)))
        return
    os.close(userns_fd)
    _send(sock, True)
    workers = {}
    while True:
        try:
            (ids, fn, args, passes), fd = _receive(sock)
        except EOFError:
            return
        worker = workers.get(ids)
        if worker is None:
            worker = workers[ids] = _Worker(tuple(ids) + (0,))
            worker.start()
            worker.replies.get()
        try:
            if worker.failed is not None:
                raise worker.failed
            value = worker.call(fn, ((fd,) if passes else ()) + tuple(args))
            reply, passed = (True, None if _returns_fd(fn) else value, _returns_fd(fn)), \
                value if _returns_fd(fn) else None
        except BaseException as e:
            reply, passed = (False, e, False), None
        finally:
            if fd is not None:
                os.close(fd)
        if reply[2] and passed is None:
            reply = (True, None, False)     # an open that made no fd (a FIFO's)
        _send(sock, reply, passed)
        if passed is not None:
            os.close(passed)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), socket.socket(fileno=int(sys.argv[2])))
