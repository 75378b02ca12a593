"""``umlpy trace [OPTIONS] -- PROG [ARGS]``: options as strace spells them
(short ones bundle: ``-fTtt``), umlpy's own (--json, --record,
--timeline, --compare), and ``umlpy run``'s sandbox options (long names:
``-e`` and ``-C`` are strace's here, so they are ``--env`` and ``--cwd``).
The sandbox is set up by ``umlpy run``'s own code (``cmd_run``), in
trace-all mode, with the trace session attached before the guest starts."""
import sys

from ..errors import BadInput

USAGE = ("usage: umlpy trace [OPTIONS] -- PROG [ARGS]\n"
         "       umlpy trace --compare A.jsonl B.jsonl\n")

HELP = USAGE + """
Run PROG in a throwaway sandbox and print its system calls as strace does
(pids are the sandbox's; every process and thread is followed).

trace options (strace's):
  -f                       follow forks (always on; accepted for strace's sake)
  -e trace=SET             trace only these calls: names, %file %process
                           %network %signal %memory %desc %ipc %creds %clock,
                           /regex; !SET for all but these
  -e inject=SET:error=ERRNO|retval=N[:delay_enter=T][:delay_exit=T][:when=N[+[M]]]
                           fail, fake or delay calls (T in µs, or 10ms, 1s)
  -e fault=SET[:error=ERRNO][:when=...]   like inject, ENOSYS by default
  -e status=successful|failed   show only calls that succeeded / failed
  -z, -Z                   same as -e status=successful / failed
  -o FILE                  write the trace to FILE (default: stderr)
  -s N                     show at most N bytes of strings and buffers (32)
  -t, -tt, -ttt            time of day, with microseconds, as epoch seconds
  -T                       time spent in each call
  -y                       print the guest paths of file descriptors
  -c                       only a summary table: calls, errors and time per syscall
  -C                       the trace and the summary
  -S time|calls|name|errors|nothing   sort the summary (default: time)

umlpy's:
  --json                   one JSON object per call (JSON lines) instead of text
  --record FILE            also save the run as JSON lines in FILE
  --timeline FILE.html     also draw the run: a self-contained HTML page
  --compare A B            compare two recorded runs: first divergence, count deltas
  (--record and --timeline alone print no text trace: add -o FILE for one)

sandbox options (as for 'umlpy run'):
"""

FLAGS = {"f": "follow", "c": "summary_only", "C": "summary", "w": None, "T": "durations",
         "y": "decode_fds", "z": "successful", "Z": "failed", "q": None, "v": None,
         "t": "timestamps", "F": "follow", "i": None}
VALUES = {"o": "output", "s": "strsize", "e": "exprs", "S": "sort", "a": None,
          "P": None, "I": None, "U": None, "X": None}
LONG_FLAGS = {"--summary-only": "c", "--summary": "C", "--syscall-times": "T",
              "--decode-fds": "y", "--follow-forks": "f", "--successful-only": "z",
              "--failed-only": "Z", "--summary-wall-clock": "w", "--quiet": "q"}
LONG_VALUES = {"--output": "o", "--string-limit": "s", "--summary-sort-by": "S",
               "--trace": "trace", "--inject": "inject", "--fault": "fault",
               "--status": "status"}
OWN_FLAGS = {"--json": "json", "--compare": "compare"}
OWN_VALUES = {"--record": "record", "--timeline": "timeline"}
UNSUPPORTED = {"p": "-p (attaching to a running process)", "u": "-u", "b": "-b",
               "D": "-D", "E": "-E (use --env)", "k": "-k", "x": "-x", "n": "-n",
               "r": "-r", "d": "-d", "h": None}


class TraceOptions:
    def __init__(self):
        self.follow = 0
        self.summary_only = False
        self.summary = False
        self.durations = False
        self.decode_fds = False
        self.successful = False
        self.failed = False
        self.timestamps = 0
        self.output = None
        self.strsize = "32"
        self.exprs = []
        self.sort = "time"
        self.json = False
        self.compare = False
        self.record = None
        self.timeline = None


def _sandbox_options():
    """The sandbox's options by long flag (trace_all is implied; the short
    -e and -C are strace's here)."""
    from ..config import COMMAND_LINE
    return {flag: opt for opt in COMMAND_LINE if opt.name != "trace_all"
            for flag in opt.flags if flag.startswith("--")}


def help_text():
    from ..config import COMMAND_LINE
    from ..config.render import help_lines
    lines = [HELP.rstrip("\n")]
    lines += help_lines(COMMAND_LINE, skip=("trace_all",), long_only=True)
    lines.append(f"  {'-h, --help':24s} show this help and exit")
    return "\n".join(lines) + "\n"


def parse(words):
    """(TraceOptions, sandbox Args) from the words after 'trace'."""
    from ..config.words import Args, take, value_after
    topts = TraceOptions()
    run_args = Args()
    sandbox = _sandbox_options()
    i = 0

    def value_of(key, inline, eq):
        nonlocal i
        i, value = value_after(words, i, inline if eq else None,
                               f"umlpy trace: {key} needs a value")
        return value

    def set_short(letter, value=None):
        if letter in FLAGS:
            dest = FLAGS[letter]
            if dest in ("timestamps", "follow"):
                setattr(topts, dest, getattr(topts, dest) + 1)
            elif dest is not None:
                setattr(topts, dest, True)
        elif letter == "e":
            topts.exprs.append(value)
        elif VALUES.get(letter):
            setattr(topts, VALUES[letter], value)
        else:
            raise BadInput(f"umlpy trace: -{letter} is not supported by umlpy trace")

    while i < len(words):
        word = words[i]
        if word == "--":
            i += 1
            break
        if word in ("-h", "--help"):
            sys.stdout.write(help_text())
            raise SystemExit(0)
        if not word.startswith("-") or word == "-":
            break
        if word.startswith("--"):
            key, eq, inline = word.partition("=")
            if key in LONG_FLAGS or key in OWN_FLAGS:
                if eq:
                    raise BadInput(f"umlpy trace: {key} takes no value")
                if key in OWN_FLAGS:
                    setattr(topts, OWN_FLAGS[key], True)
                else:
                    set_short(LONG_FLAGS[key])
            elif key in LONG_VALUES:
                what = LONG_VALUES[key]
                value = value_of(key, inline, eq)
                if len(what) == 1:
                    set_short(what, value)
                else:
                    topts.exprs.append(f"{what}={value}")
            elif key in OWN_VALUES:
                setattr(topts, OWN_VALUES[key], value_of(key, inline, eq))
            elif key in sandbox:
                i = take("umlpy trace", run_args, sandbox[key], key, eq, inline, words, i)
            else:
                raise BadInput(f"umlpy trace: unknown option {key} (see 'umlpy trace --help')")
            i += 1
            continue
        # a bundle of short options; one that takes a value ends it
        k = 1
        while k < len(word):
            letter = word[k]
            if letter in VALUES:
                i, value = value_after(words, i, word[k + 1:] or None,
                                       f"umlpy trace: -{letter} needs a value")
                if VALUES[letter] is None and letter != "e":
                    raise BadInput(f"umlpy trace: -{letter} is not supported by umlpy trace")
                set_short(letter, value)
                break
            if letter in FLAGS:
                set_short(letter)
            elif letter in UNSUPPORTED and UNSUPPORTED[letter]:
                raise BadInput(f"umlpy trace: {UNSUPPORTED[letter]} is not supported by "
                               "umlpy trace")
            else:
                raise BadInput(f"umlpy trace: unknown option -{letter} "
                               "(see 'umlpy trace --help')")
            k += 1
        i += 1
    run_args.argv = words[i:]
    return topts, run_args


def build(topts, out_default=None):
    """(session, files to close) for the options; BadInput on bad ones."""
    from .filters import Filter
    from .inject import Injector, parse_inject
    from .session import TraceSession
    from .summary import SummarySink, sort_key

    flt = Filter()
    rules = []
    for expr in topts.exprs:
        key, eq, value = expr.partition("=")
        if not eq:
            key, value = "trace", expr
        if key in ("trace", "t"):
            flt.add_trace(value)
        elif key in ("inject", "fault"):
            rules.append(parse_inject(value, fault=key == "fault"))
        elif key in ("status",):
            flt.set_status(value)
        elif key in ("signal", "signals", "s", "quiet", "q", "silent", "silence"):
            pass        # umlpy trace prints no signal or attach lines anyway
        elif key in ("abbrev", "a", "verbose", "v", "raw", "x", "read", "r", "write", "w",
                     "kvm", "decode-fds", "decode-pids"):
            raise BadInput(f"umlpy trace: -e {key}= is not supported by umlpy trace")
        else:
            raise BadInput(f"umlpy trace: -e {expr}: unknown qualifier {key!r}")
    if topts.successful:
        flt.set_status("successful")
    if topts.failed:
        flt.set_status("failed")
    try:
        strsize = int(topts.strsize)
        if strsize < 0:
            raise ValueError
    except ValueError:
        raise BadInput(f"umlpy trace: -s {topts.strsize}: expected a whole number") from None
    sort = sort_key(topts.sort)
    if sort is None:
        raise BadInput(f"umlpy trace: -S {topts.sort}: expected time, calls, name, errors "
                       "or nothing")
    files = []

    def open_out(path, what):
        try:
            f = open(path, "w", encoding="utf-8", errors="replace")
        except OSError as e:
            raise BadInput(f"umlpy trace: {what} {path}: {e.strerror}") from None
        files.append(f)
        return f

    out = open_out(topts.output, "-o") if topts.output else (out_default or sys.stderr)
    sinks = []
    text = not topts.summary_only and not topts.json and (
        topts.output or not (topts.record or topts.timeline))
    if text:
        from .format import TextSink
        sinks.append(TextSink(out, timestamps=min(topts.timestamps, 3),
                              durations=topts.durations, live=flt.status is None))
    if topts.json and not topts.summary_only:
        from .record import JsonSink
        sinks.append(JsonSink(out))
    if topts.record:
        from .record import JsonSink
        sinks.append(JsonSink(open_out(topts.record, "--record")))
    if topts.timeline:
        from .timeline import TimelineSink
        open_out(topts.timeline, "--timeline").close()     # fail now, not after the run
        files.pop()
        sinks.append(TimelineSink(topts.timeline))
    if topts.summary_only or topts.summary:
        sinks.append(SummarySink(out, sort))
    session = TraceSession(flt, Injector(rules) if rules else None, strsize=strsize,
                           decode_fds=topts.decode_fds, sinks=sinks,
                           decoding=bool(text or topts.json or topts.record or topts.timeline))
    return session, files


def main(words):
    topts, run_args = parse(words)
    if topts.compare:
        from .compare import report
        if len(run_args.argv) != 2:
            raise BadInput("umlpy trace: --compare needs two recorded runs "
                           "(usage: umlpy trace --compare A.jsonl B.jsonl)")
        return report(run_args.argv[0], run_args.argv[1], sys.stdout)
    if not run_args.argv:
        raise BadInput("umlpy trace: no program given (usage: umlpy trace [OPTIONS] -- PROG "
                       "[ARGS])")
    session, files = build(topts)
    from ..config import Config
    from ..runcmd import cmd_run
    run_args.given["trace_all"] = True
    run_args.config = Config.from_words(run_args.given)
    try:
        return cmd_run(run_args, prepare=session.attach)
    finally:
        try:
            session.close()
        finally:
            for f in files:
                f.close()
