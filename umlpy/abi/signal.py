"""Signals: their numbers, sigaction's flags and the kernel's struct
sigaction, sigprocmask's how, siginfo_t, and where a signal frame's
ucontext keeps the mask it restores."""
from .layout import Layout

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGSTKFLT, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU = 16, 17, 18, 19, 20, 21, 22
SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH = 23, 24, 25, 26, 27, 28
SIGIO, SIGPWR, SIGSYS = 29, 30, 31
SIGPOLL, SIGIOT, SIGCLD = SIGIO, SIGABRT, SIGCHLD
SIGRTMIN = 32                   # the kernel's (glibc keeps 32 and 33 for itself)
SIGRTMAX = 64                   # the last signal (_NSIG)

SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 0x1, 0x2, 0x4
SA_RESTORER = 0x04000000
SA_ONSTACK = 0x08000000
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000

SIG_DFL, SIG_IGN = 0, 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2

# the kernel's struct sigaction (rt_sigaction), not glibc's
SIGACTION = Layout("kernel_sigaction", (("sa_handler", "Q"), ("sa_flags", "Q"),
                                        ("sa_restorer", "Q"), ("sa_mask", "8s")))

# siginfo_t: the head, then the union (here as SIGCHLD fills it; a fault's
# si_addr is at si_pid's offset)
SIGINFO = Layout("siginfo", (
    ("si_signo", "i"), ("si_errno", "i"), ("si_code", "i"), (None, "4x"),
    ("si_pid", "i"), ("si_uid", "i"), ("si_status", "i"), (None, "4x"),
    ("si_utime", "q"), ("si_stime", "q"), (None, "80x"),
))
SIGINFO_ADDR_OFFSET = SIGINFO.offset("si_pid")

# struct ucontext at the top of a signal frame, up to the mask
# rt_sigreturn restores (uc_stack is a stack_t; uc_mcontext 256 bytes)
UCONTEXT = Layout("ucontext", (
    ("uc_flags", "Q"), ("uc_link", "Q"),
    ("ss_sp", "Q"), ("ss_flags", "i"), (None, "4x"), ("ss_size", "Q"),
    ("uc_mcontext", "256s"), ("uc_sigmask", "8s"),
))
UCONTEXT_SIGMASK_OFFSET = UCONTEXT.offset("uc_sigmask")
