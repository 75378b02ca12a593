"""An interactive shell inside umlpy, driven through a pseudo-terminal:
background jobs, ^Z, bg, fg, ^C, kill %1, wait."""
import os
import re
import shutil
import time

import pytest

from conftest import umlpy_argv
from test_signals_and_tty import read_until, spawn_on_pty

PROMPT = b"PROMPT> "


class Session:
    def __init__(self, argv):
        self.proc, self.master = spawn_on_pty(argv)
        self.seen = b""

    def expect(self, needle, timeout=20):
        out = read_until(self.master, needle, timeout)
        self.seen += out
        return out

    def send(self, text):
        os.write(self.master, text if isinstance(text, bytes) else text.encode())

    def command(self, line, until=PROMPT):
        self.send(line + "\n")
        return self.expect(until)

    def close(self):
        os.close(self.master)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_interactive_job_control(shell, mode):
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    argv = [shell, "-i"] if shell == "dash" else ["bash", "--norc", "--noprofile", "-i"]
    s = Session(umlpy_argv(argv, mode, options=["-e", "PS1=PROMPT> ", "-e", "ENV=/dev/null"]))
    try:
        s.expect(PROMPT)
        out = s.command("sleep 100 &")
        # dash ignores SIGTERM until the child has reset its signals: give
        # it time (trace-all makes that window wide)
        time.sleep(0.5)
        out = s.command("jobs")
        assert b"Running" in out, out
        s.command("kill %1")
        out = s.command("wait; echo waited=$?")
        assert b"waited=" in out
        s.send("sleep 101\n")
        s.expect(b"sleep 101")
        time.sleep(0.5)
        s.send(b"\x1a")                                 # ^Z
        out = s.expect(PROMPT)
        assert b"Stopped" in out or b"stopped" in out, out
        out = s.command("bg")
        out = s.command("jobs")
        assert b"Running" in out, out
        s.send("fg\n")
        s.expect(b"sleep 101")
        time.sleep(0.5)
        s.send(b"\x03")                                 # ^C
        s.expect(PROMPT)
        out = s.command("echo status=$?")
        assert b"status=130" in out, out
        out = s.command("echo $$")
        assert re.search(rb"[\r\n]1\r\n", out), out        # the shell is the sandbox's pid 1
        s.send("exit 0\n")
        assert s.proc.wait(timeout=20) == 0
    finally:
        s.close()


def test_ctrl_z_stops_umlpy_as_a_job_and_fg_resumes_it(mode):
    """An interactive shell runs umlpy as a job: ^Z stops the job (umlpy and
    its guest, which holds the terminal), fg carries both on."""
    import shlex
    inner = " ".join(shlex.quote(w) for w in umlpy_argv(
        ["sh", "-c", "echo ready; sleep 1; echo fin''ished"], mode))
    s = Session(["env", "PS1=PROMPT> ", "bash", "--norc", "--noprofile", "-i"])
    try:
        s.expect(PROMPT)
        s.send(inner + "\n")
        s.expect(b"ready")
        time.sleep(0.2)
        s.send(b"\x1a")
        out = s.expect(PROMPT)
        assert b"Stopped" in out, out
        time.sleep(1.5)                   # stopped: the guest must not finish
        out = s.command("jobs")
        assert b"finished" not in out and b"Stopped" in out, out
        s.send("fg\n")
        s.expect(b"finished")
        s.command("echo rc=$?", until=b"rc=0")
        s.send("exit\n")
        s.proc.wait(timeout=20)
    finally:
        s.close()
