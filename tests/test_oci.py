"""umlpy-oci, the OCI runtime (umlpy/oci/): runc's command line over a
bundle whose rootfs is busybox, driven as an engine drives it (create,
state, start, kill, delete), the exit status read by waiting for the
--pid-file's process as a subreaper (conmon, containerd's shim)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import AS_ROOT, ROOT, busybox_rootfs, wait_for

OCI = [str(pathlib.Path(sys.executable).with_name("umlpy-oci"))]
NAMESPACES = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]

# Run by the tests as the engine: a subreaper, so that the daemon that
# create leaves (double-forked) becomes its child, and its exit status
# the container's.  argv: the umlpy-oci words, the container id, pid file.
SUBREAPER = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)        # PR_SET_CHILD_SUBREAPER
oci, cid, pid_file, bundle = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# the container's stdio is create's, as runc's is: files, so that waiting
# for create is not waiting for the container
out = open(os.path.join(bundle, "stdout"), "wb")
err = open(os.path.join(bundle, "stderr"), "wb+")
p = subprocess.run(oci + ["create", "--bundle", bundle, "--pid-file", pid_file, cid],
                   stdin=subprocess.DEVNULL, stdout=out, stderr=err)
if p.returncode:
    err.seek(0)
    sys.exit("create: " + err.read().decode())
pid = int(open(pid_file).read())
print(json.dumps({"state": json.loads(subprocess.check_output(oci + ["state", cid]))}), flush=True)
sys.stdin.readline()        # the test says when the container may start
p = subprocess.run(oci + ["start", cid], stderr=subprocess.PIPE)
if p.returncode:
    sys.exit("start: " + p.stderr.decode())
_, status = os.waitpid(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


@pytest.fixture(scope="module")
def rootfs():
    yield from busybox_rootfs("umlpy-test-oci-")


@pytest.fixture
def work(rootfs):
    """A directory of the test's own beside the rootfs: --root and bundles."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="work-", dir=rootfs.parent))
    os.chmod(path, 0o755)
    yield path
    state = path / "state"
    if state.exists():
        for cid in os.listdir(state):
            if not cid.startswith("."):
                subprocess.run(OCI + ["--root", str(state), "delete", "--force", cid],
                               capture_output=True, timeout=60)
    shutil.rmtree(path, ignore_errors=True)


def config(args, **changes):
    data = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], "cwd": "/",
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "umlpy-oci",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                   {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666"]},
                   {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]}],
        "annotations": {"org.example.test": "yes"},
        "linux": {"namespaces": NAMESPACES,
                  "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list",
                                  "/sys/firmware"],
                  "readonlyPaths": ["/proc/bus", "/proc/sys"]},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


def bundle(work, rootfs, args, name="bundle", **changes):
    path = work / name
    path.mkdir()
    os.symlink(rootfs, path / "rootfs")
    (path / "config.json").write_text(json.dumps(config(args, **changes)))
    return path


# create's stdio is the container's: none of the test's pipes, which would
# stay open as long as the container
DETACHED = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL}


def oci(work, *args, log=None, timeout=60, **kw):
    extra = ["--log", str(log), "--log-format", "json"] if log else []
    if "stdout" in kw:
        return subprocess.run(OCI + ["--root", str(work / "state"), *extra, *args],
                              timeout=timeout, **kw)
    return subprocess.run(OCI + ["--root", str(work / "state"), *extra, *args],
                          capture_output=True, timeout=timeout, **kw)


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return (p.stdout or b"").decode()


def state(work, cid):
    return json.loads(ok(oci(work, "state", cid)))


def wait_status(work, cid, want, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = state(work, cid)
        if s["status"] == want:
            return s
        time.sleep(0.05)
    raise AssertionError(f"{cid} never {want}: {s}")


class Engine:
    """The SUBREAPER script as a running engine for one container."""

    def __init__(self, work, cid, path, oci_words=None, prefix=(), env=None):
        words = oci_words or OCI + ["--root", str(work / "state")]
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", SUBREAPER, json.dumps(words), cid,
             str(path / "pid"), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        self.path = path

    def created(self):
        line = self.proc.stdout.readline()
        assert line, self.proc.communicate(timeout=30)[1].decode()
        return json.loads(line)["state"]

    def start(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def status(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err.decode()
        return json.loads(out.splitlines()[-1])["status"]

    def output(self):
        return (self.path / "stdout").read_text()


def ancestors(pid):
    out = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def test_create_start_state_delete(work, rootfs):
    path = bundle(work, rootfs, ["sh", "-c", "echo hi; hostname; ulimit -n; echo $TERM; "
                                 "echo kept > /out; exit 3"])
    engine = Engine(work, "one", path)
    created = engine.created()
    pid = int((path / "pid").read_text())
    assert created["status"] == "created" and created["pid"] > 0 and pid > 0
    # the state's pid is the container's init, in its namespaces (where a
    # hook joins them); the pid file's, whose exit status is the
    # container's, is the daemon it descends from
    init = created["pid"]
    for ns in ("pid", "uts", "ipc", "net", "mnt"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert ancestors(init)[:1] == [pid]
    assert created["bundle"] == str(path) and created["id"] == "one"
    assert created["annotations"] == {"org.example.test": "yes"}
    time.sleep(0.3)
    assert engine.output() == ""        # nothing runs before start
    assert state(work, "one")["status"] == "created"
    engine.start()
    assert engine.status() == 3
    assert engine.output() == "hi\numlpy-oci\n1024\nxterm\n"
    s = wait_status(work, "one", "stopped")
    assert s["pid"] == 0
    upper = list((work / "state" / "one").glob("sandbox/store-*/upper/out"))
    assert [p.read_text() for p in upper] == ["kept\n"]
    assert not (rootfs / "out").exists()
    p = oci(work, "start", "one")
    assert p.returncode != 0 and len(p.stderr.decode().splitlines()) == 1
    ok(oci(work, "delete", "one"))
    assert not (work / "state" / "one").exists()
    p = oci(work, "state", "one")
    assert p.returncode != 0 and b"does not exist" in p.stderr


def test_kill_running_container(work, rootfs):
    path = bundle(work, rootfs, ["sh", "-c", "echo up; exec sleep 100"])
    engine = Engine(work, "sleeper", path)
    assert engine.created()["status"] == "created"
    engine.start()
    wait_status(work, "sleeper", "running")
    p = oci(work, "delete", "sleeper")
    assert p.returncode != 0 and b"running" in p.stderr
    assert len(p.stderr.decode().splitlines()) == 1
    ok(oci(work, "kill", "sleeper", "TERM"))
    assert engine.status() == 143
    wait_status(work, "sleeper", "stopped")
    p = oci(work, "kill", "sleeper", "KILL")
    assert p.returncode != 0 and b"not running" in p.stderr
    ok(oci(work, "delete", "sleeper"))


def test_kill_all_and_delete_force(work, rootfs):
    path = bundle(work, rootfs, ["sh", "-c", "sleep 100 & sleep 100"])
    ok(oci(work, "create", "--bundle", str(path), "--pid-file", str(path / "pid"), "many",
           **DETACHED))
    daemon = int((path / "pid").read_text())
    ok(oci(work, "start", "many"))
    wait_status(work, "many", "running")
    ok(oci(work, "kill", "--all", "many", "9"))
    wait_status(work, "many", "stopped")
    ok(oci(work, "delete", "many"))
    # delete --force of a running one: the daemon and every guest process go
    path = bundle(work, rootfs, ["sleep", "100"], name="b2")
    ok(oci(work, "create", "-b", str(path), "--pid-file", str(path / "pid"), "forced",
           **DETACHED))
    daemon = int((path / "pid").read_text())
    ok(oci(work, "start", "forced"))
    wait_status(work, "forced", "running")
    ok(oci(work, "delete", "--force", "forced"))
    assert not os.path.exists(f"/proc/{daemon}") or \
        open(f"/proc/{daemon}/stat").read().split()[2] == "Z"
    assert os.listdir(work / "state") == []
    ok(oci(work, "delete", "--force", "forced"))    # gone already: as runc, no error


def test_delete_a_created_container(work, rootfs):
    path = bundle(work, rootfs, ["sh", "-c", "echo never > /dev/stderr"])
    ok(oci(work, "create", "--bundle", str(path), "c", **DETACHED))
    assert state(work, "c")["status"] == "created"
    ok(oci(work, "delete", "c"))
    assert os.listdir(work / "state") == []


def test_two_containers_at_once(work, rootfs):
    engines = []
    for n in range(2):
        path = bundle(work, rootfs, ["sh", "-c", f"echo $$ > /mine; sleep 0.5; cat /mine; "
                                     f"hostname; exit {n + 4}"], name=f"b{n}",
                      hostname=f"box{n}")
        engines.append(Engine(work, f"c{n}", path))
    for engine in engines:
        assert engine.created()["status"] == "created"
    for engine in engines:
        engine.start()
    assert [e.status() for e in engines] == [4, 5]
    # each is pid 2 in a pid namespace of its own (pid 1: umlpy-init)
    assert [e.output() for e in engines] == ["2\nbox0\n", "2\nbox1\n"]
    for n in range(2):
        ok(oci(work, "delete", f"c{n}"))


def test_start_fails_for_a_missing_program(work, rootfs):
    path = bundle(work, rootfs, ["/no/such/program"])
    engine = Engine(work, "missing", path)
    engine.created()
    engine.start()
    engine.proc.wait(60)
    assert engine.proc.returncode != 0
    assert b"No such file" in engine.proc.stderr.read()
    wait_status(work, "missing", "stopped")
    ok(oci(work, "delete", "missing"))


@pytest.mark.parametrize("case, words", [
    ("no config", "no such file"),
    ("bad json", "config.json"),
    ("namespace path", "not supported"),
    ("network path", "not a network namespace"),
    ("mount type", "mount type 'nfs'"),
    ("no pid namespace", "pid namespace"),
    ("uid mappings", "uidMappings"),
    ("terminal", "terminal"),
    ("hooks", "hooks.createContainer"),
    ("capabilities", "capabilities"),
    ("seccomp", "linux.seccomp"),
])
def test_bad_bundles_are_one_line(work, rootfs, case, words):
    path = bundle(work, rootfs, ["true"])
    data = json.loads((path / "config.json").read_text())
    if case == "no config":
        (path / "config.json").unlink()
    elif case == "bad json":
        (path / "config.json").write_text('{"ociVersion": ')
    else:
        if case == "namespace path":
            data["linux"]["namespaces"][0]["path"] = "/proc/1/ns/pid"
        elif case == "network path":
            data["linux"]["namespaces"][1]["path"] = str(path / "config.json")
        elif case == "mount type":
            data["mounts"].append({"destination": "/mnt", "type": "nfs", "source": "h:/x"})
        elif case == "no pid namespace":
            data["linux"]["namespaces"] = NAMESPACES[1:]
        elif case == "uid mappings":
            data["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 500000,
                                             "size": 1000}]
        elif case == "terminal":
            data["process"]["terminal"] = True
        elif case == "hooks":
            data["hooks"] = {"createContainer": [{"path": "/bin/true"}]}
        elif case == "capabilities":
            data["process"]["capabilities"] = {"bounding": ["CAP_CHOWN", "CAP_BOGUS"]}
        elif case == "seccomp":
            data["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOTIFY"}
        (path / "config.json").write_text(json.dumps(data))
    log = work / "log.json"
    p = oci(work, "create", "--bundle", str(path), "bad", log=log)
    err = p.stderr.decode()
    assert p.returncode != 0 and len(err.splitlines()) == 1 and words in err, err
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == err.strip() and entry["time"]
    assert not (work / "state" / "bad").exists()
    assert oci(work, "state", "bad").returncode != 0


def test_memory_and_pids_limits_and_mounts(work, rootfs):
    host = work / "shared"
    host.mkdir()
    (host / "file").write_text("from the host\n")
    os.chmod(host, 0o755)
    os.chmod(host / "file", 0o644)
    path = bundle(work, rootfs, ["sh", "-c", "cat /data/file; echo x > /data/new; echo $?; "
                                 "touch /scratch/t && echo tmp; ls /proc/kcore; "
                                 "cat /proc/keys | wc -c"])
    data = json.loads((path / "config.json").read_text())
    data["mounts"] += [{"destination": "/data", "type": "bind", "source": str(host),
                        "options": ["rbind", "ro"]},
                       {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}]
    data["linux"]["resources"] = {"memory": {"limit": 256 << 20}, "pids": {"limit": 64},
                                  "devices": [{"allow": False, "access": "rwm"}]}
    (path / "config.json").write_text(json.dumps(data))
    engine = Engine(work, "limits", path)
    engine.created()
    record = json.loads((work / "state" / "limits" / "sandbox" / "record.json").read_text())
    words = record["words"]
    assert f"--memory={256 << 20}" in words and "--pids=64" in words
    assert "--tmpfs=/scratch" in words and f"--bind={host}:/data:ro" in words
    engine.start()
    engine.status()
    out = engine.output().splitlines()
    assert out[0] == "from the host" and out[1] != "0" and out[2] == "tmp"
    assert out[-1] == "0"       # /proc/keys masked by /dev/null
    assert not (host / "new").exists()
    ok(oci(work, "delete", "limits"))


# An engine's exec --detach: a subreaper runs it and waits for the pid
# file's process.  argv: the umlpy-oci words, the pid file.
DETACHED_EXEC = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)        # PR_SET_CHILD_SUBREAPER
words, pid_file = json.loads(sys.argv[1]), sys.argv[2]
p = subprocess.run(words, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
if p.returncode:
    sys.exit(f"exec -d: {p.returncode}")
_, status = os.waitpid(int(open(pid_file).read()), 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_exec_and_ps(work, rootfs):
    path = bundle(work, rootfs, ["sleep", "100"])
    ok(oci(work, "create", "--bundle", str(path), "box", **DETACHED))
    ok(oci(work, "start", "box"))
    wait_status(work, "box", "running")
    p = oci(work, "exec", "box", "--", "sh", "-c", "echo in; cat; hostname; exit 5",
            input=b"typed\n")
    assert p.returncode == 5 and p.stdout == b"in\ntyped\numlpy-oci\n", p.stderr
    process = {"args": ["sh", "-c", "id -u; id -g; pwd; echo $WHO"], "cwd": "/tmp",
               "env": ["PATH=/bin", "WHO=exec"], "user": {"uid": 1000, "gid": 1001},
               "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}
    (work / "process.json").write_text(json.dumps(process))
    p = oci(work, "exec", "--process", str(work / "process.json"), "box")
    assert p.returncode == 0 and p.stdout == b"1000\n1001\n/tmp\nexec\n", p.stderr
    p = oci(work, "exec", "box", "/no/such/program")
    assert p.returncode == 127 and len(p.stderr.splitlines()) == 1, p.stderr
    words = OCI + ["--root", str(work / "state"), "exec", "--detach", "--pid-file",
                   str(work / "exec.pid"), "box", "sh", "-c", "echo d > /tmp/d; exit 6"]
    p = subprocess.run([sys.executable, "-c", DETACHED_EXEC, json.dumps(words),
                        str(work / "exec.pid")], capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == b"6\n", p.stderr
    assert oci(work, "exec", "box", "cat", "/tmp/d").stdout == b"d\n"
    pids = json.loads(ok(oci(work, "ps", "--format", "json", "box")))
    assert len(pids) == 2 and all(isinstance(pid, int) for pid in pids)    # init, sleep
    assert "sleep" in ok(oci(work, "ps", "box"))
    ok(oci(work, "kill", "box", "KILL"))
    wait_status(work, "box", "stopped")
    p = oci(work, "exec", "box", "true")
    assert p.returncode != 0 and b"stopped" in p.stderr
    ok(oci(work, "delete", "box"))


def test_terminal_through_the_console_socket(work, rootfs):
    path = bundle(work, rootfs, ["sh", "-c", "tty > /dev/null && echo TTY; stty size; "
                                 "read line; echo got $line"])
    data = json.loads((path / "config.json").read_text())
    data["process"].update(terminal=True, consoleSize={"height": 33, "width": 99})
    (path / "config.json").write_text(json.dumps(data))
    thread, got = console_listener(work / "console.sock")
    ok(oci(work, "create", "--bundle", str(path), "--console-socket",
           str(work / "console.sock"), "tty", **DETACHED))
    thread.join(10)
    master = got["fds"][0]
    assert got["name"].startswith(b"/dev/pts/")
    ok(oci(work, "start", "tty"))

    out = read_until(master, b"99")
    os.write(master, b"typed\n")      # after stty: the echo comes after it too
    out = read_until(master, b"got", out)
    os.close(master)
    assert b"TTY\r\n33 99\r\n" in out and b"got typed" in out, out
    wait_status(work, "tty", "stopped")
    ok(oci(work, "delete", "tty"))
    p = oci(work, "create", "--bundle", str(path), "no-socket")
    assert p.returncode != 0 and b"--console-socket" in p.stderr


def read_until(master, mark, out=b""):
    """What a pty master gives until mark shows (or the slave is gone)."""
    while mark not in out:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def console_listener(path):
    """The engine's console socket: a thread that takes one master."""
    import socket
    import threading
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    got = {}

    def accept():
        conn, _ = listener.accept()
        got["name"], got["fds"], _, _ = socket.recv_fds(conn, 4096, 1)
        conn.close()
        listener.close()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return thread, got


def test_exec_with_a_terminal(work, rootfs):
    path = bundle(work, rootfs, ["sleep", "100"])
    ok(oci(work, "create", "--bundle", str(path), "box", **DETACHED))
    ok(oci(work, "start", "box"))
    thread, got = console_listener(work / "exec.sock")
    p = subprocess.Popen(OCI + ["--root", str(work / "state"), "exec", "--tty",
                                "--console-socket", str(work / "exec.sock"), "box", "sh", "-c",
                                "tty > /dev/null && echo ETTY; exit 4"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    thread.join(20)
    master = got["fds"][0]
    assert got["name"].startswith(b"/dev/pts/")
    out = read_until(master, b"ETTY")
    assert b"ETTY" in out
    assert p.wait(30) == 4, p.stderr.read()
    os.close(master)
    p = oci(work, "exec", "--tty", "box", "true")
    assert p.returncode != 0 and b"--console-socket" in p.stderr
    ok(oci(work, "delete", "--force", "box"))


def test_user_and_its_groups(work, rootfs):
    """uid, gid and additionalGids as the guest sees them: the extra
    groups are exactly additionalGids (as runc sets them), whether or
    not the rootfs's /etc/group lists the user in them."""
    mine = work / "rootfs"
    shutil.copytree(rootfs, mine, symlinks=True)
    with open(mine / "etc" / "passwd", "a") as f:
        f.write("app:x:1000:1000::/:/bin/sh\n")
    with open(mine / "etc" / "group", "a") as f:
        f.write("app:x:1000:\nextra:x:2000:app\n")
    path = bundle(work, mine, ["sh", "-c", "id -u; id -g; id -G"])
    data = json.loads((path / "config.json").read_text())
    data["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    (path / "config.json").write_text(json.dumps(data))
    engine = Engine(work, "groups", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    assert engine.output() == "1000\n1000\n1000 2000\n"
    data["process"]["user"]["additionalGids"] = [3000]
    (path / "config.json").write_text(json.dumps(data))
    engine = Engine(work, "other-groups", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    assert engine.output() == "1000\n1000\n1000 3000\n"


def test_features_and_version():
    p = subprocess.run(OCI + ["features"], capture_output=True, timeout=30)
    features = json.loads(ok(p))
    assert features["ociVersionMin"] == "1.0.0"
    assert "pid" in features["linux"]["namespaces"]
    assert features["hooks"] == ["prestart", "createRuntime", "poststart", "poststop"]
    version = ok(subprocess.run(OCI + ["--version"], capture_output=True, timeout=30))
    assert version.startswith("umlpy-oci version ") and "spec: " in version
    p = subprocess.run(OCI + ["frobnicate"], capture_output=True, timeout=30)
    assert p.returncode != 0 and len(p.stderr.splitlines()) == 1


def test_as_an_ordinary_user(work, rootfs):
    if not AS_ROOT:
        pytest.skip("already unprivileged: the rest of this file covers it")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(nobody + [sys.executable, "-c", "import cffi, ptrace"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{sys.executable} cannot import cffi and ptrace as uid 65534")
    copy = work / "pkg"
    shutil.copytree(ROOT / "umlpy", copy / "umlpy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.o"))
    for d in [copy, *copy.rglob("*")]:
        os.chmod(d, 0o755 if d.is_dir() or d.name == "umlpy-init" else 0o644)
    mine = work / "nobody"
    mine.mkdir()
    os.chown(mine, 65534, 65534)
    path = bundle(work, rootfs, ["sh", "-c", "id -u; echo x > /tmp/f; cat /tmp/f; exit 7"])
    for p in (path, path / "config.json"):
        os.chown(p, 65534, 65534, follow_symlinks=False)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(copy),
           "HOME": str(mine), "LANG": "C.UTF-8"}
    words = [sys.executable, "-m", "umlpy.oci.cli", "--root", str(mine / "state")]
    engine = Engine(work, "mine", path, oci_words=words, prefix=nobody, env=env)
    assert engine.created()["status"] == "created"
    assert os.stat(mine / "state" / "mine").st_uid == 65534
    engine.start()
    assert engine.status() == 7
    assert engine.output() == "0\nx\n"
    p = subprocess.run(nobody + words + ["delete", "mine"], env=env, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.listdir(mine / "state") == []


HOOK = r"""#!/bin/sh
# a hook: what it was given, and the container's namespaces it can join
kind="$1"; out="$2"
state=$(cat)
pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
status=$(printf '%s' "$state" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
echo "$kind status=$status env=$HOOK_ENV net=$(readlink /proc/$pid/ns/net 2>/dev/null)" >> "$out"
[ "$kind" != fail ]
"""


def test_hooks_run_as_the_spec_says(work, rootfs):
    """prestart and createRuntime at create, with the state on stdin whose
    pid is in the container's namespaces; poststart after start; poststop
    at delete; a failing prestart fails create and leaves nothing."""
    hook = work / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    out = work / "hooks.log"

    def entry(kind):
        return [{"path": str(hook), "args": ["hook", kind, str(out)],
                 "env": ["HOOK_ENV=given"], "timeout": 10}]
    hooks = {kind: entry(kind) for kind in ("createRuntime", "prestart", "poststart",
                                            "poststop")}
    # (it lives on a while: poststart sees it running)
    path = bundle(work, rootfs, ["sh", "-c", "readlink /proc/self/ns/net; sleep 2"],
                  hooks=hooks)
    engine = Engine(work, "hooked", path)
    engine.created()
    lines = out.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["createRuntime", "prestart"]
    assert all("status=created env=given net=net:[" in line for line in lines), lines
    engine.start()
    assert engine.status() == 0
    # the namespace the hooks saw through the state's pid is the container's
    assert lines[0].split("net=")[1] == engine.output().strip()
    assert out.read_text().splitlines()[2].startswith("poststart status=running")
    ok(oci(work, "delete", "hooked"))
    assert out.read_text().splitlines()[3] == "poststop status=stopped env=given net="

    failing = bundle(work, rootfs, ["true"], name="failing",
                     hooks={"prestart": [{"path": str(hook), "args": ["hook", "fail",
                                                                      str(out)]}]})
    p = oci(work, "create", "--bundle", str(failing), "failing", **DETACHED_ERR)
    assert p.returncode != 0 and b"prestart hook" in p.stderr and b"status 1" in p.stderr
    assert not (work / "state" / "failing").exists()


DETACHED_ERR = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                "stderr": subprocess.PIPE}


@pytest.mark.skipif(not AS_ROOT, reason="needs a network namespace of the sandbox's own "
                    "that root may write the parameters of")
def test_sysctl_of_the_containers_own_namespaces(work, rootfs):
    host = open("/proc/sys/net/ipv4/ping_group_range").read()
    path = bundle(work, rootfs, ["sh", "-c", "cat /proc/sys/net/ipv4/ping_group_range "
                                 "/proc/sys/kernel/msgmax"],
                  linux={"namespaces": NAMESPACES, "sysctl": {
                      "net.ipv4.ping_group_range": "0 0", "kernel.msgmax": "4096"}})
    engine = Engine(work, "sysctl", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    assert engine.output().split() == ["0", "0", "4096"]
    # the host's own are untouched
    assert open("/proc/sys/net/ipv4/ping_group_range").read() == host
    ok(oci(work, "delete", "sysctl"))
    # a parameter of the host's is refused in one line
    bad = bundle(work, rootfs, ["true"], name="bad", linux={
        "namespaces": NAMESPACES, "sysctl": {"kernel.panic": "1"}})
    p = oci(work, "create", "--bundle", str(bad), "bad", **DETACHED_ERR)
    assert p.returncode != 0 and len(p.stderr.splitlines()) == 1 and b"kernel.panic" in p.stderr


@pytest.mark.skipif(not AS_ROOT, reason="a block of host ids is root's to choose")
def test_read_only_root_and_a_user_namespace_block(work, rootfs):
    """root.readonly is a read-only root (EROFS); a user namespace mapping
    of one block of 65536 ids picks the sandbox's block (--id-block)."""
    block = 1 << 30
    mapping = [{"containerID": 0, "hostID": block, "size": 65536}]
    path = bundle(work, rootfs, ["sh", "-c", "touch /new; echo touch=$?; "
                                 "cat /proc/self/uid_map /proc/self/gid_map; id -u"],
                  root={"path": "rootfs", "readonly": True},
                  linux={"namespaces": NAMESPACES + [{"type": "user"}],
                         "uidMappings": mapping, "gidMappings": mapping})
    engine = Engine(work, "ro", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    lines = [line.split() for line in engine.output().splitlines()]
    assert lines[0] == ["touch=1"]
    assert lines[1] == lines[2] == ["0", str(block), "65536"]
    assert lines[3] == ["0"]
    ok(oci(work, "delete", "ro"))


@pytest.mark.skipif(not AS_ROOT, reason="a cgroup namespace needs the sandbox's root to "
                    "have CAP_SYS_ADMIN in its own user namespace")
def test_a_cgroup_namespace_of_its_own(work, rootfs):
    """A listed cgroup namespace is made for the process (and each exec),
    rooted at the sandbox's cgroup: it sees its cgroups as /."""
    path = bundle(work, rootfs, ["sh", "-c", "readlink /proc/self/ns/cgroup; "
                                 "grep -c ':/$' /proc/self/cgroup; sleep 30"],
                  linux={"namespaces": NAMESPACES + [{"type": "cgroup"}],
                         "resources": {"pids": {"limit": 100}}})
    engine = Engine(work, "cgns", path)
    engine.created()
    engine.start()
    assert wait_for(lambda: (path / "stdout").read_text().count("\n") >= 2, 30)
    ns, rooted = (path / "stdout").read_text().split()[:2]
    assert ns != os.readlink("/proc/self/ns/cgroup") and int(rooted) > 3
    p = oci(work, "exec", "cgns", "--", "readlink", "/proc/self/ns/cgroup")
    assert p.returncode == 0 and p.stdout.decode().strip() != os.readlink(
        "/proc/self/ns/cgroup"), p.stderr
    ok(oci(work, "kill", "cgns", "KILL"))
    engine.status()
    ok(oci(work, "delete", "cgns"))
