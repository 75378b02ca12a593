"""Kept exec plans (umlpy/kernel/execplans.py): a program the guest runs
again is not planned again, unless something the plan rests on changed.

Each test would break a plan cache that kept too much: one that missed
the guest's own changes, the host's changes within the expiry time, or
who asks.  (Who asks is in the key, though the host would refuse a
stale plan anyway: it checks the permission to execute, and the script's
interpreter opens the script as the guest.)"""
import os
import select
import subprocess
import sys
import time

from conftest import ROOT, _env, open_up

AS_ROOT = os.geteuid() == 0


def script(path, text, mode=0o755):
    path.write_text(text)
    os.chmod(path, mode)


def run_in_process(argv):
    """(exit status, kept-plan hits) of argv run by a GuestKernel here."""
    from umlpy.kernel import GuestKernel
    kernel = GuestKernel()
    kernel.spawn(argv)
    status = kernel.run()
    return status, kernel.exec_plans.hits


def test_plans_are_kept_for_a_program_run_again(tmp_path):
    open_up(tmp_path)
    prog = tmp_path / "prog"
    script(prog, "#!/bin/sh\nexit 3\n")
    status, hits = run_in_process(
        ["sh", "-c", f"for i in 1 2 3 4 5; do {prog}; done; /bin/true; /bin/true"])
    assert status == 0
    assert hits >= 5        # 4 of the script's runs and one of /bin/true's


def run(argv, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "umlpy", "run", "--", *argv],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env or _env(), **kw)


def test_a_kept_plan_follows_the_guests_own_changes(tmp_path):
    """The guest rewrites, then removes, a program it ran: each run after
    runs what is there now, exactly as without kept plans."""
    open_up(tmp_path)
    os.chmod(tmp_path, 0o777)
    prog = tmp_path / "prog"
    script(prog, "#!/bin/sh\necho one\n")
    if AS_ROOT:
        os.chown(prog, 65534, 65534)    # the guest's host identity
    body = (f"p={prog}; $p; $p; printf '#!/bin/sh\\necho two\\n' > $p; $p; "
            f"chmod 644 $p; $p; echo status $?; rm $p; $p; echo status $?")
    kept = run(["sh", "-c", body])
    env = _env()
    env["UMLPY_NO_FASTPATH"] = "1"
    fresh = run(["sh", "-c", body], env=env)
    assert kept.stdout.split("\n")[:4] == ["one", "one", "two", "status 126"], kept.stderr
    assert kept.stdout == fresh.stdout
    assert kept.stdout.rstrip().endswith("status 127")


def read_line(p, timeout=30):
    """One line of p's stdout (binary, unbuffered), or what came before the
    deadline: a guest stuck on a stale plan must fail the test, not hang it."""
    line, deadline = b"", time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
            break
        byte = os.read(p.stdout.fileno(), 1)
        if not byte:
            break
        line += byte
    return line.decode()


def test_a_program_changed_on_the_host_is_planned_again(tmp_path):
    """Within the expiry time, the host rewrites the program in place with
    another interpreter (same inode, same size, its old mtime put back),
    then replaces it with a new file: the guest runs each version, never
    the kept plan's."""
    open_up(tmp_path)
    prog, go1, go2 = tmp_path / "prog", tmp_path / "go1", tmp_path / "go2"
    first, second = "#!/bin/sh\necho one\n", "#!/bin/echo two   \n"
    assert len(first) == len(second)
    script(prog, first)
    wait = "while [ ! -e {} ]; do sleep 0.02; done"
    body = (f"{prog}; {prog}; {wait.format(go1)}; {prog}; {wait.format(go2)}; {prog}")
    p = subprocess.Popen([sys.executable, "-m", "umlpy", "run", "--", "sh", "-c", body],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                         cwd=ROOT, env=_env())
    try:
        assert read_line(p) == "one\n"
        assert read_line(p) == "one\n"
        st = os.stat(prog)
        with open(prog, "r+") as f:
            f.write(second)
        os.utime(prog, ns=(st.st_atime_ns, st.st_mtime_ns))
        go1.touch()
        assert read_line(p) == f"two {prog}\n"
        new = tmp_path / "prog.new"
        script(new, "#!/bin/echo six\n")
        os.rename(new, prog)
        go2.touch()
        assert read_line(p) == f"six {prog}\n"
        assert p.wait(60) == 0
    finally:
        p.kill()
        p.wait()
