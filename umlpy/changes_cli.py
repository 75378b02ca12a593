"""`umlpy diff`, `umlpy commit` and `umlpy discard`: what a sandbox's upper
layer changed, applied to a host directory, or dropped.

Their options are declared as umlpy run's are (config.Option; --upper,
--rootfs and --layer are run's own), parsed by the same word parser, and
bad usage gets one line on stderr and status 2."""
import os
import sys

from .errors import BadInput, UmlpyError, one_line

DIFF_USAGE = "umlpy diff {--upper DIR | NAME} [--rootfs DIR|IMG.tar] [--layer IMG.tar]... [--json]"
COMMIT_USAGE = "umlpy commit {--upper DIR | NAME} [--to DIR] [--rootfs DIR] [--dry-run] [--keep]"
DISCARD_USAGE = "umlpy discard {--upper DIR | NAME}"

ABOUT = {
    "diff": "List what the upper layer changes over the lower: one line per path,\n"
            "'A' added, 'M' modified, 'D' deleted.",
    "commit": "Apply the upper layer's changes to a host directory, print them, and empty\n"
              "the upper directory.  Symlinks are copied, never followed.  Extended\n"
              "attributes come along as the guest saw them (trusted.* and\n"
              "security.capability only when run as root; otherwise one note says so).",
    "discard": "Drop every change of the sandbox: empty its upper directory.",
}


def _options(command):
    """The command's options: --upper, --rootfs and --layer are umlpy
    run's (one declaration), with what each does here."""
    from .config import BY_NAME, Option

    def like(name, help):
        opt = BY_NAME[name]
        return Option(opt.name, opt.flags, help, opt.metavar, repeat=opt.repeat)
    upper = like("upper", "the sandbox's upper (copy-on-write) directory")
    if command == "discard":
        return [upper]
    if command == "diff":
        return [upper, like("rootfs", "the lower layer (default: the one the upper was "
                            "made over, else /)"),
                like("layers", "a tar image stacked over --rootfs IMG.tar (repeatable)"),
                Option("json", ["--json"], "print a JSON list of {kind, path, type}")]
    return [upper,
            Option("to", ["--to"], "the directory to write (default: --rootfs; the host's / "
                   "only when given as --to /)", "DIR"),
            like("rootfs", "the lower directory (default: the one the upper was made "
                 "over, else /)"),
            Option("dry_run", ["--dry-run"], "print the changes, apply nothing"),
            Option("keep", ["--keep"], "do not empty the upper directory afterwards")]


def help_text(command):
    from .config.render import help_lines
    lines = [f"usage: {_usage(command)}", "", ABOUT[command], "", "options:"]
    lines += help_lines(_options(command))
    lines.append(f"  {'-h, --help':24s} show this help and exit")
    return "\n".join(lines) + "\n"


def _parse(command, argv):
    """The given options (config.words.Args); None after --help."""
    from .config.words import parse_words
    try:
        args = parse_words(f"umlpy {command}", _options(command), argv,
                           lambda: sys.stdout.write(help_text(command)))
    except SystemExit:
        return None
    if args.argv:
        raise BadInput(f"unexpected argument {args.argv[0]!r} (usage: {_usage(command)})")
    if args.upper is None:
        raise BadInput(f"--upper DIR is required (usage: {_usage(command)})")
    return args


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
        msg = one_line(str(e))
        print(msg if msg.startswith("umlpy") else f"umlpy {command}: {msg}", file=sys.stderr)
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
    opts = _parse("diff", argv)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts.upper)
    rootfs, layers = changes.lower_to_compare(opts.upper, opts.rootfs, opts.layers or [])
    lower = open_lower(rootfs, layers)
    _print_changes(changes.diff(opts.upper, lower), bool(opts.json))
    return 0


def _commit(argv):
    opts = _parse("commit", argv)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts.upper)
    rootfs, layers = changes.lower_to_compare(opts.upper, opts.rootfs)
    image = None
    if rootfs is not None and not os.path.isdir(rootfs):
        if opts.rootfs is not None:
            raise BadInput(f"--rootfs {rootfs}: not a directory (commit writes into a directory)")
        # made over an image: compared with it, written where --to says
        image, rootfs = open_lower(rootfs, layers), None
        if opts.to is None:
            raise BadInput(f"--upper {opts.upper} was made over an image: --to DIR is needed")
    target = opts.to
    if target is None:
        target = rootfs if rootfs is not None else "/"
        if os.path.realpath(target) == "/":
            raise BadInput("refusing to write into the host's / without an explicit --to /")
    if not os.path.isdir(target):
        what = "not a directory" if os.path.lexists(target) else "No such file or directory"
        raise BadInput(f"--to {target}: {what}")
    lower = changes.HostDirLower(rootfs) if rootfs is not None else image
    skipped = []
    applied = changes.commit(opts.upper, target, lower=lower, dry_run=bool(opts.dry_run),
                             keep=bool(opts.keep), skipped=skipped)
    _print_changes(applied)
    if skipped:
        print(f"umlpy commit: note: {_skipped_words(skipped)}", file=sys.stderr)
    return 0


def _skipped_words(skipped):
    """One line for the attributes the target refused: how many, why (the
    emulated trusted.* and security.capability need root), where."""
    import errno
    reasons = sorted({"only root may set trusted.* and security.capability"
                      if e == errno.EPERM else os.strerror(e) for _p, _n, e in skipped})
    from .kernel.vfs.changes import quote_path
    paths = list(dict.fromkeys(quote_path(p) for p, _n, _e in skipped))
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    count = len(skipped)
    return (f"{count} extended attribute{'s' if count > 1 else ''} not applied "
            f"({'; '.join(reasons)}): {shown}")


def _discard(argv):
    opts = _parse("discard", argv)
    if opts is None:
        return 0
    from .kernel.vfs import changes

    _check_upper(opts.upper)
    dropped = changes.discard(opts.upper)
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
