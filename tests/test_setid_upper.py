"""Set-user-ID and set-group-ID bits of a kept upper layer (issue 13): the
host file never carries them (a host user who reached the upper layer
could run it with the sandbox's ids), yet the next run over the same
upper, `umlpy diff` and `umlpy commit` see them."""
import os
import subprocess

from conftest import UMLPY, _env, open_up, run_umlpy
from test_identities import needs_root

from umlpy.kernel.vfs import changes


def _kept(upper, script):
    return run_umlpy(["sh", "-c", script], options=["--upper", str(upper)], host_root=False)


def _made_set_id(tmp_path):
    """An upper layer in which a first run made /tmp/s 4755, /tmp/g 2755
    and copied up the host's setuid /usr/bin/passwd by a chmod to its own
    mode (a chown would drop its set-user-ID bit, as Linux's does)."""
    upper = tmp_path / "upper"
    open_up(tmp_path)
    p = _kept(upper, "cp /bin/true /tmp/s && chmod u+s /tmp/s && cp /bin/true /tmp/g && "
                     "chmod 2755 /tmp/g && chmod 4755 /usr/bin/passwd && "
                     "stat -c %a /tmp/s /tmp/g /usr/bin/passwd")
    assert p.stdout == b"4755\n2755\n4755\n", p.stderr
    return upper


@needs_root
def test_set_id_bits_outlive_the_run(tmp_path):
    upper = _made_set_id(tmp_path)
    for host_file in (upper / "tmp" / "s", upper / "tmp" / "g", upper / "usr/bin/passwd"):
        assert not os.stat(host_file).st_mode & 0o6000, host_file
    p = _kept(upper, "stat -c %a /tmp/s /tmp/g /usr/bin/passwd && mv /tmp/s /tmp/moved && "
                     "ln /tmp/g /tmp/linked && stat -c %a /tmp/moved /tmp/linked")
    assert p.stdout == b"4755\n2755\n4755\n4755\n2755\n", p.stderr
    # cleared in a later run: cleared for good
    p = _kept(upper, "chmod 755 /tmp/moved")
    assert p.returncode == 0, p.stderr
    p = _kept(upper, "stat -c %a /tmp/moved /tmp/linked")
    assert p.stdout == b"755\n2755\n", p.stderr
    assert not os.stat(upper / "tmp" / "moved").st_mode & 0o6000


@needs_root
def test_a_file_made_later_is_not_set_id(tmp_path):
    """A new file of an upper that holds set-ID files has no bits (the
    inode of a removed set-ID file may be reused)."""
    upper = _made_set_id(tmp_path)
    p = _kept(upper, "rm /tmp/s /tmp/g && mkdir /tmp/new && "
                     "for i in 1 2 3 4 5 6 7 8; do echo > /tmp/new/$i; done; stat -c %a /tmp/new/*")
    assert p.stdout == b"644\n" * 8, p.stderr


@needs_root
def test_diff_and_commit_see_set_id_bits(tmp_path):
    upper = _made_set_id(tmp_path)
    found = {c.path: c.kind for c in changes.diff(str(upper), changes.HostDirLower("/"))}
    assert found["/tmp/s"] == "added"
    # passwd was only copied up by a chmod to its own mode: its mode,
    # 4755 above as below, is no change
    assert "/usr/bin/passwd" not in found, found
    target = tmp_path / "target"
    (target / "tmp").mkdir(parents=True)
    os.chmod(target / "tmp", 0o1777)
    p = subprocess.run(UMLPY + ["commit", "--upper", str(upper), "--rootfs", "/",
                                "--to", str(target), "--keep"],
                       capture_output=True, env=_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.stat(target / "tmp" / "s").st_mode & 0o7777 == 0o4755
    assert os.stat(target / "tmp" / "g").st_mode & 0o7777 == 0o2755
    # umlpy's own records are no file of the guest's
    assert os.listdir(target) == ["tmp"] and \
        not any(n.startswith(".wh.") for n in os.listdir(target / "tmp"))
