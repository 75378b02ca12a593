"""Sockets (the net family).

A socket address in the AF_UNIX family is a filesystem path: the guest VFS
resolves it like any other (bind creates the name in the upper layer or a
writable mount, connect and sendto find an existing socket), and the host
call gets the host path, written into the thread's scratch slot.  A socket
the guest did not make (one in the host's read-only lower tree) refuses
connections, so the guest never reaches a host service by its path.
Addresses the host gives back (getsockname, getpeername, accept, recvfrom)
show guest paths.  Abstract names and other families are network policy,
which comes with its own issue."""
import errno
import os
import stat as _stat
import struct

from ..decisions import ALLOW, AllowThen, Rewrite, fail
from ..vfs.creds import W_OK
from ..vfs.union import IN_UPPER, UnionFS
from .fs import AT_FDCWD, checks_on_host, create_then, s32, vfs_call
from .names import SYSCALL_NUMBERS as NR
from .registry import TABLE, Guard

FAMILY = "net"

AF_UNIX = 1
SUN_PATH_MAX = 108                      # sizeof(sockaddr_un.sun_path)
MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8          # struct msghdr + unsigned msg_len (+ padding)
IOVEC = struct.Struct("<QQ")
UIO_MAXIOV = 1024


def unix_path(raw):
    """The filesystem path of an AF_UNIX sockaddr, or None if the address
    is not one (another family, unnamed, or an abstract name)."""
    if len(raw) < 3 or int.from_bytes(raw[:2], "little") != AF_UNIX or raw[2] == 0:
        return None
    path = raw[2:].split(b"\0", 1)[0]
    return os.fsdecode(path)


def read_sockaddr(call, addr, length):
    if length > 128 or length < 0:
        raise OSError(errno.EINVAL, "address length")
    try:
        return call.read(addr, length)
    except OSError:
        raise OSError(errno.EFAULT, "bad address") from None


def host_sockaddr(host):
    """sockaddr_un for a host path (the host's own limit is 107 bytes; a
    longer host path for a shorter guest path is umlpy's limit)."""
    data = os.fsencode(host)
    if len(data) >= SUN_PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, "host socket path too long")
    raw = AF_UNIX.to_bytes(2, "little") + data + b"\0"
    return raw


def socket_target(vfs, task, path):
    """The host path of an existing socket the guest may connect to."""
    res = vfs.resolve(task, AT_FDCWD, path, True)
    d = res.dentry
    if d is None:
        raise OSError(errno.ENOENT, path)
    if d.attr.kind != _stat.S_IFSOCK:
        raise OSError(errno.ECONNREFUSED, path)
    if not checks_on_host(d):
        err = task.creds.permission(d.attr, W_OK)
        if err:
            raise OSError(err, path)
    if isinstance(d.fs, UnionFS) and not d.flags & IN_UPPER:
        # A socket of the lower tree is a host service's, or a stale name
        # in an image: nobody the guest may talk to is listening.
        raise OSError(errno.ECONNREFUSED, path)
    if not d.fs.host_backed:
        raise OSError(errno.ECONNREFUSED, path)
    return d.fs.host_path(d)


def guest_sockaddr(vfs, raw):
    """A sockaddr the host returned, with a host socket path shown as the
    guest's path (None: nothing to change)."""
    path = unix_path(raw)
    if path is None:
        return None
    guest = vfs.guest_path_of_host(path)
    if guest is None:
        guest = ""              # not the guest's: never show a host path
    return AF_UNIX.to_bytes(2, "little") + os.fsencode(guest) + b"\0"


def rewritten_address(call, vfs, task, addr, length):
    """(new address pointer, new length) for an outgoing address, or None
    when it needs no change."""
    if not addr:
        return None
    raw = read_sockaddr(call, addr, length)
    path = unix_path(raw)
    if path is None:
        return None
    return host_sockaddr(socket_target(vfs, task, path))


def rewrite_with(call, args):
    return Rewrite(call.nr, [a & 0xFFFFFFFFFFFFFFFF for a in args])


@TABLE.emulated(FAMILY, "bind", "an AF_UNIX path is made by the guest VFS, in the upper "
                "layer or a writable mount")
@vfs_call
def sys_bind(call, vfs, task):
    fd, addr, length = s32(call.args[0]), call.args[1], call.args[2] & 0xFFFFFFFF
    if not addr:
        return fail(errno.EFAULT)
    raw = read_sockaddr(call, addr, length)
    path = unix_path(raw)
    if path is None:
        return ALLOW
    res = vfs.resolve(task, AT_FDCWD, path, follow=False)
    if res.dentry is not None:
        return fail(errno.EADDRINUSE)
    if res.dir_required:
        return fail(errno.ENOENT)

    def bind_args(host):
        sa = bytearray(host_sockaddr(host))
        return (fd, sa, len(sa))
    return create_then(call, vfs, task, res, "bind", bind_args)


@TABLE.emulated(FAMILY, "connect", "an AF_UNIX path is resolved by the guest VFS; only "
                "sockets inside the sandbox answer")
@vfs_call
def sys_connect(call, vfs, task):
    fd, addr, length = s32(call.args[0]), call.args[1], call.args[2] & 0xFFFFFFFF
    if not addr:
        return fail(errno.EFAULT)
    sa = rewritten_address(call, vfs, task, addr, length)
    if sa is None:
        return ALLOW
    w = call.kernel.scratch_writer(call)
    ptr = w.add(sa)
    call.kernel.scratch_commit(call, w)
    return rewrite_with(call, (fd, ptr, len(sa)))


@TABLE.guarded(FAMILY, "sendto", Guard(4),
               why="an AF_UNIX destination is resolved by the guest VFS")
@vfs_call
def sys_sendto(call, vfs, task):
    a = call.args
    if not a[4]:
        return ALLOW
    sa = rewritten_address(call, vfs, task, a[4], a[5] & 0xFFFFFFFF)
    if sa is None:
        return ALLOW
    w = call.kernel.scratch_writer(call)
    ptr = w.add(sa)
    call.kernel.scratch_commit(call, w)
    return rewrite_with(call, (a[0], a[1], a[2], a[3], ptr, len(sa)))


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
    hdr = read_msghdr(call, a[1])
    sa = rewritten_address(call, vfs, task, hdr[0], hdr[1])
    if sa is None:
        return ALLOW
    w = call.kernel.scratch_writer(call)
    hdr[0], hdr[1] = w.add(sa), len(sa)
    ptr = w.add(MSGHDR.pack(*hdr))
    call.kernel.scratch_commit(call, w)
    return rewrite_with(call, (a[0], ptr, a[2]))


def iov_total(call, iov, count):
    if not iov or count <= 0:
        return 0
    count = min(count, UIO_MAXIOV)
    raw = call.read(iov, IOVEC.size * count)
    return sum(IOVEC.unpack_from(raw, i * IOVEC.size)[1] for i in range(count))


@TABLE.emulated(FAMILY, "sendmmsg", "AF_UNIX destinations are resolved by the guest VFS")
@vfs_call
def sys_sendmmsg(call, vfs, task):
    a = call.args
    vec, vlen = a[1], min(a[2] & 0xFFFFFFFF, UIO_MAXIOV)
    if not vec or not vlen:
        return ALLOW
    try:
        raw = call.read(vec, MMSGHDR_SIZE * vlen)
    except OSError:
        return fail(errno.EFAULT)
    headers = [list(MSGHDR.unpack_from(raw, i * MMSGHDR_SIZE)) for i in range(vlen)]
    addresses = [rewritten_address(call, vfs, task, h[0], h[1]) for h in headers]
    if not any(addresses):
        return ALLOW
    w = call.kernel.scratch_writer(call)
    out = bytearray()
    for hdr, sa in zip(headers, addresses):
        if sa is not None:
            hdr[0], hdr[1] = w.add(sa), len(sa)
        out += MSGHDR.pack(*hdr) + bytes(8)
    ptr = w.add(bytes(out))
    call.kernel.scratch_commit(call, w)
    lengths = [iov_total(call, h[2], h[3]) for h in headers]

    def report_lengths(call, result):
        # The host wrote msg_len into the copy, which the guest cannot see:
        # a datagram is sent whole, so each sent message's length is its
        # iovec total.
        for i in range(max(result, 0)):
            call.write(vec + i * MMSGHDR_SIZE + MSGHDR.size, lengths[i].to_bytes(4, "little"))
        return None
    return AllowThen(report_lengths, rewrite=rewrite_with(call, (a[0], ptr, vlen, a[3])))


def show_guest_address(addr_index, len_index):
    """on_exit: rewrite the sockaddr the host stored at args[addr_index]
    (its length at *args[len_index]) to name the guest's path."""
    def on_exit(call, result):
        if result < 0:
            return None
        addr, len_ptr = call.args[addr_index], call.args[len_index]
        if not addr or not len_ptr:
            return None
        vfs = call.kernel.vfs
        try:
            given = int.from_bytes(call.read(len_ptr, 4), "little")
            raw = call.read(addr, min(given, 110))
        except OSError:
            return None
        shown = guest_sockaddr(vfs, raw)
        if shown is None:
            return None
        # Like the kernel: write at most the caller's buffer, report the
        # full length.
        call.write(addr, shown[:given] if given < len(shown) else shown)
        call.write(len_ptr, len(shown).to_bytes(4, "little"))
        return None
    return on_exit


def _returns_address(name, addr_index, len_index, guard=None):
    why = "an AF_UNIX address the host gives back shows the guest's path"
    on_exit = show_guest_address(addr_index, len_index)

    def handler(call):
        if not call.args[addr_index]:
            return ALLOW
        return AllowThen(on_exit)
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

TABLE.passthrough(
    FAMILY,
    "socket", "socketpair", "listen", "recvmsg", "recvmmsg", "shutdown",
    "setsockopt", "getsockopt",
)
assert NR["bind"]
