"""The container's daemon: a named sandbox's (lifecycle/daemon.py) with
the OCI runtime's requests on its control socket.

`umlpy-oci create` starts the daemon (umlpy-init waits as pid 1) and
hands it, in `oci_prepare`, the container's process and create's own
stdin, stdout and stderr, which the daemon holds: an engine gives the
container its stdio through create, and calls start with other fds.
`oci_start` asks init to start the process with them as INIT (exec id
0), whose exit ends the sandbox with its status, which becomes the
daemon's exit status: the daemon's pid is the one in --pid-file, and an
engine (conmon, containerd's shim) waits for it as runsc's sandbox
process is waited for."""
import json
import os
import resource
import threading

from ..abi import resource as R
from ..lifecycle import control
from ..lifecycle.server import ControlServer
from . import sysctl as oci_sysctl

INIT_ID = 0     # init.c: exec id 0 is INIT, whose exit ends the sandbox


class OciServer(ControlServer):
    def __init__(self, record, kernel, channel, config, env):
        super().__init__(record, kernel, channel, config, env)
        self.container_dir = os.path.dirname(record.dir)
        self.held = None        # (stdio fds, process) from create, until start
        self.session = None     # the container's process, once started
        self.failed = None      # the exit status of a process that could not start
        # the container's process's confinement (config.py check_process):
        # every exec's too, but for what exec's process.json gives
        self.confinement = {}
        self.lock = threading.Lock()

    def _mark(self, leaf, data):
        from ..lifecycle.registry import write_json
        write_json(os.path.join(self.container_dir, leaf), data)

    def _answer(self, conn, error=None, **fields):
        control.send(conn, {"ok": False, "error": error} if error else {"ok": True, **fields})

    def op_oci_prepare(self, conn, message, fds):
        process = message.get("process")
        with self.lock:
            if self.held is not None or self.session is not None:
                return self._answer(conn, "the container's process is already set")
            if len(fds) != 3 or not isinstance(process, dict):
                return self._answer(conn, "oci_prepare takes the process and 3 fds")
            sysctl = message.get("sysctl") or {}
            try:
                # the container's kernel parameters, in its own namespaces
                # (those of init, which the process will share)
                oci_sysctl.apply(self.init_host_pid(), sysctl)
            except OSError as e:
                return self._answer(conn, f"cannot set {e.strerror or e}")
            # fds are closed when the request ends: the held ones are copies
            self.held = ([os.dup(fd) for fd in fds], process)
            self.confinement = dict(process.get("confinement") or {})
        self._answer(conn, init_pid=self.init_host_pid())

    def op_oci_start(self, conn, message, fds):
        with self.lock:
            if self.session is not None or self.failed is not None:
                return self._answer(conn, "the container was started already")
            if self.held is None or self.stopping:
                return self._answer(conn, "the container has no process to start")
            stdio, process = self.held
            self.held = None
            try:
                self._set_limits(process)
                session = self.channel.spawn(process["argv"], process["env"], process["cwd"],
                                             stdio, process["user"], process["group"],
                                             tty=bool(process.get("terminal")),
                                             exec_id=INIT_ID,
                                             confinement=process.get("confinement"))
            except (OSError, KeyError, TypeError, ValueError) as e:
                self.failed = 126
                self.channel.terminate()
                said = e.strerror if isinstance(e, OSError) and e.strerror else e
                return self._answer(conn, f"cannot start the container: {said}")
            finally:
                for fd in stdio:
                    os.close(fd)
            pid = session.wait_started(30)
            if pid is None:
                # as runc: 127 when the program is not found, else 126
                self.failed = 127 if session.errno == 2 else 126
                self.channel.terminate()
                return self._answer(conn, f"{process['argv'][0]}: "
                                    f"{os.strerror(session.errno or 5)}")
            self.session = session
            self._mark("started", {"pid": pid})
            threading.Thread(target=self._watch, args=(session,), daemon=True,
                             name="umlpy-oci-exit").start()
            self._answer(conn, pid=pid)

    def spawn_exec(self, message, argv, env, cwd, stdio, user, group, tty):
        """An exec in the container (umlpy-oci exec, umlpy exec): confined
        as the container's process is, its seccomp filter always (as
        runc's exec), its capabilities, umask and groups unless exec's
        process.json gave its own (execute.py: "confinement")."""
        confinement = dict(self.confinement)
        asked = message.get("confinement") or {}
        try:
            if not isinstance(asked, dict):
                raise TypeError("confinement")
            caps = asked.get("capabilities")
            if caps is not None:
                if not isinstance(caps, dict) or not all(
                        isinstance(v, list) and all(isinstance(n, int) and 0 <= n < 64
                                                    for n in v) for v in caps.values()):
                    raise TypeError("capabilities")
                confinement["capabilities"] = caps
            if asked.get("umask") is not None:
                confinement["umask"] = int(asked["umask"])
            if asked.get("groups") is not None:
                confinement["groups"] = [int(g) for g in asked["groups"]]
            return self.channel.spawn(argv, env, cwd, stdio, user, group, tty,
                                      confinement=confinement)
        except (ValueError, TypeError):
            session = self.channel.session()
            session._set(errno=22)      # EINVAL: a bad request
            return session

    def _watch(self, session):
        from ..kernel.kernel import exit_status_of
        status = session.wait_exited()
        self._mark("exited", {"status": exit_status_of(status or 0)
                              if session.errno is None else 137})

    def _set_limits(self, process):
        """The process's rlimits and oom_score_adj, set on init just before
        it forks the process (which inherits them).  A limit umlpy sets
        itself for the sandbox (--memory's, --nofile's, the memlock one)
        is only ever lowered."""
        init = self.init_host_pid()
        # core dumps: umlpy gives none (a dump is written by the host's
        # kernel, outside the guest kernel's view), so a container's core
        # limit is lowered to umlpy's
        owned = {R.RLIMIT_MEMLOCK, R.RLIMIT_CORE}
        if self.config.memory is not None:
            owned |= {R.RLIMIT_DATA, R.RLIMIT_MSGQUEUE}
        if self.config.nofile is not None:
            owned.add(R.RLIMIT_NOFILE)
        for number, soft, hard in process.get("rlimits") or ():
            if number in owned:
                now_soft, now_hard = resource.prlimit(init, number)
                hard = min(hard, _finite(now_hard))
                soft = min(soft, hard)
            try:
                resource.prlimit(init, number, (_rlim(soft), _rlim(hard)))
            except OSError as e:
                name = next((n for n, v in vars(R).items() if n.startswith("RLIMIT_") and
                             v == number), str(number))
                raise OSError(e.errno, f"{name} {soft}:{hard}: {e.strerror} (the host's "
                              f"hard limit is {_finite(resource.prlimit(init, number)[1])})")
        oom = process.get("oom_score_adj")
        if oom is not None:
            with open(f"/proc/{init}/oom_score_adj", "w") as f:
                f.write(str(oom))

    def op_oci_signal(self, conn, message, fds):
        """A signal to the container's process itself (kill without --all)."""
        sig = message.get("signal")
        if not isinstance(sig, int) or not 0 < sig < 65:
            return self._answer(conn, f"bad signal {sig!r}")
        session = self.session
        target = None
        if session is not None and session.pid is not None:
            target = next((p["host_pid"] for p in self.processes() if p["pid"] == session.pid),
                          None)
        if target is None:
            return self._answer(conn, "the container's process is not running")
        # answered first, as ControlServer.op_kill: the signal may end the
        # daemon before an answer sent after it
        self._answer(conn)
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            pass

    def finish(self, timeout=2.0):
        """The guest is gone: a process that exits at once may end the
        sandbox before start's answer went out; it goes out first (the
        lock is held until it has)."""
        if self.lock.acquire(timeout=timeout):
            self.lock.release()
        super().finish(timeout)

    def exit_code(self, reason, status):
        """The container's exit status: its process's (init exits with
        INIT's), 127 or 126 when it could not start, 255 when the sandbox
        crashed."""
        if self.failed is not None:
            return self.failed
        if reason != "stopped":
            return 255
        try:
            with open(os.path.join(self.container_dir, "exited")) as f:
                return int(json.load(f)["status"]) & 0xff
        except (OSError, ValueError, KeyError, TypeError):
            return (status or 0) & 0xff


def _finite(value):
    return (1 << 63) - 1 if value == resource.RLIM_INFINITY else value


def _rlim(value):
    """config.json's 2^64-1 is RLIM_INFINITY."""
    return resource.RLIM_INFINITY if value >= (1 << 63) - 1 else value
