"""The escape suite: every way out of the sandbox we could think of, tried by
a guest program (tests/escape/progs/escape.c, one mode per technique)
against umlpy in its default mode: as root umlpy makes the guest root
inside a user namespace and nobody (65534) outside; as an ordinary user
(here uid 65534 via setpriv) the guest is that user.

Every test sets up an *arena* on the host, a directory the guest can name:
a marker file with known content (owned by 65534 and mode 0666, so the
host's own permission checks would let the guest write it: only the
sandbox stands in the way), a root-only file, a shared directory for
binds.  After the run:

* the technique ran to its end and tried something: its ``DONE
  attempts=N technique=T`` line has N > 0 (escape.c counts every attempt;
  where the end cannot come, as when the tracer dies, the count printed
  before it);
* the guest printed no ``ESCAPE`` line (what only the guest can see: a host
  secret it read, a call that must never succeed);
* the arena is exactly as before (content, owner, mode, times, flags,
  xattrs, entries);
* no process of the run survives (each run carries a token in its
  environment; /proc is searched for it at once when umlpy has exited,
  and again 3 s later);
* the host process the guest attacked still runs.

What fails in the sandbox raises ``EscapeShown``; what fails in the test
(a hang, a crash, no count, nothing tried) a plain AssertionError.  A
technique that does get out keeps its test, marked
``xfail(strict=True, raises=<an EscapeShown of its own>)`` by
xfail_escape/xfail_granted with a text its problems must show: any other
failure of that test is a failure.
"""
import ctypes
import fcntl
import hashlib
import os
import pty
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import termios
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
FS_IOC_GETFLAGS = 0x80086601
USERS = ["root", "nobody"]

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.syscall.restype = ctypes.c_long


class EscapeShown(AssertionError):
    """The sandbox failed: an ESCAPE line, a host change, a survivor, a host
    process hit.  An expected escape is a subclass made by xfail_escape or
    xfail_granted, raised only when the problems show its text."""
    shows = None


def _expected(kind, reason, shows):
    expected = type(f"Expected{kind}", (EscapeShown,), {"shows": shows})
    return pytest.mark.xfail(strict=True, raises=expected, reason=f"{kind.upper()}: {reason}")


def xfail_escape(reason, shows):
    """A technique that gets out; shows: a text of its problem lines."""
    return _expected("Escape", reason, shows)


def xfail_granted(reason, shows):
    """What an option hands the guest on purpose (docs/SECURITY.md, "the
    user's explicit grants"): pinned, so that it stays what the docs say."""
    return _expected("Granted", reason, shows)


_EXPECTED = [None]


@pytest.fixture(autouse=True)
def _expected_escape(request):
    """The EscapeShown subclass the running test's xfail expects (if any)."""
    mark = request.node.get_closest_marker("xfail")
    raises = mark.kwargs.get("raises") if mark else None
    _EXPECTED[0] = raises if isinstance(raises, type) and issubclass(raises, EscapeShown) \
        else None
    yield
    _EXPECTED[0] = None


# ---------------------------------------------------------------- the kit

_open_up = open_up


class Kit:
    """The guest programs (static) and a tar image that holds the attacker."""

    def __init__(self, where):
        self.dir = Path(where)
        _open_up(self.dir)
        self.escape = self._build("escape", pthread=True)
        self.hostprog = self._build("hostprog")
        self.image = self.dir / "image.tar"
        self._make_image()

    def _build(self, name, pthread=False):
        out = self.dir / name
        cmd = ["gcc", "-static", "-no-pie", "-O2", "-Wall", "-o", str(out), str(PROGS / f"{name}.c")]
        if pthread:
            cmd.append("-pthread")
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            pytest.fail(f"cannot build {name}: {p.stderr}")
        os.chmod(out, 0o755)
        return out

    def _make_image(self):
        write_tiny_image(self.image, {"bin/escape": self.escape.read_bytes()},
                         extra_dirs=("mnt/shared",))
        self.image_digest = digest(self.image)


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build the escape programs")
    return Kit(tmp_path_factory.mktemp("escape-kit"))


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -------------------------------------------------------------- the arena

def _fsflags(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return int.from_bytes(buf[:4], "little")
    except OSError:
        return None
    finally:
        os.close(fd)


def _xattrs(path):
    try:
        return {k: os.getxattr(path, k, follow_symlinks=False)
                for k in os.listxattr(path, follow_symlinks=False)}
    except OSError:
        return None


def _entry(path):
    st = os.lstat(path)
    facts = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
             st.st_ctime_ns, st.st_nlink, st.st_ino, _xattrs(path), _fsflags(path))
    if stat.S_ISREG(st.st_mode):
        facts += (digest(path),)
    return facts


class Arena:
    """A host directory the guest can name, and what it must not change."""

    def __init__(self, base):
        base.mkdir(exist_ok=True)
        self.path = base / "arena"
        self.path.mkdir()
        _open_up(base)
        os.chmod(self.path, 0o777)
        self.token = uuid.uuid4().hex
        self.secret = f"HOST-MARKER-{self.token}"
        self.rootsecret = f"ROOT-ONLY-{self.token}"
        self.marker = self.path / "marker"
        self.marker2 = self.path / "marker2"
        for m in (self.marker, self.marker2):
            m.write_text(self.secret + "\n")
            if AS_ROOT:
                os.chown(m, NOBODY, NOBODY)
            os.chmod(m, 0o666)
        # root's own file; run without root, a file its owner cannot read
        self.rootfile = self.path / "rootfile"
        self.rootfile.write_text(self.rootsecret + "\n")
        os.chmod(self.rootfile, 0o600 if AS_ROOT else 0)
        self.shared = self.path / "shared"
        self.shared.mkdir()
        os.chmod(self.shared, 0o777)
        self.before = None

    def snapshot(self):
        snap = {".": _entry(self.path)}
        for dirpath, dirnames, filenames in os.walk(self.path):
            rel = os.path.relpath(dirpath, self.path)
            if rel == "shared" or rel.startswith("shared/"):
                continue
            for name in dirnames + filenames:
                key = os.path.normpath(os.path.join(rel, name))
                snap[key] = _entry(os.path.join(dirpath, name)) if key != "shared" else None
        return snap

    def freeze(self):
        self.before = self.snapshot()

    def changes(self):
        after = self.snapshot()
        problems = []
        for key in sorted(set(self.before) | set(after)):
            if self.before.get(key) != after.get(key):
                problems.append(f"arena/{key}: {self.before.get(key)} -> {after.get(key)}")
        marker_ino = os.stat(self.marker).st_ino
        for name in os.listdir(self.shared):
            st = os.lstat(self.shared / name)
            if st.st_ino == marker_ino:
                problems.append(f"arena/shared/{name} is a hard link to the marker")
        return problems


@pytest.fixture
def arena(tmp_path):
    return Arena(tmp_path)


@pytest.fixture
def hostproc(arena):
    """A host process (sleep) of uid 65534 (the guest's outside uid when
    umlpy runs as that user), in the arena."""
    argv = (SETPRIV if AS_ROOT else []) + ["sleep", "120"]
    p = subprocess.Popen(argv, cwd=arena.path, stdin=subprocess.DEVNULL)
    yield p
    p.kill()
    p.wait()


# ------------------------------------------------------------- the runner

def _host_ns(pid_host):
    """The host's namespaces the guest must not be in (--pid-host keeps the
    host's pid and mount namespaces by design)."""
    kinds = ("net", "user") if pid_host else ("mnt", "net", "pid", "user")
    if not AS_ROOT:
        kinds = tuple(k for k in kinds if k != "user")
    return {f"ESC_HOSTNS_{k}": os.readlink(f"/proc/self/ns/{k}") for k in kinds}


def _survivors(token):
    needle = f"ESC_TOKEN={token}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _no_survivors(token, when=""):
    """The run's processes alive now (killed, then reported)."""
    left = _survivors(token)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return [f"process {pid} of the sandbox survived it{when}" for pid in left]


LATER = 3.0
_later = []         # (when, token, test): the second look at a run's survivors


def _look_again_later(token):
    _later.append((time.monotonic() + LATER, token,
                   os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]))


def _later_looks(wait):
    """The second looks that are due (wait: all of them, sleeping once until
    the last is due): one per run, at least LATER seconds after it."""
    if wait and _later:
        time.sleep(max(0.0, max(w for w, _, _ in _later) - time.monotonic()))
    problems, now = [], time.monotonic()
    for entry in [e for e in _later if e[0] <= now]:
        _later.remove(entry)
        problems += [f"{entry[2]}: {p}" for p in
                     _no_survivors(entry[1], f" by {LATER:.0f} s (the second look)")]
    return problems


@pytest.fixture(autouse=True, scope="module")
def _survivors_later():
    """The runs' second looks: in each test's teardown those that are due,
    the rest once at the module's end."""
    yield
    problems = _later_looks(wait=True)
    assert not problems, "\n".join(problems)


@pytest.fixture(autouse=True)
def _survivors_later_due(_survivors_later):
    yield
    problems = _later_looks(wait=False)
    assert not problems, "\n".join(problems)


_NOBODY_OK = []


def _nobody_can_run_umlpy():
    """uid 65534 must be able to run this interpreter and import umlpy."""
    if not _NOBODY_OK:
        p = subprocess.run(SETPRIV + [sys.executable, "-c", "import umlpy._native._tracer"],
                           capture_output=True, env={"PYTHONPATH": str(ROOT)}, cwd="/")
        _NOBODY_OK.append(p.returncode == 0)
    return _NOBODY_OK[0]


_COUNT = re.compile(r"^([A-Z]+) attempts=(\d+) technique=(\S+)$")


class Attack:
    def __init__(self, kit, arena, technique, user="root", root="host", options=(), env=None,
                 hostproc=None, pid_host=False):
        if user == "nobody" and not AS_ROOT:
            pytest.skip("the ordinary-user runs need root to switch to uid 65534")
        if user == "nobody" and not _nobody_can_run_umlpy():
            pytest.skip(f"uid 65534 cannot run {sys.executable} with umlpy (install it outside /root)")
        self.kit, self.arena, self.technique, self.user = kit, arena, technique, user
        self.hostproc = hostproc
        opts = list(options)
        if pid_host:
            opts.append("--pid-host")
        if root == "image":
            opts += ["--rootfs", str(kit.image)]
            prog = "/bin/escape"
        else:
            prog = str(kit.escape)
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT),
            "HOME": os.environ.get("HOME", "/root") if user == "root" else "/nonexistent",
            "ESC_TOKEN": arena.token, "ESC_MARKER": str(arena.marker),
            "ESC_MARKER2": str(arena.marker2), "ESC_SECRET": arena.secret,
            "ESC_ARENA": str(arena.path), "ESC_ROOTFILE": str(arena.rootfile),
            "ESC_ROOTSECRET": arena.rootsecret, "ESC_IMAGE": "1" if root == "image" else "0",
            "ESC_PIDHOST": "1" if pid_host else "0", "ESC_PROG": prog,
            **_host_ns(pid_host), **(env or {}),
        }
        if hostproc is not None:
            self.env["ESC_HOSTPID"] = str(hostproc.pid)
        self.argv = [sys.executable, "-m", "umlpy", "run", *opts, "--", prog, technique]
        if user == "nobody":
            self.argv = SETPRIV + self.argv
        arena.freeze()

    def run(self, timeout=60, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        self.timed_out = False
        self.mounts_before = _host_mount_table()
        try:
            p = subprocess.run(self.argv, capture_output=True, env=self.env, cwd=self.arena.path,
                               timeout=timeout, **kw)
        except subprocess.TimeoutExpired as e:      # umlpy was killed (SIGKILL)
            self.timed_out = True
            return self.result(e.stdout or b"", e.stderr or b"", None)
        return self.result(p.stdout, p.stderr, p.returncode)

    def popen(self, **kw):
        kw.setdefault("stdin", subprocess.PIPE)
        return subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env, cwd=self.arena.path, **kw)

    def result(self, stdout, stderr, returncode):
        self.stdout = stdout.decode(errors="replace")
        self.stderr = stderr.decode(errors="replace")
        self.returncode = returncode
        return self

    def attempts(self, word=None):
        """The technique's last count of its attempts (of its `word` lines:
        DONE, or a count printed on the way), None if it printed none."""
        counts = [int(m[2]) for m in map(_COUNT.match, self.stdout.splitlines())
                  if m and m[3] == self.technique and word in (None, m[1])]
        return counts[-1] if counts else None

    def failures(self, done=True, extra=()):
        """What went wrong, as lines: (the sandbox's, the test's)."""
        out = self.stdout.splitlines() + self.stderr.splitlines()
        escapes = [line for line in out if line.startswith("ESCAPE")]
        broken = []
        if getattr(self, "timed_out", False):
            broken.append("the sandbox hung (killed after the timeout)")
        escapes += _no_survivors(self.arena.token)
        _look_again_later(self.arena.token)
        escapes += self.arena.changes()
        before = getattr(self, "mounts_before", None)
        if before is not None and _host_mount_table() != before:
            escapes.append("ESCAPE the host's mount table changed while the guest ran")
        if self.hostproc is not None and self.hostproc.poll() is not None:
            escapes.append(f"the host process died (status {self.hostproc.returncode})")
        count = self.attempts("DONE" if done else None)
        if count is None:
            broken.append(f"the technique did not finish (status {self.returncode})" if done else
                          f"the technique printed no count of its attempts (status "
                          f"{self.returncode})")
        elif count == 0:
            broken.append("the technique tried nothing (attempts=0)")
        if "Traceback" in self.stderr:
            broken.append("the guest kernel raised an exception")
        escapes += list(extra)
        return escapes, broken

    def problems(self, done=True, extra=()):
        """Everything that went wrong, as lines (empty: the technique failed)."""
        escapes, broken = self.failures(done, extra)
        return escapes + broken

    def check(self, done=True, extra=()):
        """Nothing went wrong, or raise: AssertionError when the test could
        not judge (broken), EscapeShown when the sandbox failed (the
        running test's expected subclass if the problems show its text)."""
        escapes, broken = self.failures(done, extra)
        if not escapes and not broken:
            return self
        message = "\n".join([f"{self.technique} as {self.user}:", *broken, *escapes,
                             "--- stdout", self.stdout[-6000:], "--- stderr", self.stderr[-3000:]])
        if broken:
            raise AssertionError(message)
        expected = _EXPECTED[0]
        if expected is not None and any(expected.shows in p for p in escapes):
            raise expected(message)
        raise EscapeShown(message)


def _host_mount_table():
    """The host's mounts as its init sees them (a guest's mount must never
    show there), without their ids and propagation counters."""
    with open("/proc/1/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


def _read_until(p, token, timeout=20):
    """What a running guest printed, up to (and with) the line holding token."""
    out = b""
    deadline = time.monotonic() + timeout
    while token not in out and time.monotonic() < deadline:
        if select.select([p.stdout], [], [], 0.5)[0]:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
    return out


def attack(kit, arena, technique, user="root", root="host", **kw):
    a = Attack(kit, arena, technique, user, root, **kw)
    return a.run().check()


# ================================================= the suite checks itself

def test_a_probe_that_tries_nothing_fails(kit, arena):
    """The `noop` technique tries nothing and finishes: a check that needs
    only its DONE line would pass it.  Every technique counts its attempts
    and the check fails on zero."""
    a = Attack(kit, arena, "noop").run()
    with pytest.raises(AssertionError, match="tried nothing"):
        a.check()


def test_a_process_that_outlives_the_sandbox_briefly_is_seen(arena):
    """The survivors' check looks at once: a process of the run (its token
    in the environment) that lives on for a second after umlpy is gone
    is a survivor, though it is gone by the time a later look comes."""
    p = subprocess.Popen(["sleep", "1"], env={"ESC_TOKEN": arena.token})
    try:
        time.sleep(0.1)                                 # exec'd: its environ has the token
        assert _no_survivors(arena.token) == [f"process {p.pid} of the sandbox survived it"]
    finally:
        p.kill()
        p.wait()



def _judged(arena, technique, stdout, expected=None):
    """What check() raises for this output (None: it passes)."""
    a = Attack.__new__(Attack)
    a.technique, a.user, a.arena, a.hostproc, a.timed_out = technique, "root", arena, None, False
    a.result(stdout.encode(), b"", 0)
    arena.freeze()
    _EXPECTED[0] = expected
    try:
        a.check()
    except AssertionError as e:
        return e
    finally:
        _EXPECTED[0] = None


def test_the_check_tells_escapes_from_breakage(arena):
    """A technique that did not finish, tried nothing or printed another's
    count is the test's failure (AssertionError); an ESCAPE line is the
    sandbox's (EscapeShown), and an expected escape's own class only when
    the problems show its text: a strict xfail pinned to it fails on
    anything else."""
    expected = type("ExpectedEscape", (EscapeShown,), {"shows": "ESCAPE kill(host"})
    done = "DONE attempts=3 technique=kill\n"
    assert _judged(arena, "kill", done) is None
    for out in ("", "DONE\n", "DONE attempts=0 technique=kill\n",
                "DONE attempts=3 technique=noop\n", "HUNTED attempts=3 technique=kill\n"):
        e = _judged(arena, "kill", out, expected)
        assert type(e) is AssertionError, (out, e)
    e = _judged(arena, "kill", "ESCAPE kill(host process 7, SIGKILL): succeeded (0)\n" + done,
                expected)
    assert type(e) is expected
    e = _judged(arena, "kill", "ESCAPE pidfd_open(host process): succeeded (3)\n" + done, expected)
    assert type(e) is EscapeShown
    e = _judged(arena, "kill", "ESCAPE kill(host process 7, SIGKILL): succeeded (0)\n", expected)
    assert type(e) is AssertionError, "no DONE: not the expected escape"

# =================================================================== paths

@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_dotdot_past_the_root(kit, arena, user, root):
    """`..` from /, `/../../..`, openat(".." x64) and openat2 RESOLVE_* with
    `..`: the guest VFS resolves every path and `..` stops at the process's
    root, so nothing above it (the host tree around an image) is reached."""
    attack(kit, arena, "dotdot", user, root)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_chroot_fchdir(kit, arena, user, root):
    """The classic chroot escape: hold an fd to /, chroot into a subdirectory,
    fchdir to the fd, chdir("..") a hundred times, chroot("."); and the
    variant with the cwd left above the new root.  chroot is emulated: the
    guest VFS keeps a root per process and `..` from a cwd outside it still
    stops at the guest's /, never at a host directory."""
    attack(kit, arena, "chroot-fchdir", user, root)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_proc_pid_root(kit, arena, hostproc, user, root):
    """/proc/self/root, /proc/PID/root and cwd of every process (and every
    thread), /proc/PID/fd/N/.., map_files, maps, mountinfo: /proc is the
    guest kernel's procfs, whose magic links resolve in guest terms and
    whose text shows guest paths only."""
    attack(kit, arena, "proc-root", user, root, hostproc=hostproc)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", [u for u in USERS])
def test_proc_maps_paths(kit, arena, user, root):
    """mmap an upper-layer file and the program, then read /proc/self/maps
    and readlink /proc/self/map_files/*: like /proc/PID/fd, these must name
    guest paths, never the sandbox's host directories."""
    attack(kit, arena, "proc-maps", user, root)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_proc_self_cwd_and_bind_edges(kit, arena, user, root):
    """/proc/self/cwd/.., /proc/self/fd/N/.. and fchdir+.. from a bind
    mount whose host parent holds the marker: a bound directory is a mount
    in the guest, its `..` is the guest's /mnt, not the host's parent."""
    attack(kit, arena, "proc-cwd", user, root,
           options=["--bind", f"{arena.shared}:/mnt/shared"])


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_fd_guessing(kit, arena, user, root):
    """Every fd 3..1024 of a fresh guest must be closed; then for every fd
    it opens (dirs, files, O_PATH, /proc, sockets): readlink of
    /proc/self/fd/N and fdinfo, openat(N, "..") x64, fchdir + "..": the
    guest's fds are objects the VFS chose, and `..` from them stays inside."""
    attack(kit, arena, "fd-guess", user, root)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_hard_links_to_host_files(kit, arena, user, root):
    """link(), linkat(AT_EMPTY_PATH) of a read-only fd to a host file,
    linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW), into the upper layer and
    into a writable bind, then writes through the new name: links are made
    in the upper layer after a copy-up, and across the bind it is EXDEV."""
    attack(kit, arena, "hardlink", user, root,
           options=["--bind", f"{arena.shared}:/mnt/shared"])


@pytest.mark.parametrize("user", USERS)
def test_writes_through_a_read_only_host_fd(kit, arena, user):
    """A host file opened read-only is the host's own file: write, ftruncate,
    fallocate, shared writable mmap, splice and copy_file_range must fail
    (the fd's mode); reopening /proc/self/fd/N (or an O_PATH fd) for
    writing, fchmod on it and truncate/chmod/utimes/setxattr by path land in
    the upper layer (they are emulated, the lower file is copied up)."""
    attack(kit, arena, "lower-fd", user)


@pytest.mark.parametrize("user", USERS)
def test_stale_read_only_fd_after_copy_up(kit, arena, user):
    """Open the host's marker read-only, chmod it by path (the guest kernel
    copies it up), then fchmod/fsetxattr/fremovexattr/futimens/fchown
    through the old fd: the fd still refers to the lower (host) inode, so
    the guest kernel must not let these calls through on it."""
    attack(kit, arena, "stale-lower-fd", user)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_own_program_is_not_writable(kit, arena, user, root):
    """Open /proc/self/exe or the program's path for writing, truncate,
    unlink or rename over it: the program is a lower (or image) file, the
    change goes to the upper layer."""
    a = Attack(kit, arena, "self-exe", user, root).run()
    before = (kit.image_digest, digest(kit.escape))
    after = (digest(kit.image), digest(kit.escape))
    a.check(extra=[] if before == after else ["the program or the image changed on the host"])


@pytest.mark.parametrize("user", USERS)
def test_path_toctou(kit, arena, user):
    """A thread flips a path between an allowed file and the root-only host
    file (or, in an image, the host marker) while another opens it: the
    guest kernel copies the checked path into its read-only scratch memory,
    the host never re-reads the guest's buffer."""
    attack(kit, arena, "path-toctou", user, "image")
    attack(kit, arena, "path-toctou", user, "host")


@pytest.mark.parametrize("user", USERS)
def test_vfork_exec_race(kit, arena, user):
    """vfork + execve of a path another thread flips between the image's
    program and a host-only program: execve resolves the guest path once
    and runs the object it chose."""
    hostprog = arena.path / "hostprog"
    shutil.copy(kit.hostprog, hostprog)
    os.chmod(hostprog, 0o755)
    attack(kit, arena, "exec-race", user, "image", env={"ESC_HOSTPROG": str(hostprog)})


# ============================================================== processes

@pytest.mark.parametrize("pidns", ["pidns", "pid-host"])
@pytest.mark.parametrize("user", USERS)
def test_ptrace_the_tracer_and_host(kit, arena, hostproc, user, pidns):
    """PTRACE_ATTACH/SEIZE/PEEKDATA/INTERRUPT on a host process and on the
    parent (the tracer itself under --pid-host): ptrace is emulated, EPERM
    for nested tracing and ESRCH for processes outside the sandbox."""
    attack(kit, arena, "ptrace", user, hostproc=hostproc, pid_host=pidns == "pid-host")


@pytest.mark.parametrize("user", USERS)
def test_ptrace_traceme_and_detach(kit, arena, user):
    """PTRACE_TRACEME, PTRACE_DETACH of itself and of its parent, ptrace of
    its own child: every guest process stays traced by umlpy (ptrace is
    emulated, EPERM), so its paths still go through the guest VFS."""
    attack(kit, arena, "ptrace-self", user)


@pytest.mark.parametrize("pidns", ["pidns", "pid-host"])
@pytest.mark.parametrize("user", USERS)
def test_process_vm_writev(kit, arena, hostproc, user, pidns):
    """process_vm_readv/writev and /proc/PID/mem on a host process and the
    tracer: outside the pid namespace they do not exist (ESRCH); with
    --pid-host the tracer is non-dumpable and the guest another user or
    without ptrace access."""
    attack(kit, arena, "process-vm", user, hostproc=hostproc, pid_host=pidns == "pid-host")


def _granted_to_nobody(reason, shows):
    """(user, pidns) pairs where --pid-host grants what reason says: only
    when umlpy runs as uid 65534, whose guest is that uid outside too.
    Run as root, the guest's outside ids are a block no host process has
    (kernel/identity.py), so the host process (uid 65534) is not its."""
    return [(user, pidns) if (user, pidns) != ("nobody", "pid-host") else
            pytest.param(user, pidns, marks=xfail_granted(reason, shows=shows))
            for user in USERS for pidns in ("pidns", "pid-host")]


@pytest.mark.parametrize("user,pidns", _granted_to_nobody(
    "with --pid-host the guest can SIGKILL any host process of its outside uid",
    shows="ESCAPE kill(host process"))
def test_kill_host_processes(kit, arena, hostproc, user, pidns):
    """kill/tkill/tgkill/rt_sigqueueinfo(SIGKILL) of a host process (of uid
    65534: the guest's own outside uid when umlpy runs as that user), and a
    scan of every pid with kill(pid, 0): in the sandbox's pid namespace
    host processes do not exist."""
    attack(kit, arena, "kill", user, hostproc=hostproc, pid_host=pidns == "pid-host")


@pytest.mark.parametrize("user", USERS)
def test_kill_minus_one(kit, arena, hostproc, user):
    """kill(-1, SIGKILL) from the sandbox's init and from a child (only when
    the program is pid 1): -1 means every process of the pid namespace
    but the caller and its init."""
    Attack(kit, arena, "kill-all", user, hostproc=hostproc).run().check()


def _pidfd_grants():
    params = _granted_to_nobody(
        "with --pid-host pidfd_open + pidfd_send_signal/pidfd_getfd reach host processes "
        "of the guest's outside uid", shows="ESCAPE pidfd_open(host process): succeeded")
    # as root the host process is no process of the guest's ids: only the
    # pidfd itself is had (a pid the shared pid namespace shows anyway)
    return [pytest.param("root", "pid-host", marks=xfail_granted(
        "with --pid-host pidfd_open of a host process succeeds, though its signals and fds "
        "stay refused", shows="ESCAPE pidfd_open(host process): succeeded"))
        if p == ("root", "pid-host") else p for p in params]


@pytest.mark.parametrize("user,pidns", _pidfd_grants())
def test_pidfd(kit, arena, hostproc, user, pidns):
    """pidfd_open of host processes and the tracer, pidfd_getfd of their fds,
    pidfd_send_signal, and pidfd_open of every pid: outside the sandbox's pid
    namespace nothing exists; the tracer is non-dumpable."""
    attack(kit, arena, "pidfd", user, hostproc=hostproc, pid_host=pidns == "pid-host")


def _umlpy_and_helpers(pid):
    """umlpy's process and its children of its own (the opener), not the
    guest's processes (traced)."""
    found = {pid: "umlpy"}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    with open(f"/proc/{child}/status") as st:
                        if "TracerPid:\t0\n" in st.read():
                            found[int(child)] = "umlpy's helper (its opener)"
    except OSError:
        pass
    return found


def _watch_for_stops(p, stopped):
    """While umlpy runs: note each time it or a helper of its is found
    stopped, and resume it."""
    while p.poll() is None:
        for pid, who in _umlpy_and_helpers(p.pid).items():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state in "Tt":
                stopped.append((who, pid))
                time.sleep(0.2)
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass
        time.sleep(0.01)


def _tracer_variants():
    # With --pid-host umlpy and its opener are in the guest's pid space
    # (and of its uid, run by an ordinary user, or carrying its ids): the
    # guest finds them, and its signals to them fail with EPERM (a
    # TABLE.when("pid_host") rule of syscalls/signal.py).  Before it, both
    # were stopped by the guest's SIGSTOP and the sandbox hung.
    for pidns in ("pidns", "pid-host"):
        for user in USERS:
            yield pytest.param(user, pidns, id=f"{user}-{pidns}")


@pytest.mark.parametrize("user,pidns", _tracer_variants())
def test_guest_kills_its_tracer(kit, arena, user, pidns):
    """The tracer-hunt: while three children keep writing the marker, the
    guest looks for umlpy through /proc (the TracerPid of itself and its
    children, its parent, its ancestors up to one running umlpy, NSpid
    entries), by guessing pids (kill(pid, 0) and pidfd_open around its own
    pid, its parent's and the low pids), and by umlpy's host pid, which the
    test writes on its stdin; each suspect gets SIGSTOP, then SIGKILL, by
    kill, tgkill and a pidfd.  The test watches umlpy's state meanwhile
    (stopped: a failure, and the test sends SIGCONT).

    * pid namespace: the tracer is invisible (no suspect: its TracerPid
      is 0, its parent 0, no process of /proc runs umlpy) and its host pid
      names nothing (the signals get ESRCH); the run ends normally.
    * --pid-host as root: the guest finds umlpy (its parent and TracerPid)
      but is nobody outside: every signal gets EPERM; the run ends
      normally.
    * --pid-host as an ordinary user: the guest finds umlpy, running as its
      own outside uid.  SIGSTOP must not stop it (it does: pinned below);
      SIGKILL may kill it: then PTRACE_O_EXITKILL must leave no guest
      process alive, and nothing has changed on the host.
    """
    pid_host = pidns == "pid-host"
    # umlpy runs as the guest's outside uid: its signals can reach umlpy
    reachable = pid_host and (user == "nobody" or not AS_ROOT)
    a = Attack(kit, arena, "kill-tracer", user, pid_host=pid_host)
    p = a.popen()
    stopped = []
    watcher = threading.Thread(target=_watch_for_stops, args=(p, stopped), daemon=True)
    watcher.start()
    try:
        p.stdin.write(f"{p.pid}\n".encode())
        p.stdin.flush()
        out, err = p.communicate(timeout=60)
        a.result(out, err, p.returncode)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        a.timed_out = True
        a.result(out, err, None)
    watcher.join()
    killed = a.returncode == -9
    lines = a.stdout.splitlines()
    extra = [f"{who} was stopped by the guest (pid {pid}; the test sent SIGCONT)"
             for who, pid in stopped]

    # what the hunt must have tried and found (else the test, not the
    # sandbox, failed)
    missing = []

    def need(text):
        if not any(line.startswith(text) for line in lines):
            missing.append(text)
    need(f"note the tracer's host pid (told): {p.pid}")
    need("note /proc: ")
    need("note pid guessing: ")
    if not pid_host:
        # invisible: no TracerPid, no parent, nothing running umlpy, its
        # host pid names nothing
        need("note itself: pid 1, parent 0, TracerPid 0")
        need("note /proc: 0 command lines name umlpy")
        need("note suspects: 0")
        need("note no tracer visible")
        need("note the tracer's host pid names nothing here")
        need("ok kill(the tracer's host pid, SIGSTOP): ESRCH")
        need("ok kill(the tracer's host pid, SIGKILL): ESRCH")
    else:
        # found: its parent and TracerPid, by /proc and by guessing
        need(f"note suspect {p.pid}: its TracerPid")
        for what in ("kill", "tgkill", "pidfd_send_signal"):
            for sig in ("SIGSTOP", "SIGKILL") if not killed else ("SIGSTOP",):
                need(f"note {what}(suspect {p.pid}, {sig})")
        # umlpy's own /proc entry is hidden from the guest; its opener is not
        need(f"note /proc/{p.pid} (its TracerPid): not readable")
        need("note suspect ")
        if not reachable:
            need(f"note kill(suspect {p.pid}, SIGSTOP): EPERM")
            need(f"note kill(suspect {p.pid}, SIGKILL): EPERM")
    hunted = a.attempts("HUNTED")
    assert not missing and hunted and hunted > 200, \
        "the hunt did not report: " + "; ".join(missing) + "\n" + a.stdout[-3000:]
    if killed and not reachable:
        extra.append("umlpy was killed where the guest cannot reach it")
    if not killed and a.returncode != 0:
        extra.append(f"umlpy ended with {a.returncode}, not the guest's status 0")
    # killed: no DONE, but the count printed before the SIGKILLs
    a.check(done=not killed, extra=extra)


@pytest.mark.parametrize("pidns", ["pidns", "pid-host"])
@pytest.mark.parametrize("user", USERS)
def test_clone_untraced(kit, arena, user, pidns):
    """clone(CLONE_UNTRACED), clone(CLONE_UNTRACED|CLONE_VM|CLONE_VFORK) and
    clone3: clone is guarded and the flag is stripped before the call runs,
    clone3 is ENOSYS; the children stay traced and die with the sandbox."""
    attack(kit, arena, "clone-untraced", user, pid_host=pidns == "pid-host")


@pytest.mark.parametrize("pidns", ["pidns", "pid-host"])
@pytest.mark.parametrize("user", USERS)
def test_tracer_proc_entries(kit, arena, hostproc, user, pidns):
    """/proc/<tracer>/fd/N, root, cwd, environ, mem and the same of a host
    process: with a pid namespace they do not exist; with --pid-host the
    tracer is non-dumpable and a host process's root/cwd resolve as guest
    paths (the host tree's, read-only below the guest)."""
    attack(kit, arena, "tracer-proc", user, hostproc=hostproc, pid_host=pidns == "pid-host")


# ============================================================ namespaces

@pytest.mark.parametrize("user", USERS)
def test_mount_and_pivot_root(kit, arena, user):
    """mount, umount2, pivot_root and the new mount API (open_tree, fsopen,
    fspick, move_mount, mount_setattr), as the guest and again after
    unshare(CLONE_NEWUSER|CLONE_NEWNS): the seccomp filter answers EPERM."""
    attack(kit, arena, "mount", user)


@pytest.mark.parametrize("user", USERS)
def test_unshare(kit, arena, user):
    """unshare of every namespace (user, mount, pid, net, ipc, uts, cgroup,
    time) then mounts, uid maps, sethostname and the marker: new namespaces
    are nested inside the sandbox's, the mount calls stay denied, and the
    processes (a nested pid 1 too) stay traced."""
    attack(kit, arena, "unshare", user)


@pytest.mark.parametrize("pidns", ["pidns", "pid-host"])
@pytest.mark.parametrize("user", USERS)
def test_setns(kit, arena, hostproc, user, pidns):
    """setns to /proc/1/ns/*, /proc/self/ns/*, a pidfd, and (with --pid-host)
    the namespaces of a host process: the guest's /proc has only its own
    namespaces; entering the host's needs capabilities in the host's user
    namespace."""
    attack(kit, arena, "setns", user, hostproc=hostproc, pid_host=pidns == "pid-host")


# ===================================================== kernel interfaces

@pytest.mark.parametrize("user", USERS)
def test_bpf(kit, arena, user):
    """bpf(MAP_CREATE/PROG_LOAD/OBJ_GET), also through x32: denied (EPERM)
    by the filter."""
    attack(kit, arena, "bpf", user)


@pytest.mark.parametrize("user", USERS)
def test_perf_event_open(kit, arena, hostproc, user):
    """perf_event_open system-wide, on a host process, on tracepoints and
    counting the kernel: the host kernel refuses (perf_event_paranoid, the
    guest has no host capability, host pids do not exist)."""
    attack(kit, arena, "perf", user, hostproc=hostproc)


@pytest.mark.parametrize("user", USERS)
def test_userfaultfd(kit, arena, user):
    """userfaultfd, and paths/addresses placed in a page that faults into
    it, to stall the guest kernel while it reads guest memory: only
    user-mode faults are handled, the tracer's reads fail at once (EFAULT)."""
    attack(kit, arena, "userfaultfd", user)


@pytest.fixture(scope="session")
def host_key():
    """A key in a session keyring of the test process (inherited by umlpy)."""
    desc = f"umlpy-escape-{uuid.uuid4().hex}"
    secret = f"KEY-SECRET-{uuid.uuid4().hex}"
    if libc.syscall(250, 1, b"umlpy-escape-suite") < 0:          # KEYCTL_JOIN_SESSION_KEYRING
        pytest.skip("cannot join a session keyring")
    key = libc.syscall(248, b"user", desc.encode(), secret.encode(), len(secret), -3)
    if key < 0:
        pytest.skip("cannot add a key")
    return key, desc, secret


def _read_key(key):
    buf = ctypes.create_string_buffer(512)
    n = libc.syscall(250, 11, key, buf, 512)                       # KEYCTL_READ
    return buf.raw[:n] if n >= 0 else None


@pytest.mark.parametrize("user", USERS)
def test_keyctl_host_keys(kit, arena, host_key, user):
    """keyctl READ/SEARCH/UPDATE/SETPERM of the keys in umlpy's session
    keyring, request_key, /proc/keys: the guest must not possess the
    host's keyrings."""
    key, desc, secret = host_key
    a = Attack(kit, arena, "keyctl", user,
               env={"ESC_KEYDESC": desc, "ESC_KEYSECRET": secret}).run()
    changed = _read_key(key) != secret.encode()
    a.check(extra=["the host's key changed"] if changed else [])


@pytest.mark.parametrize("user", USERS)
def test_scratch_memory(kit, arena, user):
    """The guest kernel's 4 MiB read-only sealed scratch mapping: mprotect,
    pkey_mprotect, munmap, mmap MAP_FIXED, mremap (and mremap of another
    mapping onto it), madvise, shmat SHM_REMAP, process_vm_writev on
    itself and from a child, /proc/self/mem, UFFDIO_COPY into an untouched
    page, process_madvise: mseal refuses every change, /proc/*/mem is read
    only, and the guest's data never appears in it."""
    attack(kit, arena, "scratch", user)


@pytest.mark.parametrize("user", USERS)
def test_scratch_memory_userfaultfd(kit, arena, user):
    """userfaultfd(UFFD_USER_MODE_ONLY) registered on the scratch mapping,
    then UFFDIO_COPY into a page the guest kernel has not written yet: the
    scratch memory must hold only what the guest kernel wrote."""
    attack(kit, arena, "scratch-uffd", user)


@pytest.mark.parametrize("user", USERS)
def test_scratch_race(kit, arena, user):
    """The race the read-only scratch memory exists to prevent, made possible
    again: register the scratch mapping with userfaultfd, leave the second
    page of the free slots missing, and call symlink() with a 4094-byte
    target so that the host path of the link starts on the slot's last
    byte; a thread fills the next page with a host path (the arena's) as
    soon as the guest kernel's write stops short.  The guest kernel must
    treat a short write as a failure (and the mapping should have no missing
    pages)."""
    attack(kit, arena, "scratch-race", user)


# ======================================================== seccomp itself

@pytest.mark.parametrize("user", USERS)
def test_own_seccomp_filters(kit, arena, user):
    """seccomp()/prctl(PR_SET_SECCOMP) filters of the guest's own: allow-all
    and RET_TRACE ones cannot loosen the sandbox's filter (the strictest
    action wins), and ERRNO/TRAP/KILL on the calls the guest kernel injects
    (openat2, mmap, mseal...) only hurt the guest itself."""
    attack(kit, arena, "seccomp-filter", user)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_seccomp_user_notif_bypass(kit, arena, user, root):
    """seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) with a filter that returns
    SECCOMP_RET_USER_NOTIF for open/openat/mkdir/ioctl, answered by a thread
    of the guest with SECCOMP_USER_NOTIF_FLAG_CONTINUE: USER_NOTIF has
    precedence over TRACE, so the sandbox's stop never happens unless the
    sandbox refuses the listener."""
    attack(kit, arena, "seccomp-notif", user, root)


@pytest.mark.parametrize("user", USERS)
def test_x32_syscalls(kit, arena, hostproc, user):
    """The x32 ABI (nr | 0x40000000) for open/openat/creat/chmod/mount/
    ptrace/execve/...: the filter answers ENOSYS to every x32 number."""
    attack(kit, arena, "x32", user, hostproc=hostproc)


@pytest.mark.parametrize("user", USERS)
def test_int80_i386_syscalls(kit, arena, hostproc, user):
    """int $0x80 from 64-bit code and from 32-bit compat code (a far jump
    to the GDT's 32-bit segment): the i386 ABI gets ENOSYS from the filter
    (it checks the audit arch)."""
    attack(kit, arena, "int80", user, hostproc=hostproc)


@pytest.mark.parametrize("user", USERS)
def test_modify_ldt_compat_code(kit, arena, hostproc, user):
    """modify_ldt makes a 32-bit code segment of the guest's own, which it
    jumps to before int $0x80: still the i386 ABI, still ENOSYS."""
    attack(kit, arena, "modify-ldt", user, hostproc=hostproc)


@pytest.mark.parametrize("user", USERS)
def test_unknown_syscall_numbers(kit, arena, user):
    """Numbers in the table's gaps, beyond it (>= 470, > 1000), -1: ENOSYS
    from the filter or the host kernel.  openat's number with high bits
    above bit 31 set is openat to Linux (it reads the number as an int):
    the guest kernel makes it, and the host's marker (opened O_TRUNC) must
    stay intact.  (uretprobe/uprobe, 335/336, skip seccomp in Linux
    itself; outside a uprobe trampoline they only kill or fail the
    caller.)"""
    attack(kit, arena, "bad-nr", user)


@pytest.mark.parametrize("user", USERS)
def test_setuid_and_file_capabilities(kit, arena, user):
    """execve of a setuid-root copy of the attacker, of one with file
    capabilities (cap_dac_override, cap_dac_read_search +ep), and of
    passwd/su/newgrp: NO_NEW_PRIVS is set before the guest starts, so exec
    grants nothing, and the root-only host file stays unreadable."""
    if not AS_ROOT:
        pytest.skip("a setuid-root program needs root to make")
    suid = arena.path / "suidprog"
    shutil.copy(kit.escape, suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    cap = arena.path / "capprog"
    shutil.copy(kit.escape, cap)
    os.chmod(cap, 0o755)
    # vfs_cap_data v2: magic|effective, permitted = DAC_OVERRIDE|DAC_READ_SEARCH
    caps = (0x02000001).to_bytes(4, "little") + (6).to_bytes(4, "little") + bytes(12)
    try:
        os.setxattr(cap, "security.capability", caps)
    except OSError:
        pass
    attack(kit, arena, "setuid", user,
           env={"ESC_SUIDPROG": str(suid), "ESC_CAPPROG": str(cap)})


@pytest.mark.parametrize("how", ["exhaust", "rlimit"])
@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_no_room_for_scratch_memory(kit, arena, user, root, how):
    """Before any call the guest kernel rewrites, fill the whole address
    space with PROT_NONE mappings (or set RLIMIT_AS below the scratch size),
    then open/mkdir host paths: the guest kernel cannot map its scratch
    memory, and must fail the call (ENOMEM) instead of running it as the
    guest made it."""
    attack(kit, arena, f"scratch-{how}", user, root)


@pytest.mark.parametrize("user", USERS)
def test_setuid_file_in_the_upper_layer(kit, arena, user):
    """The guest copies itself to /tmp and makes the copy setuid/setgid; the
    test then runs that host file (in /tmp/umlpy-UID/*/upper/tmp) as another
    host user (uid 4242): it must not run with the guest's outside identity
    (the upper layer should be out of other users' reach, or nosuid)."""
    if not AS_ROOT:
        pytest.skip("running a file as another user needs root")
    name = f"suid-{arena.token}"
    a = Attack(kit, arena, "upper-setuid", user, env={"ESC_SUIDNAME": name})
    p = a.popen()
    extra = []
    try:
        line = _read_until(p, b"READY")
        found = [f for f in Path("/tmp").glob(f"umlpy-*/upper/tmp/{name}")] + \
            [f for f in Path("/tmp").glob(f"umlpy-*/*/upper/tmp/{name}")]
        if b"READY" not in line:
            extra.append("the guest did not make its copy")
        elif not found:
            extra.append("the guest's copy was not found on the host: nothing was tried")
        for f in found:
            st = f.stat()
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                # through env, as a user's shell would: setpriv execs its
                # program before the search permission of the path counts
                r = subprocess.run(["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups",
                                    "/usr/bin/env", str(f), "whoami"], capture_output=True, text=True, timeout=30)
                ran = r.returncode == 0 and "euid" in r.stdout
                if ran and ("euid 4242" not in r.stdout or "egid 4242" not in r.stdout):
                    extra.append(f"uid 4242 ran {f} (mode {st.st_mode & 0o7777:o}, owner "
                                 f"{st.st_uid}) as: {r.stdout.strip()} {r.stderr.strip()}")
    finally:
        out, err = p.communicate(timeout=30)               # closes the guest's stdin
    a.result(line + out, err, p.returncode)
    a.check(extra=extra)


@pytest.mark.parametrize("user", USERS)
def test_host_dev_shm(kit, arena, user):
    """A file in the host's /dev/shm (mode 0666, owned by 65534): the guest's
    /dev/shm is a tmpfs of the sandbox's own."""
    name = f"umlpy-escape-{arena.token}"
    shm = Path("/dev/shm") / name
    shm.write_text(arena.secret)
    os.chown(shm, NOBODY, NOBODY)
    os.chmod(shm, 0o666)
    try:
        a = Attack(kit, arena, "dev-shm", user, env={"ESC_SHMNAME": name}).run()
        changed = shm.read_text() != arena.secret
    finally:
        shm.unlink()
    a.check(extra=["the host's /dev/shm file changed"] if changed else [])


@pytest.mark.parametrize("user", USERS)
def test_io_uring(kit, arena, user):
    """io_uring_setup (also SQPOLL), io_uring_enter/register: ENOSYS, its
    operations would bypass the syscall stops."""
    attack(kit, arena, "io-uring", user)


def _handle_hex(path):
    class FileHandle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                    ("f_handle", ctypes.c_ubyte * 128)]
    fh = FileHandle(handle_bytes=128)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, str(path).encode(), ctypes.byref(fh),
                              ctypes.byref(mount_id), 0) != 0:
        return ""
    return f"{fh.handle_type & 0xffffffff:08x}:" + bytes(fh.f_handle[:fh.handle_bytes]).hex()


@pytest.mark.parametrize("user", USERS)
def test_file_handles(kit, arena, user):
    """name_to_handle_at, and open_by_handle_at with the marker's real host
    handle (computed by the test): handles name host inodes, both calls are
    denied by the filter (and need host CAP_DAC_READ_SEARCH anyway)."""
    attack(kit, arena, "handles", user, env={"ESC_HANDLE": _handle_hex(arena.marker)})


# ======================================================= terminal, network

@pytest.mark.parametrize("user", USERS)
def test_tiocsti_injection(kit, arena, user):
    """TIOCSTI on /dev/tty and on fds 0-2 (the user's terminal, a pty here,
    as the sandbox's controlling terminal), TIOCLINUX, TIOCCONS, stealing
    the terminal, vhangup: ioctl is guarded, TIOCSTI/TIOCLINUX get EIO; the
    terminal's input queue stays empty."""
    master, slave = pty.openpty()

    def controlling_tty():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    a = Attack(kit, arena, "tiocsti", user)
    try:
        a.run(stdin=slave, preexec_fn=controlling_tty)
        mode = termios.tcgetattr(slave)
        mode[3] &= ~termios.ICANON
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(slave, termios.TCSANOW, mode)
        pending = b""
        os.set_blocking(slave, False)
        try:
            pending = os.read(slave, 4096)
        except (BlockingIOError, OSError):
            pass
        echoed = b""
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            echoed += chunk
    finally:
        os.close(master)
        os.close(slave)
    extra = []
    if b"INJECTED" in pending or b"INJECTED" in echoed:
        extra.append(f"the terminal received injected input: {pending!r} {echoed!r}")
    a.check(extra=extra)


# "The shell": a session of its own on the pty, umlpy run in its foreground
# group with the terminal as stdin, its output in files.  It reports the
# terminal's state before and after umlpy, as JSON.
TTY_DRIVER = r"""
import fcntl, json, os, signal, struct, subprocess, sys, termios, time
slave, how, report = sys.argv[1:4]
argv = sys.argv[4:]
os.setsid()
fd = os.open(slave, os.O_RDWR)          # our controlling terminal
TIOCGEXCL = 0x80045440
def state():
    excl = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, bytes(4)))[0]
    ws = struct.unpack("4H", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return {"termios": repr(termios.tcgetattr(fd)), "winsize": list(ws), "exclusive": excl,
            "ours": os.tcgetpgrp(fd) == os.getpgrp()}
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("4H", 24, 80, 0, 0))
before = state()
out, err = open(report + ".out", "w+b"), open(report + ".err", "w+b")
p = subprocess.Popen(argv, stdin=fd, stdout=out, stderr=err)
if how.startswith("SIG"):
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        with open(report + ".out", "rb") as f:
            if b"MESSED" in f.read():
                break
        time.sleep(0.05)
    p.send_signal(getattr(signal, how))
try:
    rc = p.wait(60)
except subprocess.TimeoutExpired:
    p.kill()
    rc = p.wait()
with open(report, "w") as f:
    json.dump({"before": before, "after": state(), "rc": rc}, f)
"""


@pytest.mark.parametrize("end", ["exit", "signal", "SIGTERM", "SIGHUP", "SIGINT"])
@pytest.mark.parametrize("user", USERS)
def test_terminal_left_as_found(kit, arena, user, end, tmp_path):
    """A guest on the user's terminal (a pty here) makes it exclusive
    (TIOCEXCL: the user's next open of it fails with EBUSY), turns echo and
    canonical mode off, shrinks the window and gives the foreground to a
    group of its own that exits.  Whether it exits, dies of a signal, or
    umlpy is sent SIGTERM, SIGHUP or SIGINT, umlpy restores what it saved
    at start: the terminal is as the user's shell left it."""
    a = Attack(kit, arena, "tty-mess", user,
               env={"ESC_TTY_END": end if end in ("exit", "signal") else "wait"})
    master, slave = pty.openpty()
    report = tmp_path / "tty.json"
    try:
        p = subprocess.run([sys.executable, "-c", TTY_DRIVER, os.ttyname(slave), end, str(report),
                            *a.argv], env=a.env, cwd=arena.path, timeout=120,
                           capture_output=True)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    import json
    got = json.loads(report.read_text())
    a.result(Path(str(report) + ".out").read_bytes(), Path(str(report) + ".err").read_bytes(),
             got["rc"])
    extra = [f"the terminal's {key} was {got['before'][key]!r}, left {got['after'][key]!r}"
             for key in got["before"] if got["before"][key] != got["after"][key]]
    if "MESSED" not in a.stdout:
        extra.append("the guest did not get to change the terminal")
    a.check(done=end == "exit", extra=extra)


@pytest.mark.parametrize("user", USERS)
def test_unix_socket_of_the_host(kit, arena, user):
    """connect/sendto/sendmsg/sendmmsg to a stream and a datagram AF_UNIX
    socket the test listens on in the arena (by path, via /proc/self/root,
    via a symlink), and bind at a host path: socket paths are resolved by
    the guest VFS and host sockets of the lower tree refuse."""
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(str(arena.path / "host.sock"))
    stream.listen(8)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(arena.path / "host-dg.sock"))
    for name in ("host.sock", "host-dg.sock"):
        os.chmod(arena.path / name, 0o777)
    try:
        a = Attack(kit, arena, "unix-path", user, env={
            "ESC_UNIX": str(arena.path / "host.sock"),
            "ESC_UNIXDG": str(arena.path / "host-dg.sock")}).run()
        extra = _nothing_arrived(stream, dgram)
    finally:
        stream.close()
        dgram.close()
    a.check(extra=extra)


def _nothing_arrived(stream=None, dgram=None):
    extra = []
    if stream is not None:
        stream.setblocking(False)
        try:
            conn, _ = stream.accept()
            conn.close()
            extra.append("the host's listening socket got a connection from the guest")
        except BlockingIOError:
            pass
    if dgram is not None:
        dgram.setblocking(False)
        try:
            data = dgram.recv(64)
            extra.append(f"the host's datagram socket received {data!r}")
        except BlockingIOError:
            pass
    return extra


@pytest.mark.parametrize("net", ["default", "loopback", pytest.param("host", marks=xfail_granted(
    "with --net host (documented 'unfiltered') abstract AF_UNIX names get no prefix: the "
    "guest connects to the host's abstract sockets (X11's @/tmp/.X11-unix/X0, D-Bus...)",
    shows="ESCAPE connect host abstract socket: succeeded"))])
@pytest.mark.parametrize("user", USERS)
def test_abstract_unix_socket_of_the_host(kit, arena, user, net):
    """connect/sendto to an abstract AF_UNIX name the host listens on:
    by default the sandbox has a network namespace of its own (abstract
    names are per namespace); sharing the host's network (--net loopback)
    the guest's names get a per-sandbox prefix."""
    name = f"umlpy-escape-{arena.token}"
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind("\0" + name)
    stream.listen(8)
    try:
        options = ["--net", net] if net != "default" else []
        a = Attack(kit, arena, "unix-abstract", user, options=options,
                   env={"ESC_ABSTRACT": name}).run()
        extra = _nothing_arrived(stream)
    finally:
        stream.close()
    a.check(extra=extra)


def _host_vsock():
    """A vsock socket of the host's, bound to a port (None: no vsock here)."""
    family = getattr(socket, "AF_VSOCK", None)
    if family is None:
        return None
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        s.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    except OSError:
        s.close()
        return None
    return s


@pytest.mark.parametrize("net", ["default", "loopback", pytest.param("host", marks=xfail_granted(
    "with --net host (documented 'unfiltered') the guest has the machine's vsock, as any "
    "host process", shows="ESCAPE socket(AF_VSOCK) succeeded"))])
@pytest.mark.parametrize("user", USERS)
def test_vsock(kit, arena, user, net):
    """socket(AF_VSOCK) and socketpair(AF_VSOCK): vsock has one port space
    per machine, not per network namespace, and reaches the hypervisor's
    side; outside --net host the family does not exist (EAFNOSUPPORT, as
    on a kernel without vsock).  The host holds a port the guest tries to
    bind (EADDRINUSE would show the shared port space)."""
    host = _host_vsock()
    if host is None and net == "host":
        pytest.skip("this host has no vsock")
    try:
        port = host.getsockname()[1] if host is not None else 0
        options = ["--net", net] if net != "default" else []
        a = Attack(kit, arena, "vsock", user, options=options,
                   env={"ESC_VSOCK_PORT": str(port)}).run()
    finally:
        if host is not None:
            host.close()
    extra = [line for line in a.stdout.splitlines() if line.startswith("WRONG")]
    a.check(extra=extra)


def _host_ip():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    except OSError:
        return ""
    finally:
        s.close()


@pytest.mark.parametrize("user", USERS)
def test_tcp_to_a_host_server(kit, arena, user):
    """TCP connect and UDP sendto to servers of the host on 127.0.0.1, ::1
    and the host's address: the default --net none gives the sandbox its
    own network namespace (its own loopback, no route out)."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(8)
    port = tcp.getsockname()[1]
    tcp6 = None
    try:
        tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        tcp6.bind(("::1", port))
        tcp6.listen(8)
    except OSError:
        tcp6 = None
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    try:
        a = Attack(kit, arena, "tcp", user, env={
            "ESC_TCP": str(port), "ESC_UDP": str(udp.getsockname()[1]),
            "ESC_HOSTIP": _host_ip()}).run()
        extra = _nothing_arrived(tcp, udp) + (_nothing_arrived(tcp6) if tcp6 else [])
    finally:
        tcp.close()
        udp.close()
        if tcp6:
            tcp6.close()
    a.check(extra=extra)


# ============================================================ host state

def _read(path):
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


HOST_STATE = ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname",
              "/proc/sys/kernel/modprobe", "/proc/sys/kernel/sysrq",
              "/proc/sys/vm/overcommit_memory", "/proc/sys/fs/suid_dumpable",
              "/sys/kernel/mm/transparent_hugepage/enabled"]


def _host_state():
    return {p: _read(p) for p in HOST_STATE}


@pytest.mark.parametrize("user", USERS)
def test_sys_writes(kit, arena, user):
    """Open /sys files for writing (THP, cgroup.procs, uevent_helper,
    power/state...) and mkdir in /sys/fs/cgroup: the guest's /sys is the
    guest kernel's read-only view."""
    before = _host_state()
    a = Attack(kit, arena, "sysfs", user).run()
    a.check(extra=[] if _host_state() == before else ["host /proc/sys or /sys changed"])


@pytest.mark.parametrize("user", USERS)
def test_proc_sys_writes(kit, arena, user):
    """Open /proc/sys/kernel/core_pattern, hostname, modprobe, drop_caches,
    sysrq, /proc/sysrq-trigger, binfmt_misc for writing: the guest's /proc
    is read-only (EROFS)."""
    before = _host_state()
    a = Attack(kit, arena, "procsys", user).run()
    a.check(extra=[] if _host_state() == before else ["host /proc/sys changed"])


@pytest.mark.parametrize("user", USERS)
def test_proc_self_attr_writes(kit, arena, user):
    """Write /proc/self/attr/*, loginuid, uid_map/gid_map/setgroups,
    timens_offsets, and oom_score_adj -1000: read-only /proc, the host's
    time namespace's offsets refused at the write, and lowering
    oom_score_adj needs a host capability."""
    attack(kit, arena, "proc-attr", user)


@pytest.mark.parametrize("user", USERS)
def test_device_nodes(kit, arena, user):
    """mknod of the host's disk, /dev/mem, /dev/kmsg...; open of the host's
    device nodes by their /dev names: the guest's /dev is synthetic and
    creating device nodes needs host CAP_MKNOD."""
    attack(kit, arena, "devices", user)


@pytest.mark.parametrize("user", USERS)
def test_host_administration_calls(kit, arena, user):
    """reboot (bad magic), sethostname, settimeofday, clock_settime,
    adjtimex, acct, swapoff, syslog, iopl, ioperm, init/delete_module,
    kexec_load, quotactl, fanotify_init: denied by the filter."""
    before = _host_state()
    a = Attack(kit, arena, "host-admin", user).run()
    a.check(extra=[] if _host_state() == before else ["host state changed"])


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_core_dump_lands_on_the_host(kit, arena, user, root):
    """RLIMIT_CORE unlimited, chdir to a host directory the guest's outside
    uid could write (in an image: where it starts), abort(): core_pattern is
    `core`, a path relative to the process's host cwd, written by the kernel
    itself.  (An image's directories are not the guest's to write on the
    host, so nothing lands there.)"""
    attack(kit, arena, "core", user, root)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_file_getattr_setattr(kit, arena, user, root):
    """file_getattr/file_setattr (Linux 6.17) on the marker's host path, by
    fd, and by a relative `..` path: path calls must go through the guest
    VFS (or be refused); flags of host files must not change."""
    attack(kit, arena, "file-attr", user, root)


@pytest.mark.parametrize("user", USERS)
def test_inode_flag_ioctls(kit, arena, user):
    """ioctl FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR (nodump, noatime) on a
    read-only fd of the host's marker and on the arena directory: the host
    only checks ownership, not the fd's mode."""
    attack(kit, arena, "fs-ioctl", user)


@pytest.mark.parametrize("user", USERS)
def test_locks_on_host_files(kit, arena, user):
    """flock(LOCK_EX), fcntl read locks, an OFD lock and a read lease on a
    read-only fd of the host's marker, held while the test tries to lock and
    open it from the host: a lower file's locks must not reach host
    processes."""
    a = Attack(kit, arena, "locks", user)
    p = a.popen()
    extra, out = [], b""
    try:
        out = _read_until(p, b"LOCKED")
        if b"LOCKED" in out:
            fd = os.open(arena.marker, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                extra.append("flock: the guest holds a lock on the host's file")
            finally:
                os.close(fd)
            try:
                wfd = os.open(arena.marker, os.O_WRONLY | os.O_NONBLOCK)
            except BlockingIOError:
                extra.append("open for writing: the guest holds a lease on the host's file")
            else:
                try:
                    fcntl.lockf(wfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    extra.append("fcntl F_SETLK: the guest holds a lock on the host's file")
                finally:
                    os.close(wfd)
        else:
            extra.append("the guest never reported its locks")
    finally:
        rest_out, rest_err = p.communicate(timeout=30)     # closes the guest's stdin
    a.result(out + rest_out, rest_err, p.returncode)
    a.check(extra=extra)


def _with_inherited_marker(a, arena):
    """Run a with stdin and fd 3 open (read-only) on the host's marker, as
    `umlpy run ... < marker 3< marker` would."""
    a.argv = ["sh", "-c", 'exec "$@" 3< "$0"', str(arena.marker), *a.argv]
    with open(arena.marker, "rb") as stdin:
        return a.run(stdin=stdin)


@pytest.mark.parametrize("root", ["host", "image"])
@pytest.mark.parametrize("user", USERS)
def test_inherited_descriptors(kit, arena, user, root):
    """umlpy's caller holds stdin and fd 3 open on the host's marker (in an
    image, no guest object): fd 3 must not reach the guest (fds above 2 are
    closed before it runs), and fchmod, fchown, futimens, the AT_EMPTY_PATH
    calls, fsetxattr, inode-flag ioctls and the /proc/self/fd/0 paths on
    stdin must not change the host's file; reading stdin works."""
    a = _with_inherited_marker(Attack(kit, arena, "inherited-fds", user, root), arena)
    extra = [] if "note read stdin: the marker's content" in a.stdout else \
        ["the guest could not read its stdin"]
    a.check(extra=extra)


@pytest.mark.parametrize("user", USERS)
def test_preserved_descriptors(kit, arena, user):
    """--preserve-fds 1 keeps fd 3 (the caller means it), in an image where
    it is no guest object: metadata changes through it and through stdin
    are still refused."""
    a = _with_inherited_marker(Attack(kit, arena, "inherited-fds", user, "image",
                                      options=["--preserve-fds", "1"],
                                      env={"ESC_PRESERVE": "1"}), arena)
    extra = [] if "note preserved fd 3 is open" in a.stdout else ["fd 3 was not preserved"]
    a.check(extra=extra)


# ================================================================== IPC

class SysV:
    def __init__(self, secret):
        base = int(uuid.uuid4().hex[:7], 16)
        self.shmkey, self.msgkey, self.semkey, self.leftkey = base, base + 1, base + 2, base + 3
        self.shm = libc.shmget(self.shmkey, 4096, 0o1666)
        self.msg = libc.msgget(self.msgkey, 0o1666)
        self.sem = libc.semget(self.semkey, 1, 0o1666)
        if min(self.shm, self.msg, self.sem) < 0:
            self.remove()
            pytest.skip("cannot create System V IPC objects")
        self.addr = libc.shmat(self.shm, None, 0)
        ctypes.memmove(self.addr, secret.encode() + b"\0", len(secret) + 1)
        self.secret = secret

    def changes(self):
        extra = []
        if ctypes.string_at(self.addr, len(self.secret)) != self.secret.encode():
            extra.append("the host's shared memory segment was written")
        buf = ctypes.create_string_buffer(256)        # struct msqid_ds
        if libc.msgctl(self.msg, 2, buf) == 0:        # IPC_STAT
            qnum = int.from_bytes(buf.raw[80:88], "little")      # msg_qnum
            if qnum:
                extra.append(f"the host's message queue got {qnum} messages")
        if libc.semctl(self.sem, 0, 12) != 0:          # GETVAL
            extra.append("the host's semaphore changed")
        left = libc.shmget(self.leftkey, 0, 0)
        if left >= 0:
            libc.shmctl(left, 0, None)
            extra.append("a segment the guest made outlived the sandbox on the host")
        return extra

    def remove(self):
        if getattr(self, "addr", None):
            libc.shmdt(ctypes.c_void_p(self.addr))
        for rm in (lambda: libc.shmctl(self.shm, 0, None), lambda: libc.msgctl(self.msg, 0, None),
                   lambda: libc.semctl(self.sem, 0, 0)):
            rm()


@pytest.mark.parametrize("user", [u
    for u in USERS])
def test_sysv_ipc_of_the_host(kit, arena, user):
    """shmget/shmat, msgget/msgsnd, semget/semop on host objects (mode 0666,
    so only namespaces can stand in the way), shmctl(SHM_STAT) enumeration,
    /proc/sysvipc, and a segment the guest makes and leaves: System V IPC
    lives in the IPC namespace, which the sandbox must have of its own."""
    ipc = SysV(arena.secret)
    try:
        a = Attack(kit, arena, "sysv-ipc", user, env={
            "ESC_SHMKEY": str(ipc.shmkey), "ESC_MSGKEY": str(ipc.msgkey),
            "ESC_SEMKEY": str(ipc.semkey), "ESC_LEFTKEY": str(ipc.leftkey)}).run()
        extra = ipc.changes()
    finally:
        ipc.remove()
    a.check(extra=extra)


@pytest.mark.parametrize("user", USERS)
def test_posix_mqueue_of_the_host(kit, arena, user):
    """mq_open/mq_send/mq_unlink of a host queue (mode 0666): POSIX message
    queues live in the IPC namespace."""
    name = f"/umlpy-escape-{arena.token[:12]}".encode()
    old = os.umask(0)
    q = libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o666, None)
    os.umask(old)
    if q < 0:
        pytest.skip("cannot create a POSIX message queue")
    try:
        a = Attack(kit, arena, "mqueue", user, env={"ESC_MQ": name.decode()}).run()
        attr = (ctypes.c_long * 8)()
        extra = []
        if libc.mq_getattr(q, attr) == 0 and attr[3]:
            extra.append(f"the host's queue got {attr[3]} messages")
        probe = libc.mq_open(name, os.O_RDONLY)
        if probe < 0:
            extra.append("the host's queue was unlinked")
        else:
            libc.mq_close(probe)
    finally:
        libc.mq_close(q)
        libc.mq_unlink(name)
    a.check(extra=extra)


@pytest.mark.parametrize("user", USERS)
def test_other_sandboxes_upper_layer(kit, arena, user):
    """Sandbox A writes a secret file in its /tmp; sandbox B (same user)
    looks for it under the host's /tmp/umlpy-*: each sandbox hides
    its own state, the others' must be out of reach too."""
    name = f"cross-{arena.token}"
    secret = f"CROSS-SECRET-{arena.token}"
    env = {"ESC_CROSSNAME": name, "ESC_CROSSSECRET": secret}
    writer = Attack(kit, arena, "cross-writer", user, env=env)
    a = writer.popen()
    try:
        line = _read_until(a, b"READY")
        assert b"READY" in line, (line, a.stderr.read() if a.poll() is not None else b"")
        reader = Attack(kit, arena, "cross-sandbox", user, env=env).run()
    finally:
        a.communicate(timeout=30)                          # closes the guest's stdin
    reader.check()
