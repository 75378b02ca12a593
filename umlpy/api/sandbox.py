"""``Sandbox``: umlpy's guest kernel as a Python API for experiments.

    from umlpy import Sandbox

    sb = Sandbox(net="none", memory="256M")

    @sb.syscall("openat")
    def log_open(call):
        print(call.pid, call.path(1))       # None: let the guest kernel decide

    result = sb.run(["cat", "/etc/hostname"], capture=True)
    result.status, result.stdout, result.stats.calls["openat"]

Handlers (fn(Call), call.py) go in front of the guest kernel and compose
with it (handlers.py); ``log_level`` and ``breaks`` are ``umlpy run``'s
``--log-level`` (log.py) and ``--break`` (debugger.py).

``Sandbox.create(name, **options)`` and ``Sandbox.get(name)`` give a
named, long-lived sandbox instead (named.py: start, exec, stop, remove).
"""
import os
import sys

from ..config import Config
from ..config.render import keywords_doc
from ..kernel.decisions import ALLOW
from ..kernel.syscalls.names import SYSCALL_NAMES
from .call import nr_of
from .debugger import install_debugging
from .handlers import VDSO_CALLS, Abort, hide_vdso, install_front
from .result import Result, Stats

__all__ = ["Sandbox", "Result", "Stats"]


class Sandbox:
    """A recipe for sandboxes: options (the same as ``umlpy run``'s) and
    handlers; each ``run`` makes a fresh guest kernel from it."""

    ALLOW = ALLOW

    def __init__(self, config=None, **options):
        """Options as keywords, the same as ``umlpy run``'s flags (listed
        below and in docs/OPTIONS.md), as strings the command line would
        take or typed (a number for a size, a list for a repeatable option,
        a dict for env); or a Config.  Bad values raise BadInput."""
        if config is None:
            config = Config(**options)
        elif options:
            config = config.replace(**options)
        self.config = config
        self.handlers = {}          # nr -> [fn(Call)]
        self._vdso_named = False    # a handler names a call the vDSO answers
        self.kernel = None          # the last run's GuestKernel

    __init__.__doc__ += "\n\n" + keywords_doc()

    def syscall(self, *names):
        """Decorator: fn(call) runs at each call of these syscalls (names or
        numbers; "*" for every syscall), before the guest kernel."""
        if not names:
            raise TypeError("syscall() needs at least one syscall name")
        nrs = []
        for name in names:
            if name == "*":
                nrs.extend(sorted(SYSCALL_NAMES))
            else:
                nrs.append(nr_of(name))
                self._vdso_named |= SYSCALL_NAMES[nrs[-1]] in VDSO_CALLS

        def register(fn):
            for nr in nrs:
                self.handlers.setdefault(nr, []).append(fn)
            return fn
        return register

    def _wants_vdso_hidden(self):
        if self.config.hide_vdso is not None:
            return self.config.hide_vdso
        return self._vdso_named

    def make_kernel(self):
        """A fresh GuestKernel with this sandbox's options and handlers."""
        from ..kernel import GuestKernel
        kernel = GuestKernel(config=self.config)
        self.install_handlers(kernel)
        return kernel

    def install_handlers(self, kernel):
        """Put this sandbox's handlers in front of kernel (and hide the
        vDSO if they want it): a run's fresh kernel, or a named sandbox's
        daemon's (named.py)."""
        for nr, fns in self.handlers.items():
            install_front(kernel, nr, list(fns), self.config.errors)
        if self._wants_vdso_hidden():
            hide_vdso(kernel)

    @classmethod
    def create(cls, name, init=None, **options):
        """A named, long-lived sandbox (``umlpy create NAME``), not yet
        started: a NamedSandbox (named.py).  options as for Sandbox();
        init: its first process (its exit stops the sandbox)."""
        from .named import create
        return create(cls, name, init, options)

    @classmethod
    def get(cls, name, **handler_options):
        """The named sandbox NAME (made by Sandbox.create or ``umlpy
        create``); BadInput if there is none.  handler_options: errors,
        hide_vdso, for the handlers registered on it."""
        from .named import get
        return get(cls, name, handler_options)

    def run(self, argv, capture=False, input=None, env=None, cwd=None, timeout=None):
        """Run argv in a fresh sandbox until its first process exits.
        capture: collect stdout and stderr (else they are ours); input:
        bytes for its stdin (else ours); env: more variables; cwd: the
        guest's working directory; timeout: seconds, then the sandbox is
        killed (status 137, result.timed_out).  Raises CommandNotFound
        (127) / CommandNotExecutable (126) as ``umlpy run`` exits."""
        import tempfile
        kernel = self.kernel = self.make_kernel()
        stats = Stats()
        decide = kernel.dispatcher.decide

        def counted(call):
            stats.calls[call.name] += 1
            return decide(call)
        kernel.dispatcher.decide = counted
        install_debugging(kernel, self.config.breaks, self.config.log_level, api=True)
        full_env = dict(os.environ)
        full_env.update(self.config.environment)
        full_env.update(env or {})
        if isinstance(argv, str):
            argv = [argv]
        files, saved = {}, {}
        timer, timed_out = None, []
        try:
            if capture:
                files[1] = tempfile.TemporaryFile()
                files[2] = tempfile.TemporaryFile()
            if input is not None:
                files[0] = tempfile.TemporaryFile()
                files[0].write(input if isinstance(input, bytes) else input.encode())
                files[0].seek(0)
            # the guest's first process inherits our fds 0-2 when it is
            # forked: lend it the files for that moment
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, f in files.items():
                saved[fd] = os.dup(fd)
                os.dup2(f.fileno(), fd)
            try:
                kernel.spawn(list(argv), env=full_env, cwd=cwd)
            finally:
                for fd, old in saved.items():
                    os.dup2(old, fd)
                    os.close(old)
                saved.clear()
            if timeout is not None:
                import threading
                main = kernel.processes.main

                def expire():
                    timed_out.append(True)
                    try:
                        os.kill(main, 9)
                    except OSError:
                        pass
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            try:
                status = kernel.run()
            except Abort as abort:
                raise abort.error from None
            stats.stops = kernel.syscalls_seen
            out = err = None
            if capture:
                files[1].seek(0)
                out = files[1].read()
                files[2].seek(0)
                err = files[2].read()
            return Result(status, out, err, stats, bool(timed_out))
        finally:
            if timer is not None:
                timer.cancel()
            for f in files.values():
                f.close()
