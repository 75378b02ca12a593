"""``umlpy run --break SYSCALL[:COND]``: pdb inside the guest kernel.

A break is a handler in front of the guest kernel (handlers.py) on its
syscall: when COND (a Python expression over ``call`` and ``args``) holds,
the calling guest thread waits while pdb runs in the guest kernel, with
the call, its registers and memory at hand; a ``decision`` set there
decides the call.  If the guest holds our terminal, pdb takes it back
(with sane line settings) and gives it back after.

``install_debugging`` installs the breaks and ``--log-level`` (log.py) on
a kernel, only what is asked for, so a run without them pays nothing.
"""
import errno as _errno
import os
import sys

from ..config.values import Break, break_point
from ..kernel.decisions import ALLOW, AllowThen, Return, Rewrite
from .handlers import install_front
from .log import format_call, install_logging

__all__ = ["Break", "parse_break", "install_debugging"]


def parse_break(spec):
    """'SYSCALL[:COND]' -> Break (BadInput if the name or COND is wrong)."""
    return break_point("--break", spec)


def install_debugging(kernel, breaks=(), log_level=None, api=False):
    """Install --break points and --log-level logging on kernel (before it
    spawns).  Nothing is installed for what is not asked for, so the
    guest kernel's paths pay nothing.  api=True: log also when the "umlpy"
    logger is enabled by the program's own logging configuration."""
    breaks = [break_point("--break", b) for b in breaks or ()]
    by_nr = {}
    for b in breaks:
        by_nr.setdefault(b.nr, []).append(b)
    session = BreakSession()
    for nr, points in by_nr.items():
        install_front(kernel, nr, [_break_handler(kernel, points, session)], errors="raise")
    if log_level is not None or api:
        install_logging(kernel, log_level)


_warned_conditions = set()


class BreakSession:
    """The --break points of one guest kernel: off for good once pdb's q
    (or the end of its input) is given at any of them."""
    __slots__ = ("off",)

    def __init__(self):
        self.off = False


def _break_handler(kernel, points, session):
    def handler(call):
        if session.off:
            return None
        for b in points:
            if b.code is not None:
                try:
                    hit = eval(b.code, {"__builtins__": __builtins__, "errno": _errno,
                                        "os": os}, {"call": call, "args": call.args})
                except Exception as e:
                    key = (b.text, type(e))
                    if key not in _warned_conditions:
                        _warned_conditions.add(key)
                        sys.stderr.write(f"umlpy: --break condition {b.text!r} raised "
                                         f"{type(e).__name__}: {e} (taken as false)\n")
                    hit = False
                if not hit:
                    continue
            return _stop_in_pdb(kernel, call, b, session)
        return None
    return handler


def _stop_in_pdb(kernel, call, point, session):
    """pdb in the guest kernel, at the stopped call.  Locals: call (a
    Call), args, regs (kernel.tracer.get_regs), kernel, mem(addr, n),
    and decision: set it (e.g. decision = call.deny(13)) to decide the
    call; 'c' lets the guest kernel decide as usual."""
    import bdb
    import pdb
    tty = _take_terminal(kernel)
    try:
        args = call.args                        # noqa: F841 (for pdb)
        regs = kernel.tracer.get_regs(call.raw.tid)     # noqa: F841
        mem = call.read                         # noqa: F841
        decision = None
        sys.stdout.write(f"umlpy: break at {format_call(kernel, call.raw)} "
                         f"(pid {call.pid}, {call.program or '?'}); the guest waits. "
                         "Locals: call, args, regs, kernel, mem(addr, n), decision; "
                         "'c' continues.\n")
        sys.stdout.flush()
        debugger = _kernel_pdb(pdb, session)
        try:
            debugger.set_trace(sys._getframe())
            decision = decision                 # the guest's thread waits here
        except bdb.BdbQuit:
            # q (or the end of our stdin): no more breaks, the guest runs on
            session.off = True
            decision = None
        if decision is not None and decision is not ALLOW and \
                not isinstance(decision, (Return, Rewrite, AllowThen)):
            sys.stdout.write(f"umlpy: decision {decision!r} is no decision (call.deny(e), "
                             "call.emulate(v), call.rewrite(...)): the guest kernel decides\n")
            decision = None
        return decision
    finally:
        _give_back_terminal(kernel, tty)


def _kernel_pdb(pdb, session):
    """A Pdb whose q (and the end of its input) detaches instead of raising
    BdbQuit, which would land in whatever guest kernel code it stopped in
    (a breakpoint set in a handler) and fail the guest's call.  nosigint:
    umlpy's own SIGINT handler (forwarding to the guest) stays."""
    class KernelPdb(pdb.Pdb):
        def set_quit(self):
            session.off = True                      # no more --break stops
            self.clear_all_breaks()
            self.set_continue()                     # no breakpoints: tracing off
    return KernelPdb(nosigint=True)


def _take_terminal(kernel):
    """If the guest holds our terminal, take it back (with sane line
    settings) for pdb; returns what to restore."""
    if not kernel.tty_handed:
        return None
    try:
        import termios
        fg = os.tcgetpgrp(0)
        attrs = termios.tcgetattr(0)
    except OSError:
        return None
    kernel._give_terminal_to(os.getpgrp())
    sane = list(attrs)
    sane[0] |= termios.ICRNL
    sane[1] |= termios.OPOST | termios.ONLCR
    sane[3] |= termios.ICANON | termios.ECHO | termios.ECHOE | termios.ISIG
    try:
        termios.tcsetattr(0, termios.TCSADRAIN, sane)
    except OSError:
        pass
    return fg, attrs


def _give_back_terminal(kernel, saved):
    if saved is None:
        return
    import termios
    fg, attrs = saved
    try:
        termios.tcsetattr(0, termios.TCSADRAIN, attrs)
    except OSError:
        pass
    kernel._give_terminal_to(fg)
