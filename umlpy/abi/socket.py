"""Sockets: address families, socket types and flags, levels and options,
message flags; the socket addresses (sockaddr_un, sockaddr_in,
sockaddr_in6, sockaddr_nl) and struct msghdr / struct mmsghdr."""
from .fcntl import O_CLOEXEC, O_NONBLOCK
from .layout import Layout

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
AF_NETLINK, AF_PACKET, AF_ALG, AF_VSOCK = 16, 17, 38, 40

SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM = 1, 2, 3, 4
SOCK_SEQPACKET, SOCK_DCCP, SOCK_PACKET = 5, 6, 10
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK = O_NONBLOCK
SOCK_CLOEXEC = O_CLOEXEC

IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_IPV6, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_RAW = 41, 58, 132, 255

SOL_IP, SOL_SOCKET, SOL_TCP, SOL_UDP, SOL_IPV6 = 0, 1, 6, 17, 41
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE = 1, 2, 3, 4, 5
SO_BROADCAST, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE = 6, 7, 8, 9, 10
SO_LINGER, SO_REUSEPORT, SO_PASSCRED, SO_PEERCRED = 13, 15, 16, 17
SO_RCVLOWAT, SO_SNDLOWAT, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD = 18, 19, 20, 21
SO_PROTOCOL, SO_DOMAIN = 38, 39
SO_PEERGROUPS = 59

MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_CTRUNC = 0x1, 0x2, 0x4, 0x8
MSG_TRUNC, MSG_DONTWAIT, MSG_EOR, MSG_WAITALL = 0x20, 0x40, 0x80, 0x100
MSG_NOSIGNAL, MSG_MORE, MSG_WAITFORONE = 0x4000, 0x8000, 0x10000
MSG_FASTOPEN = 0x20000000
MSG_CMSG_CLOEXEC = 0x40000000

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2

SOCKADDR_STORAGE_SIZE = 128     # sizeof(struct sockaddr_storage): the longest address
SA_FAMILY = Layout("sockaddr", (("sa_family", "H"),))

UNIX_PATH_MAX = 108             # sizeof(sockaddr_un.sun_path)
UCRED = Layout("ucred", (("pid", "i"), ("uid", "I"), ("gid", "I")))  # SO_PEERCRED
SOCKADDR_UN = Layout("sockaddr_un", (("sun_family", "H"), ("sun_path", f"{UNIX_PATH_MAX}s")))
SUN_PATH_OFFSET = SOCKADDR_UN.offset("sun_path")

# the port, address and flow label are in network byte order: kept as bytes
SOCKADDR_IN = Layout("sockaddr_in", (("sin_family", "H"), ("sin_port", "2s"),
                                     ("sin_addr", "4s"), (None, "8x")))
SOCKADDR_IN6 = Layout("sockaddr_in6", (("sin6_family", "H"), ("sin6_port", "2s"),
                                       ("sin6_flowinfo", "4s"), ("sin6_addr", "16s"),
                                       ("sin6_scope_id", "I")))
SOCKADDR_NL = Layout("sockaddr_nl", (("nl_family", "H"), (None, "2x"), ("nl_pid", "I"),
                                     ("nl_groups", "I")))

MSGHDR = Layout("msghdr", (
    ("msg_name", "Q"), ("msg_namelen", "I"), (None, "4x"),
    ("msg_iov", "Q"), ("msg_iovlen", "Q"),
    ("msg_control", "Q"), ("msg_controllen", "Q"), ("msg_flags", "i"), (None, "4x"),
))
MMSGHDR = Layout("mmsghdr", (("msg_hdr", f"{MSGHDR.size}s"), ("msg_len", "I"), (None, "4x")))


def sockaddr_family(raw):
    """The family of a sockaddr's bytes (at least 2 of them)."""
    return SA_FAMILY.unpack_from(raw)[0]


def family_bytes(family):
    return SA_FAMILY.pack(family)


def pack_sockaddr_un(path):
    """A sockaddr_un for path (bytes), as long as the name and its NUL."""
    return SA_FAMILY.pack(AF_UNIX) + path + b"\0"


def inet_port(raw):
    """sin_port / sin6_port of a sockaddr_in or sockaddr_in6 (same offset)."""
    off = SOCKADDR_IN.offset("sin_port")
    return int.from_bytes(raw[off:off + 2], "big")


def unpack_sockaddr_in(raw):
    """(port, 4 address bytes) of a sockaddr_in's first 8 bytes or more."""
    a = SOCKADDR_IN.offset("sin_addr")
    return inet_port(raw), raw[a:a + 4]


def unpack_sockaddr_in6(raw):
    """(port, flowinfo, 16 address bytes, scope id) of a sockaddr_in6's first
    24 bytes or more (scope id 0 when it is not there)."""
    o = SOCKADDR_IN6.offsets
    flow = int.from_bytes(raw[o["sin6_flowinfo"]:o["sin6_flowinfo"] + 4], "big")
    addr = raw[o["sin6_addr"]:o["sin6_addr"] + 16]
    scope = SOCKADDR_IN6.get(raw, "sin6_scope_id") if len(raw) >= SOCKADDR_IN6.size else 0
    return inet_port(raw), flow, addr, scope


def with_inet_addr(raw, addr):
    """A sockaddr_in (addr: 4 bytes) or sockaddr_in6 (16 bytes) with its
    address replaced, the rest as it was."""
    layout, field = (SOCKADDR_IN, "sin_addr") if len(addr) == 4 else (SOCKADDR_IN6, "sin6_addr")
    off = layout.offset(field)
    return raw[:off] + addr + raw[off + len(addr):]
