"""The control protocol between umlpy's commands and a sandbox's daemon
(docs/CONTROL.md is its text).

A UNIX SOCK_SEQPACKET socket: each message is one JSON object in one
packet (so no framing), file descriptors ride along as SCM_RIGHTS.  Every
request carries ``"v": VERSION``; a daemon answers a version it does not
speak with an error, never a guess."""
import array
import json
import socket

VERSION = 1
MAX_MESSAGE = 1 << 20
MAX_FDS = 4


class ProtocolError(Exception):
    pass


def send(sock, message, fds=()):
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ProtocolError("message too long")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock):
    """(message, fds); (None, []) at the end of the connection."""
    fds = array.array("i")
    data, ancdata, flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            _close(fd)
        raise ProtocolError("message truncated")
    if not data:
        for fd in fds:
            _close(fd)
        return None, []
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        for fd in fds:
            _close(fd)
        raise ProtocolError("not a JSON object")
    return message, list(fds)


def _close(fd):
    import os
    try:
        os.close(fd)
    except OSError:
        pass


_held_dirs = {}


def short_path(path):
    """path, or a name of it that fits a sockaddr_un (108 bytes): through
    an fd of its directory, kept open for the process's life."""
    import os
    if len(os.fsencode(path)) < 100:
        return path
    parent, leaf = os.path.split(path)
    # keyed by process too: a daemon forked from a program that held one
    # has closed its copy
    key = (os.getpid(), parent)
    fd = _held_dirs.get(key)
    if fd is None:
        fd = _held_dirs[key] = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{leaf}"


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(short_path(path))
    except OSError:
        sock.close()
        raise
    return sock


def request(path, op, who, how_to_start="", fds=(), **fields):
    """One request on a daemon's control socket: its answer (a dict with ok
    True), or UmlpyError saying so for who ("umlpy: sandbox 'x'")."""
    from ..errors import UmlpyError
    try:
        sock = connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise UmlpyError(f"{who} is not running{how_to_start}") from None
    except OSError as e:
        raise UmlpyError(f"{who}: {e.strerror}") from None
    try:
        send(sock, {"v": VERSION, "op": op, **fields}, fds)
        answer, got = receive(sock)
    except (OSError, ProtocolError) as e:
        raise UmlpyError(f"{who}: the daemon did not answer ({e})") from None
    finally:
        sock.close()
    for fd in got:
        _close(fd)
    if answer is None or not answer.get("ok"):
        raise UmlpyError(f"{who}: {(answer or {}).get('error', 'the daemon went away')}")
    return answer
