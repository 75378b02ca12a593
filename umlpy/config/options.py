"""Every sandbox option, declared once: its keyword (the Python API's and
the configuration's attribute), its command-line flags, the help line,
and the parser that types and checks its value.  The `umlpy run` and
`umlpy trace` parsers, their --help, the Sandbox API's keywords, the
options page (docs/OPTIONS.md) and the syscall table's "with --FLAG"
notes are all derived from this list."""
from . import values as V


class Option:
    __slots__ = ("name", "flags", "help", "metavar", "parse", "repeat", "default", "show")

    def __init__(self, name, flags, help, metavar=None, parse=None, repeat=False,
                 default=None, show=None):
        self.name = name            # keyword and attribute
        self.flags = flags          # command-line spellings; () for the API alone
        self.help = help
        self.metavar = metavar      # None: a flag without a value
        self.parse = parse or (V.text if metavar else V.flag)
        self.repeat = repeat        # the flag may be given many times: a list
        self.default = False if default is None and metavar is None else default
        self.show = show or V.shown   # parse's inverse: a typed value as a word

    @property
    def flag(self):
        """The name errors and notes use: the long flag, else the keyword."""
        for f in self.flags:
            if f.startswith("--"):
                return f
        return self.name

    def unset(self):
        """The value when the option is not given."""
        return [] if self.repeat else self.default

    def __repr__(self):
        return f"<Option {self.name}>"


OPTIONS = [
    Option("rootfs", ["--rootfs"], "the guest's root: a host directory or an uncompressed "
           "tar image (default: the host's tree, read-only)", "DIR|IMG.tar", V.existing_path),
    Option("layers", ["--layer"], "another tar image stacked over --rootfs (OCI whiteouts; "
           "repeatable)", "IMG.tar", V.existing_file, repeat=True),
    Option("read_only", ["--read-only"], "the root filesystem is read-only (EROFS), as "
           "docker's --read-only; --bind and --tmpfs mounts keep their own mode"),
    Option("upper", ["--upper"], "keep the guest's changes in this directory (default: a "
           "throwaway one)", "DIR", V.directory_to_keep),
    Option("binds", ["--bind"], "show a host path at a guest path (repeatable); OPTS: a "
           "comma list of ro, rw, noexec (execve of its files EACCES, mapping them "
           "executable EPERM/EACCES, as Linux's MS_NOEXEC), exec, nosuid, nodev (always so)",
           "HOST:GUEST[:OPTS]", V.bind, repeat=True, show=V.show_bind),
    Option("tmpfs", ["--tmpfs"], "an empty writable directory at a guest path (repeatable); "
           "OPTS as --bind's, and size=SIZE (a real tmpfs of that size: root, or a user "
           "with subordinate ids)", "GUEST[:OPTS]", V.tmpfs, repeat=True, show=V.show_tmpfs),
    Option("shm_size", ["--shm-size"], "the size of the guest's /dev/shm (a real tmpfs, as "
           "--tmpfs's size=)", "SIZE", V.size),
    Option("noexec", ["--noexec"], "make one of umlpy's own mounts noexec: /dev, /dev/shm, "
           "/dev/pts, /proc or /sys, or /dev/mqueue (the guest's mount there) (repeatable)",
           "PATH", V.own_mount, repeat=True),
    Option("cwd", ["-C", "--cwd"], "guest working directory (relative: to ours on the "
           "host's tree, to / in a --rootfs)", "DIR"),
    Option("env", ["-e", "--env"], "set an environment variable (repeatable)", "K=V",
           V.env_item, repeat=True, show=V.show_env_item),
    Option("trace_all", ["--trace-all"], "stop every syscall and hand it to the guest kernel"),
    Option("pid_host", ["--pid-host"], "no pid namespace: the guest sees host pids "
           "(tracing experiments)"),
    Option("net", ["--net"], "network: none (default: a loopback of the sandbox's own), "
           "loopback (the host's), host, or allow=CIDR[:PORT],... (host destinations "
           "allowed)", "MODE", V.net_policy, show=V.show_net_policy),
    Option("net_rate", ["--net-rate"], "shape the sandbox's network traffic to this many "
           "bytes per second each way (token bucket)", "BYTES/s", V.rate),
    Option("memory", ["--memory"], "memory limit of the sandbox (RLIMIT_DATA per process, "
           "and the largest process is killed when the whole sandbox is over it)", "SIZE",
           V.size),
    Option("pids", ["--pids"], "at most N threads in the sandbox (clone/fork fail with "
           "EAGAIN)", "N", V.count),
    Option("cpu_time", ["--cpu-time"], "CPU seconds for the whole sandbox (RLIMIT_CPU per "
           "process; every process is killed when the sandbox total reaches it)", "SECONDS",
           V.seconds),
    Option("cpus", ["--cpus"], "CPU time per period, in CPUs (cgroup cpu.cfs_quota_us; needs "
           "the sandbox's own cgroup: root, cgroup v1's cpu controller)", "N", V.cpus),
    Option("cpu_period", ["--cpu-period"], "the period --cpus is counted in, microseconds "
           "(default 100000)", "MICROSECONDS", V.cpu_period),
    Option("cpu_shares", ["--cpu-shares"], "the sandbox's CPU weight against others (cgroup "
           "cpu.shares; default 1024)", "WEIGHT", V.cpu_shares),
    Option("cpuset_cpus", ["--cpuset-cpus"], "the CPUs the sandbox may run on (cgroup "
           "cpuset.cpus)", "LIST", V.cpu_list),
    Option("cpuset_mems", ["--cpuset-mems"], "the memory nodes the sandbox may use (cgroup "
           "cpuset.mems)", "LIST", V.cpu_list),
    Option("disk", ["--disk"], "quota on what the guest writes into the sandbox's storage "
           "(upper layer, tmpfs, /dev/shm): ENOSPC beyond it", "SIZE", V.size),
    Option("cgroup_path", ["--cgroup-path"], "where the sandbox's own cgroup is made, when "
           "it gets one (root, cgroup v1 controllers): absolute, from each hierarchy's root "
           "(as a container engine's cgroupsPath), or relative to umlpy's own cgroup", "PATH"),
    Option("nofile", ["--nofile"], "open files per process (RLIMIT_NOFILE)", "N",
           V.file_count),
    Option("preserve_fds", ["--preserve-fds"], "pass the caller's descriptors 3 to 3+N-1 "
           "to the guest, as runc does (by default every descriptor above 2 is closed); "
           "their host files' metadata stays unchangeable", "N", V.fd_count, default=0),
    Option("hostname", ["--hostname"], "the guest's hostname (uname nodename)", "NAME",
           V.hostname),
    Option("kernel_release", ["--kernel-release"], "the kernel release uname reports "
           "to the guest", "RELEASE", V.uname_field),
    Option("machine", ["--machine"], "the machine uname reports to the guest", "NAME",
           V.uname_field),
    Option("root", ["--root"], "fake root: the guest sees uid and gid 0; chown and "
           "chmod succeed as it sees them"),
    Option("host_root", ["--host-root"], "when umlpy runs as root, let the guest keep host "
           "root power (by default it is root inside and no one outside)"),
    Option("id_block", ["--id-block"], "when umlpy runs as root: the first of the 65536 "
           "host ids the guest's ids 0..65535 map to (default: a free block umlpy picks "
           "for the sandbox, or the one a kept --upper was made with)", "HOSTID",
           V.host_id_block),
    Option("breaks", ["--break"], "stop in pdb inside the guest kernel when the guest makes "
           "SYSCALL and the Python expression COND over call and args holds, e.g. "
           "openat:'passwd' in call.path(1) (repeatable)", "SYSCALL[:COND]", V.break_point,
           repeat=True, show=V.show_break),
    Option("log_level", ["--log-level"], "log the guest kernel's decisions to stderr: "
           "error, warning, info (policy, execs) or debug (every decided call, path "
           "resolution)", "LEVEL", V.log_level, show=V.show_log_level),
    # The Python API's alone: a command line has no handlers.
    Option("hide_vdso", (), "hide the vDSO from the guest, so that clock_gettime, "
           "gettimeofday, time, clock_getres and getcpu stop (None: when a handler is on "
           "one of them)", "BOOL", V.optional_flag),
    Option("errors", (), "what a handler that raises does: 'raise' ends the run and "
           "run() raises it; 'efault' fails the call", "raise|efault",
           V.choice("raise", "efault"), default="raise"),
]

BY_NAME = {opt.name: opt for opt in OPTIONS}
COMMAND_LINE = [opt for opt in OPTIONS if opt.flags]
