"""Warm pools (umlpy/warm/, _native/front.c): `umlpy run` claims a
pre-started sandbox, and what the guest sees is what a cold run gives it.

The strongest test here runs the same probe cold (UMLPY_WARM=0) and warm
and compares everything the guest can see of what it inherited: pid,
cwd, umask, limits, ignored and blocked signals, CPUs, environment, ids,
stdin, exit status.  A pool's counter of served runs tells which runs it
served; every run it must not serve (another user's, a traced caller's,
one with a terminal, other options) must still work, cold."""
import os
import pty
import signal
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, open_up, read_pty, wait_for

AS_ROOT = os.geteuid() == 0
FRONT = os.path.join(os.path.dirname(sys.executable), "umlpy")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

PROBE = r"""
echo "pid $$"; pwd; umask; ulimit -n; ulimit -s; ulimit -c
grep -E '^(SigIgn|SigBlk|Cpus_allowed_list|NSpid|Uid|Gid|Groups|CapEff|NoNewPrivs|Seccomp)' /proc/self/status
ls /proc/self/fd | sort | tr '\n' ' '; echo
echo "env $PROBE_VAR"; id
echo "stdin $(cat)"
exit 3
"""


@pytest.fixture(scope="module")
def front():
    with open(FRONT, "rb") as f:
        assert f.read(4) == b"\x7fELF", f"{FRONT} is not the C front end: pip install -e ."
    return FRONT


@pytest.fixture
def reg(tmp_path):
    open_up(tmp_path)
    path = tmp_path / "registry"
    yield path
    env = dict(os.environ, UMLPY_REGISTRY=str(path))
    subprocess.run([FRONT, "warm", "stop", "--all"], env=env, capture_output=True, timeout=30)
    for log in (path / "warm").glob("*.log"):
        # a spare that failed is replaced, silently to the runs: its log says
        assert "Traceback" not in log.read_text(), log.read_text()


def env_of(reg, **more):
    env = dict(os.environ, UMLPY_REGISTRY=str(reg), PYTHONPATH=str(ROOT))
    env.pop("UMLPY_WARM", None)
    env.update(more)
    return env


def gone(pid):
    """Whether pid has ended.  A daemon double-forked from our child is
    ours to reap if we are a subreaper (an in-process guest kernel made the
    test process one): a zombie counts as gone."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] == b"Z"


def warm(reg, *args, user=(), env=None, **kw):
    return subprocess.run([*user, FRONT, "warm", *args], env=env or env_of(reg),
                          capture_output=True, timeout=60, **kw)


def served(reg, env=None, user=()):
    """{option words: runs served} of the user's pools."""
    out = warm(reg, "ls", env=env, user=user).stdout.decode().splitlines()[1:]
    return {" ".join(line.split()[3:]): int(line.split()[1]) for line in out}


def run(reg, argv, options=(), user=(), env=None, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([*user, FRONT, "run", *options, "--", *argv],
                          env=env or env_of(reg), **kw)


def start(reg, *words, user=(), env=None):
    p = warm(reg, "start", *words, user=user, env=env)
    assert p.returncode == 0, p.stderr.decode()
    return p


def test_front_and_pool_name_the_same_socket(front, reg):
    """front.c's hostuser.registry_root and wire.pool_key, against Python's."""
    from umlpy.warm import wire

    @settings(max_examples=40, deadline=None)
    @given(words=st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                                blacklist_characters="\0"), max_size=12)
                          .filter(lambda w: w != "--"), max_size=4),
           env=st.dictionaries(st.sampled_from(["UMLPY_A", "UMLPY_AB", "UMLPY_A1", "TMPDIR",
                                                "UMLPY_WARM", "OTHER"]),
                               st.text("ab=/é", max_size=4)))
    def agree(words, env):
        full = env_of(reg, UMLPY_FRONT_SHOW="1", **env)
        p = subprocess.run([front, "run", *words, "--", "true"], env=full,
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(full)
            want = wire.socket_path(wire.pool_key(words, os.environ))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert p.stdout.decode().strip() == want
    agree()


def test_a_warm_run_is_a_cold_runs_twin(front, reg, tmp_path):
    start(reg)
    here = tmp_path / "work dir"
    here.mkdir()
    open_up(here)
    # what a caller may have set that the guest inherits
    setup = ["sh", "-c", 'umask 027; ulimit -n 300; ulimit -c 0; trap "" USR1; '
                         'exec taskset -c 0 "$@"', "setup"]
    for argv in (["sh", "-c", PROBE], ["sh", "-c", "kill -TERM $$"], ["sh", "-c", "exit 0"]):
        cold = subprocess.run(setup + [front, "run", "--", *argv], cwd=here, input=b"some input",
                              env=env_of(reg, UMLPY_WARM="0", PROBE_VAR="x y"),
                              capture_output=True, timeout=60)
        before = served(reg)["(none)"]
        hot = subprocess.run(setup + [front, "run", "--", *argv], cwd=here, input=b"some input",
                             env=env_of(reg, PROBE_VAR="x y"), capture_output=True, timeout=60)
        assert served(reg)["(none)"] == before + 1, hot.stderr.decode()
        assert (hot.returncode, hot.stdout.decode(), hot.stderr.decode()) == \
            (cold.returncode, cold.stdout.decode(), cold.stderr.decode())


def test_the_probe_shows_what_it_should(front, reg, tmp_path):
    """The comparison above means something: the probe sees the caller's
    settings, not the pool's."""
    start(reg)
    p = subprocess.run(["sh", "-c", 'umask 027; ulimit -n 300; trap "" USR1; exec "$@"', "s",
                        front, "run", "--", "sh", "-c", PROBE], cwd=tmp_path, input=b"in",
                       env=env_of(reg, PROBE_VAR="v"), capture_output=True, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 3 and served(reg)["(none)"] == 1, p.stderr.decode()
    assert "pid 1\n" in out and f"{tmp_path}\n" in out and "0027\n300\n" in out
    assert "SigIgn:\t0000000000000200" in out      # USR1 (10): bit 9
    assert "env v\n" in out and "stdin in" in out and "0 1 2 " in out


def test_options_and_relative_paths_must_mean_the_same(front, reg, tmp_path):
    """A pool serves its own option words only, and only where they mean
    what they meant to it: -C sub is another directory elsewhere."""
    open_up(tmp_path)
    for d in ("a/sub", "b/sub"):
        (tmp_path / d).mkdir(parents=True)
        open_up(tmp_path / d)
    start_here = subprocess.run([front, "warm", "start", "-C", "sub"], cwd=tmp_path / "a",
                                env=env_of(reg), capture_output=True, timeout=60)
    assert start_here.returncode == 0, start_here.stderr.decode()
    p = run(reg, ["pwd"], ["-C", "sub"], cwd=tmp_path / "a")
    assert p.stdout.decode() == f"{tmp_path}/a/sub\n" and served(reg)["-C sub"] == 1
    p = run(reg, ["pwd"], ["-C", "sub"], cwd=tmp_path / "b")
    assert p.stdout.decode() == f"{tmp_path}/b/sub\n" and served(reg)["-C sub"] == 1
    p = run(reg, ["pwd"], ["--net", "none"])      # no pool of these words: cold
    assert p.returncode == 0 and served(reg) == {"-C sub": 1}


def test_a_missing_program_runs_cold(front, reg):
    """The cold run's own words and status: the pool's init looked, found
    nothing, and no guest code ran."""
    start(reg)
    cold, hot = (run(reg, ["no-such-program-x"], env=env_of(reg, UMLPY_WARM=w))
                 for w in ("0", "1"))
    assert (hot.returncode, hot.stderr) == (cold.returncode, cold.stderr)
    assert hot.returncode == 127 and served(reg)["(none)"] == 0


@pytest.fixture
def nobody_env(tmp_path):
    """An ordinary user's environment: their registry under HOME."""
    if not AS_ROOT:
        pytest.skip("runs as uid 65534 through setpriv")
    open_up(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    env = env_of(tmp_path, HOME=str(home))
    env.pop("UMLPY_REGISTRY")
    yield env
    warm(None, "stop", "--all", user=NOBODY, env=env)


def test_a_limit_init_may_not_raise_runs_cold(front, nobody_env):
    """The pool started under a lower hard limit than the caller has: an
    ordinary user's init cannot raise it, so the run is made cold."""
    p = subprocess.run(NOBODY + ["sh", "-c", 'ulimit -n 512 && exec "$@"', "s", front, "warm",
                                 "start"], env=nobody_env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    cold, hot = (subprocess.run(NOBODY + [front, "run", "--", "sh", "-c", "ulimit -Hn"],
                                env=dict(nobody_env, UMLPY_WARM=w), capture_output=True,
                                timeout=60) for w in ("0", "1"))
    assert hot.stdout == cold.stdout != b"512\n", (hot, cold)
    assert served(None, env=nobody_env, user=NOBODY) == {"(none)": 0}


def test_a_terminal_runs_cold(front, reg):
    """A cold run hands the guest its terminal's foreground: a pool cannot."""
    start(reg)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(env_of(reg))
        os.execv(front, [front, "run", "--", "sh", "-c", "test -t 0 && tty && echo TTY-OK"])
    out = read_pty(fd)
    _, status = os.waitpid(pid, 0)
    assert b"TTY-OK" in out and os.waitstatus_to_exitcode(status) == 0, out
    assert served(reg)["(none)"] == 0


def test_signals_reach_the_guest_as_in_a_cold_run(front, reg, tmp_path):
    start(reg)
    script = 'trap "echo got TERM; exit 9" TERM; echo ready; while :; do sleep 0.05; done'
    for warm_or_not in ("0", "1"):
        p = subprocess.Popen([front, "run", "--", "sh", "-c", script], stdout=subprocess.PIPE,
                             env=env_of(reg, UMLPY_WARM=warm_or_not))
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        out = p.stdout.read()
        assert (p.wait(timeout=30), out) == (9, b"got TERM\n"), warm_or_not
    assert served(reg)["(none)"] == 1


def test_a_killed_umlpy_takes_its_guest_along(front, reg, tmp_path):
    start(reg)
    open_up(tmp_path)
    p = subprocess.Popen([front, "run", "--", "sh", "-c", "echo ready; exec sleep 1000"],
                         stdout=subprocess.PIPE, env=env_of(reg))
    assert p.stdout.readline() == b"ready\n"
    assert served(reg)["(none)"] == 1

    def sleepers():
        return subprocess.run(["pgrep", "-f", "sleep 1000"], capture_output=True).stdout
    assert sleepers()
    p.kill()
    p.wait()
    assert wait_for(lambda: not sleepers(), 10)


def test_another_user_gets_no_sandbox_of_the_pool(front, reg, tmp_path):
    if not AS_ROOT:
        pytest.skip("needs another user")
    start(reg)
    p = run(reg, ["id", "-u"], user=NOBODY)         # the pool's directory is 0700
    assert p.returncode == 0 and served(reg)["(none)"] == 0, p.stderr.decode()
    # even with the directory and the socket open, SO_PEERCRED says who asks
    os.chmod(reg / "warm", 0o755)
    for sock in (reg / "warm").glob("*.sock"):
        os.chmod(sock, 0o777)
    p = run(reg, ["id", "-u"], user=NOBODY)
    assert p.returncode == 0 and served(reg)["(none)"] == 0, p.stderr.decode()


def test_a_traced_caller_runs_cold(front, reg):
    """A guest that reached the socket, or a debugger's process, is served
    no sandbox (strace traces the front end)."""
    start(reg)
    p = subprocess.run(["strace", "-o", "/dev/null", front, "run", "--", "true"],
                       env=env_of(reg), capture_output=True, timeout=60)
    assert p.returncode == 0 and served(reg)["(none)"] == 0, p.stderr.decode()


def test_no_guest_sees_the_pools(front, reg):
    start(reg)
    p = run(reg, ["sh", "-c", f"ls {reg}/warm || ls {reg} || echo hidden"])
    assert b"sock" not in p.stdout and served(reg)["(none)"] == 1


def test_pool_lifecycle_and_bad_input(front, reg):
    start(reg, "--size", "2", "--net", "none")
    assert wait_for(lambda: warm(reg, "ls").stdout.split()[-3:-2] == [b"2"], 20)
    again = warm(reg, "start", "--net", "none")
    assert again.returncode != 0 and again.stderr.count(b"\n") == 1 and b"already" in again.stderr
    for bad in (["start", "--size", "0"], ["start", "--size", "x"], ["start", "--idle"],
                ["start", "--upper", "/tmp"], ["start", "--", "true"], ["frob"],
                ["ls", "x"], ["stop", "--net", "host"], ["start", "--bogus"]):
        p = warm(reg, *bad)
        assert p.returncode != 0 and p.stderr.count(b"\n") == 1 and b"Traceback" not in \
            p.stderr, (bad, p.stderr)
    pool_pid = int(warm(reg, "ls").stdout.split()[4])
    spares = subprocess.run(["pgrep", "-P", str(pool_pid)], capture_output=True).stdout.split()
    assert len(spares) == 2
    assert warm(reg, "stop", "--net", "none").returncode == 0
    assert wait_for(lambda: gone(pool_pid), 10)
    assert wait_for(lambda: all(gone(int(s)) for s in spares), 10)
    assert served(reg) == {}


def test_an_idle_pool_ends(front, reg):
    start(reg, "--idle", "1")
    pool_pid = int(warm(reg, "ls").stdout.split()[4])
    assert wait_for(lambda: gone(pool_pid), 15)
    assert run(reg, ["true"]).returncode == 0


def test_an_ordinary_user_keeps_a_pool(front, nobody_env):
    start(None, user=NOBODY, env=nobody_env)
    p = subprocess.run(NOBODY + [front, "run", "--", "sh", "-c", "id -u; echo $$"],
                       env=nobody_env, capture_output=True, timeout=60)
    assert p.stdout == b"65534\n1\n", p.stderr.decode()
    assert served(None, env=nobody_env, user=NOBODY) == {"(none)": 1}
