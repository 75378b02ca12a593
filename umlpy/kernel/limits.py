"""Resource limits per sandbox, as a VPS has them (``umlpy run --memory
--pids --cpu-time --disk --nofile``).

How each is enforced (the guest kernel's own enforcement: cgroup v2
delegation is not used yet, so the limits hold for any user, on any host):

  --nofile N     RLIMIT_NOFILE of every guest process (soft = hard), set
                 before the first exec; the guest cannot raise a hard limit
                 (that needs CAP_SYS_RESOURCE of the host's namespace).
  --pids N       the guest kernel refuses clone, fork and vfork with EAGAIN
                 once the sandbox has N threads (as pids.max counts them).
  --memory SIZE  RLIMIT_DATA of every process (malloc and private writable
                 mappings beyond SIZE fail with ENOMEM), and a watchdog
                 thread that sums the private memory (RssAnon + RssShmem)
                 of all guest processes and kills the largest when the
                 sandbox is over SIZE, as an OOM killer would.
  --cpu-time T   RLIMIT_CPU of every process (SIGXCPU at T seconds, SIGKILL
                 a second later), and the watchdog sums the CPU time of the
                 whole sandbox (exited processes included) and kills every
                 guest process when it reaches T.
  --disk SIZE    a quota on what the guest writes into the sandbox's own
                 storage (the upper layer, --tmpfs mounts, /dev/shm): every
                 call that can grow a file there is checked (write, pwrite,
                 writev, fallocate, copy_file_range, sendfile, splice...); a
                 write that does not fit is shortened to what fits, then
                 fails with ENOSPC, like a full filesystem.
"""
import errno
import os
import signal
import struct
import threading

from ..errors import BadInput

RLIMIT_CPU, RLIMIT_DATA, RLIMIT_NOFILE = 0, 2, 7
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
WATCH_INTERVAL = 0.02


def parse_size(option, text):
    t = text.strip().lower()
    if t.endswith("ib"):
        t = t[:-2]
    elif t.endswith("b") and len(t) > 1 and t[-2] in UNITS:
        t = t[:-1]
    unit = t[-1:] if t[-1:] in UNITS and not t[-1:].isdigit() else ""
    number = t[:-1] if unit else t
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        raise BadInput(f"{option} {text!r}: expected a size like 512K, 64M or 2G") from None
    if value < 1:
        raise BadInput(f"{option} {text!r}: must be positive")
    return int(value)


def parse_count(option, text, low=1):
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"{option} {text!r}: expected a whole number") from None
    if value < low:
        raise BadInput(f"{option} {text!r}: must be at least {low}")
    return value


def parse_seconds(option, text):
    t = text.strip().lower()
    scale = 1
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if t.endswith(suffix):
            t, scale = t[:-len(suffix)], factor
            break
    try:
        value = float(t) * scale
    except ValueError:
        raise BadInput(f"{option} {text!r}: expected seconds, like 10 or 2.5s or 1m") from None
    if value <= 0:
        raise BadInput(f"{option} {text!r}: must be positive")
    return value


class Limits:
    def __init__(self, memory=None, pids=None, cpu_time=None, disk=None, nofile=None):
        self.memory, self.pids, self.cpu_time = memory, pids, cpu_time
        self.disk, self.nofile = disk, nofile

    @classmethod
    def from_options(cls, memory=None, pids=None, cpu_time=None, disk=None, nofile=None):
        return cls(
            memory=None if memory is None else parse_size("--memory", memory),
            pids=None if pids is None else parse_count("--pids", pids),
            cpu_time=None if cpu_time is None else parse_seconds("--cpu-time", cpu_time),
            disk=None if disk is None else parse_size("--disk", disk),
            nofile=None if nofile is None else parse_count("--nofile", nofile, 3),
        )

    def any(self):
        return any(v is not None for v in (self.memory, self.pids, self.cpu_time, self.disk,
                                           self.nofile))

    def rlimits(self):
        """(resource, value) pairs the first process starts with."""
        out = []
        if self.nofile is not None:
            out.append((RLIMIT_NOFILE, self.nofile))
        if self.memory is not None:
            out.append((RLIMIT_DATA, self.memory))
        if self.cpu_time is not None:
            out.append((RLIMIT_CPU, max(1, int(self.cpu_time + 0.999))))
        return out


# ---- the watchdog: memory and CPU of the whole sandbox ----------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(tid):
    """utime + stime of a whole process (its threads included)."""
    with open(f"/proc/{tid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def private_memory(tid):
    """The private memory (RssAnon + RssShmem) of tid's process, in bytes."""
    total = 0
    with open(f"/proc/{tid}/status", "rb") as f:
        for line in f:
            if line.startswith((b"RssAnon:", b"RssShmem:")):
                total += int(line.split()[1]) * 1024
    return total


def guest_tgids(kernel):
    """The host tgids of the sandbox's processes, from its threads."""
    tgids = set()
    for tid in list(kernel.processes.threads):
        try:
            with open(f"/proc/{tid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Tgid:"):
                        tgids.add(int(line.split()[1]))
                        break
        except OSError:
            continue
    return tgids


class Watchdog:
    """A thread sampling the guest's processes; ptrace is not needed to
    read /proc or to send SIGKILL, so it runs beside the tracer's loop."""

    def __init__(self, kernel, limits):
        self.kernel, self.limits = kernel, limits
        self.cpu_seen = {}          # tgid -> last CPU seconds sampled
        self.cpu_gone = 0.0         # CPU seconds of processes that have exited
        self.reason = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="umlpy-watchdog", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(1)

    def _run(self):
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self.check()
            except Exception:       # a sample racing an exit: try again
                continue

    def check(self):
        tgids = guest_tgids(self.kernel)
        limits = self.limits
        if limits.cpu_time is not None:
            now = {}
            for tgid in tgids:
                try:
                    now[tgid] = _cpu_seconds(tgid)
                except (OSError, ValueError):
                    pass
            for tgid, seconds in self.cpu_seen.items():
                if tgid not in now:
                    self.cpu_gone += seconds
            self.cpu_seen = now
            if self.cpu_gone + sum(now.values()) >= limits.cpu_time:
                self.kill_all(f"CPU time limit of {limits.cpu_time:g} s reached")
                return
        if limits.memory is not None:
            usage = {}
            for tgid in tgids:
                try:
                    usage[tgid] = private_memory(tgid)
                except (OSError, ValueError):
                    pass
            if sum(usage.values()) > limits.memory and usage:
                victim = max(usage, key=usage.get)
                self.note(f"memory limit of {limits.memory} bytes reached: killed guest "
                          f"process {self.kernel.processes.guest_tid(victim) or victim}")
                _kill(victim)

    def note(self, reason):
        if self.reason is None:
            self.reason = reason

    def kill_all(self, reason):
        self.note(reason)
        for tid in list(self.kernel.processes.threads):
            _kill(tid)


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# ---- the disk quota ----------------------------------------------------------

IOVEC = struct.Struct("<QQ")
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def disk_usage(roots):
    total = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames + dirnames:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                total += st.st_blocks * 512
    return total


class DiskQuota:
    """What the guest may still write into the sandbox's storage.  used is
    an upper bound: each write is counted whole (it may overwrite), and
    the real usage is measured again when the bound reaches the quota."""

    def __init__(self, limit, roots):
        self.limit = limit
        self.roots = [os.path.realpath(r) for r in roots]
        self.used = disk_usage(self.roots)

    def covers(self, host_path):
        return any(host_path == r or host_path.startswith(r + "/") for r in self.roots)

    def grant(self, wanted):
        """How many of wanted bytes may be written (0: none)."""
        if wanted <= 0:
            return wanted
        if self.used + wanted > self.limit:
            self.used = disk_usage(self.roots)
        room = max(0, self.limit - self.used)
        granted = min(wanted, room)
        self.used += granted
        return granted


def install_disk_quota(kernel, quota):
    """Hooks on every call that can grow a file in the sandbox's storage."""
    from .decisions import Rewrite, fail

    def host_path(tid, fd):
        try:
            return os.readlink(f"/proc/{tid}/fd/{fd}")
        except OSError:
            return None

    def checked(call, fd_index, count_index, count):
        """Decide a call writing count bytes to args[fd_index]."""
        fd = call.args[fd_index] & 0xFFFFFFFF
        if fd & 0x80000000:
            return None
        path = host_path(call.tid, fd)
        if path is None or not path.startswith("/") or not quota.covers(path):
            return None
        granted = quota.grant(count)
        if granted == count:
            return None
        if granted <= 0:
            return fail(errno.ENOSPC)
        if count_index is None:
            return fail(errno.ENOSPC)
        args = list(call.args)
        args[count_index] = granted
        return Rewrite(call.nr, args)

    def plain(fd_index, count_index):
        return lambda call: checked(call, fd_index, count_index,
                                    call.args[count_index] & 0x7FFFFFFFFFFFFFFF)

    def vectored(fd_index, iov_index, cnt_index):
        def hook(call):
            count = min(call.args[cnt_index] & 0xFFFFFFFF, 1024)
            try:
                raw = call.read(call.args[iov_index], IOVEC.size * count) if count else b""
            except OSError:
                return None
            total = sum(IOVEC.unpack_from(raw, i * IOVEC.size)[1] for i in range(count))
            return checked(call, fd_index, None, total)
        return hook

    def fallocate(call):
        mode = call.args[1] & 0xFFFFFFFF
        if mode & FALLOC_FL_PUNCH_HOLE:
            return None
        return checked(call, 0, None, call.args[3] & 0x7FFFFFFFFFFFFFFF)

    hooks = {
        "write": plain(0, 2), "pwrite64": plain(0, 2),
        "writev": vectored(0, 1, 2), "pwritev": vectored(0, 1, 2),
        "pwritev2": vectored(0, 1, 2),
        "fallocate": fallocate,
        "copy_file_range": plain(2, 4), "sendfile": plain(0, 3), "splice": plain(2, 4),
    }
    # (ftruncate is not checked: a longer file is a sparse one, and only
    # what is written into it takes space)
    for name, fn in hooks.items():
        kernel.hook(name)(fn)
