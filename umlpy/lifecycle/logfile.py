"""Bounded log files: a sandbox that talks forever keeps its newest output
and never fills the disk.  When a file passes its limit, its older half
goes (a line cut at the seam is marked)."""
import os
import threading

CUT_MARK = b"[umlpy: older output dropped]\n"


class BoundedLog:
    def __init__(self, path, limit):
        self.path = path
        self.limit = limit
        self.lock = threading.Lock()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def write(self, data):
        with self.lock:
            os.write(self.fd, data)
            if os.fstat(self.fd).st_size > self.limit:
                self.trim(self.path, self.limit)
                os.close(self.fd)       # the trimmed file is a new one
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND |
                                  os.O_CLOEXEC, 0o600)

    @staticmethod
    def trim(path, limit):
        """Keep the newest half of path's limit, if it is over it."""
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size <= limit:
                    return
                f.seek(size - limit // 2)
                tail = f.read()
        except OSError:
            return
        cut = tail.find(b"\n")
        tail = tail[cut + 1:] if 0 <= cut < len(tail) - 1 else tail
        tmp = f"{path}.trim"
        with open(tmp, "wb") as f:
            f.write(CUT_MARK + tail)
        os.replace(tmp, path)


def drain_into(fd, log):
    """Copy what fd gives into log until its writers are all gone."""
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return
        log.write(data)
