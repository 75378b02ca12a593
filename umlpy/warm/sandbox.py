"""One pre-started sandbox of a warm pool: a guest kernel, forked from the
pool with every module loaded, whose pid 1 is umlpy-init waiting to
become the first program of the run that claims it.

Made before it is needed: the filesystem, the filter, the namespaces
and the first exec of init are paid while no one waits.  A claim brings
the caller's stdio, cwd, environment, umask, signal dispositions, limits,
niceness and CPUs; init takes them on and execs the program in place
(init.c "B"), so the program is pid 1 as in a cold run, and from then on
this is a cold run's guest kernel: the same loop, the same teardown.

If anything differs from what a cold run would give before the program
runs (a limit init may not raise, a cwd it cannot enter, a program not
found), the caller is told "cold" and runs cold: nothing of the guest ran,
nothing of its stdin was read.  An unclaimed sandbox ends with its pool."""
import os
import signal
import sys
import threading

from . import wire

INIT_READY_TIMEOUT = 20.0


def run(pool_sock, config, program, log_path):
    """The forked child's whole life; never returns.  Until a run claims
    it, what umlpy would say goes to the pool's log."""
    from ..kernel import GuestKernel
    from ..lifecycle.initproto import InitChannel

    loaded_by_the_pool = set(sys.modules)
    try:
        pool_sock = _high(pool_sock)
        ours, theirs = _init_socketpair()
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        for fd in (0, 1):
            os.dup2(null, fd)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.dup2(theirs, 3, inheritable=True)
        os.close(theirs)
        os.chdir("/")
        # init's socket is its fd 3 (it closes it on its execve)
        kernel = GuestKernel(config=config.replace(preserve_fds=1))
        channel = InitChannel(ours)
        channel.start()
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        kernel.spawn(["/sbin/umlpy-init"], env=env, program=program)
        os.close(3)
        claim = Claim(kernel, channel, pool_sock, config, loaded_by_the_pool)
        threading.Thread(target=claim.serve, daemon=True, name="umlpy-warm-claim").start()
        status = kernel.run()
        claim.finished(status)
    except BaseException:     # noqa: BLE001 -- the pool's log says why: a bug of umlpy's
        import traceback
        sys.stderr.write("umlpy: a warm sandbox failed:\n" + traceback.format_exc())
    finally:
        sys.stderr.flush()
        os._exit(0)


def _init_socketpair():
    import socket
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return _high(ours), _high(theirs).detach()


def _high(sock):
    """sock on a number above the ones init's stdio and socket take."""
    import fcntl
    import socket
    fd = sock.detach()
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)
    os.close(fd)
    return socket.socket(fileno=high)


class Claim:
    """The sandbox's side of its pool and of the run that claims it."""

    def __init__(self, kernel, channel, pool_sock, config, loaded_by_the_pool):
        self.loaded_by_the_pool = loaded_by_the_pool
        self.kernel = kernel
        self.channel = channel
        self.pool_sock = pool_sock
        self.config = config
        self.client = None
        self.started = False

    def serve(self):
        try:
            if not self.channel.ready.wait(INIT_READY_TIMEOUT):
                raise OSError("init did not start")
            # what making a sandbox imported: the pool loads it for the next
            # spares (no guest code has run yet: these are umlpy's own words)
            wire.send(self.pool_sock, ["ready", *sorted(set(sys.modules) -
                                                      self.loaded_by_the_pool)])
            fields, fds = wire.receive(self.pool_sock)
        except OSError:
            fields, fds = [], []
        if not fields or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            self.channel.terminate()        # the pool is gone: so is its spare
            return
        client_fd, stdio = fds[0], fds[1:]
        import socket
        self.client = socket.socket(fileno=client_fd)
        try:
            request = wire.Request(fields)
        except (ValueError, IndexError):
            return self._cold("a bad request", stdio)
        self._become(request, stdio)

    def _become(self, request, stdio):
        kernel = self.kernel
        init = kernel.processes.main
        try:
            self._take_on(init, request)
        except OSError as e:
            return self._cold(f"the caller's {e.filename or 'process settings'}: {e.strerror}",
                              stdio)
        env = dict(request.env)
        env.update(self.config.environment)
        cwd = self.config.cwd or (request.cwd if self.config.rootfs is None else "/")
        limits = self._limits_to_set(request)
        os.dup2(stdio[2], 2)        # umlpy's own words about the run go where a cold run's do
        session = self.channel.become(request.words[request.words.index("--") + 1:], env, cwd,
                                      stdio, request.umask, request.sigign, request.sigblk,
                                      limits)
        for fd in stdio:
            os.close(fd)
        if session.wait_started(INIT_READY_TIMEOUT) is None:
            return self._cold(f"init could not take the run on ({session.errno})", ())
        kernel.first_process_runs_the_guest()
        # init's end of its socket closes at a successful execve (close-on-
        # exec), which ends the session; an "F" says the execve failed
        with session.changed:
            session.changed.wait_for(lambda: session.errno is not None or
                                     session.wait_status is not None, INIT_READY_TIMEOUT)
        if session.errno is not None or session.wait_status is None:
            # init is still init: the program was not found, or could not run
            return self._cold("the program did not start", ())
        self.started = True
        kernel.on_guest_gone = self.finished
        self._tell_pool("served")      # first: `umlpy warm ls` after the run counts it
        wire.send(self.client, ["started"])
        self._forward_signals(init)

    def _limits_to_set(self, request):
        """The caller's limits where init's differ (init has this process's,
        but for the sandbox's own, which a cold run sets over the caller's):
        each setrlimit is a guest call."""
        import resource
        own = {res for res, _value in self.kernel._rlimits()}
        return [(res, soft, hard) for res, soft, hard in request.limits
                if res not in own and _unsigned(resource.getrlimit(res)) != (soft, hard)]

    def _take_on(self, init, request):
        """What a cold run's guest would inherit from umlpy and umlpy from
        its caller, that init cannot set on itself: CPUs and niceness, for
        the guest and for this guest kernel's threads (a stop is served on
        the CPU the guest runs on)."""
        if request.cpus and request.cpus != os.sched_getaffinity(0):
            from ..kernel.kernel import MAX_NOTIFY_SERVERS
            if self.kernel.notifications is not None:
                self.kernel.notifications.keep(min(len(request.cpus), MAX_NOTIFY_SERVERS))
            for task in os.listdir("/proc/self/task"):
                try:
                    os.sched_setaffinity(int(task), request.cpus)
                except ProcessLookupError:
                    pass        # a thread that just left (a server keep() stopped)
            os.sched_setaffinity(init, request.cpus)
        if request.nice != os.getpriority(os.PRIO_PROCESS, init):
            os.setpriority(os.PRIO_PROCESS, init, request.nice)

    def _forward_signals(self, init):
        while True:
            try:
                fields, fds = wire.receive(self.client)
            except OSError:
                fields, fds = [], []
            for fd in fds:
                os.close(fd)
            if not fields:
                # the caller is gone (SIGKILL): as a cold run's guest, with its umlpy
                self._kill_guest()
                return
            if fields[0] == "kill" and len(fields) == 2 and fields[1].isdigit() and \
                    0 < int(fields[1]) < 65:
                try:
                    os.kill(init, int(fields[1]))
                except OSError:
                    pass

    def _tell_pool(self, outcome, reason=""):
        """Whether the claim became a warm run (the pool counts them, and
        logs why one did not)."""
        try:
            wire.send(self.pool_sock, [outcome, reason])
        except OSError:
            pass
        self.pool_sock.close()

    def _cold(self, reason, stdio):
        self._tell_pool("cold", reason)
        for fd in stdio:
            os.close(fd)
        try:
            wire.send(self.client, ["cold", reason])
        except OSError:
            pass
        self.client.close()
        self.client = None
        self._kill_guest()

    def _kill_guest(self):
        for tid in self.kernel.processes.live_tids():
            try:
                os.kill(tid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def finished(self, status):
        """The guest is gone: its caller hears how it ended (once)."""
        if self.client is not None and self.started:
            sys.stderr.flush()
            try:
                wire.send(self.client, ["exit", status])
            except OSError:
                pass
            self.client = None


def _unsigned(limits):
    """Python's RLIM_INFINITY (-1) as /proc/PID/limits means it: 2**64 - 1."""
    return tuple(v if v >= 0 else (1 << 64) - 1 for v in limits)


def ignore_terminal_signals():
    """A pool and its sandboxes are daemons: the terminal's signals that
    reached `umlpy warm start` are not theirs."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
