"""As root, the guest's host ids are a block of the sandbox's own, which
cannot search a directory closed to others (a container engine's 0700
storage, where its containers' roots and /etc/hosts live).  umlpy then
reaches the root and each bind through a mount of its own in the state
directory (an idmapped one where the filesystem allows it, else the
object as it is), in umlpy's private mount namespace."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import AS_ROOT, ROOT, UMLPY

pytestmark = pytest.mark.skipif(not AS_ROOT or not shutil.which("busybox"),
                                reason="the guest is nobody outside only when root runs umlpy")


@pytest.fixture
def closed():
    """A 0700 directory holding a busybox root and a file to bind."""
    top = tempfile.mkdtemp(prefix="umlpy-test-closed-", dir="/tmp")
    os.chmod(top, 0o700)
    root = os.path.join(top, "rootfs")
    subprocess.run(["sh", str(ROOT / "rootfs" / "make-busybox-rootfs.sh"), root],
                   check=True, capture_output=True)
    with open(os.path.join(top, "hosts"), "w") as f:
        f.write("10.1.2.3 closed-host\n")
    os.mkdir(os.path.join(top, "data"), 0o755)
    with open(os.path.join(top, "data", "f"), "w") as f:
        f.write("in a closed directory\n")
    yield top, root
    shutil.rmtree(top, ignore_errors=True)


def test_a_root_and_binds_below_a_closed_directory(closed):
    top, root = closed
    p = subprocess.run(UMLPY + ["run", "--rootfs", root,
                                "--bind", f"{top}/hosts:/etc/hosts:ro",
                                "--bind", f"{top}/data:/data", "--", "/bin/sh", "-c",
                                "cat /etc/hosts /data/f; echo new > /data/g; id -u"],
                       capture_output=True, timeout=120, cwd="/")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"10.1.2.3 closed-host\nin a closed directory\n0\n"
    # a writable bind writes through to the host's directory
    with open(os.path.join(top, "data", "g")) as f:
        assert f.read() == "new\n"
    # nothing of umlpy's mounts outlives it, on the host or in the state
    with open("/proc/self/mountinfo") as f:
        assert top not in f.read()


def test_a_named_sandbox_reaches_a_closed_root(closed, tmp_path):
    """The daemon enters its own mount namespace before it has threads,
    so a directory root is mounted for it as for umlpy run."""
    top, root = closed
    registry = tempfile.mkdtemp(prefix="umlpy-test-reg-", dir="/tmp")
    os.chmod(registry, 0o711)
    env = {**os.environ, "UMLPY_REGISTRY": registry}
    try:
        for words in (["create", "closed", "--rootfs", root], ["start", "closed"]):
            p = subprocess.run(UMLPY + words, capture_output=True, timeout=60, env=env, cwd="/")
            assert p.returncode == 0, p.stderr
        p = subprocess.run(UMLPY + ["exec", "closed", "--", "/bin/sh", "-c", "echo inside"],
                           capture_output=True, timeout=60, env=env, cwd="/")
        assert (p.returncode, p.stdout) == (0, b"inside\n"), p.stderr
    finally:
        subprocess.run(UMLPY + ["rm", "-f", "closed"], capture_output=True, timeout=60,
                       env=env, cwd="/")
        shutil.rmtree(registry, ignore_errors=True)
