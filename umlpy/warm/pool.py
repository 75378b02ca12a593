"""A warm pool: one daemon per user and set of run options, keeping
pre-started sandboxes (sandbox.py) for `umlpy run` to claim.

The pool is one thread and forks its sandboxes: every module a guest
kernel needs is loaded once, here, and a fork makes the next spare while
the last one serves.  A request is served only when it is a cold run's
twin: the same user and groups (SO_PEERCRED, SO_PEERGROUPS), a caller no
one traces (a guest that reached the socket would get a sandbox of its
own user's, never more, but gets none), the same options meaning the same
thing (parsed again in the caller's cwd), a protocol of this version.
Anything else is answered "cold", and the caller runs as without a pool.
The pool ends when told to, or when no run came for its idle time; its
spares end with it (each holds a socket to it)."""
import os
import select
import socket
import sys
import time

from ..abi.socket import SO_PEERGROUPS, UCRED
from ..errors import one_line
from ..lifecycle.daemon import report_line
from . import wire
from .sandbox import run as run_sandbox

WAIT_FOR_SPARE = 5.0        # a claim waits this long for a spare being made, then runs cold


class Spare:
    def __init__(self, pid, sock):
        self.pid = pid
        self.sock = sock
        self.ready = False


class Pool:
    def __init__(self, listener, path, config, words, canonical, size, idle, program):
        self.listener = listener
        self.path = path
        self.config = config
        self.words = words
        self.canonical = canonical
        self.size = size
        self.idle = idle
        self.program = program
        self.cwd = os.getcwd()
        self.log_path = path[:-len(".sock")] + ".log"
        self.spares = {}            # fd -> Spare
        self.claimed = {}           # fd -> Spare handed a run, until it says how it went
        self.waiting = []           # (deadline, client socket, fields, fds)
        self.served = 0
        self.last_request = time.monotonic()
        self.stopping = False

    def serve(self, ready_fd=None):
        self.ready_fd = ready_fd
        self._replenish()
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        while not self.stopping:
            for fd in [*self.spares, *self.claimed]:
                poller.register(fd, select.POLLIN)
            timeout = self._timeout()
            events = poller.poll(None if timeout is None else timeout * 1000)
            for fd in [*self.spares, *self.claimed]:
                poller.unregister(fd)
            # a spare's news first: a claimed one says how its run went
            # before its caller hears "started", so `ls` after a run counts it
            events.sort(key=lambda event: event[0] == self.listener.fileno())
            for fd, _ev in events:
                if fd == self.listener.fileno():
                    try:
                        self._accept()
                    except Exception:       # noqa: BLE001 -- one request's, not the pool's
                        import traceback
                        traceback.print_exc()
                elif fd in self.spares:
                    self._from_spare(self.spares[fd])
                elif fd in self.claimed:
                    self._outcome(self.claimed.pop(fd))
            if self.ready_fd is not None and any(s.ready for s in self.spares.values()):
                report_line(self.ready_fd, f"ok {os.getpid()}")
                self.ready_fd = None
            self._hand_out()
            self._reap()
            if not self.waiting and time.monotonic() - self.last_request > self.idle:
                break
        self.close()

    def _timeout(self):
        now = time.monotonic()
        ends = [self.last_request + self.idle] + [w[0] for w in self.waiting]
        return max(0.0, min(ends) - now)

    def _accept(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setblocking(True)
        conn.settimeout(2.0)
        try:
            fields, fds = wire.receive(conn)
        except OSError:
            conn.close()
            return
        conn.settimeout(None)
        self.last_request = time.monotonic()
        if not _same_user(conn):
            for fd in fds:
                os.close(fd)
            conn.close()        # not ours to serve, nor to explain anything to
            return
        kind = fields[0] if fields else ""
        if kind == "info":
            wire.send(conn, ["info", os.getpid(), self.served,
                             sum(s.ready for s in self.spares.values()), self.cwd, *self.words])
            conn.close()
        elif kind == "stop":
            self.stopping = True
            wire.send(conn, ["stopped"])
            conn.close()
        elif kind == "run":
            reason = self._refusal(conn, fields, fds)
            if reason:
                _cold(conn, fds, reason)
            else:
                self.waiting.append((time.monotonic() + WAIT_FOR_SPARE, conn, fields, fds))
        else:
            _cold(conn, fds, "an unknown request")

    def _refusal(self, conn, fields, fds):
        """Why this run is no cold run's twin here, or ""."""
        try:
            request = wire.Request(fields)
        except (ValueError, IndexError):
            return "a request of another version"
        if len(fds) != 3:
            return "no stdio"
        if _traced(conn):
            return "a traced caller"
        if "--" not in request.words:
            return "no program"
        dashes = request.words.index("--")
        if request.words[:dashes] == self.words and request.cwd == self.cwd:
            # the pool's own words where it parsed them: the same meaning
            return "" if dashes + 1 < len(request.words) else "no program"
        try:
            canonical, argv = options_meaning(request.words, request.cwd)
        except Exception as e:      # noqa: BLE001 -- the cold run says it properly
            return one_line(str(e)) or type(e).__name__
        if canonical != self.canonical:
            return "other options"
        if not argv or argv != request.words[dashes + 1:]:
            return "no program"
        return ""

    def _hand_out(self):
        while self.waiting:
            spare = next((s for s in self.spares.values() if s.ready), None)
            if spare is None:
                break
            _deadline, conn, fields, fds = self.waiting.pop(0)
            self.spares.pop(spare.sock.fileno(), None)
            try:
                wire.send(spare.sock, fields, [conn.fileno(), *fds])
                self.claimed[spare.sock.fileno()] = spare
            except OSError:
                spare.sock.close()
                _cold(conn, fds, "the spare is gone")
                continue
            for fd in fds:
                os.close(fd)
            conn.close()
            self._replenish()       # the run's fds are closed: none is the next spare's
        now = time.monotonic()
        for late in [w for w in self.waiting if w[0] <= now]:
            self.waiting.remove(late)
            _cold(late[1], late[3], "no spare ready in time")

    def _from_spare(self, spare):
        fields = _news(spare)
        if fields[:1] == ["ready"]:
            spare.ready = True
            _preload(fields[1:])
        else:
            self._drop(spare)       # it died while being made
            if self.ready_fd is not None:
                report_line(self.ready_fd, "error: the pool's first sandbox did not start "
                            f"(its log: {self.log_path})")
                self.ready_fd = None
                self.stopping = True
                return
            self._replenish(after_failure=True)

    def _outcome(self, spare):
        fields = _news(spare)
        if fields[:1] == ["served"]:
            self.served += 1
        else:
            _log_cold(" ".join(fields[1:2]) or "the spare died")
        spare.sock.close()

    def _replenish(self, after_failure=False):
        if after_failure:
            time.sleep(0.5)         # a sandbox that cannot start must not spin
        while len(self.spares) < self.size:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            pid = os.fork()
            if pid == 0:
                try:
                    ours.close()
                    if self.ready_fd is not None:
                        os.close(self.ready_fd)
                    self.listener.close()
                    for spare in self.spares.values():
                        spare.sock.close()
                    for _d, conn, _f, fds in self.waiting:
                        conn.close()
                        for fd in fds:
                            os.close(fd)
                finally:
                    run_sandbox(theirs, self.config, self.program, self.log_path)
            theirs.close()
            self.spares[ours.fileno()] = Spare(pid, ours)

    def _drop(self, spare):
        self.spares.pop(spare.sock.fileno(), None)
        spare.sock.close()

    def _reap(self):
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def close(self):
        for spare in list(self.spares.values()):
            self._drop(spare)       # each spare ends when its socket does
        for spare in self.claimed.values():
            spare.sock.close()      # a claimed one lives on: its run is its caller's
        self.claimed = {}
        for _d, conn, _f, fds in self.waiting:
            _cold(conn, fds, "the pool is stopping")
        self.waiting = []
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()


def _preload(names):
    """Load in the pool what its last spare had to import (lazily imported
    modules of the guest kernel): every later spare finds them loaded."""
    import importlib
    for name in names:
        if name not in sys.modules and name.replace(".", "").replace("_", "").isalnum():
            try:
                importlib.import_module(name)
            except Exception:       # noqa: BLE001 -- a spare imports it itself, as before
                pass


def options_meaning(words, cwd):
    """(what run's option words mean, in cwd, as comparable words; the
    program's argv)."""
    from ..config import OPTIONS
    from ..lifecycle.registry import run_options
    here = os.getcwd()
    os.chdir(cwd)
    try:
        config, argv, _given = run_options(words)
    finally:
        os.chdir(here)
    shown = []
    for opt in OPTIONS:
        if config.is_set(opt.name):
            value = getattr(config, opt.name)
            values = value if opt.repeat else [value]
            shown.append((opt.name, tuple(_shown(opt, v) for v in values)))
    return tuple(shown), argv


def _shown(opt, value):
    try:
        return str(opt.show(opt.flag, value))
    except Exception:       # noqa: BLE001 -- a value no word can show: only itself is equal
        return repr(value)


def _peer(conn):
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
    return UCRED.get(creds, "pid"), UCRED.get(creds, "uid"), UCRED.get(creds, "gid")


def _same_user(conn):
    _pid, uid, gid = _peer(conn)
    if uid != os.geteuid() or gid != os.getegid():
        return False
    try:
        # at most 256 groups: a caller with more runs cold
        raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
    except OSError:
        return False
    groups = {int.from_bytes(raw[i:i + 4], sys.byteorder) for i in range(0, len(raw) - 3, 4)}
    return groups == set(os.getgroups())


def _traced(conn):
    """Whether someone ptraces the caller (a guest of a sandbox's, or a
    debugger's: its run is no twin of a cold one, which could not trace)."""
    pid = _peer(conn)[0]
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1]) != 0
    except OSError:
        pass
    return True


def _news(spare):
    """A spare's message ([] if it is gone); a spare sends no fds."""
    try:
        fields, fds = wire.receive(spare.sock)
    except OSError:
        return []
    for fd in fds:
        os.close(fd)
    return fields


def _log_cold(reason):
    """The pool's log (its stderr) says why a run was not served."""
    sys.stderr.write(f"umlpy: a run went cold: {one_line(reason)}\n")
    sys.stderr.flush()


def _cold(conn, fds, reason):
    _log_cold(reason)
    for fd in fds:
        os.close(fd)
    try:
        wire.send(conn, ["cold", reason])
    except OSError:
        pass
    conn.close()
