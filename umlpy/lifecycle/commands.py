"""The lifecycle commands: umlpy create, start, exec, ps, ls, stop, kill,
rm and logs (docker's and podman's words wherever they fit)."""
import json
import os
import signal
import sys
import time

from ..errors import BadInput, UmlpyError

ABOUT = {
    "create": ("NAME [RUN OPTIONS] [-- INIT [ARGS]]",
               "Record a named sandbox: umlpy run's options (see 'umlpy run --help'), kept\n"
               "with its own upper layer until 'umlpy rm'.  INIT, if given, runs as its\n"
               "first process (under umlpy's init, which reaps and forwards signals);\n"
               "its exit stops the sandbox."),
    "start": ("NAME", "Boot a created or stopped sandbox: its guest kernel lives on as a daemon."),
    "exec": ("[-i] [-t] [-e K=V]... [-w DIR] [-u USER[:GROUP]] NAME [--] CMD [ARGS]",
             "Run CMD in the running sandbox, with this terminal or these files as its\n"
             "stdio; exit with its status.  -t gives it a terminal of its own (a pty)."),
    "ps": ("NAME [--json]", "The sandbox's processes, with the pids the guest sees."),
    "ls": ("[--json]", "Every sandbox: state, uptime, processes, memory, upper-layer disk use, "
                       "network."),
    "stop": ("NAME [-t SECONDS]",
             "SIGTERM to every process of the sandbox; SIGKILL after SECONDS (default 10)."),
    "kill": ("NAME [SIGNAL] [--all]",
             "Send SIGNAL (default KILL) to the sandbox's init, or to every process."),
    "rm": ("[-f] NAME", "Delete a stopped sandbox: its record and its upper layer (-f: stop it "
                        "first)."),
    "logs": ("NAME [--daemon]", "What INIT wrote (the newest MiB); --daemon: the daemon's own "
                                "messages."),
}


def usage(command):
    return f"usage: umlpy {command} {ABOUT[command][0]}"


def help_text(command):
    text = f"{usage(command)}\n\n{ABOUT[command][1]}\n"
    if command == "exec":
        text += (f"\nThe same without Python's start-up (no -t): {exec_client_path()}\n"
                 "(a C client built with umlpy; link it onto your PATH as umlpy-exec).\n")
    return text


def exec_client_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "_native", "umlpy-exec")


def _split(command, words, flags, valued):
    """words -> ({name: value}, rest): flags {spelling: name} (no value)
    and valued {spelling: (name, repeatable)}, parsed as every umlpy
    command's options are (config.words), up to the first other word or
    '--'."""
    from ..config import Option
    from ..config.words import parse_words
    options = [Option(name, [flag], "") for flag, name in flags.items()]
    options += [Option(name, [flag], "", "VALUE", repeat=repeat)
                for flag, (name, repeat) in valued.items()]
    args = parse_words(f"umlpy {command}", options, words,
                       lambda: sys.stdout.write(help_text(command)))
    return args.given, args.argv


def _name_only(command, rest):
    if len(rest) != 1:
        raise BadInput(f"umlpy {command}: {usage(command)}")
    from .registry import Record
    return Record(rest[0])


# the commands --------------------------------------------------------------

def cmd_create(words):
    from .registry import Record, check_keepable, run_options
    if not words or words[0] in ("-h", "--help"):
        if words:
            sys.stdout.write(help_text("create"))
            return 0
        raise BadInput(f"umlpy create: {usage('create')}")
    record = Record(words[0])
    options = words[1:]
    _config, init, given = run_options(options, "umlpy create",
                                       lambda: sys.stdout.write(help_text("create")))
    check_keepable(given, "umlpy create")
    option_words = options[:len(options) - len(init)]
    if option_words and option_words[-1] == "--":
        option_words = option_words[:-1]
    record.create(option_words, init or None, os.getcwd())
    print(record.name)
    return 0


def run_named(name, option_words, argv, config):
    """umlpy run --name NAME: create, start, exec, stop and rm in one
    step; the program's status.  As umlpy run: the caller's environment,
    its working directory on the host's tree (/ in a --rootfs), the
    terminal when there is one (here a pty of the sandbox's own)."""
    from .client import execute
    from .daemon import start
    from .registry import Record
    record = Record(name)
    record.create(option_words, None, os.getcwd())
    try:
        start(record)
        env = dict(os.environ)
        env.update(config.environment)
        cwd = config.cwd or ("/" if config.rootfs else os.getcwd())
        tty = os.isatty(0) and os.isatty(1)
        return execute(record, argv, env, cwd, tty=tty)
    finally:
        _stop_for_removal(record, grace=1)
        with record.locked():
            record.remove()


def _stop_for_removal(record, grace):
    """Stop a running sandbox that is about to go (as far as it will)."""
    from .client import request
    from .daemon import wait_gone
    if record.daemon_alive():
        try:
            request(record, "stop", timeout=grace)
        except UmlpyError:
            pass
        wait_gone(record, grace + 5)


def cmd_start(words):
    from ..kernel.identity import enter_subordinate_namespace
    from .daemon import start
    _given, rest = _split("start", words, {}, {})
    record = _name_only("start", rest)
    record.data()
    # An ordinary user with subordinate ids: the daemon lives in the user
    # namespace of them, as umlpy run does (kernel/identity.py).
    status = enter_subordinate_namespace(["start", *words])
    if status is not None:
        return status
    start(record)
    print(record.name)
    return 0


def cmd_exec(words):
    from .client import execute
    given, rest = _split("exec", words, {"-i": "interactive", "-t": "tty",
                                         "--interactive": "interactive", "--tty": "tty"},
                         {"-e": ("env", True), "--env": ("env", True),
                          "-w": ("workdir", False), "--workdir": ("workdir", False),
                          "-u": ("user", False), "--user": ("user", False)})
    if len(rest) < 2:
        raise BadInput(f"umlpy exec: {usage('exec')}")
    from .registry import Record
    record = Record(rest[0])
    argv = rest[1:]
    if argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise BadInput(f"umlpy exec: no command given ({usage('exec')})")
    env = {}
    for item in given.get("env", []):
        key, eq, value = item.partition("=")
        if not key or "\0" in item:
            raise BadInput(f"umlpy exec: -e {item!r}: expected KEY=VALUE")
        env[key] = value if eq else os.environ.get(key, "")
    user, _, group = (given.get("user") or "").partition(":")
    tty = bool(given.get("tty"))
    if tty and not os.isatty(0):
        raise BadInput("umlpy exec: -t needs a terminal on stdin")
    record.data()
    sys.stdout.flush()
    return execute(record, argv, env, given.get("workdir") or "/", user, group, tty)


def _expand_short(words):
    """-it -> -i -t, as docker's parser does."""
    out = []
    for w in words:
        if w == "--":
            out += words[len(out):]
            break
        if len(w) > 2 and w[0] == "-" and w[1] != "-" and set(w[1:]) <= set("it"):
            out += [f"-{c}" for c in w[1:]]
        else:
            out.append(w)
    return out


def cmd_ps(words):
    from .client import request
    given, rest = _split("ps", words, {"--json": "json"}, {})
    record = _name_only("ps", rest)
    record.data()
    procs = request(record, "ps")["processes"]
    if given.get("json"):
        print(json.dumps([{k: v for k, v in p.items() if k != "host_pid"} for p in procs]))
        return 0
    print(f"{'PID':>7} {'PPID':>7} {'UID':>6} S {'RSS':>8}  COMMAND")
    for p in procs:
        print(f"{p['pid'] or '?':>7} {p['ppid'] or 0:>7} {p['uid']:>6} {p['state']} "
              f"{_size(p['rss']):>8}  {' '.join(p['cmd']) or '?'}")
    return 0


def sandbox_summary(record):
    """What umlpy ls shows of one sandbox."""
    from .client import request
    state, detail = record.state()
    data = record.data()
    row = {"name": record.name, "state": state, "uptime": None, "processes": 0,
           "memory": 0, "disk": _disk_use(record.upper), "net": _net_of(data["words"])}
    if state == "running":
        try:
            info = request(record, "info")
            row.update(uptime=round(time.time() - info["started"], 1),
                       processes=info["processes"], memory=info["memory"])
        except UmlpyError:
            row["state"] = "starting"
    elif detail is not None:
        row["detail"] = detail
    return row


def cmd_ls(words):
    from .registry import all_records
    given, rest = _split("ls", words, {"--json": "json"}, {})
    if rest:
        raise BadInput(f"umlpy ls: {usage('ls')}")
    rows = [sandbox_summary(r) for r in all_records()]
    if given.get("json"):
        print(json.dumps(rows))
        return 0
    print(f"{'NAME':20s} {'STATE':9s} {'UPTIME':>8} {'PROCS':>5} {'MEMORY':>8} {'DISK':>8}  NET")
    for r in rows:
        up = _duration(r["uptime"]) if r["uptime"] is not None else "-"
        print(f"{r['name']:20s} {r['state']:9s} {up:>8} {r['processes']:>5} "
              f"{_size(r['memory']):>8} {_size(r['disk']):>8}  {r['net']}")
    return 0


def stop(record, grace):
    """Stop a running sandbox: SIGTERM to every process, SIGKILL after
    grace seconds; returns once its daemon is gone (at once if none runs)."""
    from .client import request
    from .daemon import wait_gone
    if not record.daemon_alive():
        return
    try:
        request(record, "stop", timeout=grace)
    except UmlpyError:
        if not record.daemon_alive():
            return          # it ended meanwhile
        raise
    if not wait_gone(record, grace + 5):
        raise UmlpyError(f"umlpy: sandbox {record.name!r} did not stop")


def remove(record, force=False):
    """Delete a sandbox's record and upper layer; a running one only with
    force (it is stopped at once first)."""
    if record.daemon_alive() and not force:
        raise BadInput(f"umlpy rm: sandbox {record.name!r} is running "
                       f"(umlpy stop {record.name}, or rm -f)")
    _stop_for_removal(record, grace=0)
    with record.locked():
        if record.daemon_alive():
            raise UmlpyError(f"umlpy rm: sandbox {record.name!r} is still running")
        record.remove()


def cmd_stop(words):
    given, rest = _split("stop", words, {}, {"-t": ("timeout", False),
                                             "--time": ("timeout", False)})
    record = _name_only("stop", rest)
    record.data()
    try:
        grace = float(given.get("timeout", 10))
    except ValueError:
        grace = -1
    if not 0 <= grace <= 86400:
        raise BadInput(f"umlpy stop: -t {given.get('timeout')!r}: expected seconds, 0 to 86400")
    stop(record, grace)
    print(record.name)
    return 0


def cmd_kill(words):
    from .client import request
    given, rest = _split("kill", words, {"--all": "all", "-a": "all"},
                         {"-s": ("signal", False), "--signal": ("signal", False)})
    if not rest or len(rest) > 2:
        raise BadInput(f"umlpy kill: {usage('kill')}")
    from .registry import Record
    record = Record(rest[0])
    record.data()
    sig = signal_number(rest[1] if len(rest) == 2 else given.get("signal", "KILL"))
    request(record, "kill", signal=sig, all=bool(given.get("all")))
    return 0


def signal_number(text):
    text = str(text).upper()
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    name = text if text.startswith("SIG") else f"SIG{text}"
    sig = getattr(signal, name, None)
    if not isinstance(sig, signal.Signals):
        raise BadInput(f"umlpy kill: unknown signal {text!r}")
    return int(sig)


def cmd_rm(words):
    given, rest = _split("rm", words, {"-f": "force", "--force": "force"}, {})
    record = _name_only("rm", rest)
    record.data()
    # An ordinary user with subordinate ids: their files in the upper layer
    # are removable only in the user namespace of those ids.
    from ..kernel.identity import enter_subordinate_namespace
    status = enter_subordinate_namespace(["rm", *words])
    if status is not None:
        return status
    remove(record, bool(given.get("force")))
    print(record.name)
    return 0


def cmd_logs(words):
    given, rest = _split("logs", words, {"--daemon": "daemon"}, {})
    record = _name_only("logs", rest)
    record.data()
    path = record.path("daemon.log" if given.get("daemon") else "init.log")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    sys.stdout.flush()
    os.write(1, data) if data else None
    return 0


# helpers ---------------------------------------------------------------------

def _disk_use(path):
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _net_of(words):
    for i, w in enumerate(words):
        if w == "--net" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--net="):
            return w[len("--net="):]
    return "none"


def _size(n):
    n = n or 0
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _duration(seconds):
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


COMMANDS = {"create": cmd_create, "start": cmd_start, "exec": cmd_exec, "ps": cmd_ps,
            "ls": cmd_ls, "stop": cmd_stop, "kill": cmd_kill, "rm": cmd_rm, "logs": cmd_logs}


def main(command, words):
    if command in ("export", "import"):
        from . import oci_commands        # only they pay for tar and hashing
        return oci_commands.main(command, words)
    if command == "exec":
        words = _expand_short(words)
    return COMMANDS[command](words)
