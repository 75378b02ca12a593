"""noexec mounts (--tmpfs GUEST:noexec, --bind HOST:GUEST:noexec,
--noexec PATH) behave as Linux's MS_NOEXEC: a probe (tests/guest/
noexec_probe.c) runs natively in a private mount namespace with a real
noexec mount and inside umlpy with its own, and says the same line for
line (execve, ld.so on the file, #! interpreters, ELF loaders, mmap and
mprotect with PROT_EXEC), as root and as uid 65534.  A sandbox without a
noexec mount keeps the filter it had."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import AS_ROOT, ROOT, UMLPY, _env, open_up, run_umlpy
from umlpy.abi.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ
from umlpy.config import Config
from umlpy.errors import BadInput
from umlpy.kernel import GuestKernel
from umlpy.kernel.seccomp import SECCOMP_RET_ALLOW, SECCOMP_RET_TRACE, evaluate
from umlpy.kernel.seccomp import compile_filter
from umlpy.kernel.policy import Mode, build_policy, rule_for
from umlpy.kernel.syscalls import TABLE
from umlpy.kernel.syscalls.names import SYSCALL_NUMBERS

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
EXPECTED_NOEXEC = [
    "execve noexec: EACCES", "ld.so noexec: status 127", "own-ld.so noexec: EACCES",
    "script noexec: EACCES", "interpreter noexec: EACCES", "pt-interp noexec: EACCES",
    "mmap-exec noexec: EPERM", "mmap-exec-shared noexec: EPERM", "mmap-read noexec: ok",
    "mprotect noexec: EACCES", "pkey_mprotect noexec: EACCES", "mprotect-read noexec: ok",
    "mprotect-both noexec: EACCES", "anon-part noexec: r-xp",
    "read-implies-exec noexec: r--p", "mprotect-unlinked noexec: EACCES",
]

needs_root = pytest.mark.skipif(not AS_ROOT, reason="a real noexec mount needs root "
                                "(unshare -m)")


@pytest.fixture(scope="module")
def probe(guest):
    path = guest("noexec_probe")
    open_up(os.path.dirname(path))
    return path


@pytest.fixture
def dirs(tmp_path):
    """(noexec mountpoint, bind source, exec-allowed dir), every one
    reachable and writable by uid 65534."""
    made = []
    for name in ("nx", "src", "e"):
        d = tmp_path / name
        d.mkdir()
        os.chmod(d, 0o777)
        made.append(str(d))
    open_up(tmp_path)
    return made


# case -> (native mount commands, umlpy options) over (nx, src)
CASES = {
    "tmpfs": (lambda nx, src: f"mount -t tmpfs -o noexec none {nx}",
              lambda nx, src: [f"--tmpfs={nx}:noexec"]),
    "bind": (lambda nx, src: f"mount --bind {src} {nx} && "
                             f"mount -o remount,bind,noexec {nx}",
             lambda nx, src: [f"--bind={src}:{nx}:rw,noexec,nosuid,nodev"]),
    "dev-shm": (lambda nx, src: "mount -t tmpfs -o noexec none /dev/shm",
                lambda nx, src: ["--noexec=/dev/shm"]),
}


def native_run(probe, case, nx, src, e, as_nobody):
    mount = CASES[case][0](nx, src)
    if case == "dev-shm":
        nx = "/dev/shm"
    run = " ".join(NOBODY) + " " if as_nobody else ""
    script = f"mount --make-rprivate / && {mount} && exec {run}{probe} {nx} {e}"
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def inside_run(probe, case, nx, src, e, as_nobody, mode="default"):
    options = CASES[case][1](nx, src)
    if case == "dev-shm":
        nx = "/dev/shm"
    argv = [probe, nx, e]
    if not as_nobody:
        p = run_umlpy(argv, mode, options)
    else:
        extra = ["--trace-all"] if mode == "trace-all" else []
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
               "HOME": "/nonexistent", "LANG": "C.UTF-8"}
        p = subprocess.run(NOBODY + UMLPY + ["run", *extra, *options, "--", *argv],
                           capture_output=True, env=env, cwd="/", timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout.decode()


@needs_root
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_noexec_mount_refuses_as_linux_does(probe, dirs, case, as_nobody):
    if not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.fail("util-linux's unshare and setpriv are needed")
    nx, src, e = dirs
    native = native_run(probe, case, nx, src, e, as_nobody)
    # what Linux does, which the comparison rests on
    assert native.splitlines()[:len(EXPECTED_NOEXEC)] == EXPECTED_NOEXEC, native
    assert "execve exec: ok" in native.splitlines()
    inside = inside_run(probe, case, nx, src, e, as_nobody)
    assert inside.splitlines() == native.splitlines()


@needs_root
def test_every_call_stopping_changes_nothing(probe, dirs):
    nx, src, e = dirs
    native = native_run(probe, "tmpfs", nx, src, e, False)
    assert inside_run(probe, "tmpfs", nx, src, e, False, "trace-all").splitlines() == \
        native.splitlines()


def test_the_guest_sees_noexec_in_its_mount_table(tmp_path):
    script = "grep -E ' (/x|/dev/shm|/proc|/sys) ' /proc/self/mountinfo; cat /proc/mounts"
    p = run_umlpy(["sh", "-c", script], options=[
        "--tmpfs=/x:ro,noexec", "--noexec=/dev/shm", "--noexec=/proc"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    info = {line.split()[4]: line.split()[5] for line in lines if line[0].isdigit()}
    assert info == {"/x": "ro,noexec", "/dev/shm": "rw,noexec", "/proc": "ro,noexec",
                    "/sys": "ro"}, lines
    assert "tmpfs /x tmpfs ro,noexec 0 0" in lines
    assert "tmpfs /dev/shm tmpfs rw,noexec 0 0" in lines


def test_a_file_on_an_exec_mount_runs(tmp_path):
    """The same program runs from a plain --tmpfs, and a noexec one does
    not reach the others (an exec'd program's own mappings stop no more
    than before: PROT_EXEC of the host's libraries passes)."""
    script = "cp /bin/true /x/t && /x/t && echo ran; cp /bin/true /y/t; /y/t; echo $?"
    p = run_umlpy(["sh", "-c", script], options=["--tmpfs=/x", "--tmpfs=/y:noexec"])
    assert p.stdout == b"ran\n126\n", p.stderr


# ---- options ---------------------------------------------------------------------------

@pytest.mark.parametrize("option,value,message", [
    ("tmpfs", "/x:noexc", "--tmpfs /x:noexc: unknown mount option 'noexc'"),
    ("binds", "/tmp:/x:ro,bogus", "--bind /tmp:/x:ro,bogus: unknown mount option 'bogus'"),
    ("binds", "/tmp:/x:suid", "--bind /tmp:/x:suid: suid is not offered"),
    ("binds", "/tmp:/x:ro:noexec", "--bind /tmp:/x:ro:noexec: expected HOST:GUEST[:OPTS]"),
    ("noexec", "/tmp", "--noexec /tmp: not one of umlpy's own mounts"),
    ("noexec", "dev", "--noexec dev: the guest path must be absolute"),
])
def test_bad_mount_options_are_one_line_errors(option, value, message):
    with pytest.raises(BadInput) as e:
        Config(**{option: [value]})
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)
    flag = {"tmpfs": "--tmpfs", "binds": "--bind", "noexec": "--noexec"}[option]
    p = subprocess.run(UMLPY + ["run", flag, value, "--", "true"], capture_output=True,
                       env=_env(), timeout=60)
    assert p.returncode == 2
    assert p.stderr.decode().splitlines() == [f"umlpy: {e.value}"]


def test_mount_options_old_and_new_spellings():
    c = Config(binds=["/tmp:/a", "/tmp:/b:ro", "/tmp:/c:rw", "/tmp:/d:ro,noexec",
                      "/tmp:/e:noexec,exec,nosuid,nodev", ("/tmp", "/f", True),
                      ("/tmp", "/g", False, True)],
               tmpfs=["/t", "/u:noexec", ("/v", True, True)], noexec=["/dev/shm/"])
    real = os.path.realpath("/tmp")
    assert [tuple(b) for b in c.binds] == [
        (real, "/a", False, False), (real, "/b", True, False), (real, "/c", False, False),
        (real, "/d", True, True), (real, "/e", False, False), (real, "/f", True, False),
        (real, "/g", False, True)]
    assert [tuple(t) for t in c.tmpfs] == [("/t", False, False, None),
                                           ("/u", False, True, None),
                                           ("/v", True, True, None)]
    assert c.noexec == ["/dev/shm"]
    assert c.noexec_mounts()
    assert not Config(binds=["/tmp:/a:ro"], tmpfs=["/t"]).noexec_mounts()
    from umlpy.config.words import option_words
    assert option_words(c) == [
        f"--bind={real}:/a", f"--bind={real}:/b:ro", f"--bind={real}:/c",
        f"--bind={real}:/d:ro,noexec", f"--bind={real}:/e", f"--bind={real}:/f:ro",
        f"--bind={real}:/g:noexec", "--tmpfs=/t", "--tmpfs=/u:noexec",
        "--tmpfs=/v:ro,noexec", "--noexec=/dev/shm"]


# ---- the filter --------------------------------------------------------------------------

MMAP, MPROTECT, PKEY_MPROTECT, PERSONALITY = (
    SYSCALL_NUMBERS[n] for n in ("mmap", "mprotect", "pkey_mprotect", "personality"))


def _filter(**options):
    kernel = GuestKernel(**options)
    return compile_filter(kernel.policy(), rule_for(None, kernel.mode, False))


def test_without_a_noexec_mount_the_filter_is_unchanged():
    today = compile_filter(build_policy(TABLE, Mode.DEFAULT), rule_for(None, Mode.DEFAULT,
                                                                       False))
    assert _filter() == today
    assert _filter(tmpfs=["/x", "/y:ro"], binds=["/tmp:/mnt:ro"]) == today
    assert evaluate(today, MMAP, (0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, 3, 0)) == \
        SECCOMP_RET_ALLOW


@pytest.mark.parametrize("options", [dict(noexec=["/dev/shm"]), dict(tmpfs=["/x:noexec"]),
                                     dict(binds=["/tmp:/mnt:ro,noexec"])])
def test_with_a_noexec_mount_only_executable_mappings_stop(options):
    program = _filter(**options)
    today = _filter()
    for nr in (MMAP, MPROTECT, PKEY_MPROTECT):
        for prot in (0, PROT_READ, PROT_READ | 2, PROT_READ | PROT_EXEC, PROT_EXEC):
            args = (0x10000, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            want = SECCOMP_RET_TRACE if prot & PROT_EXEC else SECCOMP_RET_ALLOW
            assert evaluate(program, nr, args) == want, (nr, prot)
    assert evaluate(program, PERSONALITY, (0x0400000,)) == SECCOMP_RET_TRACE
    assert evaluate(program, PERSONALITY, (0x0040000,)) == SECCOMP_RET_ALLOW
    # every other call is decided as before
    for nr in range(0, 460):
        if nr not in (MMAP, MPROTECT, PKEY_MPROTECT, PERSONALITY):
            assert evaluate(program, nr) == evaluate(today, nr), nr


def test_a_users_hook_on_mmap_still_stops_every_call():
    kernel = GuestKernel(tmpfs=["/x:noexec"])
    kernel.hook("mmap")(lambda call: None)
    policy = kernel.policy()
    assert policy[MMAP].guard is None and policy[MPROTECT].guard is not None


@needs_root
def test_cost_of_a_noexec_mount(tmp_path):
    """How many more calls a dynamic /bin/true makes stop with a noexec
    mount present: its loader's executable mappings (a handful)."""
    code = ("import sys\nfrom umlpy.kernel import GuestKernel\n"
            "k = GuestKernel(host_root=True, tmpfs=sys.argv[1:])\n"
            "k.spawn(['/bin/true'])\nstatus = k.run()\n"
            "print('STOPS', status, k.syscalls_seen)\n")
    counts = []
    for tmpfs in (["/x"], ["/x:noexec"]):
        p = subprocess.run([sys.executable, "-c", code, *tmpfs], capture_output=True,
                           env=_env(), timeout=120)
        words = p.stdout.decode().split()
        assert words[:2] == ["STOPS", "0"], p.stderr.decode()[-2000:]
        counts.append(int(words[2]))
    assert 0 < counts[1] - counts[0] <= 8, counts


@needs_root
def test_the_guests_own_noexec_mounts(tmp_path):
    """mount(2) with MS_NOEXEC in the guest: kept on the mount, copied by
    a bind of it, cleared by a remount without it; one the options made
    may not be remounted exec (EPERM, as Linux's MNT_LOCK_NOEXEC)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    script = f"""
mkdir -p /m1 /m2
mount -t tmpfs -o noexec tmpfs /m1 && cp /bin/true /m1/t && /m1/t; echo "noexec $?"
mount --bind /m1 /m2 && /m2/t; echo "bind $?"
mount -o remount,bind,exec /m2 && /m2/t; echo "remounted exec $?"
mount -o remount,bind,exec {locked} 2>/dev/null; echo "locked $?"
grep -E ' (/m1|/m2|{locked}) ' /proc/self/mountinfo | cut -d' ' -f5,6
"""
    p = run_umlpy(["sh", "-c", script], options=[f"--tmpfs={locked}:noexec"])
    assert p.stdout.decode().splitlines() == [
        "noexec 126", "bind 126", "remounted exec 0", "locked 32",
        f"{locked} rw,noexec", "/m1 rw,noexec", "/m2 rw"], p.stderr


@needs_root
def test_noexec_dev_mqueue_holds_for_the_guests_mount_there():
    """umlpy has no mqueue mount of its own: the one a container's init
    makes at /dev/mqueue is noexec when --noexec names it."""
    script = ("mount -t mqueue mqueue /dev/mqueue; mkdir -p /q; mount -t mqueue m /q; "
              "grep mqueue /proc/self/mountinfo | cut -d' ' -f5,6")
    p = run_umlpy(["sh", "-c", script], options=["--noexec=/dev/mqueue"])
    assert p.stdout.decode().splitlines() == ["/dev/mqueue rw,noexec", "/q rw"], p.stderr
