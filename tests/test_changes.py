"""umlpy diff / commit / discard on hand-built lower and upper layers, and a
property: operations applied to a plain copy of the lower and, overlay
style, to an upper layer, then committed, give the same tree."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umlpy.changes_cli import DIFF_USAGE, main_commit, main_diff, main_discard
from umlpy.errors import BadInput
from umlpy.kernel.vfs import changes
from umlpy.kernel.vfs.changes import Change, HostDirLower, TarLower

ROOT = Path(__file__).resolve().parent.parent
WH, OPAQUE = ".wh.", ".wh..wh..opq"


# Building trees ---------------------------------------------------------------

def put(root, rel, data=b"", mode=0o644):
    p = Path(root, rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.chmod(p, mode)
    return p


def mkdir(root, rel, mode=0o755):
    p = Path(root, rel)
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    return p


def link(root, rel, target):
    p = Path(root, rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, p)
    return p


def whiteout(upper, rel):
    parent, _, name = rel.rpartition("/")
    return put(upper, f"{parent}/{WH}{name}" if parent else WH + name, b"", 0o600)


def opaque(upper, rel):
    return put(upper, f"{rel}/{OPAQUE}", b"", 0o600)


def copy_up(lower, upper, rel):
    """What the VFS does before changing a lower object: parents as
    directories with the lower's modes, the object itself copied whole."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if not os.path.lexists(Path(upper, d)):
            os.mkdir(Path(upper, d))
            shutil.copystat(Path(lower, d), Path(upper, d))
    src, dst = Path(lower, rel), Path(upper, rel)
    if os.path.lexists(dst) or not os.path.lexists(src):
        return
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        os.mkdir(dst)
        shutil.copystat(src, dst)
    else:
        shutil.copy2(src, dst)


def snapshot(root):
    """{rel: (type, mode, content or link target)} without following links."""
    out = {}

    def walk(path, rel):
        with os.scandir(path) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                s = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(s.st_mode):
                    out[r] = ("symlink", None, os.readlink(e.path))
                elif stat.S_ISDIR(s.st_mode):
                    out[r] = ("dir", stat.S_IMODE(s.st_mode), None)
                    walk(e.path, r)
                elif stat.S_ISREG(s.st_mode):
                    out[r] = ("file", stat.S_IMODE(s.st_mode), Path(e.path).read_bytes())
                else:
                    out[r] = (changes.type_name(s.st_mode), stat.S_IMODE(s.st_mode), None)
    walk(root, "")
    return out


def merged_view(lower, upper):
    """The test's own model of the layout: the lower seen through the upper."""
    result = snapshot(lower)
    upper_snap = snapshot(upper)

    def drop_under(rel):
        for k in [k for k in result if k.startswith(rel + "/") or (rel == "" and k)]:
            del result[k]

    for dirpath, dirnames, filenames in os.walk(upper):
        rel = os.path.relpath(dirpath, upper)
        rel = "" if rel == "." else rel
        names = dirnames + filenames
        if OPAQUE in names:
            drop_under(rel)
        for n in names:
            r = f"{rel}/{n}" if rel else n
            if n == OPAQUE:
                continue
            if n.startswith(WH):
                target = f"{rel}/{n[len(WH):]}" if rel else n[len(WH):]
                result.pop(target, None)
                drop_under(target)
                continue
            mine = upper_snap[r]
            if mine[0] != "dir" or result.get(r, ("",))[0] != "dir":
                drop_under(r)
            result[r] = mine
    return {k: v for k, v in result.items() if not os.path.basename(k).startswith(WH)}


def copy_of(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.fixture
def layers(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    return lower, upper


def lines(changes_list):
    return [c.line() for c in changes_list]


# A hand-built sandbox -----------------------------------------------------------

def build_scenario(lower, upper):
    put(lower, "etc/hosts", "127.0.0.1 localhost\n")
    put(lower, "etc/passwd", "root:x:0:0\n")
    put(lower, "etc/motd", "hello\n")
    put(lower, "etc/issue", "Linux\n")
    put(lower, "bin/tool", "#!/bin/sh\n", 0o755)
    link(lower, "bin/sh", "busybox")
    put(lower, "var/log/a.log", "a")
    put(lower, "var/log/b.log", "b")
    put(lower, "var/cache/x/y", "y")
    put(lower, "opt/app/conf", "c")
    put(lower, "opt/app/data", "d")
    put(lower, "srv/file-becomes-dir", "f")
    put(lower, "home/u/.profile", "p")
    mkdir(lower, "tmp", 0o1777)

    copy_up(lower, upper, "etc/hosts")                 # copied up, unchanged
    copy_up(lower, upper, "etc/passwd")
    Path(upper, "etc/passwd").write_text("root:x:0:0\nnew:x:1:1\n")
    copy_up(lower, upper, "etc/motd")
    Path(upper, "etc/motd").write_text("HELLO\n")        # same size, other bytes
    copy_up(lower, upper, "etc/issue")
    os.chmod(Path(upper, "etc/issue"), 0o600)            # mode only
    whiteout(upper, "etc/gone")                         # nothing of that name below
    put(upper, "etc/new.conf", "n")
    copy_up(lower, upper, "bin/sh")
    os.unlink(Path(upper, "bin/sh"))
    os.symlink("bash", Path(upper, "bin/sh"))           # other link target
    whiteout(upper, "var/cache")                        # a whole directory deleted
    whiteout(upper, "var/log/a.log")
    mkdir(upper, "opt/app")                             # rmdir + mkdir: opaque
    opaque(upper, "opt/app")
    put(upper, "opt/app/conf", "c")                     # re-created identical
    put(upper, "opt/app/extra", "e")
    os.mkdir(Path(upper, "srv"))
    mkdir(upper, "srv/file-becomes-dir")
    opaque(upper, "srv/file-becomes-dir")
    put(upper, "srv/file-becomes-dir/inside", "i")
    mkdir(upper, "home")
    put(upper, "home/u", "dir replaced by a file")
    mkdir(upper, "new/deep/dir")
    link(upper, "new/deep/dir/ln", "/etc/hosts")
    os.mkfifo(Path(upper, "new/fifo"))
    copy_up(lower, upper, "tmp")
    os.chmod(Path(upper, "tmp"), 0o755)                 # directory mode changed


EXPECTED = [
    ("modified", "/bin/sh", "symlink"),
    ("modified", "/etc/issue", "file"),
    ("modified", "/etc/motd", "file"),
    ("added", "/etc/new.conf", "file"),
    ("modified", "/etc/passwd", "file"),
    ("modified", "/home/u", "file"),
    ("added", "/new", "dir"),
    ("added", "/new/deep", "dir"),
    ("added", "/new/deep/dir", "dir"),
    ("added", "/new/deep/dir/ln", "symlink"),
    ("added", "/new/fifo", "fifo"),
    ("deleted", "/opt/app/data", "file"),
    ("added", "/opt/app/extra", "file"),
    ("modified", "/srv/file-becomes-dir", "dir"),
    ("added", "/srv/file-becomes-dir/inside", "file"),
    ("modified", "/tmp", "dir"),
    ("deleted", "/var/cache", "dir"),
    ("deleted", "/var/log/a.log", "file"),
]


def test_diff_of_a_hand_built_sandbox(layers):
    lower, upper = layers
    build_scenario(lower, upper)
    got = changes.diff(upper, HostDirLower(lower))
    assert [(c.kind, c.path, c.type) for c in got] == EXPECTED
    assert lines(got)[:2] == ["M /bin/sh", "M /etc/issue"]


def test_commit_gives_the_merged_view(layers, tmp_path):
    lower, upper = layers
    build_scenario(lower, upper)
    expected = merged_view(lower, upper)
    target = copy_of(lower, tmp_path / "target")
    applied = changes.commit(upper, target)
    assert [(c.kind, c.path, c.type) for c in applied] == EXPECTED
    assert snapshot(target) == expected
    assert os.listdir(upper) == []
    assert changes.diff(upper, HostDirLower(target)) == []


def test_commit_keeps_times_and_hard_links(layers, tmp_path):
    lower, upper = layers
    put(upper, "a", "shared")
    os.link(Path(upper, "a"), Path(upper, "b"))
    os.utime(Path(upper, "a"), ns=(1_000_000_000, 2_000_000_000))
    mkdir(upper, "d", 0o750)
    os.utime(Path(upper, "d"), ns=(3_000_000_000, 4_000_000_000))
    target = mkdir(tmp_path, "target")
    changes.commit(upper, target, keep=True)
    a, b = os.stat(target / "a"), os.stat(target / "b")
    assert a.st_ino == b.st_ino and a.st_mtime_ns == 2_000_000_000
    d = os.stat(target / "d")
    assert stat.S_IMODE(d.st_mode) == 0o750 and d.st_mtime_ns == 4_000_000_000
    assert sorted(os.listdir(upper)) == ["a", "b", "d"]


def test_unchanged_copy_up_and_parent_copy_up_are_no_change(layers):
    lower, upper = layers
    put(lower, "a/b/c", "same", 0o640)
    copy_up(lower, upper, "a/b/c")
    assert changes.diff(upper, HostDirLower(lower)) == []


def test_whiteout_of_missing_name_and_in_opaque_dir_is_ignored(layers):
    lower, upper = layers
    put(lower, "d/x", "x")
    put(lower, "d/y", "y")
    whiteout(upper, "nothing-here")
    mkdir(upper, "d")
    opaque(upper, "d")
    whiteout(upper, "d/x")
    assert lines(changes.diff(upper, HostDirLower(lower))) == ["D /d/x", "D /d/y"]


def test_opaque_hides_the_lower_below_recreated_subdirectories(layers):
    lower, upper = layers
    put(lower, "d/sub/keep", "k")
    put(lower, "d/sub/lost", "l")
    mkdir(upper, "d")
    opaque(upper, "d")
    mkdir(upper, "d/sub")
    put(upper, "d/sub/keep", "k")
    assert lines(changes.diff(upper, HostDirLower(lower))) == ["D /d/sub/lost"]


def test_lower_symlinks_are_not_followed_by_lookups(layers):
    lower, upper = layers
    put(lower, "real/f", "f")
    link(lower, "alias", "real")
    mkdir(upper, "alias")           # the guest replaced the symlink by a directory
    opaque(upper, "alias")
    put(upper, "alias/f", "f")
    assert lines(changes.diff(upper, HostDirLower(lower))) == ["M /alias", "A /alias/f"]


def test_unprintable_names_are_quoted(layers):
    lower, upper = layers
    put(upper, "new\nline", "x")
    put(upper, os.fsdecode(b"bad\xff"), "x")
    put(upper, "caf\u00e9", "x")
    assert sorted(lines(changes.diff(upper, HostDirLower(lower)))) == \
        ['A "/bad\\377"', 'A "/new\\nline"', "A /caf\u00e9"]


# The tar lower -------------------------------------------------------------------

class FakeEntry:
    def __init__(self, mode, data=b"", linkname="", rdev=0):
        self.mode, self.data, self.linkname, self.rdev = mode, data, linkname, rdev
        self.size, self.uid, self.gid, self.mtime_ns, self.ino, self.nlink = \
            len(data), 0, 0, 0, 0, 1

    @property
    def kind(self):
        return stat.S_IFMT(self.mode)


class FakeTree:
    """The three methods of tarimage.TarTree, over a dict."""

    def __init__(self, entries):
        self.entries = {"": FakeEntry(stat.S_IFDIR | 0o755), **entries}

    def lookup(self, relpath):
        return self.entries.get(relpath)

    def children(self, relpath):
        prefix = relpath + "/" if relpath else ""
        return [(k[len(prefix):], e) for k, e in self.entries.items()
                if k and k.startswith(prefix) and "/" not in k[len(prefix):]]

    def read(self, entry, offset=0, size=-1):
        return entry.data[offset:] if size < 0 else entry.data[offset:offset + size]


def fake_image():
    return FakeTree({
        "etc": FakeEntry(stat.S_IFDIR | 0o755),
        "etc/hosts": FakeEntry(stat.S_IFREG | 0o644, b"127.0.0.1 localhost\n"),
        "etc/motd": FakeEntry(stat.S_IFREG | 0o644, b"hello\n"),
        "etc/old": FakeEntry(stat.S_IFREG | 0o644, b"old\n"),
        "bin": FakeEntry(stat.S_IFDIR | 0o755),
        "bin/sh": FakeEntry(stat.S_IFLNK | 0o777, linkname="busybox"),
        "usr": FakeEntry(stat.S_IFDIR | 0o755),
        "usr/lib": FakeEntry(stat.S_IFDIR | 0o755),
        "usr/lib/x.so": FakeEntry(stat.S_IFREG | 0o644, b"elf"),
    })


def test_diff_against_a_tar_lower(layers):
    _lower, upper = layers
    mkdir(upper, "etc")
    put(upper, "etc/hosts", "127.0.0.1 localhost\n")
    put(upper, "etc/motd", "HELLO\n")
    whiteout(upper, "etc/old")
    mkdir(upper, "bin")
    link(upper, "bin/sh", "busybox")
    whiteout(upper, "usr")
    put(upper, "root-file", "r")
    assert lines(changes.diff(upper, TarLower(fake_image()))) == \
        ["M /etc/motd", "D /etc/old", "A /root-file", "D /usr"]


def test_commit_with_a_separate_lower_refuses_target_symlinks(layers, tmp_path):
    """The image says etc is a directory, but the target has a symlink
    there: commit must not write through it."""
    _lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    target = mkdir(tmp_path, "target")
    link(target, "etc", str(outside))
    mkdir(upper, "etc")
    put(upper, "etc/hosts", "evil")
    with pytest.raises(changes.LayerError, match="not followed"):
        changes.commit(upper, target, lower=TarLower(fake_image()))
    assert os.listdir(outside) == []
    assert os.listdir(upper)            # a failed commit keeps the upper layer


def _tarimage_or_skip():
    try:
        from umlpy.kernel.vfs import tarimage
    except ImportError:
        pytest.skip("umlpy.kernel.vfs.tarimage is not written yet")
    return tarimage


def test_cli_diff_with_a_real_tar_image(layers, tmp_path, capsys):
    _tarimage_or_skip()
    import tarfile
    lower, upper = layers
    put(lower, "etc/hosts", "h")
    put(lower, "etc/old", "o")
    image = tmp_path / "img.tar"
    with tarfile.open(image, "w") as tar:
        tar.add(lower, arcname=".")
    mkdir(upper, "etc")
    whiteout(upper, "etc/old")
    put(upper, "etc/new", "n")
    assert main_diff(["--upper", str(upper), "--rootfs", str(image)]) == 0
    assert capsys.readouterr().out == "A /etc/new\nD /etc/old\n"


# Symlinks planted by the guest ----------------------------------------------------

def test_planted_symlinks_are_copied_not_followed(layers, tmp_path):
    lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    put(outside, "passwd", "host secret")
    put(lower, "etc/passwd", "guest")
    link(upper, "evil", str(outside))            # a symlink the guest made
    link(upper, "evil2", "../outside")
    mkdir(upper, "etc")
    link(upper, "etc/passwd", str(outside / "passwd"))
    target = copy_of(lower, tmp_path / "target")
    changes.commit(upper, target)
    assert os.readlink(target / "evil") == str(outside)
    assert os.readlink(target / "etc/passwd") == str(outside / "passwd")
    assert sorted(os.listdir(outside)) == ["passwd"]
    assert (outside / "passwd").read_text() == "host secret"


def test_upper_swapped_to_a_symlink_during_commit_writes_nothing_outside(layers, tmp_path):
    lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    mkdir(upper, "evil")
    put(upper, "evil/passwd", "x")
    scan_fd = os.open(upper, os.O_RDONLY)
    found = changes._scan(scan_fd, HostDirLower(lower))
    os.close(scan_fd)
    # the guest swaps the directory for a symlink after the scan
    os.rename(upper / "evil", tmp_path / "moved")
    link(upper, "evil", str(outside))
    target = mkdir(tmp_path, "target")
    upper_fd, target_fd = os.open(upper, os.O_RDONLY), os.open(target, os.O_RDONLY)
    try:
        with pytest.raises(changes.LayerError):
            changes._Applier(upper_fd, target_fd).apply(found)
    finally:
        os.close(upper_fd)
        os.close(target_fd)
    assert os.listdir(outside) == []


def test_lower_symlink_replaced_by_a_directory_is_replaced_in_the_target(layers, tmp_path):
    lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    link(lower, "data", str(outside))
    mkdir(upper, "data")
    opaque(upper, "data")
    put(upper, "data/passwd", "mine")
    target = copy_of(lower, tmp_path / "target")
    changes.commit(upper, target)
    assert not os.path.islink(target / "data")
    assert (target / "data/passwd").read_text() == "mine"
    assert os.listdir(outside) == []


# discard -----------------------------------------------------------------------------

def test_discard_empties_without_following_symlinks(layers, tmp_path):
    _lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    put(outside, "keep", "k")
    link(upper, "to-outside", str(outside))
    put(upper, "a/b/c", "c")
    whiteout(upper, "gone")
    mkdir(upper, "locked/inner")
    put(upper, "locked/inner/f", "f")
    os.chmod(upper / "locked/inner", 0o500)
    os.chmod(upper / "locked", 0)
    assert changes.discard(upper) == 8
    assert os.listdir(upper) == []
    assert os.listdir(outside) == ["keep"]


def test_discard_of_a_very_deep_tree(layers):
    _lower, upper = layers
    fd = os.open(upper, os.O_RDONLY)
    for _ in range(300):            # deeper than PATH_MAX allows by name
        os.mkdir("d" * 20, dir_fd=fd)
        new = os.open("d" * 20, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    assert changes.discard(upper) == 301
    assert os.listdir(upper) == []


def test_a_very_deep_upper_is_compared_and_applied_with_few_fds(layers, tmp_path):
    """Deeper than Python's recursion limit (issue 12): the scan holds one
    directory fd, the commit's chains a few per 64 levels."""
    lower, upper = layers
    depth = 1500
    fd = os.open(upper, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        new = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    fds = len(os.listdir("/proc/self/fd"))
    got = changes.diff(upper, HostDirLower(lower))
    assert len(got) == depth + 1 and got[-1].path == "/d" * depth + "/f"
    target = tmp_path / "deep-target"
    target.mkdir()
    try:
        _commit_with_few_fds(upper, target, lower, fds, depth)
    finally:        # pytest's own clean-up of tmp_path recurses
        from umlpy.kernel.vfs.tmpdirs import remove_tree
        remove_tree(str(target))
        changes.discard(upper)


def _commit_with_few_fds(upper, target, lower, fds, depth):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds + 200, hard))
    try:
        changes.commit(upper, target, lower=HostDirLower(lower))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(os.listdir("/proc/self/fd")) <= fds      # none left open
    assert os.listdir(upper) == []
    assert changes.diff(upper, HostDirLower(lower)) == []
    assert changes.discard(target) == depth + 1


def test_discard_refuses_the_host_root():
    with pytest.raises(BadInput):
        changes.discard("/")


# The command line ------------------------------------------------------------------

def one_line_error(capsys, status, got, *fragments):
    out, err = capsys.readouterr()
    assert got == status, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("umlpy")
    for fragment in fragments:
        assert fragment in err, err


def test_cli_diff_prints_changes_and_json(layers, capsys):
    lower, upper = layers
    build_scenario(lower, upper)
    assert main_diff(["--upper", str(upper), "--rootfs", str(lower)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{c.line()}" for c in
                                (Change(*e) for e in EXPECTED)]
    assert out.splitlines()[5] == "M /home/u"
    assert main_diff([f"--upper={upper}", "--rootfs", str(lower), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == \
        [{"kind": k, "path": p, "type": t} for k, p, t in EXPECTED]


def test_cli_diff_default_lower_is_the_host_root(layers, capsys):
    _lower, upper = layers
    put(upper, "umlpy-test-no-such-file-xyz", "x")
    whiteout(upper, "umlpy-test-no-such-dir-xyz")
    assert main_diff(["--upper", str(upper)]) == 0
    assert capsys.readouterr().out == "A /umlpy-test-no-such-file-xyz\n"


@pytest.mark.parametrize("argv, fragments", [
    (["--rootfs", "/"], ["--upper DIR is required"]),
    (["--upper"], ["--upper needs a value"]),
    (["--upper", "/nonexistent-umlpy-xyz"], ["/nonexistent-umlpy-xyz", "No such file"]),
    (["--upper", "FILE"], ["not a directory"]),
    (["--upper", "UPPER", "--rootfs", "/nonexistent-umlpy-img.tar"], ["No such file"]),
    (["--upper", "UPPER", "--layer", "x.tar"], ["--layer"]),
    (["--upper", "UPPER", "--bogus"], ["unknown option --bogus"]),
    (["--upper", "UPPER", "stray"], ["unexpected argument"]),
    (["--upper", "UPPER", "--json=yes"], ["takes no value"]),
])
def test_cli_diff_bad_usage(layers, tmp_path, capsys, argv, fragments):
    one_line_error(capsys, 2, main_diff(fill_in(argv, layers, tmp_path)), *fragments)


def fill_in(argv, layers, tmp_path):
    names = {"UPPER": str(layers[1]), "FILE": str(put(tmp_path, "a-file", "x"))}
    return [names.get(a, a) for a in argv]


def test_cli_without_arguments_prints_usage(capsys):
    assert main_diff([]) == 2
    assert capsys.readouterr().err == f"usage: {DIFF_USAGE}\n"


def test_cli_diff_bad_tar_image(layers, tmp_path, capsys):
    _tarimage_or_skip()
    junk = put(tmp_path, "junk.tar", b"\x01" * 1000)
    one_line_error(capsys, 2, main_diff(["--upper", str(layers[1]), "--rootfs", str(junk)]),
                   "junk.tar")


def test_cli_help(capsys):
    assert main_diff(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: umlpy diff {--upper DIR | NAME}")


def test_cli_commit(layers, tmp_path, capsys):
    lower, upper = layers
    build_scenario(lower, upper)
    expected = merged_view(lower, upper)
    target = copy_of(lower, tmp_path / "target")
    before = snapshot(target)

    assert main_commit(["--upper", str(upper), "--to", str(target), "--dry-run"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(EXPECTED)
    assert snapshot(target) == before and os.listdir(upper)

    assert main_commit(["--upper", str(upper), "--to", str(target), "--keep"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "M /bin/sh"
    assert snapshot(target) == expected and os.listdir(upper)

    assert main_commit(["--upper", str(upper), "--rootfs", str(target)]) == 0
    assert capsys.readouterr().out == ""          # nothing left to change
    assert os.listdir(upper) == []


def test_cli_commit_to_the_host_root_needs_an_explicit_to(layers, capsys):
    _lower, upper = layers
    put(upper, "umlpy-test-must-not-appear", "x")
    one_line_error(capsys, 2, main_commit(["--upper", str(upper)]), "--to /")
    one_line_error(capsys, 2, main_commit(["--upper", str(upper), "--rootfs", "/"]), "--to /")
    assert not os.path.exists("/umlpy-test-must-not-appear")
    assert main_commit(["--upper", str(upper), "--to", "/", "--dry-run"]) == 0
    assert capsys.readouterr().out == "A /umlpy-test-must-not-appear\n"
    assert not os.path.exists("/umlpy-test-must-not-appear")


@pytest.mark.parametrize("argv, fragments", [
    (["--upper", "UPPER", "--to", "/nonexistent-umlpy-xyz"], ["No such file"]),
    (["--upper", "UPPER", "--to", "UPPER"], ["its own target"]),
    (["--upper", "UPPER", "--rootfs", "FILE"], ["not a directory"]),
    (["--upper", "UPPER", "--keep=1"], ["takes no value"]),
])
def test_cli_commit_bad_usage(layers, tmp_path, capsys, argv, fragments):
    one_line_error(capsys, 2, main_commit(fill_in(argv, layers, tmp_path)), *fragments)


def test_cli_commit_failure_is_one_line(layers, tmp_path, capsys):
    _lower, upper = layers
    outside = mkdir(tmp_path, "outside")
    target = mkdir(tmp_path, "target")
    link(target, "etc", str(outside))
    mkdir(upper, "etc")
    put(upper, "etc/x", "x")
    # against its own lower (the target), etc is a symlink replaced by a dir
    assert main_commit(["--upper", str(upper), "--to", str(target), "--keep"]) == 0
    capsys.readouterr()
    assert os.listdir(outside) == []
    # against a lower whose etc is a directory, the target's symlink is refused
    link(target, "etc2", str(outside))
    mkdir(upper, "etc2")
    put(upper, "etc2/x", "x")
    mkdir(tmp_path, "lower2/etc2")
    mkdir(tmp_path, "lower2/etc")
    one_line_error(capsys, 1, main_commit(["--upper", str(upper), "--to", str(target),
                                           "--rootfs", str(tmp_path / "lower2")]),
                   "/etc2", "not followed")
    assert os.listdir(outside) == []


def test_cli_discard(layers, capsys):
    _lower, upper = layers
    put(upper, "a/b", "b")
    whiteout(upper, "c")
    assert main_discard(["--upper", str(upper)]) == 0
    assert capsys.readouterr().out == "dropped 3 entries\n"
    assert os.listdir(upper) == []
    one_line_error(capsys, 2, main_discard(["--upper", "/nonexistent-umlpy-xyz"]),
                   "No such file")
    one_line_error(capsys, 2, main_discard(["--upper", "/"]), "refusing")


def test_module_entry_point(layers):
    _lower, upper = layers
    put(upper, "x", "x")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "umlpy.changes_cli", "discard", "--upper",
                        str(upper)], capture_output=True, env=env, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"dropped 1 entry\n", b"")
    p = subprocess.run([sys.executable, "-m", "umlpy.changes_cli", "diff"],
                       capture_output=True, env=env, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith(b"usage: umlpy diff")


# The property: commit(upper) == the same operations done directly ----------------------

NAMES = ["a", "b", "c"]
PATHS = [p for p in (
    [x for x in NAMES] + [f"{x}/{y}" for x in NAMES for y in NAMES] +
    [f"{x}/{y}/{z}" for x in NAMES for y in NAMES for z in NAMES])]
DATA = [b"", b"x", b"lower-a", b"yy", b"x" * 5000]
FILE_MODES = [0o644, 0o600, 0o755, 0o4755]
DIR_MODES = [0o755, 0o700, 0o775]

operations = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PATHS), st.sampled_from(DATA)),
    st.tuples(st.just("mkdir"), st.sampled_from(PATHS)),
    st.tuples(st.just("remove"), st.sampled_from(PATHS)),
    st.tuples(st.just("chmod"), st.sampled_from(PATHS), st.sampled_from(FILE_MODES + DIR_MODES)),
    st.tuples(st.just("symlink"), st.sampled_from(PATHS), st.sampled_from(["a", "../b", "/none"])),
), max_size=25)


def build_lower(lower):
    put(lower, "a", "lower-a")
    put(lower, "b/a", "x", 0o600)
    put(lower, "b/b/c", "deep")
    mkdir(lower, "b/c")
    link(lower, "c", "b")
    mkdir(lower, "b", 0o755)


def kind_at(root, rel):
    """None, or the lstat kind, only if every parent is a real directory
    (the ops never go through a symlink: the truth's host calls would
    follow it)."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        try:
            if not stat.S_ISDIR(os.lstat(Path(root, *parts[:i])).st_mode):
                return "blocked"
        except FileNotFoundError:
            return "blocked"
    try:
        return stat.S_IFMT(os.lstat(Path(root, rel)).st_mode)
    except FileNotFoundError:
        return None


class Overlay:
    """The VFS's upper-layer writing, as this test understands the layout."""

    def __init__(self, lower, upper):
        self.lower, self.upper = lower, upper

    def lower_shows(self, rel):
        """Does the lower object at rel (if any) show through the upper?"""
        parts = rel.split("/")
        for i in range(len(parts)):
            prefix = "/".join(parts[:i + 1])
            parent = "/".join(parts[:i])
            if os.path.lexists(Path(self.upper, parent, WH + parts[i])):
                return False
            if os.path.lexists(Path(self.upper, parent, OPAQUE)):
                return False
            if i < len(parts) - 1:
                if kind_at(self.lower, prefix) != stat.S_IFDIR:
                    return False
                up = Path(self.upper, prefix)
                if os.path.lexists(up) and not up.is_dir():
                    return False
        return os.path.lexists(Path(self.lower, rel))

    def copy_parents(self, rel):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if not os.path.lexists(Path(self.upper, d)):
                os.mkdir(Path(self.upper, d))
                shutil.copystat(Path(self.lower, d), Path(self.upper, d))

    def copy_self(self, rel):
        self.copy_parents(rel)
        if os.path.lexists(Path(self.upper, rel)) or not self.lower_shows(rel):
            return
        src = Path(self.lower, rel)
        if src.is_symlink():
            os.symlink(os.readlink(src), Path(self.upper, rel))
        elif src.is_dir():
            os.mkdir(Path(self.upper, rel))
            shutil.copystat(src, Path(self.upper, rel))
        else:
            shutil.copy2(src, Path(self.upper, rel))

    def make_room(self, rel):
        """Before creating rel: drop its whiteout; a lower object of that
        name that was deleted means a new directory must be opaque."""
        self.copy_parents(rel)
        parent, _, name = rel.rpartition("/")
        wh = Path(self.upper, parent, WH + name)
        if os.path.lexists(wh):
            os.unlink(wh)
            return True
        return False

    def write(self, rel, data):
        self.copy_self(rel)
        if not os.path.lexists(Path(self.upper, rel)):
            self.make_room(rel)
        Path(self.upper, rel).write_bytes(data)

    def mkdir(self, rel):
        replaced = self.make_room(rel)
        os.mkdir(Path(self.upper, rel))
        if replaced:
            Path(self.upper, rel, OPAQUE).write_bytes(b"")

    def symlink(self, rel, dest):
        self.make_room(rel)
        os.symlink(dest, Path(self.upper, rel))

    def remove(self, rel):
        self.copy_parents(rel)
        up = Path(self.upper, rel)
        if os.path.lexists(up):
            remove_any(up)
        if self.lower_shows(rel):
            parent, _, name = rel.rpartition("/")
            Path(self.upper, parent, WH + name).write_bytes(b"")

    def chmod(self, rel, mode):
        self.copy_self(rel)
        os.chmod(Path(self.upper, rel), mode)


def remove_any(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def apply_both(truth, overlay, op):
    name, rel = op[0], op[1]
    kind = kind_at(truth, rel)
    if kind == "blocked":
        return
    host = Path(truth, rel)
    if name == "write" and kind in (None, stat.S_IFREG):
        host.write_bytes(op[2])
        overlay.write(rel, op[2])
    elif name == "mkdir" and kind is None:
        os.mkdir(host)
        overlay.mkdir(rel)
    elif name == "symlink" and kind is None:
        os.symlink(op[2], host)
        overlay.symlink(rel, op[2])
    elif name == "remove" and kind is not None:
        remove_any(host)
        overlay.remove(rel)
    elif name == "chmod" and kind in (stat.S_IFREG, stat.S_IFDIR):
        if op[2] in (DIR_MODES if kind == stat.S_IFDIR else FILE_MODES):
            os.chmod(host, op[2])
            overlay.chmod(rel, op[2])


def expected_diff(before, after):
    """The diff rules, stated on two snapshots."""
    out = []
    for rel, now in after.items():
        was = before.get(rel)
        if was is None:
            out.append(("added", rel, now[0]))
        elif was[0] != now[0]:
            out.append(("modified", rel, now[0]))
        elif now[0] == "dir" and was[1] != now[1] or now[0] != "dir" and was != now:
            out.append(("modified", rel, now[0]))
    for rel, was in before.items():
        parent = rel.rpartition("/")[0]
        if rel not in after and (not parent or (after.get(parent, ("",))[0] == "dir"
                                                and before[parent][0] == "dir")):
            out.append(("deleted", rel, was[0]))
    return sorted((k, "/" + r, t) for k, r, t in out)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_commit_of_the_upper_equals_the_operations_done_directly(ops):
    with tempfile.TemporaryDirectory() as tmp:
        lower, upper = Path(tmp, "lower"), Path(tmp, "upper")
        lower.mkdir()
        upper.mkdir()
        build_lower(lower)
        truth = copy_of(lower, Path(tmp, "truth"))
        overlay = Overlay(lower, upper)
        for op in ops:
            apply_both(truth, overlay, op)
        want = snapshot(truth)
        assert merged_view(lower, upper) == want

        got = changes.diff(upper, HostDirLower(lower))
        assert sorted((c.kind, c.path, c.type) for c in got) == \
            expected_diff(snapshot(lower), want)
        assert [c.path for c in got] == sorted((c.path for c in got),
                                               key=lambda p: p.split("/"))

        target = copy_of(lower, Path(tmp, "target"))
        changes.commit(upper, target)
        assert snapshot(target) == want
        assert os.listdir(upper) == []
