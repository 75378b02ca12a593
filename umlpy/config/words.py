"""A command line's words: options up to the first other word (or
'--'), the rest the program's argv; and back (option_words)."""
from ..errors import BadInput
from .options import COMMAND_LINE


class Args:
    """A command's parsed words: ``given`` {keyword: str, True or [str]}
    of the options given, ``argv`` the rest; for run, ``config``."""

    def __init__(self):
        self.given = {}
        self.argv = []

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.given.get(name)


def parse_words(command, options, words, show_help):
    """Options up to the first other word or '--' -> Args.  command names
    the command in errors; show_help() prints its --help."""
    by_name = {n: opt for opt in options for n in opt.flags}
    args = Args()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            i += 1
            break
        if word in ("-h", "--help"):
            show_help()
            raise SystemExit(0)
        if not word.startswith("-") or word == "-":
            break
        key, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = by_name.get(key)
        if opt is None:
            raise BadInput(f"{command}: unknown option {key} (see '{command} --help')")
        i = take(command, args, opt, key, eq, inline, words, i)
        i += 1
    args.argv = words[i:]
    return args


def take(command, args, opt, key, eq, inline, words, i):
    """Store option opt, spelt words[i] (key, and =inline if eq), in args;
    returns the index of the last word it used (its value may be the next)."""
    if opt.metavar is None:
        if eq:
            raise BadInput(f"{command}: {key} takes no value")
        args.given[opt.name] = True
        return i
    i, value = value_after(words, i, inline if eq else None,
                           f"{command}: {key} needs a value ({opt.metavar})")
    if opt.repeat:
        args.given.setdefault(opt.name, []).append(value)
    else:
        args.given[opt.name] = value
    return i


def value_after(words, i, attached, missing):
    """(index of the last word used, the value) of the option at words[i]:
    its attached value if it has one (--key=VALUE, -xVALUE), else the next
    word; BadInput(missing) when there is none."""
    if attached is not None:
        return i, attached
    if i + 1 < len(words):
        return i + 1, words[i + 1]
    raise BadInput(missing)


def option_words(config, options=COMMAND_LINE):
    """The words parse_words reads back as config: each option that
    differs from its default, as --flag or --flag=VALUE (attached, so a
    value that looks like an option or like '--' stays a value), its
    value written by the option's show (values.py).  Options without a
    flag (the Python API's alone) have no word."""
    words = []
    for opt in options:
        if not opt.flags or not config.is_set(opt.name):
            continue
        value = getattr(config, opt.name)
        if opt.metavar is None:
            words.append(opt.flag)
            continue
        for item in value if opt.repeat else [value]:
            words.append(f"{opt.flag}={opt.show(opt.flag, item)}")
    return words
