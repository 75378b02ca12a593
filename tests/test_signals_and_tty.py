"""Signals sent to umlpy, its death, and the terminal."""
import contextlib
import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import _env, umlpy_argv


def read_until(fd, needle, timeout=20):
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; got {data!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):     # gone while we read
        return False


def test_sigterm_to_umlpy_reaches_the_guest(guest, mode):
    p = subprocess.Popen(umlpy_argv([guest("wait_signal")], mode),
                         stdout=subprocess.PIPE, env=_env())
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert out == b"got SIGTERM\n"
    assert p.returncode == 43


def test_guest_killed_by_forwarded_signal_gives_128_plus_n(mode):
    p = subprocess.Popen(umlpy_argv(["sh", "-c", "echo ready; exec sleep 60"], mode),
                         stdout=subprocess.PIPE, env=_env())
    assert p.stdout.readline() == b"ready\n"
    time.sleep(0.2)     # let the exec happen
    p.send_signal(signal.SIGHUP)
    p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGHUP


def host_pids_of(*argv):
    """Host pids of live processes whose command line is exactly argv."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == want and alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                pass
    return found


def wait_until_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


@pytest.mark.parametrize("pid_mode", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_no_guest_survives_umlpy(mode, pid_mode):
    marker = str(3000 + os.getpid() % 1000)
    script = f"sleep {marker} & sh -c 'sleep {marker} & wait' & echo started; wait"
    p = subprocess.Popen(umlpy_argv(["sh", "-c", script], mode, pid_mode),
                         stdout=subprocess.PIPE, env=_env())
    assert p.stdout.readline() == b"started\n"
    deadline = time.monotonic() + 10
    while len(host_pids_of("sleep", marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = host_pids_of("sleep", marker)
    assert len(pids) == 2
    p.kill()
    p.wait(timeout=20)
    assert wait_until_gone(pids), "a guest process outlived umlpy"


@pytest.mark.parametrize("pid_mode", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_background_guests_die_with_the_first_process(mode, pid_mode):
    marker = str(4000 + os.getpid() % 1000)
    p = subprocess.Popen(umlpy_argv(["sh", "-c", f"sleep {marker} & sleep 0.5"], mode, pid_mode),
                         env=_env())
    deadline = time.monotonic() + 10
    while not host_pids_of("sleep", marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = host_pids_of("sleep", marker)
    assert pids
    assert p.wait(timeout=30) == 0
    assert wait_until_gone(pids)


def spawn_on_pty(argv):
    """Start argv as the session leader of a new pseudo-terminal."""
    master, slave = pty.openpty()

    def become_tty_owner():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=_env(),
                         preexec_fn=become_tty_owner, close_fds=True)
    os.close(slave)
    return p, master


@contextlib.contextmanager
def on_pty(argv):
    """spawn_on_pty, cleaned up (terminal closed, process killed) on exit."""
    p, master = spawn_on_pty(argv)
    try:
        yield p, master
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
        p.wait()


@pytest.mark.parametrize("pid_mode", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_ctrl_c_on_the_terminal_reaches_the_guest(guest, mode, pid_mode):
    with on_pty(umlpy_argv([guest("wait_signal")], mode, pid_mode)) as (p, master):
        read_until(master, b"ready")
        os.write(master, b"\x03")
        out = read_until(master, b"got SIGINT")
        assert p.wait(timeout=20) == 42, out


@pytest.mark.parametrize("pid_mode", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_terminal_passes_through(mode, pid_mode):
    script = "test -t 0 && test -t 1 && echo tty-ok; stty size; read x; echo got=$x"
    with on_pty(umlpy_argv(["sh", "-c", script], mode, pid_mode)) as (p, master):
        read_until(master, b"tty-ok")
        os.write(master, b"typed\n")
        out = read_until(master, b"got=typed")
        assert p.wait(timeout=20) == 0, out


@pytest.mark.parametrize("pid_mode", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_ctrl_c_kills_a_program_without_a_handler(mode, pid_mode):
    with on_pty(umlpy_argv(["sh", "-c", "echo ready; exec sleep 60"], mode, pid_mode)) as (p, master):
        read_until(master, b"ready")
        time.sleep(0.3)
        os.write(master, b"\x03")
        assert p.wait(timeout=20) == 128 + signal.SIGINT
