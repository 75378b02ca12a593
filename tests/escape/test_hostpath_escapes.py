"""Escapes through the host paths and the host privileges the guest kernel
uses on the guest's behalf (guest programs: tests/escape/progs/hp_*.c).

Like test_escape.py, every test runs umlpy in its default identity (as
root: the guest is root inside a user namespace and nobody, 65534,
outside) and as an ordinary user (uid 65534 through setpriv), and checks
the host: a marker area unchanged, nothing the guest must not see in its
output, no ``ESCAPE`` line.

1. Path races.  A call the guest kernel checks and then hands to the host
   as an absolute host path (in the upper layer, or in a tmpfs such as
   /dev/shm) is resolved again by the host when the guest's process makes
   it.  The guest swaps a directory of its own for a symlink to a host
   directory (renameat2 RENAME_EXCHANGE) in between: the call lands in the
   host directory.  The arena is a directory the guest's host identity may
   write (0777, its marker 0666 and owned by 65534): only the sandbox
   stands in the way.
2. Scratch memory the guest unseals.  A seccomp filter of the guest's own
   fakes the mseal the guest kernel injects (SECCOMP_RET_ERRNO|0 is a
   success that does nothing); after an exec the scratch mapping is
   unsealed, the guest makes it writable and rewrites the host path or the
   checked socket address the guest kernel left there before the host
   reads it.
3. Copy-up before any permission check.  chown, utimensat/utimes, link
   and inotify_add_watch make the tracer copy a host object to the upper
   layer with its own privileges (root's, when umlpy runs as root), after
   which the guest reads the copy: a root-only file's content, a root-only
   directory's entries.

The race tests make 10^4 attempts per call (half in /dev/shm, half in
the upper layer) and are marked slow; they stop at the first win.
"""
import hashlib
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, open_up, write_tiny_image

HERE = Path(__file__).resolve().parent
PROGS = HERE / "progs"
AS_ROOT = os.geteuid() == 0
NOBODY = 65534
SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
USERS = ["root", "nobody"]

RACE_CALLS = ["mkdirat", "mknodat", "symlinkat", "linkat", "unlinkat", "renameat2",
              "fchmodat", "fchownat", "utimensat", "utimes", "truncate", "chdir", "bind",
              "connect", "open"]
RACE_LOCATIONS = ["shm", "upper"]    # /dev/shm first: its races win more often then
RACE_ATTEMPTS = 5_000           # per location: 10^4 per call
VIEW = "/mnt/hp-arena"          # the arena, bound read-only: where the guest watches it
SCRATCH_ATTEMPTS = 2_000
COPYUP_TECHNIQUES = ["chown", "utimensat", "utimes", "link", "inotify"]


# ---------------------------------------------------------------- the kit

_open_up = open_up


def _build(outdir, name):
    out = outdir / name
    cmd = ["gcc", "-static", "-no-pie", "-O2", "-Wall", "-pthread", "-o", str(out),
           str(PROGS / f"{name}.c")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        pytest.fail(f"cannot build {name}: {p.stderr}")
    os.chmod(out, 0o755)
    return out


class Progs:
    def __init__(self, where):
        self.dir = Path(where)
        _open_up(self.dir)
        self.race = _build(self.dir, "hp_race")
        self.scratch = _build(self.dir, "hp_scratch")
        self.copyup = _build(self.dir, "hp_copyup")
        self.image = self.dir / "image.tar"
        self._make_image()

    def _make_image(self):
        """A root of the guest's that holds none of the host's files."""
        write_tiny_image(self.image, {"bin/hp_scratch": self.scratch.read_bytes()})


@pytest.fixture(scope="session")
def progs(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the escape programs")
    return Progs(tmp_path_factory.mktemp("hostpath-progs"))


_NOBODY_OK = []


def _skip_unless_user_can_run(user):
    if user != "nobody":
        return
    if not AS_ROOT:
        pytest.skip("the ordinary-user runs need root to switch to uid 65534")
    if not _NOBODY_OK:
        p = subprocess.run(SETPRIV + [sys.executable, "-c", "import umlpy._native._tracer"],
                           capture_output=True, env={"PYTHONPATH": str(ROOT)}, cwd="/")
        _NOBODY_OK.append(p.returncode == 0)
    if not _NOBODY_OK[0]:
        pytest.skip(f"uid 65534 cannot run {sys.executable} with umlpy")


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _facts(path):
    st = os.lstat(path)
    facts = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
             st.st_ctime_ns, st.st_nlink, st.st_ino)
    if stat.S_ISREG(st.st_mode):
        try:
            facts += (digest(path),)
        except OSError as e:
            facts += (f"unreadable: {e}",)
    return facts


def snapshot(top):
    """Every entry under top (and top itself), with its metadata."""
    snap = {".": _facts(top)}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            snap[os.path.relpath(p, top)] = _facts(p)
    return snap


def changes(before, after, label):
    return [f"{label}/{k}: {before.get(k)} -> {after.get(k)}"
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


class Arena:
    """A host directory the guest's host identity may write (0777, owned by
    65534), with a marker file (0666, owned by 65534) in it."""

    def __init__(self, base):
        self.path = base / "arena"
        self.path.mkdir()
        _open_up(base)
        os.chmod(self.path, 0o777)
        self.token = uuid.uuid4().hex
        self.secret = f"HOST-MARKER-{self.token}"
        self.marker = self.path / "marker"
        self.marker.write_text(self.secret + "\n")
        os.chmod(self.marker, 0o666)
        if AS_ROOT:
            os.chown(self.path, NOBODY, NOBODY)
            os.chown(self.marker, NOBODY, NOBODY)
        self.before = snapshot(self.path)

    def changes(self):
        return changes(self.before, snapshot(self.path), "arena")


@pytest.fixture
def arena(tmp_path):
    return Arena(tmp_path)


# ------------------------------------------------------------- the runner

def _find_guest(token, comm):
    """Host pids of the guest processes named comm carrying token."""
    needle = f"HP_TOKEN={token}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm", "rb") as f:
                if f.read().strip() != comm.encode():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Run:
    """One umlpy run of a guest program; stdout is read line by line, and a
    line starting with PROBE is answered on the guest's stdin."""

    def __init__(self, argv, user, options=(), cwd="/", token=None, probe=None, timeout=300,
                 env=None):
        _skip_unless_user_can_run(user)
        self.token = token or uuid.uuid4().hex
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT), "HP_TOKEN": self.token,
               "HOME": "/root" if user == "root" else "/nonexistent", **(env or {})}
        cmd = [sys.executable, "-m", "umlpy", "run", *options, "--", *map(str, argv)]
        if user == "nobody":
            cmd = SETPRIV + cmd
        self.cmd = cmd
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        t.start()
        out = []
        deadline = time.monotonic() + timeout
        self.timed_out = False
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                break
            if not select.select([p.stdout], [], [], min(left, 1))[0]:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                out.append(text)
                if text.startswith("PROBE") and probe is not None:
                    try:
                        p.stdin.write(probe(self, text))
                        p.stdin.flush()
                    except BrokenPipeError:
                        pass
        out.append(buf.decode(errors="replace"))
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        self.returncode = p.wait()
        t.join(10)
        self.lines = [line for line in out if line]
        self.stdout = "\n".join(self.lines)
        self.stderr = b"".join(err).decode(errors="replace")

    def problems(self, done=True):
        problems = [line for line in self.lines + self.stderr.splitlines()
                    if line.startswith("ESCAPE")]
        problems += [line for line in self.lines if line.startswith("SETUP-FAILED")
                     and not self.refused(line)]
        if self.timed_out:
            problems.append("the sandbox hung (killed after the timeout)")
        if "Traceback" in self.stderr:
            problems.append("the guest kernel raised an exception")
        if done and "DONE" not in self.lines:
            problems.append(f"the guest program did not finish (status {self.returncode})")
        return problems

    @staticmethod
    def refused(line):
        """The guest kernel failing closed: an address space whose scratch
        memory a guest filter kept from being sealed gets no rewritten call
        (its exec fails with EPERM), which is the defence, not a broken test."""
        return line.startswith("SETUP-FAILED exec ") and line.endswith("Operation not permitted")

    def report(self, what, problems):
        summary = [line for line in self.lines if line.startswith(("RESULT", "ESCAPE"))]
        return "\n".join([f"{what}:", *problems, "--- summary", *summary[-20:],
                          "--- stdout (tail)", *self.lines[-30:],
                          "--- stderr (tail)", self.stderr[-3000:]])


# ====================================================== 1. path races

def _cwd_prober(arena_path):
    """Answers the chdir racer's PROBEs ("PROBE N CWD"): is the guest
    process's host working directory the arena, while the guest kernel
    has it at CWD, elsewhere?  (The guest kernel keeps the working
    directory as a guest path, so only the host can tell where the process
    really is.  A chdir that followed the symlink in guest terms is in the
    arena as the guest sees it, the host's read-only tree: CWD says so.)"""
    target = os.stat(arena_path)
    pids = []
    hits = []

    def probe(run, line):
        if not pids:
            pids.extend(_find_guest(run.token, "hp_race"))
        guest_cwd = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
        if guest_cwd == str(arena_path):
            return b"n"
        hit = False
        for pid in pids:
            try:
                st = os.stat(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                hit = True
        if hit:
            hits.append(line)
        return b"y" if hit else b"n"
    probe.hits = hits
    probe.pids = pids
    return probe


def host_unix_service(arena):
    """connect: a host service listening in the arena (a socket any user
    may connect to), counting the connections that reach it."""
    sock = socket.socket(socket.AF_UNIX)
    path = arena.path / "sock"
    sock.bind(str(path))
    os.chmod(path, 0o777)
    server = CountingServer(sock)
    arena.before = snapshot(arena.path)
    return server


@pytest.mark.slow
@pytest.mark.parametrize("call", RACE_CALLS)
@pytest.mark.parametrize("user", USERS)
def test_path_race_through_swapped_directory(progs, arena, tmp_path, user, call):
    """The guest makes CALL on BASE/d/NAME (or, for chdir, on BASE/d) while a
    thread at SCHED_IDLE on the same CPU as the caller and a spinner keeps
    exchanging BASE/d, a directory of its own, with BASE/l, a symlink to
    the host arena (whose host path it knows: in the default mode it sees
    the host's tree).  Whatever the host resolves, the call must stay in
    the guest's own tree: the arena keeps its entries, and the marker its
    content, mode, owner, times and link count.  BASE is in the upper layer
    (/tmp) and in a tmpfs (/dev/shm).

    chdir: the host working directory of the guest's process must never
    become the arena (asked of the host after every chdir that succeeded),
    and what is made relative to it must stay in the guest's tree."""
    probe = _cwd_prober(arena.path) if call == "chdir" else None
    service = host_unix_service(arena) if call == "connect" else None
    run = Run([progs.race, call, arena.path, VIEW, RACE_ATTEMPTS, *RACE_LOCATIONS], user,
              options=["--bind", f"{arena.path}:{VIEW}:ro"], cwd=tmp_path, probe=probe,
              timeout=600)
    problems = run.problems() + arena.changes()
    if service is not None:
        reached = service.close()
        if reached:
            problems.append(f"a host UNIX service in the arena got {reached} connection(s)")
    if probe is not None:
        problems += [f"the host cwd was the arena at {line}" for line in probe.hits[:5]]
        if not probe.pids and any(line.startswith("PROBE") for line in run.lines):
            problems.append("the test could not find the guest process to probe its cwd")
    assert not problems, run.report(f"{call} as {user}", problems)


# ==================================================== 2. scratch memory

@pytest.mark.parametrize("user", USERS)
def test_scratch_unsealed_open_reads_host_file(progs, tmp_path, user):
    """In an image (no host file in the guest's view) the guest fakes the
    mseal of its scratch memory, makes it writable and rewrites the host
    path of its own file, which the guest kernel wrote there for an open,
    with the host path of a file its host identity could read (0644): the
    guest must only ever read its own file."""
    hostdir = tmp_path / "hostfiles"
    hostdir.mkdir()
    _open_up(hostdir)
    secret = f"HOST-SECRET-{uuid.uuid4().hex}"
    target = hostdir / "secret"
    target.write_text(secret + "\n")
    os.chmod(target, 0o644)
    before = snapshot(hostdir)
    run = Run(["/bin/hp_scratch", "read", target, SCRATCH_ATTEMPTS], user,
              options=["--rootfs", str(progs.image)], timeout=300)
    problems = run.problems(done=False) + changes(before, snapshot(hostdir), "hostfiles")
    if secret in run.stdout or secret in run.stderr:
        problems.append("the guest read the host's file")
    assert not problems, run.report(f"scratch open-read as {user}", problems)


@pytest.mark.parametrize("user", USERS)
def test_scratch_unsealed_open_writes_host_file(progs, arena, tmp_path, user):
    """In the default mode (the host's tree read-only under the upper
    layer) the guest rewrites the host path of its own file, opened for
    writing, with the arena's marker (0666, owned by 65534): what the guest
    writes must go to its own file, never to a host file."""
    run = Run([progs.scratch, "write", arena.marker, SCRATCH_ATTEMPTS], user, cwd=tmp_path,
              timeout=300)
    problems = run.problems(done=False) + arena.changes()
    assert not problems, run.report(f"scratch open-write as {user}", problems)


def test_scratch_trusts_injected_calls_only_of_a_thread_without_filters_of_its_own():
    """The guest kernel skips reading /proc/TID/smaps after it maps and
    seals scratch memory when the thread carries exactly the filters umlpy
    counted (GUEST_FILTERS): then no filter of the guest's could have
    answered the injected calls.  The count must be what a guest thread
    really carries (the faked-mseal guests above carry one more, and must
    still be caught by the smaps check)."""
    from umlpy.kernel.vfs.scratch import GUEST_FILTERS
    out = subprocess.run([sys.executable, "-m", "umlpy", "run", "--", "sh", "-c",
                          "grep Seccomp_filters /proc/self/status"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Seccomp_filters:", str(GUEST_FILTERS)]


def test_scratch_of_a_vfork_child_is_its_parents_only_if_it_shares_its_memory(tmp_path):
    """A vfork child running in its parent's memory maps scratch memory
    that is its parent's too, and the parent's next vfork children use it
    (no mapping and sealing of their own).  A child of clone(CLONE_VFORK)
    without CLONE_VM has memory of its own: the guest kernel must not take
    its mapping for the parent's, or the parent, told the address, maps
    writable memory of its own there and gets the next child's checked
    arguments in it (tests/guest/vfork_scratch.c; with the CLONE_VM check
    removed, the path landed there)."""
    exe = tmp_path / "vfork_scratch"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "tests/guest/vfork_scratch.c")],
                   check=True)
    open_up(tmp_path)       # the guest (nobody, as root) runs it
    out = subprocess.run([sys.executable, "-m", "umlpy", "run", "--", str(exe),
                          "/usr/include/stdio.h"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "second child: opened; arguments in the guest's writable memory: no\n"


class CountingServer:
    """A host service on a bound socket that counts the connections it gets."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.listen(128)
        self.peers = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer)
            conn.close()

    def close(self):
        """Stop serving; how many connections came."""
        time.sleep(0.2)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        return len(self.peers)


def tcp_server():
    """A TCP server on the host's loopback that counts connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = CountingServer(sock)
    server.port = sock.getsockname()[1]
    return server


@pytest.mark.parametrize("user", USERS)
def test_scratch_unsealed_connect_reaches_host_service(progs, user):
    """With --net allow=127.0.0.2:80 the guest connects to the allowed
    address; the guest kernel copies the checked sockaddr into scratch
    memory the guest has unsealed, and the guest rewrites it with the
    address of a TCP server the test runs on 127.0.0.1: the server must
    never see a connection.  (The allowed address is a loopback one, so
    the test sends nothing to the network; 10.9.9.9:80 behaves the same.)"""
    server = tcp_server()
    try:
        run = Run([progs.scratch, "net", "127.0.0.2", 80, "127.0.0.1", server.port,
                   SCRATCH_ATTEMPTS], user, options=["--net", "allow=127.0.0.2:80"],
                  timeout=300)
        time.sleep(0.2)
    finally:
        server.close()
    problems = run.problems(done=False)
    if server.peers:
        problems.append(f"the host server got {len(server.peers)} connection(s)")
    assert not problems, run.report(f"scratch connect as {user}", problems)


# ============================================== 3. copy-up with privilege

@pytest.mark.parametrize("technique", COPYUP_TECHNIQUES)
@pytest.mark.parametrize("user", USERS)
def test_copy_up_of_unreadable_host_objects(progs, tmp_path, user, technique):
    """A host file only root may read (0600, owned by root, in a 0755
    directory) and a directory only root may list (0700, owned by root):
    as root the guest is nobody outside, as an ordinary user it is that
    user, so it may read neither.  chown (the guest is root inside),
    utimensat/utimes (touch -c), link and inotify_add_watch make the guest
    kernel copy them to the upper layer; afterwards the guest reads the
    file and the new link, and lists the directory: neither the file's
    content nor the directory's entry may show, and the host objects stay
    as they were.  (A refused call, EACCES or EPERM, is fine.)"""
    if not AS_ROOT:
        pytest.skip("needs root to make files the guest's host user does not own")
    token = uuid.uuid4().hex
    hostroot = tmp_path / "hostroot"
    hostroot.mkdir()
    _open_up(hostroot)
    secret = f"ROOT-ONLY-{token}"
    secret_file = hostroot / "secret"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    private = hostroot / "private"
    private.mkdir()
    entry = f"entry-{token}"
    (private / entry).write_text("x\n")
    os.chmod(private, 0o700)
    before = snapshot(hostroot)
    run = Run([progs.copyup, technique, secret_file, private], user, cwd=tmp_path,
              timeout=120)
    problems = run.problems() + changes(before, snapshot(hostroot), "hostroot")
    seen = run.stdout + run.stderr
    if secret in seen:
        problems.append("the guest read the root-only file")
    if entry in seen:
        problems.append("the guest listed the root-only directory")
    assert not problems, run.report(f"copy-up by {technique} as {user}", problems)
