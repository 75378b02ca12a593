"""Shared fixtures: guest programs built from C at test time, and runners
that execute the same command natively and inside umlpy."""
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUEST_SRC = Path(__file__).resolve().parent / "guest"
UMLPY = [sys.executable, "-m", "umlpy"]
MODES = ["default", "trace-all"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def shell_status(returncode):
    """subprocess reports death by signal N as -N; a shell (and umlpy) as 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def open_up(path):
    """Let uid 65534 (the guest's host identity when umlpy runs as root)
    reach path: pytest's base temp dirs are 0700."""
    path = Path(path)
    for p in [path, *path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o755)


def write_tiny_image(image, files, extra_dirs=()):
    """A tar image of a root that holds none of the host's files: the usual
    top directories, /tmp, an /etc/hostname, and files {path: bytes}
    (executable)."""
    import io
    import tarfile

    def add(tar, name, data=None, mode=0o755):
        info = tarfile.TarInfo(name)
        info.type = tarfile.REGTYPE if data is not None else tarfile.DIRTYPE
        info.mode = mode
        info.mtime = 1_600_000_000
        if data is not None:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    with tarfile.open(image, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "mnt", *extra_dirs, "proc", "dev", "sys", "root"):
            add(tar, d)
        add(tar, "tmp", mode=0o1777)
        for name, data in files.items():
            add(tar, name, data)
        add(tar, "etc/hostname", b"umlpy-image\n", mode=0o644)
    os.chmod(image, 0o644)


def busybox_rootfs(prefix):
    """A busybox root (rootfs/make-busybox-rootfs.sh) in a new directory of
    /tmp that others may search (uid 65534's tests and, as root, the
    sandbox's own ids pass through it); a generator for fixtures: yields
    the root, removes it all after."""
    import pathlib
    import shutil
    import tempfile
    import pytest
    if not shutil.which("busybox"):
        pytest.skip("busybox-static not installed")
    top = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(top, 0o755)
    root = top / "rootfs"
    subprocess.run(["sh", str(ROOT / "rootfs" / "make-busybox-rootfs.sh"), str(root)],
                   check=True, capture_output=True)
    for d in [top, *root.rglob("*")]:
        if d.is_dir() and not d.is_symlink():
            os.chmod(d, os.stat(d).st_mode | 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run_native(argv, timeout=120, **kw):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    p.returncode = shell_status(p.returncode)
    return p


# As root, umlpy makes the guest nobody on the host unless --host-root.
# Comparisons with native runs (and guest programs built in root's private
# temp dirs) need the same credentials inside as outside, so tests keep
# host root unless they test the drop itself (host_root=False).
AS_ROOT = os.geteuid() == 0


def umlpy_argv(argv, mode="default", options=(), host_root=True):
    extra = ["--trace-all"] if mode == "trace-all" else []
    if host_root and AS_ROOT:
        extra.append("--host-root")
    return UMLPY + ["run", *extra, *options, "--", *argv]


def run_umlpy(argv, mode="default", options=(), timeout=120, host_root=True, **kw):
    kw.setdefault("env", _env())
    return subprocess.run(umlpy_argv(argv, mode, options, host_root), capture_output=True,
                          timeout=timeout, **kw)


Counts = collections.namedtuple("Counts", "status hits misses entries served handed")


def run_in_kernel(argv, timeout=300):
    """argv run by a GuestKernel of its own in a fresh interpreter (its
    counters are read in-process): the CompletedProcess, whose stdout is
    the guest's, and Counts: the exit status, the path cache's hits, misses
    and entries, the calls served in C and handed to Python at the
    listener."""
    code = ("import sys\nfrom umlpy.kernel import GuestKernel\nk = GuestKernel()\n"
            f"k.spawn({list(argv)!r})\nstatus = k.run()\n"
            "n = k.notifications.counts() if k.notifications else (0, 0)\n"
            "print('UMLPY-COUNTS', status, *k.fastpath.counts(), *n, file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(),
                       timeout=timeout)
    found = re.search(rb"UMLPY-COUNTS (-?\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", p.stderr)
    assert found, p.stderr.decode()[-2000:]
    return p, Counts(*map(int, found.groups()))


def assert_same(argv, mode, timeout=120, compare_stderr=True, **kw):
    """Run argv natively and inside umlpy: output and status must agree."""
    native = run_native(argv, timeout=timeout, **kw)
    inside = run_umlpy(argv, mode, timeout=timeout, **kw)
    assert inside.stdout == native.stdout, (inside.stdout[-2000:], inside.stderr[-2000:])
    if compare_stderr:
        assert inside.stderr == native.stderr
    assert inside.returncode == native.returncode, inside.stderr[-2000:]
    return native, inside


def wait_for(predicate, timeout=10.0):
    """Whether predicate() became true within timeout seconds (polled)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def read_pty(fd, timeout=30):
    """What a pty master gives until every slave is closed (EIO) or
    timeout seconds pass."""
    import select
    import time
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    return out


def pytest_configure(config):
    """Job-control tests need a process group that is not orphaned: there
    Linux discards SIGTSTP/SIGTTIN/SIGTTOU (natively too).  A non-interactive
    shell leaves its commands in its own group, which is orphaned when it
    leads a session (as CI runners often make it); a group of our own, whose
    parent is in the session, is not."""
    if os.getpgrp() == os.getsid(0) and os.getpid() != os.getsid(0):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


class GuestPrograms:
    """Compiles tests/guest/NAME.c on first use, static or dynamic."""

    def __init__(self, outdir):
        self.outdir = Path(outdir)
        os.chmod(self.outdir, 0o755)

    def __call__(self, name, static=False):
        out = self.outdir / (name + ("-static" if static else ""))
        if not out.exists():
            cmd = ["gcc", "-O2", "-Wall", "-o", str(out), str(GUEST_SRC / (name + ".c")),
                   "-pthread"]
            if static:
                cmd.insert(1, "-static")
            subprocess.run(cmd, check=True, capture_output=True)
        return str(out)


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the guest test programs")
    return GuestPrograms(tmp_path_factory.mktemp("guest-bin"))
