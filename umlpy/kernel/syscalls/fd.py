"""Operations on open file descriptors (the fd family)."""
from .registry import TABLE

FAMILY = "fd"

TABLE.passthrough(
    FAMILY,
    "read", "write", "pread64", "pwrite64", "readv", "writev",
    "preadv", "pwritev", "preadv2", "pwritev2",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "lseek",
    "pipe", "pipe2", "select", "pselect6", "poll", "ppoll",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2",
    "eventfd", "eventfd2", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
    "fallocate", "fadvise64", "readahead", "flock", "ftruncate",
    "fsync", "fdatasync", "sync_file_range", "syncfs",
    "fstat", "fstatfs", "fchdir", "fchmod", "fchown",
    "fsetxattr", "fgetxattr", "flistxattr", "fremovexattr",
    "file_getattr", "file_setattr", "cachestat",
    "memfd_create", "memfd_secret", "userfaultfd",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents",
)

TABLE.unsupported(
    FAMILY,
    "io_uring runs file and network operations in the kernel without a "
    "syscall the sandbox could see; programs fall back to plain syscalls",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)
