"""The guest kernel as a Python API: hooks, decisions, guest memory and
syscall injection."""
import errno
import os

import pytest

from umlpy.kernel import ALLOW, AllowThen, GuestKernel, Mode, Return, fail
from umlpy.kernel.syscalls.names import number
from umlpy.tracer import TracerError

NR_GETPID = number("getpid")
NR_MMAP = number("mmap")


def run_kernel(kernel, argv):
    kernel.spawn(argv)
    return kernel.run()


def test_hooked_calls_stop_even_in_default_mode(guest, capfd):
    kernel = GuestKernel(Mode.DEFAULT, host_root=True)
    seen = []

    @kernel.hook("getpid")
    def count(call):
        seen.append(call.guest_tid)
        return None         # fall through to the table: passthrough

    assert run_kernel(kernel, [guest("getpids", static=True), "100"]) == 0
    out = capfd.readouterr().out
    pid = int(out.split()[1])
    assert len(seen) == 101 and set(seen) == {pid}
    # nothing else stopped but the VFS's calls (execve, the stdio fstat):
    # default mode lets unhooked calls run free
    assert 101 < kernel.syscalls_seen <= 101 + 4


def test_trace_all_sends_every_call_to_python(guest, capfd):
    kernel = GuestKernel(Mode.TRACE_ALL, host_root=True)
    names = []
    kernel.dispatcher.add_hook(number("getppid"), lambda call: names.append(call.name))
    assert run_kernel(kernel, [guest("getpids", static=True), "10"]) == 0
    assert names == ["getppid"] * 10
    assert kernel.syscalls_seen > 30      # execve, brk, arch_prctl, write, ...


def test_return_and_fail_decisions(capfd):
    kernel = GuestKernel(host_root=True)
    paths = []

    @kernel.hook("openat")
    def deny_hostname(call):
        path = call.read_str(call.args[1])
        paths.append(path)
        if path == b"/etc/hostname":
            return fail(errno.EACCES)
        return None

    status = run_kernel(kernel, ["sh", "-c", "cat /etc/hostname; echo rc=$?"])
    out, err = capfd.readouterr()
    assert status == 0
    assert "rc=1" in out and "Permission denied" in err
    assert b"/etc/hostname" in paths


def test_injected_syscall_at_entry_stop(guest, capfd):
    kernel = GuestKernel(host_root=True)

    @kernel.hook("getppid")
    def answer_with_own_pid(call):
        return Return(call.inject(NR_GETPID))

    assert run_kernel(kernel, [guest("getpids", static=True), "3"]) == 0
    words = capfd.readouterr().out.split()
    assert words[1] == words[3] == words[5]          # pid == ppid == getpid()


def test_inject_mmap_then_write_and_read_guest_memory(guest, capfd):
    kernel = GuestKernel(host_root=True)
    results = []

    @kernel.hook("getppid")
    def map_scratch_page(call):
        if results:
            return None
        addr = call.inject(NR_MMAP, 0, 4096, 3, 0x22, -1, 0)   # RW, PRIVATE|ANON
        assert 0 < addr < 2**47
        call.write(addr, b"scratch page works\0")
        results.append(call.read_str(addr))
        results.append(call.read(addr, 7))
        return None

    assert run_kernel(kernel, [guest("getpids", static=True), "2"]) == 0
    assert results == [b"scratch page works", b"scratch"]


def test_allow_then_rewrites_the_result_and_injects_at_exit(guest, capfd):
    kernel = GuestKernel(host_root=True)
    injected = []

    def after_uname(call, result):
        assert result == 0
        injected.append(call.inject(NR_GETPID))
        call.write(call.args[0] + 65, b"guest-node\0")     # utsname.nodename
        return None

    kernel.hook("uname")(lambda call: AllowThen(after_uname))
    assert run_kernel(kernel, [guest("getpids", static=True), "1"]) == 0
    out = capfd.readouterr().out
    assert out.strip().endswith("nodename guest-node")
    assert injected == [int(out.split()[1])]


def test_injection_needs_a_syscall_stop():
    kernel = GuestKernel(host_root=True)
    with pytest.raises(TracerError):
        kernel.tracer.inject_syscall(os.getpid(), NR_GETPID, ())


def test_handler_errors_kill_the_guest_and_propagate(guest):
    kernel = GuestKernel(host_root=True)

    @kernel.hook("getppid")
    def broken(call):
        raise RuntimeError("handler bug")

    kernel.spawn([guest("getpids", static=True), "1"])
    pid = kernel.processes.main
    with pytest.raises(RuntimeError):
        kernel.run()
    assert not os.path.exists(f"/proc/{pid}")


def test_a_bad_decision_is_a_clear_error(guest):
    kernel = GuestKernel(host_root=True)
    kernel.hook("getppid")(lambda call: "yes please")
    kernel.spawn([guest("getpids", static=True), "1"])
    with pytest.raises(TypeError, match="not a decision"):
        kernel.run()


def test_spawn_twice_is_refused():
    kernel = GuestKernel(host_root=True)
    kernel.spawn(["true"])
    with pytest.raises(Exception, match="already"):
        kernel.spawn(["true"])
    assert kernel.run() == 0


def test_allow_is_a_decision():
    assert repr(ALLOW) == "ALLOW"


def test_clone_untraced_child_is_still_followed(guest, capfd):
    kernel = GuestKernel(host_root=True)          # pid namespace: the guest cannot see its tracer
    children = []
    kernel_on_child = kernel.processes.child_created

    def record(parent, child, how):
        children.append(child)
        return kernel_on_child(parent, child, how)
    kernel.processes.child_created = record
    assert run_kernel(kernel, [guest("untraced_clone")]) == 0
    assert len(children) == 1 and kernel.processes.created == 2
