"""``--net-rate BYTES/s``: the sandbox's network bandwidth, shaped like a
VPS's with a token bucket for each direction.

Every call that moves data through an internet socket (read, write,
readv, writev, send*, recv*, sendfile, splice) is charged, at its exit,
with the bytes it really moved.  A bucket holds at most one second of
rate; a call made while its bucket is empty or in debt does not run yet:
the guest kernel turns it into a nanosleep for as long as the debt takes
to pay, and when the sleep ends the thread is set back onto its syscall
instruction with the call's registers, so it makes the call again (and
it is checked again).  The thread waits in its own context; the tracer
serves every other thread meanwhile.  Calls are never shortened, so
datagrams stay whole and a blocking send still sends everything; the
rate holds on average, with bursts of one call.  UNIX sockets, pipes and
files are not network and are not charged.

A call in debt waits only as Linux would let it block, so the guest's
own timeouts hold (a shaped link delays bytes, it does not make a call
block longer than asked):
* on a nonblocking socket (O_NONBLOCK, or MSG_DONTWAIT in the call's
  flags) it fails at once with EAGAIN, as when no bytes have come or no
  room is left: the guest goes back to its poll or select, whose timeout
  is its own (curl -m drains a socket until EAGAIN, and checks its
  deadline only between drains).  Its poll, select or epoll_wait then
  sleeps until the debt is paid or its own timeout is over (netwait.py),
  so a reader in debt does not spin between the two;
* on a blocking socket with SO_RCVTIMEO (reads) or SO_SNDTIMEO (sends)
  shorter than the debt it sleeps that long and fails with EAGAIN (EINTR
  if a signal handler ran meanwhile), as a timed-out socket call that
  moved nothing does."""
import errno
import os
import time

from ..abi import s32
from ..abi.fcntl import O_NONBLOCK
from ..abi.socket import MSG_DONTWAIT, SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD, SOL_SOCKET
from ..abi.time import TIMEVAL
from .decisions import ALLOW, AllowThen, Return, Rewrite, then
from .sleep import NANOSLEEP, scratch_timespec, sleep_then_retry
from .vfs.hostops import thread_fd

# the flags argument of the shaped calls that have one (MSG_DONTWAIT)
FLAGS_ARG = {"sendto": 3, "recvfrom": 3, "sendmsg": 2, "recvmsg": 2,
             "sendmmsg": 3, "recvmmsg": 3}
# x86_64's SO_RCVTIMEO and SO_SNDTIMEO are the _OLD ones (a 64-bit timeval)
TIMEOUT_OPTION = {"in": SO_RCVTIMEO_OLD, "out": SO_SNDTIMEO_OLD}


class Bucket:
    def __init__(self, rate):
        self.rate = rate
        self.tokens = float(rate)       # starts full: one second of burst
        self.stamp = time.monotonic()

    def refill(self):
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, need=1):
        """Seconds until the bucket holds need tokens (0: go)."""
        self.refill()
        need = min(need, self.rate)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def charge(self, n):
        self.refill()
        self.tokens -= n


class RateLimiter:
    """The sandbox's two token buckets (what comes in, what goes out) and
    what it knows of its sockets.  The calls that move bytes consult it
    (syscalls/net.py, with --net-rate)."""

    def __init__(self, rate):
        self.buckets = {"in": Bucket(rate), "out": Bucket(rate)}
        self.kinds = {}         # socket inode -> whether it is an internet socket

    def kind(self, call, fd):
        """None if fd is no internet socket, else whether it is a stream."""
        try:
            link = os.readlink(f"/proc/{call.tid}/fd/{fd}")
        except OSError:
            return None
        if not link.startswith("socket:["):
            return None
        if link not in self.kinds:
            known = None
            try:
                dup = thread_fd(call.tid, call.kernel.vfs.tgid_of(call.tid), fd)
            except OSError:
                return None
            import socket     # here, not at start-up, where it costs milliseconds
            try:
                s = socket.socket(fileno=dup)
                try:
                    if s.family in (socket.AF_INET, socket.AF_INET6):
                        known = s.type == socket.SOCK_STREAM
                finally:
                    s.detach()
            except OSError:
                pass
            finally:
                os.close(dup)
            self.kinds[link] = known
        return self.kinds[link]

    def owes(self, direction):
        """Whether the bucket of direction is empty or in debt."""
        return self.buckets[direction].wait() > 0

    def debt(self, call, fds, direction):
        """Seconds until the bucket of direction leaves its debt, if one of
        fds is an internet socket (netwait.py), else 0."""
        delay = self.buckets[direction].wait()
        if delay <= 0 or not any(self.kind(call, fd) is not None for fd in fds):
            return 0.0
        return delay

    def decide(self, call, fd_index, direction, count_index):
        """A call moving bytes through args[fd_index]: waits for tokens if
        it is an internet socket's (None: not one, the call goes on)."""
        bucket = self.buckets[direction]
        fd = s32(call.args[fd_index])
        kind = None if fd < 0 else self.kind(call, fd)
        if kind is None:
            return None
        # a stream send waits for tokens for all it sends (at most a
        # second's worth, see below); the rest only for the bucket to
        # leave its debt, then are charged what they moved
        stream_send = kind and count_index is not None
        need = call.args[count_index] if stream_send else 1
        delay = bucket.wait(need)
        if delay > 0:
            return self.in_debt(call, fd, direction, delay)
        if stream_send and call.args[count_index] > bucket.rate:
            # a stream send of more than a second's worth is sent in
            # parts (a stream may always take fewer bytes than offered)
            args = list(call.args)
            args[count_index] = bucket.rate
            call.args = tuple(args)
            decision = call.kernel.dispatcher.decide_table(call)
            if decision is ALLOW:
                decision = Rewrite(call.nr, args)
        else:
            decision = call.kernel.dispatcher.decide_table(call)
        return charged(decision, bucket)


    def in_debt(self, call, fd, direction, delay):
        """The call cannot go for delay seconds: EAGAIN at once if it may
        not block, a sleep of at most its socket's timeout, then EAGAIN,
        if it has a shorter one, else a sleep of delay and the call again."""
        flags_arg = FLAGS_ARG.get(call.name)
        if flags_arg is not None and call.args[flags_arg] & MSG_DONTWAIT or \
                self.nonblocking(call, fd):
            return Return(-errno.EAGAIN)
        timeout = self.timeout(call, fd, direction)
        if 0 < timeout < delay:
            return sleep_then_fail(call, timeout)
        return sleep_then_retry(call, delay)

    @staticmethod
    def nonblocking(call, fd):
        """Whether the guest's fd has O_NONBLOCK (its fdinfo's flags)."""
        try:
            with open(f"/proc/{call.tid}/fdinfo/{fd}", "rb") as f:
                for line in f:
                    if line.startswith(b"flags:"):
                        return bool(int(line.split()[1], 8) & O_NONBLOCK)
        except (OSError, ValueError, IndexError):
            pass
        return False

    @staticmethod
    def timeout(call, fd, direction):
        """The socket's SO_RCVTIMEO or SO_SNDTIMEO in seconds (0: none)."""
        try:
            dup = thread_fd(call.tid, call.kernel.vfs.tgid_of(call.tid), fd)
        except OSError:
            return 0
        import socket
        try:
            s = socket.socket(fileno=dup)
            try:
                raw = s.getsockopt(SOL_SOCKET, TIMEOUT_OPTION[direction], TIMEVAL.size)
            finally:
                s.detach()
        except OSError:
            return 0
        finally:
            os.close(dup)
        tv = TIMEVAL.todict(raw)
        return tv["tv_sec"] + tv["tv_usec"] / 1e6


def sleep_then_fail(call, seconds):
    """A decision: sleep for seconds, then fail with EAGAIN (EINTR when a
    signal cut the sleep short, as a socket call with a timeout fails)."""
    ts = scratch_timespec(call, seconds)

    def fail(call, result):
        return -errno.EAGAIN if result == 0 else -errno.EINTR
    return AllowThen(fail, rewrite=Rewrite(NANOSLEEP, [ts, 0]))


def charged(decision, bucket):
    """decision, also charging the bytes the call moved to bucket (what
    the host moved, before any rewording of the result)."""
    def charge(call, result):
        if result > 0:
            bucket.charge(result)
        return None
    return then(decision, charge)         # a Return moves nothing
