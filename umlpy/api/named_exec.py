"""A named sandbox's exec for the Python API: argv runs in the running
sandbox through its daemon's control socket (lifecycle/control.py),
with pipes (or our own fds) as its stdin, stdout and stderr.  One
selector loop writes the input, reads both outputs and waits for the
exit, so that neither side ever waits on a full pipe.

Unlike ``umlpy exec`` (lifecycle/client.py) it installs no signal
handler (forwarding ours would take the calling program's, and only
works in the main thread): it may be called from any thread, many at
once."""
import errno
import os
import selectors
import signal
import time

from ..errors import CommandNotExecutable, CommandNotFound, UmlpyError
from ..lifecycle import control
from .result import Result

# After a timeout, how long the SIGKILL sent through the daemon has to end
# the process before it is sent from here (see _kill_from_the_host).
KILL_GRACE = 1.0
CHUNK = 65536


def run_exec(record, argv, input, capture, env, cwd, user, group, timeout):
    """argv's Result: its status (128+N for signal N), its output when
    captured, timed_out when the timeout killed it."""
    pipes = _Stdio(input, capture)
    try:
        sock = _connect(record)
    except BaseException:
        pipes.close_theirs()
        pipes.close_ours()
        raise
    try:
        try:
            control.send(sock, {"v": control.VERSION, "op": "exec", "argv": argv, "env": env,
                                "cwd": cwd, "user": user, "group": group, "tty": False},
                         pipes.theirs)
            answer, fds = control.receive(sock)
        except (OSError, control.ProtocolError) as e:
            raise UmlpyError(f"umlpy: sandbox {record.name!r}: {e}") from None
        finally:
            pipes.close_theirs()    # the daemon has its copies: EOF is the process's alone
        for fd in fds:
            os.close(fd)
        if answer is None or not answer.get("ok"):
            raise _refusal(record, answer)
        return _follow(record, sock, pipes, answer.get("pid"), timeout)
    finally:
        pipes.close_ours()
        sock.close()


def _connect(record):
    try:
        return control.connect(record.socket_path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise UmlpyError(f"umlpy: sandbox {record.name!r} is not running "
                         "(start() it first)") from None
    except OSError as e:
        raise UmlpyError(f"umlpy: sandbox {record.name!r}: {e.strerror}") from None


def _refusal(record, answer):
    """The error of an exec the daemon refused: CommandNotFound and
    CommandNotExecutable as `umlpy exec` exits 127 and 126."""
    answer = answer or {}
    error = answer.get("error", "the daemon went away")
    failure = CommandNotFound if answer.get("errno") == errno.ENOENT else \
        CommandNotExecutable if answer.get("errno") else UmlpyError
    return failure(f"umlpy: exec in {record.name!r}: {error}")


class _Stdio:
    """The process's stdin, stdout and stderr: a pipe for input given and
    for captured output, else ours.  ``theirs``: the 3 fds to pass."""

    def __init__(self, input, capture):
        self.input = b"" if input is None else \
            input.encode() if isinstance(input, str) else bytes(input)
        self.writer = self.stdout_fd = self.stderr_fd = None
        self.readers = {}           # our read end -> what it has read
        self._theirs, self._ours = [], []     # the ends we made, to close
        try:
            # ours, or /dev/null where we have none (a daemon of a program)
            stdin, stdout, stderr = (fd if _is_open(fd) else self._null() for fd in (0, 1, 2))
            if input is not None:
                stdin, self.writer = self._pipe(their_end=0)
            if capture:
                self.stdout_fd, stdout = self._pipe(their_end=1)
                self.stderr_fd, stderr = self._pipe(their_end=1)
                self.readers = {self.stdout_fd: bytearray(), self.stderr_fd: bytearray()}
        except BaseException:
            self.close_theirs()
            self.close_ours()
            raise
        self.theirs = [stdin, stdout, stderr]

    def _pipe(self, their_end):
        ends = os.pipe()
        self._theirs.append(ends[their_end])
        self._ours.append(ends[1 - their_end])
        return ends

    def _null(self):
        fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._theirs.append(fd)
        return fd

    def close_theirs(self):
        for fd in self._theirs:
            _close(fd)
        self._theirs = []

    def close_writer(self):
        """End of input: the process reads EOF."""
        self._ours.remove(self.writer)
        self.writer = _close(self.writer)

    def close_ours(self):
        for fd in self._ours:
            _close(fd)
        self._ours = []

    def output(self, fd):
        return bytes(self.readers[fd]) if fd is not None else None


def _follow(record, sock, pipes, guest_pid, timeout):
    """Feed the input, read the outputs, until the daemon says the
    process exited; kill it at the timeout.  Interrupted (a
    KeyboardInterrupt, the daemon gone), it kills the process: none runs
    on with no one waiting for it."""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    for fd in pipes.readers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    if pipes.writer is not None:
        os.set_blocking(pipes.writer, False)
        if pipes.input:
            selector.register(pipes.writer, selectors.EVENT_WRITE)
        else:
            pipes.close_writer()            # no input: EOF at once
    # at due, the next kill: through the daemon at the timeout, from the
    # host KILL_GRACE later; then nothing is due
    due = None if timeout is None else time.monotonic() + timeout
    kills, status, written = 0, None, 0
    open_readers = set(pipes.readers)
    try:
        while status is None:
            wait = None if due is None else max(0.0, due - time.monotonic())
            for key, _events in selector.select(wait):
                fd = key.fd
                if fd == sock.fileno():
                    status = _exit_status(record, sock)
                elif fd == pipes.writer:
                    written = _feed(pipes, written, selector)
                elif fd in open_readers and _read_some(pipes, fd) == 0:     # EOF
                    selector.unregister(fd)
                    open_readers.discard(fd)
            if status is not None or due is None or time.monotonic() < due:
                continue
            if kills == 0:
                _kill_through_the_daemon(sock)
                due = time.monotonic() + KILL_GRACE
            else:
                _kill_from_the_host(record, guest_pid)
                due = None
            kills += 1
    except BaseException:
        if status is None:
            _kill_through_the_daemon(sock)
            _kill_from_the_host(record, guest_pid)
        raise
    finally:
        selector.close()
    # What the process wrote before it exited is in the pipes: take it (not
    # what a process it left behind writes later: that would wait for its end).
    for fd in open_readers:
        while _read_some(pipes, fd):
            pass                        # until EOF (0) or empty for now (None)
    return Result(status, pipes.output(pipes.stdout_fd), pipes.output(pipes.stderr_fd), None,
                  timed_out=kills > 0)


def _exit_status(record, sock):
    """The status, if this message of the daemon's is the exit; else None."""
    try:
        answer, fds = control.receive(sock)
    except (OSError, control.ProtocolError):
        answer, fds = None, []
    for fd in fds:
        os.close(fd)
    if answer is None:
        raise UmlpyError(f"umlpy: exec in {record.name!r}: the sandbox's daemon went away")
    if answer.get("event") == "exited":
        return int(answer.get("status", 255))
    return None


def _feed(pipes, written, selector):
    """Write what the pipe takes of the input; at its end (or when the
    process closed its stdin) close our end: the process sees EOF."""
    try:
        written += os.write(pipes.writer, memoryview(pipes.input)[written:written + CHUNK])
    except BlockingIOError:
        return written
    except BrokenPipeError:
        written = len(pipes.input)
    if written >= len(pipes.input):
        selector.unregister(pipes.writer)
        pipes.close_writer()
    return written


def _read_some(pipes, fd):
    """How many bytes fd gave (0 at EOF), None if it has none now."""
    try:
        data = os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    pipes.readers[fd] += data
    return len(data)


def _kill_through_the_daemon(sock):
    """SIGKILL to the process's group, as `umlpy exec` forwards a signal."""
    try:
        control.send(sock, {"op": "signal", "signal": int(signal.SIGKILL)})
    except OSError:
        pass


def _kill_from_the_host(record, guest_pid):
    """The process is still there KILL_GRACE after the daemon was asked to
    kill it (a daemon too busy, or one older than SIGKILL's forwarding):
    its group is killed here, by its host pid (ours to signal: the control
    socket is the daemon's user's alone)."""
    from ..lifecycle.client import request
    try:
        processes = request(record, "ps")["processes"]
    except UmlpyError:
        return                  # the daemon is gone, and the process with it
    for p in processes:
        if p.get("pid") == guest_pid and p.get("host_pid"):
            try:
                os.killpg(p["host_pid"], signal.SIGKILL)    # it leads its session
            except OSError:
                try:
                    os.kill(p["host_pid"], signal.SIGKILL)
                except OSError:
                    pass


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass
    return None
