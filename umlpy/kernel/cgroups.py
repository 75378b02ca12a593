"""The sandbox's own cgroup, where the host offers one: the kernel then
counts exactly what the guest kernel can only sample.

Used when umlpy runs as root and the host has the cgroup v1 controllers
mounted (this machine's case): a child of umlpy's own cgroup in each of
memory, pids and cpuacct, named after the sandbox, with

  --memory SIZE   memory.limit_in_bytes (and memory.memsw.limit_in_bytes
                  where swap is accounted): every page the sandbox
                  charges counts, memfds, SysV and POSIX shared memory,
                  tmpfs and page cache included; over it, the kernel's OOM
                  killer picks a process inside the sandbox;
  --pids N        pids.max: clone, fork and vfork fail with EAGAIN at N
                  tasks, exactly, however many race;
  --cpu-time T    cpuacct.usage: the CPU time of every process the
                  sandbox ever ran, read by the watchdog, which kills the
                  sandbox at T.

Without them (an ordinary user; no v1 controller; a cgroup v2 host with
no delegated subtree) the guest kernel's own enforcement stands alone
(limits.py), and it stays in force beside the cgroup in every case.
The first process joins at its first stop, before any guest code runs;
every process it makes is born inside."""
import errno
import os

CONTROLLERS = ("memory", "pids", "cpuacct", "cpu", "cpuset")
CFS_PERIOD_DEFAULT = 100000     # microseconds: the kernel's own default


def _v1_mounts():
    """{controller: its v1 hierarchy's mount point}."""
    found = {}
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = right.split()
        if not sep or len(fields) < 3 or fields[0] != "cgroup":
            continue
        for option in fields[2].split(","):
            if option in CONTROLLERS:
                found.setdefault(option, left.split()[4])
    return found


def _own_paths():
    """{controller: umlpy's own cgroup path in its hierarchy}."""
    paths = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(","):
                    paths[c] = path
    except (OSError, ValueError):
        pass
    return paths


def available():
    """The controllers a sandbox may get a cgroup in: {controller: the
    directory its sandboxes' cgroups go in} (empty: none)."""
    if os.geteuid() != 0:
        return {}
    mounts, own = _v1_mounts(), _own_paths()
    out = {}
    for controller in CONTROLLERS:
        if controller in mounts and controller not in out:
            parent = os.path.join(mounts[controller], own.get(controller, "/").lstrip("/"))
            if os.access(parent, os.W_OK):
                out[controller] = parent
    return out


def placed(parents, path):
    """{controller: the directory the sandbox's cgroup is made in, and its
    name there} for --cgroup-path PATH: absolute, from each hierarchy's
    root (a container engine's cgroupsPath, /libpod_parent/libpod-ID);
    relative, below umlpy's own cgroup."""
    mounts = _v1_mounts()
    out = {}
    for controller, parent in parents.items():
        if path.startswith("/"):
            base = mounts[controller]
        else:
            base = parent
        full = os.path.normpath(os.path.join(base, path.lstrip("/")))
        if not full.startswith(mounts[controller].rstrip("/") + "/"):
            raise OSError(errno.EINVAL, f"--cgroup-path {path}: outside the hierarchy")
        out[controller] = (os.path.dirname(full), os.path.basename(full))
    return out


def in_force_text():
    """What --help says about how the limits are enforced on this host."""
    controllers = available()
    if not controllers:
        return ("Resource limits are enforced by the guest kernel and rlimits (no cgroup "
                "is available to this user on this host).")
    return ("Resource limits are enforced by the sandbox's own cgroup (" +
            ", ".join(sorted(controllers)) + ", v1) and by the guest kernel and rlimits.")


class CpuControls:
    """--cpus, --cpu-period, --cpu-shares, --cpuset-cpus, --cpuset-mems:
    enforced only by the sandbox's own cgroup (nothing in the guest kernel
    could share the CPU out as the scheduler does), so a sandbox that asks
    for them and gets no cgroup does not start."""

    def __init__(self, cpus=None, period=None, shares=None, cpuset_cpus=None,
                 cpuset_mems=None):
        self.cpus, self.period, self.shares = cpus, period, shares
        self.cpuset_cpus, self.cpuset_mems = cpuset_cpus, cpuset_mems

    @classmethod
    def from_config(cls, config):
        return cls(config.cpus, config.cpu_period, config.cpu_shares, config.cpuset_cpus,
                   config.cpuset_mems)

    def wants_cpu(self):
        return any(v is not None for v in (self.cpus, self.period, self.shares))

    def wants_cpuset(self):
        return self.cpuset_cpus is not None or self.cpuset_mems is not None

    def any(self):
        return self.wants_cpu() or self.wants_cpuset()

    def missing(self, parents):
        """The controllers these controls need and parents lack."""
        needed = (["cpu"] if self.wants_cpu() else []) + \
            (["cpuset"] if self.wants_cpuset() else [])
        return [c for c in needed if c not in parents]


class SandboxCgroup:
    """One sandbox's cgroups: made before its first process runs guest
    code, removed when the sandbox is over."""

    def __init__(self, name, limits, parents=None, path=None, cpu=None):
        """name: the cgroup's, in each controller's parent; path: where
        --cgroup-path puts it instead (placed); cpu: CpuControls."""
        self.dirs = {}
        parents = available() if parents is None else parents
        cpu = cpu or CpuControls()
        wanted = {"memory": limits is not None and limits.memory is not None,
                  "pids": limits is not None and limits.pids is not None,
                  "cpuacct": limits is not None and limits.cpu_time is not None,
                  "cpu": cpu.wants_cpu(), "cpuset": cpu.wants_cpuset()}
        where = placed(parents, path) if path else \
            {c: (parent, name) for c, parent in parents.items()}
        try:
            for controller, (parent, leaf) in where.items():
                if not wanted.get(controller):
                    continue
                # an engine's parent (libpod_parent, docker) may not be
                # there yet: made as runc makes it, and left after
                os.makedirs(parent, 0o755, exist_ok=True)
                path = os.path.join(parent, leaf)
                os.mkdir(path, 0o755)
                self.dirs[controller] = path
            if "memory" in self.dirs:
                self._write("memory", "memory.limit_in_bytes", limits.memory)
                self._write("memory", "memory.memsw.limit_in_bytes", limits.memory,
                            optional=True)
            if "pids" in self.dirs:
                self._write("pids", "pids.max", limits.pids)
            if "cpu" in self.dirs:
                if cpu.shares is not None:
                    self._write("cpu", "cpu.shares", cpu.shares)
                if cpu.cpus is not None:
                    period = cpu.period or CFS_PERIOD_DEFAULT
                    self._write("cpu", "cpu.cfs_period_us", period)
                    self._write("cpu", "cpu.cfs_quota_us", max(1000, round(cpu.cpus * period)))
                elif cpu.period is not None:
                    self._write("cpu", "cpu.cfs_period_us", cpu.period)
            if "cpuset" in self.dirs:
                # a v1 cpuset takes no task before it has CPUs and nodes:
                # its parent's, unless asked
                parent = os.path.dirname(self.dirs["cpuset"])
                for leaf, asked in (("cpuset.cpus", cpu.cpuset_cpus),
                                    ("cpuset.mems", cpu.cpuset_mems)):
                    with open(os.path.join(parent, leaf)) as f:
                        inherited = f.read().strip()
                    self._write("cpuset", leaf, asked if asked is not None else inherited)
        except OSError:
            self.close()
            raise

    def _write(self, controller, name, value, optional=False):
        try:
            with open(os.path.join(self.dirs[controller], name), "w") as f:
                f.write(str(value))
        except FileNotFoundError:
            if not optional:
                raise
        except OSError as e:
            # memsw exists only with swap accounting; refused if swap is off
            if not optional or e.errno not in (errno.EINVAL, errno.EPERM, errno.EACCES):
                raise

    def add(self, pid):
        for controller in self.dirs:
            with open(os.path.join(self.dirs[controller], "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def cpu_seconds(self):
        """CPU time of every process the sandbox ran, or None."""
        path = self.dirs.get("cpuacct")
        if path is None:
            return None
        with open(os.path.join(path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def oom_kills(self):
        """How many times the memory limit made the kernel kill."""
        path = self.dirs.get("memory")
        if path is None:
            return 0
        try:
            with open(os.path.join(path, "memory.oom_control")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def close(self):
        """Remove the cgroups (empty once the sandbox's processes are gone;
        a zombie not yet reaped keeps one a moment longer)."""
        import time
        for controller, path in list(self.dirs.items()):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)
            self.dirs.pop(controller, None)
