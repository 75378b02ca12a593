"""/proc files programs write or follow (issue 13, section 4):
/proc/self/oom_score_adj, the namespace links in /proc/self/ns, the time
namespace's offsets."""
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import _env, run_umlpy, umlpy_argv

# a python the guest may run when it is nobody on the host (not one in /root)
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

NS_PROBE = r"""
import os, sys
for name in sorted(os.listdir("/proc/self/ns")):
    path = "/proc/self/ns/" + name
    link = os.readlink(path)
    st = os.stat(path)
    fd = os.open(path, os.O_RDONLY)
    same = os.fstat(fd).st_ino == st.st_ino
    os.close(fd)
    print(name, link, st.st_ino, os.access(path, os.R_OK), os.path.exists(path), same)
"""


def _ns(text):
    return [line.split() for line in text.decode().splitlines()]


@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "user-ns"])
def test_namespace_links_are_followed_as_natively(host_root):
    native = _ns(subprocess.run([PYTHON, "-c", NS_PROBE], capture_output=True,
                                check=True).stdout)
    p = run_umlpy([PYTHON, "-c", NS_PROBE], host_root=host_root)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    inside = _ns(p.stdout)
    assert [row[0] for row in inside] == [row[0] for row in native]
    assert "time_for_children" in [row[0] for row in inside]
    for name, link, ino, readable, exists, same in inside:
        kind = "pid" if name == "pid_for_children" else \
            "time" if name == "time_for_children" else name
        assert re.fullmatch(kind + r":\[(\d+)\]", link), link
        assert link == f"{kind}:[{ino}]"           # the object the link names
        assert (readable, exists, same) == ("True", "True", "True")
    # the sandbox's own pid, mount and network namespaces
    mine = {row[0]: row[1] for row in native}
    theirs = {row[0]: row[1] for row in inside}
    for name in ("pid", "mnt", "net", "ipc"):
        assert theirs[name] != mine[name]



OOM_PROBE = r"""
import os, sys
path = "/proc/self/oom_score_adj"
start = int(open(path).read())
for step in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"%d" % (start + int(step)))
            result = "ok"
        finally:
            os.close(fd)
    except OSError as e:
        result = os.strerror(e.errno)
    print(step, result, int(open(path).read()) - start)
"""
STEPS = ["300", "100", "0", "-1"]


@pytest.mark.skipif(os.geteuid() != 0, reason="compares with root and with nobody")
@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "user-ns"])
def test_oom_score_adj_is_written_as_natively(host_root):
    """Raised, it applies; lowered, it goes as low as Linux lets that user
    (an unprivileged one: no lower than where it started, else EACCES).
    The guest is root on the host with --host-root, else nobody."""
    as_user = [] if host_root else ["setpriv", "--reuid=65534", "--regid=65534",
                                    "--clear-groups"]
    native = subprocess.run(as_user + [PYTHON, "-c", OOM_PROBE, *STEPS],
                            capture_output=True, check=True).stdout
    p = run_umlpy([PYTHON, "-c", OOM_PROBE, *STEPS], host_root=host_root)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout == native
    assert p.stdout.splitlines()[:3] == [b"300 ok 300", b"100 ok 100", b"0 ok 0"]
    if not host_root:
        assert p.stdout.splitlines()[3] == b"-1 Permission denied 0"


def test_oom_score_adj_raised_in_the_sandbox_is_the_host_value():
    with open("/proc/self/oom_score_adj") as f:
        value = int(f.read()) + 123
    if value > 1000:
        pytest.skip("oom_score_adj already near its maximum")
    marker = "7.%d" % (os.getpid() % 1000)
    proc = subprocess.Popen(umlpy_argv(["sh", "-c", f"echo {value} > /proc/self/oom_score_adj"
                                        f" && exec sleep {marker}"]), env=_env())
    try:
        host = None
        for _ in range(100):
            host = _find_process(b"sleep\0" + marker.encode() + b"\0")
            if host is not None:
                break
            time.sleep(0.05)
        assert host is not None
        with open(f"/proc/{host}/oom_score_adj") as f:
            assert int(f.read()) == value
    finally:
        proc.kill()
        proc.wait()


def _find_process(cmdline):
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        return name
            except OSError:
                pass
    return None


RO_PROBE = r"""
import os
for name in ("comm", "mem", "attr/current", "clear_refs"):
    try:
        os.close(os.open("/proc/self/" + name, os.O_WRONLY))
        print(name, "opened")
    except OSError as e:
        print(name, os.strerror(e.errno))
print("oom mounts", sum("oom" in line for line in open("/proc/self/mountinfo")))
"""


def test_the_rest_of_proc_stays_read_only():
    p = run_umlpy([PYTHON, "-c", RO_PROBE])
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout.decode().splitlines() == [
        "comm Read-only file system", "mem Read-only file system",
        "attr/current Read-only file system", "clear_refs Read-only file system",
        "oom mounts 0"]


TIMENS_PROBE = r"""
import os
try:
    fd = os.open("/proc/self/timens_offsets", os.O_WRONLY)
    print("open ok")
    try:
        os.write(fd, b"monotonic 1 0\n")
        print("write ok")
    except OSError as e:
        print("write", os.strerror(e.errno))
except OSError as e:
    print("open", os.strerror(e.errno))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="compares with root and with nobody")
@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "user-ns"])
def test_the_sandboxs_time_namespace_offsets_are_refused_at_the_write(host_root):
    """The sandbox is in the host's time namespace, whose offsets nobody
    may change: Linux opens timens_offsets for writing and refuses the
    write (EPERM without CAP_SYS_TIME over it, EACCES with it: the
    namespace has processes)."""
    as_user = [] if host_root else ["setpriv", "--reuid=65534", "--regid=65534",
                                    "--clear-groups"]
    native = subprocess.run(as_user + [PYTHON, "-c", TIMENS_PROBE],
                            capture_output=True, check=True).stdout
    p = run_umlpy([PYTHON, "-c", TIMENS_PROBE], host_root=host_root)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout == native
    assert p.stdout.startswith(b"open ok\nwrite ")


@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "user-ns"])
def test_a_time_namespace_of_the_guests_own_gets_its_offsets(host_root):
    """The sandbox is in the host's time namespace (its offsets are 0 and
    not the guest's to change: the write is refused); a guest that makes a
    time namespace of its own (unshare --time) sets its offsets, as
    natively, and its children see them."""
    script = ("cat /proc/self/timens_offsets; "
              "(echo 'monotonic 1 0' > /proc/self/timens_offsets) 2>/dev/null || echo refused; "
              "unshare --time --monotonic 1000 --boottime 2000 cat /proc/self/timens_offsets")
    p = run_umlpy(["sh", "-c", script], host_root=host_root)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert [line.split() for line in p.stdout.decode().splitlines()] == [
        ["monotonic", "0", "0"], ["boottime", "0", "0"], ["refused"],
        ["monotonic", "1000", "0"], ["boottime", "2000", "0"]]


@pytest.mark.parametrize("probe", ["oom", "ro"])
def test_proc_writes_in_trace_all_mode(probe):
    if probe == "oom":
        p = run_umlpy([PYTHON, "-c", OOM_PROBE, "200", "0"], mode="trace-all")
        assert p.stdout == b"200 ok 200\n0 ok 0\n", p.stderr.decode()[-800:]
    else:
        p = run_umlpy([PYTHON, "-c", RO_PROBE], mode="trace-all")
        assert b"mem Read-only file system" in p.stdout, p.stderr.decode()[-800:]



def test_writable_proc_files_of_many_processes_keep_the_mount_table_small():
    """Each lookup of a process's oom_score_adj mounts it: a guest that
    looks up those of 600 short-lived processes leaves fewer than 256."""
    code = ("from umlpy.kernel import GuestKernel\nk = GuestKernel()\n"
            "k.spawn(['sh', '-c', 'for i in $(seq 600); do "
            "sh -c \"cat /proc/self/oom_score_adj\" >/dev/null; done'])\n"
            "print(k.run(), len(k.fs.procfs._file_mounts), len(k.fs.mounts.by_path))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(),
                       timeout=300)
    status, files, mounts = map(int, p.stdout.split())
    assert status == 0 and 0 < files < 256 and mounts < files + 20, p.stderr[-800:]
