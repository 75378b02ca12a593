"""Vectored I/O and polling: struct iovec, struct pollfd and poll's event bits."""
from .layout import Layout

IOVEC = Layout("iovec", (("iov_base", "Q"), ("iov_len", "Q")))
UIO_MAXIOV = 1024

POLLFD = Layout("pollfd", (("fd", "i"), ("events", "h"), ("revents", "h")))
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
POLLMSG, POLLRDHUP = 0x400, 0x2000
