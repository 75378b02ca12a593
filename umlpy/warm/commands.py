"""umlpy warm start|stop|ls: the user's warm pools (pool.py)."""
import os
import sys

from ..errors import BadInput, UmlpyError, one_line
from ..lifecycle import control
from . import wire

USAGE = """usage: umlpy warm start [--size N] [--idle SECONDS] [RUN OPTIONS]
       umlpy warm stop [--all | RUN OPTIONS]
       umlpy warm ls

Keep sandboxes pre-started for 'umlpy run RUN OPTIONS -- PROG': such a run,
given its options exactly as here, claims one in a few milliseconds instead
of making its own.  A run is served only when it would be a cold run's twin
(no terminal, the same user and groups, the options meaning the same in
its cwd); every other run is made as without a pool.  A pool ends with
'umlpy warm stop', or after SECONDS without a run (default 900).
--size N keeps N spares ready (default 1, at most 8).  UMLPY_WARM=0 in a
run's environment makes it cold.
"""
MAX_SIZE = 8
# what a throwaway sandbox made ahead of its run cannot be
NOT_WARM = {"upper": "--upper: a kept upper layer is one run's at a time",
            "breaks": "--break stops in pdb on a terminal, which a pool has not",
            "log_level": "--log: its messages would go to the pool, not to the run",
            "preserve_fds": "--preserve-fds: the run's other descriptors are not passed on"}


def main(words):
    try:
        if not words or words[0] in ("-h", "--help"):
            sys.stdout.write(USAGE) if words else sys.stderr.write(USAGE)
            return 0 if words else 2
        command, words = words[0], words[1:]
        if command == "start":
            return start(words)
        if command == "stop":
            return stop(words)
        if command == "ls":
            if words:
                raise BadInput(f"umlpy warm ls: unexpected argument {words[0]!r}")
            return ls()
        raise BadInput(f"umlpy warm: unknown command {command!r} (start, stop or ls)")
    except UmlpyError as e:
        msg = one_line(str(e))
        print(msg if msg.startswith("umlpy") else f"umlpy: {msg}", file=sys.stderr)
        return e.exit_status


def _own_flags(words):
    size, idle = 1, 900.0
    while words and words[0] in ("--size", "--idle"):
        if len(words) < 2:
            raise BadInput(f"umlpy warm start: {words[0]} needs a value")
        flag, value, words = words[0], words[1], words[2:]
        try:
            number = int(value) if flag == "--size" else float(value)
        except ValueError:
            raise BadInput(f"umlpy warm start: {flag} {value!r}: not a number") from None
        if flag == "--size":
            if not 1 <= number <= MAX_SIZE:
                raise BadInput(f"umlpy warm start: --size {value}: from 1 to {MAX_SIZE}")
            size = number
        else:
            if not number > 0:
                raise BadInput(f"umlpy warm start: --idle {value}: more than 0 seconds")
            idle = number
    return size, idle, words


def start(words):
    size, idle, words = _own_flags(words)
    if "--" in words:
        raise BadInput("umlpy warm start: run options only: the program is the run's")
    from ..lifecycle.registry import run_options
    config, argv, given = run_options(words + ["--", "true"], "umlpy warm start")
    for name, why in NOT_WARM.items():
        if config.is_set(name):
            raise BadInput(f"umlpy warm start: {why}")
    _check_one_id_block()
    from .pool import options_meaning
    canonical, _argv = options_meaning(words + ["--", "true"], os.getcwd())
    path = wire.socket_path(wire.pool_key(words, os.environ))
    if _info(path) is not None:
        raise BadInput(f"umlpy warm start: a pool for these options already runs ({path})")
    _make_dir(os.path.dirname(path))
    from ..lifecycle.daemon import init_program
    program = init_program()
    return _daemonize(path, config, words, canonical, size, idle, program)


def _check_one_id_block():
    """A run of a user with subordinate ids re-enters umlpy in a user
    namespace of its own (kernel/identity.py): a pool outside it could
    serve no such run as its twin."""
    from ..hostuser import SUBORDINATE_ENV
    from ..kernel.identity import subordinate_maps
    if os.environ.get(SUBORDINATE_ENV) or (
            os.geteuid() != 0 and subordinate_maps(os.geteuid(), os.getegid()) is not None):
        raise BadInput("umlpy warm start: runs in your subordinate ids are made in a user "
                       "namespace of their own, which a pool does not keep (yet)")


def _make_dir(path):
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not os.path.isdir(path) or \
            os.path.islink(path):
        raise UmlpyError(f"umlpy warm start: {path} must be a directory of yours, closed to "
                         "others (mode 0700)")


def _daemonize(path, config, words, canonical, size, idle, program):
    import socket
    from .pool import Pool
    from .sandbox import ignore_terminal_signals
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        os.unlink(path)         # a pool's that died (_info found no one there)
    except FileNotFoundError:
        pass
    from ..lifecycle.control import short_path
    listener.bind(short_path(path))
    listener.listen(64)
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.setsid()
            if os.fork() == 0:
                ignore_terminal_signals()
                null = os.open(os.devnull, os.O_RDWR)
                log = os.open(path[:-len(".sock")] + ".log",
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                for fd in (0, 1):
                    os.dup2(null, fd)
                os.dup2(log, 2)
                os.close(null)
                os.close(log)
                import umlpy.kernel     # noqa: F401 -- loaded once, for every spare
                try:
                    Pool(listener, path, config, words, canonical, size, idle,
                         program).serve(ready_w)
                except BaseException:
                    import traceback
                    traceback.print_exc()       # the pool's log: a bug of umlpy's
                    raise
        finally:
            os._exit(0)
    listener.close()
    os.close(ready_w)
    os.waitpid(pid, 0)
    with os.fdopen(ready_r, "rb") as f:
        said = f.read(4096).decode(errors="replace").strip()
    if not said.startswith("ok "):
        raise UmlpyError("umlpy warm start: " + (said[len("error: "):] if said.startswith(
            "error: ") else "the pool died while starting"))
    print(f"umlpy: warm pool {said.split()[1]} ready for 'umlpy run "
          f"{' '.join(words + ['--'])} PROG'")
    return 0


def _ask(path, what):
    try:
        sock = control.connect(path)
    except OSError:
        return None
    try:
        sock.settimeout(5.0)
        wire.send(sock, [what])
        fields, fds = wire.receive(sock)
        for fd in fds:
            os.close(fd)
        return fields or None
    except OSError:
        return None
    finally:
        sock.close()


def _info(path):
    return _ask(path, "info")


def _paths():
    try:
        names = sorted(os.listdir(wire.pool_dir()))
    except OSError:
        return []
    return [os.path.join(wire.pool_dir(), n) for n in names if n.endswith(".sock")]


def stop(words):
    if words == ["--all"]:
        paths = _paths()
    else:
        paths = [wire.socket_path(wire.pool_key(words, os.environ))]
    stopped = 0
    for path in paths:
        if _ask(path, "stop") == ["stopped"]:
            stopped += 1
    if not stopped and words != ["--all"]:
        raise BadInput("umlpy warm stop: no pool runs for these options")
    return 0


def ls():
    print(f"{'PID':>8} {'SERVED':>7} {'READY':>5}  OPTIONS")
    for path in _paths():
        fields = _info(path)
        if fields is None or fields[0] != "info" or len(fields) < 5:
            continue
        pid, served, ready, _cwd, *words = fields[1:]
        print(f"{pid:>8} {served:>7} {ready:>5}  {' '.join(words) or '(none)'}")
    return 0
