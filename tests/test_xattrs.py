"""Extended attributes inside the sandbox (issue 13, section 3): user.*,
trusted.* and security.capability on the sandbox's own files as Linux
gives them (trusted.* and security.capability emulated: nothing the guest
sets gives a host file power), image and lower-layer attributes read and
carried up by copy-up, the *xattrat calls, Linux's errno values, and no
way for a guest to grow umlpy's memory with them."""
import io
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

from conftest import AS_ROOT, _env, open_up, run_native, run_umlpy, umlpy_argv

from umlpy.abi.xattr import XATTR_ARGS, XATTR_ARGS_SIZE_VER0, XATTR_CREATE, XATTR_LIST_MAX, \
    XATTR_REPLACE

needs_root = pytest.mark.skipif(not AS_ROOT, reason="the native run needs root for trusted.*")
RESERVED = "user.umlpy."


@pytest.fixture(scope="module")
def probe(guest):
    """xattr_probe, static (it runs in images too), where uid 65534 can run it."""
    where = tempfile.mkdtemp(prefix="xattr-probe-")
    os.chmod(where, 0o755)
    prog = os.path.join(where, "xattr_probe")
    shutil.copy(guest("xattr_probe", static=True), prog)
    os.chmod(prog, 0o755)
    yield prog
    shutil.rmtree(where)


def run_kept(argv, options, **kw):
    """run_umlpy with a kept --upper, run again: as root the upper keeps
    the id block it was made with, which a sandbox started meanwhile by
    someone else may hold for a moment (identity.py); not what these
    tests are about, so the run is tried again."""
    for _ in range(20):
        p = run_umlpy(argv, options=options, **kw)
        if b"another sandbox holds those ids" not in p.stderr:
            return p
        time.sleep(0.5)
    return p


def host_xattrs(path):
    return {n: os.getxattr(path, n, follow_symlinks=False)
            for n in os.listxattr(path, follow_symlinks=False)}


# ---- the probe: natively and inside, the same answers ---------------------

@needs_root
@pytest.mark.parametrize("host_root", [False, True], ids=["guest-root", "host-root"])
def test_probe_answers_as_linux(probe, tmp_path, mode, host_root):
    """The whole sequence (names, flags, sizes, namespaces, symlinks and
    FIFOs, trusted.*, security.capability, the f* and *xattrat calls, then
    as uid 65534) natively in an ext4/tmpfs directory and inside in /tmp."""
    open_up(tmp_path)
    native = run_native([probe, str(tmp_path / "x")])
    assert native.returncode == 0, native.stderr
    inside = run_umlpy([probe, "/tmp/x"], mode, host_root=host_root)
    assert inside.returncode == 0, inside.stderr.decode()[-2000:]
    assert inside.stdout.decode() == native.stdout.decode()


@needs_root
def test_emulated_attributes_are_not_the_hosts(probe, tmp_path):
    """trusted.* and security.capability live in the upper layer under
    user.umlpy.* names, which the guest can neither see nor set: the host
    file gets no capability, even from a guest with host root."""
    upper = tmp_path / "upper"
    upper.mkdir()
    open_up(tmp_path)
    script = ("touch /tmp/f && setcap cap_net_raw+ep /tmp/f && getcap /tmp/f && "
              f"{probe} set /tmp/f trusted.t T && {probe} get /tmp/f trusted.t && "
              f"{probe} set /tmp/f user.umlpy.trusted.t X; "
              f"{probe} get /tmp/f user.umlpy.trusted.t; "
              f"{probe} list /tmp/f")
    for host_root in (False, True):
        p = run_kept(["sh", "-c", script], options=["--upper", str(upper)],
                      host_root=host_root)
        out = p.stdout.decode()
        assert p.returncode == 0, p.stderr.decode()
        assert "/tmp/f cap_net_raw=ep" in out
        assert "trusted.t = 1\n  text: T\n" in out
        assert "set = -1 EOPNOTSUPP" in out and "user.umlpy.trusted.t = -1 EOPNOTSUPP" in out
        assert "names: security.capability trusted.t\n" in out
        found = host_xattrs(upper / "tmp" / "f")
        assert not any(n.startswith(("trusted.", "security.")) for n in found), found
        assert set(found) == {RESERVED + "trusted.t", RESERVED + "security.capability"}
        os.unlink(upper / "tmp" / "f")


@needs_root
def test_emulated_attributes_on_a_bind_are_the_callers_to_make(probe, tmp_path):
    """On a writable bind the guest kernel keeps an emulated attribute as
    the caller's host identity: a host file the guest's identity cannot
    write gets none (its root's CAP_SYS_ADMIN is its namespace's), one it
    may write gets the reserved name."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "roots").write_text("r")
    (shared / "open").write_text("o")
    os.chmod(shared / "roots", 0o644)
    os.chmod(shared / "open", 0o666)
    os.chmod(shared, 0o777)
    open_up(tmp_path)
    p = run_umlpy(["sh", "-c", f"{probe} set /mnt/roots trusted.t T; {probe} list /mnt/roots; "
                   f"{probe} set /mnt/open trusted.t T; {probe} get /mnt/open trusted.t"],
                  options=["--bind", f"{shared}:/mnt"], host_root=False)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert out == "set = -1 EACCES\nlist = 0\nset = 0\ntrusted.t = 1\n  text: T\n", out
    assert host_xattrs(shared / "roots") == {}
    assert host_xattrs(shared / "open") == {RESERVED + "trusted.t": b"T"}


@needs_root
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
def test_an_upper_layer_without_user_xattrs(probe, tmp_path):
    """On an upper filesystem that keeps no user.* attributes (ramfs) a
    user.* one fails as there (EOPNOTSUPP); the emulated ones are kept in
    the guest kernel's records."""
    upper = tmp_path / "ramfs"
    upper.mkdir()
    open_up(tmp_path)
    inner = shlex.join(umlpy_argv(["sh", "-c", f"touch /tmp/f; {probe} set /tmp/f user.a A; "
                                 f"{probe} set /tmp/f trusted.t T; {probe} get /tmp/f trusted.t; "
                                 f"{probe} list /tmp/f"],
                                options=["--upper", str(upper / "u")], host_root=False))
    script = (f"mount -t ramfs none {upper} && chmod 777 {upper} && mkdir {upper}/u && "
              f"chmod 777 {upper}/u && {inner}")
    argv = ["unshare", "-m", "sh", "-c", script]
    p = subprocess.run(argv, capture_output=True, env=_env(), timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert out == ("set = -1 EOPNOTSUPP\nset = 0\ntrusted.t = 1\n  text: T\n"
                   "list = 10\n  names: trusted.t\n"), out


def test_cp_a_keeps_user_xattrs(probe):
    p = run_umlpy(["sh", "-c", f"cd /tmp && touch f && {probe} set f user.a A && "
                   f"{probe} set f user.b B && cp -a f g && {probe} list g && "
                   f"{probe} get g user.b"])
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert "names: user.a user.b\n" in out and "user.b = 1\n  text: B\n" in out


def test_python_copyxattr_sees_them(probe):
    """What CPython's shutil.copystat (test_shutil's copyxattr) does."""
    code = ("import os, shutil; open('/tmp/a', 'w').close(); open('/tmp/b', 'w').close(); "
            "os.setxattr('/tmp/a', 'user.foo', b'42'); shutil.copystat('/tmp/a', '/tmp/b'); "
            "print(os.listxattr('/tmp/b'), os.getxattr('/tmp/b', 'user.foo'))")
    p = run_umlpy([sys.executable, "-c", code])
    assert p.stdout.decode() == "['user.foo'] b'42'\n", p.stderr.decode()


# ---- the lower layer: the host's tree and images --------------------------

@needs_root
def test_host_lower_xattrs_are_read_and_copied_up(probe, tmp_path):
    """A host file's user.* attributes show through; a write copies them up
    with the data; removing one removes it from the copy, never the host's."""
    d = tmp_path / "lower"
    d.mkdir()
    f = d / "f"
    f.write_text("data")
    os.setxattr(f, "user.one", b"1")
    os.setxattr(f, "user.two", b"2")
    open_up(f)
    os.chmod(f, 0o666)
    p = run_umlpy(["sh", "-c", f"{probe} list {f}; {probe} append {f}; {probe} list {f}; "
                   f"{probe} remove {f} user.one; {probe} list {f}; {probe} get {f} user.two; "
                   f"{probe} remove {f} user.one"])
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()
    assert out.split("\n") == [
        "list = 18", "  names: user.one user.two", "append = 1",
        "list = 18", "  names: user.one user.two", "remove = 0",
        "list = 9", "  names: user.two", "user.two = 1", "  text: 2",
        "remove = -1 ENODATA", ""]
    assert host_xattrs(f) == {"user.one": b"1", "user.two": b"2"}
    assert f.read_text() == "data"


CAPS_V2 = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")


def xattr_image(path, probe_bytes=None):
    """A tar image whose files carry PAX SCHILY.xattr.* records."""
    def add(tar, name, data=None, mode=0o755, xattrs=None, kind=None):
        info = tarfile.TarInfo(name)
        info.type = kind or (tarfile.REGTYPE if data is not None else tarfile.DIRTYPE)
        info.mode = mode
        info.mtime = 1_600_000_000
        if data is not None:
            info.size = len(data)
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "proc", "dev", "sys"):
            add(tar, name)
        add(tar, "tmp", mode=0o1777)
        add(tar, "data", xattrs={"user.dir": b"D"})
        add(tar, "data/f", b"image data\n", mode=0o666,
            xattrs={"user.one": b"1", "user.two": b"2", "trusted.t": b"T",
                    "security.capability": CAPS_V2})
        add(tar, "data/big", b"x", mode=0o644,
            xattrs={"user.ok": b"ok", "user.huge": b"h" * 65537, "user." + "n" * 260: b"n"})
        add(tar, "data/plain", b"p", mode=0o644)
        if probe_bytes is not None:
            add(tar, "bin/xp", probe_bytes, mode=0o755)
    os.chmod(path, 0o644)


def test_image_pax_xattrs_are_indexed(tmp_path):
    from umlpy.kernel.vfs.tarimage import stack_images
    image = tmp_path / "img.tar"
    xattr_image(image)
    with stack_images([image], index_dir=str(tmp_path), progress=False) as tree:
        assert dict(tree.xattrs(tree.lookup("data/f"))) == {
            "user.one": b"1", "user.two": b"2", "trusted.t": b"T",
            "security.capability": CAPS_V2}
        assert dict(tree.xattrs(tree.lookup("data"))) == {"user.dir": b"D"}
        # the kernel's own limits: no value over 64 KiB, no name over 255 bytes
        assert dict(tree.xattrs(tree.lookup("data/big"))) == {"user.ok": b"ok"}
        assert tree.xattrs(tree.lookup("data/plain")) == ()
    with stack_images([image], index_dir=str(tmp_path), progress=False) as tree:   # cached index
        assert dict(tree.xattrs(tree.lookup("data/f")))["trusted.t"] == b"T"


def test_image_xattrs_show_and_copy_up(probe, tmp_path):
    image = tmp_path / "img.tar"
    with open(probe, "rb") as f:
        xattr_image(image, f.read())
    open_up(tmp_path)
    out = []

    def xp(*args):
        q = run_kept(["/bin/xp", *args], host_root=False,
                      options=["--rootfs", str(image), "--upper", str(tmp_path / "upper")])
        assert q.returncode == 0, q.stderr.decode()
        out.append(q.stdout.decode())
    (tmp_path / "upper").mkdir()
    open_up(tmp_path / "upper")
    os.chmod(tmp_path / "upper", 0o777)
    xp("list", "/data/f")
    assert out[-1] == "list = 48\n  names: security.capability trusted.t user.one user.two\n"
    xp("get", "/data/f", "user.one")
    assert out[-1] == "user.one = 1\n  text: 1\n"
    xp("get", "/data/f", "security.capability")
    assert out[-1].startswith("security.capability = 20\n")
    xp("list", "/data")
    assert out[-1] == "list = 9\n  names: user.dir\n"
    xp("get", "/data/plain", "user.one")
    assert out[-1] == "user.one = -1 ENODATA\n"
    xp("list", "/data/big")
    assert out[-1] == "list = 8\n  names: user.ok\n"
    xp("append", "/data/f")                  # copy-up: the attributes come along
    assert out[-1] == "append = 1\n"
    assert (tmp_path / "upper" / "data" / "f").read_bytes() == b"image data\n+"
    xp("list", "/data/f")
    assert out[-1] == "list = 48\n  names: security.capability trusted.t user.one user.two\n"
    xp("remove", "/data/f", "user.one")
    xp("list", "/data/f")
    assert out[-1] == "list = 39\n  names: security.capability trusted.t user.two\n"
    xp("remove", "/data/big", "user.ok")     # a removal copies up, then removes
    assert out[-1] == "remove = 0\n"
    xp("list", "/data/big")
    assert out[-1] == "list = 0\n"
    xp("get", "/data/f", "trusted.t")
    assert out[-1] == "trusted.t = 1\n  text: T\n"
    upper_f = host_xattrs(tmp_path / "upper" / "data" / "f")
    assert upper_f == {"user.two": b"2", RESERVED + "trusted.t": b"T",
                       RESERVED + "security.capability": CAPS_V2}


def libarchive_image(path):
    """A tar image with the PAX records bsdtar --xattrs writes: for each
    attribute LIBARCHIVE.xattr.NAME (NAME URL-encoded, the value base64
    without padding) and a SCHILY.xattr.NAME of the same encoded NAME."""
    import base64
    from urllib.parse import quote

    def records(attrs):
        out = {}
        for name, value in attrs.items():
            encoded = quote(name, safe="._-")
            out["LIBARCHIVE.xattr." + encoded] = base64.b64encode(value).decode().rstrip("=")
            out["SCHILY.xattr." + encoded] = value.decode("utf-8", "surrogateescape")
        return out
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in (
                ("f", b"x", {"user.one": b"1", "user.sp ace=x": b"bin\x01\n",
                             "trusted.t": b"T"}),
                ("only", b"y", None),
                ("reserved", b"z", None)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            if attrs:
                info.pax_headers = records(attrs)
            if name == "only":      # LIBARCHIVE records alone (xattrheader=LIBARCHIVE)
                info.pax_headers = {"LIBARCHIVE.xattr.user.lib": "TA"}
            if name == "reserved":  # umlpy's own names are no image's to give
                info.pax_headers = {"SCHILY.xattr.user.umlpy.setid": "6000",
                                    "SCHILY.xattr.user.umlpy.trusted.x": "X",
                                    "SCHILY.xattr.user.ok": "ok"}
            tar.addfile(info, io.BytesIO(data))
    os.chmod(path, 0o644)


def test_image_libarchive_xattrs_are_indexed(tmp_path):
    """bsdtar's LIBARCHIVE.xattr.* records are decoded (its SCHILY twin of
    an encoded name is the same attribute, not another); reserved names
    are dropped; an index cached by an umlpy that did not read them is
    not used."""
    from umlpy.kernel.vfs import tarimage
    image = tmp_path / "img.tar"
    libarchive_image(image)
    want = {"user.one": b"1", "user.sp ace=x": b"bin\x01\n", "trusted.t": b"T"}
    with tarimage.stack_images([image], index_dir=str(tmp_path), progress=False) as tree:
        assert dict(tree.xattrs(tree.lookup("f"))) == want
        assert len(tree.xattrs(tree.lookup("f"))) == 3
        assert dict(tree.xattrs(tree.lookup("only"))) == {"user.lib": b"L"}
        assert dict(tree.xattrs(tree.lookup("reserved"))) == {"user.ok": b"ok"}
    assert tarimage.INDEX_FORMAT != ("umlpy-tar-index", 2)   # the format before them


def test_an_index_of_an_older_format_is_built_again(tmp_path, monkeypatch):
    from umlpy.kernel.vfs import tarimage
    image = tmp_path / "img.tar"
    libarchive_image(image)
    current = tarimage.INDEX_FORMAT
    monkeypatch.setattr(tarimage, "INDEX_FORMAT", ("umlpy-tar-index", 2))
    monkeypatch.setattr(tarimage, "_xattrs", lambda pax: None)
    with tarimage.stack_images([image], index_dir=str(tmp_path), progress=False) as tree:
        assert tree.xattrs(tree.lookup("only")) == ()
    monkeypatch.undo()
    assert tarimage.INDEX_FORMAT == current
    with tarimage.stack_images([image], index_dir=str(tmp_path), progress=False) as tree:
        assert dict(tree.xattrs(tree.lookup("only"))) == {"user.lib": b"L"}


@needs_root
@pytest.mark.skipif(not shutil.which("bsdtar"), reason="needs bsdtar (libarchive-tools)")
def test_bsdtar_image_xattrs_show_and_copy_up(probe, tmp_path):
    """An image made by bsdtar --xattrs from a tree with user.* and
    trusted.* attributes: the guest lists and reads them, and they come
    along with a copy-up."""
    tree = tmp_path / "tree"
    for d in ("bin", "etc", "proc", "dev", "sys", "tmp", "data"):
        (tree / d).mkdir(parents=True)
    shutil.copy(probe, tree / "bin" / "xp")
    (tree / "data" / "f").write_bytes(b"image data\n")
    os.chmod(tree / "data" / "f", 0o666)
    os.setxattr(tree / "data" / "f", "user.one", b"1")
    os.setxattr(tree / "data" / "f", "user.sp ace", b"bin\x01\n")
    os.setxattr(tree / "data" / "f", "trusted.t", b"T")
    image = tmp_path / "img.tar"
    subprocess.run(["bsdtar", "--xattrs", "--format", "pax", "-cf", str(image), "-C",
                    str(tree), "."], check=True)
    os.chmod(image, 0o644)
    upper = tmp_path / "upper"
    upper.mkdir()
    os.chmod(upper, 0o777)
    open_up(tmp_path)
    opts = ["--rootfs", str(image), "--upper", str(upper)]

    def xp(*args):
        q = run_kept(["/bin/xp", *args], options=opts, host_root=False)
        assert q.returncode == 0, q.stderr.decode()
        return q.stdout.decode()
    assert xp("list", "/data/f") == "list = 31\n  names: trusted.t user.one user.sp ace\n"
    assert xp("get", "/data/f", "user.one") == "user.one = 1\n  text: 1\n"
    assert xp("get", "/data/f", "user.sp ace").startswith("user.sp ace = 5\n")
    assert xp("append", "/data/f") == "append = 1\n"
    assert host_xattrs(upper / "data" / "f") == {
        "user.one": b"1", "user.sp ace": b"bin\x01\n", RESERVED + "trusted.t": b"T"}


def test_a_new_file_over_a_whiteout_has_no_old_attributes(probe, tmp_path):
    """rm of an image file leaves a whiteout; a file made at its name is a
    new one, with none of the old one's attributes.  A directory copied up
    (a file made in it) keeps its own, and a renamed tree all of its."""
    image = tmp_path / "img.tar"
    with open(probe, "rb") as f:
        xattr_image(image, f.read())
    upper = tmp_path / "upper"
    upper.mkdir()
    open_up(upper)
    os.chmod(upper, 0o777)
    opts = ["--rootfs", str(image), "--upper", str(upper)]

    def xp(*args):
        q = run_kept(["/bin/xp", *args], options=opts, host_root=False)
        assert q.returncode == 0, q.stderr.decode()
        return q.stdout.decode()
    assert xp("list", "/data/f").startswith("list = 48")
    assert xp("unlink", "/data/f") == "unlink = 0\n"
    assert (upper / "data" / ".wh.f").exists()
    assert xp("create", "/data/f").startswith("create = ")
    assert xp("list", "/data/f") == "list = 0\n"
    assert xp("get", "/data/f", "trusted.t") == "trusted.t = -1 ENODATA\n"
    assert xp("list", "/data") == "list = 9\n  names: user.dir\n"
    assert host_xattrs(upper / "data") == {"user.dir": b"D"}
    # a rename copies the whole tree up, each object with its attributes
    assert xp("rename", "/data", "/moved") == "rename = 0\n"
    assert xp("list", "/moved") == "list = 9\n  names: user.dir\n"
    assert xp("list", "/moved/big") == "list = 8\n  names: user.ok\n"
    assert xp("get", "/moved/f", "user.one") == "user.one = -1 ENODATA\n"


def test_records_outlive_the_run_with_a_kept_upper(tmp_path):
    """A symlink's and a FIFO's emulated attributes (kept in the guest
    kernel's records: the host object cannot hold a user.* one) are there
    again in the next run over the same --upper, follow a rename, go with
    a removal, and a new object at the old name has none."""
    upper = tmp_path / "upper"
    upper.mkdir()
    os.chmod(upper, 0o777)
    open_up(tmp_path)

    def py(code):
        code = "import os\ndef show(p):\n    try:\n        print(p, sorted(" \
            "(n, os.getxattr(p, n, follow_symlinks=False)) for n in " \
            "os.listxattr(p, follow_symlinks=False)))\n    except OSError as e:\n" \
            "        print(p, e.strerror)\n" + code
        q = run_kept([sys.executable, "-c", code], options=["--upper", str(upper)],
                     host_root=False)
        assert q.returncode == 0, q.stderr.decode()[-2000:]
        return q.stdout.decode()
    py("os.symlink('nowhere', '/tmp/l'); os.mkfifo('/tmp/p'); open('/tmp/f', 'w').close()\n"
       "os.setxattr('/tmp/l', 'trusted.t', b'T', follow_symlinks=False)\n"
       "os.setxattr('/tmp/f', 'trusted.f', b'F')\n"
       "os.setxattr('/tmp/p', 'trusted.p', b'P'); os.setxattr('/tmp/p', 'trusted.q', b'Q')")
    # a regular file's are on the file itself (behind user.umlpy.): they always did
    assert py("show('/tmp/l'); show('/tmp/p'); show('/tmp/f')") == \
        "/tmp/l [('trusted.t', b'T')]\n/tmp/p [('trusted.p', b'P'), ('trusted.q', b'Q')]\n" \
        "/tmp/f [('trusted.f', b'F')]\n"
    py("os.rename('/tmp/l', '/tmp/m'); os.removexattr('/tmp/p', 'trusted.p')")
    assert py("show('/tmp/m'); show('/tmp/p')") == \
        "/tmp/m [('trusted.t', b'T')]\n/tmp/p [('trusted.q', b'Q')]\n"
    from umlpy.kernel.vfs.xattrstore import DIR
    assert len(os.listdir(upper / DIR)) == 2
    py("os.unlink('/tmp/m'); os.unlink('/tmp/p'); os.symlink('x', '/tmp/m')")
    assert py("show('/tmp/m')") == "/tmp/m []\n"     # the old record is not the new link's
    assert os.listdir(upper / DIR) == []             # removed with the objects
    # nothing of the guest's to see, diff or commit
    assert py("print([n for n in os.listdir('/') if n.startswith('.wh')])") == "[]\n"
    from umlpy.kernel.vfs import changes
    found = [c.path for c in changes.diff(str(upper), changes.HostDirLower("/"))]
    assert not any(".wh." in p for p in found), found


def test_the_records_store(tmp_path):
    """xattrstore.Store: a file per object of the upper layer, named by its
    inode number and birth time, loaded back within the records' limit;
    other objects' and files that are no record are left alone."""
    from umlpy.kernel.vfs.xattrs import Records
    from umlpy.kernel.vfs.xattrstore import DIR, Store
    upper = tmp_path / "u"
    upper.mkdir()
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        store = Store(fd, str(upper))
        a, b = (*store.dev, 5, (1, 2)), (*store.dev, 6, None)
        r = Records()
        r.store = store
        r.set(a, "trusted.a", b"A", False, False, str(upper / "x"))
        r.set(b, "trusted.b", b"B", False, False, str(upper / "y"))
        r.set((0, 0, 7, None), "trusted.c", b"C", False, False, "/elsewhere")
        assert sorted(os.listdir(upper / DIR)) == ["5-1.2", "6-"]
        (upper / DIR / "junk").write_bytes(b"x")
        (upper / DIR / "9-").write_bytes(b"umlpy-xattrs 1\n\xff\xff\xff\xff")
        again = Records()
        store.load(again)
        assert again.objects == {a: {"trusted.a": b"A"}, b: {"trusted.b": b"B"}}
        assert again.where[a] == str(upper / "x")
        r.remove(b, "trusted.b")
        r.set(a, "trusted.z", b"Z", False, False)
        assert sorted(os.listdir(upper / DIR)) == ["5-1.2", "9-", "junk"]
        again = Records()
        store.load(again)
        assert again.objects == {a: {"trusted.a": b"A", "trusted.z": b"Z"}}
        small = Records(limit=10)
        store.load(small)
        assert small.objects == {}
    finally:
        os.close(fd)


# ---- limits --------------------------------------------------------------

def test_a_guest_cannot_grow_umlpys_memory_with_xattrs(probe, tmp_path):
    """200 files, each given 64 KiB values under long names until the
    filesystem refuses, each read back and listed: the attributes live on
    the host (in the upper layer), not in the guest kernel; a value over
    XATTR_SIZE_MAX is E2BIG before anything is read."""
    def maxrss_of(argv):
        child = subprocess.Popen(umlpy_argv(argv, host_root=False), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=_env())
        out, err = child.communicate(timeout=300)
        return out.decode(), err.decode(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out, err, base = maxrss_of([probe, "list", "/"])
    out, err, hogged = maxrss_of(["sh", "-c", f"mkdir /tmp/h && {probe} hog /tmp/h 200"])
    assert "oversized value = -1 E2BIG" in out, err[-2000:]
    done = re.search(r"done (\d+) sets (\d+) gets (\d+) lists", out)
    assert done and int(done.group(1)) >= 200 and done.group(3) == "200", out
    assert hogged < base + 40 * 1024, (base, hogged)     # KiB


def test_emulated_xattrs_kept_in_memory_are_capped(probe):
    """A symlink cannot hold a user.* attribute on the host: its trusted.*
    ones are the guest kernel's to keep, within a cap per sandbox (ENOSPC
    beyond it, as a full filesystem's), and dropped with the link."""
    from umlpy.kernel.vfs.xattrs import RECORDS_BYTES
    p = run_umlpy(["sh", "-c", f"mkdir /tmp/h && {probe} hoglinks /tmp/h 200 && "
                   f"rm /tmp/h/link* && {probe} hoglinks /tmp/h 1"], host_root=False)
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    first, again = re.findall(r"done (\d+) sets (\d+) refused", out)
    assert 0 < int(first[0]) <= RECORDS_BYTES // 65536 and first[1] == "200", out
    assert int(again[0]) >= 1, out           # the removed links' room is free again


def test_records_keep_the_kernels_limits():
    import errno
    from umlpy.kernel.vfs.xattrs import ATTRIBUTE_BYTES, RECORD_BYTES, Records
    one = RECORD_BYTES + ATTRIBUTE_BYTES + len("trusted.a") + 1 + 500     # what one costs
    r = Records(limit=one + 400)
    r.set((1, 2), "trusted.a", b"x" * 500, False, False)
    assert r.used == one
    with pytest.raises(OSError) as e:
        r.set((1, 3), "trusted.b", b"x" * 500, False, False)
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as e:
        r.set((1, 2), "trusted.a", b"y", True, False)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(OSError) as e:
        r.set((1, 2), "trusted.c", b"y", False, True)
    assert e.value.errno == errno.ENODATA
    r.set((1, 2), "trusted.a", b"y", False, True)
    r.set((1, 3), "trusted.b", b"x" * 5, False, False)
    assert r.get((1, 2), "trusted.a") == b"y" and r.names((1, 3)) == ["trusted.b"]
    r.forget((1, 3))
    r.remove((1, 2), "trusted.a")
    assert r.used == 0 and r.objects == {} and r.overhead == {}
    # many tiny attributes on many objects are counted as what they cost
    r = Records(limit=100 * one)
    with pytest.raises(OSError):
        for i in range(100_000):
            r.set((0, i), "trusted.a", b"", False, False)
    assert i < 100 * one // RECORD_BYTES
    # when full, the records of objects gone from where they were set go
    alive = {"/u/a": (1, 2), "/u/b": (1, 3)}
    r = Records(limit=2 * one + 100, key_of=alive.get)
    r.set((1, 2), "trusted.a", b"x" * 500, False, False, "/u/a")
    r.set((1, 3), "trusted.b", b"x" * 400, False, False, "/u/b")
    alive["/u/a"] = (1, 4)          # removed, and its name given to another
    r.set((1, 4), "trusted.c", b"x" * 400, False, False, "/u/a")
    assert r.names((1, 2)) == [] and r.names((1, 3)) == ["trusted.b"]
    many = Records(limit=1 << 30)
    for i in range(XATTR_LIST_MAX // 256):
        many.set((0, 0), "trusted." + "%0247d" % i, b"", False, False)
    with pytest.raises(OSError) as e:
        many.set((0, 0), "trusted.last", b"", False, False)
    assert e.value.errno == errno.ENOSPC


# ---- the ABI --------------------------------------------------------------

def test_abi_constants_match_the_headers():
    header = open("/usr/include/linux/xattr.h").read()
    assert re.search(r"#define XATTR_CREATE\s+0x1\b", header) and XATTR_CREATE == 1
    assert re.search(r"#define XATTR_REPLACE\s+0x2\b", header) and XATTR_REPLACE == 2
    limits = open("/usr/include/linux/limits.h").read()
    assert re.search(rf"#define XATTR_LIST_MAX\s+{XATTR_LIST_MAX}\b", limits)
    assert XATTR_ARGS.size == XATTR_ARGS_SIZE_VER0 == 16
    assert XATTR_ARGS.offset("size") == 8 and XATTR_ARGS.offset("flags") == 12
    from umlpy.abi import xattr
    caps = open("/usr/include/linux/capability.h").read()

    def define(name):
        return int(re.search(rf"#define {name}\s+(\w+)", caps).group(1), 0)
    from umlpy.abi import capability
    assert capability.CAP_SYS_ADMIN == 1 << define("CAP_SYS_ADMIN")
    assert capability.CAP_SETFCAP == 1 << define("CAP_SETFCAP")
    for name in ("VFS_CAP_REVISION_MASK", "VFS_CAP_REVISION_2", "VFS_CAP_REVISION_3",
                 "VFS_CAP_FLAGS_EFFECTIVE"):
        assert getattr(xattr, name) == define(name), name
    assert (xattr.VFS_CAP_DATA.size, xattr.VFS_NS_CAP_DATA.size) == (20, 24)  # XATTR_CAPS_SZ_2/3
