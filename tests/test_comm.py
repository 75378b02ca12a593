"""A process is named (comm, /proc/PID/comm, what ps, pgrep and pkill
match) after the file name its execve was given, as Linux names it: a
link's name, a script's, a program's own when a loader or an alias runs
it. Each probe runs natively and inside; the names must be the same."""
import os
import shutil
import tempfile

import pytest

from conftest import assert_same, run_native, run_umlpy

PROBE = r"""
d=$(mktemp -d)
ln -s "$(command -v sleep)" "$d/napper"
"$d/napper" 2 & p=$!; sleep 0.3; cat /proc/$p/comm; kill $p
printf '#!/bin/sh\ncat /proc/$$/comm\n' > "$d/runme.sh"; chmod +x "$d/runme.sh"
"$d/runme.sh"
cp "$(command -v sleep)" "$d/a-very-long-program-name"
"$d/a-very-long-program-name" 2 & p=$!; sleep 0.3; cat /proc/$p/comm; kill $p
cp "$(command -v cat)" "$d/mycat"; "$d/mycat" /proc/self/comm
python3 -c 'import os; os.execv("/proc/self/exe", ["x", "-c", "print(open(\"/proc/self/comm\").read().strip())"])'
python3 -c 'import os; fd = os.open("'"$(command -v cat)"'", os.O_RDONLY); os.execve(fd, ["cat", "/proc/self/comm"], {})'
rm -r "$d"
"""


def test_processes_are_named_as_linux_names_them(mode):
    assert_same(["sh", "-c", PROBE], mode)


def test_the_names_reach_a_guest_that_is_nobody_on_the_host():
    """umlpy makes the names' directory under its caller's umask (027
    here would close it to others): the guest, another host user when
    root runs umlpy, still executes through it."""
    def umask():
        os.umask(0o027)
    native = run_native(["sh", "-c", PROBE], preexec_fn=umask)
    inside = run_umlpy(["sh", "-c", PROBE], preexec_fn=umask, host_root=False)
    assert (inside.returncode, inside.stdout) == (native.returncode, native.stdout), \
        inside.stderr
