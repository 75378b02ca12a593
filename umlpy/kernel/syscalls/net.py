"""Sockets (the net family).  Network policy comes with its own issue."""
from .registry import TABLE

FAMILY = "net"

TABLE.passthrough(
    FAMILY,
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown", "setsockopt", "getsockopt",
)
