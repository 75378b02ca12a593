"""Sandbox handlers in front of the guest kernel, composed with it.

A handler sees each call before the guest kernel does, and may let it
pass (None or ``ALLOW``), deny it (``call.deny(errno)``), emulate it
(``call.emulate(value)``: the host never runs it), or change it
(``call.rewrite(...)``, or return a ``Rewrite``).  Handlers compose with
the guest kernel instead of bypassing it: a changed call is decided by
the guest kernel as if the guest had made it (its hooks, then the
syscall table, exactly as ``netrate.py`` re-decides a call), so a new
path goes through the guest VFS like any other and can never name a
host path.  Denying and emulating skip the host call, which is always
safe.

``hide_vdso`` makes the calls the vDSO answers real syscalls, so that
handlers on them see them.
"""
import errno as _errno
import os
import sys

from ..abi import MASK64
from ..abi.elf import AT_IGNORE, AT_NULL, AT_SYSINFO_EHDR, STACK_WORD, stack_words
from ..kernel.decisions import ALLOW, AllowThen, Return, Rewrite
from .call import Call, user_area_writer

__all__ = ["make_front", "install_front", "kernel_decision", "hide_vdso", "wrap_method", "Abort",
           "VDSO_CALLS"]

# Calls the vDSO answers without entering the kernel (x86_64): a handler on
# one of them only sees calls if the guest does not use the vDSO.
VDSO_CALLS = frozenset({"clock_gettime", "clock_getres", "gettimeofday", "time", "getcpu"})



class Abort(BaseException):
    """A handler raised: ends the run (BaseException, so the guest
    kernel's fail-closed EFAULT does not swallow it); Sandbox.run
    re-raises the handler's own exception."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _is_front(hook):
    return getattr(hook, "_umlpy_front", False)


def kernel_decision(kernel, call):
    """The guest kernel's own decision on call (its hooks, then the
    syscall table), without the handlers in front of it."""
    for hook in kernel.dispatcher.hooks.get(call.nr, ()):
        if _is_front(hook):
            continue
        decision = hook(call)
        if decision is not None:
            return decision
    return kernel.dispatcher.decide_table(call)


def _changed(kernel, raw, nr, args):
    """raw becomes the call nr(args) (str/bytes copied to scratch memory);
    the guest kernel decides it."""
    args = list(args) + [0] * (6 - len(args))
    if any(isinstance(a, (str, bytes, bytearray)) for a in args):
        w = user_area_writer(kernel, raw)
        for i, a in enumerate(args):
            if isinstance(a, str):
                args[i] = w.string(os.fsencode(a))
            elif isinstance(a, (bytes, bytearray)):
                args[i] = w.add(bytes(a))
        kernel.scratch_commit(raw, w)
    args = tuple(int(a) & MASK64 for a in args)
    raw.nr, raw.args = nr, args
    raw.entry = kernel.table.by_nr.get(nr)
    decision = kernel_decision(kernel, raw)
    # the host must run the changed call, not the guest's
    if decision is ALLOW:
        return Rewrite(nr, args)
    if isinstance(decision, AllowThen) and decision.rewrite is None:
        return AllowThen(decision.on_exit, rewrite=Rewrite(nr, args))
    return decision


def _with_after(decision, afters):
    """decision, then each fn(result) of afters (a value replaces it)."""
    def settle(result):
        replaced = False
        for fn in afters:
            value = fn(result)
            if value is not None:
                result, replaced = int(value), True
        return result, replaced
    if isinstance(decision, Return):
        return Return(settle(decision.value)[0])
    inner = decision.on_exit if isinstance(decision, AllowThen) else None
    rewrite = decision.rewrite if isinstance(decision, AllowThen) else \
        decision if isinstance(decision, Rewrite) else None

    def on_exit(call, result):
        first = inner(call, result) if inner is not None else None
        if first is not None:
            result = first
        result, replaced = settle(result)
        return result if replaced or first is not None else None
    return AllowThen(on_exit, rewrite=rewrite)


def make_front(kernel, handlers, errors="raise"):
    """A dispatcher hook that runs handlers (fn(Call)) before the guest
    kernel.  The first decision wins: deny/emulate (Return) is final;
    a Rewrite or an AllowThen's rewrite changes the call, which the guest
    kernel then decides; None or ALLOW leaves it to the next handler and
    finally to the guest kernel.  errors="raise": a handler that raises
    ends the run (see Abort); "efault": the call fails with EFAULT."""
    def front(raw):
        view = Call(kernel, raw)
        decision = None
        try:
            for handler in handlers:
                d = handler(view)
                if d is None or d is ALLOW:
                    continue
                decision = d
                break
        except Abort:
            raise
        except Exception as e:
            if _guest_fault(e):
                return Return(-e.errno)     # a bad guest pointer, a thread gone: the guest's
            if errors == "raise":
                raise Abort(e) from e
            _say_once(raw.name, e)
            return Return(-_errno.EFAULT)
        # From here on it is the guest kernel's decision: its errors are its
        # own (it fails the call with EFAULT and says so), not the handler's.
        if decision is None:
            if not view._after:
                return None                 # the guest kernel's, as usual
            decision = kernel_decision(kernel, raw)
        elif isinstance(decision, Return):
            pass
        elif isinstance(decision, Rewrite):
            decision = _changed(kernel, raw, decision.nr, decision.args)
        elif isinstance(decision, AllowThen):
            on_exit = decision.on_exit
            view.after(lambda result: on_exit(raw, result))
            rw = decision.rewrite
            decision = kernel_decision(kernel, raw) if rw is None else \
                _changed(kernel, raw, rw.nr, rw.args)
        else:
            raise Abort(TypeError(f"a handler of {raw.name} returned {decision!r}: expected "
                                   "None, ALLOW, call.deny/emulate/rewrite(...) or a Rewrite"))
        if view._after:
            decision = _with_after(decision, [_guarded(fn, errors) for fn in view._after])
        return decision
    front._umlpy_front = True
    return front


_said = set()


def _say_once(name, error):
    # once per process: a named sandbox's daemon, forked from a program
    # that said it already, says it again, into its own log
    key = (os.getpid(), name, type(error))
    if key not in _said:
        _said.add(key)
        sys.stderr.write(f"umlpy: a handler of {name} raised {type(error).__name__}: {error} "
                         "(the call fails with EFAULT)\n")


def _guest_fault(error):
    """An error the guest caused (memory it named is unmapped, the thread
    is gone), not a bug of the handler's."""
    from ..tracer import TracerError
    return isinstance(error, TracerError) or \
        isinstance(error, OSError) and error.errno in (_errno.EFAULT, _errno.ESRCH)


def _guarded(fn, errors):
    def call(result):
        try:
            return fn(result)
        except Exception as e:
            if errors == "raise" and not _guest_fault(e):
                raise Abort(e) from e
            return None
    return call


def install_front(kernel, nr, handlers, errors="raise"):
    """Put handlers in front of every other hook of syscall nr."""
    kernel.dispatcher.hooks.setdefault(nr, []).insert(0, make_front(kernel, handlers, errors))


def wrap_method(obj, name, after):
    """obj.name(*a) then after(*a) (an instance attribute: other
    instances are untouched)."""
    inner = getattr(obj, name)

    def wrapped(*a):
        result = inner(*a)
        after(*a)
        return result
    setattr(obj, name, wrapped)


def hide_vdso(kernel):
    """At every exec, the new program's AT_SYSINFO_EHDR auxv entry becomes
    AT_IGNORE before it runs an instruction: glibc (dynamic or static)
    then finds no vDSO and makes clock_gettime, gettimeofday, time and
    getcpu real syscalls, which stop like any other."""
    tracer = kernel.tracer

    def patch_auxv(tid, former_tid):
        # the new stack: argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL
        try:
            sp = tracer.get_regs(tid).rsp
            stack = tracer.read_mem(tid, sp, 64 * 1024)     # fewer at the stack's top
        except OSError:
            return              # the process is gone
        words = stack_words(stack)
        if not words:
            return
        i = words[0] + 2                        # past argc, argv[] and its NULL
        while i < len(words) and words[i]:
            i += 1                              # envp[]
        i += 1
        while i + 1 < len(words) and words[i] != AT_NULL:
            if words[i] == AT_SYSINFO_EHDR:
                tracer.write_mem(tid, sp + STACK_WORD.size * i, STACK_WORD.pack(AT_IGNORE))
                return
            i += 2
    wrap_method(kernel, "_fs_exec", patch_auxv)
