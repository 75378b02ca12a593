"""--root with one id (issue 13.1, "otherwise"): an ordinary user with no
/etc/subuid range, or the Python API run by one, gets a guest whose ids
the guest kernel emulates (umlpy/kernel/fakeids.py, syscalls/ids.py):
setuid and friends behave as Linux's, files a uid-42 process makes are
42's, and the guest VFS checks such a process as uid 42."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import _env
from umlpy.kernel.identity import SUBORDINATE_ENV

NOBODY = 65534
PYTHON = "/opt/umlpy-ci-venv/bin/python"
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs umlpy as uid 65534 by setpriv")


def _one_id_env():
    """The environment for umlpy as uid 65534 with one id.  Other tests
    give nobody an /etc/subuid range for a while (test_identities.py,
    test_debian_jail.py), and umlpy would then enter those ids: with
    SUBORDINATE_ENV set, umlpy takes itself as entered already and stays
    in its one id whatever /etc/subuid says (test_the_guest_has_one_id
    checks it)."""
    env = _env()
    env[SUBORDINATE_ENV] = f"{NOBODY}:{NOBODY}"
    return env


@pytest.fixture(scope="module")
def place(guest):
    """A directory uid 65534 can read, with the fake_ids probe in it."""
    if not os.path.exists(PYTHON):
        pytest.fail(f"{PYTHON} is needed (an interpreter uid {NOBODY} can run)")
    where = tempfile.mkdtemp(prefix="fake-ids-")
    os.chmod(where, 0o755)
    shutil.copy(guest("fake_ids", static=True), os.path.join(where, "fake_ids"))
    shutil.copy(os.path.join(os.path.dirname(__file__), "guest", "fake_access.py"),
                os.path.join(where, "fake_access.py"))
    os.chmod(os.path.join(where, "fake_access.py"), 0o644)
    os.chmod(os.path.join(where, "fake_ids"), 0o755)
    yield where
    shutil.rmtree(where)


def as_nobody(argv, timeout=120, options=()):
    """umlpy run --root as uid 65534, which has one id."""
    return subprocess.run(SETPRIV + [PYTHON, "-m", "umlpy", "run", "--root", *options,
                                     "--", *argv],
                          capture_output=True, env=_one_id_env(), timeout=timeout, cwd="/")


def sh(script, **kw):
    """script run by guest root in a new directory of its own (0755)."""
    p = as_nobody(["sh", "-c", "cd $(mktemp -d) && chmod 755 . && " + script], **kw)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_the_guest_has_one_id(place):
    status, out, err = sh("cat /proc/self/uid_map /proc/self/gid_map")
    assert (status, out.split()) == (0, ["0", str(NOBODY), "1"] * 2), err


def test_the_id_calls_as_natively(place):
    prog = os.path.join(place, "fake_ids")
    native = subprocess.run([prog], capture_output=True, timeout=60)
    assert native.returncode == 0, native.stderr
    inside = as_nobody([prog])
    assert inside.returncode == 0, inside.stderr.decode()
    want, got = native.stdout.decode().splitlines(), inside.stdout.decode().splitlines()
    for i, (a, b) in enumerate(zip(want, got)):
        assert b == a, f"line {i + 1} differs"
    assert len(got) == len(want)


def test_permissions_as_natively(place):
    """tests/guest/fake_access.py, natively as real root and inside as
    emulated root: root's DAC overrides (writing its own 0444 file, a 0555
    directory), uid 1000's refusals (opens, access, creations, removals,
    renames, chdir, the sticky bit, chmod, chown's rules) and
    /proc/self/status showing the ids the id calls set: the same lines."""
    prog = os.path.join(place, "fake_access.py")
    native = subprocess.run([PYTHON, prog], capture_output=True, timeout=60, cwd="/")
    assert native.returncode == 0, native.stderr
    inside = as_nobody([PYTHON, prog])
    assert inside.returncode == 0, inside.stderr.decode()
    want, got = native.stdout.decode().splitlines(), inside.stdout.decode().splitlines()
    differ = [f"{a!r} natively, {b!r} inside" for a, b in zip(want, got) if a != b]
    assert not differ, "\n".join(differ)
    assert len(got) == len(want), got


def test_root_overrides_only_its_own_files(place):
    """Emulated root's overrides are for the sandbox's own files: a host
    file the one host id may not read stays unreadable (/etc/shadow), and
    writing a host file of the lower layer is made to the sandbox's copy;
    the 0444 file root wrote keeps its mode."""
    status, out, err = sh("cat /etc/shadow >/dev/null 2>&1; echo shadow $?; "
                          "echo x > f && chmod 444 f && echo y >> f && stat -c '%a' f && cat f")
    assert (status, out) == (0, "shadow 1\n444\nx\ny\n"), err


AS_42 = "setpriv --reuid 42 --regid 42 --clear-groups "
ZERO_DIR = ("mkdir d && echo f > d/f && chmod 0 d && ls d && cat d/f && echo g > d/g && "
            f"{{ {AS_42} ls d; echo 42 ls $?; {AS_42} cat d/f; echo 42 cat $?; }} 2>/dev/null && "
            "mkdir d/s && touch d/s/t && ls -a d d/s && stat -c %a d && cd d && ls && cat g && "
            "cd .. && chmod 0 d/s && ls d/s && mv d/g d/s/ && ls d/s && rm -r d && "
            "ls -a; echo status $?")


def test_root_lists_and_enters_its_own_0000_directory(place):
    """Root reads, searches and writes its own mode-0000 directory, as
    Linux's CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE let it: the guest
    kernel, whose one host user the host refuses by that mode, opens the
    sandbox's own directory to that user for the call (the guest still
    sees 0000).  uid 42, without those capabilities, is refused."""
    native = subprocess.run(["sh", "-c", "cd $(mktemp -d) && chmod 755 . && " + ZERO_DIR],
                            capture_output=True, timeout=60)
    assert native.stdout.decode().endswith("status 0\n"), native.stderr
    status, out, err = sh(ZERO_DIR)
    assert (status, out) == (0, native.stdout.decode()), err


def test_root_lists_its_own_0000_directory_in_a_tmpfs(place):
    """/dev/shm and --tmpfs mounts are the sandbox's own storage too: root
    lists, enters and reads its 0000 directory there."""
    script = ("cd $(mktemp -d -p {}) && chmod 755 . && mkdir d && echo f > d/f && "
              "ln -s f d/l && chmod 0 d && ls d && cat d/f && readlink d/l && cd d && ls && "
              "cd .. && chmod 700 d && rm -r d && echo done")
    native = subprocess.run(["sh", "-c", script.format("/dev/shm")], capture_output=True,
                            timeout=60)
    assert native.stdout.decode().endswith("done\n"), native.stderr
    for where, options in (("/dev/shm", ()), ("/scratch", ("--tmpfs", "/scratch"))):
        p = as_nobody(["sh", "-c", script.format(where)], options=options)
        assert (p.returncode, p.stdout) == (0, native.stdout), p.stderr.decode()


def test_root_gets_no_more_of_a_0000_host_directory(place, tmp_path):
    """A mode-0000 directory of the host (of root's, or of the one host
    user's own) stays unreadable: what the guest may read of the host is
    what its host identity may read, whatever the guest's capabilities."""
    for owner in (0, NOBODY):
        d = os.path.join(place, f"locked{owner}")
        os.mkdir(d)
        with open(os.path.join(d, "secret"), "w") as f:
            f.write("s")
        os.chown(d, owner, owner)
        os.chmod(d, 0)
    try:
        script = "; ".join(f"ls {place}/locked{o} >/dev/null 2>&1; echo ls $?; "
                           f"cat {place}/locked{o}/secret >/dev/null 2>&1; echo cat $?; "
                           f"touch {place}/locked{o}/new 2>/dev/null; echo touch $?"
                           for o in (0, NOBODY))
        status, out, err = sh(script)
        assert (status, out) == (0, "ls 2\ncat 1\ntouch 1\n" * 2), err
    finally:
        for owner in (0, NOBODY):
            os.chmod(os.path.join(place, f"locked{owner}"), 0o700)


def test_id_shows_the_ids_set(place):
    status, out, err = sh("setpriv --reuid 42 --regid 43 --clear-groups id -u; "
                          "setpriv --reuid 42 --regid 43 --groups 7,8 id -G")
    assert (status, out.split()) == (0, ["42", "43", "7", "8"]), err


def test_files_made_by_uid_42_are_42s(place):
    status, out, err = sh("chmod 777 . && setpriv --reuid 42 --regid 42 --clear-groups touch f && "
                          "setpriv --reuid 42 --regid 42 --clear-groups mkdir d && "
                          "touch r && stat -c '%n %u %g' f d r")
    assert status == 0, err
    assert out.split("\n")[:3] == ["f 42 42", "d 42 42", "r 0 0"], out


def test_uid_42_may_not_write_roots_file(place):
    status, out, err = sh("echo root > mine && chmod 0644 mine && "
                          "setpriv --reuid 42 --regid 42 --clear-groups "
                          "sh -c 'cat mine; echo more >> mine' 2>&1; "
                          "echo status $?; cat mine")
    assert "Permission denied" in out, (out, err)
    assert out.split("\n")[-3:] == ["status 2", "root", ""], out     # dash: a redirection failed


def test_uid_42_writes_its_own_file(place):
    status, out, err = sh("chown 42 . && setpriv --reuid 42 --regid 42 --clear-groups "
                          "sh -c 'echo hers > h && cat h'")
    assert (status, out) == (0, "hers\n"), err


def test_dropping_to_apt_as_apt_does(place):
    """apt: setgroups, setresgid, setresuid to _apt; then it cannot come back."""
    script = ("import os\n"
              "os.setgroups([65534]); os.setresgid(42, 42, 42); os.setresuid(42, 42, 42)\n"
              "print(os.getresuid(), os.getresgid(), os.getgroups())\n"
              "try:\n    os.setuid(0)\nexcept PermissionError:\n    print('no way back')\n")
    status, out, err = sh(f"{PYTHON} -c \"{script}\"")
    assert (status, out) == (0, "(42, 42, 42) (42, 42, 42) [65534]\nno way back\n"), err


def test_through_the_python_api(place):
    """The API's Sandbox, run by uid 65534 in its own process (no re-exec)."""
    code = ("import sys\n"
            "from umlpy import Sandbox\n"
            "r = Sandbox(root=True).run([sys.argv[1]], capture=True)\n"
            "sys.stdout.write(r.stdout.decode())\n"
            "sys.exit(r.status)\n")
    prog = os.path.join(place, "fake_ids")
    native = subprocess.run([prog], capture_output=True, timeout=60)
    p = subprocess.run(SETPRIV + [PYTHON, "-c", code, prog], capture_output=True, env=_one_id_env(),
                       timeout=120, cwd="/")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode() == native.stdout.decode()


def test_uid_42_may_not_remove_roots_file(place):
    status, out, err = sh("touch mine && setpriv --reuid 42 --regid 42 --clear-groups "
                          "rm -f mine 2>&1; ls")
    assert "Permission denied" in out and out.endswith("mine\n"), (out, err)


def test_group_and_others_bits_for_uid_42(place):
    """Checked as uid 42 with group 7: the group's bits for a file of group
    7 (chowned by fake root), the others' for root's."""
    status, out, err = sh("echo g > g && chown 0:7 g && chmod 0660 g && echo o > o && "
                          "chmod 0604 o && setpriv --reuid 42 --regid 42 --groups 7 "
                          "sh -c 'cat g o; echo x >> g && echo x >> o; cat g' 2>&1")
    assert out.split("\n")[:2] == ["g", "o"], (out, err)
    assert "Permission denied" in out and out.endswith("g\nx\n"), (out, err)


def test_signals_between_the_emulated_ids(place):
    """uid 42 may not signal root's process, but its own; root signals
    anyone's."""
    as42 = "setpriv --reuid 42 --regid 42 --clear-groups "
    status, out, err = sh(f"sleep 100 & p=$!; {as42} sh -c \"kill -0 $p 2>/dev/null; echo \\$?\"; "
                          f"kill $p; {as42} sh -c 'sleep 100 & kill $!; wait $!; echo $?'; "
                          f"{as42} sleep 100 & kill $!; wait $!; echo $?")
    assert (status, out) == (0, "1\n143\n143\n"), err


def test_the_rules_in_process():
    """fakeids.Cred alone: a few of Linux's rules (the C probe has the rest)."""
    from errno import EPERM
    from umlpy.abi.capability import CAP_DAC_OVERRIDE, CAP_SETUID
    from umlpy.kernel.fakeids import FS_CAPS, UNCHANGED, Cred
    full = (1 << 41) - 1
    cred = Cred((full, full, 0))
    assert cred.setfsuid(42) == 0 and cred.effective == full & ~FS_CAPS
    assert cred.setfsuid(UNCHANGED) == 42 and cred.setfsuid(0) == 42
    assert cred.effective == full
    assert cred.setreuid(UNCHANGED, 42) == 0
    assert (cred.uid, cred.euid, cred.suid, cred.effective, cred.permitted) == (0, 42, 42, 0, full)
    assert cred.setuid(0) == 0 and cred.effective == full and cred.suid == 42
    assert cred.setresuid(42, 42, 42) == 0 and cred.permitted == 0
    assert cred.setuid(0) == EPERM and not cred.effective & (CAP_SETUID | CAP_DAC_OVERRIDE)
    child = cred.copy()
    assert child.setuid(42) == 0 and cred.setgroups([9, 3]) == 0 and cred.groups == (3, 9)


def test_many_real_ids_are_the_hosts(place):
    """As root, through the Python API in this process: the guest has a
    block of real ids, and the host does it all (nothing is emulated)."""
    from umlpy import Sandbox
    r = Sandbox(root=True).run(["sh", "-c", "cd $(mktemp -d) && chmod 777 . && "
                                "setpriv --reuid 42 --regid 42 --clear-groups "
                                "sh -c 'id -u; touch x; stat -c %u x; cat /proc/self/status'"],
                               capture=True, timeout=120)
    assert r.status == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == ["42", "42"]
    uid_line = [line for line in lines if line.startswith("Uid:")]
    assert uid_line and uid_line[0].split()[1:] == ["42"] * 4
