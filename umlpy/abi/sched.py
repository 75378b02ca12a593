"""Processes: clone(2)'s flags and struct clone_args (clone3), kcmp(2)'s
types, ptrace requests, wait options; scheduling policies, struct
sched_param and struct sched_attr."""
from .layout import Layout

CSIGNAL = 0x000000FF            # the exit signal, in clone's flags
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000

CLONE_ARGS = Layout("clone_args", (
    ("flags", "Q"), ("pidfd", "Q"), ("child_tid", "Q"), ("parent_tid", "Q"),
    ("exit_signal", "Q"), ("stack", "Q"), ("stack_size", "Q"), ("tls", "Q"),
    ("set_tid", "Q"), ("set_tid_size", "Q"), ("cgroup", "Q"),
))
CLONE_ARGS_SIZE_VER0 = CLONE_ARGS.offset("set_tid")      # 64: the first clone3
CLONE_ARGS_SIZE_VER2 = CLONE_ARGS.size                   # 88

KCMP_FILE, KCMP_VM, KCMP_FILES, KCMP_FS = 0, 1, 2, 3

PTRACE_TRACEME = 0

WNOHANG, WUNTRACED, WEXITED, WCONTINUED = 0x1, 0x2, 0x4, 0x8
WNOWAIT = 0x01000000
__WNOTHREAD, __WALL, __WCLONE = 0x20000000, 0x40000000, 0x80000000

SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000           # or'ed into sched_setscheduler's policy
SCHED_FLAG_RESET_ON_FORK = 0x01            # sched_attr.sched_flags
SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_KEEP_PARAMS = 0x08, 0x10
MAX_RT_PRIO = 100                          # real-time priorities are 1..MAX_RT_PRIO-1
SCHED_PARAM = Layout("sched_param", (("sched_priority", "i"),))
SCHED_ATTR = Layout("sched_attr", (
    ("size", "I"), ("sched_policy", "I"), ("sched_flags", "Q"), ("sched_nice", "i"),
    ("sched_priority", "I"), ("sched_runtime", "Q"), ("sched_deadline", "Q"),
    ("sched_period", "Q"),
))
SCHED_ATTR_SIZE_VER0 = SCHED_ATTR.size     # 48
