"""The umlpy command line.

A small parser of its own rather than argparse: argparse (with re, enum
and gettext) costs ~5 ms, a quarter of umlpy's start-up, on every run.
"""
import os
import sys

from . import __version__
from .errors import BadInput, UmlpyError, one_line
from .config import COMMAND_LINE, Config, Option
from .config.words import parse_words
from .runcmd import cmd_run


MARKDOWN = [Option("markdown", ["--markdown"], "print it as a Markdown page")]
# umlpy run's own, no sandbox option: the run goes through a named sandbox
RUN_NAME = Option("name", ["--name"], "run in a named sandbox made for the run: create, start, "
                  "exec, stop and rm in one step (umlpy create --help)", "NAME")

COMMANDS = {
    "run": ("[OPTIONS] -- PROG [ARGS]",
            "Run PROG in a throwaway sandbox and exit with its status "
            "(128+N if signal N killed it).", COMMAND_LINE + [RUN_NAME]),
    "syscalls": ("[--markdown]", "Print how each x86_64 syscall is handled.", MARKDOWN),
    "options": ("[--markdown]", "Print the sandbox options (of run, trace and the "
                "Python API's Sandbox).", MARKDOWN),
}

MAIN_USAGE = """usage: umlpy [--version] [--help] COMMAND ...

Run Linux programs under umlpy's guest kernel (ptrace + seccomp).

commands:
  run        run a program in a throwaway sandbox
  create     record a named sandbox (then: start, exec, ps, ls, stop, kill, rm, logs)
  start      boot a named sandbox: its guest kernel lives on as a daemon
  exec       run a program in a running named sandbox
  ps         a named sandbox's processes
  ls         every named sandbox and its state
  stop       stop a named sandbox (SIGTERM, then SIGKILL after a grace period)
  kill       send a signal to a named sandbox's init or every process
  rm         delete a named sandbox and its upper layer
  logs       what a named sandbox's INIT wrote
  export     write a named sandbox as an OCI image layout (a tar file)
  import     make a named sandbox of an OCI image layout
  warm       keep sandboxes pre-started for umlpy run (start, stop, ls)
  trace      run a program and print its system calls, as strace does
  syscalls   print the syscall support table
  options    print the sandbox options
  diff       list what a sandbox's upper layer added, modified and deleted (--upper DIR or NAME)
  commit     apply an upper layer's changes to a host directory (--upper DIR or NAME)
  discard    throw an upper layer's changes away (--upper DIR or NAME)

'umlpy COMMAND --help' describes a command.
"""


def command_help(name):
    from .config.render import help_lines
    usage, description, options = COMMANDS[name]
    if name == "run":
        from .kernel.cgroups import in_force_text
        from .kernel.identity import mode_text
        description += "  " + in_force_text() + "  " + mode_text()
    lines = [f"usage: umlpy {name} {usage}", "", description, "", "options:"]
    lines += help_lines(options)
    lines.append(f"  {'-h, --help':24s} show this help and exit")
    return "\n".join(lines) + "\n"


def parse_options(name, words):
    """Options up to the first non-option word (or '--'); the rest is argv."""
    args = parse_words(f"umlpy {name}", COMMANDS[name][2], words,
                       lambda: sys.stdout.write(command_help(name)))
    if name == "run":
        args.name = args.given.pop("name", None)
        args.config = Config.from_words(args.given)
        if args.name is not None:
            args.option_words = _without_name(words[:len(words) - len(args.argv)])
    return args


def _without_name(option_words):
    """run's option words as create takes them: no --name, no '--'."""
    out, skip = [], False
    for word in option_words:
        if skip:
            skip = False
        elif word == "--name":
            skip = True
        elif not word.startswith("--name=") and word != "--":
            out.append(word)
    return out


def cmd_syscalls(args):
    from .kernel.syscalls import TABLE
    from .docs import syscall_table_markdown

    if args.argv:
        raise BadInput(f"umlpy syscalls: unexpected argument {args.argv[0]!r}")
    if args.markdown:
        sys.stdout.write(syscall_table_markdown(TABLE))
        return 0
    from .docs import option_notes
    for entry in TABLE:
        why = f"  {entry.why}" if entry.why else ""
        options = "".join(f" (emulated with {flag})" for flag, _ in option_notes(TABLE, entry.nr))
        print(f"{entry.nr:4d} {entry.name:24s} {entry.family:8s} {entry.describe()}{options}{why}")
    return 0


def cmd_options(args):
    from .config.render import help_lines, options_markdown
    from .kernel.syscalls import TABLE

    if args.argv:
        raise BadInput(f"umlpy options: unexpected argument {args.argv[0]!r}")
    if args.markdown:
        sys.stdout.write(options_markdown(TABLE))
        return 0
    from .config import OPTIONS
    sys.stdout.write("\n".join(help_lines(OPTIONS)) + "\n")
    return 0


def cmd_changes(name):
    def handler(words):
        from . import changes_cli
        if words and not words[0].startswith("-"):
            words = _named_upper(name, words[0]) + words[1:]
        return getattr(changes_cli, f"main_{name}")(words)
    return handler


def _named_upper(command, name):
    """umlpy diff/commit/discard NAME: the named sandbox's upper layer
    (which records the lower it was made over)."""
    from .lifecycle.registry import Record
    record = Record(name)
    record.data()
    if command != "diff" and record.daemon_alive():
        raise BadInput(f"umlpy {command}: sandbox {name!r} is running: stop it first "
                       "(its guest would see its upper layer change under it)")
    return ["--upper", record.upper]


HANDLERS = {"run": cmd_run, "syscalls": cmd_syscalls, "options": cmd_options}
RAW_HANDLERS = {name: cmd_changes(name) for name in ("diff", "commit", "discard")}


def cmd_trace(words):
    from .trace.cli import main as trace_main     # only 'umlpy trace' imports it
    return trace_main(words)


RAW_HANDLERS["trace"] = cmd_trace


def cmd_warm(words):
    from .warm.commands import main as warm_main
    return warm_main(words)


RAW_HANDLERS["warm"] = cmd_warm


def cmd_lifecycle(name):
    def handler(words):
        from .lifecycle.commands import main as lifecycle_main
        return lifecycle_main(name, words)
    return handler


for _name in ("create", "start", "exec", "ps", "ls", "stop", "kill", "rm", "logs", "export",
              "import"):
    RAW_HANDLERS[_name] = cmd_lifecycle(_name)


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
        msg = one_line(str(e))
        print(msg if msg.startswith("umlpy") else f"umlpy: {msg}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
