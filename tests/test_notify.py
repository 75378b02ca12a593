"""Opens made by the guest kernel (umlpy/kernel/notify.py): the filter sends
open, openat and creat (without O_PATH) to the seccomp listener; the guest
kernel opens the host object itself and installs the fd in the caller.

The strongest checks run tests/guest/open_probe.c natively and inside and
compare; the others look at the mechanism itself: no open is handed back
to the guest as a rewritten call, signals in the middle of a create do not
repeat it, a FIFO's open waits on its own thread, a hook still sees opens
at a ptrace stop, and a guest cannot take the listener's place."""
import os
import subprocess
import sys
import time

import pytest

from conftest import AS_ROOT, ROOT, open_up, run_native, run_umlpy
from umlpy.kernel import GuestKernel
from umlpy.kernel.syscalls.names import SYSCALL_NUMBERS as NR

NOBODY_ENV = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _scratch(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o777)
    return d


def _same(argv, mode, tmp_path, fresh=None):
    """argv natively, then inside: the same output and status (fresh(): put
    the scratch directory back as it was between the runs)."""
    native = run_native(argv)
    if fresh:
        fresh()
    inside = run_umlpy(argv, mode)
    assert inside.stderr == native.stderr, inside.stderr
    assert inside.stdout == native.stdout
    assert inside.returncode == native.returncode
    return inside.stdout.decode()


def test_creates_interrupted_by_signals_happen_once(guest, mode, tmp_path):
    """Each O_CREAT|O_EXCL succeeds exactly once while a 200 us interval
    timer interrupts the caller (SA_RESTART): a call abandoned by a signal
    and made again would find its own file (EEXIST)."""
    work = _scratch(tmp_path)

    def fresh():
        for f in work.iterdir():
            f.unlink()
    out = _same([guest("open_probe"), "excl", str(work), "1000", "200"], mode, tmp_path, fresh)
    assert out == "created=1000 eexist=0 other=0\n"


def test_fifo_opens_wait_for_the_other_end(guest, mode, tmp_path):
    """A FIFO's open blocks until the other end opens, whichever comes
    first; O_NONBLOCK opens do not wait (a lone writer gets ENXIO)."""
    work = _scratch(tmp_path)
    out = _same([guest("open_probe"), "fifo", str(work)], mode, tmp_path)
    assert out.count("through the fifo") == 2


def test_fifo_reader_closed_leaves_no_reader(guest, mode, tmp_path):
    """The guest kernel's own copy of an installed FIFO is closed before
    the guest runs on: after the reader's close, a lone O_NONBLOCK writer
    meets ENXIO every time (with the number sent together with the
    install, a writer opened a few times in 3000 on two CPUs)."""
    work = _scratch(tmp_path)
    out = _same([guest("open_probe"), "fifo-race", str(work), "3000"], mode, tmp_path)
    assert out == "lone writers that opened: 0\n"


@pytest.mark.parametrize("probe", ["cloexec", "emfile", "threads", "flags"])
def test_installed_fds_are_as_the_guest_asked(guest, mode, probe):
    """O_CLOEXEC and the status flags as asked, the caller's own
    RLIMIT_NOFILE (the fd is installed in its table), and two threads
    opening at once each get their own file."""
    args = ["threads", "3000"] if probe == "threads" else [probe]
    _same([guest("open_probe"), *args], mode, None)


def test_umask_applies_to_files_the_guest_kernel_creates(guest, mode, tmp_path):
    work = _scratch(tmp_path)
    out = _same([guest("open_probe"), "umask", str(work)], mode, tmp_path,
                lambda: (work / "masked").unlink())
    assert out.startswith("mode 640")


def test_pipe_reopened_through_proc_self_fd(mode):
    argv = ["sh", "-c", "echo via-proc | cat /proc/self/fd/0; echo via-dev | cat /dev/stdin"]
    _same(argv, mode, None)


def _kernel_run(argv, hook=None):
    kernel = GuestKernel()
    rewrites = []
    set_syscall = kernel.tracer.set_syscall

    def recording(tid, nr, args):
        rewrites.append(nr)
        return set_syscall(tid, nr, args)
    kernel.tracer.set_syscall = recording
    if hook is not None:
        kernel.hook("openat")(hook)
    kernel.spawn(argv)
    status = kernel.run()
    return kernel, status, rewrites


def test_no_open_is_handed_back_to_the_guest(tmp_path):
    """Every open reaches the listener and is made by the guest kernel: no
    call is rewritten to openat2 (a host path the guest's process would
    resolve), and the notification server answered them."""
    open_up(tmp_path)
    os.chmod(tmp_path, 0o777)
    out = tmp_path / "out"
    kernel, status, rewrites = _kernel_run(
        ["sh", "-c", f"cat /etc/hostname /etc/passwd > /dev/null; : > {out}.x; "
                     f"python3 -c 'open(\"/etc/hostname\").read()'"])
    assert status == 0
    assert NR["openat2"] not in rewrites and NR["openat"] not in rewrites, rewrites
    served, handed = kernel.notifications.counts()
    assert handed > 0
    assert served + handed >= 5


def test_a_hook_on_openat_still_sees_it_at_a_ptrace_stop():
    seen = []

    def hook(call):
        seen.append(call.notified)
        return None
    kernel, status, rewrites = _kernel_run(["cat", "/etc/hostname"], hook)
    assert status == 0
    assert seen and not any(seen)
    assert NR["openat"] not in kernel._notified


def test_a_guest_cannot_take_the_listeners_place(guest):
    """A second listener is refused inside (natively the guest would get
    one); a filter of the guest's own that allows everything leaves its
    opens with the guest kernel."""
    kernel = GuestKernel()
    prog = guest("open_probe")
    open_up(os.path.dirname(prog))
    kernel.spawn([prog, "listener"])
    # the output goes to our stdout: count the opens the guest kernel made
    status = kernel.run()
    assert status == 0
    served, handed = kernel.notifications.counts()
    assert handed >= 1
    p = run_umlpy([guest("open_probe"), "listener"])
    lines = p.stdout.decode().splitlines()
    assert lines[0] != "listener: got one"
    assert lines[2] == "open after it: opened"


def test_proc_entries_of_umlpy_itself_are_refused():
    """The guest kernel's own threads pass procfs's same-process checks on
    umlpy's /proc entries: a guest naming them (with --pid-host it sees
    the host's /proc) must get what an outsider gets."""
    p = run_umlpy(["sh", "-c", "cat /proc/$PPID/environ > /dev/null; echo $?; "
                   "ls /proc/$PPID/fd > /dev/null 2>&1; echo listed $?"],
                  options=["--pid-host"], host_root=False)
    # $PPID of the first process is umlpy itself with --pid-host
    assert p.stdout.decode().splitlines()[0] != "0"


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run as uid 65534")
def test_ordinary_user_path(guest, tmp_path):
    """Unprivileged, the listener and the guest kernel's opens work the
    same (the guest kernel is that user already)."""
    work = _scratch(tmp_path)
    prog = guest("open_probe")
    open_up(os.path.dirname(prog))
    open_up(work)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-m", "umlpy", "run", "--", prog, "excl", str(work),
                        "500", "200"], capture_output=True, env=NOBODY_ENV, cwd="/", timeout=120)
    if b"No module named" in p.stderr:
        pytest.skip("uid 65534 cannot import umlpy from here")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"created=500 eexist=0 other=0\n"


def test_proc_opened_by_the_guest_kernel_is_the_guests():
    """The guest's /proc is a procfs mount of its own pid namespace: a
    notified open of /proc/1/... must reach the guest's pid 1, never the
    host's (the guest kernel opens in the host's mount namespace)."""
    script = "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc/1/fd | wc -l"
    p = run_umlpy(["sh", "-c", script], host_root=False)
    lines = p.stdout.decode().splitlines()
    assert lines[0] == f"sh -c {script} ", p.stderr
    assert 0 < int(lines[1]) < 20


def test_guest_threads_on_two_cpus_are_served_on_both(guest):
    """A server per CPU: a stat-heavy guest with a thread on each of two
    CPUs gets its calls answered by both servers (each woken on its
    caller's CPU), not queued behind one."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    prog = guest("stat_threads")
    open_up(os.path.dirname(prog))
    code = (f"from umlpy.kernel import GuestKernel\n"
            f"k = GuestKernel()\n"
            f"k.spawn([{prog!r}, '{cpus[0]}', '{cpus[1]}', '20000'])\n"
            f"k.run()\n"
            f"print(*[n.counts()[0] for n in k.notifications.notifiers])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 0, p.stderr
    total, *served = map(int, p.stdout.split())
    assert total == 40000
    assert len(served) == 2
    assert min(served) > 1000, served



def test_servers_rest_once_no_guest_is_left():
    """Once the last guest process is gone, a receive on the listener
    fails at once, again and again: the servers must notice (POLLHUP) and
    stop, not spin on both CPUs until the sandbox is torn down (they did:
    about 40,000 empty receives in the 10 ms before the teardown, which
    they delayed)."""
    kernel = GuestKernel()
    kernel.spawn(["/bin/true"])
    stop = None

    def late_stop():
        time.sleep(0.3)         # a teardown that takes its time
        stop()
    servers = []
    real_start = kernel._start_notifications

    def start(*args):
        nonlocal stop
        real_start(*args)
        servers.append(kernel.notifications)
        stop = kernel.notifications.stop
        kernel.notifications.stop = late_stop
    kernel._start_notifications = start
    assert kernel.run() == 0
    assert servers, "the listener was never served"
    assert servers[0].empty_receives() < 100
