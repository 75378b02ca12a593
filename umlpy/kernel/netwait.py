"""``--net-rate``: the readiness waits (poll, ppoll, select, pselect6,
epoll_wait, epoll_pwait, epoll_pwait2) of a sandbox whose bucket is in
debt.

A shaped read or send in debt on a nonblocking socket fails with EAGAIN
(netrate.py), while the host's buffer still holds the bytes: poll would
report the socket readable at once, the read fail again, and the guest
spin between the two.  A link in debt has nothing to give yet, so a wait
that watches an internet socket in the direction whose bucket is in debt
sleeps first, in its own context (sleep.py), until the debt is paid or
its own timeout is over, whichever comes first; then it is made again
with the time it has left, and the host answers it.  A wait with a zero
timeout is answered at once, as asked.  The other descriptors it watches
are looked at again only after that sleep: a pipe or a terminal that
becomes ready meanwhile is reported up to one debt late (the debt is at
most what one call moved, at the rate)."""
import math

from ..abi import s32
from ..abi.time import TIMESPEC, TIMEVAL, pack_timespec
from ..abi.uio import POLLFD, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from .sleep import scratch_timespecs, sleep_at_then_retry, sleep_then_retry

READ_EVENTS = POLLIN | POLLRDNORM      # the same bits in epoll's events
WRITE_EVENTS = POLLOUT | POLLWRNORM
MOST_FDS = 1024                         # more are not looked at (FD_SETSIZE)

# name -> (where its descriptors are, timeout argument, timeout kind)
WAITS = {
    "poll": ("pollfds", 2, "ms"), "ppoll": ("pollfds", 2, "timespec"),
    "select": ("fdsets", 4, "timeval"), "pselect6": ("fdsets", 4, "timespec"),
    "epoll_wait": ("epoll", 3, "ms"), "epoll_pwait": ("epoll", 3, "ms"),
    "epoll_pwait2": ("epoll", 3, "timespec"),
}
# the timeouts Linux writes back the time left into (select(2), ppoll(2));
# epoll_pwait2's is the caller's and stays as it is
UPDATED_IN_PLACE = ("ppoll", "select", "pselect6")


def decide(call):
    """A readiness wait under --net-rate: a sleep then the call again while
    a socket it watches is in debt, else None (the call goes on)."""
    limiter = call.kernel.rate_limiter
    if not limiter.owes("in") and not limiter.owes("out"):
        return None
    where, timeout_arg, kind = WAITS[call.name]
    try:
        timeout = read_timeout(call, timeout_arg, kind)
        if timeout == 0:
            return None
        reads, writes = WATCHED[where](call)
    except OSError:
        return None                     # the host fails it as Linux does
    delay = max(limiter.debt(call, reads, "in"), limiter.debt(call, writes, "out"))
    if delay <= 0:
        return None
    sleep = delay if timeout is None else min(delay, timeout)
    if timeout is None:
        return sleep_then_retry(call, sleep)
    # made again with the time it has left
    left = max(0.0, timeout - sleep)
    args = list(call.args)
    if kind == "ms":
        args[timeout_arg] = math.ceil(left * 1000)
    elif call.name in UPDATED_IN_PLACE:
        try:
            call.write(call.args[timeout_arg], pack_timeout(kind, left))
        except OSError:
            return None
    else:
        # the caller's timespec is its own: a copy beside the sleep's
        ts, args[timeout_arg] = scratch_timespecs(call, sleep, left)
        return sleep_at_then_retry(call, ts, args)
    return sleep_then_retry(call, sleep, args)


def read_timeout(call, arg, kind):
    """The call's timeout in seconds, None for none (OSError: unreadable)."""
    if kind == "ms":
        ms = s32(call.args[arg])
        return None if ms < 0 else ms / 1000
    addr = call.args[arg]
    if not addr:
        return None
    if kind == "timeval":
        tv = TIMEVAL.todict(call.read(addr, TIMEVAL.size))
        return max(0.0, tv["tv_sec"] + tv["tv_usec"] / 1e6)
    ts = TIMESPEC.todict(call.read(addr, TIMESPEC.size))
    return max(0.0, ts["tv_sec"] + ts["tv_nsec"] / 1e9)


def pack_timeout(kind, seconds):
    if kind == "timeval":
        whole = int(seconds)
        return TIMEVAL.pack(whole, int((seconds - whole) * 1e6))
    return pack_timespec(seconds)


def pollfd_watch(call):
    """The descriptors a poll/ppoll watches for reading and for writing."""
    n = min(call.args[1], MOST_FDS)
    raw = call.read(call.args[0], n * POLLFD.size) if n else b""
    reads, writes = set(), set()
    for i in range(n):
        fd, events, _ = POLLFD.unpack_from(raw, i * POLLFD.size)
        if fd >= 0:
            if events & READ_EVENTS:
                reads.add(fd)
            if events & WRITE_EVENTS:
                writes.add(fd)
    return reads, writes


def fdset_watch(call):
    """The descriptors a select/pselect6 watches for reading and writing."""
    nfds = min(s32(call.args[0]), MOST_FDS)
    if nfds <= 0:
        return set(), set()
    size = (nfds + 63) // 64 * 8

    def members(addr):
        if not addr:
            return set()
        bits = int.from_bytes(call.read(addr, size), "little")
        return {fd for fd in range(nfds) if bits >> fd & 1}
    return members(call.args[1]), members(call.args[2])


def epoll_watch(call):
    """The descriptors an epoll instance watches (its fdinfo's tfd lines)."""
    reads, writes = set(), set()
    with open(f"/proc/{call.tid}/fdinfo/{s32(call.args[0])}", "rb") as f:
        for line in f:
            if line.startswith(b"tfd:"):
                fields = line.split()
                fd, events = int(fields[1]), int(fields[3], 16)
                if events & READ_EVENTS:
                    reads.add(fd)
                if events & WRITE_EVENTS:
                    writes.add(fd)
    return reads, writes


WATCHED = {"pollfds": pollfd_watch, "fdsets": fdset_watch, "epoll": epoll_watch}
