"""/proc files programs write or follow (issue 13, section 4):
/proc/self/oom_score_adj, the namespace links in /proc/self/ns, the time
namespace's offsets."""
import os
import re
import subprocess
import sys

import pytest

from conftest import run_umlpy

# a python the guest may run when it is nobody on the host (not one in /root)
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

NS_PROBE = r"""
import os, sys
for name in sorted(os.listdir("/proc/self/ns")):
    path = "/proc/self/ns/" + name
    link = os.readlink(path)
    st = os.stat(path)
    fd = os.open(path, os.O_RDONLY)
    same = os.fstat(fd).st_ino == st.st_ino
    os.close(fd)
    print(name, link, st.st_ino, os.access(path, os.R_OK), os.path.exists(path), same)
"""


def _ns(text):
    return [line.split() for line in text.decode().splitlines()]


@pytest.mark.parametrize("host_root", [True, False], ids=["host-root", "user-ns"])
def test_namespace_links_are_followed_as_natively(host_root):
    native = _ns(subprocess.run([PYTHON, "-c", NS_PROBE], capture_output=True,
                                check=True).stdout)
    p = run_umlpy([PYTHON, "-c", NS_PROBE], host_root=host_root)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    inside = _ns(p.stdout)
    assert [row[0] for row in inside] == [row[0] for row in native]
    assert "time_for_children" in [row[0] for row in inside]
    for name, link, ino, readable, exists, same in inside:
        kind = "pid" if name == "pid_for_children" else \
            "time" if name == "time_for_children" else name
        assert re.fullmatch(kind + r":\[(\d+)\]", link), link
        assert link == f"{kind}:[{ino}]"           # the object the link names
        assert (readable, exists, same) == ("True", "True", "True")
    # the sandbox's own pid, mount and network namespaces
    mine = {row[0]: row[1] for row in native}
    theirs = {row[0]: row[1] for row in inside}
    for name in ("pid", "mnt", "net", "ipc"):
        assert theirs[name] != mine[name]
