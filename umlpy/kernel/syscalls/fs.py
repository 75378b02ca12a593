"""Paths, files and their metadata (the VFS family).

Until the guest VFS exists these calls run on the host's paths; the calls
that would change the host's mount table or reach past it are denied."""
from errno import EPERM

from .registry import TABLE

FAMILY = "fs"

TABLE.passthrough(
    FAMILY,
    "open", "openat", "openat2", "creat",
    "stat", "lstat", "newfstatat", "statx", "statfs", "ustat", "sysfs",
    "access", "faccessat", "faccessat2",
    "readlink", "readlinkat", "getdents", "getdents64",
    "chdir", "getcwd", "chroot", "umask",
    "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
    "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat",
    "chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat",
    "truncate", "utime", "utimes", "utimensat", "futimesat",
    "setxattr", "lsetxattr", "getxattr", "lgetxattr", "listxattr",
    "llistxattr", "removexattr", "lremovexattr",
    "setxattrat", "getxattrat", "listxattrat", "removexattrat",
    "sync", "name_to_handle_at",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "fanotify_init", "fanotify_mark",
    "statmount", "listmount",
)

TABLE.denied(
    FAMILY, EPERM,
    "changes the host's mount table; the guest's own mounts come with the VFS",
    "mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "open_tree", "open_tree_attr", "mount_setattr",
)
TABLE.denied(FAMILY, EPERM, "opens any host inode by handle, bypassing paths",
             "open_by_handle_at")
TABLE.denied(FAMILY, EPERM, "host administration", "quotactl", "quotactl_fd",
             "swapon", "swapoff", "acct")
