#!/usr/bin/env python3
"""Log every file the guest opens: who opened what, how, and what it got.

    python3 docs/examples/log_opens.py -- sh -c 'cat /etc/hostname'

prints to stderr one line per open, e.g.

    [pid 2 cat] openat "/etc/hostname" O_RDONLY = 3
"""
import errno
import os
import sys

from umlpy import Sandbox

ACCESS = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}

sb = Sandbox()


@sb.syscall("open", "openat", "openat2", "creat")
def log_open(call):
    # which argument holds the path, and where the flags are
    path_index = 1 if call.name in ("openat", "openat2") else 0
    try:
        path = call.path(path_index)
    except OSError:
        path = "<unreadable>"           # a bad pointer: the guest kernel answers EFAULT
    if call.name in ("open", "openat"):
        flags = call.arg("flags", signed=True)
    else:
        flags = os.O_WRONLY             # creat; openat2 keeps its flags in a struct
    who = f"[pid {call.pid} {call.program}]"

    def report(result):
        # after(): runs when the call returns, with what the guest sees
        outcome = str(result) if result >= 0 else f"-1 {errno.errorcode.get(-result, -result)}"
        print(f"{who} {call.name} {path!r} {ACCESS.get(flags & 3, flags & 3)} = {outcome}",
              file=sys.stderr)
    call.after(report)
    return None                         # the guest kernel decides the open as usual


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    sys.exit(sb.run(argv or ["sh", "-c", "cat /etc/hostname"]).status)
