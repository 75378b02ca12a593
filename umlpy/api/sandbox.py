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
"""
import os
import sys

from ..errors import BadInput
from ..kernel.decisions import ALLOW
from ..kernel.syscalls.names import SYSCALL_NAMES
from .call import nr_of
from .debugger import install_debugging, parse_break
from .handlers import VDSO_CALLS, Abort, hide_vdso, install_front
from .log import level_of

__all__ = ["Sandbox", "Result", "Stats"]


class Stats:
    """What the guest kernel saw: ``calls`` counts the stopped calls by
    syscall name (every call with trace_all=True; in the default mode only
    those that stop: the guest kernel's and hooked ones), ``stops`` is
    the number of syscall stops."""

    def __init__(self):
        from collections import Counter
        self.calls = Counter()
        self.stops = 0

    def __repr__(self):
        top = ", ".join(f"{n}={c}" for n, c in self.calls.most_common(5))
        return f"<Stats stops={self.stops} {top}>"


class Result:
    """``status`` (the shell's: the exit code, or 128+N if signal N killed
    the first process), ``stdout``/``stderr`` (bytes when captured, else
    None), ``stats`` and ``timed_out``."""

    def __init__(self, status, stdout, stderr, stats, timed_out=False):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.stats = stats
        self.timed_out = timed_out

    @property
    def returncode(self):
        return self.status

    def __repr__(self):
        return f"<Result status={self.status} stops={self.stats.stops}>"


def _guest_cwd(cwd, rootfs):
    """A relative cwd is taken from ours on the host's tree, from / in a rootfs."""
    if cwd is None or cwd.startswith("/"):
        return cwd
    return os.path.normpath(os.path.join(os.getcwd() if rootfs is None else "/", cwd))


class Sandbox:
    """A recipe for sandboxes: options (the same as ``umlpy run``'s) and
    handlers; each ``run`` makes a fresh guest kernel from it."""

    ALLOW = ALLOW

    def __init__(self, rootfs=None, layers=(), upper=None, binds=(), tmpfs=(), cwd=None,
                 env=None, net=None, net_rate=None, memory=None, pids=None, cpu_time=None,
                 disk=None, nofile=None, hostname=None, kernel_release=None, root=False,
                 host_root=False, pid_host=False, trace_all=False, hide_vdso=None,
                 log_level=None, breaks=(), errors="raise"):
        """rootfs: a host directory or tar image (default: the host's tree,
        read-only); layers: tar images over it; upper: keep the changes
        there; binds: "HOST:GUEST[:ro]" strings or (host, guest[, ro]);
        tmpfs: guest paths; cwd; env: variables added to os.environ's;
        net: "none" | "loopback" | "host" | "allow=CIDR[:PORT],..."; net_rate:
        bytes/s ("1M"); memory, pids, cpu_time, disk, nofile: limits as
        the command line takes them; hostname, kernel_release; root: fake
        root; host_root; pid_host: no pid namespace; trace_all: every call
        stops.  hide_vdso: hide the vDSO from the guest (None: when a
        handler is on clock_gettime, gettimeofday, time, clock_getres or
        getcpu).  log_level: "debug", "info", ... (see ``--log-level``);
        breaks: ``--break`` specs.  errors: "raise" (a handler that raises
        ends the run, and run() raises it) or "efault" (the call fails)."""
        from ..kernel.limits import Limits
        from ..kernel.netpolicy import NetPolicy
        from ..kernel.netrate import parse_rate
        from ..kernel.vfs.build import parse_bind
        if rootfs is not None:
            if not os.path.exists(rootfs):
                raise BadInput(f"rootfs {rootfs}: No such file or directory")
            rootfs = os.path.abspath(rootfs)
        for layer in layers:
            if not os.path.isfile(layer):
                raise BadInput(f"layer {layer}: No such file")
        cwd = _guest_cwd(cwd, rootfs)
        if hostname is not None and not 0 < len(hostname.encode()) <= 64:
            raise BadInput(f"hostname {hostname!r}: 1 to 64 bytes")
        if errors not in ("raise", "efault"):
            raise ValueError("errors: 'raise' or 'efault'")
        self._fs = dict(rootfs=rootfs, layers=[os.path.abspath(p) for p in layers],
                        upper=upper, tmpfs=list(tmpfs), cwd=cwd, hostname=hostname,
                        binds=[parse_bind(b if isinstance(b, str) else
                                          f"{b[0]}:{b[1]}" + (":ro" if len(b) > 2 and b[2]
                                                              else ""))
                               for b in binds])
        self.env = dict(env or {})
        self.net = net if isinstance(net, NetPolicy) else NetPolicy.parse(net)
        self.net_rate = None if net_rate is None else \
            net_rate if isinstance(net_rate, int) else parse_rate(str(net_rate))
        self.limits = Limits.from_options(memory=memory, pids=pids, cpu_time=cpu_time,
                                          disk=disk, nofile=nofile)
        self.options = dict(pid_namespace=not pid_host, hostname=hostname,
                            kernel_release=kernel_release, fake_root=root,
                            host_root=host_root)
        self.trace_all = trace_all
        self.hide_vdso = hide_vdso
        self.log_level = log_level
        self.breaks = [parse_break(b) for b in breaks]
        if log_level is not None:
            level_of(log_level)
        self.errors = errors
        self.handlers = {}          # nr -> [fn(Call)]
        self._vdso_named = False    # a handler names a call the vDSO answers
        self.kernel = None          # the last run's GuestKernel

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
        if self.hide_vdso is not None:
            return self.hide_vdso
        return self._vdso_named

    def make_kernel(self):
        """A fresh GuestKernel with this sandbox's options and handlers."""
        from ..kernel import GuestKernel, Mode
        from ..kernel.vfs.build import FsOptions
        fs = self._fs
        kernel = GuestKernel(Mode.TRACE_ALL if self.trace_all else Mode.DEFAULT,
                             fs_options=FsOptions(**{k: (list(v) if isinstance(v, list) else v)
                                                     for k, v in fs.items()}),
                             net=self.net, net_rate=self.net_rate,
                             limits=self.limits if self.limits.any() else None,
                             **self.options)
        for nr, fns in self.handlers.items():
            install_front(kernel, nr, list(fns), self.errors)
        if self._wants_vdso_hidden():
            hide_vdso(kernel)
        return kernel

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
        install_debugging(kernel, self.breaks, self.log_level, api=True)
        full_env = dict(os.environ)
        full_env.update(self.env)
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
                kernel.spawn(list(argv), env=full_env,
                             cwd=_guest_cwd(cwd, self._fs["rootfs"]))
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
