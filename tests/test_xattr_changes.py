"""`umlpy diff` and `umlpy commit` and the guest's extended attributes
(issue 13): an attribute-only change is a modification, and a commit
gives the target the attributes as the guest saw them: user.* as user.*,
the emulated trusted.* and security.capability under their real names
when the committer may set them (root; otherwise they are skipped with one
note line), umlpy's own reserved user.umlpy.* records never."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AS_ROOT, UMLPY, _env, open_up, run_umlpy

from umlpy.kernel.vfs import changes, hostops, setid, xattrstore
from umlpy.kernel.vfs.changes import HostDirLower, TarLower

needs_root = pytest.mark.skipif(not AS_ROOT, reason="trusted.* on the host needs root")
RESERVED = "user.umlpy."
CAPS_V2 = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")


def put(root, rel, data=b"x", mode=0o644, **attrs):
    p = Path(root, rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    for name, value in attrs.items():
        os.setxattr(p, name.replace("__", "."), value)
    return p


def xattrs_of(path):
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in os.listxattr(path, follow_symlinks=False)}


def copied_up(lower, upper, rel):
    """What the VFS's copy-up leaves: the data, the mode, the times, the
    user.* attributes (the emulated ones would be behind user.umlpy.)."""
    src, dst = Path(lower, rel), Path(upper, rel)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        dst.mkdir()
    else:
        dst.write_bytes(src.read_bytes())
    os.chmod(dst, stat.S_IMODE(src.stat().st_mode))
    for name, value in xattrs_of(src).items():
        os.setxattr(dst, name if name.startswith("user.") else RESERVED + name, value)
    os.utime(dst, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))
    return dst


def set_id(upper, rel, mode):
    """What the VFS records for a set-ID upper file (setid.py)."""
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        setid.mark(fd)
        assert setid.record(fd, rel, mode)
    finally:
        os.close(fd)


@pytest.fixture
def layers(tmp_path):
    lower, upper, target = tmp_path / "lower", tmp_path / "upper", tmp_path / "target"
    for d in (lower, upper, target):
        d.mkdir()
    put(lower, "same", b"s", user__a=b"1")
    put(lower, "setattr", b"f", user__a=b"1")
    put(lower, "changed", b"c", user__a=b"1")
    put(lower, "removed", b"r", user__a=b"1", user__b=b"2")
    put(lower, "trusted", b"t")
    os.mkdir(lower / "d")
    os.setxattr(lower / "d", "user.gone", b"g")
    for rel in ("same", "setattr", "changed", "removed", "trusted", "d"):
        copied_up(lower, upper, rel)
    os.setxattr(upper / "setattr", "user.new", b"N")
    os.setxattr(upper / "changed", "user.a", b"2")
    os.removexattr(upper / "removed", "user.b")
    os.setxattr(upper / "trusted", RESERVED + "trusted.t", b"T")
    os.setxattr(upper / "trusted", RESERVED + "security.capability", CAPS_V2)
    os.removexattr(upper / "d", "user.gone")
    os.setxattr(upper / "d", "user.dir", b"D")
    return lower, upper, target


WANT = ["M /changed", "M /d", "M /removed", "M /setattr", "M /trusted"]


def guest_changes_then_diff(code, lower, upper, want_stdout, modified):
    """Python code run in the guest over lower (its argv[1]) with a kept
    upper prints want_stdout, and `umlpy diff` then lists each of modified
    as "M"; the lower's path as diff names it, without its leading /."""
    p = run_umlpy([sys.executable, "-c", code, str(lower)], options=["--upper", str(upper)],
                  host_root=False)
    assert p.stdout == want_stdout, p.stderr
    p = subprocess.run(UMLPY + ["diff", "--upper", str(upper)], capture_output=True,
                       env=_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    rel = str(lower)[1:]
    for name in modified:
        assert f"M /{rel}/{name}" in p.stdout.decode().split("\n"), p.stdout
    return rel


def test_diff_sees_attribute_only_changes(layers):
    lower, upper, _ = layers
    assert [c.line() for c in changes.diff(str(upper), HostDirLower(str(lower)))] == WANT


def test_set_id_record_is_no_attribute_change(layers):
    """user.umlpy.setid is umlpy's record of the mode (counted there), not
    an attribute of the guest's."""
    lower, upper, _ = layers
    put(lower, "suid", b"s", 0o4755)
    copied_up(lower, upper, "suid")
    os.chmod(upper / "suid", 0o755)
    set_id(upper, "suid", 0o4755)
    assert "M /suid" not in [c.line() for c in changes.diff(str(upper),
                                                             HostDirLower(str(lower)))]


@needs_root
def test_commit_applies_the_guests_attributes(layers):
    lower, upper, target = layers
    os.rmdir(target)
    subprocess.run(["cp", "-a", "--preserve=all", str(lower), str(target)], check=True)
    put(upper, "suid", b"#!/bin/sh\n", 0o755, user__s=b"S")
    set_id(upper, "suid", 0o4755)
    applied = changes.commit(str(upper), str(target), keep=True)
    assert [c.line() for c in applied] == WANT[:4] + ["A /suid"] + WANT[4:]
    assert xattrs_of(target / "same") == {"user.a": b"1"}
    assert xattrs_of(target / "setattr") == {"user.a": b"1", "user.new": b"N"}
    assert xattrs_of(target / "changed") == {"user.a": b"2"}
    assert xattrs_of(target / "removed") == {"user.a": b"1"}
    assert xattrs_of(target / "trusted") == {"trusted.t": b"T",
                                             "security.capability": CAPS_V2}
    assert xattrs_of(target / "d") == {"user.dir": b"D"}
    # the set-ID record becomes the mode, never an attribute
    assert xattrs_of(target / "suid") == {"user.s": b"S"}
    assert stat.S_IMODE(os.stat(target / "suid").st_mode) == 0o4755


@needs_root
def test_commit_by_a_user_skips_what_only_root_may_set(layers, tmp_path):
    """Run as uid 65534: user.* applied, trusted.* and security.capability
    skipped with one note line, and the commit goes on to the end."""
    lower, upper, target = layers
    for p in (tmp_path, lower, upper, target, *lower.rglob("*"), *upper.rglob("*")):
        os.chown(p, 65534, 65534, follow_symlinks=False)
    os.rmdir(target)
    os.mkdir(target)
    os.chown(target, 65534, 65534)
    open_up(tmp_path)
    p = subprocess.run(UMLPY + ["commit", "--upper", str(upper), "--rootfs", str(lower),
                                "--to", str(target)], capture_output=True, env=_env(),
                       timeout=120, user=65534, group=65534)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split("\n") == WANT + [""]
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "umlpy commit: note:" in err and "/trusted" in err, err
    assert xattrs_of(target / "setattr") == {"user.a": b"1", "user.new": b"N"}
    assert xattrs_of(target / "trusted") == {}
    assert xattrs_of(target / "d") == {"user.dir": b"D"}


class Entry:
    def __init__(self, mode, data=b"", xattrs=None):
        self.mode, self.data, self.linkname, self.rdev = mode, data, None, 0
        self.size = len(data)
        self.xattrs = xattrs


class Tree:
    def __init__(self, entries):
        self.entries = entries

    def lookup(self, rel):
        return self.entries.get(rel)

    def children(self, rel):
        return [(k, e) for k, e in self.entries.items() if "/" not in k] if not rel else []

    def read(self, entry, offset=0, size=-1):
        return entry.data[offset:] if size < 0 else entry.data[offset:offset + size]

    def xattrs(self, entry):
        return entry.xattrs or ()


def test_diff_against_an_images_attributes(tmp_path):
    """An image file copied up with its attributes is no change; one whose
    emulated attribute the guest changed is."""
    image = TarLower(Tree({
        "kept": Entry(stat.S_IFREG | 0o644, b"k", (("user.a", b"1"), ("trusted.t", b"T"))),
        "edited": Entry(stat.S_IFREG | 0o644, b"e", (("trusted.t", b"T"),)),
    }))
    upper = tmp_path / "upper"
    put(upper, "kept", b"k", user__a=b"1", user__umlpy__trusted__t=b"T")
    put(upper, "edited", b"e", user__umlpy__trusted__t=b"U")
    assert [c.line() for c in changes.diff(str(upper), image)] == ["M /edited"]


@needs_root
def test_a_guests_setfattr_is_diffed_and_committed(tmp_path):
    """End to end: the guest sets attributes on a lower file (copying it
    up); umlpy diff lists it, umlpy commit gives the target its
    attributes as the guest saw them."""
    lower = tmp_path / "lower"
    put(lower, "f", b"data\n", 0o666, user__a=b"1")
    put(lower, "g", b"data\n", 0o666)
    open_up(tmp_path)
    upper = tmp_path / "upper"
    code = ("import os, sys; d = sys.argv[1]; os.setxattr(d + '/f', 'user.b', b'2'); "
            "os.setxattr(d + '/g', 'trusted.t', b'T'); "
            "print(sorted(os.listxattr(d + '/f')), sorted(os.listxattr(d + '/g')))")
    rel = guest_changes_then_diff(code, lower, upper, b"['user.a', 'user.b'] ['trusted.t']\n",
                                  ["f", "g"])
    target = tmp_path / "target"
    (target / rel).mkdir(parents=True)
    p = subprocess.run(UMLPY + ["commit", "--upper", str(upper), "--rootfs", "/", "--to",
                                str(target), "--keep"], capture_output=True, env=_env(),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert xattrs_of(target / rel / "f") == {"user.a": b"1", "user.b": b"2"}
    assert xattrs_of(target / rel / "g") == {"trusted.t": b"T"}


def keep_record(upper, rel, attrs, born=None):
    """What the VFS keeps for an upper object that cannot hold a user.*
    attribute (a symlink, a FIFO): a record in xattrstore.DIR under its
    key (born: another birth time, a stale record of a reused inode)."""
    key = hostops.path_key(str(Path(upper, rel)))
    if born is not None:
        key = (*key[:3], born)
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert xattrstore.Store(fd, str(upper)).save(key, attrs, str(Path(upper, rel)))
    finally:
        os.close(fd)


@pytest.fixture
def special(tmp_path):
    """A lower with symlinks and a FIFO; their copies in the upper, some
    with emulated attributes the guest set (records), one with a stale
    record of an earlier object of its inode number."""
    lower, upper, target = tmp_path / "lower", tmp_path / "upper", tmp_path / "target"
    for d in (lower, upper, target):
        d.mkdir()
    for root in (lower, upper):
        os.symlink("there", root / "link")
        os.symlink("there", root / "plain")
        os.symlink("there", root / "stale")
        os.mkfifo(root / "fifo", 0o640)
    os.symlink("new", upper / "added")
    keep_record(upper, "link", {"trusted.t": b"T", "security.capability": CAPS_V2})
    keep_record(upper, "fifo", {"trusted.f": b"F"})
    keep_record(upper, "added", {"trusted.a": b"A"})
    keep_record(upper, "stale", {"trusted.s": b"S"}, born=(1, 2))
    return lower, upper, target


SPECIAL = ["A /added", "M /fifo", "M /link"]


def test_diff_counts_the_emulated_attributes_of_symlinks_and_fifos(special):
    """A symlink or FIFO keeps its emulated attributes in the records, not
    on the host object: an attribute-only change is still an M."""
    lower, upper, _ = special
    assert [c.line() for c in changes.diff(str(upper), HostDirLower(str(lower)))] == SPECIAL


def test_diff_of_a_symlink_against_an_images_attributes(tmp_path):
    """A copied-up symlink whose records hold the image's attributes is no
    change; one whose records differ is."""
    link = stat.S_IFLNK | 0o777
    kept = Entry(link, xattrs=(("trusted.t", b"T"),))
    edited = Entry(link, xattrs=(("trusted.t", b"T"),))
    kept.linkname = edited.linkname = "there"
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink("there", upper / "kept")
    os.symlink("there", upper / "edited")
    keep_record(upper, "kept", {"trusted.t": b"T"})
    keep_record(upper, "edited", {"trusted.t": b"U"})
    # an image may claim a user.* attribute of a symlink's, which Linux
    # lets no symlink hold (nor a copy-up give it): no change either
    claims = Entry(link, xattrs=(("trusted.t", b"T"), ("user.u", b"U")))
    claims.linkname = "there"
    os.symlink("there", upper / "claims")
    keep_record(upper, "claims", {"trusted.t": b"T"})
    image = TarLower(Tree({"kept": kept, "edited": edited, "claims": claims}))
    assert [c.line() for c in changes.diff(str(upper), image)] == ["M /edited"]


@needs_root
def test_commit_gives_symlinks_and_fifos_their_real_attributes(special):
    """As root the target's symlink and FIFO get trusted.* and
    security.capability themselves (lsetxattr, never followed)."""
    lower, upper, target = special
    os.rmdir(target)
    subprocess.run(["cp", "-a", str(lower), str(target)], check=True)
    skipped = []
    applied = changes.commit(str(upper), str(target), keep=True, skipped=skipped)
    assert [c.line() for c in applied] == SPECIAL and skipped == []
    assert os.readlink(target / "link") == "there"
    assert xattrs_of(target / "link") == {"trusted.t": b"T", "security.capability": CAPS_V2}
    assert xattrs_of(target / "fifo") == {"trusted.f": b"F"}
    assert xattrs_of(target / "added") == {"trusted.a": b"A"}
    assert xattrs_of(target / "stale") == {} and xattrs_of(target / "plain") == {}
    assert not os.path.exists(target / "there")        # nothing was followed


@needs_root
def test_commit_by_a_user_skips_a_symlinks_trusted_attributes(special, tmp_path):
    """As uid 65534 Linux lets no one but CAP_SYS_ADMIN set trusted.* and
    no one but CAP_SETFCAP security.capability, on a symlink as anywhere
    (and user.* never on a symlink): the objects are committed, their
    attributes skipped and told on one note line."""
    lower, upper, target = special
    for p in (tmp_path, lower, upper, target, *lower.iterdir(), *upper.rglob("*")):
        os.chown(p, 65534, 65534, follow_symlinks=False)
    open_up(tmp_path)
    p = subprocess.run(UMLPY + ["commit", "--upper", str(upper), "--rootfs", str(lower),
                                "--to", str(target)], capture_output=True, env=_env(),
                       timeout=120, user=65534, group=65534)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split("\n") == SPECIAL + [""]
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "umlpy commit: note:" in err and "/link" in err, err
    assert os.readlink(target / "link") == "there"
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert xattrs_of(target / "link") == {} and xattrs_of(target / "fifo") == {}


@needs_root
def test_a_guests_lsetxattr_on_a_symlink_is_diffed_and_committed(tmp_path):
    """End to end: the guest sets trusted.* on a lower symlink (copying it
    up, the attribute in the records); umlpy diff lists it, umlpy commit
    gives the target's symlink the real attribute."""
    lower = tmp_path / "lower"
    lower.mkdir()
    os.symlink("nowhere", lower / "l")
    open_up(tmp_path)
    upper = tmp_path / "upper"
    code = ("import os, sys; p = sys.argv[1] + '/l'; "
            "os.setxattr(p, 'trusted.t', b'T', follow_symlinks=False); "
            "print(os.listxattr(p, follow_symlinks=False))")
    rel = guest_changes_then_diff(code, lower, upper, b"['trusted.t']\n", ["l"])
    target = tmp_path / "target"
    (target / rel).mkdir(parents=True)
    os.symlink("nowhere", target / rel / "l")
    p = subprocess.run(UMLPY + ["commit", "--upper", str(upper), "--rootfs", "/", "--to",
                                str(target), "--keep"], capture_output=True, env=_env(),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert xattrs_of(target / rel / "l") == {"trusted.t": b"T"}
