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
import stat as _stat
import threading

from ..abi.resource import RLIMIT_CPU, RLIMIT_DATA, RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, \
    RLIMIT_NOFILE
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
        """(resource, value) pairs the first process starts with (soft =
        hard = value): --nofile's, --memory's, --cpu-time's, and always
        RLIMIT_MEMLOCK (memlock_limit)."""
        out = [(RLIMIT_MEMLOCK, memlock_limit(self.memory))]
        if self.nofile is not None:
            out.append((RLIMIT_NOFILE, self.nofile))
        if self.memory is not None:
            out.append((RLIMIT_DATA, self.memory))
            # POSIX message queues are kernel memory no RSS shows: their
            # bytes are held to RLIMIT_MSGQUEUE, counted in the sandbox's
            # user namespace, never above the host's own limit
            import resource
            host = resource.getrlimit(RLIMIT_MSGQUEUE)[1]
            out.append((RLIMIT_MSGQUEUE, self.memory if host == resource.RLIM_INFINITY
                        else min(self.memory, host)))
        if self.cpu_time is not None:
            out.append((RLIMIT_CPU, max(1, int(self.cpu_time + 0.999))))
        return out

    def resources(self):
        """The resources rlimits() sets: the sandbox's own limits, which
        the guest kernel never pretends to raise (syscalls/rlimit.py)."""
        out = {RLIMIT_MEMLOCK}
        if self.nofile is not None:
            out.add(RLIMIT_NOFILE)
        if self.memory is not None:
            out |= {RLIMIT_DATA, RLIMIT_MSGQUEUE}
        if self.cpu_time is not None:
            out.add(RLIMIT_CPU)
        return out


# RLIMIT_MEMLOCK without --memory.  Root natively locks any amount
# (CAP_IPC_LOCK of the host's namespace, which no root of a user namespace
# holds); an ordinary user gets the kernel's default of 8 MiB (MLOCK_LIMIT
# since Linux 5.16, 64 KiB before; systemd's DefaultLimitMEMLOCK is 8M);
# runc, podman and docker set no RLIMIT_MEMLOCK unless asked (--ulimit
# memlock=...), so a container inherits the engine's, 8 MiB as a rule,
# and its root lacks CAP_IPC_LOCK by default.  64 MiB is 8 times that
# (what systemd gives its own PID 1): enough for the programs that lock
# their buffers (gpg's secure memory, databases, crypto libraries,
# io_uring before Linux 5.12), while memory no one can reclaim stays
# bounded in a sandbox without --memory.
MEMLOCK_DEFAULT = 64 << 20


def memlock_limit(memory=None):
    """RLIMIT_MEMLOCK of every sandbox, soft and hard, on purpose: guest
    root is root only in its user namespace, so the host holds its mlock
    to RLIMIT_MEMLOCK (a program that mlocks its buffers fails with
    ENOMEM beyond it).  The limit is --memory's size (locked memory is
    memory), or MEMLOCK_DEFAULT without it.  The sandbox's first process
    sets it inside its user namespace, where no hard limit can be raised:
    so umlpy raises its own hard limit to that first, which it may with
    CAP_SYS_RESOURCE (root, normally), and the first process inherits it.
    Without that capability (an ordinary user, or a root without it, as
    in a container) the limit is the host's hard limit as umlpy has it,
    when that is lower, and the guest sees the truth: getrlimit shows it
    and an mlock beyond it fails with ENOMEM, as in a user namespace
    natively.  Guest root cannot raise it, not even in appearance
    (syscalls/rlimit.py's sandbox_limits)."""
    import resource     # here, not at start-up
    wanted = MEMLOCK_DEFAULT if memory is None else max(memory, 1)
    soft, hard = resource.getrlimit(RLIMIT_MEMLOCK)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(RLIMIT_MEMLOCK, (soft, wanted))
            hard = wanted
        except (OSError, ValueError):
            pass
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


# ---- the watchdog: memory and CPU of the whole sandbox ----------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(stat_path):
    """utime + stime of a whole process (its threads included), and
    cutime + cstime: what its children it waited for used, theirs
    included (a dead process's time lives on in its reaper's)."""
    with open(stat_path, "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def _reaped_cpu():
    """CPU seconds of the processes umlpy itself has reaped."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def private_memory(tid):
    """The private memory (RssAnon + RssShmem) of tid's process, in bytes."""
    total = 0
    with open(f"/proc/{tid}/status", "rb") as f:
        for line in f:
            if line.startswith((b"RssAnon:", b"RssShmem:")):
                total += int(line.split()[1]) * 1024
    return total


def _memfds(tgid):
    """{(dev, ino): bytes} of the memfds the process holds open."""
    out = {}
    fds = f"/proc/{tgid}/fd"
    for name in os.listdir(fds):
        try:
            if not os.readlink(f"{fds}/{name}").startswith("/memfd:"):
                continue
            st = os.stat(f"{fds}/{name}")
        except OSError:
            continue
        out[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return out


def _memfd_rss(tgid, devices):
    """Bytes of the process's RssShmem that are mappings of these memfds
    (counted once as objects instead)."""
    total, current = 0, False
    with open(f"/proc/{tgid}/smaps", "rb") as f:
        for line in f:
            if line[:1].isdigit() or line[:1] in b"abcdef":
                fields = line.split(None, 5)
                if len(fields) >= 6 and fields[5].startswith(b"/memfd:"):
                    major, minor = (int(x, 16) for x in fields[3].split(b":"))
                    current = (os.makedev(major, minor), int(fields[4])) in devices
                else:
                    current = False
            elif current and line.startswith(b"Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def sandbox_memory(tgids):
    """({tgid: private bytes}, {tgid: bytes of memfds it is charged for}):
    what --memory holds the sandbox to.  A process's private memory is
    RssAnon + RssShmem; a memfd held open is counted whole, once, on the
    first process found holding it (filled with write() and never mapped,
    it shows in no RssShmem), and its mapped pages are then not counted
    again in RssShmem."""
    usage, held, seen = {}, {}, set()
    for tgid in tgids:
        try:
            memory = private_memory(tgid)
            memfds = _memfds(tgid)
            if memfds:
                memory -= _memfd_rss(tgid, set(memfds))
        except (OSError, ValueError):
            continue
        usage[tgid] = max(0, memory)
        new = {key: size for key, size in memfds.items() if key not in seen}
        seen.update(new)
        if new:
            held[tgid] = sum(new.values())
    return usage, held


def _own_memory():
    """umlpy's own private memory (0 if /proc cannot tell)."""
    try:
        return private_memory(os.getpid())
    except (OSError, ValueError):
        return 0


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
        self.cpu_over = 0           # consecutive samples over --cpu-time
        self.memory_over = 0        # consecutive samples over --memory
        self.shm_file = None        # /proc/sysvipc/shm of the sandbox's IPC namespace
        self.reaped_before = _reaped_cpu()     # umlpy's children before the guest's
        # umlpy's own memory as the guest starts: what it grows by beyond
        # this is kept for the guest (listings, lookups...) and counts as
        # the sandbox's (issue 12)
        self.own_baseline = _own_memory()
        self.reason = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="umlpy-watchdog", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join(1)
        if self.shm_file is not None and self.shm_file >= 0:
            os.close(self.shm_file)
            self.shm_file = -1

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
            # twice in a row: a child read just before its parent reaped it
            # and the parent just after is counted twice in one sample
            self.cpu_over = self.cpu_over + 1 if self.cpu_used(tgids) >= limits.cpu_time else 0
            if self.cpu_over >= 2:
                self.kill_all(f"CPU time limit of {limits.cpu_time:g} s reached")
                return
        if limits.memory is not None:
            usage, held = sandbox_memory(tgids)
            shm = self.detached_shm()
            own = max(0, _own_memory() - self.own_baseline)
            total = sum(usage.values()) + sum(held.values()) + shm + own
            if total <= limits.memory:
                self.memory_over = 0
                return
            self.memory_over += 1
            # The largest process, counting the memfds it holds; when no
            # process holds what is over (detached SysV segments outlive
            # them all), or killing one did not help, the whole sandbox.
            charged = {tgid: usage.get(tgid, 0) + held.get(tgid, 0) for tgid in usage}
            if charged and self.memory_over == 1 and shm + own <= limits.memory:
                victim = max(charged, key=charged.get)
                self.note(f"memory limit of {limits.memory} bytes reached: killed guest "
                          f"process {self.kernel.processes.guest_tid(victim) or victim}")
                _kill(victim)
            else:
                self.kill_all(f"memory limit of {limits.memory} bytes reached by the "
                              f"sandbox as a whole (shared memory {shm + sum(held.values())} "
                              f"bytes, the guest kernel's own {own}): killed every guest "
                              "process")

    def detached_shm(self):
        """Bytes of the SysV shared memory segments of the sandbox's own IPC
        namespace that no process has attached (attached ones are in their
        processes' RssShmem): read through /proc/sysvipc/shm as opened in
        the sandbox (the file shows its opener's namespace)."""
        if self.shm_file is None:
            ids, main = self.kernel.first_ids, self.kernel.processes.main
            if ids is None or main is None:
                return 0
            from .vfs.hostopen import Opener
            opener = Opener(main, ids["clone_flags"], ids["uid_inside"], ids["gid_inside"])
            try:
                self.shm_file = opener.open("/proc/sysvipc/shm", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.shm_file = -1
            finally:
                opener.close()
        if self.shm_file < 0:
            return 0
        os.lseek(self.shm_file, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(self.shm_file, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        total = 0
        for line in b"".join(chunks).splitlines()[1:]:
            fields = line.split()
            # key shmid perms size cpid lpid nattch uid gid cuid cgid atime
            # dtime ctime rss swap
            if len(fields) >= 16 and fields[6] == b"0":
                total += int(fields[14]) + int(fields[15])
        return total

    def cpu_used(self, tgids):
        """CPU seconds the sandbox has used, the dead included: every
        process of its pid namespace, zombies too, with what its reaped
        children used (so a child of a few milliseconds, born and gone
        between two samples, still counts).  Without a pid namespace of
        its own, its processes and what umlpy reaped (it is the orphans'
        subreaper)."""
        cgroup = self.kernel.cgroup
        if cgroup is not None and "cpuacct" in cgroup.dirs:
            return cgroup.cpu_seconds()         # the kernel's own count: exact
        total = 0.0
        init = self.kernel.init_host_pid
        if self.kernel.pid_namespace and init is not None:
            proc = f"/proc/{init}/root/proc"
            for name in os.listdir(proc):
                if name.isdigit():
                    try:
                        total += _cpu_seconds(f"{proc}/{name}/stat")
                    except (OSError, ValueError):
                        pass        # gone meanwhile: its time is in its reaper's
            return total
        for tgid in tgids:
            try:
                total += _cpu_seconds(f"/proc/{tgid}/stat")
            except (OSError, ValueError):
                pass
        return total + _reaped_cpu() - self.reaped_before

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
    """Bytes the storage below roots holds: each object's blocks, or its
    size if that is more (a sparse file's holes are space the guest may
    fill through a shared mapping, with no call to count).  An iterative
    walk (the guest makes trees as deep as it likes), never following a
    symlink."""
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
                        total += max(st.st_blocks * 512,
                                     st.st_size if _stat.S_ISREG(st.st_mode) else 0)
                        if e.is_dir(follow_symlinks=False):
                            pending.append(e.path)
            except OSError:
                continue
    return total


class DiskQuota:
    """What the guest may still write into the sandbox's storage.  used is
    an upper bound: each write is counted whole (it may overwrite), and
    the real usage is measured again when the bound reaches the quota.
    Copy-ups (union.reserve_space), files grown by truncate, ftruncate
    and fallocate, and AIO writes are counted as writes are; a file's
    size counts even where it is sparse, so writes through a shared
    mapping (no call at all) stay within what was counted."""

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

    def reserve(self, wanted):
        """All of wanted bytes, or OSError(ENOSPC) and none."""
        granted = self.grant(wanted)
        if granted < wanted:
            self.used -= max(0, granted)
            raise OSError(errno.ENOSPC, "the sandbox's --disk quota is used up")
