"""What the front end (the `umlpy` command, _native/front.c), a warm pool
(pool.py) and its sandboxes (sandbox.py) say to each other: NUL-separated
fields in one SOCK_SEQPACKET packet, fds attached with SCM_RIGHTS.

    front -> pool       "run" VERSION cwd umask sigign sigblk nice cpus
                        nlimits (resource soft hard)... nwords words...
                        nenv env...           with fds 0, 1, 2 attached
    pool -> front       "cold" reason         not served: run cold
    sandbox -> front    "exit" status         the run is over
    sandbox -> front    "started"             the program runs: no going cold now
    front -> sandbox    "kill" signal         umlpy was sent signal
    any -> pool         "info" | "stop"
    pool -> any         "info" pid served ready cwd words... | "stopped"
    spare -> pool       "ready" modules... | "served" | "cold" reason
    pool -> spare       a run request, with the caller's connection and fds
"""
import os
import socket
import sys


VERSION = "1"
MAX_REQUEST = 1 << 20
ENV_KEYS = ("TMPDIR",)      # besides UMLPY_*: what a sandbox's making reads
FRONT_ENV = ("UMLPY_WARM", "UMLPY_FRONT_SHOW")      # the front end's own (front.c)


def pool_dir():
    """The user's warm pools' sockets: under the registry of named
    sandboxes (hostuser.py), which no guest sees."""
    from ..hostuser import registry_root
    return os.path.join(registry_root(), "warm")


def pool_key(option_words, environ):
    """A pool's name: its option words as given, and the environment that
    changes how a sandbox is made (FNV-1a: cheap and the same in every
    process; the pool checks the options' meaning itself)."""
    text = "\0".join(option_words) + "\1" + "\0".join(
        f"{k}={v}" for k, v in sorted(environ.items()) if pool_env(k))
    h = 0xcbf29ce484222325
    for byte in text.encode("utf-8", "surrogateescape"):
        h = ((h ^ byte) * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


def pool_env(name):
    """Whether a variable changes how a sandbox is made (front.c has the
    same rule)."""
    return (name.startswith("UMLPY_") and name not in FRONT_ENV) or name in ENV_KEYS


def socket_path(key):
    return os.path.join(pool_dir(), key + ".sock")


def encode(fields):
    return b"\0".join(f if isinstance(f, bytes) else os.fsencode(str(f)) for f in fields) + b"\0"


def send(sock, fields, fds=()):
    data = encode(fields)
    if fds:
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    else:
        sock.send(data)


def receive(sock, max_fds=8):
    """(fields as str, fds) of one packet; ([], []) at the end."""
    data, ancillary, _flags, _addr = sock.recvmsg(
        MAX_REQUEST, socket.CMSG_SPACE(4 * max_fds), socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder)
                    for i in range(0, usable, 4)]
    if not data:
        return [], fds
    return [os.fsdecode(f) for f in data[:-1].split(b"\0")] if data.endswith(b"\0") else \
        [os.fsdecode(f) for f in data.split(b"\0")], fds


class Request:
    """A `run` request, as the pool and the sandbox read it (ValueError
    if it is not one)."""

    def __init__(self, fields):
        if len(fields) < 11 or fields[0] != "run" or fields[1] != VERSION:
            raise ValueError("not a run request of this version")
        self.cwd, umask, self.sigign, self.sigblk, nice, cpus = fields[2:8]
        self.umask = int(umask, 8)
        self.nice = int(nice)
        self.cpus = {int(c) for c in cpus.split(",") if c}
        int(self.sigign, 16), int(self.sigblk, 16)
        rest = fields[8:]
        count, rest = int(rest[0]), rest[1:]
        self.limits = [(int(rest[i]), int(rest[i + 1]), int(rest[i + 2]))
                       for i in range(0, 3 * count, 3)]
        rest = rest[3 * count:]
        count, rest = int(rest[0]), rest[1:]
        self.words, rest = rest[:count], rest[count:]
        count, rest = int(rest[0]), rest[1:]
        if len(rest) != count:
            raise ValueError("a run request's counts do not match its fields")
        self.env = dict(item.partition("=")[::2] for item in rest)
