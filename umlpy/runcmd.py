"""umlpy run: its options, declared once, and the command itself (used
by the umlpy command line and by umlpy trace, which runs a sandbox too)."""
import os

from .errors import BadInput


class Option:
    def __init__(self, names, dest, help, metavar=None, repeat=False):
        self.names = names
        self.dest = dest
        self.help = help
        self.metavar = metavar        # None: a flag without a value
        self.repeat = repeat


RUN_OPTIONS = [
    Option(["--rootfs"], "rootfs", "the guest's root: a host directory or an uncompressed "
           "tar image (default: the host's tree, read-only)", "DIR|IMG.tar"),
    Option(["--layer"], "layer", "another tar image stacked over --rootfs (OCI whiteouts; "
           "repeatable)", "IMG.tar", repeat=True),
    Option(["--upper"], "upper", "keep the guest's changes in this directory (default: a "
           "throwaway one)", "DIR"),
    Option(["--bind"], "bind", "show a host path at a guest path (repeatable)",
           "HOST:GUEST[:ro]", repeat=True),
    Option(["--tmpfs"], "tmpfs", "an empty writable directory at a guest path (repeatable)",
           "GUEST", repeat=True),
    Option(["-C", "--cwd"], "cwd", "guest working directory", "DIR"),
    Option(["-e", "--env"], "env", "set an environment variable (repeatable)", "K=V",
           repeat=True),
    Option(["--trace-all"], "trace_all", "stop every syscall and hand it to the guest kernel"),
    Option(["--pid-host"], "pid_host", "no pid namespace: the guest sees host pids "
           "(tracing experiments)"),
    Option(["--net"], "net", "network: none (default: a loopback of the sandbox's own), "
           "loopback (the host's), host, or allow=CIDR[:PORT],... (host destinations "
           "allowed)", "MODE"),
    Option(["--net-rate"], "net_rate", "shape the sandbox's network traffic to this many bytes "
           "per second each way (token bucket)", "BYTES/s"),
    Option(["--memory"], "memory", "memory limit of the sandbox (RLIMIT_DATA per process, "
           "and the largest process is killed when the whole sandbox is over it)", "SIZE"),
    Option(["--pids"], "pids", "at most N threads in the sandbox (clone/fork fail with "
           "EAGAIN)", "N"),
    Option(["--cpu-time"], "cpu_time", "CPU seconds for the whole sandbox (RLIMIT_CPU per "
           "process; every process is killed when the sandbox total reaches it)", "SECONDS"),
    Option(["--disk"], "disk", "quota on what the guest writes into the sandbox's storage "
           "(upper layer, tmpfs, /dev/shm): ENOSPC beyond it", "SIZE"),
    Option(["--nofile"], "nofile", "open files per process (RLIMIT_NOFILE)", "N"),
    Option(["--hostname"], "hostname", "the guest's hostname (uname nodename)", "NAME"),
    Option(["--kernel-release"], "kernel_release", "the kernel release uname reports "
           "to the guest", "RELEASE"),
    Option(["--root"], "root", "fake root: the guest sees uid and gid 0; chown and "
           "chmod succeed as it sees them"),
    Option(["--host-root"], "host_root", "when umlpy runs as root, let the guest keep host "
           "root power (by default it is root inside and nobody outside)"),
    Option(["--break"], "breaks", "stop in pdb inside the guest kernel when the guest makes "
           "SYSCALL and the Python expression COND over call and args holds, e.g. "
           "openat:'passwd' in call.path(1) (repeatable)", "SYSCALL[:COND]", repeat=True),
    Option(["--log-level"], "log_level", "log the guest kernel's decisions to stderr: error, "
           "warning, info (policy, execs) or debug (every decided call, path resolution)",
           "LEVEL"),
]


class Args:
    """Parsed options of one command, as attributes."""

    def __init__(self, options):
        for opt in options:
            setattr(self, opt.dest, [] if opt.repeat else (None if opt.metavar else False))
        self.argv = []


def _parse_env(items):
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"-e {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def cmd_run(args, prepare=None):
    """prepare(kernel), if given, runs before the guest starts (umlpy trace
    attaches its observer and hooks there)."""
    from .kernel import GuestKernel, Mode

    argv = args.argv
    if not argv:
        raise BadInput("umlpy run: no program given (usage: umlpy run [OPTIONS] -- PROG [ARGS])")
    from .kernel.vfs.build import FsOptions, parse_bind
    rootfs = args.rootfs
    if rootfs is not None:
        if not os.path.exists(rootfs):
            raise BadInput(f"--rootfs {rootfs}: No such file or directory")
        rootfs = os.path.abspath(rootfs)
    for layer in args.layer or ():
        if not os.path.isfile(layer):
            raise BadInput(f"--layer {layer}: No such file")
    cwd = args.cwd
    if cwd is not None and not cwd.startswith("/"):
        cwd = os.path.normpath(os.path.join(os.getcwd() if rootfs is None else "/", cwd))
    fs_options = FsOptions(rootfs=rootfs, layers=[os.path.abspath(p) for p in args.layer or ()],
                           upper=args.upper, binds=[parse_bind(b) for b in args.bind or ()],
                           tmpfs=args.tmpfs or (), cwd=cwd, hostname=args.hostname)
    env = dict(os.environ)
    env.update(_parse_env(args.env))
    if args.hostname is not None and not 0 < len(args.hostname.encode()) <= 64:
        raise BadInput(f"--hostname {args.hostname!r}: 1 to 64 bytes")

    from .kernel.netpolicy import NetPolicy
    net = NetPolicy.parse(args.net)
    from .kernel.netrate import parse_rate
    net_rate = parse_rate(args.net_rate) if args.net_rate is not None else None
    from .kernel.limits import Limits
    limits = Limits.from_options(memory=args.memory, pids=args.pids, cpu_time=args.cpu_time,
                                 disk=args.disk, nofile=args.nofile)
    kernel = GuestKernel(Mode.TRACE_ALL if args.trace_all else Mode.DEFAULT,
                         pid_namespace=not args.pid_host, hostname=args.hostname,
                         kernel_release=args.kernel_release, fake_root=args.root,
                         host_root=args.host_root, fs_options=fs_options, net=net,
                         limits=limits if limits.any() else None, net_rate=net_rate)
    if args.breaks or args.log_level is not None:
        from .api.debugger import install_debugging     # only then: a plain run pays nothing
        install_debugging(kernel, args.breaks, args.log_level)
    if prepare is not None:
        prepare(kernel)
    kernel.spawn(argv, env=env)
    return kernel.run()
