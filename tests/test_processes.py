"""The sandbox's own pid space: pid 1, reparenting, /proc, signals that
stay inside, identity (hostname, release, fake root) and threads."""
import os
import signal
import subprocess
import time

import pytest

from conftest import _env, assert_same, run_native, run_umlpy, umlpy_argv

PIDNS = ["default", "trace-all"]


def test_first_process_is_pid_1(mode):
    p = run_umlpy(["sh", "-c", 'echo $$; sh -c "echo \\$PPID \\$\\$"; '
                               'read a b c < /proc/self/stat; echo $a'], mode)
    lines = p.stdout.decode().split()
    assert lines[0] == "1" and lines[1] == "1", p.stdout
    assert int(lines[2]) < 20 and int(lines[3]) < 20, "guest pids are small and dense"


def test_pid_host_keeps_host_pids():
    p = run_umlpy(["sh", "-c", "echo $$"], options=["--pid-host"])
    assert int(p.stdout) > 1


def test_proc_lists_only_the_sandbox(mode):
    p = run_umlpy(["sh", "-c", "sleep 30 & ls /proc | grep -E '^[0-9]+$'; kill $!"], mode)
    pids = sorted(int(x) for x in p.stdout.split())
    assert pids and pids[0] == 1
    assert len(pids) <= 6 and max(pids) < 20, pids
    assert os.getpid() not in pids


def test_orphans_are_reparented_to_pid_1(mode):
    script = '( sh -c "sleep 0.3; echo ppid=\\$PPID" & ); sleep 1'
    p = run_umlpy(["sh", "-c", script], mode)
    assert p.stdout == b"ppid=1\n"


def test_orphans_stay_with_umlpy_in_pid_host_mode():
    script = '( sh -c "sleep 0.3; echo ppid=\\$PPID" & ); sleep 1'
    p = subprocess.Popen(umlpy_argv(["sh", "-c", script], options=["--pid-host"]),
                         stdout=subprocess.PIPE, env=_env())
    out, _ = p.communicate(timeout=30)
    assert out == f"ppid={p.pid}\n".encode()


def test_sigpipe_kills_pid_1_as_natively(mode):
    argv = umlpy_argv(["yes"], mode)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert p.stdout.readline() == b"y\n"
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=20) == 128 + signal.SIGPIPE
    assert err == b""


def test_default_action_signals_kill_pid_1(mode):
    code = "import signal, time; signal.alarm(1); time.sleep(10)"
    native, inside = assert_same(["python3", "-c", code], mode, timeout=30)
    assert inside.returncode == 128 + signal.SIGALRM


def test_sigkill_from_inside_reaches_pid_1(mode):
    p = run_umlpy(["sh", "-c", "sh -c 'kill -KILL 1'; echo not reached"], mode)
    assert p.returncode == 128 + signal.SIGKILL and p.stdout == b""


def test_kill_minus_one_stays_inside(mode):
    host = subprocess.Popen(["sleep", "60"])
    try:
        # never kill(-1) outside a pid namespace: as root it would hit the host
        p = run_umlpy(["sh", "-c", '[ "$$" = 1 ] || exit 99; '
                                   "sleep 50 & kill -KILL -1; wait; echo survived"], mode)
        assert p.stdout == b"survived\n"
        assert host.poll() is None, "kill(-1) inside the sandbox reached the host"
    finally:
        host.kill()
        host.wait()


def test_kill_minus_one_from_a_child_spares_init(mode):
    """kill(-1) reaches every process but the caller and the namespace's
    init, whoever sends it (Linux skips pid 1)."""
    # never kill(-1) outside a pid namespace: as root it would hit the host
    p = run_umlpy(["sh", "-c", '[ "$$" = 1 ] || exit 99; sleep 50 & '
                               "sh -c 'kill -KILL -1; echo sent'; wait; echo init survived"], mode)
    assert p.stdout == b"sent\ninit survived\n", p.stderr


def test_outside_processes_do_not_exist(guest, mode):
    host = subprocess.Popen(["sleep", "60"])
    try:
        for target in (host.pid, os.getpid()):
            p = run_umlpy([guest("reach_outside"), str(target)], mode)
            assert p.returncode == 0, p.stderr
            results = dict(line.split(": ") for line in p.stdout.decode().splitlines())
            assert len(results) == 13
            for what, result in results.items():
                expected = "ENOENT" if what.startswith("open /proc") else "ESRCH"
                assert result == expected, (target, what, result)
        assert host.poll() is None
    finally:
        host.kill()
        host.wait()


def test_pid_1_is_the_probe_itself(guest):
    p = run_umlpy([guest("reach_outside"), "1", "gentle"])
    results = dict(line.split(": ") for line in p.stdout.decode().splitlines())
    assert results["kill 0"] == "SUCCEEDED"
    assert results["ptrace attach"] == "EPERM"      # nested tracing is refused


def test_hostname_and_kernel_release(mode):
    p = run_umlpy(["sh", "-c", "hostname; uname -n; cat /proc/sys/kernel/hostname; uname -r"],
                  mode, options=["--hostname", "box.example", "--kernel-release", "9.9.9-umlpy"])
    assert p.stdout == b"box.example\nbox.example\nbox.example\n9.9.9-umlpy\n", p.stderr
    assert run_native(["hostname"]).stdout != b"box.example\n"


def test_fake_root(tmp_path, mode):
    os.chmod(tmp_path, 0o777)
    p = run_umlpy(["sh", "-c", "id -u; id -g; touch f; stat -c %u:%g f"], mode,
                  options=["--root", "-C", str(tmp_path)])
    assert p.stdout == b"0\n0\n0:0\n", p.stderr


def test_invoking_user_is_seen_without_root_option(mode):
    native, inside = assert_same(["sh", "-c", "id -u; id -g"], mode)


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_64_threads_cancel_and_robust_futexes(guest, mode, static):
    native, inside = assert_same([guest("threads64", static)], mode, timeout=60)
    assert inside.stdout == (b"threads signalled: all, distinct tids: 64\ncancelled: yes\n"
                             b"robust lock after owner died: EOWNERDEAD\nrecovered: yes\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="tests what umlpy does when run as root")
def test_root_inside_is_no_one_outside(mode, tmp_path):
    """Guest root reads only what an unknown host user may, and changes
    only its own copy of the host's tree (issue 13)."""
    secret = tmp_path / "secret"
    secret.write_text("host root only\n")
    os.chmod(secret, 0o600)
    os.chmod(tmp_path, 0o755)
    script = (f"id -u; cat {secret} 2>/dev/null || echo denied; "
              "touch /etc/umlpy-should-not-exist && echo made; "
              "grep ^Uid /proc/self/status")
    p = run_umlpy(["sh", "-c", script], mode, host_root=False)
    assert p.stdout == b"0\ndenied\nmade\nUid:\t0\t0\t0\t0\n", p.stderr
    assert not os.path.exists("/etc/umlpy-should-not-exist")
    # seen from the host, the guest ran as the first id of its block
    marker = "7" + str(os.getpid() % 1000)
    proc = subprocess.Popen(umlpy_argv(["sleep", marker], mode, host_root=False), env=_env())
    try:
        from test_signals_and_tty import host_pids_of
        deadline = time.monotonic() + 10
        while not host_pids_of("sleep", marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        [pid] = host_pids_of("sleep", marker)
        with open(f"/proc/{pid}/status") as f:
            uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
        from umlpy.kernel.identity import BLOCKS_FROM, IDS_INSIDE
        assert len(set(uids)) == 1 and int(uids[0]) >= BLOCKS_FROM, uids
        assert (int(uids[0]) - BLOCKS_FROM) % IDS_INSIDE == 0, uids
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="tests what umlpy does when run as root")
def test_host_root_keeps_root_power(tmp_path):
    target = tmp_path / "written-by-guest"
    os.chmod(tmp_path, 0o700)
    p = run_umlpy(["sh", "-c", f"echo yes > {target}"], host_root=True,
                  options=["--bind", f"{tmp_path}:{tmp_path}"])
    assert p.returncode == 0 and target.read_text() == "yes\n"


def test_fake_root_chown_and_chmod_are_recorded(mode):
    import tempfile
    work = tempfile.mkdtemp(prefix="fakeroot-")
    os.chmod(work, 0o777)
    try:
        script = ("touch f g; chown 1234:5678 f; echo rc=$?; stat -c %u:%g f; ls -ln f | cut -d' ' -f3,4;"
                  "chown :42 g; stat -c %u:%g g; "
                  "chown 0:0 /etc/hostname; echo rc=$?; stat -c %u:%g /etc/hostname; "
                  "chmod 600 /etc/hostname; echo rc=$?; stat -c %a /etc/hostname; "
                  "chown 1:1 /no/such/file 2>/dev/null; echo rc=$?")
        p = run_umlpy(["sh", "-c", script], mode,
                      options=["--root", "-C", work, "--bind", f"{work}:{work}"],
                      host_root=False)
        assert p.stdout == (b"rc=0\n1234:5678\n1234 5678\n0:42\nrc=0\n0:0\nrc=0\n600\nrc=1\n"), p.stderr
        st = os.stat(os.path.join(work, "f"))
        assert (st.st_uid, st.st_gid) != (1234, 5678), "a fake chown reached the host"
        assert os.stat("/etc/hostname").st_mode & 0o777 != 0o600
    finally:
        import shutil
        shutil.rmtree(work)
