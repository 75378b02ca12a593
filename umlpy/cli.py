"""The umlpy command line."""
import argparse
import os
import sys

from . import __version__
from .errors import BadInput, UmlpyError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line and exit status 2."""

    def error(self, message):
        raise BadInput(f"{self.prog}: {message} (see '{self.prog} --help')")


def _parse_env(items):
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"-e {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def build_parser():
    parser = _Parser(prog="umlpy", description=(
        "Run Linux programs under umlpy's guest kernel (ptrace + seccomp)."))
    parser.add_argument("--version", action="version", version=f"umlpy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a program in a throwaway sandbox",
                         description="Run PROG in a throwaway sandbox and exit "
                                     "with its status (128+N if signal N killed it).")
    run.add_argument("--rootfs", metavar="DIR",
                     help="directory to use as the guest's / (chroot, in a user "
                          "namespace when not run as root)")
    run.add_argument("-C", "--cwd", metavar="DIR", help="guest working directory")
    run.add_argument("-e", "--env", metavar="K=V", action="append", default=[],
                     help="set an environment variable (repeatable)")
    run.add_argument("--trace-all", action="store_true",
                     help="stop every syscall and hand it to the guest kernel")
    run.add_argument("--pid-host", action="store_true",
                     help="no pid namespace: the guest sees host pids (tracing experiments)")
    run.add_argument("--hostname", metavar="NAME",
                     help="the guest's hostname (uname nodename)")
    run.add_argument("--kernel-release", metavar="RELEASE",
                     help="the kernel release uname reports to the guest")
    run.add_argument("--root", action="store_true",
                     help="fake root: the guest sees uid and gid 0")
    run.add_argument("--host-root", action="store_true",
                     help="when umlpy runs as root, let the guest keep host root power "
                          "(by default it is root inside and nobody outside)")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- PROG [ARGS]")

    table = sub.add_parser("syscalls", help="print the syscall support table",
                           description="Print how each x86_64 syscall is handled.")
    table.add_argument("--markdown", action="store_true", help="as a Markdown page")
    return parser


def cmd_run(args):
    from .kernel import GuestKernel, Mode

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv.pop(0)
    if not argv:
        raise BadInput("umlpy run: no program given (usage: umlpy run [OPTIONS] -- PROG [ARGS])")
    root = None
    if args.rootfs is not None:
        if not os.path.exists(args.rootfs):
            raise BadInput(f"--rootfs {args.rootfs}: No such file or directory")
        if not os.path.isdir(args.rootfs):
            raise BadInput(f"--rootfs {args.rootfs}: not a directory")
        root = os.path.abspath(args.rootfs)
    cwd = args.cwd
    if cwd is not None:
        host_cwd = os.path.join(root, cwd.lstrip("/")) if root else cwd
        if not os.path.isdir(host_cwd):
            raise BadInput(f"-C {cwd}: not a directory")
    env = dict(os.environ)
    env.update(_parse_env(args.env))

    if args.hostname is not None and not 0 < len(args.hostname.encode()) <= 64:
        raise BadInput(f"--hostname {args.hostname!r}: 1 to 64 bytes")
    kernel = GuestKernel(Mode.TRACE_ALL if args.trace_all else Mode.DEFAULT,
                         pid_namespace=not args.pid_host, hostname=args.hostname,
                         kernel_release=args.kernel_release, fake_root=args.root,
                         host_root=args.host_root)
    kernel.spawn(argv, env=env, cwd=cwd, root=root)
    return kernel.run()


def cmd_syscalls(args):
    from .kernel.syscalls import TABLE
    from .docs import syscall_table_markdown

    if args.markdown:
        sys.stdout.write(syscall_table_markdown(TABLE))
        return 0
    for entry in TABLE:
        why = f"  {entry.why}" if entry.why else ""
        print(f"{entry.nr:4d} {entry.name:24s} {entry.family:8s} {entry.describe()}{why}")
    return 0


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "syscalls":
            return cmd_syscalls(args)
        parser.print_help(sys.stderr)
        return 2
    except UmlpyError as e:
        msg = str(e)
        print(msg if msg.startswith("umlpy") else f"umlpy: {msg}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
