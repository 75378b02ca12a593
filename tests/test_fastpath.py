"""The native path cache (umlpy/_native/pathcache.c, umlpy/kernel/fastpath.py)
answers exactly as Python does.

The property test builds random trees (files, directories and symlinks
with random modes, some the guest may not search or read, symlink loops,
dangling and absolute links), and runs tests/guest/path_probe.c inside
umlpy twice: with the cache and without it (UMLPY_NO_FASTPATH=1).  The
probe looks at every path three times and lists every directory (so the
later rounds and the relative lookups are served from the cache, prefilled
from the listing), changing the tree between rounds 2 and 3; both runs
must print the same.  As root the guest is nobody outside, so permission
answers that depend on the caller are exercised too."""
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import ROOT, _env, busybox_rootfs, open_up, run_in_kernel

AS_ROOT = os.geteuid() == 0
NAMES = ["a", "b", "c", "dd", "e.txt"]


def tree_inodes(base):
    """Inode numbers of the objects a generated tree holds."""
    found = {os.lstat(base).st_ino}
    for top, dirs, files in os.walk(base):
        for name in dirs + files:
            found.add(os.lstat(os.path.join(top, name)).st_ino)
    return found


def outside_counts_masked(out, inodes):
    """A link to "/" makes the probe list the guest's root: the link counts
    of /proc and /tmp follow the host's processes and other tests, not
    umlpy, and may change between the two runs."""
    def mask(m):
        if int(m.group(3)) in inodes:
            return m.group(0)
        return m.group(1) + b"N" + m.group(2) + m.group(3)
    return re.sub(rb"(nlink )\d+( .* ino )(\d+)", mask, out)


def run_probe(probe, args, fastpath, options=()):
    env = _env()
    if not fastpath:
        env["UMLPY_NO_FASTPATH"] = "1"
    p = subprocess.run([sys.executable, "-m", "umlpy", "run", *options, "--", probe, *args],
                       capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    # objects the run made itself have inode numbers of its own upper layer
    return re.sub(rb"(new\S* .*ino )\d+", rb"\1N", p.stdout)


@st.composite
def trees(draw):
    """[(relative path, kind, mode or link target)] forming one tree."""
    entries = []
    dirs = [""]
    for _ in range(draw(st.integers(3, 14))):
        parent = draw(st.sampled_from(dirs))
        name = draw(st.sampled_from(NAMES))
        rel = f"{parent}/{name}" if parent else name
        if any(e[0] == rel for e in entries):
            continue
        kind = draw(st.sampled_from(["file", "dir", "dir", "link"]))
        if kind == "file":
            entries.append((rel, kind, draw(st.sampled_from([0o644, 0o600, 0o000, 0o755]))))
        elif kind == "dir":
            entries.append((rel, kind, draw(st.sampled_from([0o755, 0o700, 0o711, 0o555,
                                                             0o000, 0o777]))))
            dirs.append(rel)
        else:
            target = draw(st.sampled_from(
                [e[0] for e in entries] + ["..", ".", "nowhere", "/", "a/../b", rel]))
            entries.append((rel, kind, draw(st.sampled_from(["", "ABS"])) + target))
    return entries


def build(base, entries):
    base.mkdir()
    os.chmod(base, 0o755)
    for rel, kind, how in entries:
        p = base / rel
        if not p.parent.is_dir():
            continue
        if kind == "file":
            p.write_text(rel)
        elif kind == "dir":
            p.mkdir()
        else:
            target = str(base) + "/" + how[3:] if how.startswith("ABS") else how
            os.symlink(target, p)
    # modes last: a directory made unsearchable first could not be filled
    for rel, kind, how in sorted(entries, key=lambda e: -e[0].count("/")):
        p = base / rel
        if kind != "link" and os.path.lexists(p):
            os.chmod(p, how)


def probe_paths(base, entries):
    paths = [str(base)] + [f"{base}/{rel}" for rel, _k, _h in entries]
    paths += [f"{base}/missing", f"{base}/a/../b", f"{base}/a/", f"{base}//b/./c"]
    return paths


@pytest.fixture(scope="module")
def probe(guest):
    exe = guest("path_probe")
    open_up(os.path.dirname(exe))
    return exe


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=trees(), mutate=st.sampled_from(["", "a", "b", "a/b"]))
@example(entries=[("dd", "dir", 0o755), ("dd/c", "link", "/")], mutate="")
def test_cache_answers_as_python(probe, tmp_path_factory, entries, mutate):
    base = tmp_path_factory.mktemp("fp") / "tree"
    open_up(base.parent)
    build(base, entries)
    args = (["-m", f"{base}/{mutate}" if mutate else str(base)]) + probe_paths(base, entries)
    # an unlinkable victim, if the mutated directory exists
    victim = base / mutate / "victim" if mutate else base / "victim"
    if victim.parent.is_dir() and os.access(victim.parent, os.W_OK):
        victim.write_text("v")
    inodes = tree_inodes(base)
    with_cache = outside_counts_masked(run_probe(probe, args, True), inodes)
    without = outside_counts_masked(run_probe(probe, args, False), inodes)
    assert with_cache.splitlines() == without.splitlines()
    rounds = with_cache.split(b"round ")
    assert len(rounds) == 4


@pytest.fixture(scope="module")
def bound_root(guest):
    """A busybox root holding a static path_probe at /probe, for runs
    whose tree is a bind (a container's volume): delegated only where no
    other mount shows the same host directories, as the host's own tree
    without --rootfs would."""
    for root in busybox_rootfs("umlpy-test-fastpath-"):
        shutil.copy(guest("path_probe", static=True), root / "probe")
        yield root


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=trees(), mutate=st.sampled_from(["", "a", "b"]),
       read_only=st.booleans())
@example(entries=[("a", "dir", 0o755), ("a/b", "dir", 0o700), ("a/b/c", "file", 0o644),
                  ("e.txt", "link", "a/b/c")], mutate="a", read_only=False)
def test_cache_answers_as_python_in_a_bind(bound_root, tmp_path_factory, entries, mutate,
                                           read_only):
    """C answers below a bind mount's root from the host (pathtree.c),
    with the bind's statx mount id: the same as Python's answers."""
    base = tmp_path_factory.mktemp("fpb") / "tree"
    open_up(base.parent)
    build(base, entries)
    guest = "/vol"
    args = (["-m", f"{guest}/{mutate}" if mutate else guest]) + \
        [p.replace(str(base), guest, 1) for p in probe_paths(base, entries)]
    if not read_only:
        victim = base / mutate / "victim" if mutate else base / "victim"
        if victim.parent.is_dir() and os.access(victim.parent, os.W_OK):
            victim.write_text("v")
    options = ["--rootfs", str(bound_root), "--bind",
               f"{base}:{guest}" + (":ro" if read_only else "")]
    inodes = tree_inodes(base)
    with_cache = outside_counts_masked(run_probe("/probe", args, True, options), inodes)
    without = outside_counts_masked(run_probe("/probe", args, False, options), inodes)
    assert with_cache.splitlines() == without.splitlines()


def test_a_bind_is_answered_in_c(bound_root, tmp_path):
    """Lookups below a bind (podman's -v) are C's: in-process counts."""
    base = tmp_path / "vol"
    build(base, [("a", "dir", 0o755), ("a/f", "file", 0o644), ("a/g", "file", 0o644),
                 ("a/l", "link", "f"), ("b", "dir", 0o755)])
    open_up(tmp_path)
    code = ("import sys\nfrom umlpy.kernel import GuestKernel\nfrom umlpy.config import Config\n"
            f"k = GuestKernel(config=Config(rootfs={str(bound_root)!r}, "
            f"binds=[{str(base) + ':/vol:ro'!r}]))\n"
            "k.spawn(['/bin/sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do ls -lR /vol; done'])\n"
            "status = k.run()\n"
            "print('COUNTS', status, *k.fastpath.counts(), file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(),
                       timeout=120)
    found = re.search(rb"COUNTS (-?\d+) (\d+) (\d+)", p.stderr)
    assert found, p.stderr.decode()[-2000:]
    status, hits, misses = map(int, found.groups())
    assert status == 0 and b"a/l -> f" not in p.stdout
    assert hits > 40 and misses < hits / 4, (hits, misses)


def test_cache_is_used_and_sees_the_guests_changes(probe, tmp_path):
    """Answers come from C after the first round; a change made in round 2
    (a file created, one removed) shows in round 3."""
    open_up(tmp_path)
    base = tmp_path / "t"
    build(base, [("a", "dir", 0o777), ("a/f", "file", 0o644), ("a/l", "link", "f")])
    (base / "a" / "victim").write_text("v")
    os.chmod(base / "a" / "victim", 0o666)
    p, counts = run_in_kernel([probe, "-m", str(base / "a"), str(base / "a"),
                               str(base / "a" / "f"), str(base / "a" / "new"),
                               str(base / "a" / "victim")], timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    hits, status = counts.hits, counts.status
    assert status == 0 and hits > 20
    out = p.stdout.decode().split("round ")
    assert f"stat {base}/a/new err 2" in out[2] and f"stat {base}/a/new mode 100" in out[3]
    assert f"stat {base}/a/victim mode" in out[2] and f"stat {base}/a/victim err 2" in out[3]
    assert f"fstatat {base}/a//new" in out[3] and f"fstatat {base}/a//victim" not in out[3]


def test_a_guest_that_floods_the_cache(guest, tmp_path):
    """100,000 distinct absent names, each looked at twice: the table is
    emptied when full, never grows without bound, and answers stay right."""
    src = tmp_path / "flood.c"
    src.write_text(r'''
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    struct stat st; char p[64]; int bad = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(p, sizeof p, "/etc/nonexistent-umlpy-%d", i);
        if (stat(p, &st) == 0) bad++;
        if (stat(p, &st) == 0) bad++;     /* from the cache */
    }
    printf("bad %d root %d\n", bad, stat("/", &st));
    return 0;
}
''')
    exe = tmp_path / "flood"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    open_up(tmp_path)
    p, counts = run_in_kernel([str(exe)])
    assert p.stdout == b"bad 0 root 0\n", p.stderr.decode()[-2000:]
    hits, entries, status = counts.hits, counts.entries, counts.status
    assert status == 0 and entries <= 131072 and hits >= 90000


def test_hooks_and_tracing_keep_calls_in_python(tmp_path):
    """A user's hook on stat sees every call, even repeated ones."""
    code = (
        "from umlpy.kernel import GuestKernel\n"
        "k = GuestKernel()\n"
        "seen = []\n"
        "@k.hook('newfstatat')\n"
        "def h(call):\n"
        "    seen.append(1)\n"
        "k.spawn(['sh', '-c', 'for i in 1 2 3 4 5; do test -e /etc/passwd; done'])\n"
        "k.run()\n"
        "print(len(seen), k.fastpath.enabled)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(),
                       timeout=60, cwd=str(ROOT))
    n, enabled = p.stdout.split()
    assert int(n) >= 5 and enabled == b"False", p.stderr.decode()


def test_calls_still_stopping_at_ptrace_are_answered_in_c(guest, tmp_path):
    """statx of an fd itself and openat2 still stop at ptrace in the
    default mode (the filter cannot tell AT_EMPTY_PATH's empty path or
    openat2's flags in memory): C answers them there from Python's entries,
    what the guest sees unchanged."""
    open_up(tmp_path)
    exe = str(tmp_path / "fd_looks")
    shutil.copy(guest("fd_looks"), exe)
    rounds = 300
    args = [exe, str(rounds), "/usr/include/stdio.h", "/usr/include"]
    native = subprocess.run(args, capture_output=True, check=True).stdout
    p, counts = run_in_kernel(args, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == native
    hits, misses, status = counts.hits, counts.misses, counts.status
    assert status == 0
    assert hits > 5 * rounds - 50, (hits, misses)
