"""Resource limits per sandbox (--pids --memory --cpu-time --disk
--nofile): each one holds against a program that tries to exceed it, and
the host is not harmed."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import UMLPY, _env, run_umlpy

PY = "/usr/bin/python3"


def test_fork_bomb_is_contained(guest, mode):
    prog = guest("forkbomb", static=True)
    p = run_umlpy([prog], mode, options=["--pids", "30"], timeout=60)
    assert p.returncode == 0, p.stderr
    # the first process is one of the 30
    assert p.stdout == b"forked 29 EAGAIN\n"


def test_threads_count_against_pids():
    script = ("import threading, time\n"
              "ts = []\n"
              "try:\n"
              "    for i in range(100):\n"
              "        t = threading.Thread(target=time.sleep, args=(2,)); t.start(); ts.append(t)\n"
              "except RuntimeError as e:\n"
              "    print(len(ts), 'refused')\n")
    p = run_umlpy([PY, "-c", script], options=["--pids", "10"])
    assert p.stdout == b"9 refused\n", p.stderr


def test_memory_hog_gets_enomem(guest):
    prog = guest("memhog", static=True)
    p = run_umlpy([prog], options=["--memory", "64M"])
    assert p.returncode == 0, p.stderr
    got = int(p.stdout.split()[2])
    assert p.stdout.startswith(b"ENOMEM after") and 32 <= got <= 64


def test_memory_of_the_whole_sandbox_is_limited():
    """Each process stays under its own RLIMIT_DATA; together they are over
    the sandbox's memory: the watchdog kills the largest."""
    hog = f"{PY} -c 'x = bytearray(40 << 20); import time; time.sleep(4); print(\"survived\")'"
    p = run_umlpy(["sh", "-c", f"for i in 1 2 3; do {hog} & done; wait"],
                  options=["--memory", "64M"], timeout=60)
    assert p.stdout.count(b"survived") == 1, (p.stdout, p.stderr)
    assert b"memory limit of 67108864 bytes reached" in p.stderr


def test_spinner_stops_at_its_cpu_limit(guest):
    prog = guest("spin", static=True)
    start = time.monotonic()
    p = run_umlpy([prog], options=["--cpu-time", "1"], timeout=60)
    elapsed = time.monotonic() - start
    assert p.stdout == b"spinning\n"
    assert p.returncode == 128 + 9
    assert b"CPU time limit of 1 s reached" in p.stderr
    # two spinners share the second: well before either could reach it alone
    assert elapsed < 20


def test_disk_filler_gets_enospc_and_keeps_what_it_wrote(guest, tmp_path):
    prog = guest("diskfill", static=True)
    upper = tmp_path / "upper"
    victim = tmp_path / "host-file"
    p = run_umlpy(["sh", "-c", f"{prog} /tmp/fill; {prog} /dev/shm/more; {prog} {victim}"],
                  options=["--disk", "1M", "--upper", str(upper)], timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0].startswith("ENOSPC after") and lines[1:] == ["ENOSPC after 0 KiB"] * 2
    kib = int(lines[0].split()[2])
    assert 900 <= kib <= 1024
    # what was written before the quota is all there, byte for byte
    data = (upper / "tmp" / "fill").read_bytes()
    assert len(data) == kib * 1024 and data == b"x" * len(data)
    assert not victim.exists()
    assert not os.path.exists("/tmp/fill") or os.path.getsize("/tmp/fill") != len(data)


def test_nofile_cannot_be_raised():
    script = ("import resource, os\n"
              "print(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
              "try:\n"
              "    resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))\n"
              "except ValueError as e:\n"
              "    print('raise refused')\n"
              "fds = []\n"
              "try:\n"
              "    while True: fds.append(os.open('/dev/null', 0))\n"
              "except OSError as e:\n"
              "    print(len(fds) + 3, e.errno)\n")
    p = run_umlpy([PY, "-c", script], options=["--nofile", "16"], host_root=False)
    assert p.stdout == b"(16, 16)\nraise refused\n16 24\n", p.stderr


def test_limits_hold_for_an_ordinary_user(guest):
    shared = tempfile.mkdtemp(prefix="limits-")
    os.chmod(shared, 0o755)
    prog = os.path.join(shared, "forkbomb")
    shutil.copy(guest("forkbomb", static=True), prog)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           "/opt/umlpy-venv/bin/python" if os.path.exists("/opt/umlpy-venv/bin/python")
           else UMLPY[0], "-m", "umlpy", "run", "--pids", "20", "--", prog]
    if os.geteuid() != 0:
        cmd = cmd[4:]
    try:
        p = subprocess.run(cmd, capture_output=True, env=_env(), timeout=60, cwd="/")
    finally:
        shutil.rmtree(shared)
    assert p.stdout == b"forked 19 EAGAIN\n", p.stderr


@pytest.fixture
def mlocker(guest):
    """The conformance probe (its `mlock MIB` command) where the guest's
    host identity (nobody, when umlpy runs as root) may run it."""
    shared = tempfile.mkdtemp(prefix="mlock-")
    os.chmod(shared, 0o755)
    prog = os.path.join(shared, "probe")
    shutil.copy(guest("conformance", static=True), prog)
    yield prog
    shutil.rmtree(shared)


def sandbox_memlock():
    """The RLIMIT_MEMLOCK a sandbox without --memory gets here
    (limits.memlock_limit): 64 MiB where umlpy may raise its hard limit
    to that, else the hard limit umlpy has."""
    import resource
    from test_conformance import may_raise_memlock_to
    from umlpy.kernel.limits import MEMLOCK_DEFAULT
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if may_raise_memlock_to(MEMLOCK_DEFAULT) or hard == resource.RLIM_INFINITY:
        return MEMLOCK_DEFAULT
    return min(hard, MEMLOCK_DEFAULT)


def test_mlock_of_10_mib(mlocker):
    """Guest root locks 10 MiB where umlpy may give its sandbox that much
    (as root: CAP_SYS_RESOURCE raises the hard limit to 64 MiB), as root
    natively locks any amount; where it may not (an ordinary user, or a
    root without CAP_SYS_RESOURCE, as in a container), the guest sees the
    truth: the host's hard limit, and ENOMEM, as root in a user namespace
    (or a container's, without CAP_IPC_LOCK) natively."""
    limit = sandbox_memlock()
    p = run_umlpy(["sh", "-c", f"{mlocker} mlock 10; ulimit -l; ulimit -Hl"],
                  host_root=False)
    result = "ok" if limit >= 10 << 20 else "ENOMEM"
    assert p.stdout.decode() == f"mlock 10MiB: {result}\nmunlock: ok\n" + \
        f"{limit >> 10}\n" * 2, p.stderr


def test_mlock_beyond_the_memory_limit_fails(mlocker):
    """--memory 8M: locked memory is memory, so RLIMIT_MEMLOCK is 8 MiB at
    most, and 10 MiB fail with ENOMEM (here the mapping already does:
    RLIMIT_DATA is 8 MiB too), as natively under those limits."""
    p = run_umlpy(["sh", "-c", f"{mlocker} mlock 10; {mlocker} mlock 6; ulimit -Hl"],
                  options=["--memory", "8M"], host_root=False)
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "mlock 10MiB: ENOMEM" and lines[2:4] == ["mlock 6MiB: ok", "munlock: ok"]
    assert int(lines[4]) == min(8 << 10, sandbox_memlock() >> 10), p.stderr


def test_guest_root_cannot_seem_to_raise_the_memlock_limit(mlocker):
    """RLIMIT_MEMLOCK is the sandbox's own in every sandbox: a raise is
    EPERM (as for root in a user namespace natively), never an emulated
    one that getrlimit would report while mlock still meets the real one."""
    limit = sandbox_memlock() >> 10
    p = run_umlpy(["sh", "-c", f"ulimit -l unlimited 2>/dev/null; echo rc=$?; ulimit -l; "
                   f"ulimit -Hl; ulimit -Hl {limit * 2} 2>/dev/null; echo rc=$?; ulimit -Hl"],
                  host_root=False)
    assert p.stdout.decode() == f"rc=2\n{limit}\n{limit}\nrc=2\n{limit}\n", p.stderr


@pytest.mark.parametrize("option,value", [
    ("--memory", "lots"), ("--memory", "0"), ("--pids", "x"), ("--pids", "0"),
    ("--cpu-time", "-1"), ("--cpu-time", "soon"), ("--disk", "1Q"), ("--nofile", "2"),
])
def test_bad_limit_is_one_line_error(option, value):
    p = run_umlpy(["true"], options=[option, value])
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and option.encode() in p.stderr


# ---- umlpy's own memory: what a guest can make it keep is bounded -------------

def _umlpy_max_rss(argv, options=(), timeout=300):
    """((status, stdout, stderr), umlpy's peak RSS in bytes): the VmHWM of
    the umlpy process, read while it runs (a high-water mark: the last
    reading holds the peak; rusage's ru_maxrss would count the pytest
    process the child was forked from, before its exec)."""
    from conftest import umlpy_argv
    peak = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(umlpy_argv(argv, options=options), stdout=out, stderr=err,
                             env=_env())
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):      # Popen returns after the exec
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            if time.monotonic() > deadline:
                p.kill()
                raise AssertionError("umlpy did not finish")
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read(), err.read()), peak


# 100 listings of 5000 entries keep about 1.1 MB each in a cache that holds
# them all (~130 MB of RSS before issue 12); umlpy starts at about 20-35 MB
# and keeps at most LISTINGS_BYTES (16 MiB) of listings.
LISTING_RSS_BOUND = 64 << 20


@pytest.mark.parametrize("mode", ["fds", "threads", pytest.param("paths", marks=pytest.mark.slow),
                                  pytest.param("half", marks=pytest.mark.slow)])
def test_listings_cannot_grow_umlpy(guest, mode):
    prog = guest("listing_hog", static=True)
    (status, out, err), rss = _umlpy_max_rss([prog, "/tmp/big", "5000", "100", mode],
                                             options=["-C", "/tmp"])
    assert (status, err) == (0, b""), err[-800:]
    assert out == (b"5002\n" if mode != "half" else out)
    assert rss < LISTING_RSS_BOUND, f"umlpy grew to {rss >> 20} MB"


@pytest.mark.slow
def test_listings_of_a_big_directory_cannot_grow_umlpy(guest):
    """The issue's numbers: 150 listings of 20k entries were 980 MB."""
    prog = guest("listing_hog", static=True)
    (status, out, err), rss = _umlpy_max_rss([prog, "/tmp/big", "20000", "150", "fds"],
                                             options=["-C", "/tmp"], timeout=600)
    assert (status, out, err) == (0, b"20002\n", b"")
    assert rss < 100 << 20, f"umlpy grew to {rss >> 20} MB"


def test_umlpys_own_growth_counts_against_the_sandbox_memory(monkeypatch):
    """What umlpy grows by beyond its memory at the start is the guest's
    doing: it counts toward --memory, and alone over it ends the sandbox."""
    from types import SimpleNamespace
    from umlpy.kernel import limits as L
    own = [100 << 20]
    monkeypatch.setattr(L, "_own_memory", lambda: own[0])
    monkeypatch.setattr(L, "sandbox_memory", lambda tgids: ({}, {}))
    kernel = SimpleNamespace(processes=SimpleNamespace(threads={}, main=None), first_ids=None)
    dog = L.Watchdog(kernel, L.Limits(memory=64 << 20))
    dog.check()
    assert dog.reason is None
    own[0] += 70 << 20
    dog.check()
    assert "memory limit of 67108864 bytes reached" in dog.reason
    assert "the guest kernel's own 73400320" in dog.reason
