"""--tmpfs GUEST:size=SIZE and --shm-size: a real tmpfs of that size
where the guest writes (ENOSPC past it, as Linux's tmpfs), owned by guest
root as a tmpfs is its mounter's; guest root changes what it holds by
its capabilities (chown), as on its upper layer."""
import os
import shutil
import subprocess

import pytest

from conftest import AS_ROOT, UMLPY, run_umlpy

pytestmark = pytest.mark.skipif(not shutil.which("busybox"), reason="busybox-static needed")

PROBE = ("head -c 3000000 /dev/zero > {d}/x 2>/dev/null; echo write=$?; "
         "ls -l {d}/x | awk '{{print $5}}'; df -k {d} | tail -1 | awk '{{print $2}}'; "
         "ls -ldn {d} | awk '{{print $3}}'; echo > {d}/f; chown 5:7 {d}/f; "
         "ls -ln {d}/f | awk '{{print $3, $4}}'")


@pytest.mark.skipif(not AS_ROOT, reason="a tmpfs of umlpy's own needs root")
@pytest.mark.parametrize("options, where", [
    (["--tmpfs", "/t:size=1M"], "/t"),
    (["--shm-size", "1M"], "/dev/shm"),
    (["--tmpfs", "/t:noexec,size=1m,ro"], None),
])
def test_a_sized_tmpfs_is_full_at_its_size(options, where):
    if where is None:       # a read-only one: nothing to write, the size still shown
        p = run_umlpy(["busybox", "sh", "-c", "df -k /t | tail -1 | awk '{print $2}'; "
                       "grep ' /t ' /proc/mounts"], options=options, host_root=False)
        assert p.returncode == 0, p.stderr
        assert p.stdout.decode().split()[:1] == ["1024"]
        assert b"ro,noexec" in p.stdout
        return
    p = run_umlpy(["busybox", "sh", "-c", PROBE.format(d=where)], options=options,
                  host_root=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == ["write=1", "1048576", "1024", "0", "5", "7"]
    # nothing of umlpy's mounts outlives it (its state directories are
    # named umlpy-*)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    assert not [p for p in points if "/umlpy-" in p]


@pytest.mark.skipif(not AS_ROOT, reason="root runs umlpy here")
def test_an_unsized_tmpfs_is_guest_roots_and_its_to_chown():
    p = run_umlpy(["busybox", "sh", "-c", "echo > /t/f; chown 5:7 /t/f; ls -ln /t/f | "
                   "awk '{print $3, $4}'; ls -ldn /t | awk '{print $3}'"],
                  options=["--tmpfs", "/t"], host_root=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == ["5", "7", "0"]


@pytest.mark.parametrize("spec, words", [
    ("/t:size=abc", "expected a size"),
    ("/t:size=", "expected a size"),
])
def test_a_bad_size_is_one_line(spec, words):
    p = run_umlpy(["true"], options=["--tmpfs", spec])
    err = p.stderr.decode()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and words in err, err


@pytest.mark.skipif(not AS_ROOT or not shutil.which("setpriv"), reason="runs as uid 65534")
def test_an_ordinary_user_without_subordinate_ids_is_told_in_one_line():
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *UMLPY, "run", "--tmpfs", "/t:size=1M", "--", "true"],
                       capture_output=True, cwd="/", timeout=60,
                       env={**os.environ, "HOME": "/nonexistent"})
    err = p.stderr.decode()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and "root" in err, err
