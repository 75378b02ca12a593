"""Changes the guest kernel makes on the host for a guest thread are made
with that thread's host identity (umlpy/kernel/vfs/hostid.py), with the
guest's umask, and never through a path the guest could swap."""
import os
import subprocess
import sys

import pytest

from conftest import _env, open_up

AS_ROOT = os.geteuid() == 0


def run(script, options=(), host_root=False):
    argv = [sys.executable, "-m", "umlpy", "run", *options]
    if host_root and AS_ROOT:
        argv.append("--host-root")
    p = subprocess.run(argv + ["--", "sh", "-c", script], capture_output=True,
                       env=_env(), timeout=60, cwd="/")
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_umask_and_modes_as_natively():
    status, out, err = run("umask 027; mkdir /tmp/d; touch /tmp/f; mkfifo /tmp/p; "
                           "ln -s f /tmp/l; stat -c '%n %a' /tmp/d /tmp/f /tmp/p; "
                           "umask 0; mkdir -m 1777 /tmp/s; stat -c '%n %a' /tmp/s")
    assert status == 0, err
    assert out.split("\n")[:4] == ["/tmp/d 750", "/tmp/f 640", "/tmp/p 640", "/tmp/s 1777"]


@pytest.mark.skipif(not AS_ROOT, reason="the dropped identity exists only under root")
def test_changes_are_made_as_the_sandbox_ids_on_the_host(tmp_path):
    """The upper layer's objects belong to the guest's host identity, and a
    host directory only root may write stays unwritable through a bind."""
    upper = tmp_path / "upper"
    ro = tmp_path / "rootonly"
    ro.mkdir(mode=0o755)
    open_up(tmp_path)
    status, out, err = run("mkdir /tmp/made && echo x > /tmp/made/f && "
                           "mkdir /mnt/r/new; echo rc=$?",
                           options=["--upper", str(upper), "--bind", f"{ro}:/mnt/r"])
    assert status == 0 and "rc=1" in out, (out, err)
    st = os.stat(upper / "tmp" / "made" / "f")
    from umlpy.kernel.identity import BLOCKS_FROM, IDS_INSIDE
    # guest root's: the first id of the sandbox's block
    assert st.st_uid == st.st_gid and st.st_uid >= BLOCKS_FROM, st
    assert (st.st_uid - BLOCKS_FROM) % IDS_INSIDE == 0
    assert not (ro / "new").exists()


@pytest.mark.skipif(not AS_ROOT, reason="needs a file only root may read")
def test_copy_up_never_reads_what_the_guest_may_not(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET\n")
    os.chmod(secret, 0o600)
    open_up(tmp_path)
    for call in (f"touch -c {secret}", f"chown 0 {secret}", f"chmod 644 {secret}",
                 f"ln {secret} /tmp/x", f"setfattr -n user.x -v 1 {secret}",
                 f"truncate -s 0 {secret}"):
        status, out, err = run(f"{call}; cat {secret} /tmp/x; echo done")
        assert "TOP-SECRET" not in out and "done" in out, (call, out, err)
    assert secret.read_text() == "TOP-SECRET\n"


def test_xattrs_statfs_access_and_chdir():
    status, out, err = run(
        "cd /tmp && touch f && python3 -c \"import os; os.setxattr('f', 'user.k', b'v'); "
        "print(os.getxattr('f', 'user.k'), os.listxattr('f')); os.removexattr('f', 'user.k'); "
        "print(os.listxattr('f')); print(os.statvfs('/tmp').f_bsize > 0); "
        "print(os.access('/tmp/f', os.W_OK), os.access('/nonexistent', os.F_OK)); "
        "os.chdir('/usr'); print(os.getcwd(), os.path.exists('lib'))\"")
    assert status == 0, err
    assert out.split("\n")[:5] == ["b'v' ['user.k']", "[]", "True", "True False",
                                   "/usr True"]


def test_rename_and_unlink_on_a_writable_bind(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    open_up(tmp_path)
    os.chmod(shared, 0o777)
    (shared / "a").write_text("A")
    os.chmod(shared / "a", 0o666)
    status, out, err = run("mv /mnt/s/a /mnt/s/b && ln -s b /mnt/s/l && rm /mnt/s/l && "
                           "mkdir /mnt/s/d && rmdir /mnt/s/d && ls /mnt/s",
                           options=["--bind", f"{shared}:/mnt/s"], host_root=True)
    assert status == 0, err
    assert out == "b\n" and sorted(os.listdir(shared)) == ["b"]


def test_unix_socket_names_show_guest_paths():
    status, out, err = run(
        "python3 -c \"import socket, os\n"
        "s = socket.socket(socket.AF_UNIX); s.bind('/tmp/s.sock'); s.listen()\n"
        "c = socket.socket(socket.AF_UNIX); c.connect('/tmp/s.sock'); a, _ = s.accept()\n"
        "print(s.getsockname(), c.getpeername(), oct(os.stat('/tmp/s.sock').st_mode))\"")
    assert status == 0, err
    assert out.strip() == "/tmp/s.sock /tmp/s.sock 0o140755"


def test_identity_executor_runs_as_asked():
    from umlpy.kernel.vfs.hostid import HostIdentity, IdentityExecutor
    ex = IdentityExecutor()
    try:
        me = HostIdentity(os.geteuid(), os.getegid(), os.getgroups())
        assert ex.run(me, os.geteuid) == os.geteuid()
        assert ex.run(me, lambda: os.umask(0o22)) == 0       # its own fs_struct
        if AS_ROOT:
            nobody = HostIdentity(65534, 65534, ())
            assert ex.run(nobody, lambda: (os.geteuid(), os.getegid(), os.getgroups())) \
                == (65534, 65534, [])
            assert os.geteuid() == 0        # umlpy itself unchanged
        with pytest.raises(ZeroDivisionError):
            ex.run(me, lambda: 1 // 0)
    finally:
        ex.close()
