"""--read-only: the root filesystem refuses every change with EROFS, as a
read-only mount does (docker's --read-only, config.json's root.readonly);
--bind and --tmpfs mounts keep their own mode."""
import shutil

import pytest

from conftest import run_umlpy

pytestmark = pytest.mark.skipif(not shutil.which("busybox"), reason="busybox-static needed")

PROBE = r"""
import errno, os
def attempt(name, fn):
    try:
        fn()
        print(name, "OK")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
attempt("open-write", lambda: os.close(os.open("/etc/hostname", os.O_WRONLY)))
attempt("open-append", lambda: os.close(os.open("/etc/hostname", os.O_WRONLY | os.O_APPEND)))
attempt("creat", lambda: os.close(os.open("/newfile", os.O_CREAT | os.O_WRONLY, 0o644)))
attempt("tmpfile", lambda: os.close(os.open("/etc", os.O_TMPFILE | os.O_WRONLY, 0o600)))
attempt("mkdir", lambda: os.mkdir("/newdir"))
attempt("unlink", lambda: os.unlink("/etc/hostname"))
attempt("rename", lambda: os.rename("/etc/hostname", "/etc/h2"))
attempt("symlink", lambda: os.symlink("x", "/link"))
attempt("link", lambda: os.link("/etc/hostname", "/etc/h3"))
attempt("chmod", lambda: os.chmod("/etc/hostname", 0o600))
attempt("chown", lambda: os.chown("/etc/hostname", 1, 1))
attempt("utime", lambda: os.utime("/etc/hostname", (1, 1)))
attempt("truncate", lambda: os.truncate("/etc/hostname", 0))
attempt("mkfifo", lambda: os.mkfifo("/fifo"))
attempt("setxattr", lambda: os.setxattr("/etc/hostname", "user.x", b"1"))
attempt("read", lambda: open("/etc/hostname").read())
attempt("scratch", lambda: open("/scratch/f", "w").write("x"))
attempt("shm", lambda: open("/dev/shm/f", "w").write("x"))
"""

WANT = ["open-write EROFS", "open-append EROFS", "creat EROFS", "tmpfile EROFS",
        "mkdir EROFS", "unlink EROFS", "rename EROFS", "symlink EROFS", "link EROFS",
        "chmod EROFS", "chown EROFS", "utime EROFS", "truncate EROFS", "mkfifo EROFS",
        "setxattr EROFS", "read OK", "scratch OK", "shm OK"]


def test_a_read_only_root_refuses_every_change(mode):
    p = run_umlpy(["python3", "-c", PROBE], mode,
                  options=["--read-only", "--tmpfs", "/scratch", "--root"], host_root=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines() == WANT


def test_without_it_the_same_probe_changes_the_root(mode):
    """(the probe can tell: each change goes to the sandbox's upper layer)"""
    p = run_umlpy(["python3", "-c", PROBE], mode, options=["--tmpfs", "/scratch", "--root"],
                  host_root=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "open-write OK" and lines[4] == "mkdir OK", lines
