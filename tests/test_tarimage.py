"""The tar image tree (umlpy/kernel/vfs/tarimage.py) and the content cache
behind it: every answer is checked against what Python's tarfile
extraction puts on disk."""
import io
import multiprocessing
import os
import stat
import subprocess
import sys
import tarfile
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from umlpy.errors import BadInput, UmlpyError
from umlpy.kernel.vfs import contentcache, tarimage
from umlpy.kernel.vfs.contentcache import ContentCache
from umlpy.kernel.vfs.tarimage import open_image, stack_images

ROOT = os.geteuid() == 0
LONG = "a-rather-long-directory-name-" * 4          # > 100 chars with a file name
FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}


# ------------------------------------------------------------------ helpers

def member(name, data=None, type=None, **attrs):
    """A TarInfo and its data; a regular file when data is given."""
    info = tarfile.TarInfo(name)
    info.type = type if type is not None else tarfile.REGTYPE
    info.mode = 0o644
    info.mtime = 1_600_000_000
    if data is not None:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def d(name, **attrs):
    attrs.setdefault("mode", 0o755)
    return member(name, type=tarfile.DIRTYPE, **attrs)


def sym(name, target, **attrs):
    return member(name, type=tarfile.SYMTYPE, linkname=target, **attrs)


def hard(name, target, **attrs):
    return member(name, type=tarfile.LNKTYPE, linkname=target, **attrs)


def write_tar(path, members, format=tarfile.PAX_FORMAT, **kw):
    with tarfile.open(path, "w", format=format, **kw) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def extract(tar_path, dest):
    old = os.umask(0o022)       # implied directories: 0755, as the tree says
    try:
        os.makedirs(dest)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, numeric_owner=True)
    finally:
        os.umask(old)
    return str(dest)


def tree_paths(tree, relpath=""):
    """Every path reachable through children()."""
    yield relpath
    for name, entry in tree.children(relpath):
        child = f"{relpath}/{name}" if relpath else name
        if stat.S_ISDIR(entry.mode):
            yield from tree_paths(tree, child)
        else:
            yield child


def disk_paths(root):
    found = {"": os.lstat(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        for name in dirnames + filenames:
            path = f"{rel}/{name}" if rel else name
            found[path] = os.lstat(os.path.join(root, path))
    return found


def archive_names(tar_path):
    with tarfile.open(tar_path) as tar:
        return {tarimage._normalise(m.name) for m in tar.getmembers()}


def assert_matches_extraction(tree, tar_path, dest):
    """Every TarTree answer agrees with os.lstat of an extracted copy."""
    root = extract(tar_path, dest)
    disk = disk_paths(root)
    explicit = archive_names(tar_path)
    assert sorted(tree_paths(tree)) == sorted(disk)
    inodes = {}
    for rel, st in disk.items():
        entry = tree.lookup(rel)
        host = os.path.join(root, rel)
        assert entry is not None, rel
        assert entry.kind == stat.S_IFMT(st.st_mode), rel
        implied = rel not in explicit
        if rel:                              # the extraction root is not a member
            assert entry.mode == st.st_mode, (rel, oct(entry.mode), oct(st.st_mode))
        if ROOT and rel:
            assert (entry.uid, entry.gid) == (st.st_uid, st.st_gid), rel
        if not implied and not stat.S_ISLNK(st.st_mode):     # tarfile leaves symlink times
            assert entry.mtime_ns == st.st_mtime_ns, rel
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(host))
            assert [name for name, _ in tree.children(rel)] == names, rel
            subdirs = sum(stat.S_ISDIR(disk[f"{rel}/{n}" if rel else n].st_mode) for n in names)
            assert entry.nlink == 2 + subdirs, rel
        else:
            assert entry.size == st.st_size, rel
            assert entry.nlink == st.st_nlink, rel
            assert tree.children(rel) == [], rel
        if stat.S_ISREG(st.st_mode):
            with open(host, "rb") as f:
                assert tree.read(entry) == f.read(), rel
        if stat.S_ISLNK(st.st_mode):
            assert entry.linkname == os.readlink(host), rel
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            assert entry.rdev == st.st_rdev, rel
        # same host inode <=> same entry
        assert inodes.setdefault((st.st_dev, st.st_ino), entry.ino) == entry.ino, rel
    assert len(set(inodes.values())) == len(inodes)


@pytest.fixture
def world_tmp():
    """A temporary directory every uid can traverse (tmp_path is 0700)."""
    path = tempfile.mkdtemp(prefix="tarimage-test-")
    os.chmod(path, 0o755)
    yield path
    subprocess.run(["chmod", "-R", "u+w", path])
    subprocess.run(["rm", "-rf", path])


def sample_members(with_devices=ROOT):
    members = [
        d("etc", mtime=1_500_000_000),
        member("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", uid=0, gid=0),
        member("etc/shadow", b"root:*:1::::::\n", mode=0o600, gid=42),
        member(f"{LONG}/{LONG[:20]}/file", b"long name\n", mode=0o640, uid=1000, gid=1000),
        member("usr/bin/tool", b"\x7fELF" + bytes(3000), mode=0o755),
        # tarfile applies a link's own mode to the shared inode; writers repeat the target's
        hard("usr/bin/tool-alias", "usr/bin/tool", mode=0o755),
        hard("usr/bin/tool-again", "usr/bin/tool", mode=0o755),
        member("usr/bin/suid", b"#!/bin/sh\n", mode=0o4755),
        sym("bin", "usr/bin"),
        sym("usr/lib/very-long-link", "../../" + LONG + "/target/" + LONG),
        sym("dangling", "/nowhere/at/all"),
        member("empty", b""),
        member("dup", b"first version\n"),
        member("dup", b"second, longer version\n", mode=0o600),
        member("var/spool/fifo", type=tarfile.FIFOTYPE, mode=0o620),
        member("big-uid", b"x", uid=3_000_000, gid=2_500_000),
    ]
    if with_devices:
        members += [
            member("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
            member("dev/loop0", type=tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660, gid=6),
        ]
    return members


# ----------------------------------------------------- agreement with tar

@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_members_agree_with_extraction(tmp_path, fmt):
    tar = write_tar(tmp_path / "image.tar", sample_members(), FORMATS[fmt])
    with stack_images([tar]) as tree:
        assert_matches_extraction(tree, tar, tmp_path / "x")
        tool = tree.lookup("usr/bin/tool")
        assert tree.lookup("usr/bin/tool-alias") is tool and tool.nlink == 3
        assert tree.lookup("dup").size == len(b"second, longer version\n")
        assert tree.lookup("var/spool").mtime_ns == 0     # implied: synthesised
        assert tree.lookup("var/spool").mode == stat.S_IFDIR | 0o755


def test_ustar_prefix_names(tmp_path):
    name = "p" * 120 + "/file"                   # fits only with the ustar prefix field
    tar = write_tar(tmp_path / "u.tar", [member(name, b"ustar\n"), d("x"), sym("x/l", "../p/file")],
                    tarfile.USTAR_FORMAT)
    with stack_images(tar) as tree:
        assert_matches_extraction(tree, tar, tmp_path / "x")
        assert tree.read(tree.lookup(name)) == b"ustar\n"


def test_pax_global_header_and_fractional_mtime(tmp_path):
    tar = write_tar(tmp_path / "g.tar", [member("a", b"1"), member("b", b"2", mtime=1_600_000_000.5)],
                    tarfile.PAX_FORMAT, pax_headers={"uid": "4242", "gid": "4343"})
    with stack_images(tar) as tree:
        assert_matches_extraction(tree, tar, tmp_path / "x")
        assert (tree.lookup("a").uid, tree.lookup("a").gid) == (4242, 4343)
        assert tree.lookup("b").mtime_ns == 1_600_000_000_500_000_000


def test_names_are_normalised(tmp_path):
    tar = write_tar(tmp_path / "n.tar", [
        d("./", mode=0o700, mtime=7), member("/abs/file", b"a"), member("./rel/x", b"b"),
        member("a//b", b"c"), member("c/./d/", b"", type=tarfile.DIRTYPE),
    ])
    with stack_images(tar) as tree:
        assert tree.lookup("").mode == stat.S_IFDIR | 0o700 and tree.lookup("").mtime_ns == 7_000_000_000
        assert tree.read(tree.lookup("abs/file")) == b"a"
        assert tree.read(tree.lookup("rel/x")) == b"b"
        assert tree.read(tree.lookup("a/b")) == b"c"
        assert tree.lookup("c/d").kind == stat.S_IFDIR
        assert [n for n, _ in tree.children("")] == ["a", "abs", "c", "rel"]
        assert tree.lookup("/abs/file") is None and tree.lookup("./rel") is None


def test_duplicates_later_member_wins(tmp_path):
    tar = write_tar(tmp_path / "dup.tar", [
        d("dir", mode=0o700), member("dir/kept", b"k"), d("dir", mode=0o750, mtime=9),
        d("gone"), member("gone/child", b"c"), member("gone", b"now a file"),
        member("becomes-dir", b"f"), d("becomes-dir"), member("becomes-dir/x", b"x"),
        sym("link", "a"), member("link", b"file now"),
    ])
    with stack_images(tar) as tree:
        assert tree.lookup("dir").mode == stat.S_IFDIR | 0o750
        assert tree.lookup("dir").mtime_ns == 9_000_000_000
        assert [n for n, _ in tree.children("dir")] == ["kept"]
        assert tree.read(tree.lookup("gone")) == b"now a file"
        assert tree.lookup("gone/child") is None
        assert tree.lookup("becomes-dir/x") is not None
        assert tree.lookup("link").kind == stat.S_IFREG
        assert len(tree) == len(list(tree_paths(tree)))


def test_read_ranges_and_entry_type(tmp_path):
    data = bytes(range(256)) * 10
    tar = write_tar(tmp_path / "r.tar", [member("f", data), d("dir")])
    with stack_images(tar) as tree:
        entry = tree.lookup("f")
        assert tree.read(entry, 100, 50) == data[100:150]
        assert tree.read(entry, 2500) == data[2500:]
        assert tree.read(entry, 5000, 10) == b""
        assert tree.read(entry, 10, 0) == b""
        with pytest.raises(ValueError):
            tree.read(tree.lookup("dir"))
        assert not hasattr(entry, "__dict__") and "mode" in tarimage.Entry.__slots__
        assert entry.kind == stat.S_IFREG and entry.linkname is None and entry.ino > 1


# Random small trees: names, kinds, modes, owners, times, formats.
_names = st.sampled_from(["a", "b", "c", "dir", "x.txt", ".hidden", "sp ace", "ü", LONG + "x"])
_leaf = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=700), st.sampled_from([0o644, 0o755, 0o600, 0o4711])),
    st.tuples(st.just("link"), st.sampled_from(["a", "../b", "/etc/passwd", "dir/" + LONG * 2])),
)
_tree = st.recursive(_leaf, lambda kids: st.tuples(
    st.just("dir"), st.dictionaries(_names, kids, max_size=4), st.sampled_from([0o755, 0o700, 0o1777])),
    max_leaves=12)


def _flatten(node, path, out, rng):
    kind = node[0]
    if kind == "dir":
        if path and rng.draw(st.booleans()):             # else implied by its children
            out.append(d(path, mode=node[2], mtime=rng.draw(st.integers(0, 2**33))))
        for name, child in node[1].items():
            _flatten(child, f"{path}/{name}" if path else name, out, rng)
    elif kind == "file":
        owner = rng.draw(st.sampled_from([0, 1000, 65534, 2_100_000]))
        out.append(member(path, node[1], mode=node[2], uid=owner, gid=owner,
                          mtime=rng.draw(st.sampled_from([0, 1, 1_700_000_000, 2**33 + 0.5]))))
    else:
        out.append(sym(path, node[1]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(root=st.tuples(st.just("dir"), st.dictionaries(_names, _tree, min_size=1, max_size=5), st.just(0)),
       fmt=st.sampled_from(["gnu", "pax"]), data=st.data())
def test_random_trees_agree_with_extraction(root, fmt, data):
    members = []
    _flatten(root, "", members, data)
    files = [info.name for info, _ in members if info.isreg()]
    if files:   # a rewrite (later wins), then hard links to files that stay put
        victim = data.draw(st.sampled_from(files))
        members.append(member(victim, b"rewritten", mode=0o640))
        for i in range(data.draw(st.integers(0, 2))):
            name = data.draw(st.sampled_from(files))
            target = [info for info, _ in members if info.name == name][-1]
            members.append(hard(f"hardlink{i}", target.name, mode=target.mode, uid=target.uid,
                                gid=target.gid, mtime=target.mtime))
    with tempfile.TemporaryDirectory() as tmp:
        tar = write_tar(os.path.join(tmp, "t.tar"), members, FORMATS[fmt])
        with stack_images(tar) as tree:
            assert_matches_extraction(tree, tar, os.path.join(tmp, "x"))


# ----------------------------------------------------------- layers

def test_whiteouts_and_opaque_directories_across_three_layers(tmp_path):
    bottom = write_tar(tmp_path / "1.tar", [
        member("etc/passwd", b"v1"), member("etc/group", b"g"), member(".wh.nothing", b""),
        member("usr/bin/a", b"a"), member("usr/bin/b", b"b"), member("usr/lib/x/y", b"y"),
        member("opt/keep/k", b"k"), member("opt/keep/k2", b"k2"),
        member("srv/d/inner", b"i"), member("m", b"plain file"),
    ])
    middle = write_tar(tmp_path / "2.tar", [
        d("etc", mode=0o750), member("etc/.wh.group", b""),
        member("usr/bin/.wh..wh..opq", b""), member("usr/bin/c", b"c"),
        member("usr/.wh.lib", b""), member("opt/new", b"n"), member("opt/.wh..wh.plnk", b""),
        member("srv/d", b"file replaces dir"), member("m/n", b"dir replaces file"),
    ])
    top = write_tar(tmp_path / "3.tar", [
        member("etc/.wh.passwd", b""), member("etc/passwd", b"v3"),
        member("usr/lib/z", b"z"), member("opt/keep/.wh.k", b""),
    ])
    with stack_images([bottom, middle, top]) as tree:
        files = {p: tree.read(tree.lookup(p)) for p in tree_paths(tree)
                 if tree.lookup(p).kind == stat.S_IFREG}
        assert files == {"etc/passwd": b"v3", "usr/bin/c": b"c", "usr/lib/z": b"z",
                         "opt/keep/k2": b"k2", "opt/new": b"n",
                         "srv/d": b"file replaces dir", "m/n": b"dir replaces file"}
        assert tree.lookup("etc").mode == stat.S_IFDIR | 0o750      # the upper directory's metadata
        assert tree.lookup("usr/lib").mtime_ns == 0                 # re-created, implied
        assert tree.lookup("m").kind == stat.S_IFDIR
        assert not [p for p in tree_paths(tree) if ".wh." in p]
        assert tree.lookup("usr").nlink == 4
        assert tree.images == [bottom, middle, top]
    with stack_images([bottom]) as alone, stack_images([bottom, middle]) as two:
        assert alone.read(alone.lookup("etc/group")) == b"g"
        assert two.lookup("usr/bin/a") is None and two.lookup("usr/lib") is None
        assert len({alone.digest, two.digest, tree.digest}) == 3


def test_whiteout_in_same_layer_only_hides_lower_layers(tmp_path):
    lower = write_tar(tmp_path / "1.tar", [member("f", b"old"), member("d/x", b"x")])
    upper = write_tar(tmp_path / "2.tar", [member("f", b"new"), member(".wh.f", b""),
                                           member("d/y", b"y"), member("d/.wh..wh..opq", b"")])
    with stack_images([lower, upper]) as tree:
        assert tree.read(tree.lookup("f")) == b"new"
        assert [n for n, _ in tree.children("d")] == ["y"]


# ------------------------------------------------------------ the index

def test_index_is_cached_beside_the_image_and_rebuilt_when_stale(tmp_path, monkeypatch):
    tar = write_tar(tmp_path / "img.tar", sample_members(with_devices=False))
    index = tar + ".umlpy-index"
    with stack_images(tar) as tree:
        digest = tree.digest
        first = sorted((p, tree.lookup(p).ino) for p in tree_paths(tree))
    assert os.path.isfile(index)
    written = os.stat(index).st_mtime_ns

    real_scan = tarimage._scan
    scans = []
    monkeypatch.setattr(tarimage, "_scan", lambda *a: scans.append(1) or real_scan(*a))
    with stack_images(tar) as tree:
        assert tree.digest == digest
        assert sorted((p, tree.lookup(p).ino) for p in tree_paths(tree)) == first
    assert scans == [] and os.stat(index).st_mtime_ns == written

    st = os.stat(tar)
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with stack_images(tar) as tree:
        assert tree.digest != digest                 # content cached under the old one is not reused
    assert scans == [1]
    with stack_images(tar):
        pass
    assert scans == [1]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []     # no temp files left


def test_broken_or_foreign_index_is_rebuilt(tmp_path, monkeypatch):
    tar = write_tar(tmp_path / "img.tar", [member("f", b"data")])
    index = tar + ".umlpy-index"
    for junk in (b"", b"\x00garbage", open(__file__, "rb").read()[:1000]):
        with open(index, "wb") as f:
            f.write(junk)
        with stack_images(tar) as tree:
            assert tree.read(tree.lookup("f")) == b"data"
        with open(index, "rb") as f:
            assert f.read() != junk
    # half an index (what a non-atomic writer would leave) is stale, not fatal
    with open(index, "rb") as f:
        whole = f.read()
    with open(index, "wb") as f:
        f.write(whole[:len(whole) // 2])
    with stack_images(tar) as tree:
        assert tree.read(tree.lookup("f")) == b"data"


def test_index_goes_to_index_dir_when_the_image_dir_is_not_writable(tmp_path, monkeypatch):
    tar = write_tar(tmp_path / "img.tar", [member("f", b"data")])
    cache = tmp_path / "idx"
    cache.mkdir()
    monkeypatch.setattr(tarimage, "_beside_writable", lambda path: False)
    image = open_image(tar, index_dir=str(cache))
    image.close()
    assert not os.path.exists(tar + ".umlpy-index")
    assert os.path.dirname(image.index_path) == str(cache) and os.path.isfile(image.index_path)
    monkeypatch.setattr(tarimage, "_scan", lambda *a: pytest.fail("re-scanned"))
    open_image(tar, index_dir=str(cache)).close()


def test_default_index_dir_follows_xdg_then_home_then_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert contentcache.user_cache_dir("index") == str(tmp_path / "xdg" / "umlpy" / "index")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert contentcache.user_cache_dir("index") == str(tmp_path / "home" / ".cache" / "umlpy" / "index")
    monkeypatch.setenv("HOME", "/nonexistent/home")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    got = contentcache.user_cache_dir("index")
    assert got == str(tmp_path / "tmp" / f"umlpy-{os.geteuid()}" / "index")
    assert os.path.isdir(got)


def test_planted_tmp_cache_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent/home")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / f"umlpy-{os.geteuid()}")
    with pytest.raises(UmlpyError, match="not a directory"):
        contentcache.user_cache_dir("content")
    os.unlink(tmp_path / f"umlpy-{os.geteuid()}")
    os.mkdir(tmp_path / f"umlpy-{os.geteuid()}", 0o777)
    os.chmod(tmp_path / f"umlpy-{os.geteuid()}", 0o777)
    with pytest.raises(UmlpyError, match="unsafe"):
        contentcache.user_cache_dir("content")


def test_content_cache_avoids_a_home_others_cannot_traverse(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert contentcache.user_cache_dir("index").startswith(str(home))
    assert contentcache.user_cache_dir("content", need_world_search=True).startswith(str(tmp_path / "tmp"))


def test_progress(tmp_path, capsys):
    tar = write_tar(tmp_path / "p.tar", [member(f"f{i}", b"x" * 100) for i in range(50)])
    seen = []
    open_image(tar, progress=lambda done, total: seen.append((done, total))).close()
    size = os.path.getsize(tar)
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    os.unlink(tar + ".umlpy-index")
    open_image(tar).close()            # stderr is not a terminal: quiet
    assert capsys.readouterr().err == ""
    os.unlink(tar + ".umlpy-index")
    open_image(tar, progress=True).close()
    err = capsys.readouterr().err
    assert "indexing p.tar" in err and "\n" not in err


def test_loading_a_large_index_is_fast(tmp_path):
    import time
    tar = tmp_path / "many.tar"
    write_tar(tar, [d(f"d{i}") for i in range(100)]
              + [member(f"d{i % 100}/file-{i}", b"") for i in range(20_000)])
    stack_images(str(tar)).close()
    start = time.perf_counter()
    with stack_images(str(tar)) as tree:
        elapsed = time.perf_counter() - start
        assert len(tree) == 20_101
    assert elapsed < 0.5               # ~0.05 s here; 100k entries load in ~0.25 s


# ------------------------------------------------------- broken images

def assert_bad(path, index_dir=None):
    with pytest.raises(BadInput) as caught:
        open_image(path, index_dir=index_dir)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a valid tar image: ") and "\n" not in message
    assert not os.path.exists(str(path) + ".umlpy-index")
    if index_dir:
        assert os.listdir(index_dir) == []
    return message


def test_truncated_images_are_refused_at_every_cut(tmp_path):
    tar = write_tar(tmp_path / "whole.tar", [
        member("a", b"x" * 700), member(LONG + "/long-name", b"y" * 10), sym("l", LONG * 2),
        member("b", b"z" * 1030)])
    with tarfile.open(tar) as t:
        t.getmembers()
        end_marker = t.offset
    whole = open(tar, "rb").read()
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    cut = tmp_path / "cut.tar"
    cuts = sorted(set(range(1, end_marker + 512, 97)) | set(range(512, end_marker + 512, 512))
                  | {end_marker + 511})
    reasons = set()
    for size in cuts:
        cut.write_bytes(whole[:size])
        message = assert_bad(cut, index_dir)
        reasons.add(message.split(": ")[-1].split(" at offset")[0][:30])
    assert len(reasons) >= 2              # truncated headers, data past the end, no end marker...
    cut.write_bytes(whole[:end_marker + 512])      # a lone end block is a complete archive
    open_image(cut).close()


def test_garbage_and_other_non_tars_are_refused(tmp_path):
    cases = {
        "empty": b"",
        "random": os.urandom(5000),
        "text": b"just some text\n" * 100,
        "gzip": __import__("gzip").compress(b"\0" * 4096),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        message = assert_bad(path)
        assert {"empty": "empty file", "gzip": "gzip-compressed"}.get(name, "checksum") in message
    with pytest.raises(BadInput, match="cannot open image"):
        open_image(tmp_path / "missing.tar")
    with pytest.raises(BadInput, match="not a regular file"):
        open_image(tmp_path)


def _patched(path, offset, **fields):
    """Rewrite header fields of the member at offset and fix its checksum."""
    raw = bytearray(open(path, "rb").read())
    block = raw[offset:offset + 512]
    spans = {"name": (0, 100), "type": (156, 157), "size": (124, 136), "chksum": (148, 156)}
    for key, value in fields.items():
        start, end = spans[key]
        block[start:end] = value.ljust(end - start, b"\0")
    if "chksum" not in fields:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    raw[offset:offset + 512] = block
    with open(path, "wb") as f:
        f.write(raw)


def test_broken_headers_are_refused(tmp_path):
    def fresh(name):
        return write_tar(tmp_path / name, [member("aaa", b"x" * 10), member("bbb", b"y")],
                         tarfile.GNU_FORMAT)
    path = fresh("chk.tar")
    _patched(path, 512 * 2, chksum=b"0000000\0")
    assert "bad header checksum at offset 1024" in assert_bad(path)
    path = fresh("dotdot.tar")
    _patched(path, 0, name=b"x/../../etc/passwd")
    assert "'..'" in assert_bad(path)
    path = fresh("sparse.tar")
    _patched(path, 0, type=b"S")
    assert "sparse" in assert_bad(path)
    path = fresh("past-end.tar")
    _patched(path, 1024, size=b"%011o" % 10**6)
    assert "runs past the end" in assert_bad(path)
    path = fresh("type.tar")
    _patched(path, 0, type=b"Q")
    assert "unsupported member type" in assert_bad(path)
    path = write_tar(tmp_path / "link.tar", [hard("a", "missing")])
    assert "hard link 'a' to missing 'missing'" in assert_bad(path)
    path = write_tar(tmp_path / "below.tar", [member("f", b""), member("f/g", b"")])
    assert "below non-directory 'f'" in assert_bad(path)


def test_broken_image_removes_its_stale_index(tmp_path):
    tar = write_tar(tmp_path / "img.tar", [member("f", b"data")])
    open_image(tar).close()
    assert os.path.exists(tar + ".umlpy-index")
    with open(tar, "r+b") as f:
        f.truncate(600)
    assert_bad(tar)


# ------------------------------------------------------- content cache

def test_materialise_round_trip(tmp_path, world_tmp):
    tar = write_tar(tmp_path / "m.tar", sample_members(with_devices=False))
    cache = ContentCache(os.path.join(world_tmp, "content"))
    with stack_images(tar, cache=cache) as tree:
        seen = {}
        for path in tree_paths(tree):
            entry = tree.lookup(path)
            if entry.kind == stat.S_IFREG:
                host = tree.materialise(entry)
                assert tree.materialise(entry) == host
                with open(host, "rb") as f:
                    assert f.read() == tree.read(entry)
                st = os.lstat(host)
                assert stat.S_ISREG(st.st_mode) and st.st_mtime_ns == entry.mtime_ns
                want = 0o555 if entry.mode & 0o111 else 0o444      # read-only, never setuid
                assert stat.S_IMODE(st.st_mode) == want, path
            elif entry.kind == stat.S_IFDIR:
                host = tree.materialise_dir(entry)
                st = os.lstat(host)
                assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
                assert st.st_mtime_ns == entry.mtime_ns and os.listdir(host) == []
            else:
                with pytest.raises(ValueError):
                    tree.materialise(entry)
                continue
            assert seen.setdefault(host, entry.ino) == entry.ino      # hard links share one
            back_path, back_entry = tree.entry_for_host_path(host)
            assert back_entry is entry and tree.lookup(back_path) is entry
        assert tree.entry_for_host_path("/etc/passwd") is None
        assert tree.entry_for_host_path(os.path.join(cache.root, tree.digest, "999999")) is None
        assert tree.entry_for_host_path(os.path.join(cache.root, "0" * 32, "1")) is None
        with pytest.raises(ValueError):
            tree.materialise_dir(tree.lookup("etc/passwd"))
        # the same images in another TarTree (another sandbox) reuse the same files
        with stack_images(tar, cache=ContentCache(cache.root)) as again:
            assert again.materialise(again.lookup("etc/passwd")) == tree.materialise(tree.lookup("etc/passwd"))
        # reached through a symlink (as /proc/self/fd shows real paths)
        alias = os.path.join(world_tmp, "alias")
        os.symlink(cache.root, alias)
        via_alias = ContentCache(alias)
        with stack_images(tar, cache=via_alias) as aliased:
            host = aliased.materialise(aliased.lookup("etc/passwd"))
            assert aliased.entry_for_host_path(os.path.realpath(host))[0] == "etc/passwd"
    assert not [n for n in os.listdir(os.path.join(cache.root, tree.digest)) if n.startswith(".")]


@pytest.mark.skipif(not ROOT, reason="needs root to check access as another uid")
def test_cache_is_usable_by_an_unprivileged_uid(tmp_path, world_tmp):
    with open("/bin/true", "rb") as f:
        true = f.read()
    tar = write_tar(tmp_path / "t.tar", [member("bin/true", true, mode=0o700),
                                         member("etc/shadow", b"secret", mode=0o600), d("dir", mode=0o700)])
    with stack_images(tar, cache=ContentCache(os.path.join(world_tmp, "c"))) as tree:
        exe = tree.materialise(tree.lookup("bin/true"))
        shadow = tree.materialise(tree.lookup("etc/shadow"))
        directory = tree.materialise_dir(tree.lookup("dir"))
    nobody = dict(user=65534, group=65534, extra_groups=[])
    assert subprocess.run([exe], **nobody).returncode == 0
    assert subprocess.run(["cat", shadow], capture_output=True, **nobody).stdout == b"secret"
    assert subprocess.run(["ls", directory], **nobody).returncode == 0
    assert subprocess.run(["sh", "-c", f"echo x > {shadow}"], capture_output=True, **nobody).returncode != 0


def test_planted_symlink_in_the_cache_is_never_followed(tmp_path):
    tar = write_tar(tmp_path / "s.tar", [member("f", b"payload")])
    cache = ContentCache(str(tmp_path / "cache"))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    with stack_images(tar, cache=cache) as tree:
        area = cache.area(tree.digest)
        os.symlink(victim, os.path.join(area, str(tree.lookup("f").ino)))
        with pytest.raises(UmlpyError, match="symlink"):
            tree.materialise(tree.lookup("f"))
    assert victim.read_bytes() == b"precious"
    other = ContentCache(str(tmp_path / "cache2"))
    os.symlink(tmp_path, os.path.join(other.root, tree.digest))
    with stack_images(tar, cache=other) as tree, pytest.raises(UmlpyError, match="not a directory"):
        tree.materialise(tree.lookup("f"))


def _materialise_all(tar, root, barrier, results):
    with stack_images(tar, cache=ContentCache(root)) as tree:
        barrier.wait()
        paths = []
        for path in tree_paths(tree):
            entry = tree.lookup(path)
            if entry.kind == stat.S_IFREG:
                paths.append(tree.materialise(entry))
            elif entry.kind == stat.S_IFDIR:
                paths.append(tree.materialise_dir(entry))
        inodes = [os.lstat(p).st_ino for p in paths]
    results.put((paths, inodes))


def test_concurrent_materialise_from_two_processes(tmp_path):
    members = [member(f"dir{i % 7}/file{i}", os.urandom(i * 37), mode=0o755 if i % 3 else 0o644)
               for i in range(150)]
    tar = write_tar(tmp_path / "c.tar", members)
    open_image(tar).close()                      # index once, so both start at once
    root = str(tmp_path / "cache")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_materialise_all, args=(tar, root, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    got = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert got[0] == got[1]                     # same paths, and the very same files
    with stack_images(tar, cache=ContentCache(root)) as tree:
        for info, data in members:
            with open(tree.materialise(tree.lookup(info.name)), "rb") as f:
                assert f.read() == data
        area = os.path.join(root, tree.digest)
        assert not [n for n in os.listdir(area) if n.startswith(".")]


def test_import_is_light():
    code = ("import sys, umlpy.kernel.vfs; before = set(sys.modules); "
            "import umlpy.kernel.vfs.tarimage; added = set(sys.modules) - before; "
            "print(sorted(m for m in ('hashlib', 'mmap', 'tempfile', 'tarfile') if m in added))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]", out.stderr
