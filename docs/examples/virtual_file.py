#!/usr/bin/env python3
"""Serve a virtual file from Python: /virtual/hello exists only for the
guest, and its contents are made when it is opened.

    python3 docs/examples/virtual_file.py -- cat /virtual/hello

How it stays safe: the open is *emulated*. The host never runs the
guest's open; `call.emulate_open(data)` makes the guest kernel inject a
memfd_create into the calling thread, fill that memfd through a duplicate
of that very descriptor (pidfd_getfd), seal it read-only and answer the
open with its number. No host path is named, and the guest gets nothing
but the bytes Python chose. Any other path is left to the guest VFS.
"""
import errno
import sys
import time

from umlpy import Sandbox

sb = Sandbox()
served = []


def contents():
    served.append(time.time())
    return f"hello from Python (open number {len(served)})\n".encode()


@sb.syscall("open", "openat")
def virtual(call):
    path_arg = 1 if call.name == "openat" else 0
    dirfd = 0 if call.name == "openat" else None
    try:
        path = call.abspath(path_arg, dirfd)    # relative names count too
    except OSError:
        return None                             # let the guest kernel give the errno
    if path == "/virtual/hello":
        return call.emulate_open(contents())    # EACCES if opened for writing
    if path == "/virtual" or path.startswith("/virtual/"):
        return call.deny(errno.ENOENT)
    return None


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    sys.exit(sb.run(argv or ["cat", "/virtual/hello"]).status)
