"""Signal facts the guest kernel needs: default actions, and how the
sandbox's init (pid 1 of its pid namespace) is made to suffer signals as an
ordinary process would.

Linux drops every signal whose action is the default one when it is sent
to a pid-namespace init (only SIGKILL/SIGSTOP from an ancestor namespace
get through).  The guest's first process is that init, yet natively it is
an ordinary process: `yes | head` must kill it with SIGPIPE, ^C must stop
`sleep`.  A traced init still reports every signal in a signal-delivery
stop, so there the guest kernel applies the default action itself.
"""
from ..abi.signal import SIGCHLD, SIGCONT, SIGKILL, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, \
    SIGURG, SIGWINCH

_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
_IGNORE = {SIGCHLD, SIGCONT, SIGURG, SIGWINCH}
# the same, as the tracer takes it (bit sig-1): Linux discards these when
# sent to a thread that leaves them at their default action
IGNORED_BY_DEFAULT = sum(1 << (sig - 1) for sig in _IGNORE)


def default_action(sig):
    """'stop', 'ignore' or 'terminate' (core-dumping signals included)."""
    if sig in _STOP:
        return "stop"
    if sig in _IGNORE:
        return "ignore"
    return "terminate"
