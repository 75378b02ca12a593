"""State directories of runs that died without removing them (issue 13):
every start sweeps those whose run is gone, never a live run's, never
through a mount."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import AS_ROOT, _env, run_umlpy, umlpy_argv

from umlpy.kernel.vfs import statedirs
from umlpy.kernel.vfs.build import state_root
from umlpy.kernel.vfs.tmpdirs import make_private_dir


def test_sweep_takes_only_dead_runs_dirs(tmp_path):
    root = str(tmp_path / "umlpy-state")
    os.mkdir(root)
    dead, lock = statedirs.claim(root)
    with open(os.path.join(dead, "file"), "w") as f:
        f.write("left behind\n")
    os.makedirs(os.path.join(dead, "upper", "deep", "er"))
    os.symlink("/etc", os.path.join(dead, "upper", "etc"))
    os.close(lock)                               # its run died
    live, live_lock = statedirs.claim(root)      # claim swept the dead one already
    assert not os.path.exists(dead) and os.path.isdir(live)
    older = make_private_dir(root)               # an older umlpy's: no lock, never swept
    assert statedirs.sweep(root) == 0
    assert os.path.isdir(live) and os.path.isdir(older) and os.path.isdir("/etc")
    os.close(live_lock)
    assert statedirs.sweep(root) == 1 and not os.path.exists(live)


@pytest.mark.skipif(not AS_ROOT, reason="needs root to mount")
def test_sweep_never_reaches_through_a_mount(tmp_path):
    """A dead run's directory with something mounted in it (an idmapped
    --rootfs still showing) is left whole, and the mounted files too."""
    root = str(tmp_path / "umlpy-state")
    os.mkdir(root)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("mine\n")
    dead, lock = statedirs.claim(root)
    target = os.path.join(dead, "rootfs")
    os.mkdir(target)
    subprocess.run(["mount", "--bind", str(precious), target], check=True)
    try:
        os.close(lock)
        assert statedirs.sweep(root) == 0
        assert (precious / "keep").read_text() == "mine\n"
        assert os.path.isdir(dead)
    finally:
        subprocess.run(["umount", target], check=True)
    assert statedirs.sweep(root) == 1 and not os.path.exists(dead)
    assert (precious / "keep").read_text() == "mine\n"


def _state_dir_of(pid, timeout=30):
    """The state directory of the umlpy process pid (its fds show it)."""
    pattern = re.compile(re.escape(state_root()) + r"/([0-9a-f]{12})(/|$)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    found = pattern.match(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    continue
                if found:
                    return os.path.join(state_root(), found.group(1))
        except FileNotFoundError:
            break
        time.sleep(0.05)
    raise AssertionError(f"no state directory for {pid}")


def _sandbox():
    return subprocess.Popen(umlpy_argv(["sleep", "60"]), env=_env(), start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_a_killed_runs_state_is_swept_by_the_next(tmp_path):
    killed, alive = _sandbox(), _sandbox()
    try:
        gone, kept = _state_dir_of(killed.pid), _state_dir_of(alive.pid)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        assert os.path.isdir(gone)                  # SIGKILL leaves it
        p = run_umlpy(["true"])
        assert p.returncode == 0, p.stderr
        assert not os.path.exists(gone)
        assert os.path.isdir(kept) and os.path.isdir(os.path.join(kept, "upper"))
        assert alive.poll() is None
    finally:
        for p in (killed, alive):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    run_umlpy(["true"])
    assert not os.path.exists(kept)
