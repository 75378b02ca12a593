"""What the sandbox hands the guest of its caller's: descriptors (issue 12).
The attacks themselves are in tests/escape/test_escape.py
(test_inherited_descriptors, test_preserved_descriptors,
test_terminal_left_as_found, test_vsock); these are the ordinary uses
that must keep working."""
import os
import subprocess

import pytest

from conftest import AS_ROOT, _env, umlpy_argv


@pytest.mark.parametrize("host_root", [True, False] if AS_ROOT else [True])
def test_cat_from_and_to_host_files(tmp_path, host_root):
    """`umlpy run -- cat < in > out`: stdin and stdout on host files are
    read and written as the caller opened them."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(b"line one\nline two\n")
    os.chmod(tmp_path, 0o777)
    with open(src, "rb") as stdin, open(dst, "wb") as stdout:
        p = subprocess.run(umlpy_argv(["sh", "-c", "cat; echo appended"], host_root=host_root),
                           stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=_env(),
                           timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert dst.read_bytes() == b"line one\nline two\nappended\n"


@pytest.mark.parametrize("preserve, shown", [(None, []), (1, ["three"]),
                                             (3, ["three", "five"])])
def test_descriptors_above_2(tmp_path, preserve, shown):
    """fds 3 and 5 of umlpy's caller: closed in the guest by default;
    --preserve-fds N keeps 3..3+N-1."""
    (tmp_path / "three").write_text("three\n")
    (tmp_path / "five").write_text("five\n")
    options = [] if preserve is None else ["--preserve-fds", str(preserve)]
    argv = umlpy_argv(["sh", "-c", "cat <&3; cat <&5; true"], options=options)
    p = subprocess.run(["sh", "-c", 'exec 3<three 5<five; exec "$@"', "sh", *argv],
                       cwd=tmp_path, capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().split() == shown, p.stderr.decode()


def test_preserve_fds_is_checked():
    p = subprocess.run(umlpy_argv(["true"], options=["--preserve-fds", "-1"]),
                       capture_output=True, env=_env(), timeout=60)
    assert p.returncode == 2 and b"--preserve-fds" in p.stderr, p.stderr
