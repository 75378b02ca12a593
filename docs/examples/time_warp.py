#!/usr/bin/env python3
"""Make time run 10x faster for the guest: `sleep 10` takes one second,
and the clocks say ten went by.

    python3 docs/examples/time_warp.py -- sh -c 'date; sleep 10; date'

The vDSO: clock_gettime, gettimeofday and time normally never enter the
kernel (glibc calls code the kernel maps into every process, the vDSO),
so no seccomp filter or tracer can see them. A handler on one of them
makes the Sandbox hide the vDSO (hide_vdso, automatic here): when a
program is exec'd, before its first instruction, the guest kernel turns
the AT_SYSINFO_EHDR entry of its auxiliary vector into AT_IGNORE. glibc
(dynamic or static) then finds no vDSO and makes real syscalls, which
stop like any other. There is no environment variable glibc honours for
this. (A program that reads the clock's pages itself, or has its own
vDSO parser that ignores auxv, would still see the host's time.)

What is warped: clock_gettime, gettimeofday and time read guest time,
t0 + (host - t0) * 10 from the moment the sandbox starts; nanosleep and
clock_nanosleep sleep a tenth (an absolute deadline is turned into the
host's). Not warped here (left as an exercise): timeouts of poll, select,
epoll_wait and futex, alarm, setitimer, timerfd, the remaining time a
nanosleep interrupted by a signal reports, and CPU-time clocks.
"""
import struct
import sys
import time

from umlpy import Sandbox

FACTOR = 10
WARPED = (0, 1, 4, 5, 6, 7, 11)     # REALTIME, MONOTONIC, _RAW, _COARSE x2, BOOTTIME, TAI
TIMER_ABSTIME = 1
NS = 10**9

sb = Sandbox()                      # hide_vdso=None: hidden, as handlers below need it
start = {}


def guest_now(clock):
    """Guest time on clock, in ns: (host time since the start) * FACTOR."""
    t0 = start.setdefault(clock, time.clock_gettime_ns(clock))
    return t0 + (time.clock_gettime_ns(clock) - t0) * FACTOR


def host_time(clock, guest_ns):
    t0 = start.setdefault(clock, time.clock_gettime_ns(clock))
    return t0 + (guest_ns - t0) // FACTOR


def timespec(ns):
    return struct.pack("<qq", ns // NS, ns % NS)


def read_timespec(call, addr):
    sec, nsec = struct.unpack("<qq", call.read(addr, 16))
    if sec < 0 or not 0 <= nsec < NS:
        return None                 # invalid: the host says EINVAL
    return sec * NS + nsec


@sb.syscall("clock_gettime")
def clock_gettime(call):
    clock = call.arg("which_clock", signed=True)
    if clock not in WARPED:
        return None                 # CPU-time clocks: the host's
    call.write(call.arg("tp"), timespec(guest_now(clock)))   # EFAULT if not writable
    return call.emulate(0)          # the host never runs it


@sb.syscall("gettimeofday")
def gettimeofday(call):
    if call.arg("tv"):
        ns = guest_now(0)
        call.write(call.arg("tv"), struct.pack("<qq", ns // NS, ns % NS // 1000))
    if call.arg("tz"):
        call.write(call.arg("tz"), bytes(8))        # UTC, no DST
    return call.emulate(0)


@sb.syscall("time")
def time_(call):
    seconds = guest_now(0) // NS
    if call.arg("tloc"):
        call.write(call.arg("tloc"), struct.pack("<q", seconds))
    return call.emulate(seconds)


@sb.syscall("nanosleep")
def nanosleep(call):
    ns = read_timespec(call, call.arg("rqtp"))
    if ns is None:
        return None
    # a changed argument: the bytes go to memory the guest cannot touch, and
    # the guest kernel decides the changed call as it would the guest's
    return call.rewrite(rqtp=timespec(ns // FACTOR))


@sb.syscall("clock_nanosleep")
def clock_nanosleep(call):
    clock = call.arg("which_clock", signed=True)
    ns = read_timespec(call, call.arg("rqtp"))
    if clock not in WARPED or ns is None:
        return None
    if call.arg("flags") & TIMER_ABSTIME:
        ns = max(host_time(clock, ns), 0)           # a guest deadline, in host time
    else:
        ns //= FACTOR
    return call.rewrite(rqtp=timespec(ns))


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    for clock in WARPED:
        guest_now(clock)            # guest time departs from the host's now
    sys.exit(sb.run(argv or ["sh", "-c", "date; sleep 10; date"]).status)
