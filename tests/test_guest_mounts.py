"""mount(2) and umount2(2) inside the guest (issue 13): in the guest VFS's
mount table, never the host's.  Compared with the same script natively,
in a mount namespace of its own."""
import os
import shutil
import subprocess

import pytest

from conftest import run_umlpy

AS_ROOT = os.geteuid() == 0

SCRIPT = r"""
w=$1
mkdir -p $w/t $w/src $w/b $w/p $w/f
mount -t tmpfs -o mode=710 none $w/t && echo tmpfs
stat -c '%a %F' $w/t
echo in-tmpfs > $w/t/x && cat $w/t/x
echo data > $w/src/x
mount --bind $w/src $w/b && cat $w/b/x
echo through-bind > $w/b/y && cat $w/src/y
mount -o remount,bind,ro $w/b && { echo no > $w/b/z 2>/dev/null || echo read-only; }
umount $w/b && ls $w/b | wc -l
mount --bind $w/src/x $w/p 2>/dev/null || echo file-on-dir-refused
touch $w/f/file; mount --bind $w/src/x $w/f/file && cat $w/f/file && umount $w/f/file
mount -t proc proc $w/p && test -e $w/p/self/status && echo proc
umount $w/p
umount $w/p 2>/dev/null || echo not-mounted
mount -t tmpfs none $w/t/x 2>/dev/null || echo not-a-directory
mount -t ext4 /dev/nothing $w/p 2>/dev/null || echo no-such-fs
mount --make-rprivate / && echo propagation
mkdir -p $w/t/in; mount -t tmpfs none $w/t/in
umount $w/t 2>/dev/null || echo busy-below
umount -l $w/t && echo lazy
setpriv --reuid=1000 --regid=1000 --clear-groups mount -t tmpfs none $w/p 2>/dev/null || echo user-refused
"""


def _native(tmp_path):
    work = tmp_path / "native"
    work.mkdir()
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           SCRIPT, "sh", str(work)], capture_output=True, text=True)


@pytest.mark.skipif(not AS_ROOT or not shutil.which("unshare"),
                    reason="the native run needs root for a mount namespace")
@pytest.mark.parametrize("mode", ["default", "trace-all"])
def test_mounts_as_natively(tmp_path, mode):
    native = _native(tmp_path)
    assert native.returncode == 0, native.stderr
    inside = run_umlpy(["sh", "-c", "mkdir -p /tmp/w; " + SCRIPT, "sh", "/tmp/w"], mode,
                       host_root=False)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.decode() == native.stdout
    assert "busy-below" in native.stdout and "read-only" in native.stdout


def _host_mounts():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_the_hosts_mount_table_never_changes(tmp_path):
    before = _host_mounts()
    p = run_umlpy(["sh", "-c", "mkdir -p /tmp/a; mount -t tmpfs none /tmp/a; "
                   "mount --bind /etc /tmp/a; mount -t proc proc /mnt; echo done"])
    assert p.stdout.strip().endswith(b"done"), p.stderr
    assert _host_mounts() == before


def test_a_bind_keeps_the_objects_own_rules():
    """A directory the guest may not read stays so through a bind; umlpy's
    own mounts stay; a mount over a mountpoint is refused."""
    p = run_umlpy(["sh", "-c", "mkdir -p /tmp/b; mount --bind /root /tmp/b; "
                   "ls /tmp/b >/dev/null 2>&1 || echo unreadable; "
                   "umount /proc 2>/dev/null || echo own-stays; "
                   "umount /dev 2>/dev/null || echo own-stays; "
                   "mount -t tmpfs none /proc 2>/dev/null || echo busy"], host_root=False)
    assert p.stdout == b"unreadable\nown-stays\nown-stays\nbusy\n", p.stderr


def test_a_guest_tmpfs_counts_against_the_disk_quota(tmp_path):
    p = run_umlpy(["sh", "-c", "mkdir -p /tmp/t; mount -t tmpfs none /tmp/t; "
                   "head -c 20000000 /dev/zero > /tmp/t/big; echo $?"],
                  options=["--disk", "10M"])
    assert p.stdout == b"1\n" and b"No space left on device" in p.stderr, p.stderr
