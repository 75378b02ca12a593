"""strace's text output: ``pid  name(args) = result``, one line a call.

As strace does, a call's line is started when it enters (the arguments the
call passes) and finished when it returns (what it got back).  When another
thread's line comes in between, the first ends with `` <unfinished ...>``
and its end is printed later as ``<... name resumed>rest) = result``.
The ``=`` goes to column 40; ``-t/-tt/-ttt`` put the entry time after the
pid, ``-T`` the time spent in the call at the end.
"""
import time

RESULT_COLUMN = 39


def timestamp(t, style):
    if style >= 3:
        return f"{t:.6f} "
    whole = int(t)
    text = time.strftime("%H:%M:%S", time.localtime(whole))
    if style == 2:
        text += f".{int((t - whole) * 1e6):06d}"
    return text + " "


class _Quiet:
    """Where output goes once its reader is gone (a closed pipe): nowhere,
    as strace goes quiet on EPIPE, and the guest runs on."""
    def write(self, text):
        pass

    def flush(self):
        pass


def guarded(out):
    class Guarded:
        def __init__(self):
            self.out = out

        def write(self, text):
            try:
                self.out.write(text)
            except (OSError, ValueError):
                self.out = _Quiet()

        def flush(self):
            try:
                self.out.flush()
            except (OSError, ValueError):
                self.out = _Quiet()

        def isatty(self):
            try:
                return self.out.isatty()
            except (OSError, ValueError, AttributeError):
                return False
    return Guarded()


class TextSink:
    def __init__(self, out, timestamps=0, durations=False, live=True):
        self.out = guarded(out)
        self.timestamps = timestamps
        self.durations = durations
        self.live = live            # start lines at entry (else whole lines at exit)
        self.open = None            # the record whose line is started, unfinished
        self.tty = hasattr(out, "isatty") and out.isatty()

    def _prefix(self, pid, t):
        text = f"{pid:<5} "
        if self.timestamps:
            text += timestamp(t, self.timestamps)
        return text

    def _close_open(self):
        rec = self.open
        if rec is not None:
            self.out.write(" <unfinished ...>\n")
            rec.unfinished = True
            self.open = None

    def enter(self, rec):
        if not self.live:
            return
        self._close_open()
        self.out.write(self._prefix(rec.pid, rec.t0) + entry_text(rec))
        self.open = rec
        if self.tty:
            self.out.flush()

    def exit(self, rec):
        if self.live and self.open is rec:
            # the start of the line is written: write the rest
            self.open = None
            start = self._prefix(rec.pid, rec.t0) + entry_text(rec)
            self.out.write(self._end(start + exit_text(rec), rec)[len(start):])
        elif self.live and rec.unfinished:
            self._close_open()
            line = self._prefix(rec.pid, rec.t1) + f"<... {rec.name} resumed>" + exit_text(rec)
            self.out.write(self._end(line, rec))
        else:
            self._close_open()
            line = self._prefix(rec.pid, rec.t0) + entry_text(rec) + exit_text(rec)
            self.out.write(self._end(line, rec))

    def _end(self, line, rec):
        return line.ljust(RESULT_COLUMN) + " = " + result_text(self, rec) + "\n"

    def process_exit(self, pid, status, t):
        self._close_open()
        if status & 0x7F == 0:
            what = f"exited with {(status >> 8) & 0xFF}"
        else:
            from .consts import signal_name
            what = f"killed by {signal_name(status & 0x7F)}"
            if status & 0x80:
                what += " (core dumped)"
        self.out.write(self._prefix(pid, t) + f"+++ {what} +++\n")

    def close(self):
        self._close_open()
        self.out.flush()


def entry_text(rec):
    d = rec.decoded
    text = rec.name + "(" + ", ".join(d.args[:d.n_entry])
    if d.pending and d.n_entry:
        text += ", "
    return text


def exit_text(rec):
    d = rec.decoded
    return ", ".join(d.args[d.n_entry:]) + ")"


def result_text(sink, rec):
    text = rec.decoded.ret
    if rec.note:
        text += f" ({rec.note})"
    if sink.durations and rec.t1 is not None and rec.result is not None:
        text += f" <{rec.t1 - rec.t0:.6f}>"
    return text


def call_text(name, call, strsize=None):
    """name(args) of a call that has not run yet, decoded as strace
    decodes it, the arguments the kernel fills by address (for logs that
    show a call once, before its decision: ``umlpy run --log-level``).
    call: anything with ``args``, ``read``, ``read_some`` and ``read_str``
    (a SyscallCall)."""
    from .decode import DEFAULT_STRSIZE, Ctx, decode_before
    ctx = Ctx(call, DEFAULT_STRSIZE if strsize is None else strsize)
    return f"{name}({', '.join(decode_before(name, ctx))})"


def result_value_text(name, call, value):
    """A value the call returns, as strace shows it ('-1 ENOENT (No such
    file or directory)', '3', '0x7f...')."""
    from .decode import DEFAULT_STRSIZE, Ctx, format_result
    return format_result(name, Ctx(call, DEFAULT_STRSIZE), value)


def full_line(rec):
    """name(args) = result, without pid or times (for reports)."""
    line = entry_text(rec) + exit_text(rec)
    return line + " = " + rec.decoded.ret + (f" ({rec.note})" if rec.note else "")
