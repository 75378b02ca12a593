"""The Sandbox API (umlpy/api/), `umlpy run --break` and
`umlpy run --log-level`."""
import errno
import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import AS_ROOT, UMLPY, _env, run_umlpy
from umlpy import Sandbox
from umlpy.sandbox import Rewrite

PYTHON = "/usr/bin/python3"


def sandbox(**options):
    # as root, the tests' files live in root's private temp dirs
    options.setdefault("host_root", AS_ROOT)
    return Sandbox(**options)


CLOCK_C = r"""
#include <stdio.h>
#include <time.h>
#include <sys/time.h>
int main(void) {
    struct timespec ts; struct timeval tv;
    for (int i = 0; i < 5; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
    gettimeofday(&tv, 0);
    printf("%ld %ld\n", (long)time(NULL), (long)tv.tv_sec);
    return 0;
}
"""


@pytest.fixture(scope="module")
def clock_programs(tmp_path_factory):
    out = tmp_path_factory.mktemp("clock")
    os.chmod(out, 0o755)
    src = out / "clock.c"
    src.write_text(CLOCK_C)
    progs = {}
    for kind, extra in (("dynamic", []), ("static", ["-static"])):
        progs[kind] = str(out / f"clock-{kind}")
        subprocess.run(["gcc", "-O2", *extra, "-o", progs[kind], str(src)], check=True,
                       capture_output=True)
    return progs


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory):
    """A tiny rootfs: busybox, /etc/motd, /data/file."""
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("busybox-static not installed")
    root = tmp_path_factory.mktemp("bbroot")
    (root / "bin").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for tool in ("sh", "cat", "echo", "ls", "head"):
        os.symlink("busybox", root / "bin" / tool)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("motd of the rootfs\n")
    (root / "data").mkdir()
    (root / "data" / "file").write_text("data file\n")
    return root


# ---- handlers: see, pass, deny, emulate ------------------------------------------

def test_a_handler_sees_calls_and_the_result_has_output_and_stats():
    sb = sandbox()
    seen = []

    @sb.syscall("openat")
    def log(call):
        seen.append((call.pid, call.program, call.path(1), call.name, call.args[2] & 3))
        return None

    r = sb.run(["sh", "-c", "cat /etc/hostname; echo err >&2; exit 3"], capture=True)
    assert r.status == 3 and r.returncode == 3
    with open("/etc/hostname", "rb") as f:
        assert r.stdout == f.read()
    assert r.stderr == b"err\n"
    assert (2, "cat", "/etc/hostname", "openat", os.O_RDONLY) in seen
    assert r.stats.calls["openat"] == len(seen)
    assert r.stats.calls["execve"] >= 2
    assert r.stats.stops == sum(r.stats.calls.values())


def test_run_twice_makes_a_fresh_guest_kernel_each_time():
    sb = sandbox()
    pids = []
    sb.syscall("openat")(lambda call: pids.append(call.pid))
    first = sb.run(["cat", "/etc/hostname"], capture=True)
    kernel = sb.kernel
    second = sb.run(["sh", "-c", "cat /etc/hostname >/dev/null; exit 5"], capture=True)
    assert sb.kernel is not kernel
    assert first.status == 0 and second.status == 5
    assert first.stdout and second.stdout == b""
    assert 1 in pids and 2 in pids         # each run has its own pid space


def test_deny_emulate_and_allow():
    sb = sandbox()

    @sb.syscall("openat")
    def no_hostname(call):
        if call.path(1) == "/etc/hostname":
            return call.deny(errno.EACCES)
        return sb.ALLOW

    @sb.syscall("getpid")
    def fake_pid(call):
        return call.emulate(4242)

    r = sb.run(["sh", "-c", "echo $$; cat /etc/hostname; echo rc=$?"], capture=True)
    assert r.stdout == b"4242\nrc=1\n"
    assert b"Permission denied" in r.stderr


def test_input_and_env_and_cwd():
    sb = sandbox(env={"GREETING": "hi"})
    r = sb.run(["sh", "-c", "cat; echo $GREETING $EXTRA; pwd"], capture=True, input=b"in\n",
               env={"EXTRA": "there"}, cwd="/usr")
    assert r.stdout == b"in\nhi there\n/usr\n"


def test_the_first_decision_wins_and_handlers_run_in_order():
    sb = sandbox()
    order = []

    @sb.syscall("getppid")
    def first(call):
        order.append("first")
        return None

    @sb.syscall("getppid", "getpid")
    def second(call):
        order.append("second")
        return call.emulate(7)

    @sb.syscall("getppid")
    def third(call):
        order.append("third")
        return call.emulate(8)

    r = sb.run([PYTHON, "-c", "import os; print(os.getppid())"], capture=True)
    assert r.stdout == b"7\n"
    assert order[:2] == ["first", "second"] and "third" not in order


# ---- changed calls go through the guest kernel --------------------------------------

def test_a_rewritten_path_is_resolved_by_the_guest_vfs(busybox_root, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    sb = sandbox(rootfs=str(busybox_root))
    targets = {"/want/motd": "/etc/motd",
               "/want/host": str(secret),                          # a host path
               "/want/dotdot": "/../../../../.." + str(secret),    # climbing out
               "/want/proc": "/proc/1/root" + str(secret)}         # a magic link

    @sb.syscall("open", "openat")
    def redirect(call):
        i = 1 if call.name == "openat" else 0
        new = targets.get(call.path(i))
        if new is None:
            return None
        return call.rewrite(filename=new) if call.name == "openat" else \
            Rewrite(call.nr, [new, call.args[1], call.args[2]])

    r = sb.run(["sh", "-c", "for f in motd host dotdot proc; do cat /want/$f; done"],
               capture=True)
    assert r.stdout == b"motd of the rootfs\n", r.stderr
    assert r.stderr.count(b"No such file or directory") == 3, r.stderr
    assert b"host secret" not in r.stdout + r.stderr


def test_a_rewritten_open_for_writing_stays_in_the_sandbox(tmp_path):
    """Flags made O_WRONLY|O_CREAT by a handler: the guest kernel decides
    the changed call, so the write lands in the throwaway upper layer."""
    target = "/etc/umlpy-sandbox-api-test"
    assert not os.path.exists(target)
    sb = sandbox()

    @sb.syscall("openat")
    def make_writable(call):
        if call.path(1) == "/tmp/redirect-me":
            return call.rewrite(filename=target,
                                flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644)
        return None

    r = sb.run(["sh", "-c", f"echo written > /tmp/redirect-me; cat {target}"], capture=True)
    assert r.stdout == b"written\n", r.stderr
    assert not os.path.exists(target)


def test_a_rewrite_to_another_syscall():
    sb = sandbox()

    @sb.syscall("getppid")
    def ask_getpid(call):
        return call.rewrite(nr="getpid")

    r = sb.run([PYTHON, "-c", "import os; print(os.getppid() == os.getpid())"], capture=True)
    assert r.stdout == b"True\n"


def test_a_rewrite_cannot_skip_the_guest_kernel_s_denials():
    """io_uring would bypass syscall stops: the guest kernel answers ENOSYS,
    and does so for a handler's rewrite too (getppid's glibc wrapper
    returns the raw value)."""
    sb = sandbox()
    sb.syscall("getppid")(lambda call: call.rewrite(1, 0, nr="io_uring_setup"))
    r = sb.run([PYTHON, "-c", "import os; print(os.getppid())"], capture=True)
    assert r.stdout == b"%d\n" % -errno.ENOSYS


def test_after_sees_the_result_and_may_replace_it():
    sb = sandbox()
    results = []

    @sb.syscall("openat")
    def watch(call):
        path = call.path(1)
        if path == "/etc/hostname":
            call.after(results.append)
        if path == "/nonexistent-file":
            call.after(lambda result: results.append(result) or -errno.EROFS)
        return None

    r = sb.run(["sh", "-c", "cat /etc/hostname >/dev/null; cat /nonexistent-file"],
               capture=True)
    assert results[0] >= 3 and results[1] == -errno.ENOENT
    assert b"Read-only file system" in r.stderr


# ---- guest memory and process facts ---------------------------------------------------

def test_write_is_refused_on_read_only_guest_memory(guest):
    sb = sandbox()
    outcomes = []

    @sb.syscall("getppid")
    def poke(call):
        try:
            call.write(call.regs.rip, b"\x90")       # its code: read-only
        except OSError as e:
            outcomes.append(e.errno)
        return None

    assert sb.run([guest("getpids", static=True), "1"], capture=True).status == 0
    assert outcomes == [errno.EFAULT]


def test_process_facts(tmp_path):
    sb = sandbox()
    facts = []

    @sb.syscall("getppid")
    def who(call):
        facts.append((call.pid, call.ppid, call.tid, call.program, call.comm, call.argv,
                      call.exe, call.host_pid != call.pid))
        return None

    r = sb.run(["sh", "-c", f"{PYTHON} -c 'import os; os.getppid()'; true"], capture=True)
    assert r.status == 0
    assert facts[0][:3] == (1, 0, 1)      # sh reads its $PPID: the sandbox's init has none
    pid, ppid, tid, program, comm, argv, exe, host_differs = facts[-1]
    assert (pid, ppid, tid) == (2, 1, 2)
    assert program.startswith("python3") and exe.startswith("/usr/bin/python3")
    assert argv[0] == PYTHON and argv[1] == "-c"
    assert host_differs


def test_a_handler_that_raises_ends_the_run():
    sb = sandbox()

    @sb.syscall("openat")
    def broken(call):
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError, match="handler bug"):
        sb.run(["cat", "/etc/hostname"], capture=True)
    pid = sb.kernel.processes.main
    assert not os.path.exists(f"/proc/{pid}/status") or \
        "zombie" in open(f"/proc/{pid}/status").read()


def test_errors_efault_fails_the_call_instead():
    sb = sandbox(errors="efault")

    @sb.syscall("openat")
    def broken(call):
        if call.path(1) == "/etc/hostname":
            raise RuntimeError("handler bug")

    r = sb.run(["sh", "-c", "cat /etc/hostname; echo rc=$?"], capture=True)
    assert r.stdout == b"rc=1\n" and b"Bad address" in r.stderr


def test_timeout_kills_the_sandbox():
    t = time.monotonic()
    r = sandbox().run(["sleep", "30"], timeout=0.5)
    assert r.timed_out and r.status == 128 + 9
    assert time.monotonic() - t < 10


def test_bad_options_are_bad_input():
    from umlpy.errors import BadInput
    with pytest.raises(BadInput):
        Sandbox(net="sometimes")
    with pytest.raises(BadInput):
        Sandbox(memory="lots")
    with pytest.raises(BadInput):
        Sandbox(rootfs="/nonexistent-root")
    with pytest.raises(ValueError):
        Sandbox().syscall("no_such_call")


# ---- the vDSO ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_hooking_clock_gettime_hides_the_vdso(clock_programs, kind):
    sb = sandbox()
    seen = []
    sb.syscall("clock_gettime", "gettimeofday", "time")(lambda call: seen.append(call.name))
    r = sb.run([clock_programs[kind]], capture=True)
    assert r.status == 0
    assert seen.count("clock_gettime") >= 5, seen
    assert "gettimeofday" in seen and "time" in seen


def test_without_hiding_the_vdso_answers_the_clock(clock_programs):
    sb = sandbox(hide_vdso=False)
    seen = []
    sb.syscall("clock_gettime")(lambda call: seen.append(call.name))
    assert sb.run([clock_programs["dynamic"]], capture=True).status == 0
    assert seen == []


def test_import_umlpy_stays_cheap():
    code = ("import sys, umlpy; assert 'umlpy.api.sandbox' not in sys.modules; "
            "from umlpy import Sandbox; assert 'umlpy.api.sandbox' in sys.modules; print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env())
    assert p.stdout == b"ok\n", p.stderr


# ---- --log-level ---------------------------------------------------------------------------

def test_log_level_debug_shows_decisions_and_resolution():
    p = run_umlpy(["cat", "/etc/hostname"], options=["--log-level", "debug"])
    assert p.returncode == 0
    err = p.stderr.decode()
    assert "umlpy.kernel INFO: policy: mode default" in err
    assert "umlpy.kernel INFO: [pid 1] exec /usr/bin/cat" in err
    assert ('umlpy.kernel DEBUG: [pid 1] openat(AT_FDCWD, "/etc/hostname", O_RDONLY) → '
            'the guest kernel opened /etc/hostname; the caller gets the fd') in err
    assert "umlpy.vfs DEBUG: resolve '/etc/hostname' → /etc/hostname → lower /etc/hostname" \
        in err
    assert "= -1 ENOENT (No such file or directory); emulated: the host never runs it" \
        in err                                                          # the PATH search
    assert "the first process (host pid" in err


def test_log_level_info_is_quieter_and_none_is_silent():
    info = run_umlpy(["cat", "/etc/hostname"], options=["--log-level", "info"])
    assert b"INFO: [pid 1] exec /usr/bin/cat" in info.stderr
    assert b"DEBUG" not in info.stderr
    for level in ("warning", "error"):
        quiet = run_umlpy(["cat", "/etc/hostname"], options=["--log-level", level])
        assert quiet.stderr == b"" and quiet.returncode == 0
    plain = run_umlpy(["cat", "/etc/hostname"])
    assert plain.stderr == b""


def test_log_level_rewritten_paths_show_the_upper_layer():
    p = run_umlpy(["sh", "-c", "echo x > /tmp/new-file; cat /tmp/new-file"],
                  options=["--log-level", "debug"])
    err = p.stderr.decode()
    assert p.stdout == b"x\n"
    assert "resolve '/tmp/new-file' → /tmp/new-file → upper /" in err


def test_without_the_options_nothing_is_installed():
    code = textwrap.dedent("""
        import sys
        from umlpy.cli import main
        status = main(["run", "--host-root", "--", "true"])
        print(status, "umlpy.api" in sys.modules, "logging" in sys.modules)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env())
    assert p.stdout == b"0 False False\n", p.stderr


def test_sandbox_logs_through_the_program_s_logging(caplog):
    import logging
    caplog.set_level(logging.DEBUG, logger="umlpy")
    r = sandbox().run(["cat", "/etc/hostname"], capture=True)
    assert r.status == 0
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "umlpy.kernel"]
    assert any("openat(AT_FDCWD, \"/etc/hostname\"" in m for m in messages), messages[:20]


# ---- --break --------------------------------------------------------------------------------

BREAK_PASSWD = "openat:'passwd' in call.path(1)"


def test_break_drives_pdb_through_a_pipe():
    commands = b"p call.name\np call.path(1)\np regs.orig_rax\np mem(args[1], 4)\np call.pid\nc\n"
    p = run_umlpy(["sh", "-c", "head -1 /etc/passwd; echo done"], input=commands,
                  options=["--break", BREAK_PASSWD])
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert 'umlpy: break at openat(AT_FDCWD, "/etc/passwd"' in out
    assert "(Pdb) 'openat'" in out and "'/etc/passwd'" in out
    assert "(Pdb) 257" in out and "b'/etc'" in out and "(Pdb) 2" in out
    assert out.count("umlpy: break at") == 1
    assert out.endswith("root:x:0:0:root:/root:/bin/bash\ndone\n")


def test_break_then_a_breakpoint_inside_the_guest_kernel():
    """From the break, pdb can stop again in the guest kernel's own code
    (here the VFS's open), and the end of its input lets the guest go on."""
    import ast
    import inspect
    from umlpy.kernel.syscalls.fs import open as fs_open
    # the first statement after the docstring
    source, first = inspect.getsourcelines(fs_open.open_file)
    body = ast.parse("".join(source).lstrip()).body[0].body
    line = first + body[1 if isinstance(body[0], ast.Expr) else 0].lineno - 1
    commands = f"b {fs_open.__file__}:{line}\nc\np path, flags\n".encode()
    p = run_umlpy(["sh", "-c", "head -1 /etc/passwd; echo done"], input=commands,
                  options=["--break", BREAK_PASSWD])
    out = p.stdout.decode()
    assert "open_file()" in out and "(Pdb) ('/etc/passwd', 0)" in out, out
    assert out.endswith("root:x:0:0:root:/root:/bin/bash\ndone\n") and p.stderr == b""


def test_break_can_decide_the_call():
    p = run_umlpy(["sh", "-c", "head -1 /etc/passwd; echo done"],
                  input=b"decision = call.deny(13)\nc\n", options=["--break", BREAK_PASSWD])
    assert b"Permission denied" in p.stderr and p.stdout.endswith(b"done\n")


def test_break_quit_lets_the_guest_run_on():
    p = run_umlpy(["sh", "-c", "cat /etc/hostname /etc/hostname; echo done"], input=b"q\n",
                  options=["--break", "openat"])
    assert p.returncode == 0
    assert p.stdout.count(b"umlpy: break at") == 1 and p.stdout.endswith(b"done\n")


def test_break_condition_errors_are_false_and_said_once():
    p = run_umlpy(["cat", "/etc/hostname"], input=b"",
                  options=["--break", "openat:call.nosuch"])
    assert p.returncode == 0 and b"break at" not in p.stdout
    assert p.stderr.count(b"--break condition") == 1


def test_break_bad_specs_are_bad_input():
    for spec in ("nosuchcall", "openat:1 +"):
        p = run_umlpy(["true"], options=["--break", spec])
        assert p.returncode == 2 and p.stderr.startswith(b"umlpy: --break")
    p = run_umlpy(["true"], options=["--log-level", "loud"])
    assert p.returncode == 2 and b"--log-level" in p.stderr


def test_break_on_a_terminal_takes_it_back_from_the_guest():
    """On a terminal the guest holds the foreground; pdb must get it back
    to read, and give it back afterwards."""
    argv = UMLPY + ["run"] + (["--host-root"] if AS_ROOT else []) + [
        "--break", BREAK_PASSWD, "--", "sh", "-c", "head -1 /etc/passwd; echo done-$((40+2))"]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, _env())
        finally:
            os._exit(127)
    out = bytearray()

    def read_until(token, timeout=30):
        end = time.monotonic() + timeout
        while token not in out and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out.extend(data)
        return token in out
    try:
        assert read_until(b"(Pdb) "), bytes(out)
        os.write(fd, b"p call.name\n")
        assert read_until(b"'openat'"), bytes(out)
        os.write(fd, b"c\n")
        assert read_until(b"done-42"), bytes(out)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
