"""mount(2) and umount2(2) inside the guest (issue 13): in the guest VFS's
mount table, never the host's.  Compared with the same script natively,
in a mount namespace of its own."""
import ctypes
import os
import shutil
import subprocess
import sys

import pytest

from conftest import UMLPY, open_up, run_umlpy

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
                   "mount --bind /etc /tmp/a; mount -t proc proc /mnt; "
                   "mount -t mqueue none /dev/mqueue; echo done"])
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


# mqueue (issue 13): the POSIX message queues of the sandbox's own IPC
# namespace, as `unshare --ipc --mount` shows them natively
MQ_SCRIPT = r"""
w=$1; t=$2
mkdir -p $w/mq
mount -t mqueue none $w/mq && echo mounted
$t create q1 hello
$t create q2
ls $w/mq
cat $w/mq/q1
stat -c '%a %F' $w/mq
stat -c '%a %F %s %u' $w/mq/q1
grep mqueue /proc/self/mounts | awk '{print $1, $3, substr($4, 1, 2)}' | sed "s#$w#W#"
awk '/ - mqueue / {for (i = 7; i < NF; i++) if ($i == "-") print $4, $5, $(i+1), $(i+2)}' \
    /proc/self/mountinfo | sed "s#$w#W#"
rm $w/mq/q1 && echo removed
$t open q1
$t open q2
: > $w/mq/q3 && $t open q3
echo hi > $w/mq/q4 2>/dev/null || echo write-refused
mkdir $w/mq/d 2>/dev/null || echo no-mkdir
ln -s x $w/mq/l 2>/dev/null || echo no-symlink
touch $w/mq/q5 && echo touched
chmod 600 $w/mq/q5 && chown 1000:1000 $w/mq/q5 && stat -c '%a %u %g' $w/mq/q5
setpriv --reuid=1001 --regid=1001 --clear-groups rm $w/mq/q5 2>/dev/null || echo not-removed
setpriv --reuid=1000 --regid=1000 --clear-groups cat $w/mq/q2 2>/dev/null || echo unreadable
$t list root
cd $w/mq && ls -a | tr '\n' ' ' && echo && cd /
umount $w/mq && ls $w/mq | wc -l
$t open q2
"""


@pytest.mark.skipif(not AS_ROOT or not shutil.which("unshare"),
                    reason="the native run needs root for its namespaces")
@pytest.mark.parametrize("mode", ["default", "trace-all"])
def test_mqueue_as_natively(tmp_path, guest, mode):
    tool = guest("mq_tool")
    open_up(tool)
    work = tmp_path / "native"
    work.mkdir()
    native = subprocess.run(["unshare", "--ipc", "--mount", "--propagation", "private", "sh",
                             "-c", MQ_SCRIPT, "sh", str(work), tool],
                            capture_output=True, text=True)
    assert native.returncode == 0, native.stderr
    assert "QSIZE:5 " in native.stdout and "none mqueue rw" in native.stdout
    inside = run_umlpy(["sh", "-c", "mkdir -p /tmp/w; " + MQ_SCRIPT, "sh", "/tmp/w", tool], mode,
                       host_root=False)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.decode() == native.stdout


def _host_queue(name):
    """A queue of the host's IPC namespace (mode 0666), or a skip."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.umask(0)
    q = libc.mq_open(name.encode(), os.O_CREAT | os.O_RDWR, 0o666, None)
    os.umask(old)
    if q < 0:
        pytest.skip("cannot create a POSIX message queue")
    return libc, q


@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "root-dropped"])
def test_mqueue_mount_shows_only_the_sandboxs_queues(guest, host_root):
    """/dev/mqueue shows the sandbox's own queues: never the host's, nor
    those of another sandbox running meanwhile; the host's queue can be
    neither read nor removed through it."""
    tool = guest("mq_tool")
    open_up(tool)
    host_name = f"umlpy-mq-host-{os.getpid()}"
    libc, q = _host_queue("/" + host_name)
    other = subprocess.Popen(UMLPY + ["run", "--", "sh", "-c",
                                      f"{tool} create other-sandbox && sleep 30"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert other.stdout.readline() == b"created other-sandbox\n", other.stderr.read1()
        p = run_umlpy(["sh", "-c", f"mount -t mqueue none /dev/mqueue && {tool} create mine; "
                       "ls /dev/mqueue; "
                       f"cat /dev/mqueue/{host_name} 2>/dev/null || echo no-host-queue; "
                       f"rm /dev/mqueue/{host_name} 2>/dev/null || echo not-removed; "
                       "cat /dev/mqueue/other-sandbox 2>/dev/null || echo no-other-queue"],
                      host_root=host_root)
        assert p.stdout == (b"created mine\nmine\nno-host-queue\nnot-removed\n"
                            b"no-other-queue\n"), p.stderr
        probe = libc.mq_open(("/" + host_name).encode(), os.O_RDONLY)
        assert probe >= 0, "the host's queue was removed"
        libc.mq_close(probe)
    finally:
        other.kill()
        other.wait()
        libc.mq_close(q)
        libc.mq_unlink(("/" + host_name).encode())


def test_mqueue_mount_unprivileged(tmp_path, guest):
    """umlpy run by an ordinary user: guest root (--root) mounts the
    queues of its own IPC namespace; without --root the guest may not
    mount at all (EPERM), as natively."""
    if not AS_ROOT:
        pytest.skip("setpriv to uid 65534 needs root")
    from test_nonroot import NOBODY
    tool = guest("mq_tool")
    open_up(tool)
    where = tmp_path / "pkg"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "umlpy"), where / "umlpy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.o"))
    open_up(where / "umlpy")
    for d in where.rglob("*"):
        os.chmod(d, 0o755 if d.is_dir() else 0o644)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(where),
           "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    probe = subprocess.run(NOBODY + [sys.executable, "-c", "import cffi, ptrace"],
                           capture_output=True, env=env)
    if probe.returncode != 0:
        pytest.skip(f"{sys.executable} cannot import cffi and ptrace as uid 65534")
    script = (f"mount -t mqueue none /dev/mqueue && {tool} create q && ls /dev/mqueue && "
              "cat /dev/mqueue/q | cut -c1-8 && rm /dev/mqueue/q && ls /dev/mqueue | wc -l")
    for options, want in [(["--root"], b"created q\nq\nQSIZE:0 \n0\n"),
                          (["--root", "--trace-all"], b"created q\nq\nQSIZE:0 \n0\n"),
                          ([], b"EPERM\n")]:
        p = subprocess.run(NOBODY + [sys.executable, "-m", "umlpy", "run", *options, "--", "sh",
                                     "-c", script + " || echo EPERM"],
                           capture_output=True, env=env, cwd="/", timeout=120)
        assert p.stdout == want, (options, p.stderr)
