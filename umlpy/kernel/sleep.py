"""Making a guest thread wait in its own context: the tracer serves every
guest thread from one loop, so it must never sleep for one of them.  The
thread's call becomes a nanosleep (its timespec in the thread's scratch
slot); when that ends, the thread is set back onto its syscall
instruction with the call's registers, so it makes the call again and the
guest kernel decides it afresh."""
from ..abi.time import pack_timespec
from .decisions import AllowThen, Rewrite
from .syscalls.names import SYSCALL_NUMBERS

NANOSLEEP = SYSCALL_NUMBERS["nanosleep"]
SYSCALL_INSN = 2            # the length of x86_64's `syscall` instruction


def scratch_timespecs(call, *seconds):
    """The addresses of struct timespecs for each of seconds, in call's
    scratch slot."""
    kernel = call.kernel
    w = kernel.scratch_writer(call)
    addrs = [w.add(pack_timespec(s)) for s in seconds]
    kernel.scratch_commit(call, w)
    return addrs


def scratch_timespec(call, seconds):
    """The address of a struct timespec for seconds, in call's scratch slot."""
    return scratch_timespecs(call, seconds)[0]


def sleep_then_retry(call, seconds, args=None):
    """A decision: sleep for seconds, then make this call again (with args
    instead of its own, if given)."""
    return sleep_at_then_retry(call, scratch_timespec(call, seconds), args)


def sleep_at_then_retry(call, ts, args=None):
    """sleep_then_retry with the sleep's timespec already at address ts."""
    kernel = call.kernel
    nr, args = call.nr, tuple(call.args if args is None else args)

    def retry(call, result):
        regs = kernel.tracer.get_regs(call.tid)
        regs.rip -= SYSCALL_INSN
        regs.rax = regs.orig_rax = nr
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        kernel.tracer.set_regs(call.tid, regs)
        return None
    return AllowThen(retry, rewrite=Rewrite(NANOSLEEP, [ts, 0]))
