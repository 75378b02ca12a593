"""Each script in docs/examples runs and does what it says."""
import re
import subprocess
import sys
import time

from conftest import ROOT, _env

EXAMPLES = ROOT / "docs" / "examples"
PYTHON = "/usr/bin/python3"


def example(name, *argv, timeout=60):
    t = time.monotonic()
    p = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--", *argv],
                       capture_output=True, env=_env(), cwd=str(ROOT), timeout=timeout)
    p.elapsed = time.monotonic() - t
    return p


def test_every_example_is_tested():
    tested = {"log_opens", "virtual_file", "time_warp", "deny_network", "count_by_tree"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_log_opens():
    p = example("log_opens", "sh", "-c", "cat /etc/hostname >/dev/null; cat /nonexistent; "
                "echo x > /tmp/f")
    err = p.stderr.decode()
    assert p.returncode == 0
    assert re.search(r"^\[pid 2 cat\] openat '/etc/hostname' O_RDONLY = 3$", err, re.M), err
    assert "[pid 3 cat] openat '/nonexistent' O_RDONLY = -1 ENOENT" in err
    assert re.search(r"^\[pid 1 \w+\] openat '/tmp/f' O_WRONLY = \d+$", err, re.M), err


def test_virtual_file():
    p = example("virtual_file", "sh", "-c",
                "cat /virtual/hello; cd /; cat virtual/hello; wc -c < /virtual/hello; "
                "echo x > /virtual/hello; cat /virtual/other; cat /etc/hostname >/dev/null; "
                "echo rc=$?")
    out, err = p.stdout.decode(), p.stderr.decode()
    assert out.startswith("hello from Python (open number 1)\n"
                          "hello from Python (open number 2)\n34\n"), (out, err)
    assert out.endswith("rc=0\n")
    assert "cannot create /virtual/hello: Permission denied" in err
    assert "/virtual/other: No such file or directory" in err


def test_time_warp_shell_sleep():
    p = example("time_warp", "sh", "-c", "date +%s.%N; sleep 10; date +%s.%N")
    before, after = map(float, p.stdout.split())
    assert p.returncode == 0, p.stderr
    assert 10 <= after - before < 12           # ten guest seconds...
    assert p.elapsed < 6                       # ...in about one of ours


def test_time_warp_python_clocks():
    """Python reads the clocks through the (hidden) vDSO and sleeps with
    clock_nanosleep on an absolute monotonic deadline."""
    code = ("import time; t = time.time(); m = time.monotonic(); time.sleep(5); "
            "print(time.time() - t, time.monotonic() - m)")
    p = example("time_warp", PYTHON, "-c", code)
    wall, mono = map(float, p.stdout.split())
    assert p.returncode == 0, p.stderr
    assert 5 <= wall < 6.5 and 5 <= mono < 6.5
    assert p.elapsed < 5


PROBE = ("import socket\ntry:\n    socket.socket().bind(('127.0.0.1', 0))\n"
         "    print('net ok')\nexcept OSError as e:\n    print('net denied', e.errno)")


def test_deny_network_by_pid():
    p = subprocess.run([sys.executable, str(EXAMPLES / "deny_network.py"), "--pid", "2", "--",
                        "sh", "-c", f'{PYTHON} -c "{PROBE}"; {PYTHON} -c "{PROBE}"'],
                       capture_output=True, env=_env(), cwd=str(ROOT), timeout=60)
    assert p.stdout == b"net denied 13\nnet ok\n", p.stderr


def test_deny_network_by_program():
    p = subprocess.run([sys.executable, str(EXAMPLES / "deny_network.py"), "--program",
                        "busybox", "--", "sh", "-c",
                        f'busybox nc 127.0.0.1 9 </dev/null; {PYTHON} -c "{PROBE}"'],
                       capture_output=True, env=_env(), cwd=str(ROOT), timeout=60)
    assert p.stdout == b"net ok\n", p.stderr
    assert b"nc: socket: Permission denied" in p.stderr


def test_count_by_tree():
    p = example("count_by_tree", "sh", "-c", "ls / >/dev/null; (cat /etc/hostname | wc -c) "
                ">/dev/null")
    err = p.stderr.decode()
    assert p.returncode == 0, err
    lines = err.splitlines()
    top = re.match(r"pid 1 (\w+): (\d+) calls, (\d+) with its descendants$", lines[0])
    assert top, err
    counts = {}
    for line in lines[1:-1]:
        m = re.match(r"( *)pid (\d+) (\w+): (\d+) calls", line)
        assert m, line
        counts[int(m.group(2))] = (len(m.group(1)) // 2, m.group(3), int(m.group(4)))
    assert counts[2][:2] == (1, "ls")
    assert {"cat", "wc"} <= {name for depth, name, n in counts.values() if depth == 2}
    total = int(top.group(3))
    assert total == int(top.group(2)) + sum(n for _, _, n in counts.values())
    m = re.match(r"(\d+) calls, (\d+) stops$", lines[-1])
    assert m and int(m.group(1)) == int(m.group(2)) == total
