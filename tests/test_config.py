"""The sandbox's configuration: one declaration per option
(umlpy/config/options.py), from which the command lines, their --help,
the Sandbox API's keywords, docs/OPTIONS.md and the syscall table's
"with --FLAG" notes are all derived."""
import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, UMLPY, _env
from umlpy import Sandbox
from umlpy.config import BY_NAME, COMMAND_LINE, OPTIONS, Config
from umlpy.config.render import options_markdown
from umlpy.errors import BadInput
from umlpy.kernel.syscalls import TABLE


def umlpy(*args):
    return subprocess.run(UMLPY + list(args), capture_output=True, env=_env(), timeout=60)


def test_options_page_is_current():
    page = (ROOT / "docs" / "OPTIONS.md").read_text()
    assert page == options_markdown(TABLE), \
        "docs/OPTIONS.md is stale: regenerate with 'umlpy options --markdown'"


def test_every_option_rule_names_a_declared_option():
    rules = [rule for rules in TABLE.option_rules.values() for rule in rules]
    assert rules, "no call is changed by any option: the table lost its rules"
    for rule in rules:
        assert rule.option in BY_NAME, rule.option


def test_the_table_says_which_option_changes_a_call():
    page = (ROOT / "docs" / "SYSCALLS.md").read_text()
    uname = next(line for line in page.splitlines() if "| `uname` |" in line)
    assert "emulated with `--kernel-release`" in uname
    for name in ("clone", "fork", "vfork"):
        line = next(line for line in page.splitlines() if f"| `{name}` |" in line)
        assert "`--pids`" in line, line


@pytest.mark.parametrize("command", [["run"], ["trace"]])
def test_help_lists_every_flag(command):
    p = umlpy(*command, "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    for opt in COMMAND_LINE:
        if command == ["trace"] and opt.name == "trace_all":
            continue
        long_flag = [f for f in opt.flags if f.startswith("--")][0]
        assert long_flag in text, long_flag


def test_the_api_takes_every_option_by_its_keyword():
    for opt in OPTIONS:
        assert hasattr(Sandbox().config, opt.name)
        assert f"{opt.name}" in Sandbox.__init__.__doc__
    with pytest.raises(TypeError, match="unknown sandbox option 'memroy'"):
        Sandbox(memroy="1G")


@pytest.mark.parametrize("option,value,flag", [
    ("memory", "lots", "--memory"), ("pids", "0", "--pids"), ("cpu_time", "-1", "--cpu-time"),
    ("nofile", "2", "--nofile"), ("net", "sometimes", "--net"), ("net_rate", "fast", "--net-rate"),
    ("hostname", "", "--hostname"), ("kernel_release", "x" * 65, "--kernel-release"),
    ("rootfs", "/nonexistent-root", "--rootfs"), ("layers", ["/nonexistent.tar"], "--layer"),
    ("binds", ["/etc"], "--bind"), ("binds", ["/nonexistent:/x"], "--bind"),
    ("binds", ["/etc:relative"], "--bind"), ("tmpfs", ["relative"], "--tmpfs"),
    ("upper", "/etc/passwd", "--upper"), ("log_level", "loud", "--log-level"),
    ("env", ["NOEQUALS"], "--env"), ("breaks", ["no_such_call"], "--break"),
])
def test_a_bad_value_is_the_same_one_line_error_from_the_cli_and_the_api(option, value, flag):
    with pytest.raises(BadInput) as api_error:
        Sandbox(**{option: value})
    words = []
    for item in value if isinstance(value, list) else [value]:
        words += [flag, item]
    p = umlpy("run", *words, "--", "true")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.decode().strip().splitlines()
    assert lines == [f"umlpy: {api_error.value}"], lines
    assert str(api_error.value).startswith(flag)


@settings(max_examples=60, deadline=None)
@given(number=st.integers(1, 1 << 40), unit=st.sampled_from(["", "K", "M", "G", "k", "MiB", "gb"]))
def test_a_size_means_the_same_as_text_and_as_a_number(number, unit):
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit[:1].lower()]
    from_text = Config(memory=f"{number}{unit}").memory
    # past 2**62 bytes, more than any machine: taken as 2**62 (issue 12)
    assert from_text == min(number * scale, 1 << 62)
    assert Config(memory=from_text).memory == from_text


def test_typed_api_values_equal_command_line_words():
    words = Config.from_words({"binds": ["/etc:/mnt/etc:ro"], "env": ["A=1", "B=2"],
                               "memory": "64M", "pids": "20", "net": "allow=10.0.0.0/8:443",
                               "root": True, "cwd": "sub"})
    typed = Config(binds=[("/etc", "/mnt/etc", True)], env={"A": "1", "B": "2"},
                   memory=64 << 20, pids=20, net="allow=10.0.0.0/8:443", root=True, cwd="sub")
    for name in ("binds", "env", "memory", "pids", "root", "cwd"):
        assert getattr(words, name) == getattr(typed, name), name
    assert words.cwd == os.path.join(os.getcwd(), "sub")
    assert words.net.mode == typed.net.mode == "allow"


def test_a_relative_cwd_in_a_rootfs_is_from_its_root(tmp_path):
    config = Config(rootfs=str(tmp_path), cwd="a/b")
    assert config.cwd == "/a/b"
    assert config.replace(cwd="c").cwd == "/c"
    assert config.replace(rootfs=None, cwd="c").cwd == os.path.join(os.getcwd(), "c")


def test_replace_leaves_the_original_alone():
    base = Config(hostname="one")
    other = base.replace(hostname="two", pids=5)
    assert (base.hostname, base.pids) == ("one", None)
    assert (other.hostname, other.pids) == ("two", 5)


def test_an_option_that_changes_a_call_works_through_both_entries():
    release = "9.8.7-umlpy-config"
    p = umlpy("run", "--kernel-release", release, "--", "uname", "-r")
    assert p.returncode == 0 and p.stdout.decode().strip() == release, p.stderr
    r = Sandbox(kernel_release=release).run(["uname", "-r"], capture=True)
    assert r.status == 0 and r.stdout.decode().strip() == release
    # and without it, uname runs on the host with no stop
    r = Sandbox().run(["uname", "-r"], capture=True)
    assert r.stdout.decode().strip() == os.uname().release
    assert r.stats.calls["uname"] == 0


def test_machine_is_what_uname_and_arch_say(mode):
    p = umlpy("run", *(["--trace-all"] if mode == "trace-all" else []), "--machine", "riscv64",
              "--kernel-release", "6.1.0-x", "--", "sh", "-c", "uname -m; uname -r; arch")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == ["riscv64", "6.1.0-x", "riscv64"]
    r = Sandbox(machine="aarch64").run(["uname", "-m"], capture=True)
    assert r.stdout == b"aarch64\n"
