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
import os
import threading

from ..abi.resource import RLIMIT_CPU, RLIMIT_DATA, RLIMIT_NOFILE
from ..abi.signal import SIGKILL

WATCH_INTERVAL = 0.02


class Limits:
    def __init__(self, memory=None, pids=None, cpu_time=None, disk=None, nofile=None):
        self.memory, self.pids, self.cpu_time = memory, pids, cpu_time
        self.disk, self.nofile = disk, nofile

    @classmethod
    def from_config(cls, config):
        """The limits a configuration sets, or None if it sets none."""
        limits = cls(memory=config.memory, pids=config.pids, cpu_time=config.cpu_time,
                     disk=config.disk, nofile=config.nofile)
        return limits if limits.any() else None

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
        os.kill(pid, SIGKILL)
    except OSError:
        pass


# ---- the disk quota ----------------------------------------------------------

def disk_usage(roots):
    """Bytes allocated below roots: an iterative walk (the guest makes
    trees as deep as it likes), never following a symlink."""
    total = 0
    for root in roots:
        pending = [root]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(directory) as it:
                    for e in it:
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        total += st.st_blocks * 512
                        if e.is_dir(follow_symlinks=False):
                            pending.append(e.path)
            except OSError:
                continue
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
