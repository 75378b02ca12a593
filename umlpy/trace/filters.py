"""strace's syscall sets (``-e trace=SET``, the SET of ``-e inject=``):
names, classes (``%file``...), ``/regex``, ``all``/``none``, ``?name``
(tolerated when unknown) and a leading ``!`` that takes the complement.

The classes hold what strace's x86_64 table marks: TF (%file: takes a
file name), TP (%process), TN (%network), TS (%signal), TM (%memory),
TD (%desc: takes or returns a descriptor), TI (%ipc), TC (%creds) and
TCL (%clock)."""
import re

from ..errors import BadInput
from ..kernel.syscalls.names import SYSCALL_NAMES, SYSCALL_NUMBERS


def _words(text):
    return frozenset(text.split())


_FILE = _words("""
open stat lstat access truncate getcwd chdir rename mkdir rmdir creat link unlink symlink
readlink chmod chown lchown utime mknod uselib statfs pivot_root chroot acct mount
umount2 swapon swapoff quotactl setxattr lsetxattr getxattr lgetxattr listxattr
llistxattr removexattr lremovexattr utimes execve inotify_add_watch openat mkdirat
mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat
fchmodat faccessat utimensat fanotify_mark name_to_handle_at renameat2 execveat statx
open_tree move_mount fsconfig fspick openat2 faccessat2 mount_setattr fchmodat2
setxattrat getxattrat listxattrat removexattrat""")
_DESC = _words("""
read write open close fstat poll lseek mmap ioctl pread64 pwrite64 readv writev pipe
select dup dup2 sendfile fcntl flock fsync fdatasync ftruncate getdents fchdir creat
fchmod fchown fstatfs readahead fsetxattr fgetxattr flistxattr fremovexattr
epoll_create getdents64 fadvise64 epoll_wait epoll_ctl mq_open mq_timedsend
mq_timedreceive mq_notify mq_getsetattr inotify_init inotify_add_watch
inotify_rm_watch openat mkdirat mknodat fchownat futimesat newfstatat unlinkat renameat
linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll splice tee
sync_file_range vmsplice utimensat epoll_pwait signalfd timerfd_create eventfd
fallocate timerfd_settime timerfd_gettime signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev perf_event_open fanotify_init fanotify_mark
name_to_handle_at open_by_handle_at syncfs setns finit_module renameat2 memfd_create
kexec_file_load bpf execveat userfaultfd copy_file_range preadv2 pwritev2 statx
pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount
fsopen fsconfig fsmount fspick pidfd_open openat2 pidfd_getfd faccessat2
process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset
landlock_add_rule landlock_restrict_self memfd_secret process_mrelease cachestat
fchmodat2 setxattrat getxattrat listxattrat removexattrat""")
_NETWORK = _words("""
sendfile socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen
getsockname getpeername socketpair setsockopt getsockopt getpmsg putpmsg accept4
recvmmsg sendmmsg""")
_PROCESS = _words("""
clone fork vfork execve exit wait4 kill tkill exit_group tgkill waitid
rt_sigqueueinfo rt_tgsigqueueinfo execveat pidfd_send_signal clone3""")
_SIGNAL = _words("""
rt_sigaction rt_sigprocmask rt_sigreturn pause kill rt_sigpending rt_sigtimedwait
rt_sigqueueinfo rt_sigsuspend sigaltstack tkill tgkill signalfd signalfd4
rt_tgsigqueueinfo pidfd_send_signal io_uring_enter""")
_MEMORY = _words("""
mmap mprotect munmap brk mremap msync mincore madvise shmat shmdt mlock munlock
mlockall munlockall io_setup io_destroy remap_file_pages mbind set_mempolicy
get_mempolicy migrate_pages move_pages mlock2 pkey_mprotect io_uring_register
set_mempolicy_home_node map_shadow_stack mseal""")
_IPC = _words("""
shmget shmat shmctl semget semop semctl shmdt msgget msgsnd msgrcv msgctl
semtimedop""")
_CREDS = _words("""
getuid getgid setuid setgid geteuid getegid setreuid setregid getgroups setgroups
setresuid getresuid setresgid getresgid setfsuid setfsgid capget capset prctl""")
_CLOCK = _words("""
gettimeofday adjtimex time settimeofday clock_settime clock_gettime clock_getres
clock_adjtime""")
_PURE = _words("""getpid getuid getgid geteuid getegid getppid getpgrp gettid""")
_STAT = _words("stat")
_LSTAT = _words("lstat")
_FSTAT = _words("fstat newfstatat statx")
_ANYSTAT = _words("stat fstat lstat newfstatat statx")
_STATFS = _words("statfs fstatfs")

CLASSES = {
    "file": _FILE, "desc": _DESC, "network": _NETWORK, "net": _NETWORK,
    "process": _PROCESS, "signal": _SIGNAL, "memory": _MEMORY, "ipc": _IPC,
    "creds": _CREDS, "clock": _CLOCK, "pure": _PURE, "stat": _STAT, "lstat": _LSTAT,
    "fstat": _FSTAT, "%stat": _ANYSTAT, "statfs": _STATFS, "%statfs": _STATFS,
}
# the order a call's colour in the timeline is picked by (its first class)
MAIN_CLASSES = ("process", "signal", "network", "memory", "file", "desc", "ipc", "creds",
                "clock")


def classes_of(name):
    return [c for c in MAIN_CLASSES if name in CLASSES[c]]


ALL = frozenset(SYSCALL_NUMBERS)


def parse_set(text, what="trace"):
    """The syscall names text selects (a frozenset), or raise BadInput."""
    negate = text.startswith("!")
    if negate:
        text = text[1:]
    chosen = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise BadInput(f"umlpy trace: -e {what}=: empty syscall name in {text!r}")
        optional = item.startswith("?")
        if optional:
            item = item[1:]
        if item == "all":
            chosen |= ALL
        elif item == "none":
            pass
        elif item.startswith("%"):
            names = CLASSES.get(item[1:])
            if names is None:
                if optional:
                    continue
                known = ", ".join("%" + c for c in sorted(CLASSES) if not c.startswith("%"))
                raise BadInput(f"umlpy trace: -e {what}={item}: unknown syscall class "
                               f"(known: {known})")
            chosen |= names & ALL
        elif item.startswith("/"):
            try:
                rx = re.compile(item[1:])
            except re.error as e:
                raise BadInput(f"umlpy trace: -e {what}={item}: bad regular expression: {e}")
            matched = {n for n in ALL if rx.search(n)}
            if not matched and not optional:
                raise BadInput(f"umlpy trace: -e {what}={item}: no syscall matches")
            chosen |= matched
        elif item in ALL:
            chosen.add(item)
        elif item.isdigit() and int(item) in SYSCALL_NAMES:
            chosen.add(SYSCALL_NAMES[int(item)])
        elif not optional:
            raise BadInput(f"umlpy trace: -e {what}={item}: unknown syscall")
    return frozenset(ALL - chosen if negate else chosen)


class Filter:
    """Which calls a trace shows: trace= sets (the union of those given;
    all calls when none), and status= (successful, failed...)."""

    def __init__(self):
        self.names = None           # None: every call
        self.status = None          # None: any outcome

    def add_trace(self, text):
        names = parse_set(text)
        self.names = names if self.names is None else self.names | names

    def set_status(self, text):
        allowed = {"successful", "failed", "unfinished", "unavailable", "detached", "all",
                   "none"}
        items = set()
        negate = text.startswith("!")
        for item in (text[1:] if negate else text).split(","):
            if item not in allowed:
                raise BadInput(f"umlpy trace: -e status={item}: expected one of "
                               f"{', '.join(sorted(allowed))}")
            items.add(item)
        if "all" in items:
            items = {"successful", "failed", "unfinished"}
        if negate:
            items = {"successful", "failed", "unfinished"} - items
        self.status = frozenset(items)

    def selects(self, name):
        return self.names is None or name in self.names

    def outcome_ok(self, result):
        if self.status is None:
            return True
        if result is None:
            return "unfinished" in self.status
        failed = -4096 < result < 0
        return ("failed" if failed else "successful") in self.status
