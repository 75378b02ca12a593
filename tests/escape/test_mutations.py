"""The test of a test is removing what it tests.  For each named defence,
umlpy is copied with that defence edited out, and the escape test that
pins it must fail there (and passes here, in the rest of the suite).  A
defence whose text changes must have its entry updated: a mutation that
no longer applies fails this test too, rather than pass unnoticed.
docs/SECURITY.md lists the pairs ("Mutation checks")."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, open_up

# (defence, file, the defence's text, what replaces it, tests that must fail)
MUTATIONS = [
    ("x32 numbers refused by the filter itself", "umlpy/kernel/seccomp.py",
     "        (JGE_K, 0, 1, X32_SYSCALL_BIT),\n        (RET_K, 0, 0, enosys),"
     "               # the x32 ABI\n", "",
     ["tests/test_policy.py::test_foreign_abis_get_enosys"]),
    ("CLONE_UNTRACED stripped from clone", "umlpy/kernel/syscalls/process.py",
     "args[0] = flags & ~CLONE_UNTRACED", "args[0] = flags",
     ["tests/escape/test_escape.py::test_clone_untraced"]),
    ("scratch memory believed sealed only if the host shows it", "umlpy/kernel/vfs/scratch.py",
     "not mapping_is_sealed(tid, r, REGION, require_seal=has_mseal)", "False",
     ["tests/test_scratch.py::test_a_guest_that_fakes_mseal_gets_no_rewritten_call"]),
    ("--pid-host: no signal reaches umlpy or its opener", "umlpy/kernel/syscalls/signal.py",
     "    return fail(EPERM) if _aims_at_umlpy(call) else None\n", "    return None\n",
     ["tests/escape/test_escape.py::test_guest_kills_its_tracer[root-pid-host]"]),
    ("--pids: a slot for each clone in flight", "umlpy/kernel/syscalls/process.py",
     "processes.starting[call.tid] = call.nr", "pass",
     ["tests/test_limit_attacks.py::test_a_clone_in_flight_holds_its_slot"]),
    ("--cpu-time: the dead's time in their reapers'", "umlpy/kernel/limits.py",
     "for i in (11, 12, 13, 14)", "for i in (11, 12)",
     ["tests/test_limit_attacks.py::test_short_lived_children_count_against_cpu_time"
      "[nobody]"]),
    ("--memory: memfds held open", "umlpy/kernel/limits.py",
     "            memfds = _memfds(tgid)\n", "            memfds = {}\n",
     ["tests/test_limit_attacks.py::test_shared_memory_counts_against_memory[memfd-nobody]"]),
    ("--disk: copy-ups reserve their size", "umlpy/kernel/vfs/union.py",
     "                self.reserve_space(d.attr.size)\n", "                pass\n",
     ["tests/test_limit_attacks.py::test_copy_ups_are_counted"]),
    ("--disk: a file grown by ftruncate counts at its size", "umlpy/kernel/syscalls/fd.py",
     "    if size is None or growth <= 0:\n        return None\n",
     "    return None\n",
     ["tests/test_limit_attacks.py::test_disk_writes_without_write_calls_are_counted"
      "[mmap-write]"]),
    ("emulated ids: PR_CAPBSET_DROP needs the emulated CAP_SETPCAP",
     "umlpy/kernel/syscalls/ids.py",
     "return None if cred.capable(CAP_SETPCAP) else fail(EPERM)", "return None",
     ["tests/test_oci_confinement.py::test_full_podman_set_and_a_user[nobody]"]),
    ("OCI seccomp profiles: umlpy's injected mseal allowed ahead of them",
     "umlpy/oci/seccomp.py",
     "program = allow_first(sealing) + program", "pass",
     ["tests/test_oci_confinement.py::test_seccomp_profile_of_podman[root]"]),
]


def _copy_of_the_tree(where):
    """The package, its tests and the image builders they use (rootfs/),
    as they are here (with the native part already built)."""
    for name in ("umlpy", "tests", "rootfs"):
        shutil.copytree(ROOT / name, where / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("setup.py", "README.md", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, where / name)


def _pytest(tree, tests):
    """The tests, run in tree.  Their temporary files go beside it: a
    pytest run left to its default base would make /tmp/pytest-of-root
    0700 again, and uid 65534 could no longer reach the tree, so a test
    run as that user would import the umlpy installed for this suite
    (unmutated) instead of the tree's."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:randomly", f"--basetemp={tree.parent / 'pytest-tmp'}",
                        *tests], cwd=tree, env=env, capture_output=True, timeout=900)
    out = p.stdout.decode(errors="replace")
    return p.returncode, out, (out.strip().splitlines() or [""])[-1]


@pytest.fixture(scope="module")
def trees():
    """Where the copies go: outside pytest's own base (see _pytest), open
    to uid 65534."""
    base = Path(tempfile.mkdtemp(prefix="mutations-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pristine(trees):
    """The unmutated copy, where every pinned test passes (so that a test
    failing in a mutated copy fails for the mutation, not for the copy)."""
    (trees / "pristine").mkdir()
    where = trees / "pristine" / "tree"
    where.mkdir()
    _copy_of_the_tree(where)
    open_up(where)
    for dirpath, dirnames, filenames in os.walk(where):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            # programs (the .so, umlpy-init, umlpy-exec, scripts) stay runnable
            path = os.path.join(dirpath, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o111 else 0o644)
    tests = sorted({t for m in MUTATIONS for t in m[4]})
    status, out, summary = _pytest(where, tests)
    assert status == 0 and " passed" in summary and "skipped" not in summary, \
        f"the pinned tests do not all pass in an unmutated copy:\n{out[-3000:]}"
    return where


@pytest.mark.slow
@pytest.mark.parametrize("defence,path,text,replacement,tests", MUTATIONS,
                         ids=[m[0] for m in MUTATIONS])
def test_removing_the_defence_fails_its_test(pristine, trees, defence, path, text,
                                             replacement, tests):
    where = Path(tempfile.mkdtemp(prefix="mutated-", dir=trees))
    os.chmod(where, 0o755)
    tree = where / "tree"
    shutil.copytree(pristine, tree)
    target = tree / path
    source = target.read_text()
    assert source.count(text) == 1, f"the defence's text is no longer in {path} once"
    target.write_text(source.replace(text, replacement))
    status, out, summary = _pytest(tree, tests)
    assert status == 1 and " failed" in summary, \
        f"with '{defence}' removed, {tests} still pass:\n{out[-3000:]}"


def test_every_pair_names_tests_that_exist():
    for defence, path, text, _, tests in MUTATIONS:
        assert (ROOT / path).read_text().count(text) == 1, defence
        for test in tests:
            file, _, name = test.partition("::")
            assert f"def {name.split('[')[0]}(" in Path(ROOT / file).read_text(), test
