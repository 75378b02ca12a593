"""The same programs natively and inside umlpy: same output, same status."""
import os
import shutil

import pytest

from conftest import assert_same, run_native, run_umlpy


def test_exit_statuses(mode):
    for code in (0, 1, 7, 255):
        assert_same(["sh", "-c", f"echo out; echo err >&2; exit {code}"], mode)


def test_shell_pipeline(mode):
    script = ("printf 'pear\\napple\\nfig\\napple\\n' | sort | uniq -c | sort -rn | head -2;"
              "seq 1 2000 | tr 0-9 a-j | grep -c b | wc -l;"
              "echo $(echo nested $(echo deep)) | cat | cat | cat")
    assert_same(["sh", "-c", script], mode)


def test_shell_loop_spawns_300_processes(mode):
    script = "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done; echo $i"
    native, inside = assert_same(["sh", "-c", script], mode, timeout=300)
    assert inside.stdout == b"300\n"


def test_coreutils(mode):
    assert_same(["sh", "-c", "ls -la /usr/include/stdio.h; cat /etc/hostname; "
                             "head -c 100 /etc/services | md5sum; date -d @0 -u"], mode)


def test_stdin_passes_through(mode):
    data = os.urandom(200000).hex().encode()
    native, inside = assert_same(["sh", "-c", "cat | sha256sum"], mode, input=data)
    assert len(inside.stdout) > 64


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_16_pthreads(guest, mode, static):
    native, inside = assert_same([guest("threads", static)], mode)
    assert b"counter 160" in inside.stdout


@pytest.mark.parametrize("sig", [9, 10, 15])
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_kill_self(guest, mode, sig, static):
    native, inside = assert_same([guest("kill_self", static), str(sig)], mode)
    assert inside.returncode == 128 + sig


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_sigchld_handler_loses_nothing(guest, mode, static):
    native, inside = assert_same([guest("sigchld", static)], mode, timeout=60)
    assert inside.stdout.startswith(b"reaped 50 children")


def test_sa_restart(guest, mode):
    native, inside = assert_same([guest("sa_restart")], mode)
    assert b"SA_RESTART: read 4 bytes" in inside.stdout
    assert b"no SA_RESTART: read failed: Interrupted system call" in inside.stdout


def test_stop_continue_and_kill_a_child(guest, mode):
    native, inside = assert_same([guest("jobctl")], mode)
    assert inside.stdout.count(b"continued") == 2


def test_unknown_and_foreign_abi_syscalls_fail_as_on_linux(guest, mode):
    native, inside = assert_same([guest("probe_syscalls", static=True)], mode)
    assert b"syscall(470) -> -1 (ENOSYS)" in inside.stdout


def test_python_subprocess_and_threading(mode):
    code = (
        "import subprocess, threading, sys\n"
        "out = []\n"
        "def work(i):\n"
        "    r = subprocess.run(['sh', '-c', 'echo child %d; exit %d' % (i, i)],"
        " capture_output=True)\n"
        "    out.append((i, r.stdout.decode().strip(), r.returncode))\n"
        "ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "for row in sorted(out): print(*row)\n"
        "sys.exit(5)\n")
    native, inside = assert_same(["python3", "-c", code], mode)
    assert inside.returncode == 5 and b"child 7" in inside.stdout


@pytest.mark.slow
def test_gcc_compiles_and_runs_inside(tmp_path, mode):
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\n#include <math.h>\n'
                   'int main(int c, char **v) { printf("hello %d %.3f\\n", c, sqrt(2.0));'
                   ' return 3; }\n')
    exe = tmp_path / "hello"
    script = f"gcc -O1 -o {exe} {src} -lm && {exe} a b"
    # the guest's writes stay in its upper layer unless the directory is bound
    inside = run_umlpy(["sh", "-c", script], mode, timeout=300,
                       options=["--bind", f"{tmp_path}:{tmp_path}"])
    assert inside.stdout == b"hello 3 1.414\n", inside.stderr
    assert inside.returncode == 3
    native = run_native([str(exe), "a", "b"])
    assert native.stdout == inside.stdout


def test_environment_and_working_directory(tmp_path, mode):
    (tmp_path / "marker").write_text("x")
    p = run_umlpy(["sh", "-c", "echo $GREETING; pwd; ls"], mode,
                  options=["-e", "GREETING=hello world", "-C", str(tmp_path)])
    assert p.stdout == f"hello world\n{tmp_path}\nmarker\n".encode()
    assert p.returncode == 0


def test_every_descendant_stays_traced(mode):
    # --pid-host: in its own pid namespace the guest cannot see its tracer
    script = ("sh -c 'sh -c \"grep TracerPid /proc/self/status\"' & wait;"
              "grep TracerPid /proc/self/status")
    p = run_umlpy(["sh", "-c", script], mode, options=["--pid-host"])
    lines = p.stdout.decode().split("\n")
    tracers = [line.split()[1] for line in lines if line.startswith("TracerPid")]
    assert len(tracers) == 2 and "0" not in tracers, p.stdout


def test_clone_untraced_cannot_escape(guest, mode):
    p = run_umlpy([guest("untraced_clone")], mode, options=["--pid-host"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"child TracerPid:")
    assert p.stdout.split()[-1] != b"0", "a CLONE_UNTRACED child escaped tracing"
    native = run_native([guest("untraced_clone")])
    assert native.stdout.split()[-1] == b"0"


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox-static not installed")
def test_rootfs_directory(tmp_path, mode):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("inside the rootfs\n")
    shutil.copy(shutil.which("busybox"), root / "bin" / "busybox")
    for tool in ("sh", "cat", "ls"):
        os.symlink("busybox", root / "bin" / tool)
    os.chmod(tmp_path, 0o755)
    p = run_umlpy(["sh", "-c", "cat /etc/motd; ls /; pwd"], mode,
                  options=["--rootfs", str(root)])
    # /dev, /proc and /sys are the guest kernel's, whatever the image has
    assert p.stdout == b"inside the rootfs\nbin\ndev\netc\nproc\nsys\n/\n", p.stderr
    assert p.returncode == 0


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_execve_from_a_non_leader_thread(guest, mode, static):
    native, inside = assert_same([guest("thread_exec", static)], mode)
    assert inside.stdout == b"exec from thread\nsame pid\n"
