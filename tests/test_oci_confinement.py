"""umlpy-oci's confinement of a container's process, as podman and
docker ask for it by default: a reduced capability set, a seccomp
profile (stacked under umlpy's own filter), additionalGids and a umask.
As root (a real user namespace) and as uid 65534 (emulated ids)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import AS_ROOT, GUEST_SRC, ROOT
from test_oci import DETACHED, OCI, Engine, bundle, oci, ok, rootfs, wait_status, work  # noqa: F401

# What podman 4.3 gives a container by default
PODMAN_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
               "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
               "CAP_SETUID", "CAP_SYS_CHROOT"]
CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
               "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
               "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21,
               "CAP_SETFCAP": 31}
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"
PROBE = "/bin/caps_probe"


def podman_profile(caps=PODMAN_CAPS, path=PODMAN_PROFILE):
    """The linux.seccomp podman sends for x86_64 and caps: the profile's
    includes and excludes resolved (arches amd64; caps), as podman's
    seccomp package does (with PODMAN_CAPS it compiles to the very
    program of the profile podman 4.3.1 put in a config.json, captured
    by a runtime that saved it)."""
    if not os.path.exists(path):
        pytest.skip(f"{path} (golang-github-containers-common) is not installed")
    with open(path) as f:
        data = json.load(f)
    arches = []
    for entry in data.get("archMap") or ():
        if entry["architecture"] == "SCMP_ARCH_X86_64":
            arches = [entry["architecture"], *entry["subArchitectures"]]
    out = {"defaultAction": data["defaultAction"], "architectures": arches, "syscalls": []}
    if data.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = data["defaultErrnoRet"]
    for rule in data["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if exc.get("arches") and "amd64" in exc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        if inc.get("minKernel") or exc.get("minKernel"):
            continue
        out["syscalls"].append({k: rule[k] for k in ("names", "action", "args", "errnoRet")
                                if rule.get(k) is not None})
    return out


def mask(names):
    return sum(1 << CAP_NUMBERS[n] for n in names)


def caps(names, ambient=()):
    return {"bounding": list(names), "effective": list(names), "permitted": list(names),
            "ambient": list(ambient)}


@pytest.fixture(scope="module")
def croot(rootfs):
    """The busybox root with caps_probe, static (/bin/caps_probe) and
    dynamic (/bin/caps_probe.dyn, with its loader and libc)."""
    root = rootfs.parent / "croot"
    if not root.exists():
        shutil.copytree(rootfs, root, symlinks=True)
        src = str(GUEST_SRC / "caps_probe.c")
        subprocess.run(["gcc", "-O2", "-static", "-o", str(root / "bin/caps_probe"), src],
                       check=True)
        subprocess.run(["gcc", "-O2", "-o", str(root / "bin/caps_probe.dyn"), src], check=True)
        libs = subprocess.run(["ldd", str(root / "bin/caps_probe.dyn")], capture_output=True,
                              text=True, check=True).stdout
        for word in libs.split():
            if word.startswith("/") and os.path.exists(word):
                dest = root / word.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(os.path.realpath(word), dest)
        for d in [root, *root.rglob("*")]:
            if not d.is_symlink():
                os.chmod(d, os.stat(d).st_mode | (0o755 if d.is_dir() else 0o444))
    return root


@pytest.fixture(scope="module")
def nobody(rootfs):
    """(prefix, env, oci words' start) to run umlpy-oci as uid 65534, as
    test_oci.py's test_as_an_ordinary_user does; None when not root."""
    if not AS_ROOT:
        return None
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(prefix + [sys.executable, "-c", "import cffi, ptrace"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    top = rootfs.parent / "nobody-pkg"
    if not top.exists():
        shutil.copytree(ROOT / "umlpy", top / "umlpy",
                        ignore=shutil.ignore_patterns("__pycache__", "*.o"))
        for d in [top, *top.rglob("*")]:
            os.chmod(d, 0o755 if d.is_dir() or d.name == "umlpy-init" else 0o644)
    home = rootfs.parent / "nobody-home"
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(top),
           "HOME": str(home), "LANG": "C.UTF-8"}
    return prefix, env, [sys.executable, "-m", "umlpy.oci.cli"]


@pytest.fixture(params=["root", "nobody"])
def who(request, nobody):
    if request.param == "nobody" and nobody is None:
        pytest.skip("needs root, and uid 65534 able to import cffi and ptrace")
    return request.param


def run(work, croot, who, nobody, args, name="c", process=None, seccomp=None):
    """(exit status, stdout) of a container running args on croot, its
    process's fields updated with process, its linux.seccomp seccomp."""
    path = bundle(work, croot, args, name=name)
    data = json.loads((path / "config.json").read_text())
    data["process"]["env"] = ["PATH=/bin:/sbin:/usr/bin"]
    data["process"].update(process or {})
    if seccomp is not None:
        data["linux"]["seccomp"] = seccomp
    (path / "config.json").write_text(json.dumps(data))
    if who == "nobody":
        prefix, env, words = nobody
        state = work / "nobody-state"
        state.mkdir(exist_ok=True)
        os.chown(state, 65534, 65534)
        for p in (path, path / "config.json"):
            os.chown(p, 65534, 65534, follow_symlinks=False)
        engine = Engine(work, name, path, oci_words=words + ["--root", str(state)],
                        prefix=prefix, env=env)
    else:
        engine = Engine(work, name, path)
    engine.created()
    engine.start()
    return engine.status(), engine.output()


def status_caps(out):
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()
            if line.startswith("Cap")}


def test_dropped_capabilities_stay_dropped(work, croot, who, nobody):
    """podman's set without CAP_CHOWN and CAP_SETPCAP: chown fails EPERM
    as root, before and after an execve; a dropped capability cannot be
    raised again (capset EPERM), is out of the bounding set, and without
    CAP_SETPCAP nothing more can be dropped from it; /proc shows what the
    config asked for."""
    names = [c for c in PODMAN_CAPS if c not in ("CAP_CHOWN", "CAP_SETPCAP")]
    probes = ["chown:/etc/passwd", "raise:0", "raise:8", "raise:21", "bset:0", "bset:8",
              "bset:5", "bdrop:5"]
    status, out = run(work, croot, who, nobody, [
        "sh", "-c", "grep ^Cap /proc/self/status; exec caps_probe " + " ".join(
            probes + ["exec:/bin/caps_probe.dyn", *probes])],
        process={"capabilities": caps(names)})
    assert status == 0, out
    assert status_caps(out) == {"CapInh": 0, "CapPrm": mask(names), "CapEff": mask(names),
                                "CapBnd": mask(names), "CapAmb": 0}, out
    once = ["chown: EPERM", "raise: EPERM", "raise: EPERM", "raise: EPERM", "bset: OK 0",
            "bset: OK 0", "bset: OK 1", "bdrop: EPERM"]
    assert [line for line in out.splitlines() if not line.startswith("Cap")] == once * 2


def test_full_podman_set_and_a_user(work, croot, who, nobody):
    """podman's own set: root may chown; a non-root user gets no effective
    capability across its exec, and the emulated bounding set holds for
    it too; the umask and additionalGids are the config's."""
    status, out = run(work, croot, who, nobody, [
        "sh", "-c", "caps_probe chown:/etc/passwd bset:21 umask; id -G; "
        "grep ^CapEff /proc/self/status"],
        process={"capabilities": caps(PODMAN_CAPS),
                 "user": {"uid": 0, "gid": 0, "umask": 0o27, "additionalGids": [3000, 4000]}})
    assert status == 0, out
    assert out.splitlines()[:4] == ["chown: OK", "bset: OK 0", "umask: OK 027",
                                    "0 3000 4000"], out
    assert status_caps(out)["CapEff"] == mask(PODMAN_CAPS)
    status, out = run(work, croot, who, nobody, [
        "sh", "-c", "grep ^Cap[EP] /proc/self/status; caps_probe raise:0 bdrop:5"],
        name="user", process={"capabilities": caps(PODMAN_CAPS),
                              "user": {"uid": 1000, "gid": 1000}})
    assert status == 0, out
    assert status_caps(out) == {"CapEff": 0, "CapPrm": 0}, out
    assert out.splitlines()[2:] == ["raise: EPERM", "bdrop: EPERM"], out


def test_ambient_capabilities(work, croot, who, nobody):
    """A user's ambient CAP_KILL is its effective one across execve (a
    real user namespace); under emulated ids ambient capabilities are not
    emulated, and the container fails to start rather than run without
    them."""
    c = caps(["CAP_KILL", "CAP_CHOWN"], ambient=["CAP_KILL"])
    c["inheritable"] = ["CAP_KILL"]
    process = {"capabilities": c, "user": {"uid": 1000, "gid": 1000}}
    if who == "nobody":
        with pytest.raises(AssertionError, match="Operation not permitted"):
            run(work, croot, who, nobody, ["true"], process=process)
        return
    status, out = run(work, croot, who, nobody, ["sh", "-c", "grep ^Cap /proc/self/status"],
                      process=process)
    assert status == 0, out
    assert status_caps(out) == {"CapInh": 0x20, "CapPrm": 0x20, "CapEff": 0x20,
                                "CapBnd": 0x21, "CapAmb": 0x20}, out


def test_seccomp_profile_of_podman(work, croot, who, nobody):
    """podman's default profile, with mkdir and mkdirat refused EPERM:
    busybox sh and a dynamically linked program run under it (umlpy's own
    injected calls, mseal included, still work: exec needs them); an
    argument condition is what the profile says (personality(0xffffffff)
    allowed, personality(1) the default ENOSYS)."""
    profile = podman_profile()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
    profile["syscalls"].append({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                "errnoRet": 1})
    probes = ["mkdir:/tmp/d", "personality:ffffffff", "personality:1", "chown:/etc/passwd"]
    status, out = run(work, croot, who, nobody, [
        "sh", "-c", "echo sh; ls / | grep -c bin; mkdir /tmp/x || echo refused; "
        "caps_probe.dyn " + " ".join(probes) + "; grep -c . /proc/self/status >/dev/null && "
        "grep ^Seccomp: /proc/self/status"],
        process={"capabilities": caps(PODMAN_CAPS)}, seccomp=profile)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["sh", "1"] and "refused" in lines, out
    assert lines[-5:] == ["mkdir: EPERM", "personality: OK", "personality: ENOSYS",
                          "chown: OK", "Seccomp:\t2"], out


def native_under(program, argv):
    """argv's output run natively (no umlpy) under the BPF program."""
    import ctypes

    def install():
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(program, len(program))

        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        prog = Prog(len(program) // 8, ctypes.addressof(buf))
        if libc.prctl(38, 1, 0, 0, 0) or libc.syscall(317, 1, 0, ctypes.byref(prog)):
            os._exit(99)
    return subprocess.run(argv, preexec_fn=install, capture_output=True, timeout=30)


def test_the_profile_natively_and_inside(work, croot):
    """The compiled podman profile run natively (no umlpy) and in a
    container say the same of the same probes; natively, mseal is what
    podman's own filter refuses (ENOSYS) and umlpy's compiled one allows
    ahead of it."""
    from umlpy.oci.seccomp import allow_first, compile_profile
    program, _ = compile_profile(podman_profile())
    probes = ["personality:ffffffff", "personality:8", "personality:1", "mseal",
              "chown:/nonexistent"]
    native = native_under(program, [str(croot / "bin/caps_probe"), *probes])
    assert native.returncode == 0, native
    seal = allow_first(462)
    assert program.startswith(seal)
    podman_own = native_under(program[len(seal):], [str(croot / "bin/caps_probe"), "mseal"])
    assert podman_own.stdout == b"mseal: ENOSYS\n"
    path = bundle(work, croot, [PROBE, *probes])
    data = json.loads((path / "config.json").read_text())
    data["linux"]["seccomp"] = podman_profile()
    (path / "config.json").write_text(json.dumps(data))
    engine = Engine(work, "native", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    assert engine.output() == native.stdout.decode() == (
        "personality: OK\npersonality: OK\npersonality: ENOSYS\nmseal: OK\n"
        "chown: ENOENT\n")


def test_a_masked_argument_as_docker_s_clone_rule(work, croot, who, nobody):
    """docker's profile allows clone only without namespace flags
    (SCMP_CMP_MASKED_EQ of the first argument with 0x7e020000 equal to
    0): a fork passes, a clone with CLONE_NEWUTS gets the default EPERM,
    as natively."""
    profile = podman_profile()
    profile["defaultErrnoRet"] = 1
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            rule["names"] = [n for n in rule["names"] if n != "clone"]
    profile["syscalls"].append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
    probes = ["clone:0", "clone:4000000"]         # CLONE_NEWUTS
    from umlpy.oci.seccomp import compile_profile
    native = native_under(compile_profile(profile)[0], [str(croot / "bin/caps_probe"),
                                                         *probes])
    status, out = run(work, croot, who, nobody, ["sh", "-c", "echo x | cat; exec " + PROBE +
                                                  " " + " ".join(probes)], seccomp=profile)
    assert status == 0, out
    assert out == "x\n" + native.stdout.decode() == "x\nclone: OK\nclone: EPERM\n"


def test_as_runc_confines_it(work, croot):
    """The same bundle (podman's profile, podman's capabilities less
    CAP_CHOWN and CAP_SETPCAP, a umask, additionalGids) under runc and
    under umlpy-oci: what the process sees of itself and what its calls
    get are the same, but for mseal, which umlpy allows ahead of the
    profile for its own scratch memory (runc: podman's ENOSYS)."""
    runc = shutil.which("runc")
    if not runc or not AS_ROOT:
        pytest.skip("needs runc, as root")
    names = [c for c in PODMAN_CAPS if c not in ("CAP_CHOWN", "CAP_SETPCAP")]
    script = ('grep -E "^(Cap|Groups|Seccomp:|NoNewPrivs)" /proc/self/status; exec ' + PROBE +
              " chown:/etc/passwd raise:0 raise:8 bset:0 bdrop:5 personality:ffffffff "
              "personality:1 mkdir:/tmp/d umask clone:4000000 mseal")
    path = bundle(work, croot, ["sh", "-c", script])
    data = json.loads((path / "config.json").read_text())
    data["process"]["capabilities"] = caps(names)
    data["process"]["user"] = {"uid": 0, "gid": 0, "umask": 0o27, "additionalGids": [3000]}
    data["linux"]["seccomp"] = podman_profile()
    (path / "config.json").write_text(json.dumps(data))
    # runc's root is written in place: a copy of its own, never a symlink
    shutil.copytree(croot, work / "runc-root", symlinks=True)
    runc_bundle = work / "runc-bundle"
    runc_bundle.mkdir()
    data["root"]["path"] = str(work / "runc-root")
    (runc_bundle / "config.json").write_text(json.dumps(data))
    native = subprocess.run([runc, "--root", str(work / "runc-state"), "run", "--bundle",
                             str(runc_bundle), "runc-one"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=60)
    if native.returncode != 0:
        pytest.skip(f"runc cannot run here: {native.stderr.decode().strip()[-200:]}")
    engine = Engine(work, "umlpy-one", path)
    engine.created()
    engine.start()
    assert engine.status() == 0
    theirs = native.stdout.decode().replace("mseal: ENOSYS", "mseal: OK")
    assert engine.output() == theirs
    assert "chown: EPERM" in theirs and "personality: ENOSYS" in theirs


def test_an_allow_all_profile_keeps_umlpy_defences(work, croot, who, nobody):
    """SCMP_ACT_ALLOW for everything is stacked under umlpy's filter,
    never in its place: the guest still cannot trace its parent."""
    status, out = run(work, croot, who, nobody, [PROBE, "ptrace-parent", "mkdir:/tmp/d"],
                      seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": ["SCMP_ARCH_X86_64"],
                               "flags": ["SECCOMP_FILTER_FLAG_LOG"]})
    assert status == 0, out
    assert out == "ptrace-parent: EPERM\nmkdir: OK\n"


def test_exec_is_confined_as_the_container(work, croot):
    """umlpy-oci exec gets the container's seccomp filter always, and its
    capabilities unless process.json gives its own."""
    path = bundle(work, croot, ["sleep", "100"])
    data = json.loads((path / "config.json").read_text())
    data["process"]["capabilities"] = caps([c for c in PODMAN_CAPS if c != "CAP_CHOWN"])
    data["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    (path / "config.json").write_text(json.dumps(data))
    ok(oci(work, "create", "--bundle", str(path), "box", **DETACHED))
    ok(oci(work, "start", "box"))
    wait_status(work, "box", "running")
    p = oci(work, "exec", "box", "--", PROBE, "chown:/etc/passwd", "mkdir:/tmp/d")
    assert p.stdout == b"chown: EPERM\nmkdir: EACCES\n", p.stderr
    process = {"args": [PROBE, "chown:/etc/passwd", "mkdir:/tmp/d", "umask"], "cwd": "/",
               "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0, "umask": 0o77},
               "capabilities": caps(PODMAN_CAPS),
               "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}
    (work / "process.json").write_text(json.dumps(process))
    p = oci(work, "exec", "--process", str(work / "process.json"), "box")
    assert p.stdout == b"chown: OK\nmkdir: EACCES\numask: OK 077\n", p.stderr
    ok(oci(work, "delete", "--force", "box"))


@pytest.mark.parametrize("case,words", [
    ({"defaultAction": "SCMP_ACT_TRACE"}, b"SCMP_ACT_TRACE"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}, b"SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock"}, b"listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]},
     b"NEW_LISTENER"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, b"Z80"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mseal"], "action": "SCMP_ACT_ERRNO"}]}, b"mseal"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}, b"SCMP_CMP_SOMETIMES"),
    ("caps", b"CAP_FLY"),
])
def test_refused_in_one_line(work, croot, case, words):
    path = bundle(work, croot, ["true"])
    data = json.loads((path / "config.json").read_text())
    if case == "caps":
        data["process"]["capabilities"] = {"bounding": ["CAP_FLY"]}
    else:
        data["linux"]["seccomp"] = case
    (path / "config.json").write_text(json.dumps(data))
    p = oci(work, "create", "--bundle", str(path), "bad")
    assert p.returncode != 0 and words in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr


def test_mseal_is_allowed_ahead_unless_the_default_allows_it():
    """umlpy's injected mseal passes whatever the profile's default, also
    where a rule allows it by a name this libseccomp may not know."""
    from umlpy.oci.seccomp import allow_first, compile_profile
    seal = allow_first(462)
    errno_default = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    assert compile_profile(errno_default)[0].startswith(seal)
    errno_default["syscalls"].append({"names": ["mseal"], "action": "SCMP_ACT_ALLOW",
                                      "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_EQ"}]})
    assert compile_profile(errno_default)[0].startswith(seal)
    assert not compile_profile({"defaultAction": "SCMP_ACT_ALLOW"})[0].startswith(seal)


def test_no_libseccomp_is_one_line_only_with_a_profile(monkeypatch):
    from umlpy.errors import BadInput
    from umlpy.oci import seccomp
    monkeypatch.setattr(seccomp, "LIBSECCOMP", "libseccomp-not-there.so.2")
    monkeypatch.setattr(seccomp, "_lib", None)
    with pytest.raises(BadInput) as e:
        seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW"})
    assert "libseccomp" in str(e.value) and len(str(e.value).splitlines()) == 1
    assert seccomp.features()["enabled"] is False


def test_features_say_seccomp():
    features = json.loads(ok(subprocess.run(OCI + ["features"], capture_output=True,
                                            timeout=30)))
    seccomp = features["linux"]["seccomp"]
    assert seccomp["enabled"] is True
    assert "SCMP_ACT_ERRNO" in seccomp["actions"] and "SCMP_ACT_TRACE" not in seccomp["actions"]
    assert "SCMP_CMP_MASKED_EQ" in seccomp["operators"]
    assert "SCMP_ARCH_X86_64" in seccomp["archs"]
