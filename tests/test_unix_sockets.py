"""AF_UNIX socket paths are guest paths: bind makes the socket in the
guest's filesystem, connect/sendto/sendmsg find it there, and addresses
the host reports back name the guest's path.  A socket of the host's
(seen through the read-only lower tree) never answers unless the user
bound its directory in."""
import os
import socket
import textwrap
import threading

import pytest

from conftest import run_native, run_umlpy

PY = "/usr/bin/python3"

GUEST_SCRIPT = textwrap.dedent("""
    import os, socket, sys
    d = sys.argv[1]
    p = d + "/stream.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(p); s.listen(1)
    print("bound", s.getsockname() == p, oct(os.lstat(p).st_mode))
    try:
        socket.socket(socket.AF_UNIX).bind(p)
    except OSError as e:
        print("rebind", e.errno)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(p)
    a, addr = s.accept()
    print("peer", c.getpeername() == p, repr(addr), a.getsockname() == p)
    c.sendall(b"hi"); print(a.recv(10))
    os.symlink(p, d + "/link.sock")
    l = socket.socket(socket.AF_UNIX); l.connect(d + "/link.sock")
    print("via symlink", l.getpeername() == p)
    g = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); g.bind(d + "/dg.sock")
    h = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); h.bind(d + "/dg2.sock")
    h.sendto(b"dgram", d + "/dg.sock")
    data, frm = g.recvfrom(10); print(data, frm == d + "/dg2.sock")
    h.sendmsg([b"msg"], [], 0, d + "/dg.sock")
    data, frm = g.recvfrom(10); print(data, frm == d + "/dg2.sock")
    for bad in (d + "/missing.sock", d, "/nonexistent/x"):
        try:
            socket.socket(socket.AF_UNIX).connect(bad)
        except OSError as e:
            print("connect", os.path.basename(bad), e.errno)
    os.unlink(p)
    print("unlinked", os.path.exists(p))
""")


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "sockets.py"
    path.write_text(GUEST_SCRIPT)
    os.chmod(tmp_path, 0o755)
    return path


def test_unix_sockets_behave_as_natively(tmp_path, script, mode):
    work = tmp_path / "work"
    work.mkdir()
    native = run_native([PY, str(script), str(work)])
    assert native.returncode == 0, native.stderr
    for name in os.listdir(work):
        os.unlink(work / name)
    inside = run_umlpy([PY, str(script), str(work)], mode)
    assert inside.returncode == 0, inside.stderr.decode()[-2000:]
    assert inside.stdout == native.stdout
    # the guest's sockets were made in its own upper layer, not on the host
    assert os.listdir(work) == []


class HostServer:
    """A listening AF_UNIX socket on the host, counting connections."""

    def __init__(self, path, kind=socket.SOCK_STREAM):
        self.sock = socket.socket(socket.AF_UNIX, kind)
        self.sock.bind(str(path))
        self.kind = kind
        self.hits = []
        if kind == socket.SOCK_STREAM:
            self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                if self.kind == socket.SOCK_STREAM:
                    conn, _ = self.sock.accept()
                    self.hits.append(conn.recv(100))
                    conn.close()
                else:
                    self.hits.append(self.sock.recv(100))
            except OSError:
                return

    def close(self):
        self.sock.close()


CONNECT_HOST = textwrap.dedent("""
    import socket, sys
    try:
        c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.sendall(b"escaped")
        c.close(); print("connected")
    except OSError as e:
        print("refused", e.errno)
    try:
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        d.sendto(b"escaped", sys.argv[2]); print("sent")
    except OSError as e:
        print("refused", e.errno)
""")


def test_host_sockets_do_not_answer_the_guest(tmp_path, mode):
    os.chmod(tmp_path, 0o755)
    stream, dgram = HostServer(tmp_path / "host.sock"), \
        HostServer(tmp_path / "host.dg", socket.SOCK_DGRAM)
    try:
        argv = [PY, "-c", CONNECT_HOST, str(tmp_path / "host.sock"), str(tmp_path / "host.dg")]
        inside = run_umlpy(argv, mode)
        assert inside.stdout.decode().split("\n")[:2] == ["refused 111", "refused 111"], \
            inside.stderr
        assert stream.hits == [] and dgram.hits == []
        # binding the directory in is the user's explicit choice
        inside = run_umlpy(argv, mode, options=["--bind", f"{tmp_path}:{tmp_path}"])
        assert inside.stdout.decode().split("\n")[:2] == ["connected", "sent"], inside.stderr
    finally:
        stream.close()
        dgram.close()


def test_destination_above_4gib_is_still_checked(tmp_path, guest):
    """sendto is stopped only when it has a destination: the check must
    see the whole pointer, not its low 32 bits."""
    os.chmod(tmp_path, 0o755)
    server = HostServer(tmp_path / "host.dg", socket.SOCK_DGRAM)
    try:
        prog = guest("unix_high_addr", static=True)
        native = run_native([prog, str(tmp_path / "host.dg")])
        assert native.stdout == b"sent\n"
        inside = run_umlpy([prog, str(tmp_path / "host.dg")])
        assert inside.stdout == b"ECONNREFUSED\n", inside.stderr
        server.thread.join(0.5)
        assert server.hits == [b"escaped"]      # the native send only
    finally:
        server.close()
