"""The guest VFS end to end: an image root, the upper layer, what the host
keeps, and the classic ways out of a root."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, run_native, run_umlpy, _env

MAKE_IMAGE = ROOT / "rootfs" / "make-image"


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "busybox.tar"
    p = subprocess.run([sys.executable, str(MAKE_IMAGE), "busybox", str(out)],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot build a busybox image: {p.stderr.decode().strip()}")
    return out


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_image_root_changes_stay_in_the_upper_layer(busybox_image, tmp_path, mode):
    upper = tmp_path / "upper"
    before = digest(busybox_image)
    script = ("echo hi > /root/f; rm /etc/passwd; mkdir -p /a/b; ln -s /a /l; "
              "cat /root/f; test -e /etc/passwd || echo gone; ls /l; ls /")
    p = run_umlpy(["/bin/sh", "-c", script], mode,
                  options=["--rootfs", str(busybox_image), "--upper", str(upper)])
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hi\ngone\nb\na\nbin\ndev\netc\nl\nproc\nroot\nsys\ntmp\nusr\n"
    assert digest(busybox_image) == before
    d = subprocess.run([sys.executable, "-m", "umlpy", "diff", "--upper", str(upper),
                        "--rootfs", str(busybox_image)], capture_output=True, env=_env())
    assert d.stdout == b"A /a\nA /a/b\nD /etc/passwd\nA /l\nA /root/f\n", d.stderr
    # a second run over the same upper sees the first run's world
    p = run_umlpy(["/bin/sh", "-c", "cat /root/f; ls /etc/passwd 2>&1 | head -c 3"], mode,
                  options=["--rootfs", str(busybox_image), "--upper", str(upper)])
    assert p.stdout == b"hi\nls:"


def test_host_tree_is_read_only_below_the_guest(tmp_path, mode):
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    before = digest(victim)
    script = (f"echo changed > {victim}; cat {victim}; rm {tmp_path}/victim; "
              f"test -e {victim} || echo removed; mkdir {tmp_path}/new; touch {tmp_path}/new/x; "
              f"ls {tmp_path}")
    p = run_umlpy(["sh", "-c", script], mode)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"changed\nremoved\nnew\n"
    assert digest(victim) == before
    assert sorted(os.listdir(tmp_path)) == ["victim"]


def test_bind_mount_writes_reach_the_host(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    p = run_umlpy(["sh", "-c", "echo out > /mnt/shared/file; cat /mnt/shared/file"], mode,
                  options=["--bind", f"{shared}:/mnt/shared"])
    assert p.stdout == b"out\n", p.stderr
    assert (shared / "file").read_text() == "out\n"
    p = run_umlpy(["sh", "-c", "echo x > /mnt/ro/file"], mode,
                  options=["--bind", f"{shared}:/mnt/ro:ro"])
    assert p.returncode != 0 and b"Read-only file system" in p.stderr


@pytest.mark.parametrize("attempt", [
    "cat /../../../etc/hostname",
    "cd /; cd ../../..; cat etc/hostname",
    "cat /proc/self/root/../../etc/hostname",
    "cat /proc/1/root/../etc/hostname",
    "cd /proc/self/cwd/../../..; cat etc/hostname",
    "ln -s /../../.. /tmp/up; cat /tmp/up/etc/hostname",
    "ln -s ../../../../../../.. /tmp/rel; cat /tmp/rel/etc/hostname",
])
def test_no_way_above_the_image_root(busybox_image, mode, attempt):
    p = run_umlpy(["/bin/sh", "-c", attempt], mode,
                  options=["--rootfs", str(busybox_image), "--hostname", "inside"])
    host = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    assert p.stdout == b"umlpy-guest\n", (p.stdout, p.stderr)
    assert p.stdout != host


def test_proc_shows_guest_paths(busybox_image, mode):
    script = ("readlink /proc/self/exe; exec 3</etc/group; readlink /proc/self/fd/3; "
              "cd /tmp; readlink /proc/self/cwd; grep -c ' / ' /proc/mounts; "
              "cat /dev/null; echo z > /dev/null; ls /dev/fd/ >/dev/null && echo fd")
    p = run_umlpy(["/bin/sh", "-c", script], mode, options=["--rootfs", str(busybox_image)])
    assert p.stdout == b"/bin/busybox\n/etc/group\n/tmp\n1\nfd\n", p.stderr


def test_symlink_loops_and_long_names(busybox_image, mode):
    script = ("ln -s a /tmp/b; ln -s b /tmp/a; cat /tmp/a 2>&1; "
              "cat /tmp/" + "x" * 256 + " 2>&1; mkdir /tmp/d; touch /tmp/f; "
              "cat /tmp/f/ 2>&1; true")
    p = run_umlpy(["/bin/sh", "-c", script], mode, options=["--rootfs", str(busybox_image)])
    lines = p.stdout.decode().splitlines()
    assert "Symbolic link loop" in lines[0] or "Too many levels" in lines[0], lines
    assert "too long" in lines[1], lines
    assert "Not a directory" in lines[2], lines


def test_broken_image_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    p = run_umlpy(["/bin/sh", "-c", "true"], options=["--rootfs", str(bad)])
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and b"not a valid tar image" in p.stderr


@pytest.mark.parametrize("where", ["host-tree", "image"])
def test_inotify_sees_the_guests_changes(tmp_path, guest, busybox_image, mode, where):
    """Watches are on guest paths: a lower directory is copied up first, so
    the guest's own changes (made in the upper layer) are the ones seen."""
    prog = guest("inotify_watch", static=True)
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    native = subprocess.run([prog, str(native_dir)], capture_output=True)
    assert native.returncode == 0
    watched = tmp_path / "watched"
    watched.mkdir()
    os.chmod(tmp_path, 0o755)
    if where == "image":
        options = ["--rootfs", str(busybox_image), "--bind", f"{prog}:/inotify_watch:ro"]
        argv = ["/inotify_watch", "/tmp"]
    else:
        options, argv = [], [prog, str(watched)]
    inside = run_umlpy(argv, mode, options=options)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.decode().splitlines() == native.stdout.decode().splitlines()
    assert os.listdir(watched) == []


@pytest.mark.parametrize("attempt", [
    "cat /mnt/shared/../../etc/hostname",
    "cd /mnt/shared; cd ../../..; cat etc/hostname",
    "cat /mnt/shared/abs/hostname",
    "cat /mnt/shared/rel/etc/hostname",
    "cat /mnt/shared/sub/../../../etc/hostname",
    "cd /mnt/shared/sub; cat ../../../../etc/hostname",
    "cat /mnt/shared/procroot/etc/hostname",
    "ln -s ../../../../.. /mnt/shared/up 2>/dev/null; cat /mnt/shared/up/etc/hostname",
])
def test_no_way_out_through_a_bind_edge(busybox_image, tmp_path, mode, attempt):
    """A bound host directory is a mount inside the guest: its `..` is the
    guest's /mnt, and symlinks in it (made by the host) resolve in the guest."""
    shared = tmp_path / "shared"
    (shared / "sub").mkdir(parents=True)
    (shared / "abs").symlink_to("/etc")
    (shared / "rel").symlink_to("../../../../../../../..")
    (shared / "procroot").symlink_to("/proc/self/root")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("host side of the bind\n")
    p = run_umlpy(["/bin/sh", "-c", attempt], mode,
                  options=["--rootfs", str(busybox_image), "--bind", f"{shared}:/mnt/shared"])
    assert p.stdout == b"umlpy-guest\n", (p.stdout, p.stderr)


def test_hard_link_across_a_bind_edge_is_exdev(busybox_image, tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    p = run_umlpy(["/bin/sh", "-c", "ln /etc/passwd /mnt/shared/pw; echo $?; "
                   "mv /etc/group /mnt/shared/group && cat /mnt/shared/group | head -c 5"], mode,
                  options=["--rootfs", str(busybox_image), "--bind", f"{shared}:/mnt/shared"])
    assert p.stdout.startswith(b"1\nroot:"), (p.stdout, p.stderr)
    assert b"cross-device" in p.stderr.lower() or b"Invalid cross-device" in p.stderr
    assert sorted(os.listdir(shared)) == ["group"]       # mv copies across mounts


def test_reopening_pipes_through_proc(mode):
    """`cat /dev/stdin` of a pipe and bash's process substitution reopen a
    pipe through /proc/self/fd/N."""
    p = run_umlpy(["bash", "-c", "cat <(echo from a substitution); cat /dev/stdin"], mode,
                  input=b"from stdin\n")
    assert p.stdout == b"from a substitution\nfrom stdin\n", p.stderr


def test_stat_needs_search_permission_on_the_way(tmp_path):
    """stat, readlink and access are answered by the guest kernel, which
    could see anything: it checks search permission as the host would
    (here the guest is nobody outside, and the directory is root's 0700)."""
    if os.geteuid() != 0:
        pytest.skip("needs a directory the guest's host user cannot search")
    private = tmp_path / "private"
    private.mkdir()
    (private / "file").write_text("secret size\n")
    os.symlink("target", private / "link")
    os.chmod(private, 0o700)
    os.chmod(tmp_path, 0o755)
    script = (f"stat -c %s {private}/file 2>&1; readlink {private}/link || echo no-readlink; "
              f"test -e {private}/file && echo exists || echo hidden")
    p = run_umlpy(["sh", "-c", script], host_root=False)
    out = p.stdout.decode()
    # (the size, 12, on a line of its own: the path may hold "12" too)
    assert "Permission denied" in out and "12" not in out.splitlines(), out
    assert "no-readlink" in out and out.strip().endswith("hidden"), out
    # with host root power the same calls see it, as natively
    p = run_umlpy(["sh", "-c", script])
    assert p.stdout.decode().splitlines() == ["12", "target", "exists"], p.stderr


def test_working_directory_follows_a_renamed_ancestor(mode, tmp_path):
    """A process's cwd is its directory, not a name: renaming an ancestor
    (the guest kernel makes the rename) moves it along, and a directory
    made afterwards under the old name is another one."""
    os.chmod(tmp_path, 0o777)
    script = ("mkdir -p d/a/b && cd d/a/b && mv ../../a ../../z && touch here && "
              "/bin/pwd | sed 's|.*/d/|d/|' && ls ../../z/b && mkdir -p ../../a/b && "
              "ls ../../a/b | wc -l && cd .. && /bin/pwd | sed 's|.*/d/|d/|'")
    native = run_native(["sh", "-c", script], cwd=tmp_path)
    subprocess.run(["rm", "-rf", str(tmp_path / "d")], check=True)
    inside = run_umlpy(["sh", "-c", script], mode, cwd=tmp_path)
    assert inside.stdout == native.stdout == b"d/z/b\nhere\n0\nd/a\n", inside.stderr


@settings(max_examples=300, deadline=None)
@given(rest=st.text(alphabet="umlpy-0123456789/x.", max_size=16))
def test_the_state_path_matcher_is_the_regex_it_replaces(rest):
    """build.StatePaths hides <tmp>/umlpy-<uid>[/...] without importing re
    at start-up; it must match what TMP/umlpy-[0-9]+(/|$) matches."""
    import re
    from umlpy.kernel.vfs.build import StatePaths
    regex = re.compile(re.escape("/tmp") + r"/umlpy-[0-9]+(/|$)")
    for path in ("/tmp/" + rest, "/tmp/umlpy-" + rest, "/tmp/umlpy-1" + rest):
        assert (StatePaths("/tmp/").match(path) is not None) == \
            (regex.match(path) is not None), path
