"""The daemon's control socket (protocol: control.py, docs/CONTROL.md).

Only the user who owns the sandbox may talk to it: the socket is in the
record's 0700 directory, and each connection's SO_PEERCRED must show the
daemon's own uid.  The guest never sees it: the registry is outside every
guest's view (an image root), or hidden in it (the host's tree), and a
guest cannot connect to a host socket it did not make (syscalls/net.py).

Requests: info, ps, exec, signal (within an exec), kill, stop."""
import os
import signal
import socket
import threading
import time

from . import control
from ..abi.ioctl import WINSIZE
from ..abi.socket import UCRED
from .initproto import ExecSession

# SIGSTOP would leave a client's process stopped with no terminal to
# continue it; SIGKILL is an exec's timeout (the API's)
SIGNALS_AN_EXEC_MAY_FORWARD = frozenset(range(1, 65)) - {signal.SIGSTOP}


class ControlServer:
    def __init__(self, record, kernel, channel, config, env):
        self.record = record
        self.kernel = kernel
        self.channel = channel
        self.config = config
        self.env = env
        self.started = time.time()
        self.stopping = False
        self.sock = None
        self.reporters = set()      # threads telling exec clients a status

    # the socket ------------------------------------------------------------
    def start(self):
        path = self.record.socket_path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(control.short_path(path))
        finally:
            os.umask(old)
        sock.listen(64)
        self.sock = sock
        threading.Thread(target=self._accept, name="umlpy-control", daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="umlpy-control-conn").start()

    def _serve(self, conn):
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
            uid = UCRED.get(creds, "uid")
            if uid != os.getuid():
                control.send(conn, {"ok": False, "error": "not the sandbox's owner"})
                return
            message, fds = control.receive(conn)
            if message is None:
                return
            try:
                self._request(conn, message, fds)
            finally:
                for fd in fds:
                    _close(fd)
        except (OSError, control.ProtocolError):
            pass
        finally:
            conn.close()

    def _request(self, conn, message, fds):
        if message.get("v") != control.VERSION:
            control.send(conn, {"ok": False, "error": f"protocol version {message.get('v')!r} "
                                f"is not this daemon's ({control.VERSION})"})
            return
        op = message.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) and op.isidentifier() \
            else None
        if handler is None:
            control.send(conn, {"ok": False, "error": f"unknown request {op!r}"})
            return
        handler(conn, message, fds)

    # requests --------------------------------------------------------------
    def op_info(self, conn, message, fds):
        procs = self.processes()
        control.send(conn, {"ok": True, "pid": os.getpid(), "started": self.started,
                            "processes": len(procs),
                            "memory": sum(p["rss"] for p in procs),
                            "net": self.config.net.mode if self.config.net is not None else None,
                            "stopping": self.stopping})

    def op_ps(self, conn, message, fds):
        control.send(conn, {"ok": True, "processes": self.processes()})

    def op_kill(self, conn, message, fds):
        sig = message.get("signal")
        if not isinstance(sig, int) or not 0 < sig < 65:
            control.send(conn, {"ok": False, "error": f"bad signal {sig!r}"})
            return
        targets = [p["host_pid"] for p in self.processes()] if message.get("all") \
            else [self.init_host_pid()]
        # answered first: a signal that ends the guest may end the daemon
        # before an answer sent after it (seen: "the daemon went away")
        control.send(conn, {"ok": True})
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def op_stop(self, conn, message, fds):
        grace = message.get("timeout", 10)
        if not isinstance(grace, (int, float)) or grace < 0:
            control.send(conn, {"ok": False, "error": f"bad timeout {grace!r}"})
            return
        self.stopping = True
        # answered first: the daemon may be gone as soon as init is
        control.send(conn, {"ok": True})
        self.channel.terminate()
        timer = threading.Timer(grace, self.kill_everything)
        timer.daemon = True
        timer.start()

    def op_exec(self, conn, message, fds):
        argv, env, cwd = message.get("argv"), message.get("env") or {}, message.get("cwd") or "/"
        user, group = message.get("user") or "", message.get("group") or ""
        tty = bool(message.get("tty"))
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)) or \
                not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()) \
                or not all(isinstance(x, str) for x in (cwd, user, group)):
            control.send(conn, {"ok": False, "error": "bad exec request"})
            return
        if self.stopping:
            control.send(conn, {"ok": False, "error": "the sandbox is stopping"})
            return
        master = None
        if tty:
            master, slave = os.openpty()
            stdio = [slave] * 3
            _set_window(master, message.get("rows"), message.get("cols"))
        elif len(fds) == 3:
            stdio, slave = fds, None
        else:
            control.send(conn, {"ok": False, "error": "an exec without a terminal passes 3 fds"})
            return
        full_env = dict(self.env)
        full_env.update(env)
        try:
            session = self.spawn_exec(message, argv, full_env, cwd, stdio, user, group, tty)
        finally:
            if slave is not None:
                os.close(slave)
        pid = session.wait_started(30)
        if pid is None:
            if master is not None:
                os.close(master)
            control.send(conn, {"ok": False, "errno": session.errno,
                                "error": f"{argv[0]}: {os.strerror(session.errno or 5)}"})
            return
        try:
            control.send(conn, {"ok": True, "event": "started", "pid": pid},
                         [master] if master is not None else ())
        finally:
            if master is not None:
                os.close(master)    # the client's copy is the terminal's now
        self._follow(conn, session)

    def spawn_exec(self, message, argv, env, cwd, stdio, user, group, tty):
        """init's session of an exec request (umlpy-oci's server adds its
        container's confinement)."""
        return self.channel.spawn(argv, env, cwd, stdio, user, group, tty)

    def _follow(self, conn, session):
        """Forward the client's signals until the process exits; then its
        status.  A client that goes away leaves the process running (its
        terminal, if any, hangs up: the kernel sends SIGHUP)."""
        waiter = threading.Thread(target=self._report_exit, args=(conn, session), daemon=True)
        self.reporters.add(waiter)
        waiter.start()
        while True:
            try:
                message, fds = control.receive(conn)
            except (OSError, control.ProtocolError):
                break
            for fd in fds:
                _close(fd)
            if message is None:
                break
            sig = message.get("signal")
            if message.get("op") == "signal" and sig in SIGNALS_AN_EXEC_MAY_FORWARD:
                self.channel.signal(session.id, sig)
        waiter.join()
        self.reporters.discard(waiter)

    def finish(self, timeout=2.0):
        """The guest is gone: stop listening, and give the exec clients
        still connected their statuses before the daemon exits."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for waiter in list(self.reporters):
            waiter.join(max(0.0, deadline - time.monotonic()))

    def _report_exit(self, conn, session):
        status = session.wait_exited()
        from ..kernel.kernel import exit_status_of
        try:
            control.send(conn, {"event": "exited", "status": exit_status_of(status or 0)
                                if session.errno is None or session.pid is not None else 255})
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # the guest's processes -----------------------------------------------------
    def init_host_pid(self):
        return self.kernel.processes.main

    def processes(self):
        """The guest's processes: guest pid, parent, uid, state, command,
        resident memory; read from the host's /proc under the kernel's
        lock (the table changes under the tracer's thread)."""
        with self.kernel.lock:
            table = self.kernel.processes
            tids = list(table.live_tids())
            guest_of = {tid: table.guest_tid(tid) for tid in tids}
        out = []
        page = os.sysconf("SC_PAGE_SIZE")
        for tid in tids:
            status = _status_fields(tid)
            if status is None or status.get("Tgid") != str(tid):
                continue        # a thread, or gone
            try:
                with open(f"/proc/{tid}/cmdline", "rb") as f:
                    cmd = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
                with open(f"/proc/{tid}/statm") as f:
                    rss = int(f.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
            ppid = int(status.get("PPid", "0"))
            out.append({"pid": guest_of.get(tid), "ppid": guest_of.get(ppid, 0),
                        "host_pid": tid, "state": status.get("State", "?")[:1],
                        "uid": self.guest_uid(int(status.get("Uid", "0").split()[1])),
                        "rss": rss, "cmd": cmd})
        out.sort(key=lambda p: p["pid"] or 0)
        return out

    def guest_uid(self, host_uid):
        vfs = self.kernel.vfs
        return vfs.idmap.uid_in(host_uid) if vfs is not None else host_uid

    def exit_code(self, reason, status):
        """The daemon's exit status, once the guest is gone: whether it
        stopped as asked (no one waits for a named sandbox's daemon)."""
        return 0 if reason == "stopped" else 1

    def kill_everything(self):
        """SIGKILL init: in its pid namespace, every guest process goes
        with it; without one (--pid-host), each is killed."""
        if self.kernel.pid_namespace:
            pids = [self.init_host_pid()]
        else:
            with self.kernel.lock:
                pids = list(self.kernel.processes.live_tids())
        for pid in pids:
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _status_fields(tid):
    try:
        with open(f"/proc/{tid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def _set_window(fd, rows, cols):
    if isinstance(rows, int) and isinstance(cols, int) and 0 < rows < 65536 and 0 < cols < 65536:
        import fcntl
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, WINSIZE.fromdict({"ws_row": rows, "ws_col": cols}))


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


__all__ = ["ControlServer", "ExecSession"]
