"""Fault injection in strace's syntax:
``-e inject=SET:error=ERRNO|retval=N[:delay_enter=T][:delay_exit=T][:when=EXPR]``
(and ``-e fault=SET[:error=ERRNO][:when=EXPR]``, error ENOSYS by default).

An injected error or return value skips the call (the decision is
``Return``): nothing runs, so no check of the guest kernel is bypassed.
A delay never blocks the tracer, which serves every guest thread from one
loop: the thread sleeps by itself.  ``delay_enter`` turns the call into a
nanosleep (timespec in the thread's scratch slot); at the sleep's exit the
registers are set back onto the ``syscall`` instruction with the call's
number and arguments, so the thread makes the call again, and this time
(the delay is remembered as served) it goes its ordinary way through the
guest kernel.  ``delay_exit`` lets the call run; at its exit stop the
result is kept, the thread is rewound to run a nanosleep, and at that
sleep's exit the result and arguments are put back (``rip`` is already
after the instruction).  The sleeps are the guest kernel's own business and
do not show in the trace.

``when=N`` injects at the Nth call only, ``N+`` from the Nth on, ``N+S``
at the Nth and every Sth after it, ``N..L[+S]`` up to the Lth; calls are
counted per thread and syscall, as strace counts them (default: every call).
"""
import time

from ..abi import MASK64
from ..errors import BadInput
from ..kernel.decisions import ALLOW, AllowThen, Return, Rewrite
from ..kernel.sleep import NANOSLEEP, SYSCALL_INSN, scratch_timespec, sleep_then_retry
from ..kernel.syscalls.names import SYSCALL_NUMBERS
from . import consts as C
from .filters import parse_set

INJECTED, DELAYED = "INJECTED", "DELAYED"
EXECS = frozenset({SYSCALL_NUMBERS["execve"], SYSCALL_NUMBERS["execveat"]})
NO_REWIND = frozenset({SYSCALL_NUMBERS["rt_sigreturn"]})


def parse_delay(text, what):
    """Microseconds by default; s, ms, us and ns suffixes; seconds out."""
    t = text.strip().lower()
    for suffix, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if t.endswith(suffix):
            t, unit = t[:-len(suffix)], scale
            break
    else:
        unit = 1e-6
    try:
        value = float(t)
    except ValueError:
        raise BadInput(f"umlpy trace: {what}={text}: expected a time like 100000 (µs), "
                       "20ms or 1s") from None
    if value < 0:
        raise BadInput(f"umlpy trace: {what}={text}: must not be negative")
    return value * unit


class Rule:
    def __init__(self, names, error=None, retval=None, delay_enter=None, delay_exit=None,
                 first=1, last=None, step=1):
        self.names = names
        self.error = error
        self.retval = retval
        self.delay_enter = delay_enter
        self.delay_exit = delay_exit
        self.first, self.last, self.step = first, last, step

    def fires(self, n):
        if n < self.first or (self.last is not None and n > self.last):
            return False
        if self.step is None:
            return n == self.first
        return (n - self.first) % self.step == 0

    @property
    def result(self):
        """The value a skipped call returns, or None (the call runs)."""
        if self.error is not None:
            return -self.error
        return self.retval


def _parse_when(text, spec):
    bad = BadInput(f"umlpy trace: -e {spec}: when={text}: expected N, N+, N+STEP or "
                   "N..LAST[+STEP]")
    first, plus, step = text.partition("+")
    last = None
    if ".." in first:
        first, _, last = first.partition("..")
    try:
        first = int(first)
        last = int(last) if last is not None else None
        step = (int(step) if step else 1) if plus else (None if last is None else 1)
    except ValueError:
        raise bad from None
    if first < 1 or (step is not None and step < 1) or (last is not None and last < first):
        raise bad
    return first, last, step


def parse_inject(text, fault=False):
    """One -e inject=/fault= argument (text after the '=') -> Rule."""
    what = "fault" if fault else "inject"
    spec = f"{what}={text}"
    parts = text.split(":")
    names = parse_set(parts[0], what)
    rule = Rule(names)
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq:
            raise BadInput(f"umlpy trace: -e {spec}: expected KEY=VALUE, not {part!r}")
        if key == "error":
            err = C.ERRNO_NUMBERS.get(value.upper())
            if err is None:
                try:
                    err = int(value)
                except ValueError:
                    err = None
            if err is None or not 0 < err < 4096:
                raise BadInput(f"umlpy trace: -e {spec}: error={value}: unknown errno")
            rule.error = err
        elif key == "retval" and not fault:
            try:
                rule.retval = int(value, 0)
            except ValueError:
                raise BadInput(f"umlpy trace: -e {spec}: retval={value}: expected a "
                               "number") from None
        elif key in ("delay_enter", "delay_exit") and not fault:
            setattr(rule, key, parse_delay(value, key))
        elif key == "when":
            rule.first, rule.last, rule.step = _parse_when(value, spec)
        elif key in ("signal", "syscall", "poke_enter", "poke_exit"):
            raise BadInput(f"umlpy trace: -e {spec}: {key}= is not supported by umlpy trace")
        else:
            raise BadInput(f"umlpy trace: -e {spec}: unknown key {key!r}")
    if fault and rule.error is None:
        rule.error = 38             # ENOSYS, as strace's fault= default
    if rule.error is not None and rule.retval is not None:
        raise BadInput(f"umlpy trace: -e {spec}: error= and retval= exclude each other")
    if rule.result is None and rule.delay_enter is None and rule.delay_exit is None:
        raise BadInput(f"umlpy trace: -e {spec}: nothing to inject (give error=, retval=, "
                       "delay_enter= or delay_exit=)")
    return rule


class Injector:
    """Installs the rules as guest kernel hooks and tells the trace which
    stops were its own (hidden) and which calls it changed."""

    def __init__(self, rules):
        self.by_name = {}
        for rule in rules:              # a later rule replaces an earlier one, as in strace
            for name in rule.names:
                self.by_name[name] = rule
        self.kernel = None
        self.counts = {}            # (tid, nr) -> calls seen
        self.served = {}            # tid -> nr of the call whose entry delay was served
        self.internal = set()       # tids stopped in a call of ours (not shown)
        self.notes = {}             # tid -> (INJECTED|DELAYED, time of the first entry)
        self.after_exit = {}        # tid -> (result, args) to restore after the exit sleep
        self.results = {}           # tid -> the result the guest gets, when it differs
        self.undelayed = set()      # tids whose delay_exit could not be served

    def __bool__(self):
        return bool(self.by_name)

    def install(self, kernel):
        self.kernel = kernel
        if any(r.delay_exit is not None for r in self.by_name.values()):
            kernel.hook("nanosleep")(self._exit_sleep_done)
        for name, rule in sorted(self.by_name.items()):
            kernel.hook(name)(self._hook(rule, SYSCALL_NUMBERS[name]))

    def take_note(self, tid):
        return self.notes.pop(tid, None)

    def is_internal(self, tid):
        if tid in self.internal:
            self.internal.discard(tid)
            return True
        return False

    # the hooks ---------------------------------------------------------------
    def _hook(self, rule, nr):
        def hook(call):
            tid = call.tid
            if self.served.get(tid) == call.nr:
                del self.served[tid]        # the call made again after its delay
                return self._now(call, rule, hook)
            key = (tid, call.nr)
            n = self.counts.get(key, 0) + 1
            self.counts[key] = n
            if not rule.fires(n):
                return None
            if rule.delay_enter is not None:
                self.served[tid] = call.nr
                self.internal.add(tid)
                self.notes[tid] = (DELAYED, time.time())
                return self._sleep_then_retry(call, rule.delay_enter)
            return self._now(call, rule, hook)
        hook.umlpy_trace_rule = rule
        return hook

    def _now(self, call, rule, hook):
        """The call goes on now (its entry delay, if any, served)."""
        tid = call.tid
        note = self.notes.get(tid)
        since = note[1] if note else time.time()
        value = rule.result
        if value is not None:
            self.notes[tid] = (INJECTED, since)
            if rule.delay_exit is not None:
                ts = self._timespec(call, rule.delay_exit)
                return AllowThen(lambda c, r: value, rewrite=Rewrite(NANOSLEEP, [ts, 0]))
            return Return(value)
        if rule.delay_exit is not None:
            self.notes[tid] = (DELAYED, since)
            return self._sleep_after(call, self._decide_rest(call, hook), rule.delay_exit)
        return None

    def _decide_rest(self, call, hook):
        """What the hooks after ours, then the table, decide."""
        hooks = self.kernel.dispatcher.hooks.get(call.nr, [])
        after = False
        for h in hooks:
            if after:
                decision = h(call)
                if decision is not None:
                    return decision
            elif h is hook:
                after = True
        return self.kernel.dispatcher.decide_table(call)

    def _timespec(self, call, seconds):
        return scratch_timespec(call, seconds)

    def _sleep_then_retry(self, call, seconds):
        return sleep_then_retry(call, seconds)

    def _sleep_after(self, call, decision, seconds):
        if isinstance(decision, Return):
            value = decision.value
            ts = self._timespec(call, seconds)
            return AllowThen(lambda c, r: value, rewrite=Rewrite(NANOSLEEP, [ts, 0]))
        inner, rewrite = None, None
        if isinstance(decision, AllowThen):
            inner, rewrite = decision.on_exit, decision.rewrite
        elif isinstance(decision, Rewrite):
            rewrite = decision
        elif decision is not ALLOW:
            return decision
        kernel, args = self.kernel, call.args

        def at_exit(call, result):
            if inner is not None:
                replaced = inner(call, result)
                if replaced is not None:
                    result = replaced
                    self.results[call.tid] = result
            if -517 < result < -511 or call.nr in NO_REWIND or (
                    call.nr in EXECS and result == 0):
                # an interrupted call the host kernel restarts itself, or
                # registers that are no longer the call's (a new program, a
                # restored signal context): no sleep
                self.undelayed.add(call.tid)
                return result if inner is not None else None
            ts = self._timespec(call, seconds)
            regs = kernel.tracer.get_regs(call.tid)
            regs.rip -= SYSCALL_INSN
            regs.rax = regs.orig_rax = NANOSLEEP
            regs.rdi, regs.rsi = ts, 0
            kernel.tracer.set_regs(call.tid, regs)
            self.after_exit[call.tid] = (result, args)
            return None
        return AllowThen(at_exit, rewrite=rewrite)

    def _exit_sleep_done(self, call):
        """The nanosleep of a delay_exit: at its exit the thread gets the
        call's result and registers back."""
        saved = self.after_exit.pop(call.tid, None)
        if saved is None:
            return None
        self.internal.add(call.tid)
        result, args = saved
        kernel = self.kernel

        def restore(call, _slept):
            regs = kernel.tracer.get_regs(call.tid)
            regs.rax = result & MASK64
            regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
            kernel.tracer.set_regs(call.tid, regs)
            return None
        return AllowThen(restore)
