"""Which network a sandbox may reach (``umlpy run --net``).

  none       (the default) a network namespace of the sandbox's own: a
             loopback only the guest's processes share; nothing outside.
  loopback   the host's loopback (127.0.0.0/8, ::1), nothing else.
  host       the host's network, unfiltered.
  ns:PATH    the network namespace at PATH, made by someone else (a
             container engine's, with its interfaces, routes and
             firewall): the sandbox's network is all of that namespace,
             unfiltered, and nothing else of the host's.
  allow=R,…  the host's network, but only destinations matching a rule
             R = CIDR[:PORT] (PORT a number, a range A-B, or * for any);
             IPv6 CIDRs go in brackets: [2001:db8::/32]:443.

Outside ``host``, the guest kernel checks every destination address
(connect, sendto, sendmsg, sendmmsg) and every local address (bind: a
wildcard becomes the loopback, so a guest server is not exposed on the
host's interfaces), and only the socket families a program needs for
that may be created.  A refused destination fails as Linux fails an
unreachable one (ENETUNREACH); a refused bind or family with EACCES.
AF_VSOCK exists only with ``host`` (family_exists)."""

from ..abi.socket import AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AF_VSOCK, SA_FAMILY, SOCKADDR_IN, \
    SOCKADDR_IN6, sockaddr_family, unpack_sockaddr_in, unpack_sockaddr_in6, with_inet_addr
from ..errors import BadInput
_LOOPBACK_NETS = []


def ipaddress_module():
    """The ipaddress module, imported at the first address a run checks
    (it costs about a millisecond of every run's start-up otherwise)."""
    import ipaddress
    if not _LOOPBACK_NETS:
        _LOOPBACK_NETS.extend((ipaddress.ip_network("127.0.0.0/8"),
                               ipaddress.ip_network("::1/128")))
    return ipaddress


class Rule:
    __slots__ = ("network", "low", "high")

    def __init__(self, network, low=0, high=65535):
        self.network, self.low, self.high = network, low, high

    def matches(self, ip, port):
        return ip.version == self.network.version and ip in self.network and \
            self.low <= port <= self.high

    def __repr__(self):
        return f"Rule({self.network}, {self.low}-{self.high})"

    def text(self):
        """The rule as parse_rule reads it."""
        net = f"[{self.network}]" if self.network.version == 6 else str(self.network)
        if (self.low, self.high) == (0, 65535):
            return net
        return f"{net}:{self.low}" + (f"-{self.high}" if self.high != self.low else "")


def _parse_port(text, rule):
    if text in ("", "*"):
        return 0, 65535
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            low, high = int(a), int(b)
        else:
            low = high = int(text)
    except ValueError:
        raise BadInput(f"--net allow: {rule!r}: bad port {text!r}") from None
    if not 0 <= low <= high <= 65535:
        raise BadInput(f"--net allow: {rule!r}: ports are 0 to 65535")
    return low, high


def parse_rule(text):
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadInput(f"--net allow: {text!r}: missing ']'")
        net_text, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise BadInput(f"--net allow: {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        net_text, port_text = text.split(":")
    else:
        net_text, port_text = text, ""
    try:
        network = ipaddress_module().ip_network(net_text, strict=False)
    except ValueError:
        raise BadInput(f"--net allow: {text!r}: not an address or CIDR") from None
    return Rule(network, *_parse_port(port_text, text))


class NetPolicy:
    NONE, LOOPBACK, HOST, ALLOW, JOINED = "none", "loopback", "host", "allow", "ns"

    def __init__(self, mode="none", rules=(), path=None):
        self.mode = mode
        self.rules = list(rules)
        self.path = path        # JOINED: the namespace's file
        self.own = set()        # (ip, port) the sandbox's sockets are bound to

    @classmethod
    def parse(cls, text):
        text = (text or "none").strip()
        if text in (cls.NONE, cls.LOOPBACK, cls.HOST):
            return cls(text)
        if text.startswith("ns:"):
            path = text[len("ns:"):]
            if not path.startswith("/"):
                raise BadInput(f"--net {text!r}: ns: takes the absolute path of a network "
                               "namespace (such as /run/netns/NAME)")
            return cls(cls.JOINED, path=path)
        if text.startswith("allow="):
            rules = [parse_rule(r) for r in text[len("allow="):].split(",") if r.strip()]
            if not rules:
                raise BadInput("--net allow= needs at least one CIDR[:PORT]")
            return cls(cls.ALLOW, rules)
        raise BadInput(f"--net {text!r}: expected none, loopback, host, ns:PATH or "
                       "allow=CIDR[:PORT],...")

    def text(self):
        """The policy as parse reads it (--net's value)."""
        if self.mode == self.JOINED:
            return f"ns:{self.path}"
        if self.mode != self.ALLOW:
            return self.mode
        return "allow=" + ",".join(rule.text() for rule in self.rules)

    @property
    def own_namespace(self):
        """The sandbox gets a network namespace (and loopback) of its own."""
        return self.mode == self.NONE

    @property
    def joins(self):
        """The sandbox's network namespace is one made by someone else,
        which its first process joins (netns.py)."""
        return self.mode == self.JOINED

    @property
    def filters(self):
        """Whether the guest kernel checks addresses (the host's network is
        shared, but not all of it)."""
        return self.mode in (self.LOOPBACK, self.ALLOW)

    def family_exists(self, family):
        """AF_VSOCK has one port space per machine, not per network
        namespace, and reaches the hypervisor's side: outside ``host`` it
        does not exist (EAFNOSUPPORT, as on a kernel without vsock)."""
        return family != AF_VSOCK or self.mode == self.HOST

    def family_allowed(self, family):
        if not self.filters:
            return True
        return family in (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)

    def own_endpoint(self, ip, port):
        self.own.add((_unmapped(ip), port))

    def destination_allowed(self, ip, port):
        ip = _unmapped(ip)
        if (ip, port) in self.own:
            return True
        if self.mode == self.LOOPBACK:
            ipaddress_module()
            return any(ip.version == n.version and ip in n for n in _LOOPBACK_NETS)
        if self.mode == self.ALLOW:
            return any(r.matches(ip, port) for r in self.rules)
        return True

    def describe(self):
        if self.mode == self.ALLOW:
            return "allow=" + ",".join(f"{r.network}:{r.low}-{r.high}" for r in self.rules)
        return self.mode


def _unmapped(ip):
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def inet_address(raw):
    """(family, ip, port) of a sockaddr_in/in6, or None for other families
    or a short address."""
    if len(raw) < SA_FAMILY.size:
        return None
    family = sockaddr_family(raw)
    if family == AF_INET and len(raw) >= SOCKADDR_IN.offset("sin_addr") + 4:
        port, addr = unpack_sockaddr_in(raw)
        return family, ipaddress_module().IPv4Address(addr), port
    if family == AF_INET6 and len(raw) >= SOCKADDR_IN6.offset("sin6_scope_id"):
        port, _flow, addr, _scope = unpack_sockaddr_in6(raw)
        return family, ipaddress_module().IPv6Address(addr), port
    return None


def loopback_for(raw):
    """The same sockaddr with a wildcard address replaced by the loopback."""
    if sockaddr_family(raw) == AF_INET:
        return with_inet_addr(raw, bytes((127, 0, 0, 1)))
    return with_inet_addr(raw, bytes(15) + b"\x01")
