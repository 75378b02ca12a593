"""umlpy as an ordinary user (uid 65534), as most users will run it."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="module")
def nobody_umlpy(tmp_path_factory):
    """A copy of the package (with its built extension) nobody can read,
    and an interpreter nobody can run."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the rest of the suite covers it")
    if not shutil.which("setpriv"):
        pytest.fail("setpriv (util-linux) is needed")
    probe = subprocess.run(NOBODY + [sys.executable, "-c", "import cffi, ptrace"],
                           capture_output=True)
    if probe.returncode != 0:
        msg = (f"{sys.executable} cannot import cffi and ptrace as uid 65534; "
               "install into a venv outside /root (as .ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    where = tmp_path_factory.mktemp("nobody")
    shutil.copytree(ROOT / "umlpy", where / "umlpy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.o"))
    for d in [where, *where.rglob("*")]:
        os.chmod(d, 0o755 if d.is_dir() else 0o644)
    os.chmod(where.parent, 0o755)
    os.chmod(where.parent.parent, 0o755)
    return where


def run_as_nobody(where, *args, **kw):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(where),
           "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    return subprocess.run(NOBODY + [sys.executable, "-m", "umlpy", *args],
                          capture_output=True, env=env, cwd="/", timeout=120, **kw)


@pytest.mark.parametrize("mode", [[], ["--trace-all"]], ids=["default", "trace-all"])
def test_unprivileged_run(nobody_umlpy, mode):
    script = "id -u; echo hi | tr a-z A-Z; sh -c 'exit 3'; echo $?; ls /root 2>/dev/null; exit 5"
    p = run_as_nobody(nobody_umlpy, "run", *mode, "--", "sh", "-c", script)
    assert p.stdout == b"65534\nHI\n3\n", p.stderr
    assert p.returncode == 5


def test_unprivileged_rootfs_uses_a_user_namespace(nobody_umlpy, tmp_path):
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("busybox-static not installed")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    os.symlink("busybox", root / "bin" / "sh")
    for d in (tmp_path, root, root / "bin"):
        os.chmod(d, 0o755)
    p = run_as_nobody(nobody_umlpy, "run", "--rootfs", str(root), "--",
                      "/bin/sh", "-c", "echo in-root; busybox ls /")
    if b"user namespace" in p.stderr:
        pytest.skip("unprivileged user namespaces are disabled on this host")
    assert p.stdout == b"in-root\nbin\ndev\nproc\nsys\n", p.stderr
    assert p.returncode == 0


def test_unprivileged_working_directory(nobody_umlpy, guest, tmp_path):
    """tests/guest/cwd_probe.c as nobody, natively and inside: chdir,
    fchdir and getcwd served in C and in Python, a moved and a removed cwd."""
    os.chmod(tmp_path, 0o755)
    base = tmp_path / "base"
    base.mkdir(mode=0o777)
    os.chmod(base, 0o777)
    probe = guest("cwd_probe")
    native = subprocess.run(NOBODY + [probe, str(base)], capture_output=True, timeout=120)
    assert native.returncode == 0, native.stderr
    for entry in base.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    p = run_as_nobody(nobody_umlpy, "run", "--", probe, str(base))
    assert p.stdout.decode().splitlines() == native.stdout.decode().splitlines(), p.stderr
    assert p.returncode == 0
