"""The machine as the sandbox shows it (umlpy/kernel/sysview.py):
sysinfo(2) and /proc/meminfo carry the sandbox's start, its threads and,
with --memory, its limit and the guests' own memory, and free(1) adds up.
(Before, /proc/meminfo was never capped, since the limit never reached
it, and capped naively free printed a used count near 2^54.)"""
import shutil
import subprocess

import pytest

from conftest import run_native, run_umlpy

MIB = 1024 * 1024


def fields(line):
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split())}


def test_sysinfo_counts_from_the_sandbox(guest):
    probe = guest("sysinfo_probe")
    native = fields(run_native([probe]).stdout.decode())
    p = run_umlpy([probe])
    assert p.returncode == 0, p.stderr
    inside = fields(p.stdout.decode())
    assert inside["uptime"] <= 5 < native["uptime"] or native["uptime"] <= 5
    assert 1 <= inside["procs"] <= 4
    assert inside["totalram"] == native["totalram"]     # no limit: the host's memory


def test_sysinfo_with_a_memory_limit(guest):
    p = run_umlpy([guest("sysinfo_probe")], options=["--memory", "256M"])
    assert p.returncode == 0, p.stderr
    inside = fields(p.stdout.decode())
    assert inside["totalram"] == 256 * MIB
    assert 0 < inside["freeram"] < 256 * MIB
    assert inside["sharedram"] == inside["bufferram"] == 0
    assert inside["totalswap"] == inside["freeswap"] == 0


def _free(p):
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    mem = lines[1].split()
    return dict(zip(["total", "used", "free", "shared", "cache", "available"],
                    map(int, mem[1:7])))


@pytest.mark.skipif(not shutil.which("free"), reason="procps' free is not installed")
def test_free_adds_up_under_a_memory_limit():
    mem = _free(run_umlpy(["free", "-b"], options=["--memory", "256M"]))
    assert mem["total"] == 256 * MIB
    assert 0 < mem["used"] < 64 * MIB
    assert mem["used"] + mem["free"] + mem["cache"] == mem["total"]
    assert mem["available"] <= mem["total"]


@pytest.mark.skipif(not shutil.which("free"), reason="procps' free is not installed")
def test_free_without_a_limit_shows_the_host():
    native = _free(subprocess.run(["free", "-b"], capture_output=True))
    inside = _free(run_umlpy(["free", "-b"]))
    assert inside["total"] == native["total"]
