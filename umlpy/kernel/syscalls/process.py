"""Processes, threads and credentials (the process family; scheduling is
sched.py's)."""
from errno import EAGAIN, EPERM, ESRCH

from ...abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW
from ...abi.sched import CLONE_UNTRACED, PTRACE_TRACEME
from ...abi.seccomp import SECCOMP_FILTER_FLAG_NEW_LISTENER
from .. import procfs
from ..decisions import ALLOW, Rewrite, fail, then
from .names import SYSCALL_NUMBERS
from .registry import TABLE, Guard

FAMILY = "process"

TABLE.passthrough(
    FAMILY,
    "fork", "vfork", "exit", "exit_group",
    "wait4", "waitid",
    "getpid", "getppid", "gettid", "set_tid_address",
    "getpgid", "getpgrp", "setsid", "getsid",
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setfsuid", "setfsgid", "getgroups", "setgroups", "capget", "capset",
    "prctl", "arch_prctl", "personality",
    "getrusage", "times",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    "set_robust_list", "get_robust_list", "rseq",
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    "pidfd_open", "kcmp", "process_madvise",
    "process_mrelease", "unshare", "setns",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
)

@TABLE.guarded(FAMILY, "seccomp", Guard(1, mask=SECCOMP_FILTER_FLAG_NEW_LISTENER),
               why="a filter with a user-space listener (SECCOMP_RET_USER_NOTIF) outranks the "
               "sandbox's stops: the guest could let its own calls through unmediated")
def sys_seccomp(call):
    # A guest's own filter may only restrict it further: every other verdict
    # ranks below TRACE or ends the call; USER_NOTIF with CONTINUE does not.
    return fail(EPERM)



@TABLE.emulated(FAMILY, "setpgid", "the sandbox's init may not leave its own "
                "process group (EPERM): Linux would never finish its exit")
def sys_setpgid(call):
    # When a pid-namespace init exits, Linux waits for every other pid of
    # the namespace to be freed; the group init sits in keeps its leader's
    # pid allocated, so an init in another process's group hangs forever
    # (and unkillably) in zap_pid_ns_processes.
    kernel = call.kernel
    if kernel.init_host_pid is None:
        return ALLOW
    pid, pgid = call.int(0), call.int(1)
    if pgid < 0:
        return ALLOW                    # EINVAL, from Linux itself
    if pid in (0, 1) and pgid not in (0, 1) and kernel.processes.is_init_thread(call.tid):
        return fail(EPERM)
    return ALLOW


@TABLE.emulated(FAMILY, "ptrace", "nested tracing is refused with EPERM; "
                "a process outside the sandbox does not exist (ESRCH)")
def sys_ptrace(call):
    if call.args[0] == PTRACE_TRACEME:
        return fail(EPERM)
    pid = call.int(1)
    if pid < 0 or call.kernel.processes.host_tid(pid) is None:
        return fail(ESRCH)
    return fail(EPERM)
def _is_protected(kernel, host_pid):
    return host_pid is not None and host_pid == kernel.protected_pid


@TABLE.emulated(FAMILY, "pidfd_getfd", "refused (EPERM) on a named sandbox's init, whose "
                "socket is its supervisor's channel; otherwise Linux's")
def sys_pidfd_getfd(call):
    kernel = call.kernel
    if kernel.protected_pid is not None and \
            _is_protected(kernel, procfs.pidfd_target(call.tid, call.int(0))):
        return fail(EPERM)
    return ALLOW


def _guest_pid_is_protected(call):
    kernel = call.kernel
    return kernel.protected_pid is not None and \
        _is_protected(kernel, kernel.processes.host_tid(call.int(0)))


@TABLE.emulated(FAMILY, "process_vm_readv", "refused (EPERM) on a named sandbox's init; "
                "otherwise Linux's")
def sys_process_vm_readv(call):
    return fail(EPERM) if _guest_pid_is_protected(call) else ALLOW


@TABLE.emulated(FAMILY, "process_vm_writev", "refused (EPERM) on a named sandbox's init; "
                "otherwise Linux's")
def sys_process_vm_writev(call):
    return fail(EPERM) if _guest_pid_is_protected(call) else ALLOW


TABLE.unsupported(
    FAMILY,
    "its flags live in guest memory where a seccomp filter cannot check "
    "them; libc falls back to clone(2)",
    "clone3",
)


@TABLE.guarded(FAMILY, "clone", Guard(0, CLONE_UNTRACED),
               why="CLONE_UNTRACED would start a child that escapes tracing")
def sys_clone(call):
    flags = call.args[0]
    if flags & CLONE_UNTRACED:
        # The flag only opts out of being traced; without it the child
        # is the same child, and it stays inside the sandbox.
        args = list(call.args)
        args[0] = flags & ~CLONE_UNTRACED
        return Rewrite(call.nr, args)
    return ALLOW




# ---- execve: the program is a guest path ---------------------------------

EXECVE = SYSCALL_NUMBERS["execve"]


def read_argv(call, addr, limit=1 << 17):
    """The guest's argv pointers (a NULL-terminated array)."""
    ptrs = []
    while addr and len(ptrs) < limit:
        chunk = call.read_some(addr, 512)
        for i in range(0, len(chunk) - 7, 8):
            p = int.from_bytes(chunk[i:i + 8], "little")
            if p == 0:
                return ptrs
            ptrs.append(p)
        if len(chunk) < 512:
            raise OSError(14, "argv runs into unmapped memory")
        addr += 512
    return ptrs


def exec_rewrite(call, task, plan, argv_addr, envp_addr, filename=None):
    """filename: the path the guest gave, which names the process (its
    comm), as Linux's execve: the program's own path by default."""
    from .fs import rewrite
    kernel = call.kernel
    kernel.pending_exe[call.tid] = plan.guest_exe
    status = task.status()
    host_path = kernel.vfs.exec_names.path(plan.host_path, filename or plan.guest_exe)
    if not plan.argv_prefix:
        return rewrite(call, "execve", host_path, argv_addr, envp_addr, status=status)
    old = read_argv(call, argv_addr)
    w = kernel.scratch_writer(call, status)
    host = w.string(host_path)
    argv0 = old[0] if old else w.string(plan.guest_exe)
    items = []
    for s in plan.argv_prefix:
        items.append(argv0 if s is None else w.string(s))
    items += old[1:] if plan.replace_argv0 else old
    vec = w.add(b"".join(p.to_bytes(8, "little") for p in items) + bytes(8))
    kernel.scratch_commit(call, w)
    return Rewrite(EXECVE, (host, vec, envp_addr))


def planner(kernel):
    """plan_exec, or the kept plans' equivalent (execplans.py)."""
    if kernel.exec_plans is not None:
        return kernel.exec_plans.plan
    from ..vfs.binfmt import plan_exec
    return plan_exec


@TABLE.emulated(FAMILY, "execve", "the program (and a #! interpreter, and the ELF "
                "loader) are guest paths resolved by the VFS")
def sys_execve(call):
    from .fs import path_arg
    vfs = call.kernel.vfs
    task = vfs.task(call.tid)
    a = call.args
    kernel = call.kernel
    try:
        plan = kernel.first_program
        if plan is not None and call.tid == kernel.processes.main:
            kernel.first_program = None
            filename = None
        else:
            filename = path_arg(call, 0)
            plan = planner(kernel)(vfs, task, AT_FDCWD, filename)
        return exec_rewrite(call, task, plan, a[1], a[2], filename)
    except OSError as e:
        return fail(e.errno)


@TABLE.emulated(FAMILY, "execveat", "as execve; AT_EMPTY_PATH runs the fd's guest object")
def sys_execveat(call):
    from .fs import path_arg
    from ..vfs.binfmt import plan_exec
    vfs = call.kernel.vfs
    task = vfs.task(call.tid)
    a = call.args
    flags = call.int(4)
    try:
        if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
            return fail(22)
        path = path_arg(call, 1) if a[1] else ""
        if path == "":
            if not flags & AT_EMPTY_PATH:
                return fail(2)
            res = vfs.resolve_fd(task, call.fd(0))
            if res is None:
                from .fs import on_fd_itself
                return on_fd_itself(call, 1)    # a memfd: the guest's own bytes
            plan = plan_exec(vfs, task, AT_FDCWD, res.path, res=res)
            # named after the file itself (Linux 6.x, begin_new_exec: an
            # AT_EMPTY_PATH exec takes the dentry's name, not "/dev/fd/N")
            filename = res.path
        else:
            plan = planner(call.kernel)(vfs, task, call.fd(0), path,
                                        not flags & AT_SYMLINK_NOFOLLOW)
            filename = path
        return exec_rewrite(call, task, plan, a[2], a[3], filename)
    except OSError as e:
        return fail(e.errno)


@TABLE.when("pids", "clone", "fork", "vfork", why="EAGAIN once the sandbox has that many "
            "threads (as a cgroup's pids.max)")
def pids_limit(call):
    """The new task is counted from the moment its call is let through
    (a slot reserved for its maker), not from its first stop: threads that
    fork at the same moment cannot all pass a count that none of their
    children is in yet.  The slot is given back if the call fails."""
    processes = call.kernel.processes
    if processes.counted() >= call.kernel.limits.pids:
        return fail(EAGAIN)
    processes.starting[call.tid] = call.nr
    return then(call.kernel.dispatcher.decide_table(call), _clone_done)


def _clone_done(call, result):
    call.kernel.processes.starting.pop(call.tid, None)
