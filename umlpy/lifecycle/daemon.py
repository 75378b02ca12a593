"""`umlpy start`: a named sandbox's guest kernel, living on as a daemon.

The command forks; the child starts a session of its own and forks the
daemon, which reports back through a pipe ("ok PID" or the one-line error)
once init runs and the control socket listens, so `umlpy start` returns
only when `umlpy exec` can work, and says why when it cannot.

The daemon's main thread is the tracer (ptrace ties a tracee to the
thread that seized it): it spawns umlpy-init (_native/init.c) as the
guest's pid 1 and runs the guest kernel's loop until no guest process is
left.  Other threads talk to init (initproto.py) and serve the control
socket (server.py).  The daemon holds the record's ``alive`` lock for its
whole life, and the tracer's PTRACE_O_EXITKILL takes every guest process
with it if it dies: no guest survives its kernel."""
import os
import socket
import sys
import threading
import time

from ..errors import BadInput, UmlpyError, one_line

READY_TIMEOUT = 20.0
LOG_LIMIT = 1 << 20


def init_program():
    """The host path of umlpy-init, built with the package (setup.py)."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_native")
    path = os.path.join(here, "umlpy-init")
    if not os.access(path, os.X_OK):
        raise UmlpyError(f"umlpy: {path} is missing: umlpy-init is built with the package "
                         "(pip install, or python setup.py build_ext --inplace)")
    return path


def config_of(record, data=None):
    """The sandbox's Config, from the words its record keeps (relative
    paths in them are relative to where `umlpy create` ran)."""
    from .registry import run_options
    data = data or record.data()
    here = os.getcwd()
    try:
        os.chdir(data.get("cwd") or "/")
    except OSError:
        pass
    try:
        config, _argv, _given = run_options(list(data["words"]) + ["--", "x"],
                                            f"umlpy start {record.name}")
    finally:
        os.chdir(here)
    return config.replace(upper=record.upper, preserve_fds=1)


def start(record, prepare=None, serve=None):
    """Start the sandbox's daemon; returns its pid.  prepare(kernel), if
    given, runs in the daemon before the guest starts (the API's hooks);
    serve, if given, is the control server's class in place of
    ControlServer (the OCI runtime's, umlpy/oci/server.py, which also
    says the daemon's exit status: exit_code)."""
    from .server import ControlServer
    data = record.data()
    with record.locked():
        if record.daemon_alive():
            raise BadInput(f"umlpy: sandbox {record.name!r} is already running")
        config = config_of(record, data)
        if os.geteuid() == 0 and not config.host_root:
            check_reachable(record.dir)
        program = init_program()
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(ready_r)
                os.setsid()
                if os.fork() == 0:
                    _daemon(record, data, config, program, ready_w, prepare,
                            serve or ControlServer)
                status = 0
            except BaseException as e:     # noqa: BLE001 -- reported to the command
                report_line(ready_w, f"error {one_line(str(e)) or type(e).__name__}")
            finally:
                os._exit(status)
        os.close(ready_w)
        os.waitpid(pid, 0)
        with os.fdopen(ready_r, "rb") as f:
            said = f.read(4096).decode(errors="replace").strip()
    if said.startswith("ok "):
        return int(said.split()[1])
    reason = said[len("error "):] if said.startswith("error ") else \
        "the daemon died while starting (see 'umlpy logs --daemon " + record.name + "')"
    raise UmlpyError(reason if reason.startswith("umlpy") else f"umlpy: {reason}")


def check_reachable(path):
    """As root, the guest's host ids are a block of the sandbox's own (or,
    in a user's namespace, the subordinate ids): the guest kernel reaches
    the upper layer's files as them, so every directory above the record
    must let other users search it (registry.py)."""
    here = os.path.dirname(os.path.abspath(path))
    while True:
        st = os.stat(here)
        if not st.st_mode & 0o001:
            raise UmlpyError(f"umlpy: {here} is closed to other users (mode "
                             f"{st.st_mode & 0o7777:04o}): the sandbox's own host ids reach its "
                             "upper layer through it; give it o+x (search only), or keep "
                             "sandboxes elsewhere (UMLPY_REGISTRY)")
        if here == "/":
            return
        here = os.path.dirname(here)


def report_line(fd, text):
    """One line to the command waiting on a daemon's start, then its pipe
    closed (umlpy start, umlpy warm start)."""
    try:
        os.write(fd, text.encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


def _high(fd):
    """fd moved above the low numbers the guest's init needs."""
    import fcntl
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)
    os.close(fd)
    return high


def _daemon(record, data, config, program, ready_w, prepare, serve):
    from ..kernel import GuestKernel
    from .initproto import InitChannel
    from .logfile import BoundedLog, drain_into

    status, reason, server = None, "crashed", None
    ready_w = _high(ready_w)
    try:
        alive = record.hold_alive()
        alive.fd = _high(alive.fd)
        own_log = _high(os.open(record.path("daemon.log"),
                                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        BoundedLog.trim(record.path("daemon.log"), LOG_LIMIT)
        out_r, out_w = (_high(fd) for fd in os.pipe())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours = socket.socket(fileno=_high(ours.detach()))
        theirs_fd = _high(theirs.detach())
        null = os.open(os.devnull, os.O_RDWR)
        # The guest's init gets: stdin /dev/null, stdout and stderr the
        # log pipe, fd 3 its socket; nothing else of ours reaches it.
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(theirs_fd, 3, inheritable=True)
        keep = {0, 1, 2, 3, ready_w, alive.fd, own_log, out_r, ours.fileno()}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sys.stdout = sys.stderr = open(own_log, "w", buffering=1, closefd=False)
        os.chdir(data.get("cwd") or "/")
        if os.geteuid() == 0:
            # a directory root, binds below closed directories and sized
            # tmpfs mounts are mounted in a mount namespace of the daemon's
            # own, which only a process of one thread may enter
            # (kernel/vfs/idmapped.py): before the first thread starts
            from ..kernel.vfs.idmapped import own_mount_namespace
            try:
                own_mount_namespace()
            except OSError:
                pass        # the root is then used as it is, as by umlpy run
        record.started(os.getpid())
        init_log = BoundedLog(record.path("init.log"), LOG_LIMIT)
        threading.Thread(target=drain_into, args=(out_r, init_log), daemon=True,
                         name="umlpy-init-log").start()

        kernel = GuestKernel(config=config)
        if config.log_level is not None:
            from ..api.debugger import install_debugging     # its log: daemon.log
            install_debugging(kernel, (), config.log_level)
        if prepare is not None:
            prepare(kernel)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        env.update(config.environment)
        channel = InitChannel(ours)
        channel.start()
        server = serve(record, kernel, channel, config, env)
        kernel.spawn(["/sbin/umlpy-init"], env=env, program=program)
        os.close(3)     # init's end is init's alone: its death closes the channel
        threading.Thread(target=_when_ready, args=(record, data, server, channel, env,
                                                   ready_w), daemon=True,
                         name="umlpy-ready").start()
        ready_w = None
        status = kernel.run()
        reason = "stopped"
        channel.wait_closed(1.0)
        server.finish()
    except BaseException as e:     # noqa: BLE001 -- the record keeps why
        reason = one_line(str(e)) or type(e).__name__
        if ready_w is not None:
            report_line(ready_w, f"error {reason}")
    finally:
        try:
            record.ended(reason, status)
            os.unlink(record.socket_path)
        except OSError:
            pass
        os._exit(server.exit_code(reason, status) if server is not None else 1)


def _when_ready(record, data, server, channel, env, ready_w):
    """Once init runs: INIT, if the sandbox has one, then the control
    socket; then `umlpy start` hears "ok"."""
    try:
        if not channel.ready.wait(READY_TIMEOUT):
            raise UmlpyError("umlpy: the sandbox's init did not start in "
                             f"{READY_TIMEOUT:.0f} s")
        if data.get("init"):
            # the daemon's own stdio: /dev/null in, the log pipe out
            session = channel.spawn(data["init"], env, "/", [0, 1, 2], exec_id=0)
            if session.wait_started(READY_TIMEOUT) is None:
                raise UmlpyError(f"umlpy: INIT {data['init'][0]}: "
                                 f"{os.strerror(session.errno or 5)}")
        server.start()
        report_line(ready_w, f"ok {os.getpid()}")
    except BaseException as e:     # noqa: BLE001 -- reported to `umlpy start`
        report_line(ready_w, f"error {one_line(str(e)) or type(e).__name__}")
        channel.terminate()
        server.kill_everything()


def wait_gone(record, timeout):
    """Wait until the daemon is gone; whether it went in time."""
    deadline = time.monotonic() + timeout
    while record.daemon_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
