"""The syscall table, the policy derived from it, and the seccomp filter
compiled from the policy (checked by running the filter)."""
import errno

import pytest
from hypothesis import given, settings, strategies as st

from umlpy.kernel.policy import TABLE_SIZE, Action, Mode, Rule, build_policy, rule_for
from umlpy.kernel.seccomp import (
    AUDIT_ARCH_X86_64, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE,
    X32_SYSCALL_BIT, compile_filter, evaluate, ret_value)
from umlpy.kernel.syscalls import TABLE, Guard, Support, SyscallTable
from umlpy.kernel.syscalls.names import SYSCALL_NAMES, number
from umlpy.kernel.syscalls.registry import DeclarationError

AUDIT_ARCH_I386 = 0x40000003


def expected(rule, args):
    if rule.guard and rule.guard.matches(args):
        return SECCOMP_RET_TRACE
    return ret_value(rule)


def test_every_syscall_is_declared_exactly_once():
    assert TABLE.missing() == []
    assert len(TABLE.by_nr) == len(SYSCALL_NAMES)


def test_a_second_declaration_is_refused():
    table = SyscallTable()
    table.passthrough("a", "read")
    with pytest.raises(DeclarationError):
        table.denied("b", errno.EPERM, "no", "read")
    with pytest.raises(DeclarationError):
        table.passthrough("a", "no_such_call")


def test_names_match_the_kernel_numbers():
    for name, nr in [("read", 0), ("getpid", 39), ("clone", 56), ("timerfd_create", 283),
                     ("clone3", 435), ("openat2", 437), ("fchmodat2", 452)]:
        assert number(name) == nr


rules = st.one_of(
    st.just(Rule(Action.ALLOW)),
    st.just(Rule(Action.PYTHON)),
    st.just(Rule(Action.NOTIFY)),
    st.integers(1, 4095).map(lambda e: Rule(Action.ERRNO, e)),
    st.builds(lambda a, m: Rule(Action.ALLOW, guard=Guard(a, m)),
              st.integers(0, 5), st.one_of(st.integers(1, 2**32 - 1),
                                           st.integers(1, 2**64 - 1),
                                           st.just(2**64 - 1), st.just(0xFFFFFFFF << 32))),
    st.builds(lambda a, m, v: Rule(Action.ALLOW, guard=Guard(a, m, v)),
              st.integers(0, 5), st.sampled_from([0xFFFFFFFF, 0xFF, 0x80000001]),
              st.one_of(st.integers(0, 300),
                        st.lists(st.integers(0, 300), min_size=1, max_size=5).map(tuple))),
)


@st.composite
def policies(draw):
    """Runs of equal rules, like real policies, sometimes very fragmented."""
    policy = []
    while len(policy) < TABLE_SIZE:
        policy += [draw(rules)] * draw(st.integers(1, 40))
    return policy[:TABLE_SIZE]


@settings(max_examples=60, deadline=None)
@given(policies(), rules, st.data())
def test_filter_agrees_with_policy(policy, out_of_table, data):
    program = compile_filter(policy, out_of_table)
    for _ in range(40):
        nr = data.draw(st.integers(0, TABLE_SIZE + 100))
        args = data.draw(st.lists(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 300)),
                                  min_size=6, max_size=6))
        rule = policy[nr] if nr < TABLE_SIZE else out_of_table
        assert evaluate(program, nr, args) == expected(rule, args)


@pytest.mark.parametrize("mode", Mode.ALL)
@given(nr=st.integers(0, 2**32 - 1))
def test_foreign_abis_get_enosys(mode, nr):
    """In both modes: --trace-all sends every x86_64 number past the table
    to the tracer, so only the filter's own x32 check keeps x32 numbers
    (which this host's kernel may not even run) from reaching it."""
    program = compile_filter(build_policy(TABLE, mode), rule_for(None, mode, False))
    enosys = SECCOMP_RET_ERRNO | errno.ENOSYS
    assert evaluate(program, nr, arch=AUDIT_ARCH_I386) == enosys
    if nr >= X32_SYSCALL_BIT:
        assert evaluate(program, nr) == enosys
    # the x32 twin of a call the filter lets through is refused all the same
    assert evaluate(program, (nr % TABLE_SIZE) | X32_SYSCALL_BIT) == enosys


def test_default_mode_stops_nothing_that_needs_no_decision():
    policy = build_policy(TABLE, Mode.DEFAULT)
    program = compile_filter(policy, rule_for(None, Mode.DEFAULT, False))
    for entry in TABLE:
        got = evaluate(program, entry.nr)
        if entry.support == Support.PASSTHROUGH:
            assert got == SECCOMP_RET_ALLOW, entry.name
        elif entry.support in (Support.DENIED, Support.UNSUPPORTED):
            assert got == SECCOMP_RET_ERRNO | entry.errno, entry.name
        elif entry.support == Support.GUARDED:
            assert got == SECCOMP_RET_ALLOW or entry.guard.matches([0] * 6)
            g = entry.guard
            hit = [g.mask if g.value is None else g.values[-1]] * 6
            assert evaluate(program, entry.nr, hit) == SECCOMP_RET_TRACE
        else:
            assert got == SECCOMP_RET_TRACE, entry.name
    # numbers the table does not know never pass
    for nr in (335, 423, 470, 511, 512, 547, 100000):
        assert evaluate(program, nr) == SECCOMP_RET_ERRNO | errno.ENOSYS


@pytest.mark.parametrize("name,arg,timeouts,stops", [
    ("epoll_wait", 3, [0, 1, 400, 0x7fffffff, -1, 0xffffffff, 0x80000000, 1 << 32],
     [False, True, True, True, False, False, False, False]),
    ("rt_sigtimedwait", 2, [0, 0x1000, 1 << 40], [False, True, True])])
def test_timed_waits_stop_for_the_tracer_only_with_a_finite_timeout(name, arg, timeouts,
                                                                      stops):
    """sigtimedwait and epoll_wait stop (for the native tracer alone, which
    notes their deadline) only when their timeout is finite and not zero."""
    policy = build_policy(TABLE, Mode.DEFAULT)
    program = compile_filter(policy, rule_for(None, Mode.DEFAULT, False))
    nr = number(name)
    assert policy[nr].action == Action.TIMED
    for timeout, stop in zip(timeouts, stops):
        args = [0] * 6
        args[arg] = timeout
        assert policy[nr].wait.matches(args) == stop, timeout
        assert evaluate(program, nr, args) == (SECCOMP_RET_TRACE if stop else
                                               SECCOMP_RET_ALLOW), timeout


def test_pointer_guards_see_both_halves():
    """A guest can map memory at 4 GiB: a pointer whose low half is 0
    must still stop (sendto's destination address)."""
    policy = build_policy(TABLE, Mode.DEFAULT)
    program = compile_filter(policy, rule_for(None, Mode.DEFAULT, False))
    sendto = TABLE.entry("sendto").nr
    assert evaluate(program, sendto, [3, 0, 0, 0, 0, 0]) == SECCOMP_RET_ALLOW
    for addr in (1 << 32, 0x7F0000000000, 0x1000):
        assert evaluate(program, sendto, [3, 0, 0, 0, addr, 16]) == SECCOMP_RET_TRACE


def test_trace_all_stops_everything():
    program = compile_filter(build_policy(TABLE, Mode.TRACE_ALL),
                             rule_for(None, Mode.TRACE_ALL, False))
    for nr in list(range(0, 520)) + [100000]:
        assert evaluate(program, nr) == SECCOMP_RET_TRACE
    assert len(program) < 16


def test_hooked_calls_stop_in_default_mode():
    policy = build_policy(TABLE, Mode.DEFAULT, hooked_numbers=[number("getpid")])
    assert policy[number("getpid")].action == Action.PYTHON
    assert policy[number("getppid")].action == Action.ALLOW


def test_filter_fits_the_kernel_limit():
    program = compile_filter(build_policy(TABLE, Mode.DEFAULT), rule_for(None, Mode.DEFAULT, False))
    assert len(program) < 4096
    assert program[0][3] == 4 and program[1][3] == AUDIT_ARCH_X86_64
