"""Linux conformance (issue 13, section 4): calls whose errors or results
inside umlpy differed from the host kernel's.  tests/guest/conformance.c
prints one line per call; each test runs it natively and inside umlpy (both
modes) and compares the lines."""
import difflib
import os
import subprocess

import pytest

from conftest import AS_ROOT, _env, open_up, run_native, run_umlpy, umlpy_argv


@pytest.fixture(scope="module")
def probe(guest):
    return guest("conformance", static=True)


def compare(native, inside):
    assert inside.returncode == native.returncode, inside.stderr.decode()[-2000:]
    a = native.stdout.decode().splitlines()
    b = inside.stdout.decode().splitlines()
    assert a, native.stderr.decode()
    diff = "\n".join(difflib.unified_diff(a, b, "native", "umlpy", lineterm="", n=0))
    assert a == b, diff + "\n" + inside.stderr.decode()[-2000:]


def same(argv, mode, options=()):
    native = run_native(argv)
    inside = run_umlpy(argv, mode, options)
    compare(native, inside)
    return native.stdout.decode()


def workdir(tmp_path):
    open_up(tmp_path)
    return str(tmp_path)


# ---- 1. AF_UNIX addresses on sockets of other families ---------------------

def test_unix_address_on_internet_sockets(probe, tmp_path, mode):
    """bind, connect and sendto of an AF_UNIX address (an existing
    directory, a missing name, a listening socket) on AF_INET and AF_INET6
    stream and datagram sockets: EAFNOSUPPORT or EINVAL (short address,
    inet6 datagram), EPIPE for an unconnected TCP send, as Linux, never the
    path's own EADDRINUSE, ENOENT or ECONNREFUSED."""
    out = same([probe, "sockaddr", workdir(tmp_path)], mode)
    assert "inet-stream bind existing len=full: EAFNOSUPPORT" in out


# ---- 2. a dirfd of a removed directory --------------------------------------

def dot_lines(text):
    """The lines of calls on "." itself."""
    return [line for line in text.splitlines() if " .:" in line]


def test_removed_dirfd(probe, tmp_path, mode):
    """*at calls relative to an fd (and an O_PATH fd) of a directory that
    was removed: every name is missing and none can be made (ENOENT, not
    ENOTDIR: it is still a directory), ".." is where its parent was."""
    argv = [probe, "deleted", workdir(tmp_path)]
    native = run_native(argv)
    inside = run_umlpy(argv, mode)
    assert native.returncode == inside.returncode == 0, inside.stderr.decode()
    keep = lambda p: "\n".join(line for line in p.stdout.decode().splitlines()  # noqa: E731
                               if line not in dot_lines(p.stdout.decode()))
    assert keep(inside) == keep(native)
    assert "fd symlinkat x: ENOENT" in keep(inside)
    assert "path-fd .. is the parent: yes" in keep(inside)


def test_dot_of_a_removed_dirfd(probe, tmp_path, mode):
    """"." of a removed directory (a dirfd, an O_PATH dirfd, a working
    directory removed under the process or entered by fchdir after its
    removal) is the directory itself: stat (".", "./.", AT_EMPTY_PATH)
    shows it unlinked (nlink 0) with the inode it had, mkdir of "." is
    EEXIST, chdir(".") stays in it."""
    argv = [probe, "deleted", workdir(tmp_path)]
    native, inside = run_native(argv), run_umlpy(argv, mode)
    dots = dot_lines(native.stdout.decode())
    assert dot_lines(inside.stdout.decode()) == dots
    for what in ("fd fstatat", "cwd stat", "fchdir fstatat empty"):
        line = next(line for line in dots if line.startswith(what + " attrs"))
        assert "nlink 0 " in line and line.endswith("same inode yes")


# ---- 3. openat2's struct open_how sizes -------------------------------------

def test_open_how_sizes(probe, mode):
    """A struct open_how smaller than 24 bytes: EINVAL; larger: accepted when
    the bytes past the known fields are zero, E2BIG when not or when larger
    than a page, EFAULT when they cannot be read."""
    out = same([probe, "howsize"], mode)
    assert "size 32 nonzero: E2BIG" in out and "size 32: ok" in out


# ---- 5. openat2's RESOLVE_* flags -------------------------------------------

def test_openat2_resolve_flags(probe, tmp_path, mode):
    """openat2 with each RESOLVE_* flag, following and not, over "/", /proc
    (magic links: self/fd/0, exe, cwd, root) and a tree with absolute,
    upward and relative symlinks: BENEATH's EXDEV for "..", absolute paths
    and symlinks and magic links even from the guest's root, IN_ROOT's
    walks that stay inside, NO_MAGICLINKS's ELOOP, NO_SYMLINKS's ELOOP for
    any link on the way, NO_XDEV's EXDEV at a mountpoint, as Linux."""
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "file").write_text("file\n")
    (top / "abs").symlink_to("/")
    (top / "up").symlink_to("..")
    (top / "sub" / "rel").symlink_to("../file")
    open_up(top)
    out = same([probe, "resolve", str(top)], mode)
    for line in ("/ .. BENEATH: EXDEV", "/proc self/fd/0 NO_MAGICLINKS: ELOOP",
                 "/proc self/exe NO_MAGICLINKS: ELOOP", "/proc self/cwd NO_MAGICLINKS: ELOOP",
                 "/proc self/root NO_MAGICLINKS: ELOOP", "TOP abs IN_ROOT: ok TOP"):
        assert line in out


# ---- 4. tree changes in a directory the caller may not write ---------------

def unwritable_tree(tmp_path, probe):
    """tmp_path/d (root's, 0755) holding file and sub/, and a copy of the
    probe that uid 65534 can run."""
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_text("file\n")
    os.chmod(d / "file", 0o644)
    prog = tmp_path / "conformance"
    prog.write_bytes(open(probe, "rb").read())
    os.chmod(prog, 0o755)
    open_up(d)
    return str(d), str(prog)


NOT_ALLOWED = ["symlink: EACCES", "link: EPERM", "mkdir: EACCES", "mknod fifo: EACCES",
               "creat: EACCES", "rename: EACCES", "rename into: EACCES", "unlink: EACCES",
               "rmdir: EACCES"]


@pytest.mark.skipif(not AS_ROOT, reason="needs root to make a directory of someone else's")
def test_changes_in_a_directory_of_someone_else_as_a_guest_user(probe, tmp_path, mode):
    """A guest that is not root inside (umlpy as root, the guest drops to
    uid 1000): symlink, link, mkdir, mknod, creat, rename and unlink in root's
    0755 directory fail as natively."""
    d, prog = unwritable_tree(tmp_path, probe)
    drop = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    native = run_native(drop + [prog, "perm", d])
    assert native.stdout.decode().splitlines() == NOT_ALLOWED
    compare(native, run_umlpy(drop + [prog, "perm", d], mode, host_root=False))


@pytest.mark.skipif(not AS_ROOT, reason="runs umlpy as uid 65534 through setpriv")
def test_changes_in_a_directory_of_someone_else_as_an_ordinary_user(probe, tmp_path):
    """umlpy run by uid 65534: the guest is uid 65534, and root's 0755
    directory is not its to change, as natively."""
    from test_limit_attacks import SETPRIV, _python_for_nobody
    python = _python_for_nobody()
    if python is None:
        pytest.fail("no python with which uid 65534 imports this tree's umlpy")
    d, prog = unwritable_tree(tmp_path, probe)
    native = run_native(SETPRIV + [prog, "perm", d])
    assert native.stdout.decode().splitlines() == NOT_ALLOWED
    inside = subprocess.run(SETPRIV + [python, "-m", "umlpy", "run", "--", prog, "perm", d],
                            capture_output=True, env=_env(), cwd="/", timeout=120)
    compare(native, inside)


# ---- 6. real-time scheduling and hard limits for guest root -----------------

def as_user(argv):
    return ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *argv]


@pytest.mark.skipif(not AS_ROOT, reason="native SCHED_FIFO needs root")
def test_guest_root_sets_real_time_policies(probe, tmp_path, mode):
    """Guest root (root only in the sandbox's user namespace, not host root)
    sets SCHED_FIFO and SCHED_RR with sched_setscheduler, sched_setparam and
    sched_setattr, and sched_getscheduler, sched_getparam, sched_getattr
    report them, in a forked child too (not after SCHED_RESET_ON_FORK),
    as for root natively; out-of-range priorities stay EINVAL."""
    prog = unwritable_tree(tmp_path, probe)[1]
    native = run_native([prog, "sched"])
    inside = run_umlpy([prog, "sched"], mode, host_root=False)
    compare(native, inside)
    assert "setscheduler fifo 10: ok" in native.stdout.decode()


@pytest.mark.skipif(not AS_ROOT, reason="drops to uid 1000 with setpriv")
def test_a_guest_user_keeps_eperm_for_real_time_policies(probe, tmp_path, mode):
    d, prog = unwritable_tree(tmp_path, probe)
    native = run_native(as_user([prog, "sched"]))
    inside = run_umlpy(as_user([prog, "sched"]), mode, host_root=False)
    compare(native, inside)
    assert "setscheduler fifo 10: EPERM" in native.stdout.decode()


# what Linux gives a root with CAP_SYS_RESOURCE (the host's root here may
# lack it: the test states the lines rather than comparing)
ROOT_LIMITS = """\
nofile hard lowered: ok
nofile - hard: soft {soft1} hard -10
nofile hard raised back: ok
nofile - hard: soft {soft2} hard 0
child nofile - hard: soft {soft2} hard 0
nofile hard past nr_open: EPERM
nofile soft over hard: EINVAL
rtprio lowered: ok
prlimit rtprio infinity: ok
prlimit's old: soft 0 hard 0
prlimit rtprio get: ok
rtprio: soft 10 hard infinity
rtprio lowered from infinity: ok
rtprio: soft 10 hard 50
rtprio raised back to 50 again: ok
core raised: EPERM
"""


def test_guest_root_raises_hard_limits(probe, tmp_path, mode):
    """Guest root raises RLIMIT_NOFILE's hard limit back after lowering it
    and RLIMIT_CORE's to infinity (prlimit64 reports the old limit); its
    child inherits what it set; getrlimit and prlimit64 report the raised
    limits; past fs.nr_open stays EPERM, soft over hard EINVAL."""
    prog = unwritable_tree(tmp_path, probe)[1]
    inside = run_umlpy([prog, "rlimit"], mode, host_root=False)
    assert inside.returncode == 0, inside.stderr.decode()
    out = inside.stdout.decode()
    soft1 = int(out.split("soft ")[1].split()[0])       # 100 - the hard limit at start
    assert out == ROOT_LIMITS.format(soft1=soft1, soft2=soft1 + 100), out


@pytest.mark.skipif(not AS_ROOT, reason="drops to uid 1000 with setpriv")
def test_a_guest_user_may_not_raise_hard_limits(probe, tmp_path, mode):
    """As natively, but for RLIMIT_CORE, whose hard limit the sandbox holds
    at 0 (no core is ever written into a host directory)."""
    d, prog = unwritable_tree(tmp_path, probe)
    native = run_native(as_user([prog, "rlimit"]))
    inside = run_umlpy(as_user([prog, "rlimit"]), mode, host_root=False)
    lines = lambda p: [line for line in p.stdout.decode().splitlines()  # noqa: E731
                       if not line.startswith("core")]
    assert inside.returncode == native.returncode == 0, inside.stderr.decode()
    assert lines(inside) == lines(native)
    assert "nofile hard raised back: EPERM" in lines(native)
    assert "core raised: EPERM" in inside.stdout.decode()


# ---- 7. mlock ----------------------------------------------------------------

CAP_SYS_RESOURCE_BIT = 24


def may_raise_memlock_to(size):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard == resource.RLIM_INFINITY or hard >= size:
        return True
    with open("/proc/self/status") as f:
        caps = int(next(line for line in f if line.startswith("CapEff")).split()[1], 16)
    return bool(caps >> CAP_SYS_RESOURCE_BIT & 1)


@pytest.mark.skipif(not AS_ROOT, reason="native mlock beyond RLIMIT_MEMLOCK needs root")
def test_mlock_up_to_the_hosts_hard_limit(probe, tmp_path, mode):
    """The sandbox's RLIMIT_MEMLOCK is set on purpose (limits.memlock_limit):
    umlpy started with a soft limit of 4 MiB under a hard one of 8 MiB
    gives its guest 8 MiB, and guest root locks 6 MiB as root natively."""
    prog = unwritable_tree(tmp_path, probe)[1]
    limit = ["prlimit", "--memlock=4194304:8388608"]
    native = run_native(limit + [prog, "mlock", "6"])
    inside = subprocess.run(limit + umlpy_argv([prog, "mlock", "6"], mode, ["--memory", "64M"],
                                               host_root=False),
                            capture_output=True, env=_env(), timeout=120)
    compare(native, inside)
    assert "mlock 6MiB: ok" in native.stdout.decode()


@pytest.mark.skipif(not AS_ROOT, reason="native mlock beyond RLIMIT_MEMLOCK needs root")
def test_mlock_of_10_mib(probe, tmp_path, mode):
    """Guest root locks 10 MiB, as root natively."""
    if not may_raise_memlock_to(10 << 20):
        pytest.skip("RLIMIT_MEMLOCK's hard limit is below 10 MiB and umlpy lacks "
                    "CAP_SYS_RESOURCE to raise it: no process of this host may lock "
                    "10 MiB without CAP_IPC_LOCK of the host's namespace")
    prog = unwritable_tree(tmp_path, probe)[1]
    compare(run_native([prog, "mlock"]),
            run_umlpy([prog, "mlock"], mode, ["--memory", "64M"], host_root=False))
