"""--cpus, --cpu-period, --cpu-shares, --cpuset-cpus, --cpuset-mems and
--cgroup-path: the sandbox's own cgroup (root, cgroup v1 controllers)
holds them, written as asked, placed where asked and removed after;
without such a cgroup the sandbox does not start (nothing else could hold
them), in one line."""
import os
import subprocess
import uuid

import pytest

from conftest import AS_ROOT, UMLPY, run_umlpy

CGROUP_ROOT = "/sys/fs/cgroup"


def v1(controller):
    return os.path.isdir(os.path.join(CGROUP_ROOT, controller)) and \
        os.path.exists(os.path.join(CGROUP_ROOT, controller, "cgroup.procs"))


needs_cgroups = pytest.mark.skipif(not AS_ROOT or not v1("cpu") or not v1("cpuset"),
                                   reason="needs root and cgroup v1's cpu and cpuset")


def own_cgroups(options, probe="cat /proc/self/cgroup; sleep 2"):
    """The guest's cgroup of each controller, read while it runs, and the
    files of its cpu and cpuset cgroups then."""
    p = subprocess.Popen(UMLPY + ["run", *options, "--", "sh", "-c", probe],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        paths = {}
        for _ in range(20):
            line = p.stdout.readline().decode()
            if not line:
                break
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                paths[c] = path
            if "cpu" in paths and "cpuset" in paths and "memory" in paths:
                break
        files = {}
        for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"):
            files[name] = open(f"{CGROUP_ROOT}/cpu{paths['cpu']}/{name}").read().strip()
        for name in ("cpuset.cpus", "cpuset.mems"):
            files[name] = open(f"{CGROUP_ROOT}/cpuset{paths['cpuset']}/{name}").read().strip()
        assert p.wait(30) == 0, p.stderr.read()
        return paths, files
    finally:
        p.kill()
        p.wait()


@needs_cgroups
def test_cpu_controls_are_the_cgroups():
    paths, files = own_cgroups(["--cpus", "0.5", "--cpu-period", "50000", "--cpu-shares",
                                "512", "--cpuset-cpus", "0", "--cpuset-mems", "0"])
    assert files == {"cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "50000",
                     "cpu.shares": "512", "cpuset.cpus": "0", "cpuset.mems": "0"}
    # removed with the sandbox
    assert not os.path.exists(f"{CGROUP_ROOT}/cpu{paths['cpu']}")
    assert not os.path.exists(f"{CGROUP_ROOT}/cpuset{paths['cpuset']}")


@needs_cgroups
def test_cpuset_is_what_the_guest_may_run_on():
    p = run_umlpy(["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
                  options=["--cpuset-cpus", "0"], host_root=False)
    assert (p.returncode, p.stdout) == (0, b"Cpus_allowed_list:\t0\n"), p.stderr


@needs_cgroups
def test_a_cgroup_path_places_the_sandboxs_cgroup():
    name = f"umlpy-test-{uuid.uuid4().hex[:8]}"
    paths, files = own_cgroups(["--cgroup-path", f"/{name}/box", "--cpus", "1",
                                "--memory", "256M"])
    assert paths["cpu"] == f"/{name}/box" and paths["memory"] == f"/{name}/box"
    assert files["cpu.cfs_quota_us"] == "100000"
    # the box goes with the sandbox; its parent, made as an engine's parent
    # is, stays (runc leaves it too)
    assert not os.path.exists(f"{CGROUP_ROOT}/cpu/{name}/box")
    for controller in ("cpu", "memory"):
        os.rmdir(f"{CGROUP_ROOT}/{controller}/{name}")


@pytest.mark.parametrize("words, said", [
    (["--cpus", "abc"], "expected a number of CPUs"),
    (["--cpus", "0"], "from 0.001"),
    (["--cpu-period", "10"], "at least 1000"),
    (["--cpu-shares", "1"], "at least 2"),
    (["--cpuset-cpus", "0-"], "expected a list"),
])
def test_bad_cpu_controls_are_one_line(words, said):
    p = run_umlpy(["true"], options=words)
    err = p.stderr.decode()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and said in err, err


@pytest.mark.skipif(not AS_ROOT, reason="runs umlpy as uid 65534")
def test_without_a_cgroup_the_sandbox_does_not_start():
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *UMLPY, "run", "--cpus", "1", "--", "true"], capture_output=True,
                       cwd="/", timeout=60, env={**os.environ, "HOME": "/nonexistent"})
    err = p.stderr.decode()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and "cgroup" in err, err
