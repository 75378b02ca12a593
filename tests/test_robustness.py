"""The guest kernel cannot be crashed by what a guest does (issue 12):
every walk over a guest-made tree is iterative, a thread that dies in the
middle of a stop is no error, and a bad option is one line, never a
traceback."""
import os
import subprocess

import pytest

from conftest import UMLPY, _env, run_umlpy

DEPTH = 2000        # twice Python's recursion limit


def _private_tmp(tmp_path):
    """A temporary directory of the test's own, so the state umlpy leaves
    (or not) there is this run's alone."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = _env()
    env["TMPDIR"] = str(tmp)
    return tmp, env


def _left_state(tmp):
    """The sandbox state directories left in tmp's umlpy-UID (random
    names of 12 hex digits; the shared content cache stays)."""
    root = tmp / f"umlpy-{os.geteuid()}"
    names = os.listdir(root) if root.exists() else []
    return sorted(n for n in names if len(n) == 12 and all(c in "0123456789abcdef" for c in n))


def _umlpy(args, env, timeout=120, **kw):
    return subprocess.run(UMLPY + list(args), capture_output=True, env=env,
                          timeout=timeout, **kw)


@pytest.mark.parametrize("how", ["rename", pytest.param("chdir", marks=pytest.mark.slow)])
def test_deep_tree_in_the_throwaway_upper_is_cleaned_up(guest, tmp_path, how):
    tmp, env = _private_tmp(tmp_path)
    prog = guest("deeptree", static=True)
    # growing at the bottom names ever longer paths: fewer levels, still
    # past the recursion limit
    depth = DEPTH if how == "rename" else 1100
    p = run_umlpy([prog, str(depth), "7", how], options=["-C", "/tmp"], env=env,
                  timeout=300)
    assert p.stderr == b""
    assert p.stdout == f"{depth}\n".encode()
    assert p.returncode == 7
    assert _left_state(tmp) == []


@pytest.fixture
def deep_cleanup(tmp_path):
    """pytest removes its temporary directories recursively: the deep
    trees go first, iteratively."""
    yield
    from umlpy.kernel.vfs.tmpdirs import remove_tree
    for name in ("upper", "target"):
        remove_tree(str(tmp_path / name))


def test_deep_tree_in_a_kept_upper_diff_commit_discard(guest, tmp_path, deep_cleanup):
    tmp, env = _private_tmp(tmp_path)
    prog = guest("deeptree", static=True)
    upper = tmp_path / "upper"
    p = run_umlpy([prog, str(DEPTH), "0"], options=["-C", "/tmp", "--upper", str(upper)],
                  env=env, timeout=300)
    assert (p.returncode, p.stderr, p.stdout) == (0, b"", f"{DEPTH}\n".encode())
    assert _left_state(tmp) == []
    deep = "/tmp/x" + "/d" * DEPTH

    d = _umlpy(["diff", "--upper", str(upper)], env)
    assert (d.returncode, d.stderr) == (0, b"")
    lines = d.stdout.decode().splitlines()
    assert f"A {deep}/bottom" in lines and f"A {deep}" in lines and "A /tmp/x" in lines

    target = tmp_path / "target"
    (target / "tmp").mkdir(parents=True)
    os.chmod(target / "tmp", os.stat("/tmp").st_mode & 0o7777)     # else "M /tmp"
    c = _umlpy(["commit", "--upper", str(upper), "--to", str(target), "--keep"], env)
    assert (c.returncode, c.stderr) == (0, b"")
    assert c.stdout == d.stdout
    fd = os.open(target / "tmp" / "x", os.O_RDONLY)
    for _ in range(DEPTH):
        new = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    with open(os.open("bottom", os.O_RDONLY, dir_fd=fd)) as f:
        assert f.read() == "deep\n"
    os.close(fd)

    r = _umlpy(["discard", "--upper", str(upper)], env)
    assert (r.returncode, r.stderr) == (0, b"")
    assert os.listdir(upper) == []
    r = _umlpy(["discard", "--upper", str(target)], env)
    assert (r.returncode, r.stderr) == (0, b"")


def _deep_image(path, prog, depth):
    """A tar image: /bin/deeptree, /tmp, and /x/d/d/.../bottom, depth deep."""
    import io
    import tarfile
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=None, mode=0o755):
            info = tarfile.TarInfo(name)
            info.type = tarfile.REGTYPE if data is not None else tarfile.DIRTYPE
            info.mode = mode
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        for d in ("bin", "etc", "proc", "dev", "sys"):
            add(d)
        add("tmp", mode=0o1777)
        with open(prog, "rb") as f:
            add("bin/deeptree", f.read())
        name = "x"
        add(name)
        for _ in range(depth):
            name += "/d"
            add(name)
        add(name + "/bottom", b"deep\n", 0o644)
    os.chmod(path, 0o644)


def test_deep_lower_tree_is_copied_up_whole(guest, tmp_path, deep_cleanup):
    """A rename copies a lower directory up whole: iteratively."""
    tmp, env = _private_tmp(tmp_path)
    image = tmp_path / "deep.tar"
    _deep_image(image, guest("deeptree", static=True), 1200)
    upper = tmp_path / "upper"
    p = run_umlpy(["/bin/deeptree", "0", "5", "mv"],
                  options=["--rootfs", str(image), "-C", "/", "--upper", str(upper)],
                  env=env, timeout=300)
    assert (p.returncode, p.stderr, p.stdout) == (5, b"", b"moved\n")
    assert _left_state(tmp) == []
    fd = os.open(upper / "moved", os.O_RDONLY)
    for _ in range(1200):
        new = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    with open(os.open("bottom", os.O_RDONLY, dir_fd=fd)) as f:
        assert f.read() == "deep\n"
    os.close(fd)


def test_exit_while_a_thread_is_busy_in_calls(guest, mode):
    """main returns while its other thread loops on open/close: the thread
    dies in the middle of a stop (ESRCH from the tracer), which is normal."""
    prog = guest("busy_exit")
    for ms in [1, 3, 5, 8, 13] * 4:
        p = run_umlpy([prog, str(ms)], mode, timeout=60)
        assert (p.returncode, p.stderr) == (0, b""), (ms, p.stderr.decode()[-600:])


# ---- bad options: one line and status 2, never a traceback --------------------

def test_a_bind_replaces_the_file_umlpy_would_inject(tmp_path, guest):
    """An image without /etc/resolv.conf gets umlpy's, unless the user
    binds one there: the user's wins (it failed with 'already a
    mountpoint')."""
    from conftest import write_tiny_image
    tmp, env = _private_tmp(tmp_path)
    image = tmp_path / "tiny.tar"
    write_tiny_image(image, {"bin/cat": open(guest("catfile", static=True), "rb").read()})
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.1 mine\n")
    os.chmod(tmp_path, 0o755)
    p = run_umlpy(["/bin/cat", "/etc/resolv.conf", "/etc/hosts"],
                  options=["--rootfs", str(image), "--bind", f"{resolv}:/etc/resolv.conf:ro",
                           "--bind", f"{hosts}:/etc/hosts"], env=env)
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == b"nameserver 192.0.2.53\n192.0.2.1 mine\n"
    assert _left_state(tmp) == []


@pytest.mark.parametrize("words", [
    ["--bind", "{d}:/proc"], ["--bind", "{d}:/dev"], ["--bind", "{d}:/"],
    ["--bind", "{d}:/sys"], ["--bind", "{d}:/dev/pts"], ["--bind", "{d}:/dev/shm:ro"],
    ["--tmpfs", "/proc"], ["--tmpfs", "/"], ["--tmpfs", "/dev/"],
    ["--bind", "{d}:/mnt/x", "--bind", "{d}:/mnt/x/"],
    ["--tmpfs", "/mnt/y", "--tmpfs", "/mnt/y"],
    ["--tmpfs", "/mnt/y", "--bind", "{d}:/mnt/y:ro"],
])
def test_a_mount_over_a_mountpoint_is_one_line_and_status_2(tmp_path, words):
    tmp, env = _private_tmp(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    words = [w.format(d=d) for w in words]
    p = _umlpy(["run", *words, "--", "true"], env)
    lines = p.stderr.decode().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("umlpy: --"), \
        p.stderr.decode()[-800:]
    assert "already" in lines[0]
    assert _left_state(tmp) == []
