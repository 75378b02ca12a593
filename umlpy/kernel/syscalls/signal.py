"""Signals, timers that deliver signals, and sleeping (the signal family)."""
from .registry import TABLE

FAMILY = "signal"

TABLE.passthrough(
    FAMILY,
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_send_signal",
    "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "pause", "alarm", "setitimer", "getitimer",
    "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun",
    "timer_delete",
)
