"""--net: which network the guest reaches.  Servers on the host's
127.0.0.1 are started by the tests themselves."""
import os
import socket
import textwrap
import threading

import pytest

from conftest import run_umlpy

PY = "/usr/bin/python3"

PROBE = textwrap.dedent("""
    import socket, sys
    def connect(host, port):
        try:
            s = socket.create_connection((host, port), timeout=3)
            s.sendall(b"from-guest"); s.close(); return "ok"
        except OSError as e:
            return "errno %d" % e.errno
    for target in sys.argv[1:]:
        host, port = target.rsplit(":", 1)
        print(target.replace(sys.argv[1].rsplit(":", 1)[1], "PORT"), connect(host, int(port)))
    srv = socket.socket(); srv.bind(("0.0.0.0", 0)); srv.listen(1)
    print("own server", connect("127.0.0.1", srv.getsockname()[1]))
    print("bound to", srv.getsockname()[0])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", ("192.0.2.1", 9)); print("udp out ok")
    except OSError as e:
        print("udp out errno", e.errno)
""")


class HostServer:
    def __init__(self, family=socket.AF_INET, address=("127.0.0.1", 0)):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.received = []
        self.port = self.sock.getsockname()[1] if family != socket.AF_UNIX else None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.received.append(conn.recv(64))
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    s = HostServer()
    yield s
    s.close()


def probe(net, port, mode="default", host_root=True):
    args = [PY, "-c", PROBE, f"127.0.0.1:{port}"]
    options = [] if net is None else ["--net", net]
    p = run_umlpy(args, mode, options=options, host_root=host_root)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().splitlines()


ENETUNREACH, ECONNREFUSED, EACCES = 101, 111, 13


def test_default_is_a_network_of_the_sandboxs_own(server, mode):
    lines = probe(None, server.port, mode)
    # the host's loopback is not the guest's: nothing listens there
    assert lines[0] == f"127.0.0.1:PORT errno {ECONNREFUSED}"
    assert lines[1:3] == ["own server ok", "bound to 0.0.0.0"]
    assert lines[3] == f"udp out errno {ENETUNREACH}"
    assert server.received == []


def test_none_works_for_an_ordinary_user(tmp_path, server):
    # the non-root path needs a user namespace for the network namespace
    lines = probe("none", server.port, host_root=False)
    assert lines[0] == f"127.0.0.1:PORT errno {ECONNREFUSED}"
    assert lines[1] == "own server ok"


def test_loopback_reaches_the_hosts_loopback_only(server, mode):
    lines = probe("loopback", server.port, mode)
    assert lines[0] == "127.0.0.1:PORT ok"
    # a guest server listens on the loopback, not on the host's interfaces
    assert lines[1:3] == ["own server ok", "bound to 127.0.0.1"]
    assert lines[3] == f"udp out errno {ENETUNREACH}"
    server_thread_settle(server)
    assert server.received == [b"from-guest"]


def test_host_is_unfiltered(server):
    lines = probe("host", server.port)
    assert lines[0] == "127.0.0.1:PORT ok"
    assert lines[2] == "bound to 0.0.0.0"


@pytest.mark.parametrize("rule,reached", [
    ("127.0.0.1:{port}", True),
    ("127.0.0.0/8:{port}", True),
    ("127.0.0.0/8:*", True),
    ("127.0.0.1:1-{port}", True),
    ("127.0.0.1:{other}", False),
    ("10.0.0.0/8", False),
    ("[::1]:{port}", False),
])
def test_allow_rules(server, rule, reached):
    rule = rule.format(port=server.port, other=server.port + 1)
    lines = probe(f"allow={rule}", server.port)
    assert lines[0] == ("127.0.0.1:PORT ok" if reached
                        else f"127.0.0.1:PORT errno {ENETUNREACH}")
    # its own servers stay reachable; the rest of the world does not
    assert lines[1] == "own server ok"
    assert lines[3] == f"udp out errno {ENETUNREACH}"


def test_ipv4_mapped_ipv6_is_the_same_destination(server):
    script = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_INET6)
        try:
            s.connect(("::ffff:127.0.0.1", {server.port})); print("ok")
        except OSError as e:
            print("errno", e.errno)
    """)
    p = run_umlpy([PY, "-c", script], options=["--net", "allow=10.0.0.0/8"])
    assert p.stdout == f"errno {ENETUNREACH}\n".encode(), p.stderr
    p = run_umlpy([PY, "-c", script], options=["--net", f"allow=127.0.0.1:{server.port}"])
    assert p.stdout == b"ok\n", p.stderr


def test_unlisted_families_and_unbound_listeners(server):
    script = textwrap.dedent("""
        import socket
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW); print("packet ok")
        except OSError as e:
            print("packet errno", e.errno)
        s = socket.socket(); s.listen(1)
        print("listens on", s.getsockname()[0])
    """)
    p = run_umlpy([PY, "-c", script], options=["--net", "loopback"])
    assert p.stdout == f"packet errno {EACCES}\nlistens on 127.0.0.1\n".encode(), p.stderr


def test_host_abstract_sockets_are_out_of_reach(tmp_path):
    name = f"\0umlpy-test-{os.getpid()}"
    host = HostServer(socket.AF_UNIX, name)
    try:
        script = textwrap.dedent(f"""
            import socket
            c = socket.socket(socket.AF_UNIX)
            try:
                c.connect({name!r}); c.sendall(b"from-guest"); print("reached")
            except OSError as e:
                print("errno", e.errno)
            own = socket.socket(socket.AF_UNIX); own.bind({name!r}); own.listen(1)
            print(own.getsockname() == {name.encode()!r})
            d = socket.socket(socket.AF_UNIX); d.connect({name!r}); print(d.getpeername() == {name.encode()!r})
        """)
        for net in ("none", "loopback", "allow=127.0.0.1:1"):
            p = run_umlpy([PY, "-c", script], options=["--net", net])
            assert p.stdout == f"errno {ECONNREFUSED}\nTrue\nTrue\n".encode(), (net, p.stderr)
        assert host.received == []
    finally:
        host.close()


@pytest.mark.parametrize("bad", ["bogus", "allow=", "allow=300.1.2.3", "allow=10.0.0.0/8:x",
                                 "allow=10.0.0.1:70000", "allow=[::1"])
def test_bad_net_is_one_line_error(bad):
    p = run_umlpy(["true"], options=["--net", bad])
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and b"--net" in p.stderr


def server_thread_settle(server):
    for _ in range(50):
        if server.received:
            return
        threading.Event().wait(0.05)


RATE_PROBE = textwrap.dedent("""
    import socket, sys, time
    port, n = int(sys.argv[1]), int(sys.argv[2])
    s = socket.create_connection(("127.0.0.1", port))
    t = time.monotonic(); got = 0
    while got < n:
        d = s.recv(65536)
        if not d: break
        got += len(d)
    t_in = time.monotonic() - t
    t = time.monotonic()
    s.sendall(b"y" * n)
    s.shutdown(socket.SHUT_WR); s.recv(1)
    print(got, round(t_in, 2), round(time.monotonic() - t, 2))
""")


def test_net_rate_shapes_both_directions():
    n, rate = 600_000, 200 * 1024
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        c.sendall(b"x" * n)
        total = 0
        while True:
            d = c.recv(65536)
            if not d:
                break
            total += len(d)
        got.append(total)
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = run_umlpy([PY, "-c", RATE_PROBE, str(srv.getsockname()[1]), str(n)],
                      options=["--net", "loopback", "--net-rate", "200K/s"], timeout=60)
    finally:
        t.join(10)
        srv.close()
    assert p.returncode == 0, p.stderr
    received, t_in, t_out = p.stdout.split()
    assert int(received) == n and got == [n]
    # a full bucket (one second) goes at once, the rest at the rate: the
    # rate is a floor on the time taken, whatever the machine's speed
    floor = (n - rate) / rate
    assert float(t_in) >= 0.8 * floor and float(t_out) >= 0.8 * floor, p.stdout


def test_net_rate_leaves_local_traffic_alone():
    # 4 MB through a pipe and a UNIX socket would take 400 s at 10K/s
    script = textwrap.dedent("""
        import os, socket
        r, w = os.pipe()
        if os.fork() == 0:
            os.write(w, b"z" * 65536); os._exit(0)
        print(len(os.read(r, 65536)))
        a, b = socket.socketpair()
        if os.fork() == 0:
            a.sendall(b"u" * 4_000_000); os._exit(0)
        a.close()
        total = 0
        while True:
            d = b.recv(1 << 20)
            if not d: break
            total += len(d)
        print(total)
    """)
    p = run_umlpy([PY, "-c", script], options=["--net-rate", "10K"], timeout=60)
    assert p.stdout == b"65536\n4000000\n", p.stderr


@pytest.mark.parametrize("bad", ["fast", "0", "-5K/s"])
def test_bad_net_rate_is_one_line_error(bad):
    p = run_umlpy(["true"], options=["--net-rate", bad])
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and b"--net-rate" in p.stderr
