"""Many users inside one sandbox (issue 13, parts 1 and 2): as root the
guest's ids are a block of the sandbox's own; an ordinary user with
/etc/subuid ranges gets them through newuidmap; guest root owns its
copy-on-write world and still reads only what its host ids may."""
import contextlib
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, UMLPY, _env, open_up, run_umlpy

AS_ROOT = os.geteuid() == 0
SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_root = pytest.mark.skipif(not AS_ROOT, reason="umlpy as root makes the block")

# What a distribution's package manager and its daemons do: files given to
# other users and groups, a user that makes its own files in its own 0700
# directory, root writing there anyway, groups dropped and taken.
MANY_USERS = r"""
cd "$1"
mkdir home; chmod 755 home
mkdir home/app; chown 42:42 home/app; chmod 700 home/app
setpriv --reuid=42 --regid=42 --clear-groups sh -c 'echo mine > home/app/own; id -u; id -G'
setpriv --reuid=43 --regid=43 --clear-groups sh -c 'cat home/app/own 2>/dev/null || echo refused'
echo root > home/app/by-root
touch shared; chown 1000:4 shared; chmod 640 shared
setpriv --reuid=1001 --regid=1001 --groups=4 sh -c 'cat shared >/dev/null && echo group-read'
setpriv --reuid=1001 --regid=1001 --clear-groups sh -c 'cat shared 2>/dev/null || echo other-refused'
chown 65535:65535 shared && echo top-id
setpriv --reuid=5 --regid=5 --groups=7,9 sh -c 'id -G; touch mine 2>/dev/null || echo no-write-in-root-dir'
ls -ln home/app shared | awk '{print $1, $3, $4, $NF}'
"""


@needs_root
def test_many_users_as_natively(tmp_path):
    script = "mkdir -p /tmp/work 2>/dev/null; " + MANY_USERS
    native_dir = tmp_path / "native"
    native_dir.mkdir()
    native = subprocess.run(["sh", "-c", MANY_USERS, "sh", str(native_dir)],
                            capture_output=True, text=True)
    inside = run_umlpy(["sh", "-c", script, "sh", "/tmp/work"], host_root=False)
    assert native.returncode == 0, native.stderr
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.decode() == native.stdout
    assert "refused" in native.stdout and "group-read" in native.stdout


@needs_root
def test_the_guest_ids_are_a_block_no_host_user_has(tmp_path):
    """Seen from the host, files the guest's users made belong to ids of
    the sandbox's block: the guest's id plus its first."""
    from umlpy.kernel.identity import BLOCKS_FROM, IDS_INSIDE
    upper = tmp_path / "upper"
    open_up(tmp_path)
    p = run_umlpy(["sh", "-c", "touch /tmp/r && touch /tmp/u && chown 42:43 /tmp/u"],
                  options=["--upper", str(upper)], host_root=False)
    assert p.returncode == 0, p.stderr
    r, u = os.stat(upper / "tmp" / "r"), os.stat(upper / "tmp" / "u")
    first = r.st_uid
    assert first >= BLOCKS_FROM and (first - BLOCKS_FROM) % IDS_INSIDE == 0
    assert (r.st_gid, u.st_uid, u.st_gid) == (first, first + 42, first + 43)
    # an id beyond the block is no id of the sandbox's (as in any user namespace)
    p = run_umlpy(["chown", "65536", "/tmp/r"], options=["--upper", str(upper)],
                  host_root=False)
    assert p.returncode == 1 and b"Invalid argument" in p.stderr, p.stderr
    # a later run on the same upper keeps its block, so its owners stay
    p = run_umlpy(["sh", "-c", "ls -ln /tmp/u | awk '{print $3, $4}'"],
                  options=["--upper", str(upper)], host_root=False)
    assert p.stdout == b"42 43\n", p.stderr


@needs_root
def test_two_sandboxes_get_two_blocks_and_a_held_block_is_refused(tmp_path):
    from umlpy.kernel.identity import IdBlock
    held = IdBlock.take()
    try:
        p = run_umlpy(["sh", "-c", "cat /proc/self/uid_map"], host_root=False)
        assert p.returncode == 0, p.stderr
        inside, outside, count = map(int, p.stdout.split())
        assert (inside, count) == (0, 65536) and outside != held.first
        p = subprocess.run(UMLPY + ["run", "--id-block", str(held.first), "--", "true"],
                           capture_output=True, env=_env())
        assert p.returncode != 0
        assert p.stderr.decode().count("\n") == 1 and "another sandbox holds" in \
            p.stderr.decode(), p.stderr
    finally:
        held.release()


@needs_root
def test_root_owns_its_copy_but_reads_only_what_its_host_ids_may(tmp_path):
    """Guest root changes the host tree's files in its own copy (the host's
    stay as they were); one its host ids may not read it can neither read
    nor change (a change copies, a copy reads)."""
    secret = tmp_path / "secret"
    secret.write_text("host root only\n")
    os.chmod(secret, 0o600)
    public = tmp_path / "public"
    public.write_text("anyone\n")
    os.chmod(public, 0o644)
    open_up(tmp_path)
    script = (f"echo changed > {public} && cat {public}; "
              f"chmod 666 {secret} 2>/dev/null || echo chmod-refused; "
              f"chown 0 {secret} 2>/dev/null || echo chown-refused; "
              f"cat {secret} 2>/dev/null || echo read-refused; "
              "ls /root >/dev/null 2>&1 || echo list-refused; "
              "mknod /tmp/disk b 8 0 2>/dev/null || echo mknod-refused; "
              "mkdir -p /usr/local/newdir && echo made-in-usr")
    p = run_umlpy(["sh", "-c", script], host_root=False)
    assert p.stdout.decode() == ("changed\nchmod-refused\nchown-refused\nread-refused\n"
                                 "list-refused\nmknod-refused\nmade-in-usr\n"), p.stderr
    assert public.read_text() == "anyone\n" and secret.read_text() == "host root only\n"
    assert os.stat(secret).st_mode & 0o777 == 0o600
    assert not os.path.exists("/usr/local/newdir")


@needs_root
def test_a_setuid_file_guest_root_makes_gives_no_host_power(tmp_path):
    upper = tmp_path / "upper"
    open_up(tmp_path)
    p = run_umlpy(["sh", "-c", "cp /bin/true /tmp/su && chmod 4755 /tmp/su && "
                   "chown 0:0 /tmp/su && chmod 4755 /tmp/su && ls -ln /tmp/su"],
                  options=["--upper", str(upper)], host_root=False)
    assert p.returncode == 0, p.stderr
    st = os.stat(upper / "tmp" / "su")
    assert not st.st_mode & 0o6000 and st.st_uid != 0 and st.st_gid != 0


# -- an ordinary user with subordinate ids --------------------------------

def _nobody_python():
    probe = "import umlpy._native._tracer, ptrace, umlpy; print(umlpy.__file__)"
    # (the interpreter must also start the namespace worker, as uid 65534)
    for candidate in ("/opt/umlpy-ci-venv/bin/python", sys.executable):
        p = subprocess.run(SETPRIV + [candidate, "-c", probe], capture_output=True,
                           env=_env(), cwd="/")
        if p.stdout.decode().strip() == str(ROOT / "umlpy" / "__init__.py"):
            return candidate
    return None


@contextlib.contextmanager
def subordinate_ids_of_nobody():
    """uid 65534 with /etc/subuid and /etc/subgid ranges while it lasts
    (the files exactly as they were afterwards); yields the Python that
    runs umlpy as that user."""
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.fail("newuidmap and newgidmap are needed (Debian's uidmap package)")
    python = _nobody_python()
    if python is None:
        pytest.fail(f"no python with which uid 65534 imports umlpy from {ROOT}")
    saved = {}
    for name in ("/etc/subuid", "/etc/subgid"):
        saved[name] = open(name).read() if os.path.exists(name) else None
        with open(name, "a") as f:
            f.write("nobody:3000000:65536\n")
    try:
        yield python
    finally:
        for name, text in saved.items():
            if text is None:
                os.unlink(name)
            else:
                with open(name, "w") as f:
                    f.write(text)


@pytest.fixture
def nobody_with_subids():
    if not AS_ROOT:
        pytest.skip("sets up /etc/subuid as root")
    with subordinate_ids_of_nobody() as python:
        yield python


def test_an_ordinary_user_gets_its_subordinate_ids(nobody_with_subids, tmp_path):
    open_up(tmp_path)
    os.chmod(tmp_path, 0o777)
    script = ("cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; id -u; "
              "touch /tmp/f && chown 42:42 /tmp/f && ls -ln /tmp/f | awk '{print $3, $4}'; "
              "setpriv --reuid=42 --regid=42 --clear-groups id -u")
    p = subprocess.run(SETPRIV + [nobody_with_subids, "-m", "umlpy", "run", "--root",
                                  "--upper", str(tmp_path / "upper"), "--", "sh", "-c", script],
                       capture_output=True, env=_env(), cwd="/", timeout=120)
    assert p.returncode == 0, p.stderr
    # umlpy entered the user's subordinate namespace (0: the user, 1..: the
    # subordinate ids), where the guest's 0 is the user and 42 is 42
    assert p.stdout.decode() == ("0 0 1\n1 1 65533\n65534 65535 1\n0\n42 42\n42\n"), \
        p.stderr
    # on the host: the subordinate id 3000000 + 41 (guest 0 is the user itself)
    st = os.stat(tmp_path / "upper" / "tmp" / "f")
    assert (st.st_uid, st.st_gid) == (3000041, 3000041)
    # without --root the guest is the user itself, and its ids are all there
    p = subprocess.run(SETPRIV + [nobody_with_subids, "-m", "umlpy", "run", "--",
                                  "sh", "-c", "id -u; wc -l < /proc/self/uid_map"],
                       capture_output=True, env=_env(), cwd="/", timeout=120)
    assert p.stdout == b"65534\n3\n", p.stderr


def test_help_says_which_identity_is_in_force():
    p = subprocess.run(UMLPY + ["run", "--help"], capture_output=True, env=_env())
    out = p.stdout.decode()
    assert "Identity:" in out
    assert ("block of host ids" in out) == AS_ROOT


# -- a directory --rootfs is what a tar image is -------------------------

def _tree(where):
    """A root filesystem unpacked on the host: owners 0 and 42, a 0640
    shadow, _apt's 0700 directory; busybox for a shell."""
    for d in ("bin", "etc", "tmp", "root", "var/lib/apt/lists/partial"):
        (where / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", where / "bin" / "busybox")
    for name in ("sh", "ls", "cat", "id", "touch", "head", "echo", "chown", "stat"):
        os.symlink("busybox", where / "bin" / name)
    (where / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    os.chown(where / "etc" / "shadow", 0, 42)
    os.chmod(where / "etc" / "shadow", 0o640)
    os.chmod(where / "tmp", 0o1777)
    os.chmod(where / "root", 0o700)
    partial = where / "var" / "lib" / "apt" / "lists" / "partial"
    os.chown(partial, 42, 0)
    os.chmod(partial, 0o700)
    os.chmod(where, 0o755)


@needs_root
@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static is needed")
def test_a_directory_rootfs_is_seen_as_its_tar_image(tmp_path):
    """Owners and modes, guest root reading its own 0640 shadow, _apt's
    0700 directory: the same through an unpacked tree (an idmapped mount
    of it) as through its tar; the tree is left as it was, and no mount
    is left on the host."""
    tree = tmp_path / "tree"
    _tree(tree)
    image = tmp_path / "image.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(tree), "-cf", str(image), "."],
                   check=True)
    open_up(tmp_path)
    script = ("id -u; stat -c '%u %g %a' /etc/shadow; head -c 5 /etc/shadow; echo; "
              "stat -c '%u %a' /var/lib/apt/lists/partial /root; "
              "touch /var/lib/apt/lists/partial/f && stat -c %u /var/lib/apt/lists/partial/f; "
              "touch /etc/new && echo changed")
    before = _host_mounts_text()
    outputs = [run_umlpy(["sh", "-c", script], options=["--rootfs", str(root)],
                         host_root=False) for root in (image, tree)]
    for p in outputs:
        assert p.returncode == 0, p.stderr
    assert outputs[1].stdout == outputs[0].stdout
    assert outputs[0].stdout.decode().splitlines()[:4] == [
        "0", "0 42 640", "root:", "42 700"]
    assert not (tree / "etc" / "new").exists() and (tree / "bin" / "busybox").exists()
    assert os.stat(tree / "etc" / "shadow").st_uid == 0
    assert _host_mounts_text() == before


def _host_mounts_text():
    with open("/proc/self/mountinfo") as f:
        return f.read()


@needs_root
def test_set_id_bits_are_the_guests_alone(tmp_path):
    """A setuid or setgid file of the sandbox's (made by chmod, or a host
    setuid program copied up by a chmod) shows its bits inside, but the
    host file carries none: a host user who reached the upper layer could
    run it with the sandbox's ids (the escape suite's upper-setuid).  A
    chown drops them as Linux does: set-user-ID always, set-group-ID with
    group execute (seen natively: 4755 -> 755, 6755 -> 755, 2745 stays)."""
    upper = tmp_path / "upper"
    open_up(tmp_path)
    p = run_umlpy(["sh", "-c", "cp /bin/true /tmp/s && chmod 6755 /tmp/s && "
                   "stat -c %a /tmp/s && chmod u+s /usr/bin/passwd && "
                   "stat -c %a /usr/bin/passwd && /tmp/s && chmod 755 /tmp/s && "
                   "stat -c %a /tmp/s && chown root /usr/bin/passwd && "
                   "stat -c %a /usr/bin/passwd && chmod 6755 /tmp/s && chown 0:0 /tmp/s && "
                   "stat -c %a /tmp/s && chmod 2745 /tmp/s && chown 0 /tmp/s && "
                   "stat -c %a /tmp/s && chmod 4755 /tmp/s"],
                  options=["--upper", str(upper)], host_root=False)
    assert p.stdout == b"6755\n4755\n755\n755\n755\n2745\n", p.stderr
    for host_file in (upper / "tmp" / "s", upper / "usr" / "bin" / "passwd"):
        assert not os.stat(host_file).st_mode & 0o6000, host_file
