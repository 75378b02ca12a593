"""wait(2) semantics, zombies, /proc/[pid] of guest processes and process
identity (getppid/getpgrp/getsid) inside the sandbox's pid namespace.

The guest programs are tests/guest/wp_*.c.  wp_wait and wp_zombie print
nothing that depends on pid values, so their output must be identical
natively and inside umlpy; wp_proc and wp_ids check the guest's view against
itself and run inside only."""
import subprocess

import pytest

from conftest import _env, assert_same, run_native, run_umlpy, umlpy_argv


# ---- 1. wait semantics ------------------------------------------------------

WAIT_EXPECTED_LINES = [
    # a sample of what wp_wait must say (the full output is compared with a
    # native run); these make sure the sections really ran
    "no children: wait -> -1 ECHILD",
    "WNOHANG running child: waitpid -> 0",
    "WNOHANG running child: waitid -> 0 nothing (si_pid 0)",
    "exit statuses 0..255: all as exited (bad 0)",
    "signal 1: waitpid -> child killed by Killed",
    "SIGSTOP: waitpid WUNTRACED -> child stopped by Stopped (signal)",
    "SIGCONT: waitpid WCONTINUED -> child continued",
    "SIGSTOP: waitid WSTOPPED again -> 0 child 0 CLD_STOPPED status 19 Stopped (signal) uid_ok=1",
    "SIGCONT: waitid WCONTINUED -> 0 child 0 CLD_CONTINUED status 18 Continued uid_ok=1",
    "child raised SIGSTOP: wait4 WUNTRACED -> child stopped by Stopped (signal)",
    "clone child (exit signal SIGUSR1): waitpid without __WALL -> -1 ECHILD",
    "clone child: waitpid __WALL -> child exited 7",
    "clone child: parent got SIGUSR1: yes, SIGCHLD: no",
    "exit signal 0 child: wait4(-1, __WCLONE) -> clone child exited 9",
    "P_PGID reaped: child0 1 child1 1 child2 0",
    "P_PGID group now empty -> -1 ECHILD",
    "waitpid(0) -> child2 exited 22",
    "P_PIDFD -> 0 child 0 CLD_EXITED status 44 uid_ok=1",
    "P_PIDFD after reap -> -1 ECHILD",
    "WNOWAIT look 2 -> 0 child 0 CLD_EXITED status 42 uid_ok=1",
    "WNOWAIT then waitpid -> child exited 42",
    "child used cpu: yes",
    "SIGCHLD one by one: CLD_STOPPED/19 CLD_CONTINUED/18 CLD_EXITED/13",
    "SIGCHLD (SA_NOCLDSTOP) one by one: CLD_EXITED/13",
    "SIGCHLD ignored: wait -> -1 ECHILD",
    "SA_NOCLDWAIT: SIGCHLD CLD_EXITED/77, then waitpid -> -1 ECHILD",
]


# Not tested (it cannot be made to fail reliably): with --trace-all, the
# SIGCHLD a parent gets for a child's stop sometimes carries si_status 0
# instead of the stop signal, when the parent's waitpid(WUNTRACED) runs
# before the kernel has built that SIGCHLD (it reads the group's stop code,
# which the wait consumes).  The kernel notifies and wakes the tracer first;
# the parent's wait4 stops in Python and is resumed by the tracer, so the
# wait often wins the race on a multi-CPU host (0.1% to 17% of tries here;
# never natively, never in default mode, never on one CPU).  wp_wait
# therefore prints only the si_code of that SIGCHLD.


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_wait_semantics_match_native(guest, mode, static):
    native, inside = assert_same([guest("wp_wait", static)], mode, timeout=30)
    lines = inside.stdout.decode().splitlines()
    for expected in WAIT_EXPECTED_LINES:
        assert expected in lines, (expected, inside.stdout.decode())
    assert inside.returncode == 0


def test_wait_semantics_with_host_pids(guest, mode):
    native = run_native([guest("wp_wait")], timeout=30)
    inside = run_umlpy([guest("wp_wait")], mode, options=["--pid-host"], timeout=30)
    assert (inside.stdout, inside.stderr, inside.returncode) == \
        (native.stdout, native.stderr, native.returncode)


# ---- 2. zombies and reaping ---------------------------------------------------

def test_zombie_shows_in_proc_until_reaped(guest, mode):
    native, inside = assert_same([guest("wp_zombie")], mode, timeout=30)
    assert inside.stdout == b"zombie: yes\nreaped: yes, status 3\ngone after reap: yes\n"


def test_zombie_with_host_pids(guest, mode):
    p = run_umlpy([guest("wp_zombie")], mode, options=["--pid-host"], timeout=30)
    assert p.stdout == b"zombie: yes\nreaped: yes, status 3\ngone after reap: yes\n", p.stderr


REAPABLE = (b"pidfd readable, then waitpid(WNOHANG) finds the child: always\n"
            b"/proc says Z, then waitpid(WNOHANG) finds the child: always\n"
            b"statuses right: yes\n")


class ZombieNotWaitableAtOnce(AssertionError):
    """The artifact test_zombie_is_waitable_at_once pins (its strict xfail
    expects this class only: any other failure of the test is one)."""


class StoppedShownAsTracingStop(AssertionError):
    """The artifact test_stopped_child_state_in_proc pins (likewise)."""


def test_reap_race_checker_natively(guest):
    p = run_native([guest("wp_reap_race")], timeout=30)
    assert p.stdout == REAPABLE, (p.stdout, p.stderr)


# Only the default mode: there, the window is open in most rounds.  With
# --trace-all the parent's own syscalls stop in Python, which usually (not
# always: ~1 round in 1000) gives the tracer time to collect the exit first,
# so the outcome there is neither a reliable pass nor a reliable failure.
@pytest.mark.xfail(strict=True, raises=ZombieNotWaitableAtOnce, reason=(
    "umlpy bug: a guest child that has exited is not waitable by its guest "
    "parent until umlpy's tracer has collected the ptrace exit notification "
    "(a zombie ptracee is visible only to its tracer).  Meanwhile the pidfd "
    "polls readable and /proc/PID/stat says Z, yet waitpid(pid, WNOHANG) "
    "returns 0; natively it returns the child"))
@pytest.mark.parametrize("options", [[], ["--pid-host"]], ids=["pidns", "pid-host"])
def test_zombie_is_waitable_at_once(guest, options):
    p = run_umlpy([guest("wp_reap_race")], "default", options=options, timeout=30)
    missed = (b"pidfd readable, then waitpid(WNOHANG) finds the child: not always\n",
              b"/proc says Z, then waitpid(WNOHANG) finds the child: not always\n")
    lines = p.stdout.splitlines(keepends=True)
    if (p.returncode == 0 and lines[-1:] == [REAPABLE.splitlines(keepends=True)[-1]]
            and any(line in missed for line in lines)):
        raise ZombieNotWaitableAtOnce(p.stdout.decode(errors="replace"))
    assert p.stdout == REAPABLE, p.stderr


@pytest.mark.xfail(strict=True, raises=StoppedShownAsTracingStop, reason=(
    "umlpy bug: a guest stopped by SIGSTOP sits in a ptrace group-stop "
    "(PTRACE_LISTEN), so /proc/PID/stat and /proc/PID/status show state "
    "'t (tracing stop)' where native Linux shows 'T (stopped)'; ps and "
    "anything parsing /proc see the difference"))
def test_stopped_child_state_in_proc(guest, mode):
    argv = [guest("wp_zombie"), "stopped"]
    native, inside = run_native(argv, timeout=30), run_umlpy(argv, mode, timeout=30)
    assert native.stdout == b"stopped child state: T\n"
    assert (inside.returncode, inside.stderr) == (native.returncode, native.stderr)
    if inside.stdout == b"stopped child state: t\n":
        raise StoppedShownAsTracingStop("inside umlpy the stopped child's state is 't'")
    assert inside.stdout == native.stdout


# ---- 3. /proc/[pid] agrees with the guest's own view -----------------------------

def proc_checks(ns):
    """The (who, check) pairs wp_proc reports; each must say OK."""
    own = ["stat:1:pid", "stat:2:comm", "stat:4:ppid", "stat:5:pgrp", "stat:6:session",
           "status:Pid", "status:PPid", "status:Tgid", "status:NSpid", "status:NStgid",
           "status:NSpgid", "status:NSsid", "cmdline", "comm", "exe", "cwd",
           "fd:list", "fd:link", "task:list", "task:main-is-pid", "task:stat",
           "status:Threads"]
    outside = ["stat:1:pid", "stat:2:comm", "stat:4:ppid", "stat:5:pgrp", "stat:6:session",
               "pgrp-is-own", "status:Pid", "status:PPid", "status:Tgid", "status:NSpid",
               "status:NStgid", "status:NSpgid", "status:NSsid", "cmdline", "comm", "exe",
               "cwd"]
    checks = {("parent", c) for c in own} | {("child", c) for c in own}
    checks |= {("parent-of-child", c) for c in outside}
    checks |= {("parent", "proc:pids"), ("parent", "child-exit")}
    if ns:
        checks |= {("parent", "is-pid-1"), ("parent", "child-pid-small")}
    return checks


def run_proc_checks(guest, mode, tmp_path, pid_host):
    argv = [guest("wp_proc"), "host" if pid_host else "ns", "two words", "", "--last"]
    p = run_umlpy(argv, mode, options=["--pid-host"] if pid_host else [], cwd=tmp_path,
                  timeout=30)
    out = p.stdout.decode()
    mismatches = [line for line in out.splitlines() if not line.startswith("OK ")]
    assert not mismatches, (mismatches, p.stderr.decode()[-2000:])
    seen = {tuple(line.split()[1:3]) for line in out.splitlines()}
    assert seen == proc_checks(not pid_host), seen ^ proc_checks(not pid_host)
    assert p.returncode == 0, p.stderr


def test_proc_pid_agrees_with_guest_view(guest, mode, tmp_path):
    run_proc_checks(guest, mode, tmp_path, pid_host=False)


def test_proc_pid_agrees_with_guest_view_pid_host(guest, mode, tmp_path):
    run_proc_checks(guest, mode, tmp_path, pid_host=True)


def test_proc_checks_pass_natively(guest, tmp_path):
    """The checker itself is right: on the host it finds nothing wrong."""
    p = run_native([guest("wp_proc"), "host", "two words", "", "--last"], cwd=tmp_path,
                   timeout=30)
    assert b"MISMATCH" not in p.stdout and p.returncode == 0, p.stdout


# ---- 4. getppid/getpgrp/getsid and kill(0) in the pid namespace --------------

IDS_EXPECTED = {
    "pid": "1",
    "ppid": "0",                    # pid 1's parent is outside the sandbox
    "pgrp": "1",                    # the guest leads a process group of its own
    "getpgid(0) == getpgrp()": "yes",
    "setsid as a group leader fails with EPERM": "yes",
    "child's getppid() is 1": "yes",
    "child's getpgrp() is 1": "yes",
    "child's getsid() is pid 1's": "yes",
    "child's pid is not 1": "yes",
    "setsid() in a child returns its pid": "yes",
    "then getsid(0) == getpid()": "yes",
    "then getpgrp() == getpid()": "yes",
    "pid 1 sees getsid(child) == child": "yes",
    "pid 1 sees getpgid(child) == child": "yes",
    "pid 1's own session unchanged": "yes",
    "orphaned grandchild reaped by pid 1": "yes",
    "orphaned grandchild's status": "33",   # it saw getppid() == 1 once orphaned
    "other child is in another group": "yes",
    "kill(0, SIGUSR1) succeeded": "yes",
    "pid 1 got SIGUSR1": "yes",
    "same-group child got SIGUSR1": "yes",
    "other-group child got SIGUSR1": "no",
    "kill(1, SIGUSR1) from a child reached pid 1": "yes",
    "kill(-1, SIGUSR1) from a child succeeded": "yes",
    "kill(-1) reached a process in another group": "yes",
    "kill(-1) reached pid 1": "no",
}


def test_ids_and_kill_zero_in_pid_namespace(guest, mode):
    # A host shell leads the process group umlpy runs in; if the guest's
    # kill(0) or kill(-1) leaked out, the shell's trap (and umlpy, which does
    # not handle SIGUSR1) would see it.  A session of its own keeps pytest safe.
    wrapper = 'trap "echo HOST-GOT-USR1" USR1; "$@"; st=$?; echo "umlpy status $st"'
    argv = ["sh", "-c", wrapper, "sh", *umlpy_argv([guest("wp_ids")], mode)]
    p = subprocess.run(argv, capture_output=True, timeout=30, env=_env(),
                       start_new_session=True)
    lines = p.stdout.decode().splitlines()
    assert lines[-1] == "umlpy status 0", (lines, p.stderr.decode()[-2000:])
    assert "HOST-GOT-USR1" not in lines
    got = dict(line.split(": ", 1) for line in lines[:-1])
    sid = got.pop("sid")
    assert got == IDS_EXPECTED
    # pid 1's session is umlpy's, whose leader is outside the namespace (0),
    # unless the guest was given a session of its own (then it leads it: 1)
    assert sid in ("0", "1")

