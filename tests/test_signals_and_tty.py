"""Signals sent to umlpy, its death, and the terminal."""
import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time

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
    except FileNotFoundError:
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


def test_no_guest_survives_umlpy(mode):
    script = "sleep 300 & echo $!; sh -c 'sleep 300 & echo $!; wait' & wait"
    p = subprocess.Popen(umlpy_argv(["sh", "-c", script], mode),
                         stdout=subprocess.PIPE, env=_env())
    pids = [int(p.stdout.readline()) for _ in range(2)]
    assert all(alive(pid) for pid in pids)
    p.kill()
    p.wait(timeout=20)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "a guest process outlived umlpy"


def test_background_guests_die_with_the_first_process(mode):
    script = "sleep 300 & echo $!"
    p = subprocess.run(umlpy_argv(["sh", "-c", script], mode), capture_output=True,
                       env=_env(), timeout=30)
    pid = int(p.stdout)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


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


def test_ctrl_c_on_the_terminal_reaches_the_guest(guest, mode):
    p, master = spawn_on_pty(umlpy_argv([guest("wait_signal")], mode))
    try:
        read_until(master, b"ready")
        os.write(master, b"\x03")
        out = read_until(master, b"got SIGINT")
        assert p.wait(timeout=20) == 42, out
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()


def test_terminal_passes_through(mode):
    script = "test -t 0 && test -t 1 && echo tty-ok; stty size; read x; echo got=$x"
    p, master = spawn_on_pty(umlpy_argv(["sh", "-c", script], mode))
    try:
        read_until(master, b"tty-ok")
        os.write(master, b"typed\n")
        out = read_until(master, b"got=typed")
        assert p.wait(timeout=20) == 0, out
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
