"""The syscall families.  Importing this package fills TABLE."""
from . import cwd, fd, fs, ids, memory, misc, net, process, rlimit, sched, signal  # noqa: F401
from .registry import TABLE, Entry, Guard, Support, SyscallTable  # noqa: F401
