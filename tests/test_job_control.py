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
