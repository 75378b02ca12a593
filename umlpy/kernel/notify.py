"""The notification server: the calls the filter sends to the seccomp
listener (the opens, the stat family on a path, listings) are made by the
guest kernel, never by the guest.

The guest's thread waits in the host kernel while this server reads its
arguments once and decides; the guest kernel then opens the host object
itself, as the calling thread's host identity, and installs the file in
the caller's fd table with the call's return in one step
(``SECCOMP_IOCTL_NOTIF_ADDFD`` + ``SECCOMP_ADDFD_FLAG_SEND``).  The native
part (``_native/notify.c``) answers what the path cache knows with no
Python at all; the rest reaches ``NotificationServer.serve`` on a thread
of its own, beside the ptrace loop, under the guest kernel's lock.
"""
import errno
import sys
import threading

from ..abi.fcntl import AT_EMPTY_PATH, O_PATH
from .decisions import Deferred, Install, NotifiedCall, Return
from .dispatcher import HandlerFailure


# The calls the listener serves, and which of them still stop at ptrace:
# (the argument, the bits that send it there).  An O_PATH open (Linux's
# ADDFD refuses to install an O_PATH file) runs as openat2 of the host path
# from sealed scratch memory; openat2 keeps its flags in memory, where the
# filter cannot see O_PATH: it stops at ptrace too.  A statx of an fd
# itself (AT_EMPTY_PATH) is answered at ptrace, where a pipe's or a
# socket's runs on the fd with its empty path from scratch memory (an
# fstat is answered on the guest kernel's own copy of the fd); so is a
# faccessat2 of an fd itself.
NOTIFIED_CALLS = {"open": (1, O_PATH), "openat": (2, O_PATH), "creat": None,
                  "stat": None, "lstat": None, "newfstatat": None,
                  "statx": (2, AT_EMPTY_PATH), "getdents64": None, "getdents": None,
                  "access": None, "faccessat": None, "faccessat2": (3, AT_EMPTY_PATH),
                  "readlink": None, "readlinkat": None,
                  "chdir": None, "fchdir": None, "getcwd": None}


class NotificationServer:
    """One serving thread per notifier, each over its own copy of the
    listener fd: a notification wakes one of them, on the caller's CPU
    (SYNC_WAKE_UP), so guest threads on different CPUs are served at once.
    Their decisions still take the guest kernel's lock one at a time."""

    def __init__(self, kernel, notifiers):
        self.kernel = kernel
        self.notifiers = list(notifiers)
        self.threads = [threading.Thread(target=self.serve, args=(notifier,),
                                         name=f"umlpy-notify-{i}", daemon=True)
                        for i, notifier in enumerate(self.notifiers)]
        self.error = None

    def start(self):
        for thread in self.threads:
            thread.start()

    def keep(self, count):
        """Serve with the first count threads only (a warm sandbox claimed
        by a run on fewer CPUs than its pool's: as many servers as that
        run's cold guest kernel would have).  Before the guest runs: no
        call is in flight on the ones that leave."""
        for notifier, thread in zip(self.notifiers[count:], self.threads[count:]):
            notifier.stop()
            thread.join()

    def stop(self):
        """Return once every serving thread has left (the guest is gone, or
        the sandbox is torn down)."""
        while any(thread.is_alive() for thread in self.threads):
            for notifier in self.notifiers:
                notifier.stop()
            for thread in self.threads:
                thread.join(0.005)

    def counts(self):
        """(calls answered in C, calls handed to Python), all servers'."""
        counts = [notifier.counts() for notifier in self.notifiers]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def empty_receives(self):
        """Receives that found no call, all servers': a server must not
        spin once no guest is left."""
        return sum(notifier.empty_receives for notifier in self.notifiers)

    def serve(self, notifier):
        kernel = self.kernel
        req = notifier.req
        table = kernel.table
        try:
            while notifier.next():
                nr = req.nr
                call = NotifiedCall(kernel, req.pid, nr, tuple(req.args), table.by_nr.get(nr),
                                    req.id, notifier)
                with kernel.lock:
                    decision = self.decide(call)
                self.answer(call, decision)
        except BaseException as e:      # noqa: BLE001 -- reported by the loop
            self.error = e

    def decide(self, call):
        kernel = self.kernel
        kernel.syscalls_seen += 1
        try:
            return kernel.dispatcher.decide(call)
        except HandlerFailure as e:
            if isinstance(e.error, OSError) and e.error.errno == errno.ESRCH and \
                    not call.notifier.valid(call.req_id):
                return None         # the caller is gone: nobody to answer
            return kernel._handler_failed(call, e)

    def answer(self, call, decision):
        if decision is None:
            return
        if isinstance(decision, Deferred):
            threading.Thread(target=self._deferred, args=(call, decision),
                             name="umlpy-open-wait", daemon=True).start()
            return
        if isinstance(decision, Install):
            # the fd is closed in C right after the ioctl (tracer.Notifier)
            call.notifier.install(call.req_id, decision.fd, decision.cloexec)
            return
        if isinstance(decision, Return):
            call.notifier.reply(call.req_id, decision.value)
            return
        # ALLOW or a rewrite would have the guest's process make the call
        # with arguments it can still change: never, for a notified call.
        sys.stderr.write(f"umlpy: internal error: {call.name} answered {decision!r} "
                         "for a notified call (it fails with EPERM)\n")
        call.notifier.reply(call.req_id, -errno.EPERM)

    def _deferred(self, call, decision):
        try:
            result = decision.work()
        except OSError as e:
            result = Return(-(e.errno or errno.EIO))
        self.answer(call, result)
