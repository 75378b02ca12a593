"""The guest kernel: owns the tracer, the syscall table and the process
table, and runs the event loop that answers every stop that needs it."""
import errno as _errno
import os
import sys
import threading

from .. import tracer as T
from ..abi.resource import RLIMIT_CORE, RLIMIT_MEMLOCK
from ..abi.sched import CLONE_VM
from ..abi.signal import SIGKILL
from ..config import Config
from ..errors import BadInput, CommandNotExecutable, CommandNotFound, UmlpyError
from .bounded import ByteBoundedCache
from .decisions import ALLOW, AllowThen, Return, Rewrite, SyscallCall
from .dispatcher import Dispatcher, HandlerFailure
from .policy import TABLE_SIZE, Action, Mode, build_policy, rule_for
from . import procfs
from .process import FORK, VFORK, ProcessTable
from .seccomp import assemble, compile_filter
from .signals import IGNORED_BY_DEFAULT, SIGSTOP, default_action
from .syscalls import TABLE
from .syscalls.names import SYSCALL_NUMBERS
from .sysview import SystemView



SPIN_NS = 50_000
MAX_NOTIFY_SERVERS = 4     # notify.py: one per CPU, up to this many


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

    def __init__(self, mode=None, table=TABLE, config=None, **options):
        """config: the sandbox's Config (umlpy/config); or its options as
        keywords (``GuestKernel(host_root=True)``).  mode: Mode.TRACE_ALL
        is the trace_all option."""
        if config is None:
            config = Config(**options)
        elif options:
            config = config.replace(**options)
        if mode is not None:
            if mode not in Mode.ALL:
                raise ValueError(f"unknown mode {mode!r}: expected one of {Mode.ALL}")
            config = config.replace(trace_all=mode == Mode.TRACE_ALL)
        self.config = config
        self.mode = Mode.TRACE_ALL if config.trace_all else Mode.DEFAULT
        self.table = table
        self.tracer = T.Tracer()
        # A stop that wakes a tracer asleep on an idle CPU costs about four
        # times one that finds it running (benchmarks/README.md): poll a
        # little first, while the guest's calls come that fast.
        self.tracer.set_spin(SPIN_NS)
        self.tracer.ignore_by_default(IGNORED_BY_DEFAULT)
        self.dispatcher = Dispatcher(table)
        self.pid_namespace = not config.pid_host
        self.processes = ProcessTable(self.pid_namespace)
        if config.net is not None:
            self.net = config.net
        else:
            from .netpolicy import NetPolicy
            self.net = NetPolicy()
        from .limits import Limits
        self.limits = Limits.from_config(config)
        self.system = SystemView(self, self.limits.memory if self.limits is not None else None)
        self.watchdog = None
        self.cgroup = None              # the sandbox's own cgroup (cgroups.py), where the host has one
        self.cgroup_error = None        # why the host refused one it seemed to offer
        self.disk_quota = None          # --disk: a DiskQuota, once the storage exists
        self.rate_limiter = None        # --net-rate: its token buckets
        if config.net_rate is not None:
            from .netrate import RateLimiter
            self.rate_limiter = RateLimiter(config.net_rate)
        self.pending_exe = {}           # tid -> guest path of the program its execve runs
        self.first_program = None       # spawn(program=): the first exec's plan
        # a process no guest may reach into (pidfd_getfd, process_vm_*,
        # /proc/PID/mem): a named sandbox's init, its supervisor's channel
        self.protected_pid = None
        self.on_guest_gone = None       # f(exit status) once no guest process is left
        self.first_ids = None           # identity() of the first process, once spawned
        self.id_block = None            # as root: the host ids the guest's map to (identity.py)
        self.own_ids = False            # the guest's ids are a block of the sandbox's own
        self.fake_ownership = None      # --root: the ownership the guest has set
        if config.root:
            from .fakeroot import FakeOwnership
            self.fake_ownership = FakeOwnership()
        self.fake_ids = None            # --root with one id: the guest's ids (fakeids.py)
        self._internal_errors = set()
        self.observers = []
        self.logs_every_call = False    # --log-level debug: no call answered in C
        self._observed_pending = {}     # tid -> report(result) of its call in flight
        # Handlers of the options this sandbox sets (TABLE.when in the
        # family files) go in front of the table's own treatment.
        for nr, handler in table.rules_for(config):
            self.dispatcher.add_hook(nr, handler)
        self.init_host_pid = None       # the guest's pid 1, in host terms
        self.init_killed_by = None      # signal the guest kernel killed it for
        from .vfs.scratch import ScratchSpace
        from .syscalls.fd import Listings
        self.fs = None
        self.vfs = None
        self.exec_plans = None      # execplans.py, once the filesystem is built
        self.scratch = ScratchSpace(self.tracer)
        from .fastpath import PathCache
        self.fastpath = PathCache(self.tracer)
        # address a guest socket was bound to -> guest path (bounded by bytes:
        # one forgotten is found again from the host path, vfs.guest_path_of_host)
        self.unix_names = ByteBoundedCache(8 << 20)
        self.socket_dirs = {}       # directories holding them -> the fd they are bound through
        self.listings = Listings()
        self.main_status = None
        # The ptrace loop and the notification server (notify.py) both
        # decide calls: one at a time.
        self.lock = threading.Lock()
        self._notified = {}     # nr -> Guard of the calls that still stop (or None)
        self.notifications = None
        self.opener = None          # the guest's opener (vfs/hostopen.py), for /proc
        self._listener_at = None    # (pid, fd number in it, ids) until taken
        self.syscalls_seen = 0
        self._status_fd = None
        self._root = None
        self.tty_handed = False
        self.terminal = None        # the user's terminal as we found it (terminal.py)
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

    def _drops_root(self):
        return os.geteuid() == 0 and not self.config.host_root

    def identity(self):
        """clone flags and ids for the guest's first process:
        {clone_flags, uid_inside, gid_inside, uid_outside, gid_outside,
        switch_ids}."""
        flags = 0
        if self.pid_namespace:
            flags |= T.NEWPID | T.NEWNS
        if self.config.hostname is not None:
            flags |= T.NEWUTS
        if self.net.own_namespace:
            flags |= T.NEWNET
        # SysV IPC and POSIX message queues of the sandbox's own, not the host's
        flags |= T.NEWIPC
        from . import identity as I
        euid, egid = os.geteuid(), os.getegid()
        ids = dict(uid_inside=euid, gid_inside=egid, uid_outside=euid,
                   gid_outside=egid, switch_ids=False, uid_map=None, gid_map=None)
        ranges = None
        if euid == 0:
            if self._drops_root():
                # Root inside, no one outside: a jail's root has no host
                # power; its other users are ids of the sandbox's own.
                flags |= T.NEWUSER
                entered = I.entered_ids()
                if entered is None and self.id_block is None:
                    wanted, why = self.config.id_block, f"--id-block {self.config.id_block}"
                    if wanted is None and self.config.upper:
                        wanted = I.block_of_upper(self.config.upper)
                        why = f"--upper {self.config.upper}"
                    self.id_block = I.IdBlock.take(wanted, why)
                self.own_ids = True
                if entered is None:
                    first = self.id_block.first
                    ranges = I.block_maps(first)
                    ids.update(uid_inside=0, gid_inside=0, uid_outside=first,
                               gid_outside=first, switch_ids=True)
                else:
                    # the user's subordinate namespace (identity.py): the
                    # guest is the user, or root with --root
                    uid, gid = (0, 0) if self.config.root else entered
                    ranges = I.entered_maps(uid, gid)
                    ids.update(uid_inside=uid, gid_inside=gid, uid_outside=0, gid_outside=0,
                               switch_ids=True)
        else:
            if self.config.root:
                flags |= T.NEWUSER
                ids.update(uid_inside=0, gid_inside=0)
            if flags or self._root is not None:
                flags |= T.NEWUSER  # unprivileged: namespaces need our own
        if ranges is not None:
            uids, gids = ranges
            ids.update(uid_map="".join(f"{a} {b} {c}\n" for a, b, c in uids),
                       gid_map="".join(f"{a} {b} {c}\n" for a, b, c in gids))
        ids["clone_flags"] = flags
        ids["uid_ranges"], ids["gid_ranges"] = ranges if ranges is not None else (None, None)
        return ids

    def _build_fs(self, ids):
        from .vfs.build import SandboxFS
        from .vfs.creds import IdMap
        if ids["clone_flags"] & T.NEWUSER:
            idmap = IdMap(ids["uid_inside"], ids["uid_outside"], ids["gid_inside"],
                          ids["gid_outside"], ids["uid_ranges"], ids["gid_ranges"])
            owner = (ids["uid_outside"], ids["gid_outside"])
        else:
            idmap, owner = IdMap(), None
        self.fs = SandboxFS(self.config, idmap, owner)
        self.vfs = self.fs.vfs
        self.vfs.executor.own_caps = self.own_ids
        if self.fake_ownership is not None and not idmap.identity and not idmap.many:
            from .fakeids import FakeIds
            self.fake_ids = self.vfs.fake_ids = FakeIds(self.fake_ownership)
        if not os.environ.get("UMLPY_NO_FASTPATH"):
            from .execplans import ExecPlans
            self.exec_plans = ExecPlans()
            self.fs.union.on_change.append(self.exec_plans.clear)

    def _attach_proc(self, init_pid):
        processes = self.processes
        if self.pid_namespace:
            root = lambda: f"/proc/{init_pid}/root/proc"    # noqa: E731
            guest_tid = lambda tid: processes.guest_tid(tid) or tid    # noqa: E731
            host_tid = processes.host_tid
        else:
            root = lambda: "/proc"      # noqa: E731
            guest_tid = host_tid = lambda tid: tid      # noqa: E731
        self.fs.attach_proc(root, guest_tid, host_tid, self.config.hostname, self.system)

    # scratch memory for rewritten calls ---------------------------------------
    def scratch_writer(self, call, status=None):
        """status: the thread's /proc status read at this stop, if the
        handler has it (scratch.py may spare a read)."""
        from .vfs.scratch import ArgWriter
        tgid = self.vfs.tgid_of(call.tid)
        base, size = self.scratch.slot(call.tid, tgid, status)
        return ArgWriter(base, size)

    def scratch_commit(self, call, writer):
        if writer.buf:
            data = bytes(writer.buf)
            # all of it, or the call fails: a guest can leave part of the
            # mapping unfillable, and the host must never read the guest's
            # own bytes after ours
            if self.tracer.write_mem(call.tid, writer.base, data) != len(data):
                raise OSError(_errno.EFAULT, "scratch memory could not be written")

    def policy(self):
        return build_policy(self.table, self.mode, self.dispatcher.hooks, self._notified)

    def seccomp_filter(self, policy=None):
        out_of_table = rule_for(None, self.mode, False)
        return assemble(compile_filter(policy or self.policy(), out_of_table))

    # starting -------------------------------------------------------------
    def spawn(self, argv, env=None, cwd=None, root=None, program=None):
        """Start the guest's first process; returns its host pid.
        program: a host file for the first process to run in place of the
        guest program argv[0] names (a named sandbox's umlpy-init); only
        the very first exec, made before any guest code runs, takes it."""
        if self.processes.main is not None:
            raise UmlpyError("this guest kernel already runs a first process")
        env = dict(os.environ if env is None else env)
        self._root = root
        self.system.start()
        ids = self.first_ids = self.identity()
        if cwd is not None:
            self.config = self.config.replace(cwd=cwd)
        self._check_cpu_controls()
        if self.fs is None:
            self._build_fs(ids)
            self.fs.check_cwd()
        if program is not None:
            from .vfs.binfmt import ExecPlan
            self.first_program = ExecPlan(self._runnable_copy(program), (), False, argv[0])
        limits = self.limits
        if limits is not None and limits.disk is not None:
            from .limits import DiskQuota
            self.disk_quota = DiskQuota(limits.disk, self.fs.own_storage())
            self.fs.union.reserve_space = self.disk_quota.reserve
        self._notified = self._notified_calls()
        policy = self.policy()
        for nr, rule in enumerate(policy):
            # A guarded call stops only when its guard matched: then it is
            # Python's to decide.
            action = Action.PYTHON if rule.guard or rule.action == Action.NOTIFY else rule.action
            self.tracer.set_action(nr, action, rule.errno)
        # The table's timed waits keep their deadline in every mode, also
        # when they stop for Python (--trace-all, a hook): C notes it.
        for entry in self.table:
            if entry.wait is not None:
                self.tracer.set_wait(entry.nr, entry.wait.code())
        self._start_fastpath(policy)
        # What the guest may change in the user's terminal is set back at
        # the end (terminal.py).
        from .terminal import SavedTerminal
        self.terminal = SavedTerminal.find()
        # In its own pid namespace the guest cannot see umlpy's process
        # group, so it leads one of its own, with the terminal if we had it.
        tty_fd = self._foreground_tty() if self.pid_namespace else -1
        with self._guest_network():
            pid, self._status_fd = self.tracer.spawn(
                argv[0], argv, env, self.seccomp_filter(policy), cwd="/", root=None,
                hostname=self.config.hostname, mount_proc=self.pid_namespace,
                **{key: v for key, v in ids.items() if not key.endswith("_ranges")},
                new_pgrp=self.pid_namespace, tty_fd=tty_fd,
                rlimits=self._rlimits(), notify=bool(self._notified),
                preserve_fds=self.config.preserve_fds)
        if self.tracer.listener is not None:
            self._listener_at = (pid, self.tracer.listener, ids)
        self._argv0 = argv[0]
        self.tty_handed = tty_fd >= 0
        T.Tracer.harden_self()
        self.processes.spawned(pid)
        self._join_cgroup(pid)
        self._attach_proc(pid)
        if program is not None:
            self.protected_pid = pid
            if self.fs.procfs is not None:
                self.fs.procfs.protected_pids.add("1" if self.pid_namespace else str(pid))
        if self.pid_namespace:
            self.init_host_pid = pid
            self.tracer.set_init_pid(pid)
            self.tracer.report_init_stops(self.tty_handed)
        self.tracer.set_forward_mode(self.pid_namespace)
        return pid

    def _guest_network(self):
        """Where the first process is cloned: in the namespace it joins
        (--net ns:PATH, netns.py), or where umlpy is."""
        if self.net.joins:
            from .netns import joined
            return joined(self.net.path)
        import contextlib
        return contextlib.nullcontext()

    def first_process_runs_the_guest(self):
        """The first process was init, and now runs the guest's own program
        (a warm sandbox's, umlpy/warm/sandbox.py): nothing of it is
        init's to protect any more."""
        self.protected_pid = None
        if self.fs.procfs is not None:
            self.fs.procfs.protected_pids.clear()

    def _runnable_copy(self, program):
        """A copy of a host program where the guest's host ids may run it:
        the sandbox's state directory (the program's own may be closed to
        them, as a package under /root is)."""
        import shutil
        copy = os.path.join(self.fs.state, os.path.basename(program))
        shutil.copyfile(program, copy)
        os.chmod(copy, 0o555)
        return copy

    def _notified_calls(self):
        """The opens, the stat family and listings go to the seccomp
        listener, where the guest kernel makes them itself (notify.py),
        unless something must see them at a ptrace stop: --trace-all, an
        observer, a user's hook."""
        from .notify import NOTIFIED_CALLS
        from .syscalls.registry import Guard
        if self.mode != Mode.DEFAULT or self.observers or os.environ.get("UMLPY_NO_NOTIFY"):
            return {}
        return {SYSCALL_NUMBERS[name]: None if stops is None else Guard(*stops)
                for name, stops in NOTIFIED_CALLS.items()
                if not self.dispatcher.hooks.get(SYSCALL_NUMBERS[name])}

    def _take_listener(self, tid):
        """At the first process's first stop (its execve), before the exec
        closes it: our copy of its seccomp listener.  Without one its
        opens would wait forever: the sandbox does not start."""
        pid, number, ids = self._listener_at
        if tid != pid:
            return
        self._listener_at = None
        from .vfs.hostops import thread_fd
        try:
            fd = thread_fd(pid, pid, number)
        except OSError as e:
            raise UmlpyError(f"cannot take the guest's seccomp listener: {e.strerror}") from None
        if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:seccomp notify":
            os.close(fd)
            raise UmlpyError("the guest's seccomp listener is not where it said")
        self._start_notifications(ids, pid, fd)

    def _start_notifications(self, ids, pid, listener):
        """A server per CPU umlpy may run on (at most MAX_NOTIFY_SERVERS),
        each over its own copy of the listener."""
        from .notify import NotificationServer
        servers = max(1, min(len(os.sched_getaffinity(0)), MAX_NOTIFY_SERVERS))
        notifiers = []
        for i in range(servers):
            notifier = T.Notifier(listener if i == 0 else os.dup(listener), self.tracer)
            # what opens replayed in C run as: the guest's host identity
            if ids["clone_flags"] & T.NEWUSER:
                notifier.identity(ids["uid_outside"], ids["gid_outside"],
                                  () if ids["switch_ids"] else os.getgroups())
            else:
                notifier.identity(os.geteuid(), os.getegid(), os.getgroups())
            notifiers.append(notifier)
        from .vfs.hostopen import Opener
        # the opener joins the guest's namespaces, a joined network one too
        joined = T.NEWNET if self.net.joins else 0
        self.opener = Opener(pid, ids["clone_flags"] | joined, ids["uid_inside"],
                             ids["gid_inside"])
        self.notifications = NotificationServer(self, notifiers)
        self.notifications.start()

    def _start_fastpath(self, policy):
        """Let C replay Python's answers to looking calls (fastpath.py),
        unless something must see every such call: a user's hook, an
        observer, --trace-all, debug logging, fake ownership."""
        from .fastpath import CACHED_CALLS
        if self.mode != Mode.DEFAULT or self.observers or self.logs_every_call or \
                self.fake_ownership is not None or \
                os.environ.get("UMLPY_NO_FASTPATH"):
            return
        numbers = [SYSCALL_NUMBERS[name] for name in CACHED_CALLS]
        # a notified call is looked up in the same cache by notify.c
        if any(policy[nr].action not in (Action.PYTHON, Action.NOTIFY) or
               (policy[nr].guard and policy[nr].action != Action.NOTIFY) or
               self.dispatcher.hooks.get(nr) for nr in numbers):
            return
        self.fs.union.on_change.append(self.fastpath.clear)
        self.scratch.on_slot = self.fastpath.scratch_moved
        from .fastpath import NativeWorkdirs
        self.vfs.keep_workdirs(NativeWorkdirs(self.tracer))
        self.fastpath.enable(numbers)
        self.fastpath.answer_trees(self.fs.union.idmap)

    @staticmethod
    def _foreground_tty():
        """0 if our stdin is a terminal whose foreground group is ours."""
        try:
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                return 0
        except OSError:
            pass
        return -1

    def _give_terminal_to(self, pgrp):
        import signal       # not at start-up: it imports enum
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(0, pgrp)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, old)

    def _init_stopped(self, tid):
        """The guest's init (our terminal's foreground) stopped, as on ^Z:
        stop umlpy too, so the shell that started us sees the job stop, and
        carry on the guest when we are continued."""
        self.tracer.listen(tid)
        if not self.tty_handed:
            return
        import signal
        self._give_terminal_to(os.getpgrp())
        os.kill(os.getpid(), signal.SIGTSTP)
        # continued (fg or bg)
        if os.tcgetpgrp(0) == os.getpgrp():
            self._give_terminal_to(tid)
        try:
            os.killpg(tid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def _rlimits(self):
        """No core dumps, ever: the kernel would write them into the
        process's host working directory, a directory of the host's own
        tree.  Then the sandbox's --nofile/--memory/--cpu-time."""
        out = [(RLIMIT_CORE, 0)]
        if self.limits is not None:
            out += self.limits.rlimits()
        else:
            # locked memory on purpose, in every sandbox (limits.memlock_limit)
            from .limits import memlock_limit
            out.append((RLIMIT_MEMLOCK, memlock_limit()))
        return out

    def _check_cpu_controls(self):
        """CPU controls hold only in a cgroup of the sandbox's own: one line,
        before anything starts, where this host gives umlpy none."""
        from . import cgroups
        cpu = cgroups.CpuControls.from_config(self.config)
        if not cpu.any():
            return
        missing = cpu.missing(cgroups.available())
        if missing:
            raise BadInput(f"--cpus, --cpu-shares and --cpuset-*: need the sandbox's own "
                           f"cgroup ({', '.join(missing)} controller), which umlpy gets only "
                           "as root on a host with cgroup v1's controllers")

    def _join_cgroup(self, pid):
        """Put the first process in the sandbox's own cgroup, where the host
        offers one, before it runs guest code (it waits at its execve)."""
        limits = self.limits
        from . import cgroups
        cpu = cgroups.CpuControls.from_config(self.config)
        if not cpu.any() and (limits is None or not (limits.memory or limits.pids or
                                                     limits.cpu_time)):
            return
        parents = cgroups.available()
        if not parents:
            return
        try:
            self.cgroup = cgroups.SandboxCgroup(f"umlpy-{os.getpid()}-{pid}", limits, parents,
                                                self.config.cgroup_path, cpu)
            self.cgroup.add(pid)
        except OSError as e:
            if cpu.any():
                # nothing else would hold the CPU controls: no sandbox
                raise UmlpyError(f"umlpy: cannot make the sandbox's cgroup for its CPU "
                                 f"controls: {e.strerror or e}") from None
            # The guest kernel's own enforcement still holds: a host that
            # shows its controllers but refuses us one (a container's
            # cgroupfs) is not an error of the run's.
            self.cgroup_error = e.strerror
            if self.cgroup is not None:
                self.cgroup.close()
            self.cgroup = None

    # the loop -----------------------------------------------------------
    def run(self):
        """Serve the guest until every guest process is gone; returns the
        first process's exit status (128+N if signal N killed it)."""
        if self.processes.main is None:
            raise UmlpyError("nothing to run: spawn a process first")
        self.tracer.forward_signals_to(self.processes.main)
        limits = self.limits
        if limits is not None and (limits.memory is not None or limits.cpu_time is not None):
            from .limits import Watchdog
            self.watchdog = Watchdog(self, limits)
            self.watchdog.start()
        try:
            self._loop()
        except BaseException:
            self.kill_all()
            self._drain()
            raise
        finally:
            if self.notifications is not None:
                self.notifications.stop()
            if self.watchdog is not None:
                self.watchdog.stop()
                if self.watchdog.reason:
                    sys.stderr.write(f"umlpy: {self.watchdog.reason}\n")
            if self.cgroup is not None:
                if self.cgroup.oom_kills() and (self.watchdog is None or
                                                not self.watchdog.reason):
                    sys.stderr.write(f"umlpy: memory limit of {self.limits.memory} bytes "
                                     "reached: the kernel killed a guest process\n")
                self.cgroup.close()
            self.tracer.restore_signals()
            if self.on_guest_gone is not None and self.main_status is not None:
                # before the teardown, which is no one's wait (a warm sandbox's caller)
                self.on_guest_gone(exit_status_of(self.main_status))
            if self.fs is not None:
                self.fs.close()
            if self.id_block is not None:
                self.id_block.release()
            if self.terminal is not None:
                self.terminal.restore(self.tty_handed, self.init_host_pid)
                self.terminal.close()
            elif self.tty_handed:
                self._give_terminal_to(os.getpgrp())
        if self._status_fd is not None:
            self._report_setup_failure()
        return exit_status_of(self.main_status)

    def _loop(self):
        tracer = self.tracer
        ev = tracer.ev
        wait = tracer.wait
        on_syscall = self._on_syscall
        lock = self.lock
        while True:
            kind = wait()
            with lock:
                if not self._on_event(kind, ev, on_syscall):
                    return

    def _on_event(self, kind, ev, on_syscall):
        """One event of the ptrace loop; False when no guest is left."""
        tracer = self.tracer
        if kind == T.EV_SYSCALL:
            on_syscall(ev)
        elif kind == T.EV_EXIT:
            self._on_exit(ev.pid, ev.status)
        elif kind == T.EV_CHILD:
            if self.processes.child_created(ev.pid, ev.msg, ev.ptrace_event) is not None:
                self._fs_child(ev.pid, ev.msg, ev.ptrace_event)
                if self.fake_ids is not None:
                    self.fake_ids.child_created(ev.pid, ev.msg)
            tracer.cont(ev.pid)
        elif kind == T.EV_NEW:
            self.processes.first_stop(ev.pid)
            tracer.cont(ev.pid)
        elif kind == T.EV_EXEC:
            self.processes.exec_done(ev.pid, ev.msg)
            self._fs_exec(ev.pid, ev.msg)
            if self.fake_ids is not None:
                self.fake_ids.exec_done(ev.pid, ev.msg)
            if ev.pid == self.processes.main and self._status_fd is not None:
                os.close(self._status_fd)     # exec succeeded
                self._status_fd = None
            tracer.cont(ev.pid)
        elif kind == T.EV_SYSCALL_EXIT:
            self._on_syscall_exit(ev)
        elif kind == T.EV_GROUP_STOP:
            self._init_stopped(ev.pid)
        elif kind == T.EV_SIGNAL:
            if ev.pid == self.init_host_pid:
                self._signal_init(ev.pid, ev.sig)
            else:
                tracer.cont(ev.pid, ev.sig)
        elif kind == T.EV_NONE:
            return False
        return True

    def _on_syscall(self, ev):
        self.syscalls_seen += 1
        if self._listener_at is not None:
            self._take_listener(ev.pid)
        nr = ev.nr
        entry = self.table.by_nr.get(nr) if 0 <= nr < TABLE_SIZE else None
        call = SyscallCall(self, ev.pid, nr, tuple(ev.args), entry)
        try:
            decision = self.dispatcher.decide(call)
        except HandlerFailure as e:
            decision = self._handler_failed(call, e)
        if self.observers:
            decision = self._observed(call, decision)
        self.apply(call, decision)

    def observe(self, observer):
        """Register an observer of every syscall the guest kernel decides:
        observer.on_enter(call, decision) -> token, then
        observer.on_exit(token, result) when the call returns (result None:
        it never did, as exit or a killed thread), in the order calls return.
        Tracing wants every call: use Mode.TRACE_ALL."""
        self.observers.append(observer)
        self.fastpath.disable()         # every call must reach the observers

    def _observed(self, call, decision):
        tokens = [(o, o.on_enter(call, decision)) for o in self.observers]
        if isinstance(decision, Return):
            for o, token in tokens:
                o.on_exit(token, decision.value)
            return decision

        def report(result):
            for o, token in tokens:
                o.on_exit(token, result)
        self._observed_pending[call.tid] = report
        inner = decision.on_exit if isinstance(decision, AllowThen) else None
        rewrite = decision.rewrite if isinstance(decision, AllowThen) else \
            decision if isinstance(decision, Rewrite) else None

        def on_exit(call, result):
            replaced = inner(call, result) if inner is not None else None
            self._observed_pending.pop(call.tid, None)
            report(result if replaced is None else replaced)
            return replaced
        return AllowThen(on_exit, rewrite=rewrite)

    def _handler_failed(self, call, error):
        """A bug of the guest kernel's (a handler raised) fails the call
        closed, with EFAULT, instead of ending the sandbox: one guest must
        not bring down the tracer.  Said once per handler and error type;
        UMLPY_DEBUG=1 raises it instead.  A thread that died in the middle
        of its stop (ESRCH from the tracer) is no error: its exit comes next."""
        if isinstance(error.error, T.TracerError) and error.error.errno == _errno.ESRCH:
            return Return(-_errno.EFAULT)
        if os.environ.get("UMLPY_DEBUG"):
            raise error.error
        key = (call.name, type(error.error))
        if key not in self._internal_errors:
            self._internal_errors.add(key)
            sys.stderr.write(f"umlpy: internal error in the {call.name} handler: "
                             f"{error} (the call fails with EFAULT)\n")
        return Return(-_errno.EFAULT)

    def apply(self, call, decision):
        tracer, tid = self.tracer, call.tid
        if decision is ALLOW:
            tracer.cont(tid)
        elif isinstance(decision, Return):
            tracer.skip(tid, decision.value)
        elif isinstance(decision, Rewrite):
            if self._rewrite(tid, decision):
                tracer.cont(tid)
        elif isinstance(decision, AllowThen):
            if decision.rewrite is not None and not self._rewrite(tid, decision.rewrite):
                return
            self._pending_exit[tid] = (call, decision.on_exit)
            tracer.cont_to_exit(tid)
        else:
            raise TypeError(f"handler for {call.name} returned {decision!r}, "
                            "not a decision")

    def _rewrite(self, tid, rewrite):
        """Set the thread's call to rewrite's; False if the thread is gone
        (killed while it waited: its exit is reported next)."""
        try:
            self.tracer.set_syscall(tid, rewrite.nr, rewrite.args)
        except T.TracerError as e:
            if e.errno != _errno.ESRCH:
                raise
            return False
        return True

    def _on_syscall_exit(self, ev):
        pending = self._pending_exit.pop(ev.pid, None)
        if pending is not None:
            call, on_exit = pending
            try:
                result = on_exit(call, ev.retval)
            except HandlerFailure as e:
                result = self._handler_failed(call, e).value
            if result is not None:
                self.tracer.set_retval(ev.pid, result)
        self.tracer.cont(ev.pid)

    def _signal_init(self, tid, sig):
        """The guest's init would drop a signal left at its default action;
        apply that action as for an ordinary process."""
        action = default_action(sig)
        if (sig == SIGSTOP or action == "ignore"
                or procfs.signal_disposition(tid, sig) != "default"):
            self.tracer.cont(tid, sig)
        elif action == "stop":
            self.tracer.cont(tid, 0)
            os.kill(tid, SIGSTOP)       # from outside, init honours SIGSTOP
        else:
            # killed while still stopped: resumed first, it would go on
            # (yes: the write's EPIPE, an error message, exit status 1)
            self.kill_init(sig)
            self.tracer.cont(tid, 0)

    def kill_init(self, sig):
        """Kill the guest's init as if by sig (the host only lets SIGKILL
        through, so the exit status is made to tell sig)."""
        if self.init_host_pid is not None and self.init_killed_by is None:
            self.init_killed_by = sig
            try:
                os.kill(self.init_host_pid, SIGKILL)
            except ProcessLookupError:
                pass

    def _fs_child(self, parent, child, event=None):
        vfs = self.vfs
        try:
            vfs.child_created(parent, child)
        except (OSError, ValueError):
            return
        ptgid, ctgid = vfs.tgid_of(parent), vfs.tgid_of(child)
        if ptgid != ctgid:
            self.scratch.inherit(ptgid, ctgid, shares_memory=event == VFORK and
                                 self._shares_memory(parent))
            if event == FORK and self.scratch.wants_premap(ptgid):
                self._premap_scratch(parent, ptgid)

    def _shares_memory(self, parent):
        """Whether the child parent's vfork event is about runs in the
        parent's address space (vfork, or clone with CLONE_VM), read from
        the parent's registers at the event stop, inside the call."""
        try:
            regs = self.tracer.get_regs(parent)
        except T.TracerError:
            return False
        nr = regs.orig_rax
        return nr == SYSCALL_NUMBERS["vfork"] or \
            (nr == SYSCALL_NUMBERS["clone"] and bool(regs.rdi & CLONE_VM))

    def _premap_scratch(self, tid, tgid):
        """Map a forking process's scratch memory at its fork's exit stop
        (not at a vfork's: the parent waits for the child there), so the
        children it forks next inherit it, sealed, instead of each mapping
        its own for its exec (two injected calls, about 0.2 ms)."""
        try:
            self.tracer.to_syscall_exit(tid)
            self.scratch.slot(tid, tgid)
        except (T.TracerError, OSError):
            pass        # killed meanwhile, or a guest filter: the children map their own

    def _fs_exec(self, tid, former_tid):
        vfs = self.vfs
        exe = self.pending_exe.pop(former_tid, None)
        if former_tid != tid:
            vfs.tgids.pop(former_tid, None)
            vfs.thread_gone(former_tid)
        tgid = vfs.tgids.get(tid, tid)
        vfs.tgids[tid] = tgid
        if exe is not None:
            vfs.exe[tgid] = exe
        self.scratch.forget(tgid, former_tid)
        self.listings.forget_threads((tid, former_tid))

    def _on_exit(self, tid, status):
        self.processes.exited(tid)
        if self.fake_ids is not None:
            self.fake_ids.exited(tid)
        if self.vfs is not None:
            tgid = self.vfs.tgids.get(tid)
            if tgid is not None:
                self.scratch.thread_exited(tgid, tid)
                if tgid == tid:
                    self.scratch.forget(tgid)
            self.vfs.exited(tid)
            self.pending_exe.pop(tid, None)
        self._pending_exit.pop(tid, None)
        report = self._observed_pending.pop(tid, None)
        if report is not None:
            report(None)
        if tid == self.processes.main:
            # Like the init of a pid namespace: when the first process is
            # gone, the rest of the sandbox goes with it.
            if self.init_killed_by is not None and os.WIFSIGNALED(status) \
                    and os.WTERMSIG(status) == SIGKILL:
                status = self.init_killed_by        # a wait status "killed by sig"
            self.main_status = status
            self.tracer.forward_signals_to(0)
            self.kill_all()

    def kill_all(self):
        if self.opener is not None:
            self.opener.close()
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
                hint = ""
                if failure.errno == _errno.EACCES and self._drops_root():
                    hint = " (the guest is nobody on the host; --host-root keeps root)"
                raise CommandNotExecutable(f"{name}: {os.strerror(failure.errno)}{hint}")
            raise CommandNotFound(f"{name}: {os.strerror(failure.errno)}")
        if failure.stage in (T.lib.UMLPY_SETUP_CHROOT, T.lib.UMLPY_SETUP_CHDIR):
            raise BadInput(f"cannot start {name}: {failure}")
        hint = ""
        if failure.stage in (T.lib.UMLPY_SETUP_USERNS, T.lib.UMLPY_SETUP_ID_MAP,
                             T.lib.UMLPY_SETUP_MOUNT_PROC, T.lib.UMLPY_SETUP_SYNC):
            hint = " (are user namespaces disabled? --pid-host runs without them)"
        raise UmlpyError(f"cannot start {name}: {failure}{hint}")


def run(argv, env=None, cwd=None, root=None, mode=None, **options):
    """Run argv in a throwaway sandbox; returns its exit status.  options
    are the sandbox's (umlpy/config/options.py: hostname, root, ...)."""
    kernel = GuestKernel(mode, **options)
    kernel.spawn(argv, env=env, cwd=cwd, root=root)
    return kernel.run()

