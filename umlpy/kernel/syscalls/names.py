"""The x86_64 syscall table: numbers, names and argument prototypes.

python-ptrace carries the table and the C prototypes up to Linux 5.10;
the calls added since are listed here by number (from the kernel's
arch/x86/entry/syscalls/syscall_64.tbl).  Numbers 512-547 are the x32 ABI
and are not valid x86_64 calls, so they are left out.
"""
import os
import sys
import types
from importlib.machinery import SourceFileLoader


def _load_ptrace_data(relpath):
    """Load one of python-ptrace's pure-data modules by itself: importing
    it through its package would pull in ctypes bindings and cost ~15 ms
    at every umlpy start."""
    for entry in sys.path:
        path = os.path.join(entry or ".", "ptrace", *relpath.split("/"))
        if os.path.isfile(path):
            break
    else:
        raise ImportError("umlpy needs python-ptrace (pip install python-ptrace)")
    loader = SourceFileLoader("umlpy._ptrace_" + relpath.replace("/", "_"), path)
    module = types.ModuleType(loader.name)
    module.__file__ = path
    loader.exec_module(module)      # uses python-ptrace's own .pyc cache
    return module


_ptrace_x86_64 = _load_ptrace_data("syscall/linux/x86_64.py")
_PROTOTYPES = None

X32_FIRST = 512

_NEWER = {
    441: "epoll_pwait2", 442: "mount_setattr", 443: "quotactl_fd",
    444: "landlock_create_ruleset", 445: "landlock_add_rule",
    446: "landlock_restrict_self", 447: "memfd_secret",
    448: "process_mrelease", 449: "futex_waitv",
    450: "set_mempolicy_home_node", 451: "cachestat", 452: "fchmodat2",
    453: "map_shadow_stack", 454: "futex_wake", 455: "futex_wait",
    456: "futex_requeue", 457: "statmount", 458: "listmount",
    459: "lsm_get_self_attr", 460: "lsm_set_self_attr",
    461: "lsm_list_modules", 462: "mseal", 463: "setxattrat",
    464: "getxattrat", 465: "listxattrat", 466: "removexattrat",
    467: "open_tree_attr", 468: "file_getattr", 469: "file_setattr",
}

_MISSING_PROTOTYPES = {
    "clone3": ("long", (("struct clone_args *", "uargs"), ("size_t", "size"))),
    "openat2": ("long", (("int", "dirfd"), ("const char *", "filename"),
                         ("struct open_how *", "how"), ("size_t", "size"))),
    "faccessat2": ("long", (("int", "dirfd"), ("const char *", "filename"),
                            ("int", "mode"), ("int", "flags"))),
    "close_range": ("long", (("unsigned int", "fd"), ("unsigned int", "max_fd"),
                             ("unsigned int", "flags"))),
    "pidfd_open": ("long", (("pid_t", "pid"), ("unsigned int", "flags"))),
    "pidfd_send_signal": ("long", (("int", "pidfd"), ("int", "sig"),
                                   ("siginfo_t *", "info"), ("unsigned int", "flags"))),
    "pidfd_getfd": ("long", (("int", "pidfd"), ("int", "fd"), ("unsigned int", "flags"))),
    "fchmodat2": ("long", (("int", "dirfd"), ("const char *", "filename"),
                           ("umode_t", "mode"), ("unsigned int", "flags"))),
    "arch_prctl": ("long", (("int", "code"), ("unsigned long", "addr"))),
    "rt_sigreturn": ("long", ()),
    "rseq": ("long", (("struct rseq *", "rseq"), ("u32", "rseq_len"),
                      ("int", "flags"), ("u32", "sig"))),
}

SYSCALL_NAMES = {nr: name for nr, name in _ptrace_x86_64.SYSCALL_NAMES.items()
                 if nr < X32_FIRST}
SYSCALL_NAMES.update(_NEWER)
SYSCALL_NAMES[283] = "timerfd_create"   # python-ptrace says "timerfd"
SYSCALL_NUMBERS = {name: nr for nr, name in SYSCALL_NAMES.items()}


def prototype(name):
    """(return type, ((type, name), ...)) for syscall name, or None."""
    global _PROTOTYPES
    if _PROTOTYPES is None:
        from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES
        _PROTOTYPES = SYSCALL_PROTOTYPES
    return _PROTOTYPES.get(name) or _MISSING_PROTOTYPES.get(name)


def number(name):
    try:
        return SYSCALL_NUMBERS[name]
    except KeyError:
        raise KeyError(f"no x86_64 syscall named {name!r}") from None


def syscall_nr(name):
    """A syscall's number from its name (or number): ValueError if x86_64
    has no such call."""
    if isinstance(name, int):
        if name not in SYSCALL_NAMES:
            raise ValueError(f"no x86_64 syscall number {name}")
        return name
    try:
        return SYSCALL_NUMBERS[name]
    except KeyError:
        raise ValueError(f"no x86_64 syscall named {name!r}") from None
