"""Names strace prints for numbers and flag bits (x86_64 Linux values)."""
import errno as _errno
import os

from ..abi import fcntl as _fcntl, ioctl as _ioctl, mman as _mman, resource as _resource, \
    sched as _sched, signal as _signal, socket as _socket, stat as _stat, time as _time, \
    uio as _uio

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
SIGNALS = {getattr(_signal, "SIG" + name): name for name in _SIG}
SIGNALS[_signal.SIGRTMIN] = "RTMIN"
for _n in range(_signal.SIGRTMIN + 1, _signal.SIGRTMAX + 1):
    SIGNALS[_n] = f"RT_{_n - _signal.SIGRTMIN}"
SIGNAL_NUMBERS = {name: nr for nr, name in SIGNALS.items()}
SIGNAL_NUMBERS.update({name: getattr(_signal, "SIG" + name) for name in ("POLL", "IOT", "CLD")})


def signal_name(sig):
    """SIGTERM; 0 for 0; the number when unknown."""
    if sig == 0:
        return "0"
    name = SIGNALS.get(sig)
    return "SIG" + name if name else str(sig)


# flag tables: (value, name) in the order strace prints them ---------------------
# The values are abi's (umlpy/abi): a table names them, never writes them again.
def _named(module, names):
    return [(getattr(module, name), name) for name in names.split()]


def _enum(module, names):
    return {getattr(module, name): name for name in names.split()}


O_ACCMODE = _enum(_fcntl, "O_RDONLY O_WRONLY O_RDWR O_ACCMODE")
OPEN_FLAGS = _named(_fcntl, "O_CREAT O_EXCL O_NOCTTY O_TRUNC O_APPEND O_NONBLOCK O_SYNC "
                    "__O_SYNC O_DSYNC O_DIRECT O_LARGEFILE O_NOFOLLOW O_NOATIME O_CLOEXEC "
                    "O_PATH O_TMPFILE __O_TMPFILE O_DIRECTORY FASYNC")
O_CREAT, O_TMPFILE = _fcntl.O_CREAT, _fcntl.O_TMPFILE
PROT = _named(_mman, "PROT_READ PROT_WRITE PROT_EXEC PROT_SEM PROT_GROWSDOWN PROT_GROWSUP")
MAP_TYPE = _enum(_mman, "MAP_SHARED MAP_PRIVATE MAP_SHARED_VALIDATE")
MAP_FLAGS = _named(_mman, "MAP_FIXED MAP_ANONYMOUS MAP_32BIT MAP_GROWSDOWN MAP_DENYWRITE "
                   "MAP_EXECUTABLE MAP_LOCKED MAP_NORESERVE MAP_POPULATE MAP_NONBLOCK "
                   "MAP_STACK MAP_HUGETLB MAP_SYNC MAP_FIXED_NOREPLACE MAP_UNINITIALIZED")
MREMAP = _named(_mman, "MREMAP_MAYMOVE MREMAP_FIXED MREMAP_DONTUNMAP")
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
           4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
           11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE",
           14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
           17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK",
           20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
           23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED", 25: "MADV_COLLAPSE",
           100: "MADV_HWPOISON", 101: "MADV_SOFT_OFFLINE"}
ACCESS = _named(_fcntl, "R_OK W_OK X_OK")
AT_FLAGS = _named(_fcntl, "AT_SYMLINK_NOFOLLOW AT_REMOVEDIR AT_SYMLINK_FOLLOW AT_NO_AUTOMOUNT "
                  "AT_EMPTY_PATH AT_STATX_FORCE_SYNC AT_STATX_DONT_SYNC AT_RECURSIVE")
AT_EACCESS = _named(_fcntl, "AT_EACCESS AT_SYMLINK_NOFOLLOW AT_EMPTY_PATH")
AT_FDCWD = _fcntl.AT_FDCWD
RENAME = _named(_fcntl, "RENAME_NOREPLACE RENAME_EXCHANGE RENAME_WHITEOUT")
S_IFMT = _enum(_stat, "S_IFSOCK S_IFLNK S_IFREG S_IFBLK S_IFDIR S_IFCHR S_IFIFO")
CLONE_FLAGS = _named(_sched, "CLONE_VM CLONE_FS CLONE_FILES CLONE_SIGHAND CLONE_PIDFD "
                     "CLONE_PTRACE CLONE_VFORK CLONE_PARENT CLONE_THREAD CLONE_NEWNS "
                     "CLONE_SYSVSEM CLONE_SETTLS CLONE_PARENT_SETTID CLONE_CHILD_CLEARTID "
                     "CLONE_DETACHED CLONE_UNTRACED CLONE_CHILD_SETTID CLONE_NEWCGROUP "
                     "CLONE_NEWUTS CLONE_NEWIPC CLONE_NEWUSER CLONE_NEWPID CLONE_NEWNET "
                     "CLONE_IO")
WAIT_OPTIONS = _named(_sched, "WNOHANG WUNTRACED WEXITED WCONTINUED WNOWAIT __WNOTHREAD "
                      "__WALL __WCLONE")
SA_FLAGS = _named(_signal, "SA_NOCLDSTOP SA_NOCLDWAIT SA_SIGINFO SA_RESTORER SA_ONSTACK "
                  "SA_RESTART SA_NODEFER SA_RESETHAND")
SA_RESTORER = _signal.SA_RESTORER
SIGPROCMASK_HOW = _enum(_signal, "SIG_BLOCK SIG_UNBLOCK SIG_SETMASK")
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID",
              0x1021: "ARCH_GET_XCOMP_SUPP", 0x1022: "ARCH_GET_XCOMP_GUEST_PERM",
              0x1023: "ARCH_REQ_XCOMP_PERM", 0x5001: "ARCH_SHSTK_ENABLE",
              0x5002: "ARCH_SHSTK_DISABLE", 0x5003: "ARCH_SHSTK_LOCK",
              0x5005: "ARCH_SHSTK_STATUS"}
RLIMITS = _enum(_resource, "RLIMIT_CPU RLIMIT_FSIZE RLIMIT_DATA RLIMIT_STACK RLIMIT_CORE "
                "RLIMIT_RSS RLIMIT_NPROC RLIMIT_NOFILE RLIMIT_MEMLOCK RLIMIT_AS RLIMIT_LOCKS "
                "RLIMIT_SIGPENDING RLIMIT_MSGQUEUE RLIMIT_NICE RLIMIT_RTPRIO RLIMIT_RTTIME")
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
SEEK = _enum(_fcntl, "SEEK_SET SEEK_CUR SEEK_END SEEK_DATA SEEK_HOLE")
FCNTL = _enum(_fcntl, "F_DUPFD F_GETFD F_SETFD F_GETFL F_SETFL F_GETLK F_SETLK F_SETLKW "
              "F_SETOWN F_GETOWN F_SETSIG F_GETSIG F_SETOWN_EX F_GETOWN_EX F_OFD_GETLK "
              "F_OFD_SETLK F_OFD_SETLKW F_SETLEASE F_GETLEASE F_NOTIFY F_DUPFD_CLOEXEC "
              "F_SETPIPE_SZ F_GETPIPE_SZ F_ADD_SEALS F_GET_SEALS")
FD_FLAGS = _named(_fcntl, "FD_CLOEXEC")
IOCTLS = _enum(_ioctl, "TCGETS TCSETS TCSETSW TCSETSF TCSBRK TCXONC TCFLSH TIOCSCTTY "
               "TIOCGPGRP TIOCSPGRP TIOCOUTQ TIOCGWINSZ TIOCSWINSZ FIONREAD FIONBIO "
               "TIOCNOTTY TIOCGSID FIONCLEX FIOCLEX FIOASYNC TIOCGPTN TIOCSPTLCK TIOCGDEV "
               "TIOCGPTPEER TCGETS2 TCSETS2")
FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE",
             4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI",
             7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET",
             10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI",
             12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}
CLOCKS = _enum(_time, "CLOCK_REALTIME CLOCK_MONOTONIC CLOCK_PROCESS_CPUTIME_ID "
               "CLOCK_THREAD_CPUTIME_ID CLOCK_MONOTONIC_RAW CLOCK_REALTIME_COARSE "
               "CLOCK_MONOTONIC_COARSE CLOCK_BOOTTIME CLOCK_REALTIME_ALARM "
               "CLOCK_BOOTTIME_ALARM CLOCK_TAI")
TIMER_FLAGS = _named(_time, "TIMER_ABSTIME")
AF = _enum(_socket, "AF_UNSPEC AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET AF_ALG AF_VSOCK")
SOCK_TYPES = _enum(_socket, "SOCK_STREAM SOCK_DGRAM SOCK_RAW SOCK_RDM SOCK_SEQPACKET "
                   "SOCK_DCCP SOCK_PACKET")
SOCK_FLAGS = _named(_socket, "SOCK_NONBLOCK SOCK_CLOEXEC")
IPPROTO = _enum(_socket, "IPPROTO_IP IPPROTO_ICMP IPPROTO_TCP IPPROTO_UDP IPPROTO_IPV6 "
                "IPPROTO_ICMPV6 IPPROTO_SCTP IPPROTO_RAW")
SOL = _enum(_socket, "SOL_SOCKET SOL_IP SOL_TCP SOL_UDP SOL_IPV6")
SO = _enum(_socket, "SO_DEBUG SO_REUSEADDR SO_TYPE SO_ERROR SO_DONTROUTE SO_BROADCAST "
           "SO_SNDBUF SO_RCVBUF SO_KEEPALIVE SO_OOBINLINE SO_LINGER SO_REUSEPORT "
           "SO_PASSCRED SO_PEERCRED SO_RCVLOWAT SO_SNDLOWAT SO_RCVTIMEO_OLD "
           "SO_SNDTIMEO_OLD SO_PROTOCOL SO_DOMAIN")
MSG_FLAGS = _named(_socket, "MSG_OOB MSG_PEEK MSG_DONTROUTE MSG_CTRUNC MSG_TRUNC "
                   "MSG_DONTWAIT MSG_EOR MSG_WAITALL MSG_NOSIGNAL MSG_MORE MSG_WAITFORONE "
                   "MSG_CMSG_CLOEXEC")
SHUT = _enum(_socket, "SHUT_RD SHUT_WR SHUT_RDWR")
POLL_EVENTS = _named(_uio, "POLLIN POLLPRI POLLOUT POLLERR POLLHUP POLLNVAL POLLRDNORM "
                     "POLLRDBAND POLLWRNORM POLLWRBAND POLLMSG POLLRDHUP")
EPOLL_CTL = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
CLOEXEC_FLAG = _named(_fcntl, "O_CLOEXEC")
NONBLOCK_CLOEXEC = _named(_fcntl, "O_NONBLOCK O_CLOEXEC")
# eventfd's, epoll's and inotify's flags are open's bits under other names
EFD = [(1, "EFD_SEMAPHORE"), (_fcntl.O_NONBLOCK, "EFD_NONBLOCK"),
       (_fcntl.O_CLOEXEC, "EFD_CLOEXEC")]
MFD = _named(_mman, "MFD_CLOEXEC MFD_ALLOW_SEALING MFD_HUGETLB MFD_NOEXEC_SEAL MFD_EXEC")
EPOLL_CLOEXEC = [(_fcntl.O_CLOEXEC, "EPOLL_CLOEXEC")]
FADVISE = _enum(_fcntl, "POSIX_FADV_NORMAL POSIX_FADV_RANDOM POSIX_FADV_SEQUENTIAL "
                "POSIX_FADV_WILLNEED POSIX_FADV_DONTNEED POSIX_FADV_NOREUSE")
FLOCK = _named(_fcntl, "LOCK_SH LOCK_EX LOCK_NB LOCK_UN")
PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE",
         4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
         22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP", 23: "PR_CAPBSET_READ",
         36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
         38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT",
         0x59616d61: "PR_SET_PTRACER"}
WHICH_RUSAGE = {0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}
ITIMERS = _enum(_time, "ITIMER_REAL ITIMER_VIRTUAL ITIMER_PROF")
CLOSE_RANGE = [(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")]
RESOLVE = _named(_fcntl, "RESOLVE_NO_XDEV RESOLVE_NO_MAGICLINKS RESOLVE_NO_SYMLINKS "
                 "RESOLVE_BENEATH RESOLVE_IN_ROOT RESOLVE_CACHED")
STATX_MASK = _named(_stat, "STATX_TYPE STATX_MODE STATX_NLINK STATX_UID STATX_GID STATX_ATIME "
                    "STATX_MTIME STATX_CTIME STATX_INO STATX_SIZE STATX_BLOCKS STATX_BTIME "
                    "STATX_MNT_ID STATX_DIOALIGN")
INOTIFY_INIT = _named(_fcntl, "IN_NONBLOCK IN_CLOEXEC")


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
