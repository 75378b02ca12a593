"""The limits under attack (issue 12): each test is a way a guest got past
a limit (tests/guest/limit_attacks.c), run as root (where umlpy gives
the sandbox a cgroup of its own when the host has one) and as an
ordinary user (the guest kernel's own enforcement alone)."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, UMLPY, _env, open_up, run_umlpy

USERS = ["root", "nobody"] if os.geteuid() == 0 else ["nobody"]
SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_for_nobody():
    """An interpreter with which uid 65534 imports this tree's umlpy (not
    an installed copy found when this tree is out of its reach)."""
    probe = "import umlpy; print(umlpy.__file__)"
    wanted = str(ROOT / "umlpy" / "__init__.py")
    for candidate in (sys.executable, "/opt/umlpy-ci-venv/bin/python",
                      "/opt/umlpy-venv/bin/python"):
        if candidate and os.path.exists(candidate) and \
                subprocess.run(SETPRIV + [candidate, "-c", probe], capture_output=True,
                               env=_env(), cwd="/").stdout.decode().strip() == wanted:
            return candidate
    return None


@pytest.fixture(scope="module")
def attacker(guest):
    """limit_attacks, where uid 65534 can run it."""
    where = tempfile.mkdtemp(prefix="limit-attacks-")
    os.chmod(where, 0o755)
    prog = os.path.join(where, "limit_attacks")
    shutil.copy(guest("limit_attacks", static=True), prog)
    os.chmod(prog, 0o755)
    yield prog
    shutil.rmtree(where)


def run_as(user, argv, options, timeout=120):
    if user == "root":
        return run_umlpy(argv, options=options, timeout=timeout)
    if os.geteuid() != 0:
        cmd = UMLPY + ["run", *options, "--", *argv]
    else:
        python = _python_for_nobody()
        if python is None:
            pytest.fail(f"no python with which uid 65534 imports umlpy from {ROOT} "
                        "(a venv outside /root, as .ci/run makes, and a tree it can read)")
        cmd = SETPRIV + [python, "-m", "umlpy", "run", *options, "--", *argv]
    return subprocess.run(cmd, capture_output=True, env=_env(), timeout=timeout, cwd="/")


def done_line(p):
    lines = [line for line in p.stdout.decode().splitlines() if line.startswith("done")]
    return lines[-1] if lines else None


@pytest.mark.parametrize("user", USERS)
def test_threads_forking_at_once_stay_within_pids(attacker, user):
    for _ in range(3):
        p = run_as(user, [attacker, "pids-race", "18"], ["--pids", "20"])
        assert p.returncode == 0, p.stderr
        tasks = int(done_line(p).split()[2])
        assert tasks <= 20, p.stdout


def test_a_clone_in_flight_holds_its_slot():
    """Two clones decided before either child exists: the second one at
    the limit fails (a count of the threads alone lets both through)."""
    from umlpy.kernel import GuestKernel
    from umlpy.kernel.decisions import Return, SyscallCall
    from umlpy.kernel.syscalls.names import SYSCALL_NUMBERS
    kernel = GuestKernel(pids=3)
    for tid in (101, 102):
        kernel.processes.first_stop(tid)
    nr = SYSCALL_NUMBERS["fork"]
    entry = kernel.table.entry(nr)
    first = kernel.dispatcher.decide(SyscallCall(kernel, 101, nr, (0,) * 6, entry))
    second = kernel.dispatcher.decide(SyscallCall(kernel, 102, nr, (0,) * 6, entry))
    assert not isinstance(first, Return)
    assert second == Return(-11)
    # the first child appears: its maker's slot is its own now
    kernel.processes.child_created(101, 103, 0)
    assert kernel.processes.counted() == 3
    # a failed clone gives its slot back
    first.on_exit(SyscallCall(kernel, 101, nr, (0,) * 6, entry), -11)
    kernel.processes.exited(103)
    assert kernel.processes.counted() == 2


@pytest.mark.parametrize("user", USERS)
def test_short_lived_children_count_against_cpu_time(attacker, user):
    # 400 children of 8 ms: 3.2 s of CPU, none alive at two samples
    p = run_as(user, [attacker, "cpu-children", "400", "8"], ["--cpu-time", "1"])
    assert p.returncode == 137, (p.stdout, p.stderr)
    assert done_line(p) is None
    assert b"CPU time limit of 1 s reached" in p.stderr


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("attack", ["memfd", "shm"])
def test_shared_memory_counts_against_memory(attacker, user, attack):
    """A memfd filled with write() (never mapped), SysV segments touched
    and detached: no process's RSS shows them."""
    p = run_as(user, [attacker, attack, "512"], ["--memory", "64M"])
    assert p.returncode == 137, (p.stdout, p.stderr)
    assert done_line(p) is None, p.stdout
    assert b"memory limit of 67108864 bytes reached" in p.stderr


def _upper(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    open_up(upper)
    os.chmod(upper, 0o777)
    return upper


def _used(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += max(st.st_blocks * 512, st.st_size)
    return total


@pytest.mark.parametrize("attack", ["mmap-write", "aio"])
def test_disk_writes_without_write_calls_are_counted(attacker, tmp_path, attack):
    """Through a shared mapping of a file grown by ftruncate, and through
    Linux AIO: neither is a write(2)."""
    upper = _upper(tmp_path)
    p = run_umlpy([attacker, attack, "100", "/tmp/filler"],
                  options=["--disk", "10M", "--upper", str(upper)])
    assert p.returncode == 0, p.stderr
    assert "No space left on device" in done_line(p), p.stdout
    assert _used(upper) <= 10 << 20


def test_copy_ups_are_counted(tmp_path):
    """touch -c on a 100 MB lower file the guest may write: its copy-up
    would take 100 MB of a 10 MB quota."""
    big = tmp_path / "lower" / "big"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(0)
        f.write(b"\1" * (100 << 20))
    os.chmod(big, 0o666)
    if os.geteuid() == 0:
        os.chown(big, 65534, 65534)
    open_up(big.parent)
    upper = _upper(tmp_path)
    p = run_umlpy(["sh", "-c", f"touch -c {big}; echo $?; truncate -s 50M /tmp/sparse; echo $?"],
                  options=["--disk", "10M", "--upper", str(upper)], host_root=False)
    assert p.stdout == b"1\n1\n", p.stderr
    assert p.stderr.count(b"No space left on device") == 2, p.stderr
    assert _used(upper) < 1 << 20


def test_the_help_says_how_limits_are_enforced():
    p = subprocess.run(UMLPY + ["run", "--help"], capture_output=True, env=_env())
    text = p.stdout.decode()
    from umlpy.kernel import cgroups
    assert cgroups.in_force_text() in " ".join(text.split())
    if cgroups.available():
        assert "cgroup" in text
