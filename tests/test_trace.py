"""`umlpy trace`: strace's output for the sandbox's guests.

Most tests run the same program under `strace -f` (natively) and under
`umlpy trace` (in the sandbox) and compare what they print.  What
legitimately differs, and is normalised before comparing:

* pids: the sandbox has a pid namespace of its own, so getpid, gettid,
  set_tid_address, clone/fork/vfork and wait4 return small guest pids
  (and getppid of the sandbox's pid 1 is 0): those results, and the pid
  arguments of wait4/kill..., become PID;
* addresses (ASLR): every 0x... becomes ADDR; getrandom's bytes differ;
* clone3: the guest kernel answers ENOSYS (its flags live in memory a
  seccomp filter cannot check) and glibc falls back to clone, so a native
  `clone3(...) = N` is compared as clone and the sandbox's
  `clone3(...) = -1 ENOSYS` is dropped;
* signals: strace prints `--- SIGCHLD ... ---` lines (umlpy's native
  tracer delivers signals itself and prints none), and when a handler
  runs relative to other calls is timing, so rt_sigreturn is dropped;
* the order of lines of different processes is scheduling: calls are
  compared per process, in each process's own order;
* /proc is the sandbox's own (its /proc/filesystems, for one, is the
  guest kernel's), so the programs compared do not read it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import AS_ROOT, UMLPY, _env

HOST_ROOT = ["--host-root"] if AS_ROOT else []
STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed")
PID_RESULTS = {"getpid", "gettid", "getppid", "set_tid_address", "clone", "clone3", "fork",
               "vfork", "wait4", "waitid", "getpgrp", "getsid", "setsid"}


def umlpy_trace(*args, timeout=120, **kw):
    return subprocess.run(UMLPY + ["trace", *HOST_ROOT, *args], capture_output=True,
                          env=_env(), timeout=timeout, **kw)


def strace_run(tmp_path, argv, *options, timeout=120):
    out = tmp_path / "strace.txt"
    p = subprocess.run([STRACE, "-f", "-o", str(out), *options, "--", *argv],
                       capture_output=True, env=_env(), timeout=timeout)
    return p, out.read_text()


def traced(tmp_path, argv, *options, name="umlpy.txt"):
    out = tmp_path / name
    p = umlpy_trace("-o", str(out), *options, "--", *argv)
    return p, out.read_text()


LINE = re.compile(r"^(\d+)\s+(?:\d[\d:.]* )?(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
RESULT = re.compile(r"^(.*?\)) += (.*)$")


def calls(text):
    """{pid: [(name, whole line without the pid, result)]} of a trace, with
    unfinished lines joined to their resumption."""
    per, pending = {}, {}
    for raw in text.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = m.groups()
        if rest.startswith(("+++", "---")):
            continue
        if rest.endswith(" <unfinished ...>"):
            pending[pid] = rest[:-len(" <unfinished ...>")]
            continue
        r = RESUMED.match(rest)
        if r:
            start = pending.pop(pid)
            assert start.startswith(r.group(1) + "("), (start, rest)
            rest = start + r.group(2)
        m = RESULT.match(rest)
        assert m, raw
        call, result = m.groups()
        name = call.split("(", 1)[0]
        per.setdefault(pid, []).append((name, call, result))
    assert not pending, pending
    return per


def joined(text):
    """The trace with each unfinished line joined to its resumption, at
    the resumption's place: what strace -f would print for the same calls
    had no other process's line come in between."""
    out, pending = [], {}
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m:
            pid, rest = m.groups()
            if rest.endswith(" <unfinished ...>"):
                pending[pid] = rest[:-len(" <unfinished ...>")]
                continue
            r = RESUMED.match(rest)
            if r and pid in pending:
                raw = f"{pid} {pending.pop(pid)}{r.group(2)}"
        out.append(raw)
    return "\n".join(out) + "\n"


def normalised(text, whole_lines=False):
    """Per process (in order of first appearance): the (name, result) or
    (line, result) sequence, normalised as the module docstring says."""
    out = []
    for seq in calls(text).values():
        items = []
        for name, call, result in seq:
            if name == "rt_sigreturn":
                continue
            if name == "clone3":
                if result.startswith("-1 ENOSYS"):
                    continue
                name = "clone"
                call = "clone(...)"
            result = re.sub(r" <[\d.]+>$", "", result)
            if name in PID_RESULTS and re.match(r"^\d+", result):
                result = re.sub(r"^\d+", "PID", result)
            result = re.sub(r"0x[0-9a-f]+", "ADDR", result)
            if name == "getrandom":
                call = "getrandom(...)"
            call = re.sub(r"0x[0-9a-f]+", "ADDR", call)
            call = re.sub(r"^(wait4|kill|tkill|tgkill|setpgid|getpgid)\([1-9]\d*", r"\1(PID",
                          call)
            call = re.sub(r"(pipe|socket):\[\d+\]", r"\1:[N]", call)
            call = re.sub(r"\[\{parent_tid=\[\d+\]\}\]|parent_tid=\[\d+\]", "parent_tid=[PID]",
                          call)
            items.append((call if whole_lines else name, result))
        out.append(items)
    return out


def assert_same_traces(native, inside, whole_lines=False):
    a, b = normalised(native, whole_lines), normalised(inside, whole_lines)
    assert len(a) == len(b), (len(a), len(b))
    for pa, pb in zip(a, b):
        for i, (x, y) in enumerate(zip(pa, pb)):
            assert x == y, f"call {i}: strace {x} / umlpy {y}"
        assert len(pa) == len(pb), (pa[len(pb):], pb[len(pa):])


# line for line against strace ------------------------------------------------------
@needs_strace
def test_true_matches_strace_line_for_line(tmp_path):
    native_p, native = strace_run(tmp_path, ["/bin/true"])
    p, inside = traced(tmp_path, ["/bin/true"])
    assert p.returncode == native_p.returncode == 0, p.stderr
    assert_same_traces(native, inside, whole_lines=True)
    assert "execve(\"/bin/true\", [\"/bin/true\"]" in inside
    assert re.search(r"^1 +exit_group\(0\) += \?$", inside, re.M)
    assert re.search(r"^1 +\+\+\+ exited with 0 \+\+\+$", inside, re.M)


@needs_strace
def test_c_guest_matches_strace_line_for_line(tmp_path, guest):
    prog = guest("trace_prog")
    native_p, native = strace_run(tmp_path, [prog])
    p, inside = traced(tmp_path, [prog])
    assert p.returncode == native_p.returncode == 0, p.stderr
    assert p.stdout == native_p.stdout == b"hello from trace_prog\n"
    assert_same_traces(native, inside, whole_lines=True)
    check_trace_prog_lines(inside)


def check_trace_prog_lines(trace):
    """What a trace of trace_prog must show, each call on one line: a
    call split around another process's line (`<unfinished ...>`, then
    `<... NAME resumed>`, as strace -f splits it too) joined first."""
    inside = joined(trace)
    # the child's lines carry its own (guest) pid, and its status is decoded
    assert re.search(r"^2 +getppid\(\) += 1$", inside, re.M)
    assert re.search(r"^2 +close\(-1\) += -1 EBADF \(Bad file descriptor\)$", inside, re.M)
    waits = [(c, r) for name, c, r in calls(inside)["1"] if name == "wait4"]
    assert waits == [("wait4(2, [{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL)", "2")]
    assert re.search(r'^1 +openat\(AT_FDCWD, "/nonexistent/trace-me", O_RDONLY\) += -1 ENOENT '
                     r"\(No such file or directory\)$", inside, re.M)
    assert '"hello from trace_prog\\n", 22) = 22' in inside
    assert re.search(r"^2 +\+\+\+ exited with 3 \+\+\+$", inside, re.M)


# The end of a trace of trace_prog whose parent's wait4 began while its child
# was in getppid and close (a process's call is split around another's line,
# as strace -f splits it): what a loaded machine gives about 1 run in 5.
SPLIT_TRACE_PROG = """\
1     openat(AT_FDCWD, "/nonexistent/trace-me", O_RDONLY) = -1 ENOENT (No such file or directory)
1     write(1, "hello from trace_prog\\n", 22) = 22
1     clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD,  <unfinished ...>
2     set_robust_list(0x7f6ba0455a20, 24 <unfinished ...>
1     <... clone resumed>child_tidptr=0x7f6ba0455a10) = 2
2     <... set_robust_list resumed>)    = 0
2     getppid( <unfinished ...>
1     wait4(2,  <unfinished ...>
2     <... getppid resumed>)            = 1
2     close(-1 <unfinished ...>
2     <... close resumed>)              = -1 EBADF (Bad file descriptor)
2     exit_group(3)                     = ?
2     +++ exited with 3 +++
1     <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 2
1     exit_group(0)                     = ?
1     +++ exited with 0 +++
"""


def test_split_calls_are_checked_as_whole_lines():
    check_trace_prog_lines(SPLIT_TRACE_PROG)


@needs_strace
def test_decode_fds_matches_strace(tmp_path, guest):
    prog = guest("trace_prog")
    _, native = strace_run(tmp_path, [prog], "-y")
    p, inside = traced(tmp_path, [prog], "-y")
    assert p.returncode == 0, p.stderr
    assert_same_traces(native, inside, whole_lines=True)
    assert re.search(r'openat\(AT_FDCWD<[^>]+>, "/etc/passwd", O_RDONLY\) += 3</etc/passwd>',
                     inside)
    assert "read(3</etc/passwd>, " in inside
    assert re.search(r"pipe2?\(\[3<pipe:\[\d+\]>, 4<pipe:\[\d+\]>\]", inside)


@needs_strace
@pytest.mark.parametrize("argv", [
    ["/bin/sh", "-c", "cat /nonexistent-file; echo done"],
    ["/bin/sh", "-c", "head -c 5 /etc/passwd; wc -l < /etc/passwd"],
    ["/usr/bin/python3", "-I", "-c",
     "import json; print(json.dumps({'a': [1, 2]}))"],
], ids=["sh-cat", "sh-pipeline", "python3"])
def test_programs_match_strace_on_names_and_results(tmp_path, argv):
    if not os.path.exists(argv[0]):
        pytest.skip(f"{argv[0]} is not installed")
    native_p, native = strace_run(tmp_path, argv)
    p, inside = traced(tmp_path, argv)
    assert (p.returncode, p.stdout) == (native_p.returncode, native_p.stdout), p.stderr
    assert_same_traces(native, inside)


def test_threads_have_their_own_tids_and_resumed_lines(tmp_path, guest):
    prog = guest("trace_threads")
    p, text = traced(tmp_path, [prog], "-e", "trace=getppid,exit,clone,clone3,write")
    assert p.returncode == 0 and p.stdout == b"threads done\n", p.stderr
    per = calls(text)            # asserts every unfinished line is resumed
    getppid_pids = {pid for pid, seq in per.items() if any(c[0] == "getppid" for c in seq)}
    assert getppid_pids == {"2", "3"}, per.keys()
    assert sum(1 for c in per["2"] if c[0] == "getppid") == 50
    clones = [c for c in per["1"] if c[0] == "clone"]
    assert [c[2] for c in clones] == ["2", "3"]
    assert "CLONE_THREAD" in clones[0][1] and "parent_tid=[2]" in clones[0][1]


def test_timestamps_and_durations(tmp_path):
    p, text = traced(tmp_path, ["/bin/true"], "-tt", "-T", "-e", "trace=execve,exit_group")
    assert p.returncode == 0, p.stderr
    lines = text.splitlines()
    assert re.match(r'^1 +\d\d:\d\d:\d\d\.\d{6} execve\("/bin/true", .* = 0 <\d+\.\d{6}>$',
                    lines[0]), lines
    assert re.match(r"^1 +\d\d:\d\d:\d\d\.\d{6} exit_group\(0\) += \?$", lines[1]), lines
    p, text = traced(tmp_path, ["/bin/true"], "-ttt", "-e", "trace=execve", name="t3")
    assert re.match(r"^1 +\d{9,}\.\d{6} execve\(", text), text


def test_string_limit(tmp_path):
    p, text = traced(tmp_path, ["/bin/echo", "abcdefghijklmnopqrstuvwxyz"], "-s", "5",
                     "-e", "trace=write")
    assert p.returncode == 0, p.stderr
    assert re.search(r'^1 +write\(1, "abcde"\.\.\., 27\) += 27$', text, re.M), text


def test_default_output_is_stderr_and_f_is_accepted():
    p = umlpy_trace("-f", "-e", "trace=exit_group", "--", "/bin/sh", "-c", "echo out")
    assert p.returncode == 0
    assert p.stdout == b"out\n"
    assert re.search(rb"^1 +exit_group\(0\) += \?$", p.stderr, re.M), p.stderr


# -e trace= -------------------------------------------------------------------------
@needs_strace
@pytest.mark.parametrize("expr", ["trace=%file", "trace=%process", "trace=!%memory,%desc",
                                  "trace=openat,close,write", "trace=%network,%signal",
                                  "trace=/^(open|read)"])
def test_trace_sets_select_what_strace_selects(tmp_path, guest, expr):
    prog = guest("trace_prog")
    _, native = strace_run(tmp_path, [prog], "-e", expr)
    p, inside = traced(tmp_path, [prog], "-e", expr)
    assert p.returncode == 0, p.stderr
    assert_same_traces(native, inside)


def test_status_filters(tmp_path, guest):
    prog = guest("trace_prog")
    p, failed = traced(tmp_path, [prog], "-Z", name="Z")
    results = [r for seq in calls(failed).values() for _, _, r in seq]
    assert results and all(r.startswith("-1 ") for r in results)
    p, ok = traced(tmp_path, [prog], "-e", "status=successful", name="z")
    results = [r for seq in calls(ok).values() for _, _, r in seq]
    assert results and not any(r.startswith("-1 ") for r in results)


# fault injection -------------------------------------------------------------------
@needs_strace
@pytest.mark.parametrize("argv,spec", [
    (["/bin/sh", "-c", "cd /tmp && echo in-tmp"], "inject=chdir:error=EACCES"),
    (["/bin/sh", "-c", "cd /; cd /tmp; cd /; echo end"], "inject=chdir:error=ENOENT:when=2"),
    (["/bin/sh", "-c", "cd /; cd /tmp; cd /etc; cd /; echo end"],
     "inject=chdir:error=ENOTDIR:when=2+2"),
    (["/bin/sh", "-c", "echo $(id -u)"], "inject=geteuid:retval=4242"),
    (["/bin/cat", "/etc/hostname"], "inject=openat:error=EMFILE:when=3+"),
    (["/bin/cat", "/etc/hostname"], "fault=read:when=3"),
])
def test_injection_has_strace_outcome(tmp_path, argv, spec):
    trace = "-e", "trace=" + spec.split("=", 1)[1].split(":")[0]
    native_p, native = strace_run(tmp_path, argv, "-e", spec, *trace)
    p, inside = traced(tmp_path, argv, "-e", spec, *trace)
    assert (p.stdout, p.returncode) == (native_p.stdout, native_p.returncode), p.stderr
    assert p.stderr == native_p.stderr
    assert_same_traces(native, inside)
    assert inside.count("(INJECTED)") == native.count("(INJECTED)") > 0


def test_injection_is_per_thread_and_counts_calls(tmp_path):
    # when=1 counts each process's own calls: both echo processes fail their write
    argv = ["/bin/sh", "-c", "/bin/echo a; /bin/echo b; echo c"]
    p, text = traced(tmp_path, argv, "-e", "inject=write:error=ENOSPC:when=1",
                     "-e", "trace=write")
    assert p.stdout == b""
    assert text.count("= -1 ENOSPC (No space left on device) (INJECTED)") == 3, text


def test_delay_enter_sleeps_in_the_guest_thread(tmp_path):
    argv = ["/bin/sh", "-c", "echo a; echo b"]
    start = time.monotonic()
    p, text = traced(tmp_path, argv, "-T", "-e", "trace=write",
                     "-e", "inject=write:delay_enter=400ms")
    elapsed = time.monotonic() - start
    assert p.returncode == 0 and p.stdout == b"a\nb\n", p.stderr
    assert elapsed >= 0.8
    lines = [seq for seq in calls(text).values()][0]
    # the call shows once (its nanosleep does not), DELAYED, its time including the delay
    assert [c[0] for c in lines] == ["write", "write"]
    for _, _, result in lines:
        m = re.match(r"^2 \(DELAYED\) <(\d+\.\d+)>$", result)
        assert m and float(m.group(1)) >= 0.4, result


def test_delay_exit_keeps_the_result(tmp_path):
    argv = ["/bin/sh", "-c", "cd /tmp && pwd; cd /nonexistent-dir || echo failed"]
    start = time.monotonic()
    p, text = traced(tmp_path, argv, "-e", "trace=chdir,write",
                     "-e", "inject=chdir:delay_exit=300ms")
    assert time.monotonic() - start >= 0.6
    assert p.stdout == b"/tmp\nfailed\n", p.stderr
    assert re.search(r'chdir\("/tmp"\) += 0 \(DELAYED\)$', text, re.M), text
    assert re.search(r'chdir\("/nonexistent-dir"\) += -1 ENOENT .* \(DELAYED\)$', text, re.M)
    assert "nanosleep" not in text


def test_delay_with_error_skips_the_call_after_sleeping(tmp_path):
    start = time.monotonic()
    p, text = traced(tmp_path, ["/bin/sh", "-c", "cd /tmp || echo refused"],
                     "-e", "trace=chdir", "-e", "inject=chdir:error=EPERM:delay_exit=300ms")
    assert time.monotonic() - start >= 0.3
    assert p.stdout == b"refused\n"
    assert "= -1 EPERM (Operation not permitted) (INJECTED)" in text


def test_delays_do_not_block_other_threads(tmp_path):
    # two processes each sleep 1.5 s before their first write: together
    # (about 1.5 s), not in turn (3 s and more)
    argv = ["/bin/sh", "-c", "/bin/echo a & /bin/echo b & wait"]
    start = time.monotonic()
    p, text = traced(tmp_path, argv, "-e", "trace=write",
                     "-e", "inject=write:delay_enter=1.5s:when=1")
    elapsed = time.monotonic() - start
    assert sorted(p.stdout.split()) == [b"a", b"b"], p.stderr
    assert 1.5 <= elapsed < 2.7, elapsed
    assert text.count("(DELAYED)") == 2


# -c --------------------------------------------------------------------------------
SUMMARY_ROW = re.compile(r"^ *(\d+\.\d\d) +(\d+\.\d{6}) +(\d+) +(\d+) +(\d*) (\w+)$")


def summary(text):
    lines = text.splitlines()
    start = lines.index("% time     seconds  usecs/call     calls    errors syscall")
    assert lines[start + 1] == lines[-2] == \
        "------ ----------- ----------- --------- --------- ----------------"
    rows = [SUMMARY_ROW.match(line) for line in lines[start + 2:-2]]
    assert all(rows), lines
    total = SUMMARY_ROW.match(lines[-1])
    assert total and total.group(6) == "total"
    return [(m.group(6), int(m.group(4)), int(m.group(5) or 0)) for m in rows], total


@needs_strace
def test_summary_counts_match_strace(tmp_path, guest):
    prog = guest("trace_prog")
    _, native = strace_run(tmp_path, [prog], "-c", "-S", "name")
    p, inside = traced(tmp_path, [prog], "-c", "-S", "name")
    assert p.returncode == 0 and p.stdout == b"hello from trace_prog\n"
    rows_n, _ = summary(native)
    rows_u, total = summary(inside)
    assert rows_u == rows_n
    assert [r[0] for r in rows_u] == sorted(r[0] for r in rows_u)
    assert int(total.group(4)) == sum(r[1] for r in rows_u)
    assert int(total.group(5) or 0) == sum(r[2] for r in rows_u) > 0
    assert "openat(" not in inside          # -c: the table only


def test_summary_sort_orders(tmp_path, guest):
    prog = guest("trace_prog")
    for key, check in (("calls", lambda rows: [r[1] for r in rows] ==
                        sorted((r[1] for r in rows), reverse=True)),
                       ("errors", lambda rows: [r[2] for r in rows] ==
                        sorted((r[2] for r in rows), reverse=True))):
        p, text = traced(tmp_path, [prog], "-c", "-S", key, name=key)
        rows, _ = summary(text)
        assert check(rows), rows
    p, text = traced(tmp_path, [prog], "-c", name="time")
    _, = [summary(text)[0]]
    times = [float(m.group(2)) for m in map(SUMMARY_ROW.match, text.splitlines()[2:-2])]
    assert times == sorted(times, reverse=True)


def test_summary_with_trace(tmp_path):
    p, text = traced(tmp_path, ["/bin/true"], "-C")
    assert "execve(" in text and text.rstrip().endswith("total")


# --json, --record, --compare -------------------------------------------------------
def test_json_lines(tmp_path, guest):
    prog = guest("trace_prog")
    out = tmp_path / "calls.jsonl"
    p = umlpy_trace("--json", "-o", str(out), "--", prog)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"seq", "pid", "host_pid", "syscall", "nr", "args", "decoded", "ret", "errno",
            "retstr", "enter", "duration", "injected"} <= set(records[0])
    assert records[0]["syscall"] == "execve" and records[0]["pid"] == 1
    assert records[0]["host_pid"] != 1          # the sandbox's own pid namespace
    # written when each call returns; seq is the order of entry
    assert len({r["seq"] for r in records}) == len(records)
    miss = [r for r in records if r["decoded"][1:2] == ['"/nonexistent/trace-me"']]
    assert len(miss) == 1
    m = miss[0]
    assert (m["syscall"], m["ret"], m["errno"]) == ("openat", -2, "ENOENT")
    assert m["retstr"] == "-1 ENOENT (No such file or directory)"
    assert m["nr"] == 257 and m["args"][0] & 0xFFFFFFFF == 2 ** 32 - 100 and len(m["args"]) == 6
    assert isinstance(m["enter"], float) and m["duration"] >= 0
    child = {r["pid"] for r in records if r["syscall"] == "getppid"}
    assert child == {2}
    exits = [r for r in records if r["syscall"] == "exit_group"]
    assert all(r["ret"] is None and r["duration"] is None for r in exits)


def test_record_and_compare(tmp_path, guest):
    prog = guest("trace_prog")
    a, a2, b = tmp_path / "a.jsonl", tmp_path / "a2.jsonl", tmp_path / "b.jsonl"
    for path, extra in ((a, []), (a2, []), (b, ["/etc/hostname"])):
        p = umlpy_trace("--record", str(path), "--", prog, *extra)
        assert p.returncode == 0 and p.stderr == b"", p.stderr      # no text trace
    same = subprocess.run(UMLPY + ["trace", "--compare", str(a), str(a2)],
                          capture_output=True, env=_env(), timeout=60)
    assert same.returncode == 0, same.stdout
    assert b"no divergence" in same.stdout and b"no differences" in same.stdout
    diff = subprocess.run(UMLPY + ["trace", "--compare", str(a), str(b)],
                          capture_output=True, env=_env(), timeout=60)
    assert diff.returncode == 1, diff.stdout
    text = diff.stdout.decode()
    assert "first divergence: process 1 (pid 1 in a, pid 1 in b)" in text
    assert re.search(r"  a: newfstatat\(AT_FDCWD, \"/etc\", .*\n"
                     r'  b: openat\(AT_FDCWD, "/etc/hostname", O_RDONLY\|O_CLOEXEC\) = 3\n',
                     text), text
    assert re.search(r"^openat +\d+ +\d+ +\+1$", text, re.M), text
    assert re.search(r"^total +\d+ +\d+ +\+1$", text, re.M), text


def test_compare_normalises_pids_and_addresses(tmp_path):
    def rec(seq, pid, name, ret, errno=None):
        return json.dumps({"seq": seq, "pid": pid, "syscall": name, "ret": ret,
                           "errno": errno, "decoded": [], "retstr": str(ret)})
    a = [rec(1, 100, "mmap", 0x7f0000), rec(2, 100, "clone", 101), rec(3, 101, "getpid", 101),
         rec(4, 100, "wait4", 101)]
    b = [rec(1, 7, "mmap", 0x5555), rec(2, 7, "clone", 9), rec(3, 9, "getpid", 9),
         rec(4, 7, "wait4", 9)]
    (tmp_path / "a").write_text("\n".join(a) + "\n")
    (tmp_path / "b").write_text("\n".join(b) + "\n")
    p = subprocess.run(UMLPY + ["trace", "--compare", str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 0, p.stdout
    b[2] = rec(3, 9, "getpid", -1, "EPERM")
    (tmp_path / "b").write_text("\n".join(b) + "\n")
    p = subprocess.run(UMLPY + ["trace", "--compare", str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 1
    assert b"first divergence: process 1.1 (pid 101 in a, pid 9 in b), call #1:" in p.stdout


# --timeline ------------------------------------------------------------------------
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True,
                       timeout=900, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return shutil.which("chromium")
    return None


def test_timeline_renders_lanes_in_chromium(tmp_path):
    page = tmp_path / "timeline.html"
    argv = ["/bin/sh", "-c", "cat /etc/hostname | cat >/dev/null; cat /nonexistent-x; true"]
    p = umlpy_trace("--timeline", str(page), "--", *argv)
    assert p.returncode == 0, p.stderr
    assert b"+++" not in p.stderr               # no text trace without -o
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "<script src" not in html and "<link" not in html      # self-contained
    data = json.loads(re.search(r'<script type="application/json" id="trace-data">(.*?)'
                                r"</script>", html, re.S).group(1))
    pids = [proc["pid"] for proc in data["procs"]]
    assert len(pids) >= 4 and pids[0] == 1
    assert any(c[5] for c in data["calls"])     # the failed calls are marked
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed and cannot be installed")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", page.as_uri()], capture_output=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    lanes = re.findall(rb'<g class="lane" data-pid="(\d+)"', dom.stdout)
    assert [int(x) for x in lanes] != [] and sorted(int(x) for x in lanes) == sorted(pids)
    assert dom.stdout.count(b'class="mark') == len(data["calls"])
    assert dom.stdout.count(b'class="mark cls-') > dom.stdout.count(b" error\"") > 0
    assert b"4 processes/threads" in dom.stdout or b"processes/threads" in dom.stdout


# bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["-e", "trace=no_such_call", "--", "/bin/true"],
    ["-e", "trace=%nosuchclass", "--", "/bin/true"],
    ["-e", "inject=openat:error=ENOTANERRNO", "--", "/bin/true"],
    ["-e", "inject=openat", "--", "/bin/true"],
    ["-e", "inject=openat:error=ENOENT:when=0", "--", "/bin/true"],
    ["-e", "inject=openat:error=ENOENT:retval=3", "--", "/bin/true"],
    ["-e", "inject=nosuch:error=ENOENT", "--", "/bin/true"],
    ["-e", "inject=write:delay_enter=soon", "--", "/bin/true"],
    ["-e", "bogus=1", "--", "/bin/true"],
    ["-S", "colour", "--", "/bin/true"],
    ["-s", "-3", "--", "/bin/true"],
    ["-p", "1"],
    ["--no-such-option", "--", "/bin/true"],
    ["--compare", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"],
    ["--compare", "/etc/hostname"],
    ["--compare", "/etc/hostname", "/etc/hostname"],
    ["-o", "/nonexistent-dir/out.txt", "--", "/bin/true"],
    ["--rootfs", "/nonexistent-root", "--", "/bin/true"],
    [],
])
def test_bad_input_is_one_line_and_2(args):
    p = subprocess.run(UMLPY + ["trace", *args], capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.decode().strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("umlpy"), p.stderr
    assert p.stdout == b""


def test_help_lists_trace_and_sandbox_options():
    p = subprocess.run(UMLPY + ["trace", "--help"], capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 0
    for word in (b"-e trace=SET", b"-e inject=", b"--json", b"--record", b"--timeline",
                 b"--compare", b"--rootfs", b"--env"):
        assert word in p.stdout
    main = subprocess.run(UMLPY + ["--help"], capture_output=True, env=_env(), timeout=60)
    assert b"trace " in main.stdout


def test_sandbox_options_apply(tmp_path):
    p = umlpy_trace("--env", "GREETING=hi-there", "--hostname", "traced-box",
                    "-e", "trace=uname", "--", "/bin/sh", "-c", "echo $GREETING; uname -n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hi-there\ntraced-box\n"
    assert re.search(rb'uname\(\{sysname="Linux", nodename="traced-box", \.\.\.\}\) += 0',
                     p.stderr), p.stderr


def test_run_does_not_import_trace():
    code = ("import sys; from umlpy.cli import main; main(['run', '--', '/bin/true']); "
            "print(any(m.split('.')[:2] == ['umlpy', 'trace'] for m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(),
                       timeout=60)
    assert p.stdout.strip().endswith(b"False"), p.stderr
