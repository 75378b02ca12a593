"""`umlpy-oci`: runc's command line, as container engines call it.

    umlpy-oci [--root DIR] [--log FILE] [--log-format text|json]
              [--systemd-cgroup] [--debug] COMMAND ...

    create --bundle DIR [--pid-file F] [--console-socket S] ID
    start ID
    state ID
    kill [--all] ID [SIGNAL]
    delete [--force] ID
    exec [--process FILE] [--detach] [--pid-file F] [--tty --console-socket S]
         [--cwd D] [--env K=V] [--user UID[:GID]] ID [-- ARGS]
    ps [--format table|json] ID
    features
    --version

--systemd-cgroup is accepted and changes nothing: umlpy enforces a
container's limits itself (its own cgroups as root, rlimits and its
watchdog otherwise), never through the engine's cgroup.  --debug is
accepted (runc's verbose logs; umlpy-oci logs only errors).

An error is one line on stderr and a non-zero exit; with --log, also a
line in the log file as runc writes it (logrus's JSON, or its text with
--log-format text), which is where conmon and containerd read it."""
import argparse
import json
import os
import sys
import time

from .. import __version__
from ..errors import BadInput, UmlpyError, one_line
from .state import OCI_VERSION, default_root


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"umlpy-oci: {message}")


def parser():
    p = Parser(prog="umlpy-oci", description="umlpy as an OCI runtime (runc's command line)")
    p.add_argument("--root", help="where container state lives (default /run/umlpy-oci for "
                   "root, $XDG_RUNTIME_DIR/umlpy-oci otherwise)")
    p.add_argument("--log", help="append errors to this file")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="accepted; umlpy enforces limits itself")
    p.add_argument("--debug", action="store_true", help="accepted")
    p.add_argument("--rootless", default=None, help="accepted (auto)")
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("create")
    c.add_argument("-b", "--bundle", default=".")
    c.add_argument("--pid-file")
    c.add_argument("--console-socket")
    c.add_argument("--preserve-fds", type=int, default=0)
    c.add_argument("--no-pivot", action="store_true", help="accepted: umlpy never pivots")
    c.add_argument("--no-new-keyring", action="store_true",
                   help="accepted: the guest has no keyring calls")
    c.add_argument("id")
    for name in ("start", "state"):
        sub.add_parser(name).add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("-a", "--all", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")
    e = sub.add_parser("exec")
    e.add_argument("-p", "--process")
    e.add_argument("-d", "--detach", action="store_true")
    e.add_argument("--pid-file")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("--console-socket")
    e.add_argument("--cwd")
    e.add_argument("-e", "--env", action="append", default=[])
    e.add_argument("-u", "--user")
    e.add_argument("id")
    e.add_argument("args", nargs=argparse.REMAINDER)
    s = sub.add_parser("ps")
    s.add_argument("-f", "--format", choices=("table", "json"), default="table")
    s.add_argument("id")
    sub.add_parser("features")
    return p


def run(args):
    from . import commands
    if args.version:
        print(f"umlpy-oci version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if args.command is None:
        raise BadInput("umlpy-oci: a command is needed (see 'umlpy-oci --help')")
    if args.command == "features":
        commands.features()
        return 0
    root = args.root or default_root()
    if args.command == "create":
        commands.create(root, args.id, args.bundle, args.pid_file, args.console_socket,
                        args.preserve_fds)
    elif args.command == "start":
        commands.start(root, args.id)
    elif args.command == "state":
        commands.state(root, args.id)
    elif args.command == "kill":
        commands.kill(root, args.id, args.signal, args.all)
    elif args.command == "delete":
        commands.delete(root, args.id, args.force)
    elif args.command == "exec":
        from .execute import execute
        return execute(root, args.id, args.process, args.args, args.detach, args.pid_file,
                       args.tty, args.console_socket, args.cwd, args.env, args.user)
    elif args.command == "ps":
        from .execute import ps
        ps(root, args.id, args.format)
    return 0


def log_error(path, fmt, message):
    """One line as runc's logrus writes it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        line = json.dumps({"level": "error", "msg": message, "time": stamp})
    else:
        line = f"time={json.dumps(stamp)} level=error msg={json.dumps(message)}"
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def adopt_engine_user_namespace():
    """A rootless engine (podman run by a user) runs its runtime as root
    of a user namespace of the user's subordinate ids, as `umlpy run`
    enters one itself (kernel/identity.py): umlpy is then that user's,
    with those ids for its guests (hostuser.entered_ids)."""
    from ..hostuser import SUBORDINATE_ENV
    if os.geteuid() != 0 or os.environ.get(SUBORDINATE_ENV):
        return
    outside = []
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/self/{name}") as f:
                lines = [line.split() for line in f.read().splitlines()]
        except OSError:
            return
        if lines == [["0", "0", "4294967295"]]:
            return          # the host's own ids: root is root
        first = next((int(out) for inside, out, _ in lines if inside == "0"), None)
        if first is None:
            return
        outside.append(first)
    os.environ[SUBORDINATE_ENV] = f"{outside[0]}:{outside[1]}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, status = None, 1
    adopt_engine_user_namespace()
    try:
        args = parser().parse_args(argv)
        return run(args)
    except UmlpyError as e:
        message = one_line(str(e))
        status = getattr(e, "oci_status", 1)     # exec's 127 and 126
    except KeyboardInterrupt:
        message = "umlpy-oci: interrupted"
    sys.stdout.flush()
    print(message, file=sys.stderr)
    log = getattr(args, "log", None) if args is not None else _log_from(argv)
    if log:
        fmt = getattr(args, "log_format", None) or _value(argv, "--log-format") or "text"
        log_error(log, fmt, message)
    return status


def _value(argv, flag):
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word[len(flag) + 1:]
    return None


def _log_from(argv):
    """--log even when the rest of the line did not parse."""
    return _value(argv, "--log")


if __name__ == "__main__":
    sys.exit(main())
