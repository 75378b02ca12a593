"""The image builders in rootfs/: what they put in an image, checked with
tarfile and the TarTree that will serve it."""
import importlib.machinery
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from umlpy.kernel.vfs.tarimage import stack_images

ROOTFS = Path(__file__).resolve().parent.parent / "rootfs"
MAKE_IMAGE = ROOTFS / "make-image"
MAKE_DEBIAN = ROOTFS / "make-debian-image"
ROOT = os.geteuid() == 0
needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None,
                                   reason="busybox not installed (apt-get install busybox-static)")


def make_image(*args, env=None):
    return subprocess.run([sys.executable, str(MAKE_IMAGE), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def members(tar_path):
    with tarfile.open(tar_path) as tar:
        return {m.name: m for m in tar.getmembers()}


def resolve(tree, path, hops=0):
    """Follow symlinks inside the image (as the guest would) to an entry."""
    parts = [p for p in path.split("/") if p]
    done = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = done[:-1]
        if part in (".", ".."):
            continue
        done.append(part)
        entry = tree.lookup("/".join(done))
        assert entry is not None, f"{path}: {'/'.join(done)} missing"
        if stat.S_ISLNK(entry.mode):
            assert hops < 40
            target = entry.linkname
            base = [] if target.startswith("/") else done[:-1]
            return resolve(tree, "/".join(base + [target] + parts), hops + 1)
        if parts:
            assert stat.S_ISDIR(entry.mode), path
    return "/".join(done), tree.lookup("/".join(done))


def load_builder():
    loader = importlib.machinery.SourceFileLoader("make_image", str(MAKE_IMAGE))
    spec = importlib.util.spec_from_loader("make_image", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def assert_base_layout(tree):
    assert tree.lookup("tmp").mode == stat.S_IFDIR | 0o1777
    for directory in ("root", "proc", "dev", "etc"):
        assert tree.lookup(directory).kind == stat.S_IFDIR, directory
    assert tree.read(tree.lookup("etc/passwd")).startswith(b"root:x:0:0:")
    assert tree.read(tree.lookup("etc/group")).startswith(b"root:x:0:")


def run_in_chroot(tar_path, dest, command):
    """Extract the image and run a command in it: the closure is complete."""
    os.makedirs(dest)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, numeric_owner=True)
    return subprocess.run(["chroot", str(dest), "/bin/sh", "-c", command],
                          capture_output=True, text=True, timeout=60)


@needs_busybox
def test_busybox_image(tmp_path):
    out = tmp_path / "busybox.tar"
    done = subprocess.run([str(MAKE_IMAGE), "busybox", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path) == ["busybox.tar"]            # nothing half-written left
    found = members(out)
    assert found["bin/busybox"].isreg() and found["bin/busybox"].mode == 0o755
    applets = subprocess.run(["busybox", "--list"], capture_output=True, text=True).stdout.split()
    for applet in set(applets) - {"busybox"}:
        assert found[f"bin/{applet}"].issym() and found[f"bin/{applet}"].linkname == "busybox"
    assert all(m.uid == 0 and m.gid == 0 for m in found.values())
    with stack_images(str(out)) as tree:
        assert_base_layout(tree)
        assert resolve(tree, "/bin/sh")[0] == "bin/busybox"
        assert resolve(tree, "/usr/bin/env")[0] == "bin/busybox"
    if ROOT:
        ran = run_in_chroot(out, tmp_path / "x", "echo hello | wc -c; ls /tmp")
        assert ran.stdout.split() == ["6"], ran.stderr


def test_busybox_missing_is_a_clear_error(tmp_path):
    done = make_image("busybox", tmp_path / "out.tar", env=dict(os.environ, PATH="/nonexistent"))
    assert done.returncode == 2
    assert done.stderr.strip() == "make-image: busybox not found (apt-get install busybox-static)"
    assert os.listdir(tmp_path) == []


def test_host_image(tmp_path):
    out = tmp_path / "host.tar"
    done = make_image("host", out, "/bin/true", "env")
    assert done.returncode == 0, done.stderr
    found = members(out)
    builder = load_builder()
    loader = builder.elf_interpreter("/bin/true")
    with stack_images(str(out)) as tree:
        assert_base_layout(tree)
        for program in ("/bin/true", shutil.which("env"), "/bin/sh", loader):
            real, entry = resolve(tree, program)
            assert entry.kind == stat.S_IFREG, program
            with open(program, "rb") as f:
                assert tree.read(entry) == f.read(), program
        libc = [line.split("=>")[1].split()[0] for line in
                subprocess.run(["ldd", "/bin/true"], capture_output=True, text=True).stdout.splitlines()
                if line.strip().startswith("libc.so")]
        assert libc and resolve(tree, libc[0])[1].kind == stat.S_IFREG
    # symlinks on the way are kept as symlinks (merged /usr: bin -> usr/bin)
    for link in ("/bin", "/lib", "/lib64", loader, "/bin/sh"):
        if os.path.islink(link):
            name = os.path.join(os.path.realpath(os.path.dirname(link)), os.path.basename(link))
            assert found[name.lstrip("/")].issym() and found[name.lstrip("/")].linkname == os.readlink(link)
    if ROOT:
        ran = run_in_chroot(out, tmp_path / "x", "env true && echo ok")
        assert ran.stdout == "ok\n", ran.stderr


def test_host_image_of_a_script_brings_its_interpreter(tmp_path):
    script = tmp_path / "hello"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    out = tmp_path / "s.tar"
    assert make_image("host", out, script).returncode == 0
    with stack_images(str(out)) as tree:
        assert tree.lookup(str(script).lstrip("/")).mode == stat.S_IFREG | 0o755
        assert resolve(tree, "/bin/sh")[1].kind == stat.S_IFREG


def test_host_image_errors(tmp_path):
    done = make_image("host", tmp_path / "out.tar", "/bin/true", "/no/such/prog")
    assert done.returncode == 2
    assert done.stderr.strip() == "make-image: /no/such/prog: no such program"
    assert os.listdir(tmp_path) == []
    for args in ([], ["host", tmp_path / "o.tar"], ["busybox"], ["tarball", tmp_path / "o.tar"]):
        done = make_image(*args)
        assert done.returncode == 2 and done.stderr.startswith("usage:")
    done = make_image("host", tmp_path / "no-dir" / "o.tar", "/bin/true")
    assert done.returncode == 2 and "directory does not exist" in done.stderr


def test_elf_interpreter_of_static_and_dynamic_programs():
    builder = load_builder()
    assert builder.elf_interpreter("/bin/true").startswith("/")
    assert builder.elf_interpreter(__file__) is None
    busybox = shutil.which("busybox")
    if busybox:
        assert builder.elf_interpreter(busybox) is None


def test_debian_builder_usage_errors(tmp_path):
    done = subprocess.run([str(MAKE_DEBIAN)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
    done = subprocess.run([str(MAKE_DEBIAN), "--bogus", "x.tar"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
    # an image newer than the script is kept as it is
    out = tmp_path / "debian.tar"
    out.write_bytes(b"")
    os.utime(out, (os.stat(MAKE_DEBIAN).st_mtime + 10,) * 2)
    done = subprocess.run([str(MAKE_DEBIAN), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "up to date" in done.stdout


def _mirror_reachable(url):
    try:
        urllib.request.urlopen(url, timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_debian_image():
    where = os.environ.get("UMLPY_DEBIAN_IMAGE")
    if not where:
        pytest.skip("set UMLPY_DEBIAN_IMAGE=/path/debian.tar to build a Debian image (slow, network)")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not installed (apt-get install debootstrap)")
    if not ROOT:
        pytest.skip("debootstrap needs root")
    mirror = os.environ.get("DEBIAN_MIRROR") or subprocess.run(
        [str(MAKE_DEBIAN.parent / "apt-mirror")], capture_output=True, text=True).stdout.strip()
    if not mirror:
        pytest.skip("no Debian mirror in apt's sources (set DEBIAN_MIRROR)")
    if not _mirror_reachable(mirror.rstrip("/") + "/dists/bookworm/Release"):
        pytest.skip(f"Debian mirror {mirror} unreachable")
    done = subprocess.run([str(MAKE_DEBIAN), where], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr
    with stack_images(where) as tree:
        assert tree.lookup("etc/debian_version").kind == stat.S_IFREG
        assert resolve(tree, "/bin/sh")[1].kind == stat.S_IFREG
        assert resolve(tree, "/usr/bin/dpkg")[1].kind == stat.S_IFREG
        assert tree.lookup("tmp").mode == stat.S_IFDIR | 0o1777
    again = subprocess.run([str(MAKE_DEBIAN), where], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "up to date" in again.stdout
