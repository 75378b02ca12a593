"""Linux conformance (issue 13, section 4): calls whose errors or results
inside umlpy differed from the host kernel's.  tests/guest/conformance.c
prints one line per call; each test runs it natively and inside umlpy (both
modes) and compares the lines."""
import difflib
import os

import pytest

from conftest import AS_ROOT, open_up, run_native, run_umlpy


@pytest.fixture(scope="module")
def probe(guest):
    return guest("conformance", static=True)


def compare(native, inside):
    assert inside.returncode == native.returncode, inside.stderr.decode()[-2000:]
    a = native.stdout.decode().splitlines()
    b = inside.stdout.decode().splitlines()
    assert a, native.stderr.decode()
    diff = "\n".join(difflib.unified_diff(a, b, "native", "umlpy", lineterm="", n=0))
    assert a == b, diff + "\n" + inside.stderr.decode()[-2000:]


def same(argv, mode, options=()):
    native = run_native(argv)
    inside = run_umlpy(argv, mode, options)
    compare(native, inside)
    return native.stdout.decode()


def workdir(tmp_path):
    open_up(tmp_path)
    return str(tmp_path)


# ---- 1. AF_UNIX addresses on sockets of other families ---------------------

def test_unix_address_on_internet_sockets(probe, tmp_path, mode):
    """bind, connect and sendto of an AF_UNIX address (an existing
    directory, a missing name, a listening socket) on AF_INET and AF_INET6
    stream and datagram sockets: EAFNOSUPPORT or EINVAL (short address,
    inet6 datagram), EPIPE for an unconnected TCP send, as Linux, never the
    path's own EADDRINUSE, ENOENT or ECONNREFUSED."""
    out = same([probe, "sockaddr", workdir(tmp_path)], mode)
    assert "inet-stream bind existing len=full: EAFNOSUPPORT" in out
