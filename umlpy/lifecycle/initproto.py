"""The supervisor's side of umlpy-init's socket (fd 3 of the sandbox's
pid 1; the protocol's text is at the top of _native/init.c).

init is a guest process: what it says is the guest's word, parsed
strictly and bounded, and can at worst misreport the guest's own
processes.  One reader thread turns its messages into events for the
exec sessions waiting on them."""
import os
import socket
import threading

MAX_PACKET = 4096
FLAG_TTY = 1


class ExecSession:
    """One process started through init: its guest pid once started, its
    wait status once it exited (or the errno it could not start with)."""

    def __init__(self, exec_id):
        self.id = exec_id
        self.pid = None
        self.errno = None
        self.wait_status = None
        self.changed = threading.Condition()

    def _set(self, **what):
        with self.changed:
            for k, v in what.items():
                setattr(self, k, v)
            self.changed.notify_all()

    def wait_started(self, timeout=None):
        with self.changed:
            self.changed.wait_for(lambda: self.pid is not None or self.errno is not None, timeout)
        return self.pid

    def wait_exited(self, timeout=None):
        with self.changed:
            self.changed.wait_for(lambda: self.wait_status is not None or self.errno is not None,
                                  timeout)
        return self.wait_status


# confinement's capability sets -> init's fields
CAP_FIELDS = {"bounding": "capbnd", "effective": "capeff", "permitted": "capprm",
              "inheritable": "capinh", "ambient": "capamb"}


def confinement_fields(confinement):
    """init's optional "X" fields (init.c's header) of a dict with any of:
    umask (int), groups (the supplementary gids, exactly), capabilities
    ({set name: [capability numbers]}: bounding, effective, permitted,
    inheritable, ambient; a set not given is empty, the bounding set
    then untouched), seccomp (a BPF program's bytes), seccomp_flags and
    cgroupns (a cgroup namespace of its own)."""
    c = confinement or {}
    fields = []
    if c.get("umask") is not None:
        fields.append(f"umask={int(c['umask']):o}")
    if c.get("groups") is not None:
        fields.append("groups=" + ",".join(str(int(g)) for g in c["groups"]))
    caps = c.get("capabilities")
    if caps is not None:
        for name, key in CAP_FIELDS.items():
            numbers = caps.get(name)
            if numbers is None and name == "bounding":
                continue
            mask = sum(1 << int(n) for n in set(numbers or ()))
            fields.append(f"{key}={mask:x}")
    if c.get("seccomp"):
        program = c["seccomp"]
        if isinstance(program, str):
            program = bytes.fromhex(program)
        if not program or len(program) % 8:
            raise ValueError("a seccomp program is a whole number of sock_filter")
        fields.append(f"seccomp={program.hex()}")
        fields.append(f"seccomp_flags={int(c.get('seccomp_flags') or 0)}")
    if c.get("cgroupns"):
        fields.append("cgroupns=1")
    return fields


class InitChannel:
    def __init__(self, sock):
        self.sock = sock
        self.sessions = {}
        self.next_id = 1
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.init_pid = None

    def start(self):
        threading.Thread(target=self._read, name="umlpy-init-channel", daemon=True).start()

    def wait_closed(self, timeout):
        """Until init's end of the socket is gone (every session then has
        its end)."""
        return self.closed.wait(timeout)

    def session(self, exec_id=None):
        with self.lock:
            if exec_id is None:
                exec_id = self.next_id
                self.next_id += 1
            s = self.sessions[exec_id] = ExecSession(exec_id)
        return s

    def spawn(self, argv, env, cwd, fds, user="", group="", tty=False, exec_id=None,
              confinement=None):
        """Ask init to start argv with fds as its stdin, stdout, stderr, as
        user and group (numbers or names of the guest's own files; "":
        init's own); returns the session (wait_started() gives the guest
        pid).  confinement: an OCI container's process, init's optional
        "X" fields (confinement_fields)."""
        session = self.session(exec_id)
        fields = ["X", session.id, user, group, FLAG_TTY if tty else 0,
                  cwd, len(argv), *argv, len(env), *(f"{k}={v}" for k, v in env.items()),
                  *confinement_fields(confinement)]
        return self._send_request(session, fields, fds)

    def become(self, argv, env, cwd, fds, umask, sigign, sigblk, limits):
        """Ask init to become argv in place (a warm sandbox's run,
        umlpy/warm/sandbox.py), with fds as its stdin, stdout, stderr, the
        umask, the ignored and blocked signals (hex masks as
        /proc/PID/status shows them) and limits [(resource, soft, hard)].
        Its session's pid is set just before the execve; init's end of
        the socket closes when the execve succeeded (close-on-exec)."""
        session = self.session()
        fields = ["B", session.id, cwd, umask, sigign, sigblk, len(limits),
                  *(v for limit in limits for v in limit), len(argv), *argv,
                  len(env), *(f"{k}={v}" for k, v in env.items())]
        return self._send_request(session, fields, fds)

    def _send_request(self, session, fields, fds):
        for field in fields:
            if "\0" in str(field):
                session._set(errno=22)
                return session
        data = b"\0".join(os.fsencode(str(f)) for f in fields) + b"\0"
        try:
            socket.send_fds(self.sock, [data], list(fds))
        except OSError as e:
            session._set(errno=e.errno)
        return session

    def signal(self, exec_id, sig):
        self._send(["K", exec_id, sig])

    def terminate(self):
        self._send(["T"])

    def _send(self, fields):
        try:
            self.sock.send(b"\0".join(str(f).encode() for f in fields) + b"\0")
        except OSError:
            pass

    def _read(self):
        try:
            while True:
                data = self.sock.recv(MAX_PACKET)
                if not data:
                    break
                self._on_packet(data)
        except OSError:
            pass
        finally:
            self.closed.set()
            with self.lock:
                sessions = list(self.sessions.values())
            for s in sessions:      # init is gone: so is every process it started
                if s.wait_status is None and s.errno is None:
                    s._set(errno=104) if s.pid is None else s._set(wait_status=9)

    def _on_packet(self, data):
        fields = data.rstrip(b"\0").split(b"\0")
        if len(fields) != 3 or fields[0] not in (b"R", b"S", b"F", b"E"):
            return
        try:
            a, b = int(fields[1]), int(fields[2])
        except ValueError:
            return
        kind = fields[0]
        if kind == b"R":
            self.init_pid = a
            self.ready.set()
            return
        with self.lock:
            session = self.sessions.get(a)
            if kind == b"E":
                self.sessions.pop(a, None)
        if session is None:
            return
        if kind == b"S":
            session._set(pid=b)
        elif kind == b"F":
            session._set(errno=b or 5)
        else:
            session._set(wait_status=b & 0xffff)
