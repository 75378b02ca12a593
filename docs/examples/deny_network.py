#!/usr/bin/env python3
"""Deny the network to one process, by program name or by guest pid,
while the rest of the sandbox keeps it.

    python3 docs/examples/deny_network.py --program curl -- sh -c '...'
    python3 docs/examples/deny_network.py --pid 2 -- sh -c 'cmd1; cmd2'

(In the sandbox's pid namespace pids are predictable: sh is 1, cmd1 2.)
A denied process cannot create a socket other than AF_UNIX, nor connect,
bind or send to an address that is not AF_UNIX (a socket it inherited).
Writes on an inherited connected socket are not stopped here.
"""
import errno
import os
import struct
import sys

from umlpy import Sandbox

AF_UNIX = 1
programs, pids = set(), set()
sb = Sandbox(net=os.environ.get("NET", "none"))


def denied(call):
    if call.pid in pids:
        return True
    argv0 = call.argv[:1]
    names = {call.program, call.comm} | {os.path.basename(a) for a in argv0}
    return bool(names & programs)


def family(call, addr):
    return struct.unpack("<H", call.read(addr, 2))[0] if addr else AF_UNIX


@sb.syscall("socket", "socketpair")
def no_socket(call):
    if call.arg(0, signed=True) != AF_UNIX and denied(call):
        return call.deny(errno.EACCES)
    return None


@sb.syscall("connect", "bind", "sendto", "sendmsg")
def no_address(call):
    if call.name in ("connect", "bind"):
        addr = call.arg(1)
    elif call.name == "sendto":
        addr = call.arg(4)
    else:                                       # struct msghdr: msg_name first
        addr = struct.unpack("<Q", call.read(call.arg(1), 8))[0]
    if addr and family(call, addr) != AF_UNIX and denied(call):
        return call.deny(errno.EACCES)
    return None


if __name__ == "__main__":
    args = sys.argv[1:]
    while args and args[0] in ("--program", "--pid"):
        (programs.add if args[0] == "--program" else lambda p: pids.add(int(p)))(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("usage: deny_network.py [--program NAME]... [--pid N]... -- PROG [ARGS]")
    sys.exit(sb.run(args).status)
