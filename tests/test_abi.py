"""umlpy/abi against the ABI's truth, the host's C headers: every constant
abi defines that a header defines too has the header's value, every struct
layout has the C compiler's size and field offsets (gcc prints them), and
the values the C fast path (umlpy/_native) writes down itself are abi's.
Then the packers' round trips, and abi's start-up cost."""
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from umlpy.abi import MASK64, s32, s64, u32
from umlpy.abi import aio, capability, capset, dirent, mount, elf, fcntl, ioctl, mman, resource, sched, seccomp, \
    signal, socket, stat, sysinfo, time, uio, utsname
from umlpy.abi.layout import Layout

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join(HERE, "..", "umlpy", "_native")
MODULES = (aio, capset, dirent, mount, elf, fcntl, ioctl, mman, resource, sched, seccomp, signal, socket, stat,
           sysinfo, time, uio, utsname)
# abi names whose glibc value is not the kernel's: SIGRTMIN (34: glibc
# keeps two for itself), MAXSYMLINKS (sys/param.h's 20, not the kernel's
# 40), O_LARGEFILE (0 for x86_64 programs, which are all large-file),
# __O_TMPFILE (glibc's includes O_DIRECTORY); checked against the kernel's
# headers in test_kernel_only_values
NOT_THE_HEADERS = {"SIGRTMIN", "MAXSYMLINKS", "O_LARGEFILE", "__O_TMPFILE"}
# enum members the headers define without a macro of the same name
ENUMS = ["KCMP_FILE", "KCMP_VM", "KCMP_FILES", "PTRACE_TRACEME", "IOCB_CMD_PREAD", "IOCB_CMD_PWRITE",
         "IOCB_CMD_FSYNC", "IOCB_CMD_FDSYNC", "IOCB_CMD_POLL", "IOCB_CMD_NOOP",
         "IOCB_CMD_PREADV", "IOCB_CMD_PWRITEV"]

HEADERS = """
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <elf.h>
#include <poll.h>
#include <signal.h>
#include <ucontext.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <linux/aio_abi.h>
#include <asm/termbits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <linux/falloc.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/kcmp.h>
#include <linux/limits.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/stat.h>
#include <asm/unistd.h>
#include <asm/termbits.h>

struct linux_dirent64 {             /* the kernel's; no header has it */
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};
struct linux_dirent {
    unsigned long d_ino;
    unsigned long d_off;
    unsigned short d_reclen;
    char d_name[];
};
struct kernel_sigaction {           /* rt_sigaction's, not glibc's */
    void *sa_handler_;
    unsigned long sa_flags;
    void *sa_restorer;
    uint64_t sa_mask;
};
"""

# abi layout -> (C type, {abi field: C member}); a member None: not in the
# C struct (padding abi names)
STRUCTS = [
    (stat.STAT, "struct stat", {
        "st_atime": "st_atim.tv_sec", "st_atime_nsec": "st_atim.tv_nsec",
        "st_mtime": "st_mtim.tv_sec", "st_mtime_nsec": "st_mtim.tv_nsec",
        "st_ctime": "st_ctim.tv_sec", "st_ctime_nsec": "st_ctim.tv_nsec"}),
    (stat.STATX, "struct statx", {
        f"stx_{t}time_{p}": f"stx_{t}time.tv_{p}" for t in "abcm" for p in ("sec", "nsec")}),
    (stat.STATFS, "struct statfs", {"f_fsid0": "f_fsid.__val[0]", "f_fsid1": "f_fsid.__val[1]"}),
    (fcntl.OPEN_HOW, "struct open_how", {}),
    (dirent.DIRENT64, "struct linux_dirent64", {}),
    (dirent.DIRENT, "struct linux_dirent", {}),
    (time.TIMESPEC, "struct timespec", {}),
    (capset.CAP_USER_HEADER, "struct __user_cap_header_struct", {}),
    (capset.CAP_USER_DATA, "struct __user_cap_data_struct", {}),
    (time.TIMEVAL, "struct timeval", {}),
    (time.ITIMERVAL, "struct itimerval", {
        "it_interval_sec": "it_interval.tv_sec", "it_interval_usec": "it_interval.tv_usec",
        "it_value_sec": "it_value.tv_sec", "it_value_usec": "it_value.tv_usec"}),
    (utsname.UTSNAME, "struct utsname", {}),
    (sysinfo.SYSINFO, "struct sysinfo", {"load1": "loads[0]", "load5": "loads[1]",
                                         "load15": "loads[2]"}),
    (uio.IOVEC, "struct iovec", {}),
    (uio.POLLFD, "struct pollfd", {}),
    (socket.SA_FAMILY, "struct sockaddr", {}),
    (socket.SOCKADDR_UN, "struct sockaddr_un", {}),
    (socket.UCRED, "struct ucred", {}),
    (socket.SOCKADDR_IN, "struct sockaddr_in", {}),
    (socket.SOCKADDR_IN6, "struct sockaddr_in6", {}),
    (socket.SOCKADDR_NL, "struct sockaddr_nl", {}),
    (socket.MSGHDR, "struct msghdr", {}),
    (socket.MMSGHDR, "struct mmsghdr", {}),
    (signal.SIGACTION, "struct kernel_sigaction", {"sa_handler": "sa_handler_"}),
    (signal.SIGINFO, "siginfo_t", {}),
    (signal.UCONTEXT, "ucontext_t", {"ss_sp": "uc_stack.ss_sp", "ss_flags": "uc_stack.ss_flags",
                                     "ss_size": "uc_stack.ss_size"}),
    (sched.CLONE_ARGS, "struct clone_args", {}),
    (seccomp.SECCOMP_DATA, "struct seccomp_data", {f"args{i}": f"args[{i}]" for i in range(6)}),
    (seccomp.SOCK_FILTER, "struct sock_filter", {}),
    (resource.RLIMIT, "struct rlimit", {}),
    (elf.ELF64_EHDR, "Elf64_Ehdr", {}),
    (elf.ELF64_PHDR, "Elf64_Phdr", {}),
    (aio.IOCB, "struct iocb", {}),
    (ioctl.TERMIOS, "struct termios", {}),
    (ioctl.WINSIZE, "struct winsize", {}),
]
# layouts that cover only the head of a bigger C struct (the dirents: up to
# d_name, where the name starts)
PARTIAL = {"ucontext", "sockaddr"}
HEADS = {"linux_dirent64": ("struct linux_dirent64", "d_name"),
         "linux_dirent": ("struct linux_dirent", "d_name")}


def _int_constants(module):
    for name, value in vars(module).items():
        if re.fullmatch(r"[A-Z_][A-Z0-9_]*", name) and type(value) is int:
            yield name, value


def _program():
    lines = [HEADERS, "int main(void) {"]
    seen = set()
    for module in MODULES:
        for name, _ in _int_constants(module):
            if name in seen or name in NOT_THE_HEADERS:
                continue
            seen.add(name)
            lines.append(f'#ifdef {name}\n    printf("const {name} %lld\\n", '
                         f'(long long)({name}));\n#endif')
    for name in ENUMS:
        lines.append(f'    printf("const {name} %lld\\n", (long long)({name}));')
    for name, _ in _int_constants(capability):
        lines.append(f'    printf("cap {name} %lld\\n", (long long)({name}));')
    for layout, ctype, members in STRUCTS:
        if layout.name in HEADS:
            t, member = HEADS[layout.name]
            lines.append(f'    printf("size {layout.name} %zu\\n", offsetof({t}, {member}));')
        else:
            lines.append(f'    printf("size {layout.name} %zu\\n", sizeof({ctype}));')
        for field in layout.fields:
            member = members.get(field, field)
            if member is None:
                continue
            lines.append(f'    printf("field {layout.name} {field} %zu %zu\\n", '
                         f'offsetof({ctype}, {member}), sizeof((({ctype} *)0)->{member}));')
    lines.append("    return 0;\n}\n")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def host_abi(tmp_path_factory):
    """{"const": {name: value}, "cap": {...}, "size": {struct: n},
    "field": {(struct, field): (offset, size)}} as gcc sees the headers."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "abi.c", d / "abi"
    src.write_text(_program())
    cc = subprocess.run(["gcc", "-w", "-o", str(exe), str(src)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr[-4000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    facts = {"const": {}, "cap": {}, "size": {}, "field": {}}
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind in ("const", "cap"):
            facts[kind][rest[0]] = int(rest[1])
        elif kind == "size":
            facts["size"][rest[0]] = int(rest[1])
        else:
            facts["field"][rest[0], rest[1]] = (int(rest[2]), int(rest[3]))
    return facts


def test_constants_are_the_headers(host_abi):
    checked, wrong = 0, []
    for module in MODULES:
        for name, value in _int_constants(module):
            if name in host_abi["const"]:
                checked += 1
                if host_abi["const"][name] & MASK64 != value & MASK64:
                    wrong.append((module.__name__, name, value, host_abi["const"][name]))
    assert not wrong
    assert checked > 250        # the headers define most of them


def test_kernel_only_values(tmp_path):
    """The open flags glibc spells its own way, from the kernel's asm/fcntl.h."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    src = tmp_path / "k.c"
    src.write_text('#include <stdio.h>\n#include <asm/fcntl.h>\nint main(void) {\n'
                   '    printf("%d %d\\n", O_LARGEFILE, __O_TMPFILE);\n    return 0;\n}\n')
    subprocess.run(["gcc", "-o", str(tmp_path / "k"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "k")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(fcntl.O_LARGEFILE), str(fcntl.__O_TMPFILE)]


def test_capabilities_are_bits_of_the_headers_numbers(host_abi):
    for name, value in _int_constants(capability):
        assert value == 1 << host_abi["cap"][name], name


@pytest.mark.parametrize("layout", [s[0] for s in STRUCTS], ids=lambda lay: lay.name)
def test_layout_is_the_c_compilers(host_abi, layout):
    size = host_abi["size"][layout.name]
    if layout.name in PARTIAL:
        assert layout.size <= size
    else:
        assert layout.size == size
    for field in layout.fields:
        got = host_abi["field"].get((layout.name, field))
        if got is None:
            continue
        offset, c_size = got
        assert layout.offset(field) == offset, field
        if (layout.name, field) != ("ucontext", "uc_sigmask"):   # glibc's sigset_t: 128 bytes
            assert layout.field_size(field) == c_size, field


def test_every_field_is_checked(host_abi):
    """A field abi names and the test does not compare is a mistake in STRUCTS."""
    for layout, _ctype, members in STRUCTS:
        for field in layout.fields:
            if members.get(field, field) is not None:
                assert (layout.name, field) in host_abi["field"], (layout.name, field)


def test_abi_offsets_the_others_use():
    assert utsname.UTSNAME_RELEASE_OFFSET == 2 * utsname.UTSNAME_FIELD_LEN
    assert signal.UCONTEXT_SIGMASK_OFFSET == 296
    assert socket.SUN_PATH_OFFSET == 2
    assert seccomp.seccomp_data_arg_low(0) == 16 and seccomp.seccomp_data_arg_high(5) == 60
    assert sched.CLONE_ARGS_SIZE_VER0 == 64


# ---- the C fast path's own copies of ABI values --------------------------------

def _native_defines():
    """#define NAME VALUE lines of umlpy/_native whose value is a number."""
    out = {}
    for name in sorted(os.listdir(NATIVE)):
        if not name.endswith((".c", ".h")) or name == "_tracer.c":
            continue
        with open(os.path.join(NATIVE, name)) as f:
            for line in f:
                m = re.match(r"#define (\w+) +\(?(-?(?:0x[0-9A-Fa-f]+|\d+))\)?\s*(/\*.*)?$",
                             line.strip())
                if m:
                    text = m.group(2)
                    octal = re.fullmatch(r"-?0[0-7]+", text)
                    out[name, m.group(1)] = int(text, 8 if octal else 0)
    return out


# pathcache.c names its copies NAME_ (the headers' NAME would clash); these
# are named as abi names them
NATIVE_ABI = {"VALID_OPEN_FLAGS": fcntl.VALID_OPEN_FLAGS, "OVERFLOW_ID": resource.OVERFLOW_UID,
              "O_TMPFILE_": fcntl.O_TMPFILE_BIT,           # the bit alone, as fastpath.py's
              "AT_STATX_SYNC_": fcntl.AT_STATX_SYNC_TYPE}


def test_native_copies_of_abi_values():
    abi_values = {}
    for module in MODULES:
        abi_values.update(_int_constants(module))
    checked = 0
    for (source, name), value in _native_defines().items():
        if name in NATIVE_ABI:
            want = NATIVE_ABI[name]
        elif name.endswith("_") and name[:-1] in abi_values:
            want = abi_values[name[:-1]]
        else:
            continue
        checked += 1
        assert value == want, (source, name, value, want)
    assert checked >= 15


def test_native_stat_and_statx_come_from_the_headers():
    """The C side fills struct stat / struct statx by their headers' member
    names (no offsets of its own), and sets stx_mask as Attr.pack_statx does."""
    with open(os.path.join(NATIVE, "pathtree.c")) as f:
        text = f.read()
    assert "out->stx_mask = STATX_BASIC_STATS | 0x1000;" in text
    assert stat.STATX_MNT_ID == 0x1000
    for source in os.listdir(NATIVE):
        if source.endswith((".c", ".h")) and source != "_tracer.c":
            with open(os.path.join(NATIVE, source)) as f:
                code = f.read()
            # a struct written at a hand-computed offset would show as one
            assert not re.search(r"\b(buf|out|data)\s*\+\s*(24|40|48|0x1c|0x28)\b", code), source


# ---- packers: round trips ----------------------------------------------------------

def _strategy(code):
    n = int(code[:-1] or 1)
    kind = code[-1]
    if kind == "s":
        return st.binary(min_size=n, max_size=n)
    bits = {"B": 8, "H": 16, "I": 32, "Q": 64, "b": 8, "h": 16, "i": 32, "q": 64}[kind]
    if kind.islower():
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


ALL_LAYOUTS = [s[0] for s in STRUCTS] + [stat.STATFS.prefix("f_bavail"),
                                         sched.CLONE_ARGS.prefix("tls")]


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=lambda lay: lay.name + str(lay.size))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_layout_round_trip(layout, data):
    values = tuple(data.draw(_strategy(layout.code(f))) for f in layout.fields)
    raw = layout.pack(*values)
    assert len(raw) == layout.size
    assert layout.unpack(raw) == values
    as_dict = layout.todict(raw)
    assert tuple(as_dict.values()) == values
    assert layout.fromdict(as_dict) == raw
    for field, value in as_dict.items():
        assert layout.get(raw, field) == value
        assert layout.get(b"\0" * 3 + raw, field, 3) == value


def test_layout_fromdict_zeroes_what_it_is_not_given():
    assert stat.STAT.fromdict({"st_mode": 0o100644}) == stat.STAT.pack(
        *[0o100644 if f == "st_mode" else 0 for f in stat.STAT.fields])
    assert utsname.UTSNAME.fromdict({})[:65] == bytes(65)


def test_prefix_is_the_head_of_the_struct():
    head = stat.STATFS.prefix("f_bavail")
    assert head.fields == stat.STATFS.fields[:5] and head.size == 40
    with pytest.raises(KeyError):
        stat.STATFS.prefix("nothing")


@settings(max_examples=100, deadline=None)
@given(ino=st.integers(0, MASK64), off=st.integers(-(1 << 63), (1 << 63) - 1),
       dtype=st.integers(0, 15), name=st.binary(min_size=1, max_size=255).filter(
           lambda b: b"\0" not in b))
def test_dirent_records(ino, off, dtype, name):
    rec = dirent.pack_dirent64(ino, off, dtype, name)
    d_ino, d_off, reclen, d_type = dirent.DIRENT64.unpack_from(rec)
    assert (d_ino, d_off, d_type, reclen) == (ino, off, dtype, len(rec))
    assert reclen % 8 == 0
    assert rec[dirent.DIRENT64.size:].split(b"\0", 1)[0] == name
    old = dirent.pack_dirent(ino & ((1 << 63) - 1), off, dtype, name)
    o_ino, o_off, o_reclen = dirent.DIRENT.unpack_from(old)
    assert (o_reclen, old[-1], o_off) == (len(old), dtype, off) and o_reclen % 8 == 0
    assert old[dirent.DIRENT.size:].split(b"\0", 1)[0] == name


@settings(max_examples=200, deadline=None)
@given(major=st.integers(0, (1 << 31) - 1), minor=st.integers(0, (1 << 31) - 1))
def test_device_numbers_are_glibcs(major, minor):
    dev = os.makedev(major, minor)
    assert (stat.dev_major(dev), stat.dev_minor(dev)) == (major, minor)
    assert stat.dev_major(dev) == os.major(dev) and stat.dev_minor(dev) == os.minor(dev)


@settings(max_examples=100, deadline=None)
@given(port=st.integers(0, 65535), addr4=st.binary(min_size=4, max_size=4),
       addr6=st.binary(min_size=16, max_size=16), flow=st.integers(0, (1 << 32) - 1),
       scope=st.integers(0, (1 << 32) - 1))
def test_socket_addresses(port, addr4, addr6, flow, scope):
    sin = socket.SOCKADDR_IN.pack(socket.AF_INET, port.to_bytes(2, "big"), addr4)
    assert socket.sockaddr_family(sin) == socket.AF_INET
    assert socket.unpack_sockaddr_in(sin) == (port, addr4)
    assert socket.unpack_sockaddr_in(socket.with_inet_addr(sin, bytes(4))) == (port, bytes(4))
    sin6 = socket.SOCKADDR_IN6.pack(socket.AF_INET6, port.to_bytes(2, "big"),
                                    flow.to_bytes(4, "big"), addr6, scope)
    assert socket.unpack_sockaddr_in6(sin6) == (port, flow, addr6, scope)
    assert socket.unpack_sockaddr_in6(sin6[:24]) == (port, flow, addr6, 0)
    assert socket.inet_port(sin6) == port
    lo = socket.with_inet_addr(sin6, bytes(15) + b"\1")
    assert len(lo) == len(sin6) and socket.unpack_sockaddr_in6(lo)[2] == bytes(15) + b"\1"


def test_sockaddr_un():
    raw = socket.pack_sockaddr_un(b"/tmp/s")
    assert socket.sockaddr_family(raw) == socket.AF_UNIX
    assert raw[socket.SUN_PATH_OFFSET:] == b"/tmp/s\0"
    assert socket.SOCKADDR_UN.size == socket.SUN_PATH_OFFSET + socket.UNIX_PATH_MAX


@settings(max_examples=100, deadline=None)
@given(seconds=st.floats(0, 1e6, allow_nan=False))
def test_timespec(seconds):
    sec, nsec = time.TIMESPEC.unpack(time.pack_timespec(seconds))
    assert sec == int(seconds) and 0 <= nsec <= 10**9
    assert abs(sec + nsec / 1e9 - seconds) < 1e-6 * max(1, seconds)


def test_utsname_field():
    assert utsname.utsname_field("6.1.0") == b"6.1.0\0"
    assert len(utsname.utsname_field("x" * 100)) == utsname.UTSNAME_FIELD_LEN


@settings(max_examples=300, deadline=None)
@given(v=st.integers(0, MASK64))
def test_argument_helpers(v):
    assert u32(v) == v & 0xFFFFFFFF
    assert s32(v) & 0xFFFFFFFF == v & 0xFFFFFFFF and -(1 << 31) <= s32(v) < (1 << 31)
    assert s64(v) & MASK64 == v and -(1 << 63) <= s64(v) < (1 << 63)


def test_syscall_call_accessors():
    from umlpy.kernel.decisions import SyscallCall
    call = SyscallCall(None, 1, 0, (MASK64 - 99, 0xFFFFFFFF, 1 << 63, 0x1_0000_0005, 7, 0), None)
    assert call.fd(0) == fcntl.AT_FDCWD
    assert (call.int(1), call.uint(1)) == (-1, 0xFFFFFFFF)
    assert (call.long(2), call.ptr(2)) == (-(1 << 63), 1 << 63)
    assert (call.int(3), call.uint(3), call.long(3)) == (5, 5, 0x1_0000_0005)


def test_layout_declares_padding():
    lay = Layout("t", (("a", "B"), (None, "3x"), ("b", "I")))
    assert lay.size == 8 and lay.fields == ("a", "b") and lay.offset("b") == 4


def test_abi_is_cheap_to_import():
    """No abi module pulls in enum, re, ctypes or dataclasses (start-up time)."""
    code = ("import sys\nbefore = set(sys.modules)\n"
            "import umlpy.abi\n"
            + "".join(f"import {m.__name__}\n" for m in MODULES + (capability,))
            + "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.join(HERE, "..")).stdout.split()
    assert not {"enum", "re", "ctypes", "dataclasses", "typing"} & set(out), out
