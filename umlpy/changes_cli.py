"""`umlpy diff`, `umlpy commit` and `umlpy discard`: what a sandbox's upper
layer changed, applied to a host directory, or dropped.

Each command parses its own few options (no argparse: start-up time) and
answers bad usage with one line on stderr and status 2."""
import os
import sys

from .errors import BadInput, UmlpyError

DIFF_USAGE = "umlpy diff --upper DIR [--rootfs DIR|IMG.tar] [--layer IMG.tar]... [--json]"
COMMIT_USAGE = "umlpy commit --upper DIR [--to DIR] [--rootfs DIR] [--dry-run] [--keep]"
DISCARD_USAGE = "umlpy discard --upper DIR"

DIFF_HELP = f"""usage: {DIFF_USAGE}

List what the upper layer changes over the lower: one line per path,
'A' added, 'M' modified, 'D' deleted.

options:
  --upper DIR              the sandbox's upper (copy-on-write) directory
  --rootfs DIR|IMG.tar     the lower layer (default: /)
  --layer IMG.tar          a tar image stacked over --rootfs IMG.tar (repeatable)
  --json                   print a JSON list of {{kind, path, type}}
  -h, --help               show this help and exit
"""

COMMIT_HELP = f"""usage: {COMMIT_USAGE}

Apply the upper layer's changes to a host directory, print them, and empty
the upper directory.  Symlinks are copied, never followed.

options:
  --upper DIR              the sandbox's upper (copy-on-write) directory
  --to DIR                 the directory to write (default: --rootfs; the
                           host's / only when given as --to /)
  --rootfs DIR             the lower directory (default: /)
  --dry-run                print the changes, apply nothing
  --keep                   do not empty the upper directory afterwards
  -h, --help               show this help and exit
"""

DISCARD_HELP = f"""usage: {DISCARD_USAGE}

Drop every change of the sandbox: empty its upper directory.

options:
  --upper DIR              the sandbox's upper (copy-on-write) directory
  -h, --help               show this help and exit
"""

VALUE, FLAG, REPEAT = "value", "flag", "repeat"


def _parse(command, argv, options, help_text):
    """{dest: value} for options {"--name": VALUE|FLAG|REPEAT}; None after --help."""
    initial = {VALUE: None, FLAG: False}
    values = {name[2:].replace("-", "_"): [] if kind == REPEAT else initial[kind]
              for name, kind in options.items()}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("-h", "--help"):
            sys.stdout.write(help_text)
            return None
        key, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        kind = options.get(key)
        if kind is None:
            if word.startswith("-"):
                raise BadInput(f"unknown option {key} (see 'umlpy {command} --help')")
            raise BadInput(f"unexpected argument {word!r} (usage: {_usage(command)})")
        dest = key[2:].replace("-", "_")
        if kind == FLAG:
            if eq:
                raise BadInput(f"{key} takes no value")
            values[dest] = True
        else:
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise BadInput(f"{key} needs a value")
            if kind == REPEAT:
                values[dest].append(value)
            else:
                values[dest] = value
        i += 1
    if values.get("upper") is None:
        raise BadInput(f"--upper DIR is required (usage: {_usage(command)})")
    return values


def _usage(command):
    return {"diff": DIFF_USAGE, "commit": COMMIT_USAGE, "discard": DISCARD_USAGE}[command]


def _run(command, body, argv):
    argv = list(argv)
    if not argv:
        sys.stderr.write(f"usage: {_usage(command)}\n")
        return 2
    try:
        return body(argv)
    except UmlpyError as e:
        print(f"umlpy {command}: {e}", file=sys.stderr)
        return e.exit_status
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"umlpy {command}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _check_upper(path):
    if not os.path.lexists(path):
        raise BadInput(f"--upper {path}: No such file or directory")
    if not os.path.isdir(path):
        raise BadInput(f"--upper {path}: not a directory")


def open_lower(rootfs, layers):
    """The lower layer for --rootfs/--layer: a host directory or stacked
    tar images."""
    from .kernel.vfs.changes import HostDirLower, TarLower

    if rootfs is None:
        if layers:
            raise BadInput("--layer stacks tar images over --rootfs IMG.tar, which is missing")
        return HostDirLower("/")
    if os.path.isdir(rootfs):
        if layers:
            raise BadInput(f"--layer stacks tar images, but --rootfs {rootfs} is a directory")
        return HostDirLower(rootfs)
    for image in [rootfs, *layers]:
        if not os.path.exists(image):
            raise BadInput(f"{image}: No such file or directory")
    try:
        from .kernel.vfs.tarimage import stack_images
    except ImportError:
        raise BadInput(f"--rootfs {rootfs}: tar images are not supported by this umlpy "
                       f"(umlpy.kernel.vfs.tarimage is missing)") from None
    try:
        return TarLower(stack_images([rootfs, *layers]))
    except Exception as e:
        # A bad image fails in many ways (OSError, tarfile's errors, the
        # reader's own): each means the same thing to the user.
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInput(f"--rootfs {rootfs}: not a usable tar image ({detail})") from None


def _print_changes(changes, as_json=False):
    if as_json:
        import json
        sys.stdout.write(json.dumps([c.as_dict() for c in changes]) + "\n")
    else:
        sys.stdout.write("".join(c.line() + "\n" for c in changes))


def _diff(argv):
    opts = _parse("diff", argv, {"--upper": VALUE, "--rootfs": VALUE, "--layer": REPEAT,
                                 "--json": FLAG}, DIFF_HELP)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts["upper"])
    lower = open_lower(opts["rootfs"], opts["layer"])
    _print_changes(changes.diff(opts["upper"], lower), opts["json"])
    return 0


def _commit(argv):
    opts = _parse("commit", argv, {"--upper": VALUE, "--to": VALUE, "--rootfs": VALUE,
                                   "--dry-run": FLAG, "--keep": FLAG}, COMMIT_HELP)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts["upper"])
    rootfs = opts["rootfs"]
    if rootfs is not None and not os.path.isdir(rootfs):
        raise BadInput(f"--rootfs {rootfs}: not a directory (commit writes into a directory)")
    target = opts["to"]
    if target is None:
        target = rootfs if rootfs is not None else "/"
        if os.path.realpath(target) == "/":
            raise BadInput("refusing to write into the host's / without an explicit --to /")
    if not os.path.isdir(target):
        what = "not a directory" if os.path.lexists(target) else "No such file or directory"
        raise BadInput(f"--to {target}: {what}")
    lower = changes.HostDirLower(rootfs) if rootfs is not None else None
    applied = changes.commit(opts["upper"], target, lower=lower, dry_run=opts["dry_run"],
                             keep=opts["keep"])
    _print_changes(applied)
    return 0


def _discard(argv):
    opts = _parse("discard", argv, {"--upper": VALUE}, DISCARD_HELP)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts["upper"])
    dropped = changes.discard(opts["upper"])
    print(f"dropped {dropped} {'entry' if dropped == 1 else 'entries'}")
    return 0


def main_diff(argv):
    return _run("diff", _diff, argv)


def main_commit(argv):
    return _run("commit", _commit, argv)


def main_discard(argv):
    return _run("discard", _discard, argv)


COMMANDS = {"diff": main_diff, "commit": main_commit, "discard": main_discard}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: {DIFF_USAGE}\n       {COMMIT_USAGE}\n       {DISCARD_USAGE}\n")
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
