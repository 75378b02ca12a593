"""umlpy-exec (_native/exec_client.c), the C client of `umlpy exec`
(issue 14): against a started sandbox in a registry of the tests' own.
It must mean what `umlpy exec` means, bytes included, and fail in one
line with docker's statuses (125 umlpy's own, 126, 127)."""
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, open_up, read_pty
from test_lifecycle import AS_ROOT, ok, one_line_error, umlpy

CLIENT = ROOT / "umlpy" / "_native" / "umlpy-exec"
UMLPY_CLI = [sys.executable, "-m", "umlpy"]
BOX = "cbox"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One running sandbox for the module (a start per test is slow);
    removed with every other sandbox of the registry after."""
    assert CLIENT.exists(), "umlpy-exec is built with the package (pip install -e .)"
    base = tmp_path_factory.mktemp("exec-client")
    open_up(base)
    reg = base / "registry"
    ok(umlpy(reg, "create", BOX))
    ok(umlpy(reg, "start", BOX))
    yield reg
    for name in os.listdir(reg):
        if not name.startswith("."):
            umlpy(reg, "rm", "-f", name, timeout=30)


def client(reg, *args, input=None, env=None, timeout=60, **kw):
    full_env = dict(os.environ, UMLPY_REGISTRY=str(reg))
    full_env.update(env or {})
    return subprocess.run([str(CLIENT), *args], input=input, capture_output=True,
                          env=full_env, timeout=timeout, **kw)


def nul_separated(out):
    assert out.endswith(b"\0"), out
    return out[:-1].split(b"\0")


# ---- what the command gets, and what comes back ---------------------------------

def test_output_status_and_stdin(registry):
    p = client(registry, BOX, "--", "sh", "-c", "echo out; echo err >&2; cat; exit 7",
               input=b"from stdin\n")
    assert (p.returncode, p.stdout, p.stderr) == (7, b"out\nfrom stdin\n", b"err\n")
    assert client(registry, BOX, "true").returncode == 0        # "--" is optional
    assert client(registry, BOX, "sh", "-c", "kill -USR1 $$").returncode == 128 + signal.SIGUSR1


def test_env_workdir_and_user(registry):
    p = client(registry, "-e", "GREETING=hi there", "--env=EMPTY=", "-e", "FROM_HERE",
               "-w", "/tmp", BOX, "--", "sh", "-c",
               'pwd; echo "$GREETING|$EMPTY|${EMPTY+set}|$FROM_HERE"',
               env={"FROM_HERE": "passed on"})
    assert ok(p) == "/tmp\nhi there||set|passed on\n"
    assert ok(client(registry, "--workdir=/etc", BOX, "pwd")) == "/etc\n"
    assert ok(client(registry, "-u", "nobody", BOX, "id", "-u")) == "65534\n"
    assert ok(client(registry, "--user=1234:99", BOX, "id")).startswith("uid=1234 gid=99")
    # the last -e of a name wins, as in umlpy exec
    assert ok(client(registry, "-e", "A=1", "-e", "A=2", BOX, "sh", "-c", "echo $A")) == "2\n"


TRICKY = [b'"double" and \'single\' quotes', b"back\\slash\\", b"\\u0041 not an escape",
          b"new\nline", b"tab\there", b"\r\x01\x1b[0m\x7f", b"", b"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x90\x8d",
          b'{"op":"kill","signal":9}', b"-e", b"--"]
# Not UTF-8: a lone byte, a cut sequence, an overlong form, an encoded surrogate,
# beyond U+10FFFF.  They go as surrogateescape's U+DCxx, and come back as these bytes.
NOT_UTF8 = [b"\xff", b"a\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80x\xfe"]


def test_tricky_arguments_arrive_byte_for_byte(registry):
    words = TRICKY + NOT_UTF8
    p = client(registry, BOX, "--", "printf", "%s\\0", *words)
    assert p.returncode == 0, p.stderr
    assert nul_separated(p.stdout) == words
    # the Python client sends the same, and gets the same
    python = umlpy(registry, "exec", BOX, "--", "printf", "%s\\0", *words)
    assert python.stdout == p.stdout


def test_tricky_environment_values_arrive_byte_for_byte(registry):
    values = [v for v in TRICKY + NOT_UTF8]
    args = []
    for i, value in enumerate(values):
        args += ["-e", b"V%d=%s" % (i, value)]
    script = "".join(f'printf "%s\\0" "$V{i}"; ' for i in range(len(values)))
    p = client(registry, *args, BOX, "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    assert nul_separated(p.stdout) == values


def test_a_closed_stdin_is_dev_null(registry):
    p = subprocess.run(["sh", "-c", 'exec <&-; exec "$0" "$1" cat', str(CLIENT), BOX],
                       capture_output=True, env=dict(os.environ, UMLPY_REGISTRY=str(registry)),
                       timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")


# ---- failures: one line, docker's statuses -----------------------------------------

@pytest.mark.parametrize("command, status", [(["/no/such/program"], 127), (["no-such-cmd"], 127),
                                             (["/etc"], 126), (["/etc/passwd"], 126)])
def test_a_command_that_cannot_run(registry, command, status):
    line = one_line_error(client(registry, BOX, *command), status)
    assert line.startswith("umlpy-exec: exec in 'cbox': ")


def test_a_sandbox_that_is_not_running(registry):
    ok(umlpy(registry, "create", "idle"))
    line = one_line_error(client(registry, "idle", "true"), 125)
    assert "not running" in line and "umlpy start idle" in line
    assert "no sandbox named 'ghost'" in one_line_error(client(registry, "ghost", "true"), 125)
    assert "bad sandbox name" in one_line_error(client(registry, "../cbox", "true"), 125)


@pytest.mark.parametrize("args", [[], [BOX], [BOX, "--"], ["-x", BOX, "true"], ["-e"],
                                  ["-w"], ["-e", "=value", BOX, "true"], ["-e", "", BOX, "true"],
                                  ["-e=A=1", BOX, "true"], ["--tty=yes", BOX, "true"]])
def test_usage_errors(registry, args):
    line = one_line_error(client(registry, *args), 125)
    assert line.startswith("umlpy-exec: ") and "usage:" in line


def test_help():
    p = subprocess.run([str(CLIENT), "--help"], capture_output=True)
    assert p.returncode == 0 and p.stdout.startswith(b"usage: umlpy-exec ") and not p.stderr


def test_a_request_too_long_is_refused(registry):
    control_chars = "\x01" * 100_000         # 6 bytes each as JSON: over the 1 MiB a message has
    line = one_line_error(client(registry, BOX, "echo", control_chars, control_chars), 125)
    assert "too long" in line


# ---- signals ------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
def test_a_signal_to_the_client_reaches_the_command(registry, sig):
    name = signal.Signals(sig).name[3:]
    script = f"trap 'echo got-{name}; exit 5' {name}; sleep 30 >/dev/null 2>&1 & echo ready; wait"
    runner = subprocess.Popen([str(CLIENT), BOX, "sh", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env=dict(os.environ, UMLPY_REGISTRY=str(registry)))
    try:
        assert runner.stdout.readline() == b"ready\n"
        runner.send_signal(sig)
        assert runner.wait(20) == 5
        assert runner.stdout.read() == f"got-{name}\n".encode()
        assert b"umlpy" not in runner.stderr.read()   # (the shell may tell of its sleep's death)
    finally:
        runner.kill()
        runner.wait()


def test_a_signal_sent_before_the_command_runs_is_kept_for_it(registry):
    """SIGTERM at once: the client is still connecting or waiting for the
    start; the signal must reach the command all the same (not be lost,
    not kill the client and leave the command running)."""
    runner = subprocess.Popen([str(CLIENT), BOX, "sleep", "30"],
                              env=dict(os.environ, UMLPY_REGISTRY=str(registry)),
                              stderr=subprocess.PIPE)
    time.sleep(0.002)
    runner.send_signal(signal.SIGTERM)
    status = runner.wait(20)
    assert status in (128 + signal.SIGTERM, -signal.SIGTERM), (status, runner.stderr.read())


# ---- where the socket is -----------------------------------------------------------

def test_a_registry_path_too_long_for_a_socket_address(registry, tmp_path):
    open_up(tmp_path)
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "registry"
    assert len(str(deep / "x" / "control.sock")) > 108
    ok(umlpy(deep, "create", "x"))
    try:
        ok(umlpy(deep, "start", "x"))
        assert ok(client(deep, "x", "echo", "deep")) == "deep\n"
    finally:
        umlpy(deep, "rm", "-f", "x", timeout=30)


def test_a_relative_registry(registry):
    parent, leaf = os.path.split(str(registry))
    assert ok(client(os.path.join(leaf, "..", leaf), BOX, "echo", "rel", cwd=parent)) == "rel\n"


def test_an_ordinary_users_registry_root(tmp_path):
    """Without UMLPY_REGISTRY: $XDG_STATE_HOME/umlpy, else ~/.local/state/umlpy
    (the message tells which registry the record was found in)."""
    if not AS_ROOT:
        pytest.skip("switches to uid 65534")
    open_up(tmp_path)
    for state in (tmp_path / "xdg" / "umlpy", tmp_path / "home" / ".local" / "state" / "umlpy"):
        (state / "quiet").mkdir(parents=True)
        (state / "quiet" / "record.json").write_text("{}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(CLIENT)]
    for extra in ({"XDG_STATE_HOME": str(tmp_path / "xdg")}, {}):
        p = subprocess.run(nobody + ["quiet", "true"], capture_output=True,
                           env=dict(env, **extra), timeout=30)
        assert "is not running" in one_line_error(p, 125)
    (tmp_path / "home" / ".local" / "state" / "umlpy" / "quiet" / "record.json").unlink()
    p = subprocess.run(nobody + ["quiet", "true"], capture_output=True, env=env, timeout=30)
    assert "no sandbox named" in one_line_error(p, 125)


# ---- -t: the Python client's -------------------------------------------------------

def test_a_terminal_is_the_python_clients(registry):
    env = dict(os.environ, UMLPY_REGISTRY=str(registry),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert os.path.exists(os.path.join(os.path.dirname(sys.executable), "umlpy"))
    master, slave = pty.openpty()
    try:
        runner = subprocess.Popen([str(CLIENT), "-it", BOX, "--", "sh", "-c", "tty; exit 3"],
                                  stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        slave = None
        out = read_pty(master)
        assert runner.wait(30) == 3
        assert b"/dev/pts/" in out, out
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    no_umlpy = client(registry, "-t", BOX, "true", env={"PATH": "/nonexistent"})
    assert "no umlpy command on PATH" in one_line_error(no_umlpy, 125)


def test_an_ordinary_user_whose_daemon_is_in_subordinate_ids(tmp_path):
    """umlpy start enters the user's subordinate ids; umlpy-exec, run by
    the user outside them, is still the daemon's own user (its uid maps to
    the daemon's) and reaches the ids inside."""
    if not AS_ROOT:
        pytest.skip("sets up /etc/subuid as root")
    from test_identities import SETPRIV, _env, subordinate_ids_of_nobody
    open_up(tmp_path)
    reg = tmp_path / "registry"
    env = dict(_env(), UMLPY_REGISTRY=str(reg))
    with subordinate_ids_of_nobody() as python:
        def as_nobody(*command):
            return subprocess.run(SETPRIV + list(command), capture_output=True, env=env,
                                  cwd="/", timeout=120)
        os.makedirs(reg, mode=0o700)
        os.chown(reg, 65534, 65534)
        try:
            ok(as_nobody(python, "-m", "umlpy", "create", "subs", "--root"))
            ok(as_nobody(python, "-m", "umlpy", "start", "subs"))
            assert ok(as_nobody(str(CLIENT), "-u", "42", "subs", "--", "id", "-u")) == "42\n"
            assert ok(as_nobody(str(CLIENT), "subs", "id", "-u")) == "0\n"
        finally:
            as_nobody(python, "-m", "umlpy", "rm", "-f", "subs")


# ---- against a daemon of the test's own: the request, and odd answers ------------------

def fake_daemon(reg, name, answers):
    """A control socket at reg/name that takes one request and sends the
    answers (raw packets), then hangs up; returns (the thread, the
    requests it got, as parsed JSON)."""
    import json
    import socket
    import threading
    record = reg / name
    record.mkdir(parents=True)
    (record / "record.json").write_text("{}")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(str(record / "control.sock"))
    server.listen(1)
    got = []

    def serve():
        conn, _ = server.accept()
        with conn:
            data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 4)
            for fd in fds:
                os.close(fd)
            got.append((json.loads(data), len(fds)))
            for packet in answers:
                conn.send(packet)
        server.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, got


def test_the_request_is_the_python_clients(tmp_path):
    words = [w for w in TRICKY + NOT_UTF8 if w not in (b"-e", b"--")]
    options = ["-e", b"K=" + b"".join(words), "-e", "EMPTY=", "-w", "/tmp", "-u", "u:g"]
    requests = []
    for n, command in enumerate([[str(CLIENT)], UMLPY_CLI + ["exec"]]):
        reg = tmp_path / f"r{n}"
        thread, got = fake_daemon(reg, "fake", [b'{"ok":false,"error":"no"}'])
        subprocess.run(command + options + ["fake", "--", "printf", *words], capture_output=True,
                       env=dict(os.environ, UMLPY_REGISTRY=str(reg)), timeout=60)
        thread.join(10)
        requests.append(got)
    assert requests[0] == requests[1] and requests[0][0][1] == 3, requests


STARTED = b'{"ok":true,"event":"started","pid":5}'


@pytest.mark.parametrize("answers, status, says", [
    ([b'{"ok":false,"error":"bad\\nthing \\udcff \\u00e9 \\ud83d\\udc0d","errno":2}'], 127,
     "bad\\nthing \\udcff \u00e9 \U0001f40d"),
    ([b'{"ok":false,"error":"x","errno":13}'], 126, ": x"),
    ([b'{"ok":false,"error":"x","errno":null}'], 125, ": x"),
    ([b'{"ok":false,"error":"not the sandbox\'s owner"}'], 125, "owner"),
    ([b'{"ok" false}'], 125, "not a JSON object"),
    ([b'{"ok":false,"error":"' + b"e" * 5000 + b'"}'], 125, "eee"),
    ([], 125, "went away"),
    ([STARTED], 125, "went away"),
    ([STARTED, b'{"event":"exited","status":42}'], 42, None),
    ([b'{"ok":true,"event":"started","pid":5,"more":{"a":[1,2.5e3,{"b":null}],"c":"}"}}',
      b'{"event":"progress"}', b'{"ok":true,"status":3,"event":"exited"}'], 3, None),
    ([STARTED, b'{"event":"exited","status":300}'], 255, None),
    ([STARTED, b'{"event":"exited"}'], 255, None),
])
def test_answers_of_a_daemon(tmp_path, answers, status, says):
    thread, got = fake_daemon(tmp_path, "fake", answers)
    p = client(tmp_path, "fake", "true", timeout=30)
    thread.join(10)
    if says is None:
        assert (p.returncode, p.stderr) == (status, b"")
    else:
        assert says in one_line_error(p, status)
