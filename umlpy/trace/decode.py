"""Syscall arguments and results, printed the way strace prints them.

Each syscall has a spec: one decoder per argument, in order.  As in
strace, the arguments before the first *output* argument (``Out``) are
decoded when the call enters (the thread's memory holds what it passes),
the rest when it returns (the kernel has filled the buffers).  A decoder
is ``fn(ctx, value) -> str``; ``ctx`` reads the stopped thread's memory
and knows the call's other arguments and, at exit, its result.

Calls without a spec of their own fall back on python-ptrace's C
prototypes (integers, pointers, path names).
"""
from ..abi import MASK32, MASK64, s32, s64, u32
from ..abi.dirent import DIRENT64
from ..abi.fcntl import F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_GETLEASE, F_GETOWN, \
    F_GETPIPE_SZ, F_GET_SEALS, F_GETSIG, F_SETFD, F_SETFL, F_SETOWN, F_SETPIPE_SZ, F_SETSIG, \
    OPEN_HOW, O_ACCMODE
from ..abi.mman import MAP_TYPE
from ..abi.resource import PATH_MAX, RLIM_INFINITY, RLIMIT
from ..abi.sched import CLONE_ARGS, CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER2, \
    CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SETTLS, \
    CSIGNAL
from ..abi.signal import SIG_DFL, SIG_IGN, SIGACTION, UCONTEXT_SIGMASK_OFFSET
from ..abi.socket import AF_INET, AF_INET6, AF_UNIX, SA_FAMILY, SOCK_TYPE_MASK, \
    SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_STORAGE_SIZE, SOL_SOCKET, SUN_PATH_OFFSET, \
    sockaddr_family, unpack_sockaddr_in, unpack_sockaddr_in6
from ..abi.stat import S_IFBLK, S_IFCHR, S_IFMT, S_ISGID, S_ISUID, S_ISVTX, S_IRWXUGO, STAT, \
    STATFS, STATX, dev_major, dev_minor
from ..abi.sysinfo import SYSINFO
from ..abi.time import ITIMERVAL, TIMESPEC, TIMEVAL
from ..abi.uio import IOVEC, POLLFD
from ..abi.utsname import UTSNAME
from . import consts as C

DEFAULT_STRSIZE = 32


class Out:
    """An argument the kernel writes: decoded at the call's exit (its
    address when the call failed)."""
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


class Ctx:
    """What decoders see of one call."""
    __slots__ = ("call", "args", "result", "strsize", "fd_text", "cwd_text", "extra")

    def __init__(self, call, strsize=DEFAULT_STRSIZE, fd_text=None, cwd_text=None):
        self.call = call
        self.args = call.args
        self.result = None
        self.strsize = strsize
        self.fd_text = fd_text          # fd -> "path" (-y), or None
        self.cwd_text = cwd_text        # () -> guest cwd (-y with AT_FDCWD)
        self.extra = None               # a spec's note from entry to exit

    def read(self, addr, size):
        if not addr:
            return None
        try:
            data = self.call.read(addr, size)
        except OSError:
            return None
        return data

    def read_some(self, addr, size):
        try:
            return self.call.read_some(addr, size)
        except OSError:
            return b""

    def cstr(self, addr, limit):
        """(bytes, truncated) of the NUL-terminated string at addr, or None."""
        if not addr:
            return None
        try:
            return self.call.read_str(addr, limit + 1), False
        except OSError as e:
            if e.errno != 36:       # ENAMETOOLONG: no NUL within limit
                return None
        data = self.read_some(addr, limit)
        return (data, True) if data else None

    def failed(self):
        r = self.result
        return r is None or -4096 < r < 0


# strings -------------------------------------------------------------------
_ESC = {ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r", ord("\v"): "\\v",
        ord("\f"): "\\f", ord('"'): '\\"', ord("\\"): "\\\\"}


def quote(data, hexall=False):
    """strace's C-string quoting."""
    out = ['"']
    n = len(data)
    for i, c in enumerate(data):
        if hexall:
            out.append(f"\\x{c:02x}")
        elif c in _ESC:
            out.append(_ESC[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif i + 1 < n and 0x30 <= data[i + 1] <= 0x37:
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    out.append('"')
    return "".join(out)


def fmt_buf(ctx, addr, length, hexall=False):
    """length bytes at addr, clipped to -s."""
    if not addr:
        return "NULL"
    length = max(0, length)
    shown = min(length, ctx.strsize)
    data = ctx.read(addr, shown) if shown else b""
    if data is None:
        return ptr(ctx, addr)
    return quote(data, hexall) + ("..." if length > shown else "")


def fmt_cstr(ctx, addr, limit=None):
    got = ctx.cstr(addr, ctx.strsize if limit is None else limit)
    if got is None:
        return ptr(ctx, addr)
    data, truncated = got
    return quote(data) + ("..." if truncated else "")


# scalar decoders ----------------------------------------------------------------
def d_int(ctx, v):
    return str(s32(v))


def d_uint(ctx, v):
    return str(u32(v))


def d_long(ctx, v):
    return str(s64(v))


def d_ulong(ctx, v):
    return str(v & MASK64)


def d_hex(ctx, v):
    v &= MASK64
    return f"{v:#x}" if v else "0"


def ptr(ctx, v):
    v &= MASK64
    return f"{v:#x}" if v else "NULL"


def d_oct(ctx, v):
    v = u32(v)
    return f"0{v:o}" if v else "000"


def d_mode_t(ctx, v):
    v = u32(v)
    kind = C.S_IFMT.get(v & S_IFMT)
    return (kind + "|" if kind else "") + _perm(v)


def _perm(v):
    parts = []
    for bit, name in ((S_ISUID, "S_ISUID"), (S_ISGID, "S_ISGID"), (S_ISVTX, "S_ISVTX")):
        if v & bit:
            parts.append(name)
    parts.append(f"0{v & S_IRWXUGO:o}" if v & S_IRWXUGO else "000")
    return "|".join(parts)


def d_fd(ctx, v):
    fd = s32(v)
    if ctx.fd_text is not None and fd >= 0:
        text = ctx.fd_text(fd)
        if text is not None:
            return f"{fd}<{text}>"
    return str(fd)


def d_dirfd(ctx, v):
    fd = s32(v)
    if fd == C.AT_FDCWD:
        if ctx.cwd_text is not None:
            cwd = ctx.cwd_text()
            if cwd is not None:
                return f"AT_FDCWD<{cwd}>"
        return "AT_FDCWD"
    return d_fd(ctx, v)


def d_path(ctx, v):
    """Path names are printed whole (strace ignores -s for them)."""
    return fmt_cstr(ctx, v, PATH_MAX)


def d_str(ctx, v):
    return fmt_cstr(ctx, v)


def d_sig(ctx, v):
    return C.signal_name(s32(v))


def flagset(table, zero="0", width=32):
    mask = (1 << width) - 1

    def dec(ctx, v):
        return C.flags(v & mask, table, zero)
    return dec


def enumof(table, fmt="{:#x}", signed=False):
    def dec(ctx, v):
        v = s32(v) if signed else u32(v)
        return C.enum(v, table, fmt)
    return dec


def inbuf(len_index, hexall=False):
    """A buffer the call reads: as long as argument len_index."""
    def dec(ctx, v):
        return fmt_buf(ctx, v, ctx.args[len_index] & MASK64, hexall)
    return dec


def outbuf(hexall=False):
    """A buffer the call filled: as long as the result."""
    def dec(ctx, v):
        return fmt_buf(ctx, v, ctx.result, hexall)
    return Out(dec)


def outstr(ctx, v):
    return fmt_cstr(ctx, v)


def _struct(ctx, addr, layout):
    """The fields of the struct (an abi layout) at addr, or None."""
    data = ctx.read(addr, layout.size)
    return None if data is None else layout.unpack(data)


def _int(ctx, addr):
    data = ctx.read(addr, 4)
    return None if data is None else s32(int.from_bytes(data, "little"))


def out_int(ctx, v):
    got = _int(ctx, v)
    return ptr(ctx, v) if got is None else f"[{got}]"


def fd_pair(ctx, v):
    data = ctx.read(v, 8)
    got = None if data is None else (s32(int.from_bytes(data[:4], "little")),
                                     s32(int.from_bytes(data[4:], "little")))
    if got is None:
        return ptr(ctx, v)
    return "[" + ", ".join(d_fd(ctx, fd) for fd in got) + "]"


# open -------------------------------------------------------------------------
def open_flags(ctx, v):
    v = u32(v)
    acc = C.O_ACCMODE[v & O_ACCMODE]
    text = C.flags(v & ~O_ACCMODE, C.OPEN_FLAGS, "")
    return acc + ("|" + text if text else "")


def _open_mode_needed(flags_value):
    return flags_value & C.O_CREAT or flags_value & C.O_TMPFILE == C.O_TMPFILE


def spec_open(ctx):
    items = [d_path, open_flags]
    if _open_mode_needed(ctx.args[1]):
        items.append(d_oct)
    return items


def spec_openat(ctx):
    items = [d_dirfd, d_path, open_flags]
    if _open_mode_needed(ctx.args[2]):
        items.append(d_oct)
    return items


def open_how(ctx, v):
    got = _struct(ctx, v, OPEN_HOW)
    if got is None:
        return ptr(ctx, v)
    fl, mode, resolve = got
    parts = [f"flags={open_flags(ctx, fl)}"]
    if _open_mode_needed(fl) or mode:
        parts.append(f"mode={d_oct(ctx, mode)}")
    parts.append(f"resolve={C.flags(resolve, C.RESOLVE)}")
    return "{" + ", ".join(parts) + "}"


# stat -------------------------------------------------------------------------
def stat_struct(ctx, v):
    data = ctx.read(v, STAT.size)
    if data is None:
        return ptr(ctx, v)
    st = STAT.todict(data)
    mode, rdev, size = st["st_mode"], st["st_rdev"], st["st_size"]
    text = f"{{st_mode={d_mode_t(ctx, mode)}, "
    if mode & S_IFMT in (S_IFCHR, S_IFBLK):
        major, minor = dev_major(rdev), dev_minor(rdev)
        text += f"st_rdev=makedev({major:#x}, {minor:#x}), "
    else:
        text += f"st_size={size}, "
    return text + "...}"


def statx_struct(ctx, v):
    data = ctx.read(v, STATX.size)
    if data is None:
        return ptr(ctx, v)
    stx = STATX.todict(data)
    mask, attributes = stx["stx_mask"], stx["stx_attributes"]
    mode, size = stx["stx_mode"], stx["stx_size"]
    return (f"{{stx_mask={C.flags(mask, C.STATX_MASK)}, stx_attributes={d_hex(ctx, attributes)}, "
            f"stx_mode={d_mode_t(ctx, mode)}, stx_size={size}, ...}}")


_STATFS_HEAD = STATFS.prefix("f_bavail")


def statfs_struct(ctx, v):
    got = _struct(ctx, v, _STATFS_HEAD)
    if got is None:
        return ptr(ctx, v)
    ftype, bsize, blocks, bfree, bavail = got
    return (f"{{f_type={ftype:#x}, f_bsize={bsize}, f_blocks={blocks}, f_bfree={bfree}, "
            f"f_bavail={bavail}, ...}}")


def at_flags(ctx, v):
    return C.flags(u32(v), C.AT_FLAGS)


# memory -----------------------------------------------------------------------
def map_flags(ctx, v):
    v = u32(v)
    kind = C.MAP_TYPE.get(v & MAP_TYPE)
    rest = C.flags(v & ~MAP_TYPE, C.MAP_FLAGS, "")
    head = kind if kind else (f"{v & MAP_TYPE:#x}" if v & MAP_TYPE else "")
    return "|".join(x for x in (head, rest) if x) or "0"


prot = flagset(C.PROT, "PROT_NONE")


# signals ----------------------------------------------------------------------
def sigset_text(data):
    bits = int.from_bytes(data, "little")
    nbits = len(data) * 8
    count = bin(bits).count("1")
    neg = count > nbits // 2
    if neg:
        bits = ~bits & ((1 << nbits) - 1)
    names = []
    for i in range(nbits):
        if bits >> i & 1:
            names.append(C.SIGNALS.get(i + 1, str(i + 1)))
    return ("~" if neg else "") + "[" + " ".join(names) + "]"


def sigset_at(size_index=None, size=8):
    def dec(ctx, v):
        n = ctx.args[size_index] if size_index is not None else size
        n = n if 0 < n <= 128 else 8
        data = ctx.read(v, n)
        return ptr(ctx, v) if data is None else sigset_text(data)
    return dec


def sigaction_struct(ctx, v):
    got = _struct(ctx, v, SIGACTION)
    if got is None:
        return ptr(ctx, v)
    handler, fl, restorer, sa_mask = got
    mask = sigset_text(sa_mask)
    h = {SIG_DFL: "SIG_DFL", SIG_IGN: "SIG_IGN"}.get(handler, f"{handler:#x}")
    text = f"{{sa_handler={h}, sa_mask={mask}, sa_flags={C.flags(fl, C.SA_FLAGS)}"
    if fl & C.SA_RESTORER:
        text += f", sa_restorer={ptr(ctx, restorer)}"
    return text + "}"


def rt_sigreturn_spec(ctx):
    """The mask the handler's frame restores (at the frame's ucontext)."""
    def dec(ctx, v):
        try:
            rsp = ctx.call.kernel.tracer.get_regs(ctx.call.tid).rsp
        except (OSError, AttributeError):
            return ""
        data = ctx.read(rsp + UCONTEXT_SIGMASK_OFFSET, 8)
        return "" if data is None else f"{{mask={sigset_text(data)}}}"
    return [dec]


# time -------------------------------------------------------------------------
def timespec(ctx, v):
    got = _struct(ctx, v, TIMESPEC)
    if got is None:
        return ptr(ctx, v)
    return f"{{tv_sec={got[0]}, tv_nsec={got[1]}}}"


def timeval(ctx, v):
    got = _struct(ctx, v, TIMEVAL)
    if got is None:
        return ptr(ctx, v)
    return f"{{tv_sec={got[0]}, tv_usec={got[1]}}}"


def itimerval(ctx, v):
    got = _struct(ctx, v, ITIMERVAL)
    if got is None:
        return ptr(ctx, v)
    return (f"{{it_interval={{tv_sec={got[0]}, tv_usec={got[1]}}}, "
            f"it_value={{tv_sec={got[2]}, tv_usec={got[3]}}}}}")


clock_id = enumof(C.CLOCKS, "{}", signed=True)


# processes ------------------------------------------------------------------------
def wait_status(ctx, v):
    s = _int(ctx, v)
    if s is None:
        return ptr(ctx, v)
    if s & 0x7F == 0:
        text = f"WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xFF}"
    elif s & 0xFF == 0x7F:
        text = f"WIFSTOPPED(s) && WSTOPSIG(s) == {C.signal_name((s >> 8) & 0xFF)}"
        if s >> 16:
            text += f" && s >> 16 == {s >> 16}"
    elif s == 0xFFFF:
        text = "WIFCONTINUED(s)"
    else:
        text = f"WIFSIGNALED(s) && WTERMSIG(s) == {C.signal_name(s & 0x7F)}"
        if s & 0x80:
            text += " && WCOREDUMP(s)"
    return f"[{{{text}}}]"


def out_wait_status(ctx, v):
    if not v:
        return "NULL"
    if ctx.result == 0:
        return ptr(ctx, v)
    return wait_status(ctx, v)


wait_opts = flagset(C.WAIT_OPTIONS)


def clone_flags_text(v):
    sig = v & CSIGNAL
    text = C.flags(v & ~CSIGNAL & MASK32, C.CLONE_FLAGS, "")
    if sig:
        text = (text + "|" if text else "") + C.signal_name(sig)
    return text or "0"


def spec_clone(ctx):
    # x86_64: clone(flags, stack, parent_tid, child_tid, tls)
    fl = ctx.args[0]

    def named(name, fn):
        return lambda c, _v, fn=fn: f"{name}={fn(c)}"
    items = [lambda c, _v: f"child_stack={ptr(c, c.args[1])}",
             lambda c, _v: f"flags={clone_flags_text(c.args[0])}"]
    rest = []
    if fl & CLONE_PARENT_SETTID:
        rest.append(named("parent_tid", lambda c: out_int(c, c.args[2])
                          if not c.failed() else ptr(c, c.args[2])))
    if fl & CLONE_SETTLS:
        rest.append(named("tls", lambda c: ptr(c, c.args[4])))
    if fl & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID):
        rest.append(named("child_tidptr", lambda c: ptr(c, c.args[3])))
    return items + [Out(f) for f in rest]


_CLONE_ARGS_VER0 = CLONE_ARGS.prefix("tls")


def clone3_args(ctx, v):
    size = ctx.args[1]
    data = ctx.read(v, min(max(size, CLONE_ARGS_SIZE_VER0), CLONE_ARGS_SIZE_VER2))
    if data is None:
        return ptr(ctx, v)
    fl, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
        _CLONE_ARGS_VER0.unpack_from(data)
    parts = [f"flags={clone_flags_text(fl & ~CSIGNAL)}"]
    if fl & CLONE_PIDFD:
        parts.append(f"pidfd={ptr(ctx, pidfd)}")
    if fl & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID):
        parts.append(f"child_tid={ptr(ctx, child_tid)}")
    if fl & CLONE_PARENT_SETTID:
        parts.append(f"parent_tid={ptr(ctx, parent_tid)}")
    parts.append(f"exit_signal={C.signal_name(exit_signal) if exit_signal else 0}")
    parts.append(f"stack={ptr(ctx, stack)}")
    parts.append(f"stack_size={d_hex(ctx, stack_size)}")
    if fl & CLONE_SETTLS:
        parts.append(f"tls={ptr(ctx, tls)}")
    return "{" + ", ".join(parts) + "}"


def execve_argv(ctx, v):
    if not v:
        return "NULL"
    items, n = [], 0
    while True:
        word = ctx.read(v + 8 * n, 8)
        if word is None:
            return ptr(ctx, v) if not items else "[" + ", ".join(items) + ", ...]"
        p = int.from_bytes(word, "little")
        if not p:
            break
        if n >= ctx.strsize:
            items.append("...")
            break
        items.append(fmt_cstr(ctx, p))
        n += 1
    return "[" + ", ".join(items) + "]"


def execve_envp(ctx, v):
    if not v:
        return "NULL"
    n = 0
    while n < 100000:
        word = ctx.read(v + 8 * n, 8)
        if word is None or not int.from_bytes(word, "little"):
            break
        n += 1
    return f"{ptr(ctx, v)} /* {n} var{'s' if n != 1 else ''} */"


def rlimit_value(v):
    if v == RLIM_INFINITY:
        return "RLIM64_INFINITY"
    if v and v % 1024 == 0:
        return f"{v // 1024}*1024"
    return str(v)


def rlimit_struct(ctx, v):
    got = _struct(ctx, v, RLIMIT)
    if got is None:
        return ptr(ctx, v)
    return f"{{rlim_cur={rlimit_value(got[0])}, rlim_max={rlimit_value(got[1])}}}"


resource = enumof(C.RLIMITS, "{}")


def sysinfo_struct(ctx, v):
    data = ctx.read(v, SYSINFO.size)
    if data is None:
        return ptr(ctx, v)
    (up, l1, l2, l3, total, free, shared, buf, tswap, fswap, procs, _pad, thigh, fhigh,
     unit) = SYSINFO.unpack(data)
    return (f"{{uptime={up}, loads=[{l1}, {l2}, {l3}], totalram={total}, freeram={free}, "
            f"sharedram={shared}, bufferram={buf}, totalswap={tswap}, freeswap={fswap}, "
            f"procs={procs}, totalhigh={thigh}, freehigh={fhigh}, mem_unit={unit}}}")


_UTSNAME_HEAD = UTSNAME.prefix("nodename")


def uname_struct(ctx, v):
    got = _struct(ctx, v, _UTSNAME_HEAD)
    if got is None:
        return ptr(ctx, v)
    fields = [field.split(b"\0", 1)[0] for field in got]
    return f"{{sysname={quote(fields[0])}, nodename={quote(fields[1])}, ...}}"


def dirents(ctx, v):
    n = ctx.result
    if n is None or n < 0:
        return ptr(ctx, v)
    data = ctx.read(v, n) if n else b""
    count, off = 0, 0
    if data is not None:
        while off + DIRENT64.size <= len(data):
            reclen = DIRENT64.get(data, "d_reclen", off)
            if reclen == 0:
                break
            count += 1
            off += reclen
    return f"{ptr(ctx, v)} /* {count} entries */"


def iovec(len_index, out=False):
    def dec(ctx, v):
        count = u32(ctx.args[len_index])
        if not v:
            return "NULL"
        shown = min(count, ctx.strsize)
        data = ctx.read(v, IOVEC.size * shown)
        if data is None:
            return ptr(ctx, v)
        left = ctx.result if out else None
        parts = []
        for i in range(shown):
            base, ln = IOVEC.unpack_from(data, IOVEC.size * i)
            if out:
                take = max(0, min(ln, left))
                left -= take
                text = fmt_buf(ctx, base, take)
            else:
                text = fmt_buf(ctx, base, ln)
            parts.append(f"{{iov_base={text}, iov_len={ln}}}")
        more = ", ..." if count > shown else ""
        return "[" + ", ".join(parts) + more + "]"
    return dec


# sockets ------------------------------------------------------------------------
def sockaddr(ctx, addr, length):
    if not addr:
        return "NULL"
    length = max(0, min(length, SOCKADDR_STORAGE_SIZE))
    data = ctx.read(addr, length) if length >= SA_FAMILY.size else None
    if data is None:
        return ptr(ctx, addr)
    family = sockaddr_family(data)
    fam = C.AF.get(family, str(family))
    if family == AF_UNIX:
        path = data[SUN_PATH_OFFSET:]
        if path[:1] == b"\0":
            return f"{{sa_family={fam}, sun_path=@{quote(path[1:])}}}"
        path = path.split(b"\0", 1)[0]
        return f"{{sa_family={fam}, sun_path={quote(path)}}}"
    if family == AF_INET and len(data) >= SOCKADDR_IN.offset("sin_addr") + 4:
        port, addr4 = unpack_sockaddr_in(data)
        ip = ".".join(str(b) for b in addr4)
        return f'{{sa_family={fam}, sin_port=htons({port}), sin_addr=inet_addr("{ip}")}}'
    if family == AF_INET6 and len(data) >= SOCKADDR_IN6.offset("sin6_scope_id"):
        import socket
        port, flow, addr6, scope = unpack_sockaddr_in6(data)
        ip = socket.inet_ntop(socket.AF_INET6, addr6)
        return (f'{{sa_family={fam}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), '
                f'inet_pton(AF_INET6, "{ip}", &sin6_addr), sin6_scope_id={scope}}}')
    return f"{{sa_family={fam}, sa_data={quote(data[SA_FAMILY.size:])}}}"


def in_sockaddr(len_index):
    def dec(ctx, v):
        return sockaddr(ctx, v, u32(ctx.args[len_index]))
    return dec


def out_sockaddr(len_ptr_index):
    def dec(ctx, v):
        got = _int(ctx, ctx.args[len_ptr_index])
        return sockaddr(ctx, v, got) if got is not None else ptr(ctx, v)
    return Out(dec)


def sock_type(ctx, v):
    v = u32(v)
    base = C.SOCK_TYPES.get(v & SOCK_TYPE_MASK, f"{v & SOCK_TYPE_MASK:#x}")
    rest = C.flags(v & ~SOCK_TYPE_MASK, C.SOCK_FLAGS, "")
    return base + ("|" + rest if rest else "")


def sock_proto(ctx, v):
    if ctx.args[0] & 0xFFFF in (AF_INET, AF_INET6):
        return C.enum(u32(v), C.IPPROTO, "{}")
    return str(s32(v))


# fcntl, ioctl, futex: the call's arguments depend on its command ----------------
def spec_fcntl(ctx):
    cmd = u32(ctx.args[1])
    items = [d_fd, enumof(C.FCNTL)]
    if cmd in (F_GETFD, F_GETFL, F_GETOWN, F_GETSIG, F_GETLEASE, F_GETPIPE_SZ, F_GET_SEALS):
        return items                                # no argument
    if cmd == F_SETFD:
        return items + [flagset(C.FD_FLAGS)]
    if cmd == F_SETFL:
        return items + [open_flags]
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC, F_SETOWN, F_SETSIG, F_SETPIPE_SZ):
        return items + [d_int]
    return items + [ptr]


def fcntl_ret(ctx, r):
    cmd = u32(ctx.args[1])
    if cmd == F_GETFD and r > 0:
        return f"{r:#x} (flags {C.flags(r, C.FD_FLAGS)})"
    if cmd == F_GETFL and r >= 0:
        return f"{r:#x} (flags {open_flags(ctx, r)})"
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        return ret_fd(ctx, r)
    return str(r)


def spec_ioctl(ctx):
    return [d_fd, enumof(C.IOCTLS), ptr]


def spec_futex(ctx):
    op = u32(ctx.args[1])
    cmd = op & 0x7F
    name = C.FUTEX_OPS.get(cmd, f"{cmd:#x}")
    if op & 128:
        name += "_PRIVATE"
    if op & 256:
        name += "|FUTEX_CLOCK_REALTIME"
    items = [ptr, lambda c, v, n=name: n, d_int]

    def bitset(c, _v):
        b = u32(c.args[5])
        return "FUTEX_BITSET_MATCH_ANY" if b == MASK32 else f"{b:#x}"
    if cmd in (0, 6, 13):                   # waits and PI locks: a timeout
        return items + [timespec]
    if cmd == 9:
        return items + [timespec, bitset]
    if cmd == 10:
        return items + [lambda c, v: "NULL", bitset]
    if cmd == 11:
        return items + [timespec, ptr]
    if cmd in (3, 4, 12):
        return items + [d_uint, ptr] + ([d_int] if cmd != 3 else [])
    if cmd == 5:
        return items + [d_uint, ptr, d_hex]
    return items


def _u64(ctx, addr):
    data = ctx.read(addr, 8)
    return None if data is None else int.from_bytes(data, "little")


def spec_arch_prctl(ctx):
    code = u32(ctx.args[0])
    if code in (0x1003, 0x1004):                    # ARCH_GET_FS, ARCH_GET_GS
        return [enumof(C.ARCH_PRCTL), Out(lambda c, v: (
            f"[{ptr(c, _u64(c, v))}]" if _u64(c, v) is not None else ptr(c, v)))]
    return [enumof(C.ARCH_PRCTL), ptr]


def spec_prctl(ctx):
    option = s32(ctx.args[0])
    if option == 15:
        return [enumof(C.PRCTL), d_str]
    if option == 16:
        return [enumof(C.PRCTL), Out(outstr)]
    if option in (3, 21, 37, 39):
        return [enumof(C.PRCTL)]
    return [enumof(C.PRCTL, "{}"), d_hex, d_hex, d_hex, d_hex]


def poll_fds(ctx, v):
    n = u32(ctx.args[1])
    shown = min(n, ctx.strsize)
    data = ctx.read(v, POLLFD.size * shown)
    if data is None:
        return ptr(ctx, v)
    parts = []
    for i in range(shown):
        fd, events, _rev = POLLFD.unpack_from(data, POLLFD.size * i)
        parts.append(f"{{fd={d_fd(ctx, fd)}, "
                     f"events={C.flags(events & 0xFFFF, C.POLL_EVENTS)}}}")
    return "[" + ", ".join(parts) + (", ..." if n > shown else "") + "]"


def poll_ret(ctx, r):
    if r <= 0:
        return "0 (Timeout)" if r == 0 else str(r)
    v, n = ctx.args[0], u32(ctx.args[1])
    data = ctx.read(v, POLLFD.size * min(n, 1024))
    if data is None:
        return str(r)
    parts = []
    for i in range(len(data) // POLLFD.size):
        fd, _ev, rev = POLLFD.unpack_from(data, POLLFD.size * i)
        if rev:
            parts.append(f"{{fd={fd}, revents={C.flags(rev & 0xFFFF, C.POLL_EVENTS)}}}")
    return f"{r} ([{', '.join(parts)}])"


# return values ------------------------------------------------------------------------
def ret_hex(ctx, r):
    return f"{r & MASK64:#x}"


def ret_fd(ctx, r):
    if r >= 0 and ctx.fd_text is not None:
        text = ctx.fd_text(r)
        if text is not None:
            return f"{r}<{text}>"
    return str(r)


def ret_oct(ctx, r):
    return f"0{r:o}" if r else "000"


# the table ----------------------------------------------------------------------------
p = ptr
SPECS = {
    "read": [d_fd, outbuf(), d_ulong],
    "write": [d_fd, inbuf(2), d_ulong],
    "pread64": [d_fd, outbuf(), d_ulong, d_long],
    "pwrite64": [d_fd, inbuf(2), d_ulong, d_long],
    "readv": [d_fd, Out(iovec(2, out=True)), d_int],
    "writev": [d_fd, iovec(2), d_int],
    "preadv": [d_fd, Out(iovec(2, out=True)), d_int, d_long],
    "pwritev": [d_fd, iovec(2), d_int, d_long],
    "open": spec_open,
    "openat": spec_openat,
    "openat2": [d_dirfd, d_path, open_how, d_ulong],
    "creat": [d_path, d_oct],
    "close": [d_fd],
    "stat": [d_path, Out(stat_struct)],
    "lstat": [d_path, Out(stat_struct)],
    "fstat": [d_fd, Out(stat_struct)],
    "newfstatat": [d_dirfd, d_path, Out(stat_struct), at_flags],
    "statx": [d_dirfd, d_path, at_flags, flagset(C.STATX_MASK), Out(statx_struct)],
    "statfs": [d_path, Out(statfs_struct)],
    "fstatfs": [d_fd, Out(statfs_struct)],
    "lseek": [d_fd, d_long, enumof(C.SEEK, "{}")],
    "mmap": [p, d_ulong, prot, map_flags, d_fd, d_hex],
    "mprotect": [p, d_ulong, prot],
    "pkey_mprotect": [p, d_ulong, prot, d_int],
    "munmap": [p, d_ulong],
    "brk": [p],
    "mremap": [p, d_ulong, d_ulong, flagset(C.MREMAP), p],
    "madvise": [p, d_ulong, enumof(C.MADVISE, "{}")],
    "msync": [p, d_ulong, d_hex],
    "mlock": [p, d_ulong],
    "munlock": [p, d_ulong],
    "rt_sigaction": [d_sig, sigaction_struct, Out(sigaction_struct), d_ulong],
    "rt_sigprocmask": [enumof(C.SIGPROCMASK_HOW), sigset_at(3), Out(sigset_at(3)), d_ulong],
    "rt_sigreturn": rt_sigreturn_spec,
    "rt_sigsuspend": [sigset_at(1), d_ulong],
    "rt_sigpending": [Out(sigset_at(1)), d_ulong],
    "sigaltstack": [p, Out(p)],
    "ioctl": spec_ioctl,
    "access": [d_path, lambda c, v: C.flags(u32(v), C.ACCESS, "F_OK")],
    "faccessat": [d_dirfd, d_path, lambda c, v: C.flags(u32(v), C.ACCESS, "F_OK")],
    "faccessat2": [d_dirfd, d_path, lambda c, v: C.flags(u32(v), C.ACCESS, "F_OK"),
                   flagset(C.AT_EACCESS)],
    "pipe": [Out(fd_pair)],
    "pipe2": [Out(fd_pair), flagset(C.NONBLOCK_CLOEXEC)],
    "dup": [d_fd],
    "dup2": [d_fd, d_int],
    "dup3": [d_fd, d_int, flagset(C.CLOEXEC_FLAG)],
    "nanosleep": [timespec, Out(p)],
    "clock_nanosleep": [clock_id, flagset(C.TIMER_FLAGS), timespec, Out(p)],
    "clock_gettime": [clock_id, Out(timespec)],
    "clock_getres": [clock_id, Out(timespec)],
    "gettimeofday": [Out(timeval), p],
    "getitimer": [enumof(C.ITIMERS, "{}"), Out(itimerval)],
    "setitimer": [enumof(C.ITIMERS, "{}"), itimerval, Out(p)],
    "alarm": [d_uint],
    "getpid": [], "getppid": [], "gettid": [], "getuid": [], "geteuid": [],
    "getgid": [], "getegid": [], "getpgrp": [], "setsid": [], "sched_yield": [],
    "pause": [], "fork": [], "vfork": [], "sync": [], "munlockall": [],
    "inotify_init": [],
    "socket": [enumof(C.AF, "{}"), sock_type, sock_proto],
    "socketpair": [enumof(C.AF, "{}"), sock_type, d_int, Out(fd_pair)],
    "connect": [d_fd, in_sockaddr(2), d_uint],
    "bind": [d_fd, in_sockaddr(2), d_uint],
    "listen": [d_fd, d_int],
    "accept": [d_fd, out_sockaddr(2), Out(out_int)],
    "accept4": [d_fd, out_sockaddr(2), Out(out_int), flagset(C.SOCK_FLAGS)],
    "getsockname": [d_fd, out_sockaddr(2), Out(out_int)],
    "getpeername": [d_fd, out_sockaddr(2), Out(out_int)],
    "shutdown": [d_fd, enumof(C.SHUT, "{}")],
    "sendto": [d_fd, inbuf(2), d_ulong, flagset(C.MSG_FLAGS), in_sockaddr(5), d_uint],
    "recvfrom": [d_fd, outbuf(), d_ulong, flagset(C.MSG_FLAGS), out_sockaddr(5),
                 Out(out_int)],
    "sendmsg": [d_fd, p, flagset(C.MSG_FLAGS)],
    "recvmsg": [d_fd, Out(p), flagset(C.MSG_FLAGS)],
    "setsockopt": [d_fd, enumof(C.SOL, "{}"), lambda c, v: C.enum(
        u32(v), C.SO if c.args[1] == SOL_SOCKET else {}, "{}"), p, d_uint],
    "getsockopt": [d_fd, enumof(C.SOL, "{}"), lambda c, v: C.enum(
        u32(v), C.SO if c.args[1] == SOL_SOCKET else {}, "{}"), Out(p), Out(out_int)],
    "clone": spec_clone,
    "clone3": [clone3_args, d_ulong],
    "execve": [d_path, execve_argv, execve_envp],
    "execveat": [d_dirfd, d_path, execve_argv, execve_envp, at_flags],
    "exit": [d_int],
    "exit_group": [d_int],
    "wait4": [d_int, Out(out_wait_status), wait_opts, p],
    "kill": [d_int, d_sig],
    "tkill": [d_int, d_sig],
    "tgkill": [d_int, d_int, d_sig],
    "uname": [Out(uname_struct)],
    "fcntl": spec_fcntl,
    "flock": [d_fd, flagset(C.FLOCK)],
    "fsync": [d_fd],
    "fdatasync": [d_fd],
    "truncate": [d_path, d_long],
    "ftruncate": [d_fd, d_long],
    "getdents64": [d_fd, Out(dirents), d_uint],
    "getdents": [d_fd, Out(dirents), d_uint],
    "getcwd": [Out(outstr), d_ulong],
    "chdir": [d_path],
    "fchdir": [d_fd],
    "rename": [d_path, d_path],
    "renameat": [d_dirfd, d_path, d_dirfd, d_path],
    "renameat2": [d_dirfd, d_path, d_dirfd, d_path, flagset(C.RENAME)],
    "mkdir": [d_path, d_oct],
    "mkdirat": [d_dirfd, d_path, d_oct],
    "rmdir": [d_path],
    "link": [d_path, d_path],
    "linkat": [d_dirfd, d_path, d_dirfd, d_path, at_flags],
    "unlink": [d_path],
    "unlinkat": [d_dirfd, d_path, at_flags],
    "symlink": [d_path, d_path],
    "symlinkat": [d_path, d_dirfd, d_path],
    "readlink": [d_path, outbuf(), d_ulong],
    "readlinkat": [d_dirfd, d_path, outbuf(), d_ulong],
    "chmod": [d_path, d_oct],
    "fchmod": [d_fd, d_oct],
    "fchmodat": [d_dirfd, d_path, d_oct],
    "chown": [d_path, d_int, d_int],
    "lchown": [d_path, d_int, d_int],
    "fchown": [d_fd, d_int, d_int],
    "fchownat": [d_dirfd, d_path, d_int, d_int, at_flags],
    "umask": [d_oct],
    "utimensat": [d_dirfd, d_path, p, at_flags],
    "chroot": [d_path],
    "getrlimit": [resource, Out(rlimit_struct)],
    "setrlimit": [resource, rlimit_struct],
    "prlimit64": [d_int, resource, rlimit_struct, Out(rlimit_struct)],
    "getrusage": [enumof(C.WHICH_RUSAGE, "{}", signed=True), Out(p)],
    "sysinfo": [Out(sysinfo_struct)],
    "times": [Out(p)],
    "getrandom": [outbuf(hexall=True), d_ulong, flagset(C.GRND)],
    "arch_prctl": spec_arch_prctl,
    "prctl": spec_prctl,
    "set_tid_address": [p],
    "set_robust_list": [p, d_ulong],
    "get_robust_list": [d_int, Out(p), Out(p)],
    "rseq": [p, d_hex, d_int, d_hex],
    "futex": spec_futex,
    "setpgid": [d_int, d_int],
    "getpgid": [d_int],
    "getsid": [d_int],
    "setuid": [d_int], "setgid": [d_int], "setfsuid": [d_int], "setfsgid": [d_int],
    "setreuid": [d_int, d_int], "setregid": [d_int, d_int],
    "setresuid": [d_int, d_int, d_int], "setresgid": [d_int, d_int, d_int],
    "getresuid": [Out(out_int), Out(out_int), Out(out_int)],
    "getresgid": [Out(out_int), Out(out_int), Out(out_int)],
    "getgroups": [d_int, Out(p)],
    "poll": [poll_fds, d_uint, d_int],
    "ppoll": [poll_fds, d_uint, timespec, p, d_ulong],
    "sendfile": [d_fd, d_fd, p, d_ulong],
    "fadvise64": [d_fd, d_long, d_long, enumof(C.FADVISE, "{}")],
    "fallocate": [d_fd, d_hex, d_long, d_long],
    "epoll_create1": [flagset(C.EPOLL_CLOEXEC)],
    "epoll_create": [d_int],
    "epoll_ctl": [d_fd, enumof(C.EPOLL_CTL, "{}"), d_fd, p],
    "epoll_wait": [d_fd, Out(p), d_int, d_int],
    "epoll_pwait": [d_fd, Out(p), d_int, d_int, p, d_ulong],
    "eventfd2": [d_uint, flagset(C.EFD)],
    "eventfd": [d_uint],
    "memfd_create": [d_str, flagset(C.MFD)],
    "inotify_init1": [flagset(C.INOTIFY_INIT)],
    "inotify_add_watch": [d_fd, d_path, d_hex],
    "inotify_rm_watch": [d_fd, d_int],
    "close_range": [d_uint, lambda c, v: "~0U" if u32(v) == MASK32
                    else str(u32(v)), flagset(C.CLOSE_RANGE)],
    "pidfd_open": [d_int, d_hex],
    "pidfd_send_signal": [d_fd, d_sig, p, d_hex],
    "sched_getaffinity": [d_int, d_uint, Out(p)],
    "sched_setaffinity": [d_int, d_uint, p],
    "copy_file_range": [d_fd, p, d_fd, p, d_ulong, d_uint],
    "splice": [d_fd, p, d_fd, p, d_ulong, d_hex],
    "mount": [d_str, d_path, d_str, d_hex, p],
    "umount2": [d_path, d_hex],
    "sethostname": [inbuf(1), d_ulong],
    "unshare": [lambda c, v: clone_flags_text(v & ~CSIGNAL & MASK32)],
    "setns": [d_fd, lambda c, v: clone_flags_text(v & ~CSIGNAL & MASK32)],
    "getxattr": [d_path, d_str, Out(p), d_ulong],
    "lgetxattr": [d_path, d_str, Out(p), d_ulong],
    "fgetxattr": [d_fd, d_str, Out(p), d_ulong],
    "setxattr": [d_path, d_str, inbuf(3), d_ulong, d_hex],
    "lsetxattr": [d_path, d_str, inbuf(3), d_ulong, d_hex],
    "fsetxattr": [d_fd, d_str, inbuf(3), d_ulong, d_hex],
    "listxattr": [d_path, Out(p), d_ulong],
    "llistxattr": [d_path, Out(p), d_ulong],
    "flistxattr": [d_fd, Out(p), d_ulong],
    "removexattr": [d_path, d_str],
    "lremovexattr": [d_path, d_str],
    "fremovexattr": [d_fd, d_str],
    "seccomp": [d_uint, d_hex, p],
    "membarrier": [d_hex, d_hex, d_int],
    "getcpu": [Out(out_int), Out(out_int), p],
}

RETURNS = {
    "mmap": ret_hex, "brk": ret_hex, "mremap": ret_hex, "shmat": ret_hex,
    "open": ret_fd, "openat": ret_fd, "openat2": ret_fd, "creat": ret_fd,
    "dup": ret_fd, "dup2": ret_fd, "dup3": ret_fd, "socket": ret_fd, "accept": ret_fd,
    "accept4": ret_fd, "memfd_create": ret_fd, "eventfd2": ret_fd, "eventfd": ret_fd,
    "epoll_create1": ret_fd, "epoll_create": ret_fd, "inotify_init1": ret_fd,
    "inotify_init": ret_fd, "pidfd_open": ret_fd, "timerfd_create": ret_fd,
    "signalfd4": ret_fd, "perf_event_open": ret_fd,
    "fcntl": fcntl_ret, "umask": ret_oct, "poll": poll_ret, "ppoll": poll_ret,
}

NEVER_RETURN = frozenset({"exit", "exit_group"})

_FALLBACK = {}


def _fallback_spec(name):
    """Decoders from python-ptrace's C prototype of name."""
    spec = _FALLBACK.get(name)
    if spec is not None:
        return spec
    from ..kernel.syscalls.names import prototype
    proto = None
    try:
        proto = prototype(name)
    except ImportError:
        pass
    if proto is None:
        spec = [d_hex] * 6
    else:
        spec = []
        for ctype, argname in proto[1]:
            t = ctype.replace("const ", "").strip()
            if t.endswith("*"):
                if t == "char *" and argname in ("filename", "pathname", "path", "oldname",
                                                 "newname", "name", "specialfile",
                                                 "library", "dir_name", "old", "new"):
                    spec.append(d_path)
                else:
                    spec.append(p)
            elif argname in ("fd", "dfd", "dirfd", "oldfd", "newfd", "epfd", "out_fd", "in_fd"):
                spec.append(d_dirfd if argname in ("dfd", "dirfd") else d_fd)
            elif t in ("int", "pid_t", "uid_t", "gid_t", "clockid_t", "key_t", "timer_t"):
                spec.append(d_int)
            elif t in ("long", "loff_t", "off_t", "ssize_t"):
                spec.append(d_long)
            elif t in ("unsigned int", "u32", "size_t", "unsigned long", "umode_t", "mode_t",
                       "socklen_t", "qid_t", "aio_context_t"):
                spec.append(d_oct if t in ("umode_t", "mode_t") else d_ulong)
            else:
                spec.append(d_hex)
    _FALLBACK[name] = spec
    return spec


def spec_of(name, ctx):
    spec = SPECS.get(name)
    if spec is None:
        spec = _fallback_spec(name)
    if callable(spec):
        spec = spec(ctx)
    return spec


class Decoded:
    """One call's argument texts: those known at entry, then the rest."""
    __slots__ = ("args", "n_entry", "pending", "ret")

    def __init__(self):
        self.args = []
        self.n_entry = 0
        self.pending = ()
        self.ret = None


def decode_entry(name, ctx):
    d = Decoded()
    try:
        spec = spec_of(name, ctx)
    except Exception:
        spec = [d_hex] * 6
    i = 0
    for i, item in enumerate(spec):
        if isinstance(item, Out):
            d.pending = spec[i:]
            d.n_entry = i
            break
        d.args.append(_safe(item, ctx, i))
    else:
        d.n_entry = len(spec)
    return d


def decode_before(name, ctx):
    """Every argument's text before the call runs (for logs, which show
    a call once): those the kernel writes, strace's exit arguments, by
    their addresses, the others decoded as at entry."""
    d = decode_entry(name, ctx)
    texts = d.args
    for k, item in enumerate(d.pending):
        i = d.n_entry + k
        if isinstance(item, Out):
            texts.append(ptr(ctx, ctx.args[i]) if i < len(ctx.args) else "?")
        else:
            texts.append(_safe(item, ctx, i))
    return texts


def decode_exit(name, ctx, d, result):
    ctx.result = result
    start = d.n_entry
    for k, item in enumerate(d.pending):
        i = start + k
        if isinstance(item, Out):
            if result is None or (-4096 < result < 0):
                d.args.append(ptr(ctx, ctx.args[i]) if i < len(ctx.args) else "?")
                continue
            item = item.fn
        d.args.append(_safe(item, ctx, i))
    d.ret = format_result(name, ctx, result)
    return d


def _safe(fn, ctx, i):
    v = ctx.args[i] if i < len(ctx.args) else 0
    try:
        return fn(ctx, v)
    except Exception:
        return ptr(ctx, v)


def format_result(name, ctx, result):
    """'0', '3</etc/passwd>', '0x7f...' or '-1 ENOENT (No such file or directory)';
    '?' when the call never returned."""
    if result is None:
        return "?"
    if -4096 < result < 0:
        err = -result
        if err in C.KERNEL_ERRNOS:       # the host kernel restarts or fails it later
            return f"? {C.errno_name(err)} ({C.errno_text(err)})"
        return f"-1 {C.errno_name(err)} ({C.errno_text(err)})"
    fn = RETURNS.get(name)
    if fn is not None:
        try:
            return fn(ctx, result)
        except Exception:
            pass
    return str(result)
