"""A syscall fuzzer inside the sandbox (tests/guest/fuzz.c): random calls
with random and crafted arguments, half of them the calls the guest
kernel's Python handlers decide.  The tracer must neither crash nor hang,
nothing outside the sandbox may change, and no process may outlive it.

Every crash the fuzzer found is pinned by the smallest guest program that
triggers it (test_fuzzer_regressions)."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import _env, umlpy_argv
from umlpy.kernel.syscalls import TABLE
from umlpy.kernel.syscalls.registry import Support

FUZZ_SECONDS = int(os.environ.get("UMLPY_FUZZ_SECONDS", "150"))


def decided_calls():
    return ",".join(str(e.nr) for e in TABLE
                    if e.support in (Support.EMULATED, Support.GUARDED))


def tree_digest(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            h.update(p.encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def fuzz(guest, tmp_path, seed, seconds, options=()):
    marker_dir = tmp_path / "outside"
    marker_dir.mkdir()
    (marker_dir / "marker").write_text("must not change\n")
    os.chmod(marker_dir, 0o777)
    before = tree_digest(marker_dir)
    # the guest is nobody on the host: its program must be where nobody reaches
    os.chmod(tmp_path, 0o755)
    prog = str(tmp_path / "fuzz")
    shutil.copy(guest("fuzz", static=True), prog)
    parent = tmp_path.parent
    while str(parent).startswith(tempfile.gettempdir() + "/") and parent != parent.parent:
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
        parent = parent.parent
    env = dict(_env(), FUZZ_NRS=decided_calls(), UMLPY_FUZZ_TAG=f"umlpy-fuzz-{os.getpid()}")
    argv = umlpy_argv([prog, str(seed), str(seconds)], options=list(options), host_root=False)
    p = subprocess.run(argv, capture_output=True, timeout=seconds + 120, env=env,
                       stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    # the fuzzer's own summary (workers also scribble on stdout and stderr)
    assert f"fuzz done seed={seed}" in out, (out[-1000:], err[-3000:])
    # umlpy's own failures, not the bytes its workers dump (a static
    # binary's rodata holds ld.so's "internal error"; a host file read back
    # may hold a Python traceback)
    assert not re.search(r'^Traceback \(most recent call last\):\n  File "[^"]*umlpy/', err,
                         re.M), err[-3000:]
    assert "umlpy: internal error" not in err, err[-3000:]
    assert p.returncode == 0, err[-3000:]
    assert tree_digest(marker_dir) == before
    assert sorted(os.listdir(marker_dir)) == ["marker"]
    survivors = subprocess.run(["pgrep", "-f", f"{prog} {seed} "], capture_output=True)
    assert survivors.stdout == b"", "a guest process outlived its sandbox"


@pytest.mark.slow
def test_fuzzer_for_minutes(guest, tmp_path):
    fuzz(guest, tmp_path, seed=int(os.environ.get("UMLPY_FUZZ_SEED", "20261127")),
         seconds=FUZZ_SECONDS)


# Each crash the fuzzer found, as the smallest guest that triggers it.
REGRESSIONS = {
    # sendmmsg whose vector runs into unmapped memory: a short read was
    # unpacked (Linux sends the messages before the hole)
    "sendmmsg-short-vector": ([], """
        import ctypes, errno, socket
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        base = libc.mmap(None, 8192, 3, 0x22, -1, 0)
        libc.munmap(ctypes.c_void_p(base + 4096), 4096)       # the next page is a hole
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        r = libc.syscall(307, a.fileno(), ctypes.c_void_p(base + 4000), 8, 0)   # sendmmsg
        print(r, ctypes.get_errno(), b.recv(10))
        # two named messages to a datagram socket of the guest's: both arrive,
        # one per call (a partial sendmmsg, which callers send on from)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.bind("/tmp/dg")
        class iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        class mmsghdr(ctypes.Structure):
            _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint),
                        ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                        ("flags", ctypes.c_int), ("pad", ctypes.c_int),
                        ("len", ctypes.c_uint), ("pad2", ctypes.c_uint)]
        addr = ctypes.create_string_buffer(b"\\x01\\x00/tmp/dg\\x00", 10)
        datas = [ctypes.create_string_buffer(t) for t in (b"one", b"three")]
        iovs = [iovec(ctypes.addressof(d), len(d.value)) for d in datas]
        vec = (mmsghdr * 2)(*[mmsghdr(ctypes.addressof(addr), 10, ctypes.pointer(iovs[i]), 1,
                                      None, 0, 0, 0, 0, 0) for i in range(2)])
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sent = 0
        while sent < 2:
            n = libc.syscall(307, d.fileno(), ctypes.byref(vec, sent * ctypes.sizeof(mmsghdr)),
                             2 - sent, 0)
            assert n > 0, ctypes.get_errno()
            sent += n
        print(c.recv(10), c.recv(10), vec[0].len, vec[1].len)
    """, "1 0 b''\nb'one' b'three' 3 5"),
    # listen on a file under --net loopback: the socket check raised ENOTSOCK
    "listen-non-socket": (["--net", "loopback"], """
        import ctypes, errno, os
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/dev/null", os.O_RDONLY)
        print(libc.listen(fd, 1), errno.errorcode[ctypes.get_errno()])
    """, "-1 ENOTSOCK"),
    # a result written where the guest may not write (read-only memory, as
    # the scratch slots holding other threads' checked arguments): the
    # guest kernel wrote it through /proc/PID/mem, which ignores protections
    "stat-into-read-only-memory": ([], """
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        ro = libc.mmap(None, 4096, 1, 0x22, -1, 0)                  # PROT_READ
        r = libc.syscall(4, b"/etc/hostname", ctypes.c_void_p(ro))   # stat
        print(r, errno.errorcode[ctypes.get_errno()], ctypes.string_at(ro, 8) == bytes(8))
    """, "-1 EFAULT True"),
    # a uid with the top bit set under --root: stat could not pack it
    "chown-huge-uid": (["--root"], """
        import ctypes, errno, os
        libc = ctypes.CDLL(None, use_errno=True)
        open("/tmp/f", "w").close()
        print(libc.syscall(92, b"/tmp/f", 0x80000001, 0xFFFFFFFF))     # chown
        st = os.stat("/tmp/f")
        print(st.st_uid, st.st_gid)
    """, "0\n2147483649 0"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzzer_regressions(name):
    import textwrap
    from conftest import run_umlpy
    options, script, expected = REGRESSIONS[name]
    p = run_umlpy(["/usr/bin/python3", "-c", textwrap.dedent(script)], options=options)
    assert b"internal error" not in p.stderr, p.stderr
    assert p.stdout.decode().strip() == expected, p.stderr
