"""Bad input: one clear line on stderr and the shell's exit status."""
import os
import stat

import pytest

from conftest import UMLPY, _env, run_umlpy
import subprocess


def umlpy(*args, **kw):
    return subprocess.run(UMLPY + list(args), capture_output=True, env=_env(),
                          timeout=60, **kw)


def assert_one_line_error(p, status, *fragments):
    assert p.returncode == status, (p.returncode, p.stderr)
    lines = p.stderr.decode().strip().split("\n")
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("umlpy"), lines
    for fragment in fragments:
        assert fragment in lines[0], lines
    assert p.stdout == b""


def test_missing_program_is_127(mode):
    p = run_umlpy(["no-such-program-xyz"], mode)
    assert_one_line_error(p, 127, "no-such-program-xyz", "command not found")


def test_missing_path_is_127():
    p = run_umlpy(["/nonexistent/prog"])
    assert_one_line_error(p, 127, "No such file or directory")


def test_not_executable_is_126(tmp_path, mode):
    f = tmp_path / "script"
    f.write_text("echo hi\n")
    os.chmod(f, 0o644)
    assert_one_line_error(run_umlpy([str(f)], mode), 126, "Permission denied")
    assert_one_line_error(run_umlpy([str(tmp_path)], mode), 126)


def test_bad_binary_is_126(tmp_path):
    f = tmp_path / "garbage"
    f.write_bytes(b"\x7fELF" + b"\x00" * 60)
    os.chmod(f, stat.S_IRWXU)
    assert_one_line_error(run_umlpy([str(f)]), 126, "Exec format error")


@pytest.mark.parametrize("args", [
    ["run", "--no-such-flag", "--", "true"],
    ["run"],
    ["run", "--"],
    ["frobnicate"],
    ["run", "-e", "NOEQUALS", "--", "true"],
    ["run", "-C", "/nonexistent-dir", "--", "true"],
    ["run", "--rootfs", "/nonexistent-root", "--", "true"],
    ["run", "--rootfs", "/etc/passwd", "--", "true"],
])
def test_bad_options_are_2(args):
    assert_one_line_error(umlpy(*args), 2)


def test_no_command_prints_help_and_2():
    p = umlpy()
    assert p.returncode == 2 and b"usage" in p.stderr


def test_program_found_on_guest_path(tmp_path):
    prog = tmp_path / "hello-umlpy"
    prog.write_text("#!/bin/sh\necho found me\n")
    os.chmod(prog, 0o755)
    p = run_umlpy(["hello-umlpy"], options=["-e", f"PATH={tmp_path}:/usr/bin:/bin"])
    assert p.stdout == b"found me\n" and p.returncode == 0


def test_syscall_table_lists_every_call():
    p = umlpy("syscalls")
    assert p.returncode == 0
    rows = p.stdout.decode().strip().split("\n")
    assert len(rows) > 370
    assert any("clone3" in r and "unsupported" in r for r in rows)
    assert any(" mount " in r and "EPERM" in r for r in rows)


def test_version():
    p = umlpy("--version")
    assert p.returncode == 0 and p.stdout.startswith(b"umlpy ")


def test_compatibility_page_is_generated_from_the_table():
    from umlpy.docs import syscall_table_markdown
    from umlpy.kernel.syscalls import TABLE
    from conftest import ROOT
    page = (ROOT / "docs" / "SYSCALLS.md").read_text()
    assert page == syscall_table_markdown(TABLE), \
        "docs/SYSCALLS.md is stale: regenerate with 'umlpy syscalls --markdown'"


@pytest.mark.parametrize("args", [
    ["run", "-C"],
    ["run", "--trace-all=yes", "--", "true"],
    ["syscalls", "extra"],
])
def test_malformed_options_are_2(args):
    assert_one_line_error(umlpy(*args), 2)


def test_options_stop_at_the_program_and_take_inline_values():
    p = umlpy("run", "--env=A=1", "-e", "B=2", "sh", "-c", 'echo "$A$B" "$0"', "--trace-all")
    assert p.stdout == b"12 --trace-all\n" and p.returncode == 0


def test_help_lists_every_run_option():
    p = umlpy("run", "--help")
    assert p.returncode == 0
    for option in ("--rootfs", "--cwd", "--env", "--trace-all", "--pid-host", "--hostname",
                   "--kernel-release", "--root", "--host-root"):
        assert option.encode() in p.stdout
