"""Compile a policy into a classic-BPF seccomp filter, and run one.

The filter checks the architecture, sends x32 and out-of-table numbers to
ENOSYS, then finds the call's rule with a binary search over runs of
equal rules, so a lookup costs O(log runs) instructions.  ``evaluate``
interprets the produced program; the tests use it to check the filter
against the policy it came from.
"""
from errno import ENOSYS

from ..abi import MASK32, MASK64, s32
from ..abi.seccomp import (  # noqa: F401 (the tests take these names from here)
    AUDIT_ARCH_X86_64, BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET,
    BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_DATA, SECCOMP_RET_ALLOW, SECCOMP_RET_DATA,
    SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_TRACE, SECCOMP_RET_USER_NOTIF,
    SOCK_FILTER, X32_SYSCALL_BIT, seccomp_data_arg_high, seccomp_data_arg_low as off_arg_low)
from .policy import TABLE_SIZE, Action, Rule
from .syscalls.registry import Guard

LD_ABS_W = BPF_LD | BPF_W | BPF_ABS
JEQ_K, JGE_K, JSET_K, JA = (BPF_JMP | BPF_JEQ | BPF_K, BPF_JMP | BPF_JGE | BPF_K,
                            BPF_JMP | BPF_JSET | BPF_K, BPF_JMP | BPF_JA)
RET_K = BPF_RET | BPF_K
AND_K = BPF_ALU | BPF_AND | BPF_K
OFF_NR, OFF_ARCH = SECCOMP_DATA.offset("nr"), SECCOMP_DATA.offset("arch")


def ret_value(rule):
    if rule.action == Action.ALLOW:
        return SECCOMP_RET_ALLOW
    if rule.action == Action.ERRNO:
        return SECCOMP_RET_ERRNO | (rule.errno & SECCOMP_RET_DATA)
    if rule.action == Action.NOTIFY:
        return SECCOMP_RET_USER_NOTIF
    return SECCOMP_RET_TRACE


def _leaf(rule):
    """Instructions deciding one run of syscall numbers."""
    if rule.wait is not None:
        return _timed_leaf(rule.wait)
    if rule.guard is None:
        return [(RET_K, 0, 0, ret_value(rule))]
    guard = rule.guard
    if guard.value is None and guard.mask >> 32:
        low, high = guard.mask & MASK32, guard.mask >> 32
        load = []
        test = [(LD_ABS_W, 0, 0, off_arg_low(guard.arg)), (JSET_K, 3, 0, low),
                (LD_ABS_W, 0, 0, seccomp_data_arg_high(guard.arg)), (JSET_K, 1, 0, high)]
        if not low:
            test = test[2:]
        elif not high:
            test = [test[0], (JSET_K, 1, 0, low)]
        return test + [(RET_K, 0, 0, ret_value(rule)), (RET_K, 0, 0, SECCOMP_RET_TRACE)]
    if guard.mask >> 32:
        raise ValueError("a guard comparing a value tests the low 32 bits of an argument")
    load = [(LD_ABS_W, 0, 0, off_arg_low(guard.arg))]
    if guard.value is None:
        test = [(JSET_K, 1, 0, guard.mask)]
    else:
        masked = [] if guard.mask == MASK32 else [(AND_K, 0, 0, guard.mask)]
        values = guard.values
        # each match jumps over the remaining tests and the ALLOW to TRACE
        test = masked + [(JEQ_K, len(values) - i, 0, v) for i, v in enumerate(values)]
    return load + test + [(RET_K, 0, 0, ret_value(rule)),
                          (RET_K, 0, 0, SECCOMP_RET_TRACE)]


def _timed_leaf(wait):
    """A timed wait stops when its timeout is finite and not zero: a
    timespec pointer that is not NULL, milliseconds above 0."""
    if wait.timespec:
        return _leaf(Rule(Action.ALLOW, guard=Guard(wait.arg)))
    return [(LD_ABS_W, 0, 0, off_arg_low(wait.arg)), (JSET_K, 2, 0, 0x80000000),
            (JEQ_K, 1, 0, 0), (RET_K, 0, 0, SECCOMP_RET_TRACE),
            (RET_K, 0, 0, SECCOMP_RET_ALLOW)]


def _search(runs):
    """runs: [(first_nr, rule)], sorted, covering a contiguous range."""
    if len(runs) == 1:
        return _leaf(runs[0][1])
    mid = len(runs) // 2
    left, right = _search(runs[:mid]), _search(runs[mid:])
    if len(left) <= 255:
        return [(JGE_K, len(left), 0, runs[mid][0])] + left + right
    # a conditional jump reaches 255 instructions at most: go through JA
    return [(JGE_K, 0, 1, runs[mid][0]), (JA, 0, 0, len(left))] + left + right


def _runs(policy):
    runs = []
    for nr, rule in enumerate(policy):
        if not runs or runs[-1][1] != rule:
            runs.append((nr, rule))
    return runs


def compile_filter(policy, out_of_table):
    """Instructions (code, jt, jf, k) for policy; out_of_table is the rule
    for numbers past the table."""
    assert len(policy) == TABLE_SIZE
    body = _search(_runs(list(policy) + [out_of_table]))
    enosys = SECCOMP_RET_ERRNO | ENOSYS
    head = [
        (LD_ABS_W, 0, 0, OFF_ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, enosys),               # i386 (int 0x80) or other ABIs
        (LD_ABS_W, 0, 0, OFF_NR),
        (JGE_K, 0, 1, X32_SYSCALL_BIT),
        (RET_K, 0, 0, enosys),               # the x32 ABI
    ]
    return head + body


def assemble(program):
    return b"".join(SOCK_FILTER.pack(code, jt, jf, k) for code, jt, jf, k in program)


def evaluate(program, nr, args=(0,) * 6, arch=AUDIT_ARCH_X86_64):
    """Run program on one seccomp_data, as the kernel would; returns the
    32-bit action value."""
    args = (tuple(args) + (0,) * 6)[:6]
    data = SECCOMP_DATA.pack(s32(nr), arch, 0, *(a & MASK64 for a in args))
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == LD_ABS_W:
            if k + 4 > len(data):
                raise ValueError(f"load past struct seccomp_data at {k}")
            acc = int.from_bytes(data[k:k + 4], "little")     # BPF_W: 32 bits
            pc += 1
        elif code == RET_K:
            return k
        elif code == JA:
            pc += 1 + k
        elif code == AND_K:
            acc &= k
            pc += 1
        else:
            if code == JEQ_K:
                taken = acc == k
            elif code == JGE_K:
                taken = acc >= k
            elif code == JSET_K:
                taken = bool(acc & k)
            else:
                raise ValueError(f"unknown BPF instruction {code:#x}")
            pc += 1 + (jt if taken else jf)
