"""Issue 13's behaviour bugs and papercuts: the resolver configuration an
image gets, --host-root's throwaway upper, --tmpfs's checks, umlpy diff's
lower, --net-rate against the guest's own timeouts."""
import os
import subprocess

import pytest

from conftest import UMLPY, _env, open_up, run_umlpy, write_tiny_image


def _umlpy(args, env=None, timeout=120, **kw):
    return subprocess.run(UMLPY + list(args), capture_output=True, env=env or _env(),
                          timeout=timeout, **kw)


# ---- /etc/resolv.conf of an image that has none --------------------------------

@pytest.fixture
def shell_image(tmp_path):
    """A tar image with a static busybox as /bin/sh and no /etc/resolv.conf."""
    image = tmp_path / "sh.tar"
    with open("/bin/busybox", "rb") as f:
        write_tiny_image(image, {"bin/busybox": f.read()})
    open_up(tmp_path)
    return str(image)


def _in_image(image, script, *options):
    return run_umlpy(["/bin/busybox", "sh", "-c", script],
                     options=["--rootfs", image, *options])


def _host_resolv():
    with open("/etc/resolv.conf", "rb") as f:
        return f.read()


@pytest.mark.parametrize("net", ["host", "allow=127.0.0.1"])
def test_an_image_without_resolv_conf_gets_the_hosts_when_it_shares_the_network(
        shell_image, net):
    p = _in_image(shell_image, "/bin/busybox cat /etc/resolv.conf", "--net", net)
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == _host_resolv()


@pytest.mark.parametrize("net", ["none", "loopback"])
def test_an_image_without_resolv_conf_resolves_on_its_loopback_only(shell_image, net):
    p = _in_image(shell_image, "/bin/busybox cat /etc/resolv.conf", "--net", net)
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == b"nameserver 127.0.0.1\n"


@pytest.mark.parametrize("how", [
    "echo nameserver 192.0.2.7 > /etc/resolv.conf",
    "echo nameserver 192.0.2.7 > /etc/r.new && /bin/busybox mv /etc/r.new /etc/resolv.conf",
])
def test_guest_root_replaces_the_injected_resolv_conf(shell_image, how):
    p = _in_image(shell_image, f"{how} && /bin/busybox cat /etc/resolv.conf"
                  " && /bin/busybox ls /etc", "--net", "host")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout.split(b"\n")[0] == b"nameserver 192.0.2.7"
    assert b"r.new" not in p.stdout


def test_a_writable_bind_of_resolv_conf_replaces_the_injected_one(shell_image, tmp_path):
    mine = tmp_path / "resolv.conf"
    mine.write_text("nameserver 192.0.2.53\n")
    os.chmod(mine, 0o666)
    p = _in_image(shell_image, "/bin/busybox cat /etc/resolv.conf && "
                  "echo nameserver 192.0.2.54 > /etc/resolv.conf",
                  "--bind", f"{mine}:/etc/resolv.conf", "--net", "host")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout == b"nameserver 192.0.2.53\n"
    assert mine.read_text() == "nameserver 192.0.2.54\n"


# ---- rootfs/make-image --help --------------------------------------------------

def test_make_image_help_names_every_builder():
    make_image = os.path.join(os.path.dirname(__file__), "..", "rootfs", "make-image")
    p = subprocess.run([make_image, "--help"], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    assert "usage: make-image busybox OUT.tar" in p.stdout
    assert "rootfs/make-debian-image" in p.stdout


# ---- --host-root: a guest that drops to nobody, in the throwaway upper ----------

@pytest.mark.skipif(os.geteuid() != 0, reason="--host-root needs root")
@pytest.mark.parametrize("kept_upper", [False, True], ids=["throwaway", "kept"])
def test_host_root_guest_dropped_to_nobody_creates_in_a_world_writable_dir(tmp_path,
                                                                           kept_upper):
    """The guest is host root; dropped to uid 65534 it creates in /tmp
    (1777) as natively: the directories umlpy keeps the upper in must not
    stand in the way."""
    options = []
    if kept_upper:
        upper = tmp_path / "upper"
        upper.mkdir(mode=0o755)
        open_up(upper)
        options = ["--upper", str(upper)]
    script = ("setpriv --reuid=65534 --regid=65534 --clear-groups "
              "sh -c 'echo hi > /tmp/papercut-x && mkdir /tmp/papercut-d && "
              "touch /tmp/papercut-d/y && cat /tmp/papercut-x' && "
              "stat -c '%u %a' /tmp/papercut-x /tmp/papercut-d")
    p = run_umlpy(["sh", "-c", script], options=options)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    assert p.stdout == b"hi\n65534 644\n65534 755\n"
    assert not os.path.exists("/tmp/papercut-x")


# ---- umlpy diff knows the lower an upper was made over ----------------------------

def test_diff_compares_with_the_lower_the_upper_was_made_over(shell_image, tmp_path):
    upper = tmp_path / "upper"
    # the image has no /etc/passwd (the host has one) and an /etc/hostname
    p = run_umlpy(["/bin/busybox", "sh", "-c", "echo root:x:0:0::/:/bin/sh > /etc/passwd"
                   " && rm /etc/hostname"],
                  options=["--rootfs", shell_image, "--upper", str(upper)])
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    given = _umlpy(["diff", "--upper", str(upper), "--rootfs", shell_image])
    assert (given.returncode, given.stderr) == (0, b"")
    assert sorted(given.stdout.splitlines()) == [b"A /etc/passwd", b"D /etc/hostname"]
    recorded = _umlpy(["diff", "--upper", str(upper)])
    assert (recorded.returncode, recorded.stderr, recorded.stdout) == (0, b"", given.stdout)


@pytest.mark.parametrize("command", ["diff", "commit"])
def test_diff_refuses_another_lower_than_the_upper_was_made_over(shell_image, tmp_path,
                                                                  command):
    upper = tmp_path / "upper"
    p = run_umlpy(["/bin/busybox", "true"], options=["--rootfs", shell_image,
                                                      "--upper", str(upper)])
    assert (p.returncode, p.stderr) == (0, b"")
    other = tmp_path / "other"
    other.mkdir()
    p = _umlpy([command, "--upper", str(upper), "--rootfs", str(other)])
    lines = p.stderr.decode().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr.decode()
    assert "made over" in lines[0] and shell_image in lines[0], lines
    assert p.stdout == b""


def test_run_refuses_an_upper_made_over_another_lower(shell_image, tmp_path):
    """Its whiteouts and copies are of the other lower's files: a run over
    it with another lower would show a mix of both."""
    upper = tmp_path / "upper"
    p = run_umlpy(["/bin/busybox", "true"], options=["--rootfs", shell_image,
                                                      "--upper", str(upper)])
    assert (p.returncode, p.stderr) == (0, b"")
    p = run_umlpy(["true"], options=["--upper", str(upper)])
    lines = p.stderr.decode().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "made over" in lines[0], lines
    p = run_umlpy(["/bin/busybox", "true"], options=["--rootfs", shell_image,
                                                      "--upper", str(upper)])
    assert (p.returncode, p.stderr) == (0, b"")


# ---- --net-rate and the guest's own timeouts ----------------------------------------

GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")


class Listener:
    """A loopback listener on a free port: sends 8 MiB to each connection
    and reads whatever it is sent, until closed."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        import threading
        threading.Thread(target=self._drain, args=(conn,), daemon=True).start()
        try:
            conn.sendall(b"y" * (8 << 20))
        except OSError:
            pass

    def _drain(self, conn):
        try:
            while conn.recv(1 << 20):
                pass
        except OSError:
            pass

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def _rate_guest(mode, port, net):
    return run_umlpy(["python3", "-I", os.path.join(GUEST_DIR, "netrate_timeouts.py"),
                      mode, str(port)],
                     options=["--net", net.format(port=port), "--net-rate", "200K"],
                     timeout=90)


@pytest.mark.parametrize("net", ["allow=127.0.0.1:{port}", "host"])
def test_net_rate_nonblocking_reader_in_debt_gets_eagain_and_keeps_its_deadline(listener,
                                                                                 net):
    """As curl -m reads: drained until EAGAIN between selects.  A read in
    debt that slept instead made the drain go on to the end (8 MiB at
    200K/s: 40 s) past the guest's 2 s deadline."""
    p = _rate_guest("drain", listener.port, net)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    mode, result, took = p.stdout.split()
    assert result == b"timeout" and float(took) < 3.5, p.stdout


@pytest.mark.parametrize("how", ["poll", "select", "epoll"])
def test_net_rate_nonblocking_reader_in_debt_does_not_busy_wait(listener, how):
    """A reader in debt is not told its socket is readable until the debt
    is paid (poll then read EAGAIN, at once, again and again: a busy
    wait): it spends a small part of the time on the CPU, and still reads
    at the rate (600 KiB at 200K/s with a second's burst: about 2 s)."""
    p = _rate_guest(how, listener.port, "allow=127.0.0.1:{port}")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    mode, got, wall, cpu = p.stdout.split()
    got, wall, cpu = int(got), float(wall), float(cpu)
    floor = (got - (200 << 10)) / (200 << 10)
    assert 0.8 * floor <= wall < floor + 1.5, p.stdout
    assert cpu < 0.15 * wall, p.stdout


def test_net_rate_blocking_read_in_debt_waits_at_most_its_so_rcvtimeo(listener):
    p = _rate_guest("rcvtimeo", listener.port, "allow=127.0.0.1:{port}")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    mode, result, took = p.stdout.split()
    assert result == b"eagain" and 0.4 <= float(took) < 1.5, p.stdout


def test_net_rate_blocking_send_in_debt_waits_at_most_its_so_sndtimeo(listener):
    p = _rate_guest("sndtimeo", listener.port, "allow=127.0.0.1:{port}")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    mode, result, took = p.stdout.split()
    assert result == b"eagain" and 0.25 <= float(took) < 0.9, p.stdout


def test_net_rate_nonblocking_send_in_debt_gets_eagain_at_once(listener):
    p = _rate_guest("nbsend", listener.port, "allow=127.0.0.1:{port}")
    assert (p.returncode, p.stderr) == (0, b""), p.stderr.decode()[-800:]
    mode, result, took = p.stdout.split()
    assert result == b"eagain" and float(took) < 0.2, p.stdout


def test_a_bind_of_one_file_is_listed_without_error(tmp_path):
    """ls -l of a file bound on its own: its attributes are looked up in
    its own directory (lgetxattr gave ENOTDIR, and ls said 'Not a
    directory')."""
    f = tmp_path / "f"
    f.write_text("x\n")
    open_up(tmp_path)
    os.chmod(f, 0o644)
    p = run_umlpy(["ls", "-l", "/mnt/f"], options=["--bind", f"{f}:/mnt/f:ro"])
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    assert p.stdout.decode().endswith(" /mnt/f\n")
