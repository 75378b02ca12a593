"""Named sandboxes in the Python API (issue 14): Sandbox.create(name),
Sandbox.get(name), start, exec, ps, logs, kill, stop, remove; handlers
registered on a named sandbox run in its daemon for every exec; its
options kept as `umlpy run`'s words (config/words.py option_words)."""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import wait_for
from umlpy import Sandbox
from umlpy.api.named import NamedSandbox
from umlpy.config import COMMAND_LINE, Config
from umlpy.config.words import option_words, parse_words
from umlpy.errors import BadInput, CommandNotFound, UmlpyError


@pytest.fixture
def registry(monkeypatch):
    """A registry of the test's own (UMLPY_REGISTRY), in a directory others
    may search (the guest's host ids pass through it, as root), not under
    pytest's 0700 base directory; every sandbox in it removed after, by
    the command line."""
    top = tempfile.mkdtemp(prefix="umlpy-test-named-api-", dir="/tmp")
    os.chmod(top, 0o755)
    reg = os.path.join(top, "registry")
    monkeypatch.setenv("UMLPY_REGISTRY", reg)
    yield reg
    if os.path.isdir(reg):
        for name in os.listdir(reg):
            if not name.startswith("."):
                umlpy(reg, "rm", "-f", name)
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def named(registry):
    """Sandbox.create in the test's registry; each sandbox made through it
    is removed after by the API (the registry fixture removes the rest)."""
    made = []

    def create(name, **options):
        sb = Sandbox.create(name, **options)
        made.append(sb)
        return sb
    yield create
    for sb in made:
        if sb.record.exists():
            sb.remove(force=True)


def umlpy(reg, *args):
    return subprocess.run([sys.executable, "-m", "umlpy", *args], capture_output=True,
                          timeout=60, env=dict(os.environ, UMLPY_REGISTRY=str(reg)))


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.decode()


def one_line(error):
    text = str(error.value)
    assert "\n" not in text and text, text
    return text


# ---- the life of a named sandbox ---------------------------------------------------

def test_create_start_exec_stop_start_again_remove(named):
    sb = named("api-life", hostname="apihost", env={"GREETING": "hi"})
    assert isinstance(sb, NamedSandbox) and sb.name == "api-life"
    assert sb.state == "created"
    assert sb.start() is sb and sb.state == "running"

    r = sb.exec(["sh", "-c", "hostname; echo $GREETING $EXTRA; pwd; cat; echo to-err >&2; "
                 "exit 3"], input=b"from input\n", capture=True, env={"EXTRA": "there"},
                cwd="/tmp")
    assert r.status == 3 and not r.timed_out and r.stats is None
    assert r.stdout == b"apihost\nhi there\n/tmp\nfrom input\n"
    assert r.stderr == b"to-err\n"
    assert sb.exec(["id", "-u"], user="nobody", capture=True).stdout == b"65534\n"
    big = os.urandom(1 << 20)       # more than a pipe holds, both ways at once
    assert sb.exec(["cat"], input=big, capture=True).stdout == big
    with pytest.raises(CommandNotFound):
        sb.exec(["/no/such/program"])

    assert sb.exec(["sh", "-c", "echo kept > /tmp/kept-file"]).status == 0
    sb.stop()
    assert sb.state == "stopped" and sb.state_detail == 0
    with pytest.raises(UmlpyError) as e:
        sb.exec(["true"])
    assert one_line(e) == ("umlpy: sandbox 'api-life' is stopped, not running "
                           "(start() it to exec in it)")
    sb.stop()                       # stopping a stopped sandbox: nothing to do

    sb.start()
    assert sb.exec(["cat", "/tmp/kept-file"], capture=True).stdout == b"kept\n"
    with pytest.raises(BadInput) as e:
        sb.remove()
    assert "is running" in one_line(e)
    sb.remove(force=True)
    assert not sb.record.exists()
    with pytest.raises(BadInput):
        Sandbox.get("api-life")


def test_without_capture_the_output_is_ours(named, capfd):
    sb = named("api-ours")
    sb.start()
    r = sb.exec(["sh", "-c", "echo to-our-stdout; echo to-our-stderr >&2"])
    assert r.status == 0 and r.stdout is None and r.stderr is None
    out, err = capfd.readouterr()
    assert "to-our-stdout\n" in out and "to-our-stderr\n" in err


def test_get_finds_a_sandbox_the_command_line_made_and_the_other_way(named, registry):
    ok(umlpy(registry, "create", "from-cli", "--hostname", "clihost"))
    sb = Sandbox.get("from-cli")
    assert sb.state == "created"
    sb.start()
    assert sb.exec("hostname", capture=True).stdout == b"clihost\n"
    sb.stop()

    made = named("from-api", hostname="apihost", memory="64M", tmpfs=["/scratch"])
    assert made.record.data()["words"] == ["--tmpfs=/scratch", "--memory=67108864",
                                           "--hostname=apihost"]
    ok(umlpy(registry, "start", "from-api"))
    assert ok(umlpy(registry, "exec", "from-api", "--", "hostname")) == "apihost\n"
    rows = {r["name"]: r["state"] for r in json.loads(ok(umlpy(registry, "ls", "--json")))}
    assert rows == {"from-cli": "stopped", "from-api": "running"}
    assert Sandbox.get("from-api").state == "running"


def test_ps_logs_and_kill(named):
    sb = named("api-ps", init=["sh", "-c", "echo booted; exec sleep 1000"])
    sb.start()
    assert wait_for(lambda: b"booted" in sb.logs())
    commands = [p["cmd"] for p in sb.ps()]
    assert ["/sbin/umlpy-init"] in commands and ["sleep", "1000"] in commands
    assert all("host_pid" not in p for p in sb.ps())
    assert isinstance(sb.logs(daemon=True), bytes)
    sb.kill("TERM", all=True)       # INIT's exit stops the sandbox
    assert wait_for(lambda: sb.state != "running")
    assert sb.state == "stopped"
    with pytest.raises(UmlpyError):
        sb.ps()


def test_a_long_registry_path_survives_an_exec_then_a_restart(registry, monkeypatch):
    """A socket path too long for a sockaddr_un is reached through a
    directory fd the program keeps; the daemon forked from it must not
    use the program's."""
    deep = os.path.join(registry, "x" * 100)
    monkeypatch.setenv("UMLPY_REGISTRY", deep)
    sb = Sandbox.create("api-long")
    try:
        sb.start()
        assert sb.exec("true").status == 0
        sb.stop()
        sb.start()
        assert sb.exec("true").status == 0
    finally:
        sb.remove(force=True)


# ---- handlers --------------------------------------------------------------------

def test_a_handler_applies_to_every_exec_and_to_every_start(named, tmp_path):
    opened = tmp_path / "opened"
    sb = named("api-hooks")

    @sb.syscall("getpid")
    def fake_pid(call):
        return call.emulate(4242)

    @sb.syscall("openat")
    def note(call):
        # the handler runs in the daemon: what it counts must reach us by a file
        if call.path(1).startswith("/etc/host"):
            with open(opened, "a") as f:
                f.write(f"{call.program} {call.path(1)}\n")

    sb.start()
    assert sb.exec(["sh", "-c", "echo $$"], capture=True).stdout == b"4242\n"
    assert sb.exec(["cat", "/etc/hostname"], capture=True).status == 0
    assert sb.exec(["cat", "/etc/hosts"], capture=True).status == 0
    assert opened.read_text() == "cat /etc/hostname\ncat /etc/hosts\n"

    with pytest.raises(UmlpyError) as e:
        sb.syscall("uname")
    assert "register them before start()" in one_line(e)

    sb.stop()
    sb.start()                      # the handlers are this object's: they go again
    assert sb.exec(["sh", "-c", "echo $$"], capture=True).stdout == b"4242\n"
    # another handle on the same name has none
    sb.stop()
    other = Sandbox.get("api-hooks")
    other.start()
    assert sb.exec(["sh", "-c", "echo $$"], capture=True).stdout != b"4242\n"


def test_a_handler_that_raises_fails_its_call_and_the_sandbox_lives_on(named):
    sb = named("api-raise")

    @sb.syscall("openat")
    def broken(call):
        if call.path(1) == "/etc/hostname":
            raise RuntimeError("handler bug")

    sb.start()
    r = sb.exec(["cat", "/etc/hostname"], capture=True)
    assert r.status == 1 and b"Bad address" in r.stderr
    assert sb.state == "running"
    assert b"RuntimeError: handler bug" in sb.logs(daemon=True)


def test_errors_raise_ends_the_sandbox_with_the_handler_s_error(named):
    sb = named("api-crash", errors="raise")
    sb.syscall("uname")(lambda call: 1 / 0)
    sb.start()
    assert sb.exec(["uname"]).status == 137        # killed with the whole sandbox
    assert wait_for(lambda: sb.state != "running")
    assert sb.state == "crashed" and "division by zero" in sb.state_detail


# ---- exec's timeout -----------------------------------------------------------------

def test_a_timeout_kills_the_process_and_its_group(named):
    sb = named("api-timeout")
    sb.start()
    t = time.monotonic()
    r = sb.exec(["sh", "-c", "trap '' TERM; sleep 300 & echo started; sleep 300"],
                capture=True, timeout=0.5)
    assert time.monotonic() - t < 10
    assert r.timed_out and r.status == 137 and r.stdout == b"started\n"
    assert wait_for(lambda: all(p["cmd"][:1] != ["sleep"] for p in sb.ps()))
    fast = sb.exec(["true"], timeout=30)
    assert fast.status == 0 and not fast.timed_out


def test_exec_leaves_no_descriptor_behind(named):
    sb = named("api-fds")
    sb.start()
    sb.exec("true", capture=True, input=b"")
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(5):
        assert sb.exec(["cat"], input=b"x", capture=True).stdout == b"x"
    with pytest.raises(CommandNotFound):
        sb.exec(["/no/such/program"], input=b"x", capture=True)
    assert sb.exec(["sleep", "10"], capture=True, timeout=0.1).timed_out
    assert sorted(os.listdir("/proc/self/fd")) == before


class Interrupted(Exception):
    pass


def test_an_interrupted_exec_kills_its_process(named):
    sb = named("api-interrupted")
    sb.start()

    def interrupt(_sig, _frame):
        raise Interrupted()
    old = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident,
                                                       signal.SIGUSR1))
    timer.start()
    try:
        with pytest.raises(Interrupted):
            sb.exec(["sleep", "300"])
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, old)
    assert wait_for(lambda: all(p["cmd"][:1] != ["sleep"] for p in sb.ps()))


# ---- a program with threads ----------------------------------------------------------

def test_start_works_from_a_program_with_threads(named):
    """start() forks the daemon from one thread of the program: the busy
    threads (logging, a lock held, allocating) stay behind, and what they
    hold does not stop the daemon."""
    done = threading.Event()
    held = threading.Lock()
    log = logging.getLogger("test-named-busy")
    log.addHandler(logging.NullHandler())

    def busy():
        while not done.is_set():
            with held:
                log.warning("busy %s", json.dumps(list(range(50))))
                _ = [bytearray(4096) for _ in range(20)]
    threads = [threading.Thread(target=busy, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        first = named("api-threads-1", hostname="one")
        first.start()
        second = named("api-threads-2", hostname="two")
        starter = threading.Thread(target=second.start)    # from a thread, not the main one
        starter.start()
        starter.join(30)
        assert second.state == "running"
        results = {}

        def run(sb):
            results[sb.name] = sb.exec(["hostname"], capture=True).stdout
        execs = [threading.Thread(target=run, args=(sb,)) for sb in (first, second) * 2]
        for t in execs:
            t.start()
        for t in execs:
            t.join(30)
        assert results == {"api-threads-1": b"one\n", "api-threads-2": b"two\n"}
    finally:
        done.set()
        for t in threads:
            t.join()


# ---- bad input ------------------------------------------------------------------------

def test_bad_input_is_one_line(named):
    with pytest.raises(BadInput) as e:
        Sandbox.get("no-such-sandbox")
    assert one_line(e) == "umlpy: no sandbox named 'no-such-sandbox' (see 'umlpy ls')"
    with pytest.raises(BadInput):
        Sandbox.get("bad/name")
    with pytest.raises(BadInput) as e:
        named("api-bad", memory="lots")
    assert one_line(e).startswith("--memory 'lots'")
    with pytest.raises(BadInput) as e:
        named("api-bad", upper="/tmp/somewhere")
    assert "keeps its upper layer" in one_line(e)
    with pytest.raises(BadInput) as e:
        named("api-bad", env={"A=B": "c"})
    assert "'='" in one_line(e)
    with pytest.raises(BadInput) as e:
        named("api-bad", breaks=["openat"])
    assert "pdb" in one_line(e)
    with pytest.raises(TypeError):
        named("api-bad", no_such_option=1)
    assert not os.path.exists(os.path.join(os.environ["UMLPY_REGISTRY"], "api-bad"))

    sb = named("api-bad")
    with pytest.raises(BadInput) as e:
        named("api-bad")
    assert one_line(e) == "umlpy: a sandbox named 'api-bad' already exists"
    with pytest.raises(ValueError):
        sb.syscall("no_such_syscall")
    sb.start()
    for call in (lambda: sb.exec([]), lambda: sb.exec(["true"], timeout=0),
                 lambda: sb.exec(["true"], env={"": "x"}), lambda: sb.stop(timeout=-1),
                 lambda: sb.kill("NOSUCHSIGNAL")):
        with pytest.raises(BadInput) as e:
            call()
        one_line(e)
    assert sb.state == "running"


# ---- options as words -------------------------------------------------------------------

EVERY_OPTION = {
    "rootfs": "/", "layers": [__file__], "upper": "/tmp/upper-of-a-test",
    "binds": [("/tmp", "/mnt/t", True), "/usr:/u"],
    "tmpfs": ["/scratch:size=1M", ("/run", False, True)], "noexec": ["/dev/shm"],
    "shm_size": 1 << 20, "read_only": True, "cpus": 1.5, "cpu_period": 50000,
    "cpu_shares": 512, "cpuset_cpus": "0-1", "cpuset_mems": "0", "cgroup_path": "/a/b",
    "cwd": "/tmp", "env": {"A": "b=c", "EMPTY": ""}, "trace_all": True,
    "pid_host": True, "net": "allow=10.0.0.0/8:80-90,[::1]:22,192.0.2.1", "net_rate": "1M/s",
    "memory": 64 << 20, "pids": 12, "cpu_time": "1.5s", "disk": "1G", "nofile": 64,
    "preserve_fds": 2, "hostname": "-looks-like-a-flag", "kernel_release": "6.1.0-x",
    "machine": "x86_64", "root": True, "host_root": True, "id_block": 100000,
    "breaks": ["openat:'passwd' in call.path(1)", "getpid"], "log_level": logging.DEBUG,
}


def test_option_words_read_back_as_the_same_options():
    assert {opt.name for opt in COMMAND_LINE} <= set(EVERY_OPTION), \
        "a new option: give it a value here (and a show in values.py if str() is not its word)"
    words = option_words(Config(**EVERY_OPTION))
    again = Config.from_words(parse_words("test", COMMAND_LINE, words, None).given)
    assert option_words(again) == words
    assert "--hostname=-looks-like-a-flag" in words and "--log-level=debug" in words
    assert "--net=allow=10.0.0.0/8:80-90,[::1/128]:22,192.0.2.1/32" in words
    assert option_words(Config()) == []
    assert option_words(Config(errors="efault", hide_vdso=True)) == []    # the API's alone


def test_a_value_no_word_can_hold_is_bad_input():
    with pytest.raises(BadInput) as e:
        option_words(Config(binds=[("/tmp", "/a:b")]))
    assert "':'" in one_line(e)
    with pytest.raises(BadInput):
        option_words(Config(log_level=15))
