"""Fuzzing umlpy's inputs (issue 12): option words for every option of
umlpy/config/options.py with random values (empty, huge, garbage, paths
that are files, directories or missing), bind specs, and corrupt tar
images given to --rootfs/--layer.  Whatever the input, umlpy says what is
wrong in exactly one line starting with "umlpy" and exits with status 2,
or runs the guest (its status, and any other line it says starts with
"umlpy"); never a traceback, never a hang, and no sandbox state is left
in the temporary directory.

Each example runs umlpy's command line in a forked child of the test
process (umlpy is imported once: about 30 ms a run instead of 300)."""
import io
import os
import select
import signal
import sys
import tarfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umlpy.config.options import OPTIONS

AS_ROOT = os.geteuid() == 0
# Options that would make a valid run talk or wait: --break stops in pdb,
# --log-level logs to stderr by design.
SKIPPED = {"breaks", "log_level"}
CLI_OPTIONS = [o for o in OPTIONS if o.flags and o.name not in SKIPPED]


def run_cli(argv, tmp, timeout=30):
    """(status, stdout, stderr) of umlpy.cli.main(argv) in a forked child,
    with TMPDIR=tmp; a hang fails."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:        # the child: umlpy's own entry, as `python -m umlpy` runs it
        status = 1
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            os.environ["TMPDIR"] = str(tmp)
            from umlpy.kernel.vfs import tmpdirs
            tmpdirs._temp_dir = None
            from umlpy.cli import main
            status = main(argv)
            status = status if isinstance(status, int) else 0 if status is None else 1
        except BaseException:   # noqa: BLE001 -- what the test looks for
            import traceback
            traceback.print_exc()
            status = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:       # noqa: BLE001
                    pass
            os._exit(status)
    os.close(out_w)
    os.close(err_w)
    chunks = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    open_fds = [out_r, err_r]
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            for fd in (out_r, err_r):
                os.close(fd)
            pytest.fail(f"umlpy {argv!r} hung")
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    for fd in (out_r, err_r):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return (os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]),
            b"".join(chunks[err_r]))


def state_left(tmp):
    root = os.path.join(tmp, f"umlpy-{os.geteuid()}")
    names = os.listdir(root) if os.path.isdir(root) else []
    return [n for n in names if len(n) == 12 and all(c in "0123456789abcdef" for c in n)]


def check(argv, tmp, result, guest_may_complain=False):
    status, out, err = result
    text = err.decode(errors="replace")
    lines = text.splitlines()
    assert "Traceback" not in text, (argv, text[-3000:])
    if status == 2:
        assert len(lines) == 1 and lines[0].startswith("umlpy"), (argv, text[-2000:])
    elif not guest_may_complain:
        assert all(line.startswith("umlpy") for line in lines), (argv, status, text[-2000:])
    assert state_left(tmp) == [], argv


# ---- option words ----------------------------------------------------------

@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Paths of every kind for option values: a file, a directory, a
    missing path, a symlink loop, a FIFO."""
    base = tmp_path_factory.mktemp("fuzz-places")
    os.chmod(base, 0o755)
    (base / "file").write_text("x\n")
    (base / "dir").mkdir()
    os.symlink("loop", base / "loop")
    os.mkfifo(base / "fifo")
    tmp = base / "tmp"
    tmp.mkdir()
    return base, tmp


GARBAGE = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                  max_size=40)


def values(base):
    paths = [str(base / n) for n in ("file", "dir", "missing", "loop", "fifo")]
    paths += [str(base / "missing" / "deeper"), "/", "/etc/passwd", "/proc/self", "."]
    return st.one_of(
        st.just(""), GARBAGE, st.sampled_from(paths),
        st.builds(lambda n: "x" * n, st.sampled_from([255, 4096, 70000])),
        st.sampled_from(["0", "-1", "1", "3", "1K", "64M", "1e30", "nan", "inf", "2G", "1.5",
                         "10ms", "none", "loopback", "host", "ro", "rw", "K=V", "=V", "K="]),
        st.builds(lambda h, g, ro: f"{h}:{g}{ro}", st.sampled_from(paths + [""]),
                  st.sampled_from(["/mnt/x", "/", "/proc", "/dev", "rel", "", "/etc/hostname",
                                   "/mnt/x/../..", "/dev/shm"]),
                  st.sampled_from(["", ":ro", ":rw", ":bad", "::"])),
    )


def option_words(base):
    def words(choice):
        out = []
        for opt, value in choice:
            flag = opt.flags[-1]
            if opt.metavar is None:
                out.append(flag)
            else:
                out += [flag, value]
        return out
    one = st.tuples(st.sampled_from(CLI_OPTIONS), values(base))
    return st.lists(one, min_size=1, max_size=4).map(words)


def _run_options(words, places):
    base, tmp = places
    argv = ["run"]
    if AS_ROOT:
        argv.append("--host-root")
    argv += words + ["--", "/bin/true"]
    result = run_cli(argv, tmp)
    check(argv, tmp, result, guest_may_complain=_too_few_fds(words))


def _too_few_fds(words):
    """--nofile below what a dynamic program needs: /bin/true fails to load
    its libc with EMFILE (status 127, its loader's own line), as natively
    under `ulimit -n 3`."""
    for flag, value in zip(words, words[1:]):
        if flag == "--nofile" and value.isdigit() and int(value) < 16:
            return True
    return any(w.startswith("--nofile=") and w[9:].isdigit() and int(w[9:]) < 16
               for w in words)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_option_words_are_one_line_or_a_run(data, places):
    _run_options(data.draw(option_words(places[0])), places)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_option_words_are_one_line_or_a_run_many(data, places):
    _run_options(data.draw(option_words(places[0])), places)


@pytest.mark.parametrize("words", [
    ["--memory"], ["--bind"], ["--bind", ""], ["--bind", ":"], ["--bind", "::"],
    ["--tmpfs", ""], ["--rootfs", ""], ["--layer", "x"], ["--upper", ""], ["-C", ""],
    ["--env", "=x"], ["--net", ""], ["--hostname", "x" * 65], ["--preserve-fds", "99999999"],
    ["--nofile", "99999999999999999999"], ["--memory", "1e400"], ["--cpu-time", "1e400"],
    ["--memory", "nan"], ["--cpu-time", "nan"], ["--net-rate", "nan"], ["--disk", "inf"],
    ["--pids", str(1 << 70)], ["--memory", str(1 << 70)], ["--cpu-time", "1e300"],
    ["--no-such-option"], ["--rootfs", "/dev/null"], ["--rootfs", "/proc/self/status"],
    ["--trace-all", "--nofile", "3"], ["--nofile", "3"],
])
def test_known_bad_words(words, places):
    _run_options(words, places)


@pytest.mark.parametrize("flag", ["--rootfs", "--layer"])
def test_a_fifo_as_an_image_is_refused_without_waiting(flag, places):
    """Opening a FIFO for reading waits for a writer: umlpy must look
    first (found by the fuzz above: `--rootfs FIFO` hung)."""
    base, _tmp = places
    words = [flag, str(base / "fifo")]
    if flag == "--layer":
        words = ["--rootfs", str(base / "dir")] + words
    _run_options(words, places)


# ---- tar images ---------------------------------------------------------------

def _member(name, kind=tarfile.REGTYPE, data=None, mode=0o755, linkname="", **kw):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, linkname
    if data is not None:
        info.size = len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def _tar(members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_program(guest):
    with open(guest("catfile", static=True), "rb") as f:
        return f.read()


def _base(prog):
    return [_member("bin", tarfile.DIRTYPE), _member("bin/t", data=prog),
            _member("etc", tarfile.DIRTYPE), _member("etc/hostname", data=b"fz\n", mode=0o644),
            _member("tmp", tarfile.DIRTYPE, mode=0o1777)]


EVIL_MEMBERS = [
    lambda: _member("../../escape", data=b"x"),
    lambda: _member("/abs/file", data=b"y"),
    lambda: _member("a/../../b", data=b"z"),
    lambda: _member("l1", tarfile.SYMTYPE, linkname="l2"),
    lambda: _member("l2", tarfile.SYMTYPE, linkname="l1"),
    lambda: _member("up", tarfile.SYMTYPE, linkname="../../../../etc/shadow"),
    lambda: _member("hl", tarfile.LNKTYPE, linkname="../../etc/passwd"),
    lambda: _member("hl2", tarfile.LNKTYPE, linkname="/etc/shadow"),
    lambda: _member("hl3", tarfile.LNKTYPE, linkname="missing"),
    lambda: _member("hl4", tarfile.LNKTYPE, linkname="bin"),
    lambda: _member("sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
    lambda: _member("mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
    lambda: _member("fifo", tarfile.FIFOTYPE),
    lambda: _member("bin", data=b"not a directory"),
    lambda: _member("bin/t/x", data=b"below a file"),
    lambda: _member("setuid", data=b"#!/bin/sh\n", mode=0o4755),
    lambda: _member("x" * 300, data=b"long name"),
    lambda: _member("d/" * 200 + "f", data=b"deep"),
    lambda: _member(".wh..wh..opq", data=b""),
    lambda: _member("etc/.wh.hostname", data=b""),
    lambda: _member("", tarfile.DIRTYPE),
    lambda: _member(".", tarfile.DIRTYPE),
    lambda: _member("big", data=b"\0" * 100000),
]


def _corrupt(data, how, rnd):
    if how == "truncate":
        return data[:rnd.randrange(0, len(data) + 1)]
    if how == "flip":
        b = bytearray(data)
        for _ in range(rnd.randrange(1, 20)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        return bytes(b)
    if how == "random":
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 4096)))
    if how == "zeros":
        return b"\0" * rnd.randrange(0, 20480)
    if how == "huge-size":
        b = bytearray(data)
        at = b.find(b"bin/t\0")
        if at >= 0:
            hdr = at - at % 512
            b[hdr + 124:hdr + 136] = b"77777777777\0"
            b[hdr + 148:hdr + 156] = b" " * 8
            b[hdr + 148:hdr + 156] = ("%06o\0 " % sum(b[hdr:hdr + 512])).encode()
        return bytes(b)
    return data


def _guest_intact(raw, prog):
    """Whether a corrupt image still holds the guest program and the file
    it reads byte for byte.  Where it does not, the guest itself may write
    to stderr (a damaged static binary aborts with glibc's message, a lost
    /etc/hostname makes it print perror's): those lines are the guest's,
    not umlpy's."""
    try:
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            found = {}
            for member in tar:
                name = member.name.lstrip("./")
                if name in ("bin/t", "etc/hostname"):
                    found[name] = tar.extractfile(member).read() if member.isreg() else None
    except Exception:   # noqa: BLE001 -- any damage Python's reader sees
        return False
    return found == {"bin/t": prog, "etc/hostname": b"fz\n"}


def _image_case(data, prog, images_dir, tmp):
    import random
    rnd = random.Random(data.draw(st.integers(0, 1 << 32), label="seed"))
    members = _base(prog) + [make() for make in data.draw(
        st.lists(st.sampled_from(EVIL_MEMBERS), max_size=4), label="members")]
    fmt = data.draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT,
                                     tarfile.USTAR_FORMAT]), label="format")
    try:
        raw = _tar(members, fmt)
    except (ValueError, tarfile.TarError):
        raw = _tar(_base(prog))
    how = data.draw(st.sampled_from(["none", "truncate", "flip", "random", "zeros",
                                     "huge-size"]), label="corruption")
    raw = _corrupt(raw, how, rnd)
    n = len(os.listdir(images_dir))
    image = images_dir / f"img{n}.tar"
    image.write_bytes(raw)
    os.chmod(image, 0o644)
    argv = ["run"] + (["--host-root"] if AS_ROOT else [])
    if data.draw(st.booleans(), label="as a layer"):
        base = images_dir / f"base{n}.tar"
        base.write_bytes(_tar(_base(prog)))
        os.chmod(base, 0o644)
        argv += ["--rootfs", str(base), "--layer", str(image)]
    else:
        argv += ["--rootfs", str(image)]
    argv += ["--", "/bin/t", "/etc/hostname"]
    result = run_cli(argv, tmp)
    check(argv, tmp, result, guest_may_complain=how != "none" and not _guest_intact(raw, prog))
    status, out, _err = result
    if status == 0:
        assert out == b"fz\n" or out.startswith(b"umlpy") or out == b"", out[:200]


@pytest.fixture
def image_dirs(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    os.chmod(tmp_path, 0o755)
    return images, tmp


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_corrupt_images_are_one_line_or_a_run(data, image_program, image_dirs):
    _image_case(data, image_program, *image_dirs)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_corrupt_images_are_one_line_or_a_run_many(data, image_program, image_dirs):
    _image_case(data, image_program, *image_dirs)
