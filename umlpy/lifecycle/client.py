"""The commands' side of a daemon's control socket (control.py).

exec passes its own stdin, stdout and stderr to the daemon, which hands
them to the process init starts: the guest writes straight to them, no
copy on the way.  With a terminal (-t), the daemon makes a pty and sends
its master back; this side puts its own terminal in raw mode and copies
between the two, and passes window-size changes on (as docker exec -t)."""
import errno
import os
import select
import signal
import sys

from . import control
from ..errors import CommandNotExecutable, CommandNotFound, UmlpyError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


def _connect(record):
    try:
        return control.connect(record.socket_path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise UmlpyError(f"umlpy: sandbox {record.name!r} is not running "
                         f"(umlpy start {record.name})") from None
    except OSError as e:
        raise UmlpyError(f"umlpy: sandbox {record.name!r}: {e.strerror}") from None


def request(record, op, **fields):
    """One request, its answer (a dict with ok True), or UmlpyError."""
    return control.request(record.socket_path, op, f"umlpy: sandbox {record.name!r}",
                           f" (umlpy start {record.name})", **fields)


def execute(record, argv, env=None, cwd="/", user="", group="", tty=False, stdio=(0, 1, 2)):
    """Run argv in the running sandbox; returns its exit status (128+N
    for signal N)."""
    sock = _connect(record)
    message = {"v": control.VERSION, "op": "exec", "argv": list(argv), "env": dict(env or {}),
               "cwd": cwd, "user": user, "group": group, "tty": tty}
    if tty:
        rows, cols = _window(stdio[0])
        message.update(rows=rows, cols=cols)
    try:
        control.send(sock, message, () if tty else stdio)
        answer, fds = control.receive(sock)
    except (OSError, control.ProtocolError) as e:
        sock.close()
        raise UmlpyError(f"umlpy: sandbox {record.name!r}: {e}") from None
    if answer is None or not answer.get("ok"):
        sock.close()
        error = (answer or {}).get("error", "the daemon went away")
        failure = CommandNotFound if (answer or {}).get("errno") == errno.ENOENT else \
            CommandNotExecutable if (answer or {}).get("errno") else UmlpyError
        raise failure(f"umlpy: exec in {record.name!r}: {error}")
    master = fds[0] if tty and fds else None
    forwarded = _forward_signals(sock)
    try:
        if master is not None:
            return _relay(sock, master, stdio)
        return _wait_exit(sock)
    finally:
        for sig, old in forwarded.items():
            signal.signal(sig, old)
        if master is not None:
            os.close(master)
        sock.close()


def _forward_signals(sock):
    def forward(sig, _frame):
        try:
            control.send(sock, {"op": "signal", "signal": sig})
        except OSError:
            pass
    old = {}
    for sig in FORWARDED + (signal.SIGWINCH,):
        if sig != signal.SIGWINCH:
            old[sig] = signal.signal(sig, forward)
    return old


def _wait_exit(sock):
    while True:
        try:
            answer, fds = control.receive(sock)
        except InterruptedError:
            continue
        except (OSError, control.ProtocolError):
            answer, fds = None, []
        for fd in fds:
            os.close(fd)
        if answer is None:
            raise UmlpyError("umlpy: exec: the sandbox's daemon went away")
        if answer.get("event") == "exited":
            return int(answer.get("status", 255))


def _window(fd):
    import fcntl
    import termios
    from ..abi.ioctl import WINSIZE
    try:
        size = WINSIZE.todict(fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(WINSIZE.size)))
        return size["ws_row"], size["ws_col"]
    except OSError:
        return 24, 80


def _relay(sock, master, stdio):
    """Copy our terminal to the pty and back until the process exits."""
    import fcntl
    import termios
    import tty
    from ..abi.ioctl import WINSIZE
    stdin, stdout = stdio[0], stdio[1]
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin, termios.TCSANOW)     # keep what was typed ahead

    def resize(_sig, _frame):
        rows, cols = _window(stdin)
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ,
                        WINSIZE.fromdict({"ws_row": rows, "ws_col": cols}))
        except OSError:
            pass
    old_winch = signal.signal(signal.SIGWINCH, resize)
    reading_stdin = reading_master = True
    try:
        while True:
            watch = [sock.fileno()] + ([master] if reading_master else []) + \
                ([stdin] if reading_stdin else [])
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:     # EIO: no slave is open any more
                    data = b""
                if data:
                    _write_all(stdout, data)
                else:
                    reading_master = False
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    _write_all(master, data)
                else:
                    reading_stdin = False
                    _write_all(master, b"\x04")     # end of input, as a terminal says it
            if sock.fileno() in ready:
                status = _wait_exit(sock)
                _drain(master, stdout)
                return status
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _drain(master, stdout):
    """What the process wrote just before it exited."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        except BrokenPipeError:
            return
        data = data[n:]


def stdout_flush():
    try:
        sys.stdout.flush()
    except OSError:
        pass
