"""umlpy export and umlpy import (issue 14): a named sandbox as an OCI
image layout in one tar file, checked by a real OCI tool (skopeo, umoci)
and by the fields the image-spec requires, then made again as another
sandbox that shows the same files; a corrupt or hostile archive is
refused with one line and leaves nothing behind."""
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import UMLPY, _env, open_up, run_umlpy
from test_identities import needs_root

from umlpy.lifecycle.registry import Record

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "stat", "echo", "rm", "chmod", "chown", "ln", "mkdir",
           "readlink", "mv", "touch", "test", "[")
# What the sandbox changes, and what both runs then list.
CHANGES = ("echo new > /tmp/new && chmod 640 /tmp/new && chown 1000:100 /tmp/new && "
           "ln /tmp/new /tmp/hard && rm /srv/old && rm -r /srv/gone && mkdir /srv/gone && "
           "echo fresh > /srv/gone/y && ln -s ../etc/hostname /srv/link && "
           "chmod 4755 /srv/keep/tool && mkdir -m 0750 /home && chown 1000:1000 /home && "
           "echo changed > /srv/keep/a && touch -d '2021-01-02 03:04:05' /srv/keep/a")
LISTING = ("for p in /tmp/new /tmp/hard /srv/keep/a /srv/keep/tool /srv/gone/y /srv/link "
           "/home /etc/hostname; do stat -c '%n %F %a %u %g %h %s %Y' $p; done; "
           "[ $(stat -c %i /tmp/new) = $(stat -c %i /tmp/hard) ] && echo same-inode; "
           "readlink /srv/link; cat /tmp/new /srv/gone/y /srv/keep/a /srv/link; "
           "ls -a /srv /srv/gone; [ -e /srv/old ] && echo OLD; [ -e /srv/gone/x ] && echo X; "
           "echo \"greeting=$GREETING\"")
HEX = re.compile(r"sha256:[a-f0-9]{64}\Z")


def _add(tar, name, data=None, mode=0o755, link=None):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = mode, 1_600_000_000
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _image(path):
    """A busybox root with /srv/keep, /srv/gone and /srv/old to change."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "proc", "dev", "sys", "root", "srv", "srv/keep", "srv/gone"):
            _add(tar, d)
        _add(tar, "tmp", mode=0o1777)
        with open(BUSYBOX, "rb") as f:
            _add(tar, "bin/busybox", f.read())
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", link="busybox")
        _add(tar, "etc/hostname", b"exported\n", mode=0o644)
        _add(tar, "srv/keep/a", b"aaa\n", mode=0o644)
        _add(tar, "srv/keep/tool", b"#!/bin/sh\n", mode=0o755)
        _add(tar, "srv/gone/x", b"x\n", mode=0o644)
        _add(tar, "srv/old", b"old\n", mode=0o644)
    os.chmod(path, 0o644)
    return str(path)


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry of our own, for this process and the umlpy it runs."""
    open_up(tmp_path)
    root = tmp_path / "registry"
    monkeypatch.setenv("UMLPY_REGISTRY", str(root))
    return root


def _cli_argv(*words):
    """umlpy export/import as a user runs them (through umlpy's main once
    it knows them; until then the commands' own main)."""
    from umlpy.cli import RAW_HANDLERS
    if words[0] in RAW_HANDLERS:
        return UMLPY + list(words)
    return [sys.executable, "-c", "import sys; from umlpy.lifecycle.oci_commands import main; "
            "sys.exit(main(sys.argv[1], sys.argv[2:]))", *words]


def _cli(*words):
    return subprocess.run(_cli_argv(*words), capture_output=True, env=_env(), timeout=300)


def _run_over(words, script, upper=None):
    options = list(words) + (["--upper", upper] if upper else [])
    return run_umlpy(["sh", "-c", script], options=options, host_root=False)


def _one_line(p):
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def _changed_sandbox(tmp_path, name="box", rootfs=None, extra=()):
    """A sandbox over an image (or rootfs), changed by CHANGES in its upper layer."""
    rootfs = rootfs or _image(tmp_path / "image.tar")
    record = Record(name)
    words = ["--rootfs", rootfs, "--net", "none", "-e", "GREETING=hi", *extra]
    record.create(words, ["/bin/sh", "-c", "sleep 1000"], str(tmp_path))
    p = _run_over(words, CHANGES, upper=record.upper)
    assert p.returncode == 0, p.stderr
    return record


def _listing(words, upper=None):
    p = _run_over(words, LISTING, upper)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def _exported(tmp_path, record):
    out = tmp_path / "box.tar"
    p = _cli("export", record.name, "-o", str(out))
    assert p.returncode == 0, p.stderr
    return out


def _layout(archive):
    """{member name: bytes} of a layout tar."""
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


@needs_root
def test_an_exported_sandbox_imports_with_the_same_files(tmp_path, registry):
    record = _changed_sandbox(tmp_path)
    before = _listing(record.data()["words"], record.upper)
    assert "/tmp/new regular file 640 1000 100 2 4" in before
    assert "/srv/keep/tool regular file 4755 0 0" in before
    assert "/home directory 750 1000 1000" in before
    assert "same-inode" in before and "OLD" not in before and "\nX\n" not in before
    archive = _exported(tmp_path, record)
    p = _cli("import", str(archive), "box2")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"box2\n"
    data = Record("box2").data()
    words = data["words"]
    layers = os.path.join(Record("box2").dir, "layers")
    assert words[:4] == ["--rootfs", f"{layers}/0.tar", "--layer", f"{layers}/1.tar"]
    assert words[4:] == ["--net", "none", "-e", "GREETING=hi"]
    assert data["init"] == ["/bin/sh", "-c", "sleep 1000"]
    assert os.listdir(Record("box2").upper) == []
    assert _listing(words) == before
    assert "greeting=hi" in before


@needs_root
def test_the_layout_is_what_the_image_spec_asks(tmp_path, registry):
    record = _changed_sandbox(tmp_path)
    files = _layout(_exported(tmp_path, record))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    [desc] = index["manifests"]
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    def blob(d):
        assert HEX.match(d["digest"]) and isinstance(d["size"], int), d
        raw = files[f"blobs/sha256/{d['digest'][7:]}"]
        assert len(raw) == d["size"]
        import hashlib
        assert hashlib.sha256(raw).hexdigest() == d["digest"][7:]
        return raw
    manifest = json.loads(blob(desc))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == desc["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blob(manifest["config"]))
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["rootfs"]["type"] == "layers"
    assert len(manifest["layers"]) == 2
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
        blob(layer)
        assert diff_id == layer["digest"]         # uncompressed: the same digest
    assert config["config"]["Env"] == ["GREETING=hi"]
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "sleep 1000"]
    assert json.loads(config["config"]["Labels"]["org.umlpy.run-options"]) == \
        ["--net", "none", "-e", "GREETING=hi"]
    # the upper layer: OCI whiteouts, guest owners, set-ID bits, hard links
    upper = tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][1])))
    members = {m.name: m for m in upper}
    assert "srv/.wh.old" in members and "srv/gone/.wh..wh..opq" in members
    assert not any(".wh..wh..lower" in n or ".wh..wh..setid" in n for n in members)
    new, hard = members["tmp/new"], members["tmp/hard"]
    assert {new.type, hard.type} == {tarfile.REGTYPE, tarfile.LNKTYPE}
    assert (new.uid, new.gid, new.mode) == (1000, 100, 0o640)
    assert members["srv/keep/tool"].mode == 0o4755
    assert members["srv/link"].issym() and members["srv/link"].linkname == "../etc/hostname"
    assert members["srv/keep/a"].mtime == 1609556645


def _oci_tools():
    """The OCI tools here, installed from Debian if missing (as root)."""
    found = [t for t in ("skopeo", "umoci") if shutil.which(t)]
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "skopeo", "umoci"],
                       capture_output=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        found = [t for t in ("skopeo", "umoci") if shutil.which(t)]
    if not found:
        pytest.skip("neither skopeo nor umoci is installed or installable here")
    return found


SCHEMAS = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema"
SYSTEM_PYTHON = "/usr/bin/python3"
# Run by the system's python, which has Debian's python3-jsonschema: each
# schema's relative $refs name its neighbours in the schema directory.
VALIDATE = """
import json, os, sys
import jsonschema
where = sys.argv[1]
def load(uri):
    with open(os.path.join(where, uri.rsplit("/", 1)[-1].split("#")[0])) as f:
        return json.load(f)
for schema_name, doc in zip(sys.argv[2::2], sys.argv[3::2]):
    schema = load(schema_name)
    resolver = jsonschema.RefResolver(schema.get("id", ""), schema,
                                      handlers={"https": load, "http": load})
    jsonschema.Draft4Validator(schema, resolver=resolver).validate(json.loads(doc))
print("valid")
"""


def _schema_validator():
    """(python, schema directory) to check documents against the
    image-spec's own JSON schemas (Debian packages them), or skip."""
    def ready():
        return os.path.isdir(SCHEMAS) and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import jsonschema"], capture_output=True).returncode == 0
    if not ready() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "golang-github-opencontainers-image-spec-dev", "python3-jsonschema"],
                       capture_output=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not ready():
        pytest.skip("the image-spec's JSON schemas (golang-github-opencontainers-image-spec-dev)"
                    " or python3-jsonschema are not installed or installable here")


def test_the_layout_passes_the_image_specs_json_schemas(tmp_path, registry):
    _schema_validator()
    record = Record("small")
    record.create(["--rootfs", _image(tmp_path / "image.tar"), "-e", "A=1", "-C", "/srv"],
                  ["/bin/sh"], str(tmp_path))
    files = _layout(_exported(tmp_path, record))
    index = json.loads(files["index.json"])
    manifest = files[f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"]
    config = files[f"blobs/sha256/{json.loads(manifest)['config']['digest'][7:]}"]
    p = subprocess.run([SYSTEM_PYTHON, "-c", VALIDATE, SCHEMAS,
                        "image-layout-schema.json", files["oci-layout"],
                        "image-index-schema.json", files["index.json"],
                        "image-manifest-schema.json", manifest,
                        "config-schema.json", config], capture_output=True, timeout=120)
    assert p.stdout == b"valid\n", p.stderr.decode()[-3000:]
    assert json.loads(config)["config"]["WorkingDir"] == "/srv"
    # and the validator does refuse what the spec forbids
    bad = json.loads(manifest)
    bad["layers"][0]["size"] = "12"
    p = subprocess.run([SYSTEM_PYTHON, "-c", VALIDATE, SCHEMAS,
                        "image-manifest-schema.json", json.dumps(bad)], capture_output=True)
    assert p.returncode != 0 and b"ValidationError" in p.stderr


@needs_root
def test_oci_tools_read_the_layout(tmp_path, registry):
    tools = _oci_tools()
    record = _changed_sandbox(tmp_path)
    archive = _exported(tmp_path, record)
    if "skopeo" in tools:
        p = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"],
                           capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        seen = json.loads(p.stdout)
        assert seen["Architecture"] == "amd64" and len(seen["Layers"]) == 2
        # a copy reads every blob and checks its digest
        p = subprocess.run(["skopeo", "copy", f"oci-archive:{archive}",
                            f"oci:{tmp_path / 'copied'}:box"], capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr
    if "umoci" in tools:
        layout = tmp_path / "layout"
        layout.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(layout)
        bundle = tmp_path / "bundle"
        p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:box", str(bundle)],
                           capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr
        rootfs = bundle / "rootfs"
        assert (rootfs / "tmp/new").read_bytes() == b"new\n"
        st = os.stat(rootfs / "tmp/new")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 100, 0o640)
        assert os.path.samestat(st, os.stat(rootfs / "tmp/hard"))
        assert os.readlink(rootfs / "srv/link") == "../etc/hostname"
        assert not os.path.lexists(rootfs / "srv/old")
        assert os.listdir(rootfs / "srv/gone") == ["y"]
        assert os.stat(rootfs / "srv/keep/tool").st_mode & 0o7777 == 0o4755


@needs_root
def test_a_directory_rootfs_is_packed_into_a_layer(tmp_path, registry):
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(_image(tmp_path / "image.tar")) as tar:
        tar.extractall(tree, numeric_owner=True)
    record = _changed_sandbox(tmp_path, rootfs=str(tree))
    before = _listing(record.data()["words"], record.upper)
    archive = _exported(tmp_path, record)
    assert _cli("import", str(archive), "again").returncode == 0
    assert _listing(Record("again").data()["words"]) == before


@needs_root
def test_xattrs_travel_under_the_guests_names(tmp_path, registry):
    record = _changed_sandbox(tmp_path)
    target = os.path.join(record.upper, "tmp", "new")
    os.setxattr(target, "user.note", b"kept\xff")
    os.setxattr(target, "user.umlpy.trusted.overlay", b"emulated")   # the guest's trusted.*
    archive = _exported(tmp_path, record)
    assert _cli("import", str(archive), "box2").returncode == 0
    from umlpy.kernel.vfs.tarimage import stack_images
    layers = os.path.join(Record("box2").dir, "layers")
    tree = stack_images([f"{layers}/0.tar", f"{layers}/1.tar"])
    try:
        assert dict(tree.xattrs(tree.lookup("tmp/new"))) == \
            {"user.note": b"kept\xff", "trusted.overlay": b"emulated"}
    finally:
        tree.close()


@needs_root
def test_a_symlinks_and_a_fifos_emulated_xattrs_travel(tmp_path, registry):
    """Symlinks and FIFOs keep the guest's trusted.* and security.capability
    in the upper layer's records (xattrstore.py), not on the host object:
    the export writes them into the layer's PAX headers all the same, and
    the imported image gives them back."""
    from umlpy.kernel.vfs import hostops, xattrstore
    record = _changed_sandbox(tmp_path)
    os.mkfifo(os.path.join(record.upper, "tmp", "fifo"), 0o600)
    fd = os.open(record.upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        store = xattrstore.Store(fd, record.upper)
        for rel, attrs in (("srv/link", {"trusted.t": b"T\xff"}),
                           ("tmp/fifo", {"trusted.f": b"F", "security.capability": b"c"})):
            where = os.path.join(record.upper, rel)
            assert store.save(hostops.path_key(where), attrs, where)
    finally:
        os.close(fd)
    archive = _exported(tmp_path, record)
    assert _cli("import", str(archive), "box2").returncode == 0
    from umlpy.kernel.vfs.tarimage import stack_images
    layers = os.path.join(Record("box2").dir, "layers")
    tree = stack_images([f"{layers}/0.tar", f"{layers}/1.tar"])
    try:
        assert dict(tree.xattrs(tree.lookup("srv/link"))) == {"trusted.t": b"T\xff"}
        assert dict(tree.xattrs(tree.lookup("tmp/fifo"))) == \
            {"trusted.f": b"F", "security.capability": b"c"}
    finally:
        tree.close()


def test_a_sandbox_over_the_hosts_tree_is_refused(tmp_path, registry):
    Record("hosty").create(["--net", "none"], None, str(tmp_path))
    out = tmp_path / "out.tar"
    p = _cli("export", "hosty", "-o", str(out))
    assert p.returncode == 2
    assert "--rootfs" in _one_line(p)
    assert not out.exists() and os.listdir(tmp_path) == ["registry"]


def test_usage_errors_are_one_line(tmp_path, registry):
    for words in (["export"], ["export", "x"], ["export", "x", "-o"], ["import", "a.tar"],
                  ["import", "--bogus", "a.tar", "b"], ["export", "no-such", "-o", "x.tar"]):
        p = _cli(*words)
        assert p.returncode == 2, (words, p.stderr)
        _one_line(p)
    p = _cli("import", "--help")
    assert p.returncode == 0 and b"usage: umlpy import" in p.stdout


def _good_archive(tmp_path):
    record = Record("small")
    record.create(["--rootfs", _image(tmp_path / "image.tar")], None, str(tmp_path))
    return _exported(tmp_path, record)


def _entries(registry):
    return sorted(os.listdir(registry)) if registry.exists() else []


def _refused(archive, registry):
    before = _entries(registry)
    p = _cli("import", str(archive), "broken")
    assert p.returncode == 2, p.stderr
    line = _one_line(p)
    assert _entries(registry) == before       # no record, no staging left
    assert not Record("broken").exists()
    return line


def test_a_corrupt_archive_is_refused_and_leaves_nothing(tmp_path, registry):
    archive = _good_archive(tmp_path)
    raw = archive.read_bytes()
    with tarfile.open(archive) as tar:
        layer = max((m for m in tar if m.isreg()), key=lambda m: m.size)
    flipped = bytearray(raw)
    flipped[layer.offset_data + layer.size // 2] ^= 0x40
    bad = tmp_path / "flipped.tar"
    bad.write_bytes(flipped)
    assert "digest" in _refused(bad, registry)
    for cut in (len(raw) // 2, layer.offset_data + 100, 700):
        bad = tmp_path / f"cut{cut}.tar"
        bad.write_bytes(raw[:cut])
        _refused(bad, registry)


def _with_member(archive, out, info, data=b""):
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        dst.addfile(info, io.BytesIO(data) if info.isreg() else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "twice"])
def test_a_hostile_member_is_refused(tmp_path, registry, kind):
    archive = _good_archive(tmp_path)
    name = {"dotdot": "../x", "absolute": "/tmp/x", "symlink": "blobs/evil",
            "hardlink": "blobs/evil", "twice": "index.json"}[kind]
    info = tarfile.TarInfo(name)
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "index.json"
    else:
        info.size = 2
    bad = tmp_path / "hostile.tar"
    _with_member(archive, bad, info, b"{}")
    _refused(bad, registry)
    assert not os.path.exists(tmp_path / "x") and not os.path.exists("/tmp/x")


def test_options_that_reach_the_host_are_kept_only_when_asked(tmp_path, registry):
    image = _image(tmp_path / "image.tar")
    Record("bound").create(["--rootfs", image, "--bind", "shared:/mnt", "--hostname", "h1"],
                           None, str(tmp_path))
    out = tmp_path / "bound.tar"
    assert _cli("export", "bound", "-o", str(out)).returncode == 0
    p = _cli("import", str(out), "plain")
    assert p.returncode == 0, p.stderr
    assert "--bind" in _one_line(p)
    assert Record("plain").data()["words"][4:] == ["--hostname", "h1"]
    p = _cli("import", "--keep-host-options", str(out), "trusting")
    assert p.returncode == 0 and p.stderr == b""
    assert Record("trusting").data()["words"][4:] == \
        ["--bind", f"{tmp_path}/shared:/mnt", "--hostname", "h1"]


def test_a_gzip_image_of_another_tool_imports(tmp_path, registry):
    if not shutil.which("skopeo"):
        _oci_tools()
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    archive = _good_archive(tmp_path)
    gz = tmp_path / "gz.tar"
    p = subprocess.run(["skopeo", "copy", "--dest-compress", "--dest-compress-format", "gzip",
                        f"oci-archive:{archive}", f"oci-archive:{gz}"],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert b"tar+gzip" in subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{gz}"],
                                         capture_output=True).stdout
    assert _cli("import", str(gz), "unzipped").returncode == 0
    p = _run_over(Record("unzipped").data()["words"], "cat /etc/hostname /srv/old")
    assert p.stdout == b"exported\nold\n", p.stderr


def test_export_to_stdout_imports(tmp_path, registry):
    Record("small").create(["--rootfs", _image(tmp_path / "image.tar")], None, str(tmp_path))
    out = tmp_path / "piped.tar"
    with open(out, "wb") as f:
        p = subprocess.run(_cli_argv("export", "small", "-o", "-"), stdout=f,
                           stderr=subprocess.PIPE, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert _cli("import", str(out), "piped").returncode == 0
    assert os.listdir(os.path.join(Record("piped").dir, "layers")) != []


def test_a_layer_that_is_no_tar_is_refused(tmp_path, registry):
    """Every digest right, but a layer umlpy could not run over."""
    from umlpy.lifecycle import oci_layout as L
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a tar at all\n" * 100)
    bad = tmp_path / "garbage.tar"
    with open(bad, "wb") as out:
        writer = L.LayoutWriter(out)
        layer = writer.add_file(L.LAYER_TAR, str(garbage))
        config = writer.add_json(L.CONFIG, {"architecture": "amd64", "os": "linux",
                                            "rootfs": {"type": "layers",
                                                       "diff_ids": [layer["digest"]]}})
        manifest = writer.add_json(L.MANIFEST, {"schemaVersion": 2, "mediaType": L.MANIFEST,
                                                "config": config, "layers": [layer]})
        writer.finish(manifest, "bad")
    assert "layer 0" in _refused(bad, registry)


def test_upper_owners_of_an_ordinary_user(monkeypatch):
    """As an ordinary user with subordinate ids, the upper's host owners
    are the user (the guest's own id, 0 with --root) and the subordinate
    ids, through the namespace umlpy enters (identity.entered_maps)."""
    from umlpy.kernel import identity as I
    from umlpy.lifecycle import upper_owners
    monkeypatch.delenv(I.SUBORDINATE_ENV, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(I, "subordinate_maps", lambda uid, gid: (
        I._user_then(uid, 100000), I._user_then(gid, 200000), "newuidmap", "newgidmap"))
    ids = upper_owners.layer_ids(upper_owners.guest_map({}, "/nonexistent"))
    assert ids(1000, 1000) == (1000, 1000)
    assert ids(100000, 200000) == (0, 0)
    assert ids(100000 + 1000, 200000 + 1000) == (1001, 1001)
    assert ids(5, 5) == (65534, 65534)
    ids = upper_owners.layer_ids(upper_owners.guest_map({"root": True}, "/nonexistent"))
    assert ids(1000, 1000) == (0, 0)
    assert ids(100000, 200000) == (1, 1)
    # umlpy export run again in the user's namespace: owners show as its ids
    monkeypatch.setenv(I.SUBORDINATE_ENV, "1000:1000")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    ids = upper_owners.layer_ids(upper_owners.guest_map({}, "/nonexistent"))
    assert ids(0, 0) == (1000, 1000) and ids(1, 1) == (0, 0) and ids(1001, 1001) == (1001, 1001)
    monkeypatch.delenv(I.SUBORDINATE_ENV)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(I, "subordinate_maps", lambda uid, gid: None)
    ids = upper_owners.layer_ids(upper_owners.guest_map({"root": True}, "/nonexistent"))
    assert ids(1000, 1000) == (0, 0) and ids(0, 0) == (65534, 65534)


def test_an_upper_layer_packs_as_the_union_shows_it(tmp_path):
    """Whiteouts first in each directory (an in-order reader must not
    delete what the same layer made), a whiteout beside an object of its
    name dropped (beside a directory: the directory made opaque), umlpy's
    own .wh..wh. records left out; names of any bytes and length, fifos."""
    from umlpy.kernel.vfs.tarimage import stack_images
    from umlpy.lifecycle import layer_tar
    lower = tmp_path / "lower.tar"
    with tarfile.open(lower, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("d", "d/x", "d/keep"):
            _add(tar, d)
        for f in ("d/-b", "d/x/old", "d/f", "d/keep/k"):
            _add(tar, f, b"lower\n", mode=0o644)
    upper = tmp_path / "upper"
    (upper / "d" / "x").mkdir(parents=True)
    for name in ("d/.wh.x", "d/.wh.-b", "d/.wh.f", ".wh..wh.lower", "d/.wh..wh.other"):
        (upper / name).write_bytes(b"")
    (upper / "d" / "-a").write_bytes(b"new\n")
    (upper / "d" / "f").write_bytes(b"upper\n")
    (upper / "d" / "x" / "new").write_bytes(b"new\n")
    os.mkfifo(upper / "d" / "fifo")
    long_name = "L" * 200
    (upper / long_name).write_bytes(b"long\n")
    with open(os.fsencode(upper) + b"/bad\xffname", "wb") as f:
        f.write(b"bytes\n")
    layer = tmp_path / "upper.tar"
    with open(layer, "wb") as out:
        layer_tar.pack(str(upper), out, upper=True)
    with tarfile.open(layer) as tar:
        names = tar.getnames()
    assert names.index("d/.wh.-b") < names.index("d/-a")
    assert "d/.wh.f" not in names and "d/.wh.x" not in names
    assert names.index("d/x/.wh..wh..opq") == names.index("d/x") + 1
    assert not any(".wh..wh.lower" in n or ".wh..wh.other" in n for n in names)
    tree = stack_images([str(lower), str(layer)])
    try:
        assert sorted(n for n, _ in tree.children("d")) == ["-a", "f", "fifo", "keep", "x"]
        assert [n for n, _ in tree.children("d/x")] == ["new"]
        assert tree.read(tree.lookup("d/f")) == b"upper\n"
        assert tree.read(tree.lookup(long_name)) == b"long\n"
        assert tree.read(tree.lookup("bad\udcffname")) == b"bytes\n"
        assert tree.lookup("d/fifo").kind == 0o010000
    finally:
        tree.close()
