"""Limits: the rlimit resources and struct rlimit, the path, symlink and xattr
limits of the VFS, the overflow ids a user namespace shows for unmapped ids."""
from .layout import Layout

RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE = 0, 1, 2, 3, 4
RLIMIT_RSS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS = 5, 6, 7, 8, 9
RLIMIT_LOCKS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE = 10, 11, 12, 13
RLIMIT_RTPRIO, RLIMIT_RTTIME = 14, 15
RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF
RLIMIT = Layout("rlimit", (("rlim_cur", "Q"), ("rlim_max", "Q")))

PATH_MAX = 4096
NAME_MAX = 255
MAXSYMLINKS = 40
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536

OVERFLOW_UID = OVERFLOW_GID = 65534

# credentials: a uid_t or gid_t as the id calls read and write it, and how
# many supplementary groups a thread may have
ID_T = Layout("uid_t", (("id", "I"),))
NGROUPS_MAX = 65536
