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
files are not network and are not charged."""
import os
import time

from .decisions import ALLOW, AllowThen, Rewrite
from .sleep import sleep_then_retry
from .vfs.hostops import thread_fd


# syscall name -> (fd argument, direction, byte count argument or None)
CALLS = {
    "read": (0, "in", None), "readv": (0, "in", None), "recvfrom": (0, "in", None),
    "recvmsg": (0, "in", None), "recvmmsg": (0, "in", None),
    "write": (0, "out", 2), "writev": (0, "out", None), "sendto": (0, "out", 2),
    "sendmsg": (0, "out", None), "sendmmsg": (0, "out", None), "sendfile": (0, "out", 3),
    "splice": (2, "out", 4),
}


def parse_rate(text):
    from ..errors import BadInput
    from .limits import parse_size
    t = text.strip()
    if t.lower().endswith("/s"):
        t = t[:-2]
    rate = parse_size("--net-rate", t)
    if rate < 1:
        raise BadInput(f"--net-rate {text!r}: must be positive")
    return rate


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
    def __init__(self, kernel, rate):
        self.kernel = kernel
        self.buckets = {"in": Bucket(rate), "out": Bucket(rate)}
        self.kinds = {}         # socket inode -> whether it is an internet socket

    def install(self):
        for name, (fd_index, direction, count_index) in CALLS.items():
            self.kernel.hook(name)(self._hook(fd_index, direction, count_index))

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
                dup = thread_fd(call.tid, self.kernel.vfs.tgid_of(call.tid), fd)
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

    def _hook(self, fd_index, direction, count_index):
        bucket = self.buckets[direction]

        def hook(call):
            fd = call.args[fd_index] & 0xFFFFFFFF
            kind = None if fd & 0x80000000 else self.kind(call, fd)
            if kind is None:
                return None
            # a stream send waits for tokens for all it sends (at most a
            # second's worth, see below); the rest only for the bucket to
            # leave its debt, then are charged what they moved
            stream_send = kind and count_index is not None
            need = call.args[count_index] if stream_send else 1
            delay = bucket.wait(need)
            if delay > 0:
                return sleep_then_retry(call, delay)
            if stream_send and call.args[count_index] > bucket.rate:
                # a stream send of more than a second's worth is sent in
                # parts (a stream may always take fewer bytes than offered)
                args = list(call.args)
                args[count_index] = bucket.rate
                call.args = tuple(args)
                decision = self.kernel.dispatcher.decide_table(call)
                if decision is ALLOW:
                    decision = Rewrite(call.nr, args)
            else:
                decision = self.kernel.dispatcher.decide_table(call)
            return charged(decision, bucket)
        return hook


def charged(decision, bucket):
    """decision, also charging the bytes the call moved to bucket."""
    def charge(call, result):
        if result > 0:
            bucket.charge(result)
        return None
    if decision is ALLOW:
        return AllowThen(charge)
    if isinstance(decision, Rewrite):
        return AllowThen(charge, rewrite=decision)
    if isinstance(decision, AllowThen):
        inner = decision.on_exit

        def both(call, result):
            charge(call, result)        # what the host moved, before any rewording
            return inner(call, result)
        return AllowThen(both, rewrite=decision.rewrite)
    return decision         # Return: nothing moves

