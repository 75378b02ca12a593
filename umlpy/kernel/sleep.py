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


def scratch_timespec(call, seconds):
    """The address of a struct timespec for seconds, in call's scratch slot."""
    kernel = call.kernel
    w = kernel.scratch_writer(call)
    addr = w.add(pack_timespec(seconds))
    kernel.scratch_commit(call, w)
    return addr


def sleep_then_retry(call, seconds):
    """A decision: sleep for seconds, then make this call again."""
    kernel = call.kernel
    ts = scratch_timespec(call, seconds)
    nr, args = call.nr, call.args

    def retry(call, result):
        regs = kernel.tracer.get_regs(call.tid)
        regs.rip -= SYSCALL_INSN
        regs.rax = regs.orig_rax = nr
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = args
        kernel.tracer.set_regs(call.tid, regs)
        return None
    return AllowThen(retry, rewrite=Rewrite(NANOSLEEP, [ts, 0]))
