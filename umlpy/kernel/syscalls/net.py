"""Sockets (the net family).

A socket address in the AF_UNIX family is a filesystem path: the guest VFS
resolves it like any other (bind creates the name in the upper layer or a
writable mount, connect and sendto find an existing socket), and the host
call gets the host path, written into the thread's scratch slot.  A socket
the guest did not make (one in the host's read-only lower tree) refuses
connections, so the guest never reaches a host service by its path.
Addresses the host gives back (getsockname, getpeername, accept, recvfrom)
show guest paths.

Internet addresses follow the sandbox's network policy (``netpolicy.py``):
with a network namespace of its own nothing needs checking; sharing the
host's, each destination and local address is checked, and abstract
AF_UNIX names get a prefix of the sandbox's own, so the guest neither
reaches nor is reached by the host's abstract sockets."""
import errno
import os
import stat as _stat

from ...abi import MASK64
from ...abi.fcntl import AT_FDCWD
from ...abi.socket import AF_INET, AF_INET6, AF_UNIX, AF_VSOCK, IPPROTO_TCP, MMSGHDR, \
    MSG_DONTWAIT, MSG_FASTOPEN, MSG_NOSIGNAL, MSGHDR, SO_DOMAIN, SO_PROTOCOL, SO_TYPE, \
    SOCK_STREAM, SOCKADDR_STORAGE_SIZE, SOCKADDR_UN, SOL_SOCKET, SUN_PATH_OFFSET, \
    UNIX_PATH_MAX, pack_sockaddr_un, sockaddr_family
from ..bounded import text_bytes
from ..decisions import ALLOW, AllowThen, Rewrite, fail
from ..netpolicy import inet_address, ipaddress_module, loopback_for
from ..vfs.hostops import syscall, thread_fd
from ..vfs.creds import W_OK
from ..vfs.union import IN_UPPER, UnionFS
from .fs import create_here, host_checks, vfs_call
from .names import SYSCALL_NUMBERS
from .registry import TABLE, Guard

FAMILY = "net"

SENDMSG = SYSCALL_NUMBERS["sendmsg"]
BIND, CONNECT, SENDTO = SYSCALL_NUMBERS["bind"], SYSCALL_NUMBERS["connect"], \
    SYSCALL_NUMBERS["sendto"]
NO_ADDRESS = b""        # rewritten_address: send with no address at all


def unix_path(raw):
    """The filesystem path of an AF_UNIX sockaddr, or None if the address
    is not one (another family, unnamed, or an abstract name)."""
    if len(raw) <= SUN_PATH_OFFSET or sockaddr_family(raw) != AF_UNIX or \
            raw[SUN_PATH_OFFSET] == 0:
        return None
    path = raw[SUN_PATH_OFFSET:].split(b"\0", 1)[0]
    return os.fsdecode(path)


def read_sockaddr(call, addr, length):
    if length > SOCKADDR_STORAGE_SIZE or length < 0:
        raise OSError(errno.EINVAL, "address length")
    try:
        return call.read(addr, length)
    except OSError:
        raise OSError(errno.EFAULT, "bad address") from None


def host_sockaddr(host):
    """sockaddr_un for a host path (the host's own limit is 107 bytes; a
    longer host path for a shorter guest path is umlpy's limit)."""
    data = os.fsencode(host)
    if len(data) >= UNIX_PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, "host socket path too long")
    return pack_sockaddr_un(data)


def socket_target(vfs, task, path):
    """The host path of an existing socket the guest may connect to."""
    res = vfs.resolve(task, AT_FDCWD, path, True)
    d = res.dentry
    if d is None:
        raise OSError(errno.ENOENT, path)
    if d.attr.kind != _stat.S_IFSOCK:
        raise OSError(errno.ECONNREFUSED, path)
    if not host_checks(task, d):
        err = task.creds.permission(d.attr, W_OK)
        if err:
            raise OSError(err, path)
    if isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER:
        # A socket of the lower tree is a host service's, or a stale name
        # in an image: nobody the guest may talk to is listening.
        raise OSError(errno.ECONNREFUSED, path)
    if not d.fs.host_backed:
        raise OSError(errno.ECONNREFUSED, path)
    # never a path through directories the guest can change (aliases.py)
    alias = vfs.aliases.of(d, _stat.S_IFSOCK) if not res.mount.read_only else None
    return alias or d.fs.host_path(d)


def guest_sockaddr(kernel, raw):
    """A sockaddr the host returned, with a host socket path shown as the
    guest's path, an abstract name without the sandbox's prefix (None:
    nothing to change)."""
    vfs = kernel.vfs
    if is_abstract(raw):
        prefix = abstract_prefix(kernel)
        name = SUN_PATH_OFFSET + 1         # past the abstract name's NUL
        if prefix is not None and raw[name:name + len(prefix)] == prefix:
            return raw[:name] + raw[name + len(prefix):]
        return None
    path = unix_path(raw)
    if path is None:
        return None
    guest = kernel.unix_names.get(path) or vfs.guest_path_of_host(path)
    if guest is None:
        guest = ""              # not the guest's: never show a host path
    return pack_sockaddr_un(os.fsencode(guest))


def abstract_prefix(kernel):
    """What the sandbox's abstract AF_UNIX names start with on the host,
    when it shares the host's network namespace (else None)."""
    if not kernel.net.filters:
        return None
    return f"umlpy{os.getpid()}/".encode()


def is_abstract(raw):
    return len(raw) > SUN_PATH_OFFSET and sockaddr_family(raw) == AF_UNIX and \
        raw[SUN_PATH_OFFSET] == 0


def host_abstract(kernel, raw):
    prefix = abstract_prefix(kernel)
    if prefix is None:
        return None
    name = SUN_PATH_OFFSET + 1
    out = raw[:name] + prefix + raw[name:]
    if len(out) > SOCKADDR_UN.size:
        raise OSError(errno.EINVAL, "abstract name too long")
    return out


def rewritten_address(call, vfs, task, fd, nr, addr, length, flags=0):
    """The host's sockaddr (bytes) for an outgoing address of nr (connect
    or sendto; sendmsg and sendmmsg count as sendto) on fd (None for a
    NULL one, NO_ADDRESS for none at all); raises OSError when the guest
    may not send there.  Even an unchanged address is a copy the host must
    use: the guest could change its own between this check and the host
    reading it."""
    if not addr:
        return None
    raw = read_sockaddr(call, addr, length)
    path = unix_path(raw)
    if path is not None:
        if not is_unix_socket(call, fd):
            return unix_address_elsewhere(call, fd, nr, raw, flags)
        return host_sockaddr(socket_target(vfs, task, path))
    if is_abstract(raw):
        return host_abstract(call.kernel, raw) or raw
    net = call.kernel.net
    if net.filters:
        inet = inet_address(raw)
        if inet is not None and not net.destination_allowed(inet[1], inet[2]):
            raise OSError(errno.ENETUNREACH, "destination not allowed")
    return raw


def rewrite_with(call, args):
    return Rewrite(call.nr, [a & MASK64 for a in args])


@TABLE.emulated(FAMILY, "bind", "an AF_UNIX path is made by the guest VFS, in the upper "
                "layer or a writable mount")
@vfs_call
def sys_bind(call, vfs, task):
    fd, addr, length = call.fd(0), call.args[1], call.uint(2)
    if not addr:
        return fail(errno.EFAULT)
    raw = read_sockaddr(call, addr, length)
    path = unix_path(raw)
    if path is not None and not is_unix_socket(call, fd):
        return unix_address_elsewhere(call, fd, BIND, raw)
    if path is None:
        local = local_address(call.kernel, raw)
        decision = rewrite_address_arg(call, 1, 2, raw if local is None else local)
        if call.kernel.net.filters and inet_address(raw) is not None:
            return AllowThen(remember_endpoint(fd), rewrite=decision)
        return decision
    res = vfs.resolve(task, AT_FDCWD, path, follow=False)
    if res.dentry is not None:
        return fail(errno.EADDRINUSE)
    if res.dir_required:
        return fail(errno.ENOENT)
    return bind_unix(call, vfs, task, fd, res)


def socket_options(call, fd, *names):
    """getsockopt(SOL_SOCKET, name) of the guest's socket fd for each name;
    OSError EBADF for no such fd, ENOTSOCK for a file that is no socket,
    as Linux answers before it reads an address."""
    import socket     # here, not at start-up, where it costs milliseconds
    dup = guest_socket(call, fd)
    try:
        try:
            sock = socket.socket(fileno=dup)
        except OSError as e:
            raise OSError(e.errno, "not a socket") from None
        try:
            return [sock.getsockopt(SOL_SOCKET, name) for name in names]
        finally:
            sock.detach()
    finally:
        os.close(dup)


def is_unix_socket(call, fd):
    """Whether fd is an AF_UNIX socket: only there is an AF_UNIX address a
    path.  A socket's family is fixed at its creation, so the answer holds
    for the open file; a dup2 of an AF_UNIX socket onto the number between
    this check and the host's call meets an address that is not the
    guest's path (unix_address_elsewhere never hands the host a path)."""
    return socket_options(call, fd, SO_DOMAIN)[0] == AF_UNIX


def unix_address_elsewhere(call, fd, nr, raw, flags=0):
    """An AF_UNIX address given to bind, connect or sendto (nr) on a socket
    of another family is no path to resolve: Linux's family checks refuse
    it (an internet socket: EINVAL when it is shorter than the family's
    own address, else EAFNOSUPPORT, or EINVAL for an inet6 datagram),
    except that TCP's sendmsg never reads its address (NO_ADDRESS is
    returned: the host sends with none).  The errno is the one the host
    gives for the same call on a fresh socket of the same domain, type
    and protocol (so every family answers as its own code does); the
    states an address is not read in are Linux's too: a connected stream
    socket's connect is EISCONN.  The host is never handed the guest's
    bytes on the guest's socket: another thread could have put an AF_UNIX
    socket on that number meanwhile."""
    import socket     # here, not at start-up, where it costs milliseconds
    domain, kind, proto = socket_options(call, fd, SO_DOMAIN, SO_TYPE, SO_PROTOCOL)
    tcp = domain in (AF_INET, AF_INET6) and kind == SOCK_STREAM and proto == IPPROTO_TCP
    if nr == SENDTO and tcp and not flags & MSG_FASTOPEN:
        return NO_ADDRESS
    if nr == CONNECT and kind == SOCK_STREAM and connected(call, fd):
        raise OSError(errno.EISCONN, "already connected")
    try:
        probe = socket.socket(domain, kind, proto)
    except OSError:
        # a socket the guest kernel may not make (a raw one, as a user):
        # what an internet socket answers an address of the wrong family
        raise OSError(errno.EAFNOSUPPORT, "address family") from None
    try:
        if nr == SENDTO:
            syscall(nr, probe.fileno(), b"", 0, MSG_DONTWAIT | MSG_NOSIGNAL, raw, len(raw))
        else:
            syscall(nr, probe.fileno(), raw, len(raw))
    finally:
        probe.close()
    raise OSError(errno.EAFNOSUPPORT, "address family")     # a family that took it


def connected(call, fd):
    import socket     # here, not at start-up, where it costs milliseconds
    dup = guest_socket(call, fd)
    try:
        sock = socket.socket(fileno=dup)
        try:
            sock.getpeername()
            return True
        except OSError:
            return False
        finally:
            sock.detach()
    finally:
        os.close(dup)


MAX_SOCKET_DIRS = 4096


def bind_unix(call, vfs, task, fd, res):
    """The guest kernel binds the guest's socket itself (a duplicate of its
    fd), as the guest's host identity, to the name in the directory the VFS
    chose: through /proc/self/fd/N/NAME, N an fd of that directory it keeps
    open, so no path the guest can change is followed.  That address is
    what the host reports for the socket; unix_names maps it back."""
    # imported here, not at start-up (it costs milliseconds), and not in
    # make(): an identity worker may not be able to read the stdlib
    import socket
    kernel = call.kernel
    sock = guest_socket(call, fd)
    umask = task.host_identity.umask
    parent = res.parent.dentry

    def make(dirfd, name):
        key = (id(parent.fs), parent.rel)
        keep = kernel.socket_dirs.get(key)
        if keep is None:
            if len(kernel.socket_dirs) >= MAX_SOCKET_DIRS:
                raise OSError(errno.ENOBUFS, "too many directories with sockets")
            keep = kernel.socket_dirs[key] = os.dup(dirfd)
        address = f"/proc/self/fd/{keep}/{name}"
        if len(os.fsencode(address)) >= UNIX_PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, "socket name too long")
        s = socket.socket(fileno=sock)
        try:
            if s.family != socket.AF_UNIX:
                raise OSError(errno.EINVAL, "not an AF_UNIX socket")
            old = os.umask(umask)       # the worker's own fs_struct: only its umask
            try:
                s.bind(address)
            finally:
                os.umask(old)
        finally:
            s.detach()
        kernel.unix_names.put(address, res.path, text_bytes(address, res.path))
    try:
        return create_here(call, vfs, task, res, make)
    finally:
        os.close(sock)


def local_address(kernel, raw):
    """The host's sockaddr for a bind, or None for no change."""
    if is_abstract(raw):
        return host_abstract(kernel, raw)
    net = kernel.net
    inet = inet_address(raw) if net.filters else None
    if inet is None:
        return None
    family, ip, port = inet
    if ip.is_unspecified:
        # a server listening "everywhere" listens on the loopback: the
        # sandbox does not own the host's other interfaces
        return loopback_for(raw)
    if not net.destination_allowed(ip, port) and not ip.is_loopback:
        raise OSError(errno.EACCES, "local address not allowed")
    return None


def guest_socket(call, fd):
    """The guest's socket fd, duplicated into the tracer (close it)."""
    return thread_fd(call.tid, call.kernel.vfs.tgid_of(call.tid), fd)


@TABLE.emulated(FAMILY, "listen", "sharing the host's network, an unbound socket is bound "
                "to the loopback first (Linux would bind it to every interface)")
def sys_listen(call):
    net = call.kernel.net
    if not net.filters:
        return ALLOW
    try:
        dup = guest_socket(call, call.fd(0))
    except OSError:
        return ALLOW            # the host gives the guest its error
    try:
        import socket     # here, not at start-up, where it costs milliseconds
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            return ALLOW        # not a socket: the host says ENOTSOCK
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and \
                    sock.getsockname()[1] == 0:
                sock.bind(("127.0.0.1" if sock.family == socket.AF_INET else "::1", 0))
                name = sock.getsockname()
                net.own_endpoint(ipaddress_module().ip_address(name[0]), name[1])
        except OSError:
            pass
        finally:
            sock.detach()
    finally:
        os.close(dup)
    return ALLOW


def remember_endpoint(fd):
    """on_exit of an internet bind: the address the socket got is the
    sandbox's own, so its other processes may connect to it."""
    def on_exit(call, result):
        if result < 0:
            return None
        try:
            dup = guest_socket(call, fd)
            import socket     # here, not at start-up, where it costs milliseconds
            try:
                sock = socket.socket(fileno=dup)
                try:
                    name = sock.getsockname()
                finally:
                    sock.detach()
            finally:
                os.close(dup)
        except OSError:
            return None
        call.kernel.net.own_endpoint(ipaddress_module().ip_address(name[0]), name[1])
        return None
    return on_exit


def rewrite_address_arg(call, addr_index, len_index, sa):
    args = list(call.args)
    if sa == NO_ADDRESS:
        args[addr_index], args[len_index] = 0, 0
        return rewrite_with(call, args)
    w = call.kernel.scratch_writer(call)
    ptr = w.add(sa)
    call.kernel.scratch_commit(call, w)
    args[addr_index], args[len_index] = ptr, len(sa)
    return rewrite_with(call, args)


@TABLE.emulated(FAMILY, "connect", "an AF_UNIX path is resolved by the guest VFS; only "
                "sockets inside the sandbox answer")
@vfs_call
def sys_connect(call, vfs, task):
    addr, length = call.args[1], call.uint(2)
    if not addr:
        return fail(errno.EFAULT)
    return rewrite_address_arg(call, 1, 2, rewritten_address(call, vfs, task, call.fd(0),
                                                             CONNECT, addr, length))


@TABLE.guarded(FAMILY, "sendto", Guard(4),
               why="an AF_UNIX destination is resolved by the guest VFS")
@vfs_call
def sys_sendto(call, vfs, task):
    a = call.args
    if not a[4]:
        return ALLOW
    return rewrite_address_arg(call, 4, 5, rewritten_address(call, vfs, task, call.fd(0),
                                                             SENDTO, a[4], call.uint(5),
                                                             call.uint(3)))


def read_msghdr(call, addr):
    try:
        return list(MSGHDR.unpack(call.read(addr, MSGHDR.size)))
    except OSError:
        raise OSError(errno.EFAULT, "bad msghdr") from None


@TABLE.emulated(FAMILY, "sendmsg", "an AF_UNIX destination is resolved by the guest VFS")
@vfs_call
def sys_sendmsg(call, vfs, task):
    a = call.args
    if not a[1]:
        return fail(errno.EFAULT)
    # The msghdr is always copied: with no name now, the guest could add
    # one (a host socket's path) after this check.
    hdr = read_msghdr(call, a[1])
    sa = rewritten_address(call, vfs, task, call.fd(0), SENDTO, hdr[0], hdr[1], call.uint(2))
    w = call.kernel.scratch_writer(call)
    if sa is not None:
        hdr[0], hdr[1] = (w.add(sa), len(sa)) if sa != NO_ADDRESS else (0, 0)
    ptr = w.add(MSGHDR.pack(*hdr))
    call.kernel.scratch_commit(call, w)
    return rewrite_with(call, (a[0], ptr, a[2]))


@TABLE.emulated(FAMILY, "sendmmsg", "sends its first message as a sendmsg of a copy whose "
                "destination the guest VFS resolved (the guest sends the rest again, as "
                "after any partial sendmmsg)")
@vfs_call
def sys_sendmmsg(call, vfs, task):
    # The host would write each msg_len into the vector it was given; a
    # copy the guest cannot change is read-only, so the host is given one
    # message to send (sendmsg never writes its msghdr), and msg_len is
    # written into the guest's own vector afterwards.
    a = call.args
    vec, vlen = a[1], call.uint(2)
    if not vlen:
        return ALLOW            # 0, as Linux
    try:
        hdr = list(MSGHDR.unpack(call.read(vec, MSGHDR.size)))
    except OSError:
        return fail(errno.EFAULT)
    sa = rewritten_address(call, vfs, task, call.fd(0), SENDTO, hdr[0], hdr[1], call.uint(3))
    w = call.kernel.scratch_writer(call)
    if sa is not None:
        hdr[0], hdr[1] = (w.add(sa), len(sa)) if sa != NO_ADDRESS else (0, 0)
    ptr = w.add(MSGHDR.pack(*hdr))
    call.kernel.scratch_commit(call, w)

    def one_sent(call, result):
        if result < 0:
            return None
        try:
            call.write(vec + MMSGHDR.offset("msg_len"), result.to_bytes(4, "little"))
        except OSError:
            return -errno.EFAULT        # as Linux, when msg_len cannot be stored
        return 1
    return AllowThen(one_sent, rewrite=Rewrite(SENDMSG, [a[0], ptr, call.uint(3)]))


def show_guest_address(addr_index, len_index, given):
    """on_exit: rewrite the sockaddr the host stored at args[addr_index]
    (its length at *args[len_index]; given: the caller's buffer size) to
    name the guest's path."""
    def on_exit(call, result):
        if result < 0:
            return None
        addr, len_ptr = call.args[addr_index], call.args[len_index]
        try:
            returned = int.from_bytes(call.read(len_ptr, 4), "little")
            raw = call.read(addr, min(given, returned, SOCKADDR_UN.size))
        except OSError:
            return None
        shown = guest_sockaddr(call.kernel, raw)
        if shown is None:
            return None
        # Like the kernel: write at most the caller's buffer, report the
        # full length.
        try:
            call.write(addr, shown[:given])
            call.write(len_ptr, len(shown).to_bytes(4, "little"))
        except OSError:
            pass                # the host could write there; the guest's loss
        return None
    return on_exit


def _returns_address(name, addr_index, len_index, guard=None):
    why = "an AF_UNIX address the host gives back shows the guest's path"

    def handler(call):
        if not call.args[addr_index] or not call.args[len_index]:
            return ALLOW
        try:
            given = int.from_bytes(call.read(call.args[len_index], 4), "little")
        except OSError:
            return ALLOW        # the host fails it with EFAULT
        return AllowThen(show_guest_address(addr_index, len_index, given))
    handler.__name__ = f"sys_{name}"
    if guard is None:
        TABLE.emulated(FAMILY, name, why)(handler)
    else:
        TABLE.guarded(FAMILY, name, guard, why)(handler)


_returns_address("getsockname", 1, 2)
_returns_address("getpeername", 1, 2)
_returns_address("accept", 1, 2, Guard(1))
_returns_address("accept4", 1, 2, Guard(1))
_returns_address("recvfrom", 4, 5, Guard(4))

@TABLE.emulated(FAMILY, "socket", "sharing the host's network, only the families the "
                "policy checks (unix, inet, inet6, netlink) may be created; AF_VSOCK (one "
                "port space per machine) only with --net host")
def sys_socket(call):
    family = call.uint(0)
    net = call.kernel.net
    if not net.family_exists(family):
        return fail(errno.EAFNOSUPPORT)     # as on a kernel without vsock
    if not net.family_allowed(family):
        return fail(errno.EACCES)
    return ALLOW


@TABLE.guarded(FAMILY, "socketpair", Guard(0, value=AF_VSOCK),
               why="AF_VSOCK exists only with --net host")
def sys_socketpair(call):
    if not call.kernel.net.family_exists(call.uint(0)):
        return fail(errno.EAFNOSUPPORT)
    return ALLOW


TABLE.passthrough(
    FAMILY,
    "recvmsg", "recvmmsg", "shutdown",
    "setsockopt", "getsockopt",
)


# --net-rate: the calls that move bytes through a socket wait for the
# sandbox's token bucket (kernel/netrate.py) when the socket is an
# internet one.  name -> (fd argument, direction, byte count argument)
SHAPED_CALLS = {
    "read": (0, "in", None), "readv": (0, "in", None), "recvfrom": (0, "in", None),
    "recvmsg": (0, "in", None), "recvmmsg": (0, "in", None),
    "write": (0, "out", 2), "writev": (0, "out", None), "sendto": (0, "out", 2),
    "sendmsg": (0, "out", None), "sendmmsg": (0, "out", None), "sendfile": (0, "out", 3),
    "splice": (2, "out", 4),
}


def _shaped(fd_index, direction, count_index):
    def shape(call):
        return call.kernel.rate_limiter.decide(call, fd_index, direction, count_index)
    return shape


for _name, _how in SHAPED_CALLS.items():
    TABLE.when("net_rate", _name, why="waits for the sandbox's token bucket on an "
               "internet socket")(_shaped(*_how))


def _wait_shaped(call):
    from ..netwait import decide
    return decide(call)


# --net-rate: a readiness wait on a socket in debt sleeps until the debt is
# paid (kernel/netwait.py), so a nonblocking reader does not spin
TABLE.when("net_rate", "poll", "ppoll", "select", "pselect6", "epoll_wait",
           "epoll_pwait", "epoll_pwait2",
           why="sleeps while an internet socket it watches is in the token bucket's "
           "debt")(_wait_shaped)
