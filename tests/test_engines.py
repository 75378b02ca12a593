"""Real container engines with umlpy-oci as their runtime, as runsc is
used: podman (as root and rootless), dockerd and containerd's ctr.

Each test starts what it needs with private state (podman's storage,
dockerd's data-root, exec-root and socket, containerd's root, state and
socket, all in a temporary directory) and stops it after.  There is no
image registry here: the image is a busybox root made by
rootfs/make-busybox-rootfs.sh, imported (podman import, docker import)
or written as an OCI image layout (ctr image import).

This host's hard RLIMIT_NOFILE (20000) and RLIMIT_NPROC are below the
1048576 and 32768 podman asks by default, which no runtime may give here
(root lacks CAP_SYS_RESOURCE; runc fails as umlpy does): the tests give
the engines lower defaults."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import pty
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

from conftest import AS_ROOT, busybox_rootfs, read_pty, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not AS_ROOT, reason="the engines run as root here")]

OCI = str(pathlib.Path(sys.executable).with_name("umlpy-oci"))
NOFILE = "1024:1024"
NPROC = "4096:4096"


def need(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them)")


def run(argv, timeout=120, check=False, **kw):
    kw.setdefault("capture_output", True)
    p = subprocess.run(argv, timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def image_dir():
    """A busybox root and its tar, in a directory every user may search."""
    for root in busybox_rootfs("umlpy-test-engines-"):
        top = root.parent
        tar = top / "rootfs.tar"
        run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
        os.chmod(tar, 0o644)
        yield top


def stop_daemon(proc, log):
    """An engine's daemon (its own process group): SIGTERM, then SIGKILL."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    log.close()


# -- podman ---------------------------------------------------------------

class Podman:
    """podman with storage of its own and umlpy-oci as the runtime."""

    def __init__(self, top, user=None):
        self.top, self.user = top, user
        self.conf = top / "containers.conf"
        self.conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={NOFILE}", '
                             f'"nproc={NPROC}"]\n'
                             '[engine]\ncgroup_manager = "cgroupfs"\n'
                             'events_logger = "none"\n')
        os.chmod(self.conf, 0o644)
        if user is None:
            # podman takes a runroot of at most 50 characters
            self.runroot = tempfile.mkdtemp(prefix="pr-", dir="/tmp")
            self.words = ["podman", "--root", str(top / "storage"), "--runroot",
                          self.runroot, "--storage-driver", "vfs", "--runtime", OCI]
            self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        else:
            self.words = ["runuser", "-u", user.pw_name, "--", "podman",
                          "--storage-driver", "vfs", "--runtime", OCI]
            self.env = {"PATH": os.environ["PATH"], "HOME": user.pw_dir,
                        "CONTAINERS_CONF": str(self.conf), "USER": user.pw_name,
                        "XDG_RUNTIME_DIR": str(top / "xdg")}
            (top / "xdg").mkdir(mode=0o700)
            os.chown(top / "xdg", user.pw_uid, user.pw_gid)

    def __call__(self, *words, timeout=120, **kw):
        return run([*self.words, *words], timeout=timeout, env=self.env, **kw)

    def ok(self, *words, **kw):
        p = self(*words, **kw)
        assert p.returncode == 0, (words, p.stdout, p.stderr)
        return p.stdout.decode()

    def close(self):
        self("rm", "--all", "--force", "--time", "0")
        if self.user is None:
            self("system", "reset", "--force")
            shutil.rmtree(self.runroot, ignore_errors=True)


@pytest.fixture
def podman(image_dir):
    need("podman", "conmon")
    top = pathlib.Path(tempfile.mkdtemp(prefix="podman-", dir=image_dir))
    os.chmod(top, 0o755)
    engine = Podman(top)
    engine.ok("import", str(image_dir / "rootfs.tar"), "localhost/bb:latest")
    yield engine
    engine.close()
    shutil.rmtree(top, ignore_errors=True)


def test_podman_run_gives_output_and_status(podman):
    p = podman("run", "--rm", "localhost/bb", "sh", "-c",
               "echo hello from umlpy; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
               "grep -c umlpy /proc/self/status; exit 3")
    assert p.returncode == 3, p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0] == "hello from umlpy"
    assert out[1].startswith("/sbin/umlpy-init")      # pid 1 is umlpy's init
    # nothing is left once --rm is done
    assert podman.ok("ps", "--all", "--quiet") == ""


def test_podman_confines_as_runc_does(podman):
    """podman's default capabilities, its seccomp profile, noexec and the
    size of /dev/shm, no device nodes, the network namespace it made:
    the same probe under runc and under umlpy-oci says the same."""
    need("runc")
    probe = ("grep -E 'Cap(Eff|Bnd)|Seccomp:' /proc/self/status; "
             "cp /bin/busybox /dev/shm/b; /dev/shm/b true 2>/dev/null; echo exec=$?; "
             "df -k /dev/shm | tail -1 | awk '{print $2}'; "
             "mknod /tmp/n p; echo fifo=$?; ip addr | grep -c 'inet '; "
             "unshare -U true 2>/dev/null; echo unshare=$?; umask; id")
    outs = {}
    for runtime in ("runc", OCI):
        p = podman("--runtime", shutil.which(runtime) or runtime, "run", "--rm",
                   "localhost/bb", "sh", "-c", probe)
        assert p.returncode == 0, p.stderr
        outs[runtime] = p.stdout.decode()
    assert outs[OCI] == outs["runc"]
    assert "exec=126" in outs[OCI] and "fifo=0" in outs[OCI]
    assert "Seccomp:\t2" in outs[OCI]


def test_podman_with_a_terminal(podman):
    pid, master = pty.fork()
    if pid == 0:
        os.execvpe(podman.words[0], [*podman.words, "run", "--rm", "-it", "localhost/bb",
                                     "sh", "-c", "tty; stty size; exit 4"], podman.env)
    out = read_pty(master, timeout=60)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 4, out
    assert b"/dev/pts/" in out


def test_podman_exec_ps_stop_rm(podman):
    podman.ok("run", "-d", "--name", "long", "localhost/bb", "sleep", "1000")
    assert "long" in podman.ok("ps", "--format", "{{.Names}}")
    p = podman("exec", "long", "sh", "-c", "echo in-exec; ps | grep -c '[s]leep 1000'; exit 7")
    assert p.returncode == 7 and p.stdout.decode().split() == ["in-exec", "1"], p.stderr
    started = time.monotonic()
    podman.ok("stop", "--time", "2", "long")
    assert time.monotonic() - started < 10
    assert "Exited (143)" in podman.ok("ps", "--all", "--format", "{{.Status}}")
    podman.ok("rm", "long")
    assert podman.ok("ps", "--all", "--quiet") == ""


def test_podman_memory_pids_and_no_network(podman):
    p = podman("run", "--rm", "--memory", "32m", "localhost/bb", "sh", "-c",
               "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo ${#x}")
    assert p.returncode != 0 and b"60000000" not in p.stdout
    p = podman("run", "--rm", "--memory", "512m", "localhost/bb", "sh", "-c",
               "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}")
    assert (p.returncode, p.stdout) == (0, b"30000000\n"), p.stderr
    p = podman("run", "--rm", "--pids-limit", "8", "localhost/bb", "sh", "-c",
               "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & done; wait")
    assert p.returncode != 0 and b"can't fork" in p.stderr
    p = podman("run", "--rm", "--network", "none", "localhost/bb", "sh", "-c",
               "ip addr | grep 'inet '")
    assert p.stdout.decode().split()[:2] == ["inet", "127.0.0.1/8"]
    assert p.stdout.count(b"inet ") == 1


@pytest.fixture
def podman_user(image_dir):
    """An ordinary user with subordinate ids, for rootless podman."""
    need("podman", "newuidmap", "runuser")
    name = "umlpy-podman"
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        home = "/var/tmp/umlpy-podman-home"
        run(["useradd", "--create-home", "--home-dir", home, name], check=True)
        user = pwd.getpwnam(name)
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a+") as f:
            f.seek(0)
            if not any(line.startswith(f"{name}:") for line in f):
                f.write(f"{name}:400000:65536\n")
    top = pathlib.Path(tempfile.mkdtemp(prefix="podman-user-", dir=image_dir))
    os.chmod(top, 0o755)
    engine = Podman(top, user)
    tar = top / "rootfs.tar"
    shutil.copy(image_dir / "rootfs.tar", tar)
    os.chmod(tar, 0o644)
    engine("system", "migrate")
    engine.ok("import", str(tar), "localhost/bb:latest")
    yield engine
    engine.close()
    engine("rmi", "--all", "--force")
    end_processes_of(name)
    shutil.rmtree(top, ignore_errors=True)


def end_processes_of(name):
    """Kill what a rootless podman leaves running (its pause process, which
    holds the user's namespace), and reap it if it became ours: pytest is
    a subreaper once a guest kernel ran in it, and an in-process guest
    kernel waits for every child it has, so a process left here would
    hang the next one."""
    pids = [int(p) for p in run(["pgrep", "-u", name]).stdout.split()]
    run(["pkill", "-KILL", "-u", name])
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass        # not ours: its own parent reaps it


def test_rootless_podman(podman_user):
    """The runtime runs as root of the user's namespace of subordinate
    ids: umlpy-oci is then that user's, and the container's root is the
    namespace's root."""
    p = podman_user("run", "--rm", "--network", "none", "localhost/bb", "sh", "-c",
                    "id -u; touch /etc/written && echo wrote; chown 5 /etc/written; "
                    "ls -n /etc/written | awk '{print $3}'; exit 5")
    assert p.returncode == 5, p.stderr
    assert p.stdout.decode().split() == ["0", "wrote", "5"]
    podman_user.ok("run", "-d", "--network", "none", "--name", "bg", "localhost/bb",
                   "sleep", "1000")
    p = podman_user("exec", "bg", "sh", "-c", "echo in; exit 2")
    assert (p.returncode, p.stdout) == (2, b"in\n"), p.stderr
    podman_user.ok("stop", "--time", "1", "bg")
    podman_user.ok("rm", "bg")


# -- docker ---------------------------------------------------------------

class Dockerd:
    def __init__(self, top):
        self.top = top
        self.sock = top / "docker.sock"
        config = {"runtimes": {"umlpy": {"path": OCI}}, "data-root": str(top / "data"),
                  "exec-root": str(top / "exec"), "pidfile": str(top / "docker.pid"),
                  "hosts": [f"unix://{self.sock}"], "bridge": "none", "iptables": False,
                  "ip6tables": False, "storage-driver": "vfs",
                  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024,
                                                 "Soft": 1024}}}
        (top / "daemon.json").write_text(json.dumps(config))
        self.log = open(top / "dockerd.log", "wb")
        self.proc = subprocess.Popen(["dockerd", "--config-file", str(top / "daemon.json")],
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        if not wait_for(lambda: self("version").returncode == 0, 60):
            self.close()
            pytest.fail("dockerd did not start: " + (top / "dockerd.log").read_text()[-2000:])

    def __call__(self, *words, timeout=120, **kw):
        return run(["docker", *words], timeout=timeout, env=self.env, **kw)

    def ok(self, *words, **kw):
        p = self(*words, **kw)
        assert p.returncode == 0, (words, p.stdout, p.stderr)
        return p.stdout.decode()

    def close(self):
        if self.proc.poll() is None:
            self("rm", "--force", *self.ok("ps", "--all", "--quiet").split())
        stop_daemon(self.proc, self.log)


@pytest.fixture
def docker(image_dir):
    need("dockerd", "docker", "containerd")
    top = pathlib.Path(tempfile.mkdtemp(prefix="docker-", dir=image_dir))
    engine = Dockerd(top)
    try:
        engine.ok("import", str(image_dir / "rootfs.tar"), "bb:latest")
        yield engine
    finally:
        engine.close()
        shutil.rmtree(top, ignore_errors=True)


def test_docker_run_exec_stop_rm(docker):
    p = docker("run", "--rm", "--runtime", "umlpy", "bb", "sh", "-c",
               "echo from docker; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4")
    assert p.returncode == 4, p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0] == "from docker" and out[1].startswith("/sbin/umlpy-init")
    docker.ok("run", "-d", "--runtime", "umlpy", "--name", "d1", "bb", "sleep", "1000")
    assert docker.ok("ps", "--format", "{{.Names}}").split() == ["d1"]
    p = docker("exec", "d1", "sh", "-c", "echo in-exec; exit 6")
    assert (p.returncode, p.stdout) == (6, b"in-exec\n"), p.stderr
    top = docker.ok("top", "d1")
    assert "sleep 1000" in top
    docker.ok("stop", "--time", "2", "d1")
    assert "Exited (143)" in docker.ok("ps", "--all", "--format", "{{.Status}}")
    docker.ok("rm", "d1")
    assert docker.ok("ps", "--all", "--quiet") == ""


# -- containerd -----------------------------------------------------------

def oci_image_layout(root, path, ref):
    """An OCI image layout tar of the directory root, named ref: what ctr
    image import reads."""
    layer = io.BytesIO()
    with gzip.GzipFile(fileobj=layer, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as t:
            t.add(root, arcname=".")
    layer = layer.getvalue()
    with gzip.open(io.BytesIO(layer)) as f:
        diff_id = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer)}
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **blob(config)},
                           "layers": [layer_desc]}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(manifest),
        "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    with tarfile.open(path, "w") as t:
        for name, data in [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                           ("index.json", json.dumps(index).encode()),
                           *((f"blobs/sha256/{d}", b) for d, b in blobs.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


class Containerd:
    def __init__(self, top):
        self.sock = top / "containerd.sock"
        (top / "config.toml").write_text(
            f'version = 2\nroot = "{top}/root"\nstate = "{top}/state"\n'
            f'[grpc]\n  address = "{self.sock}"\n')
        self.log = open(top / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(top / "config.toml")],
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        if not wait_for(lambda: self("version").returncode == 0, 60):
            self.close()
            pytest.fail("containerd did not start: " +
                        (top / "containerd.log").read_text()[-2000:])

    def __call__(self, *words, timeout=120, **kw):
        return run(["ctr", "--address", str(self.sock), *words], timeout=timeout, **kw)

    def ok(self, *words, **kw):
        p = self(*words, **kw)
        assert p.returncode == 0, (words, p.stdout, p.stderr)
        return p.stdout.decode()

    def close(self):
        for task in self("task", "ls", "--quiet").stdout.decode().split():
            self("task", "kill", "--signal", "SIGKILL", task)
            wait_for(lambda: b"STOPPED" in self("task", "ls").stdout, 10)
            self("task", "rm", "--force", task)
        for container in self("container", "ls", "--quiet").stdout.decode().split():
            self("container", "rm", container)
        stop_daemon(self.proc, self.log)


@pytest.fixture
def containerd(image_dir):
    need("containerd", "ctr", "containerd-shim-runc-v2")
    top = pathlib.Path(tempfile.mkdtemp(prefix="containerd-", dir=image_dir))
    engine = Containerd(top)
    try:
        oci_image_layout(image_dir / "rootfs", top / "image.tar", "umlpy.test/bb:latest")
        engine.ok("image", "import", str(top / "image.tar"))
        yield engine
    finally:
        engine.close()
        shutil.rmtree(top, ignore_errors=True)


def test_containerd_run_exec_kill_rm(containerd):
    runtime = ["--snapshotter", "native", "--runc-binary", OCI]
    p = containerd("run", "--rm", *runtime, "umlpy.test/bb:latest", "c1", "sh", "-c",
                   "echo from ctr; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 6")
    assert p.returncode == 6, p.stderr
    out = p.stdout.decode().splitlines()
    assert out[0] == "from ctr" and out[1].startswith("/sbin/umlpy-init")
    containerd.ok("run", "--detach", *runtime, "umlpy.test/bb:latest", "c2", "sleep", "1000")
    assert "RUNNING" in containerd.ok("task", "ls")
    p = containerd("task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo in-exec; exit 3")
    assert (p.returncode, p.stdout) == (3, b"in-exec\n"), p.stderr
    containerd.ok("task", "kill", "c2")
    assert wait_for(lambda: "STOPPED" in containerd.ok("task", "ls"), 20)
    containerd.ok("task", "rm", "c2")
    containerd.ok("container", "rm", "c2")
    assert containerd.ok("task", "ls", "--quiet") == ""
