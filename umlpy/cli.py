"""The umlpy command line.

A small parser of its own rather than argparse: argparse (with re, enum
and gettext) costs ~5 ms, a quarter of umlpy's start-up, on every run.
"""
import os
import sys

from . import __version__
from .errors import BadInput, UmlpyError


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

SYSCALLS_OPTIONS = [
    Option(["--markdown"], "markdown", "print the table as a Markdown page"),
]

COMMANDS = {
    "run": ("[OPTIONS] -- PROG [ARGS]",
            "Run PROG in a throwaway sandbox and exit with its status "
            "(128+N if signal N killed it).  Resource limits are enforced by the "
            "guest kernel and rlimits, for any user (cgroups are not used).", RUN_OPTIONS),
    "syscalls": ("[--markdown]", "Print how each x86_64 syscall is handled.",
                 SYSCALLS_OPTIONS),
}

MAIN_USAGE = """usage: umlpy [--version] [--help] COMMAND ...

Run Linux programs under umlpy's guest kernel (ptrace + seccomp).

commands:
  run        run a program in a throwaway sandbox
  trace      run a program and print its system calls, as strace does
  syscalls   print the syscall support table
  diff       list what a sandbox's upper layer added, modified and deleted
  commit     apply an upper layer's changes to a host directory
  discard    throw an upper layer's changes away

'umlpy COMMAND --help' describes a command.
"""


class Args:
    """Parsed options of one command, as attributes."""

    def __init__(self, options):
        for opt in options:
            setattr(self, opt.dest, [] if opt.repeat else (None if opt.metavar else False))
        self.argv = []


def command_help(name):
    usage, description, options = COMMANDS[name]
    lines = [f"usage: umlpy {name} {usage}", "", description, "", "options:"]
    for opt in options:
        names = ", ".join(opt.names) + (f" {opt.metavar}" if opt.metavar else "")
        lines.append(f"  {names:24s} {opt.help}")
    lines.append(f"  {'-h, --help':24s} show this help and exit")
    return "\n".join(lines) + "\n"


def parse_options(name, words):
    """Options up to the first non-option word (or '--'); the rest is argv."""
    options = COMMANDS[name][2]
    by_name = {n: opt for opt in options for n in opt.names}
    args = Args(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            i += 1
            break
        if word in ("-h", "--help"):
            sys.stdout.write(command_help(name))
            raise SystemExit(0)
        if not word.startswith("-") or word == "-":
            break
        key, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = by_name.get(key)
        if opt is None:
            raise BadInput(f"umlpy {name}: unknown option {key} (see 'umlpy {name} --help')")
        if opt.metavar is None:
            if eq:
                raise BadInput(f"umlpy {name}: {key} takes no value")
            setattr(args, opt.dest, True)
        else:
            if eq:
                value = inline
            elif i + 1 < len(words):
                i += 1
                value = words[i]
            else:
                raise BadInput(f"umlpy {name}: {key} needs a value ({opt.metavar})")
            if opt.repeat:
                getattr(args, opt.dest).append(value)
            else:
                setattr(args, opt.dest, value)
        i += 1
    args.argv = words[i:]
    return args


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
        from .sandbox import install_debugging      # only then: a plain run pays nothing
        install_debugging(kernel, args.breaks, args.log_level)
    if prepare is not None:
        prepare(kernel)
    kernel.spawn(argv, env=env)
    return kernel.run()


def cmd_syscalls(args):
    from .kernel.syscalls import TABLE
    from .docs import syscall_table_markdown

    if args.argv:
        raise BadInput(f"umlpy syscalls: unexpected argument {args.argv[0]!r}")
    if args.markdown:
        sys.stdout.write(syscall_table_markdown(TABLE))
        return 0
    for entry in TABLE:
        why = f"  {entry.why}" if entry.why else ""
        print(f"{entry.nr:4d} {entry.name:24s} {entry.family:8s} {entry.describe()}{why}")
    return 0


def cmd_changes(name):
    def handler(words):
        from . import changes_cli
        return getattr(changes_cli, f"main_{name}")(words)
    return handler


HANDLERS = {"run": cmd_run, "syscalls": cmd_syscalls}
RAW_HANDLERS = {name: cmd_changes(name) for name in ("diff", "commit", "discard")}


def cmd_trace(words):
    from .trace.cli import main as trace_main     # only 'umlpy trace' imports it
    return trace_main(words)


RAW_HANDLERS["trace"] = cmd_trace


def entry():
    """The umlpy command: main(), then leave at once.  A run is over when
    the guest is gone and its sandbox torn down: the interpreter's own
    teardown (module finalization, a last garbage collection, daemon
    threads) would add about 9 ms to every command and change nothing."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass        # a closed pipe: what was left to say is lost, as natively
    os._exit(status if isinstance(status, int) else 0 if status is None else 1)


def main(argv=None):
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        if not words:
            sys.stderr.write(MAIN_USAGE)
            return 2
        first = words[0]
        if first in ("-h", "--help"):
            sys.stdout.write(MAIN_USAGE)
            return 0
        if first == "--version":
            print(f"umlpy {__version__}")
            return 0
        if first in RAW_HANDLERS:
            return RAW_HANDLERS[first](words[1:])
        if first not in COMMANDS:
            raise BadInput(f"umlpy: unknown command {first!r} (see 'umlpy --help')")
        return HANDLERS[first](parse_options(first, words[1:]))
    except UmlpyError as e:
        msg = str(e)
        print(msg if msg.startswith("umlpy") else f"umlpy: {msg}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
