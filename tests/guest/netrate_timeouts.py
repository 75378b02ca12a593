"""A guest for --net-rate against the guest's own timeouts: connects to
127.0.0.1:PORT and prints one line, `MODE RESULT SECONDS`.

  drain PORT     nonblocking reads, drained until EAGAIN between selects,
                 as curl reads, with a deadline of 2 s: `timeout` once it
                 passes, `eof` if everything came first
  rcvtimeo PORT  a blocking socket with SO_RCVTIMEO 0.5 s: big reads until
                 one waits (the bucket is in debt) or fails: how it ended
                 (`eagain` or `data`) and how long it took
  sndtimeo PORT  a blocking socket with SO_SNDTIMEO 0.3 s: a big send, then
                 how the next send ends and how long it took
  nbsend PORT    a nonblocking socket: a big send, then the next one's end
  poll PORT      a nonblocking reader that polls (1 s timeout) and reads
                 64 KiB at a time until it has 600 KiB: how much it got,
                 the wall-clock and the CPU seconds (getrusage) it took
  select PORT, epoll PORT   the same with select, with epoll_wait
"""
import errno
import resource
import select
import socket
import struct
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
time.sleep(0.3)                 # the listener fills the socket's buffer


def timed(op):
    start = time.monotonic()
    try:
        op()
        result = "data"
    except OSError as e:
        result = "eagain" if e.errno == errno.EAGAIN else errno.errorcode[e.errno]
    return result, time.monotonic() - start


if mode == "drain":
    s.setblocking(False)
    deadline = time.monotonic() + 2.0
    start = time.monotonic()
    result = None
    while result is None:
        left = deadline - time.monotonic()
        if left <= 0:
            result = "timeout"
            break
        select.select([s], [], [], left)
        while True:             # drain what is there
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                result = "eof"
                break
    print(mode, result, round(time.monotonic() - start, 2))
elif mode == "rcvtimeo":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("qq", 0, 500000))
    for _ in range(100):        # until a read waits or fails: the debt
        result, took = timed(lambda: s.recv(1 << 20))
        if result != "data" or took > 0.3:
            break
    print(mode, result, round(took, 2))
elif mode in ("sndtimeo", "nbsend"):
    if mode == "nbsend":
        s.setblocking(False)
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("qq", 0, 300000))
    s.send(b"x" * (1 << 20))
    result, took = timed(lambda: s.send(b"x" * (1 << 20)))
    print(mode, result, round(took, 2))
elif mode in ("poll", "select", "epoll"):
    s.setblocking(False)
    if mode == "select":
        def wait():
            select.select([s], [], [], 1.0)
    else:
        poller = select.poll() if mode == "poll" else select.epoll()
        poller.register(s, select.POLLIN)

        def wait():
            poller.poll(1000 if mode == "poll" else 1.0)

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    start, start_cpu, got = time.monotonic(), cpu(), 0
    while got < 600 << 10:
        wait()
        try:
            data = s.recv(64 << 10)
        except BlockingIOError:
            continue
        if not data:
            break
        got += len(data)
    print(mode, got, round(time.monotonic() - start, 2), round(cpu() - start_cpu, 2))
