"""--net ns:PATH: the sandbox joins a network namespace someone else made
(a container engine's), with its addresses, routes and servers, while
every other namespace stays the sandbox's own; umlpy itself stays in the
host's network."""
import os
import shutil
import subprocess
import uuid

import pytest

from conftest import AS_ROOT, UMLPY, run_umlpy

pytestmark = pytest.mark.skipif(not AS_ROOT or not shutil.which("ip"),
                                reason="making a network namespace needs root and iproute2")


@pytest.fixture
def netns():
    name = f"umlpy-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "addr", "add", "10.77.3.1/24",
                        "dev", "lo"], check=True)
        yield name, f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name])


PROBE = r"""
import os, socket
print(open("/proc/net/fib_trie").read().count("10.77.3.1") > 0)
s = socket.socket()
s.bind(("10.77.3.1", 0))            # an address only the joined namespace has
print("bound", s.getsockname()[0])
print("net", os.readlink("/proc/self/ns/net"))
print("ipc", os.readlink("/proc/self/ns/ipc"))
try:
    socket.socket(40, socket.SOCK_STREAM)       # AF_VSOCK: the machine's, never
    print("vsock yes")
except OSError as e:
    print("vsock", e.errno)
"""


def test_the_guest_is_in_the_joined_namespace(netns):
    name, path = netns
    p = run_umlpy(["python3", "-c", PROBE], options=["--net", f"ns:{path}"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "True" and lines[1] == "bound 10.77.3.1"
    assert lines[2] == f"net net:[{os.stat(path).st_ino}]"
    # its other namespaces are its own
    assert lines[3] != f"ipc {os.readlink('/proc/self/ns/ipc')}"
    assert lines[4] == "vsock 97"       # EAFNOSUPPORT
    # umlpy came back to the host's network: a second run from the same
    # process tree still finds the namespace's, and this one is the host's
    assert os.readlink("/proc/self/ns/net") != f"net:[{os.stat(path).st_ino}]"


def test_a_server_in_the_sandbox_is_reached_in_the_namespace(netns):
    name, path = netns
    server = subprocess.Popen(
        [*UMLPY, "run", "--host-root", "--net", f"ns:{path}", "--", "python3", "-c",
         "import socket; s = socket.socket(); s.bind(('10.77.3.1', 7788)); s.listen(); "
         "print('up', flush=True); c, _ = s.accept(); c.sendall(c.recv(100).upper())"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"up\n"
        p = subprocess.run(["ip", "netns", "exec", name, "python3", "-c",
                            "import socket; c = socket.create_connection(('10.77.3.1', 7788));"
                            " c.sendall(b'hello'); print(c.recv(100).decode())"],
                           capture_output=True, timeout=30)
        assert p.stdout == b"HELLO\n", p.stderr
        assert server.wait(30) == 0
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("target, words", [
    ("/nonexistent/netns", "No such file"),
    ("/etc/passwd", "not a network namespace"),
    ("relative/ns", "absolute path"),
])
def test_a_bad_namespace_is_one_line(target, words):
    p = run_umlpy(["true"], options=["--net", f"ns:{target}"])
    err = p.stderr.decode()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and words in err, err


def test_an_ordinary_user_may_not_join_roots_namespace(netns):
    """Joining needs CAP_SYS_ADMIN over the namespace: uid 65534 has none
    over root's, and gets one line, not a sandbox in it."""
    name, path = netns
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *UMLPY, "run", "--net", f"ns:{path}", "--", "true"],
                       capture_output=True, cwd="/", timeout=60,
                       env={**os.environ, "HOME": "/nonexistent"})
    err = p.stderr.decode()
    assert p.returncode != 0 and len(err.splitlines()) == 1 and "cannot join" in err, err
