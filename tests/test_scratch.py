"""Scratch memory (umlpy/kernel/vfs/scratch.py) is mapped once per shell,
not once per program it runs: a vfork child's mapping, made in its
parent's memory, serves the parent's next children; a process whose
forked children each needed one gets its own at its next fork, and its
children inherit it, sealed.  (That the arguments never land in memory
the guest can write is tests/escape/test_hostpath_escapes.py's.)"""
import subprocess
import sys
import textwrap

import pytest

from conftest import _env

ROUNDS = 40


@pytest.mark.parametrize("shell", ["sh", "bash"], ids=["dash-vforks", "bash-forks"])
def test_a_shell_loop_maps_scratch_memory_a_few_times(shell):
    script = f"i=0; while [ $i -lt {ROUNDS} ]; do /bin/true; i=$((i+1)); done; echo done $i"
    code = textwrap.dedent(f"""
        from umlpy.kernel import GuestKernel
        k = GuestKernel()
        k.spawn([{shell!r}, "-c", {script!r}])
        status = k.run()
        print("MAPPED", k.scratch.mapped, status)
        """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0] == f"done {ROUNDS}"
    _, mapped, status = lines[-1].split()
    assert status == "0"
    # the shell's own exec, the first child's, the parent's: not one a round
    assert int(mapped) <= 4, mapped


@pytest.mark.parametrize("mode", ["default", "trace-all"])
def test_a_guest_that_fakes_mseal_gets_no_rewritten_call(guest, mode):
    """tests/guest/fake_mseal.c answers mseal with a success of its own,
    then execs: the guest kernel, which needs scratch memory for the exec,
    must see the mapping unsealed in /proc and refuse (EPERM), not run a
    call from memory the guest can make writable."""
    from conftest import run_umlpy
    prog = guest("fake_mseal", static=True)
    p = run_umlpy([prog, "/bin/true"], mode)
    assert (p.returncode, p.stdout) == (1, b"exec: Operation not permitted\n"), p.stderr
