"""The guest kernel: owns the tracer, the syscall table and the process
table, and runs the event loop that answers every stop that needs it."""
import errno as _errno
import os

from .. import tracer as T
from ..errors import CommandNotExecutable, CommandNotFound, UmlpyError
from .decisions import ALLOW, AllowThen, Return, Rewrite, SyscallCall
from .dispatcher import Dispatcher
from .policy import TABLE_SIZE, Action, Mode, build_policy, rule_for
from .process import ProcessTable
from .seccomp import assemble, compile_filter
from .syscalls import TABLE
from .syscalls.names import SYSCALL_NUMBERS


SIGKILL = 9     # the signal module would pull in enum at start-up


def exit_status_of(wait_status):
    """The status a shell reports: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


class GuestKernel:
    """One sandbox's kernel.  Typical use::

        kernel = GuestKernel()
        @kernel.hook("uname")
        def my_uname(call): ...
        kernel.spawn(["sh", "-c", "uname -a"])
        status = kernel.run()
    """

    def __init__(self, mode=Mode.DEFAULT, table=TABLE):
        if mode not in Mode.ALL:
            raise ValueError(f"unknown mode {mode!r}: expected one of {Mode.ALL}")
        self.mode = mode
        self.table = table
        self.tracer = T.Tracer()
        self.dispatcher = Dispatcher(table)
        self.processes = ProcessTable()
        self.main_status = None
        self.syscalls_seen = 0
        self._status_fd = None
        self._argv0 = None
        self._pending_exit = {}

    # configuration --------------------------------------------------------
    def hook(self, name):
        """Decorator: run fn(call) at each `name` call, before the table's
        handler; returning a decision takes it, None falls through.  A
        hooked syscall always stops, whatever the mode."""
        nr = SYSCALL_NUMBERS[name] if isinstance(name, str) else name

        def register(fn):
            self.dispatcher.add_hook(nr, fn)
            return fn
        return register

    def policy(self):
        return build_policy(self.table, self.mode, self.dispatcher.hooks)

    def seccomp_filter(self):
        out_of_table = rule_for(None, self.mode, False)
        return assemble(compile_filter(self.policy(), out_of_table))

    # starting -------------------------------------------------------------
    def spawn(self, argv, env=None, cwd=None, root=None):
        """Start the guest's first process; returns its host pid."""
        if self.processes.main is not None:
            raise UmlpyError("this guest kernel already runs a first process")
        for nr, rule in enumerate(self.policy()):
            # A guarded call stops only when its guard matched: then it is
            # Python's to decide.
            action = Action.PYTHON if rule.guard else rule.action
            self.tracer.set_action(nr, action, rule.errno)
        env = dict(os.environ if env is None else env)
        pid, self._status_fd = self.tracer.spawn(
            argv[0], argv, env, cwd, root, self.seccomp_filter())
        self._argv0 = argv[0]
        self.processes.spawned(pid)
        return pid

    # the loop -----------------------------------------------------------
    def run(self):
        """Serve the guest until every guest process is gone; returns the
        first process's exit status (128+N if signal N killed it)."""
        if self.processes.main is None:
            raise UmlpyError("nothing to run: spawn a process first")
        self.tracer.forward_signals_to(self.processes.main)
        try:
            self._loop()
        except BaseException:
            self.kill_all()
            self._drain()
            raise
        finally:
            self.tracer.restore_signals()
        if self._status_fd is not None:
            self._report_setup_failure()
        return exit_status_of(self.main_status)

    def _loop(self):
        tracer = self.tracer
        ev = tracer.ev
        wait = tracer.wait
        on_syscall = self._on_syscall
        while True:
            kind = wait()
            if kind == T.EV_SYSCALL:
                on_syscall(ev)
            elif kind == T.EV_EXIT:
                self._on_exit(ev.pid, ev.status)
            elif kind == T.EV_CHILD:
                self.processes.child_created(ev.pid, ev.msg, ev.ptrace_event)
                tracer.cont(ev.pid)
            elif kind == T.EV_NEW:
                self.processes.first_stop(ev.pid)
                tracer.cont(ev.pid)
            elif kind == T.EV_EXEC:
                self.processes.exec_done(ev.pid, ev.msg)
                if ev.pid == self.processes.main and self._status_fd is not None:
                    os.close(self._status_fd)     # exec succeeded
                    self._status_fd = None
                tracer.cont(ev.pid)
            elif kind == T.EV_SYSCALL_EXIT:
                self._on_syscall_exit(ev)
            elif kind == T.EV_SIGNAL:
                tracer.cont(ev.pid, ev.sig)
            elif kind == T.EV_NONE:
                return

    def _on_syscall(self, ev):
        self.syscalls_seen += 1
        nr = ev.nr
        entry = self.table.by_nr.get(nr) if 0 <= nr < TABLE_SIZE else None
        call = SyscallCall(self, ev.pid, nr, tuple(ev.args), entry)
        decision = self.dispatcher.decide(call)
        self.apply(call, decision)

    def apply(self, call, decision):
        tracer, tid = self.tracer, call.tid
        if decision is ALLOW:
            tracer.cont(tid)
        elif isinstance(decision, Return):
            tracer.skip(tid, decision.value)
        elif isinstance(decision, Rewrite):
            tracer.set_syscall(tid, decision.nr, decision.args)
            tracer.cont(tid)
        elif isinstance(decision, AllowThen):
            if decision.rewrite is not None:
                tracer.set_syscall(tid, decision.rewrite.nr, decision.rewrite.args)
            self._pending_exit[tid] = (call, decision.on_exit)
            tracer.cont_to_exit(tid)
        else:
            raise TypeError(f"handler for {call.name} returned {decision!r}, "
                            "not a decision")

    def _on_syscall_exit(self, ev):
        pending = self._pending_exit.pop(ev.pid, None)
        if pending is not None:
            call, on_exit = pending
            result = on_exit(call, ev.retval)
            if result is not None:
                self.tracer.set_retval(ev.pid, result)
        self.tracer.cont(ev.pid)

    def _on_exit(self, tid, status):
        self.processes.exited(tid)
        self._pending_exit.pop(tid, None)
        if tid == self.processes.main:
            # Like the init of a pid namespace: when the first process is
            # gone, the rest of the sandbox goes with it.
            self.main_status = status
            self.tracer.forward_signals_to(0)
            self.kill_all()

    def kill_all(self):
        for tid in self.processes.live_tids():
            try:
                os.kill(tid, SIGKILL)
            except ProcessLookupError:
                pass

    def _drain(self):
        try:
            while self.tracer.wait() != T.EV_NONE:
                pass
        except OSError:
            pass

    def _report_setup_failure(self):
        failure = T.Tracer.read_setup_failure(self._status_fd)
        self._status_fd = None
        if failure is None:
            return
        name = self._argv0
        if failure.stage == T.lib.UMLPY_SETUP_EXEC:
            if failure.errno == _errno.ENOENT:
                if "/" in name:
                    raise CommandNotFound(f"{name}: No such file or directory")
                raise CommandNotFound(f"{name}: command not found")
            if failure.errno in (_errno.EACCES, _errno.ENOEXEC, _errno.EPERM,
                                 _errno.EISDIR, _errno.ETXTBSY, _errno.ELIBBAD):
                raise CommandNotExecutable(f"{name}: {os.strerror(failure.errno)}")
            raise CommandNotFound(f"{name}: {os.strerror(failure.errno)}")
        raise UmlpyError(f"cannot start {name}: {failure}")


def run(argv, env=None, cwd=None, root=None, mode=Mode.DEFAULT):
    """Run argv in a throwaway sandbox; returns its exit status."""
    kernel = GuestKernel(mode)
    kernel.spawn(argv, env=env, cwd=cwd, root=root)
    return kernel.run()

