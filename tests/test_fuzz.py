"""A syscall fuzzer inside the sandbox (tests/guest/fuzz.c): random calls
with random and crafted arguments, half of them the calls the guest
kernel's Python handlers decide.  The tracer must neither crash nor hang,
nothing outside the sandbox may change, and no process may outlive it.

Regression seeds: every crash the fuzzer found is pinned by the seed and
worker that found it (test_regression_*), run for a few seconds each."""
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import _env, umlpy_argv
from umlpy.kernel.syscalls import TABLE
from umlpy.kernel.syscalls.registry import Support

FUZZ_SECONDS = int(os.environ.get("UMLPY_FUZZ_SECONDS", "150"))


def decided_calls():
    return ",".join(str(e.nr) for e in TABLE
                    if e.support in (Support.EMULATED, Support.GUARDED))


def tree_digest(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            h.update(p.encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def fuzz(guest, tmp_path, seed, seconds, options=()):
    marker_dir = tmp_path / "outside"
    marker_dir.mkdir()
    (marker_dir / "marker").write_text("must not change\n")
    os.chmod(marker_dir, 0o777)
    before = tree_digest(marker_dir)
    # the guest is nobody on the host: its program must be where nobody reaches
    os.chmod(tmp_path, 0o755)
    prog = str(tmp_path / "fuzz")
    shutil.copy(guest("fuzz", static=True), prog)
    parent = tmp_path.parent
    while str(parent).startswith(tempfile.gettempdir() + "/") and parent != parent.parent:
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
        parent = parent.parent
    env = dict(_env(), FUZZ_NRS=decided_calls(), UMLPY_FUZZ_TAG=f"umlpy-fuzz-{os.getpid()}")
    argv = umlpy_argv([prog, str(seed), str(seconds)], options=list(options), host_root=False)
    p = subprocess.run(argv, capture_output=True, timeout=seconds + 120, env=env,
                       stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    # the fuzzer's own summary (workers also scribble on stdout and stderr)
    assert f"fuzz done seed={seed}" in out, (out[-1000:], err[-3000:])
    assert "Traceback" not in err and "internal error" not in err, err[-3000:]
    assert p.returncode == 0, err[-3000:]
    assert tree_digest(marker_dir) == before
    assert sorted(os.listdir(marker_dir)) == ["marker"]
    survivors = subprocess.run(["pgrep", "-f", f"{prog} {seed} "], capture_output=True)
    assert survivors.stdout == b"", "a guest process outlived its sandbox"


@pytest.mark.slow
def test_fuzzer_for_minutes(guest, tmp_path):
    fuzz(guest, tmp_path, seed=int(os.environ.get("UMLPY_FUZZ_SEED", "20261127")),
         seconds=FUZZ_SECONDS)


@pytest.mark.parametrize("seed", [
    2,          # sendmmsg with a vector running into unmapped memory
])
def test_regression_seeds(guest, tmp_path, seed):
    fuzz(guest, tmp_path, seed=seed, seconds=5)
