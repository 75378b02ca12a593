"""Names strace prints for numbers and flag bits (x86_64 Linux values)."""
import errno as _errno
import os

# errno -------------------------------------------------------------------
ERRNO_NAMES = dict(_errno.errorcode)
ERRNO_NAMES.update({_errno.EAGAIN: "EAGAIN", _errno.EDEADLK: "EDEADLK",
                    _errno.ENOTSUP: "EOPNOTSUPP"})
# the kernel's restart codes: a tracer sees them at a syscall-exit stop
KERNEL_ERRNOS = {
    512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    513: ("ERESTARTNOINTR", "To be restarted"),
    514: ("ERESTARTNOHAND", "To be restarted if no handler"),
    515: ("ENOIOCTLCMD", "No ioctl command"),
    516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
}
ERRNO_NUMBERS = {name: nr for nr, name in ERRNO_NAMES.items()}
ERRNO_NUMBERS.update({"EWOULDBLOCK": _errno.EWOULDBLOCK, "EDEADLOCK": _errno.EDEADLK,
                      "ENOTSUP": _errno.ENOTSUP})
ERRNO_NUMBERS.update({name: nr for nr, (name, _) in KERNEL_ERRNOS.items()})


def errno_name(err):
    if err in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[err][0]
    return ERRNO_NAMES.get(err, str(err))


def errno_text(err):
    if err in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[err][1]
    return os.strerror(err)


# signals -----------------------------------------------------------------
_SIG = ["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1",
        "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP",
        "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
        "IO", "PWR", "SYS"]
SIGNALS = {i + 1: name for i, name in enumerate(_SIG)}
SIGNALS[32] = "RTMIN"
for _n in range(33, 65):
    SIGNALS[_n] = f"RT_{_n - 32}"
SIGNAL_NUMBERS = {name: nr for nr, name in SIGNALS.items()}
SIGNAL_NUMBERS.update({"POLL": 29, "IOT": 6, "CLD": 17})


def signal_name(sig):
    """SIGTERM; 0 for 0; the number when unknown."""
    if sig == 0:
        return "0"
    name = SIGNALS.get(sig)
    return "SIG" + name if name else str(sig)


# flag tables: (value, name) in the order strace prints them ---------------------
O_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
OPEN_FLAGS = [
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"),
    (0o4000000, "__O_SYNC"), (0o10000, "O_DSYNC"), (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"),
    (0o20000000, "__O_TMPFILE"), (0o200000, "O_DIRECTORY"), (0o20000, "FASYNC"),
]
O_CREAT, O_TMPFILE = 0o100, 0o20200000
PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (8, "PROT_SEM"),
        (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP")]
MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
MAP_FLAGS = [
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"),
    (0x4000000, "MAP_UNINITIALIZED"),
]
MREMAP = [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")]
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
           4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
           11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE",
           14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
           17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK",
           20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
           23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED", 25: "MADV_COLLAPSE",
           100: "MADV_HWPOISON", 101: "MADV_SOFT_OFFLINE"}
ACCESS = [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]
AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
            (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
            (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"),
            (0x4000, "AT_STATX_DONT_SYNC"), (0x8000, "AT_RECURSIVE")]
AT_EACCESS = [(0x200, "AT_EACCESS"), (0x100, "AT_SYMLINK_NOFOLLOW"),
              (0x1000, "AT_EMPTY_PATH")]
AT_FDCWD = -100
RENAME = [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT")]
S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG",
          0o060000: "S_IFBLK", 0o040000: "S_IFDIR", 0o020000: "S_IFCHR",
          0o010000: "S_IFIFO"}
CLONE_FLAGS = [
    (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"),
]
WAIT_OPTIONS = [(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
                (0x01000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"),
                (0x40000000, "__WALL"), (0x80000000, "__WCLONE")]
SA_FLAGS = [(1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"),
            (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"),
            (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
            (0x80000000, "SA_RESETHAND")]
SA_RESTORER = 0x04000000
SIGPROCMASK_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID",
              0x1021: "ARCH_GET_XCOMP_SUPP", 0x1022: "ARCH_GET_XCOMP_GUEST_PERM",
              0x1023: "ARCH_REQ_XCOMP_PERM", 0x5001: "ARCH_SHSTK_ENABLE",
              0x5002: "ARCH_SHSTK_DISABLE", 0x5003: "ARCH_SHSTK_LOCK",
              0x5005: "ARCH_SHSTK_STATUS"}
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
           4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
           8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS", 10: "RLIMIT_LOCKS",
           11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
           14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"}
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
         5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN",
         10: "F_SETSIG", 11: "F_GETSIG", 15: "F_SETOWN_EX", 16: "F_GETOWN_EX",
         36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE",
         1025: "F_GETLEASE", 1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC",
         1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS",
         1034: "F_GET_SEALS"}
FD_FLAGS = [(1, "FD_CLOEXEC")]
IOCTLS = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF",
          0x5409: "TCSBRK", 0x540A: "TCXONC", 0x540B: "TCFLSH", 0x540E: "TIOCSCTTY",
          0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5411: "TIOCOUTQ",
          0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD",
          0x5421: "FIONBIO", 0x5422: "TIOCNOTTY", 0x5429: "TIOCGSID",
          0x5450: "FIONCLEX", 0x5451: "FIOCLEX", 0x5452: "FIOASYNC",
          0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK", 0x80045432: "TIOCGDEV",
          0x5441: "TIOCGPTPEER", 0x802C542A: "TCGETS2", 0x402C542B: "TCSETS2"}
FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE",
             4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI",
             7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET",
             10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI",
             12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
          3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW",
          5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
          8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}
TIMER_FLAGS = [(1, "TIMER_ABSTIME")]
AF = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK",
      17: "AF_PACKET", 38: "AF_ALG", 40: "AF_VSOCK"}
SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
              5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}
SOCK_FLAGS = [(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")]
IPPROTO = {0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 6: "IPPROTO_TCP", 17: "IPPROTO_UDP",
           41: "IPPROTO_IPV6", 58: "IPPROTO_ICMPV6", 132: "IPPROTO_SCTP",
           255: "IPPROTO_RAW"}
SOL = {1: "SOL_SOCKET", 0: "SOL_IP", 6: "SOL_TCP", 17: "SOL_UDP", 41: "SOL_IPV6"}
SO = {1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE",
      6: "SO_BROADCAST", 7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE",
      10: "SO_OOBINLINE", 13: "SO_LINGER", 15: "SO_REUSEPORT", 16: "SO_PASSCRED",
      17: "SO_PEERCRED", 18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO_OLD",
      21: "SO_SNDTIMEO_OLD", 38: "SO_PROTOCOL", 39: "SO_DOMAIN"}
MSG_FLAGS = [(1, "MSG_OOB"), (2, "MSG_PEEK"), (4, "MSG_DONTROUTE"), (8, "MSG_CTRUNC"),
             (0x20, "MSG_TRUNC"), (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"),
             (0x100, "MSG_WAITALL"), (0x4000, "MSG_NOSIGNAL"), (0x8000, "MSG_MORE"),
             (0x10000, "MSG_WAITFORONE"), (0x40000000, "MSG_CMSG_CLOEXEC")]
SHUT = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}
POLL_EVENTS = [(1, "POLLIN"), (2, "POLLPRI"), (4, "POLLOUT"), (8, "POLLERR"),
               (0x10, "POLLHUP"), (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"),
               (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"),
               (0x400, "POLLMSG"), (0x2000, "POLLRDHUP")]
EPOLL_CTL = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
CLOEXEC_FLAG = [(0o2000000, "O_CLOEXEC")]
NONBLOCK_CLOEXEC = [(0o4000, "O_NONBLOCK"), (0o2000000, "O_CLOEXEC")]
EFD = [(1, "EFD_SEMAPHORE"), (0o4000, "EFD_NONBLOCK"), (0o2000000, "EFD_CLOEXEC")]
MFD = [(1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"),
       (8, "MFD_NOEXEC_SEAL"), (0x10, "MFD_EXEC")]
EPOLL_CLOEXEC = [(0o2000000, "EPOLL_CLOEXEC")]
FADVISE = {0: "POSIX_FADV_NORMAL", 1: "POSIX_FADV_RANDOM", 2: "POSIX_FADV_SEQUENTIAL",
           3: "POSIX_FADV_WILLNEED", 4: "POSIX_FADV_DONTNEED", 5: "POSIX_FADV_NOREUSE"}
FLOCK = [(1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN")]
PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
         4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
         22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP", 23: "PR_CAPBSET_READ",
         36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
         38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT",
         0x59616d61: "PR_SET_PTRACER"}
WHICH_RUSAGE = {0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}
ITIMERS = {0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"}
CLOSE_RANGE = [(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")]
RESOLVE = [(1, "RESOLVE_NO_XDEV"), (2, "RESOLVE_NO_MAGICLINKS"),
           (4, "RESOLVE_NO_SYMLINKS"), (8, "RESOLVE_BENEATH"), (0x10, "RESOLVE_IN_ROOT"),
           (0x20, "RESOLVE_CACHED")]
STATX_MASK = [(1, "STATX_TYPE"), (2, "STATX_MODE"), (4, "STATX_NLINK"), (8, "STATX_UID"),
              (0x10, "STATX_GID"), (0x20, "STATX_ATIME"), (0x40, "STATX_MTIME"),
              (0x80, "STATX_CTIME"), (0x100, "STATX_INO"), (0x200, "STATX_SIZE"),
              (0x400, "STATX_BLOCKS"), (0x800, "STATX_BTIME"), (0x1000, "STATX_MNT_ID"),
              (0x2000, "STATX_DIOALIGN")]
INOTIFY_INIT = [(0o4000, "IN_NONBLOCK"), (0o2000000, "IN_CLOEXEC")]


def flags(value, table, zero="0", hex_rest=True):
    """FLAG_A|FLAG_B|0x40 for value over [(bit, name), ...]."""
    names = []
    for bit, name in table:
        if bit and value & bit == bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(f"{value:#x}" if hex_rest else str(value))
    return "|".join(names) if names else zero


def enum(value, table, fmt="{:#x}"):
    name = table.get(value)
    return name if name is not None else fmt.format(value)
