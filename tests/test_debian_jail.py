"""A Debian jail, end to end (issue 13, section 5): a debootstrapped
bookworm image run with --rootfs and --net host, where a distribution's
own tools do what people do in a container: apt-get update and install,
a venv and pip, git, gcc and make, useradd and su.  Each workload runs as
umlpy as root ("root": the guest's ids a block of host ids) and as uid
65534 with /etc/subuid and /etc/subgid ranges and --root ("user": umlpy
in a user namespace of newuidmap's).

The image is $UMLPY_DEBIAN_IMAGE if set (built there if missing), else
built once with rootfs/make-debian-image into /var/tmp/umlpy-test-images
(kept while newer than the builder).  Every run starts from the image
with a throwaway upper and installs what it needs itself; the .deb files
it downloaded are shared with later runs through a host directory (bound
at /mnt/debs, copied into apt's own cache before apt-get install), so
that only the first run of a workload downloads them.

UMLPY_DEBIAN_REPEAT=N runs each workload N times in a row; all must pass.
The guest gets a clean environment plus what is set here (none of the
host's PIP_* settings); pip trusts the host's CA bundle, bound read-only,
since this machine's HTTPS may go through a proxy with a CA of its own.
No mirror or registry is named here: apt uses the image's sources (the
mirror of the host's apt sources, rootfs/apt-mirror), pip its default.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_identities import SETPRIV, subordinate_ids_of_nobody

pytestmark = pytest.mark.slow

AS_ROOT = os.geteuid() == 0
IN_CI = bool(os.environ.get("CI"))
MAKE_DEBIAN = ROOT / "rootfs" / "make-debian-image"
CACHE = Path("/var/tmp/umlpy-test-images")
REPEAT = int(os.environ.get("UMLPY_DEBIAN_REPEAT", "1"))
RUN_TIMEOUT = 900
NOBODY = 65534

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
GUEST_CA = "/etc/umlpy-host-ca.crt"
GUEST_DEBS = "/mnt/debs"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_ENV = {
    "PATH": GUEST_PATH,
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_CERT": GUEST_CA,
    "REQUESTS_CA_BUNDLE": GUEST_CA,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_DEFAULT_TIMEOUT": "120",
}

# Run before a workload's own commands: the shared .deb files in, apt-get
# update and install, the new .deb files out (best effort: a file another
# run is adding is left to it).
INSTALL = r"""
set -eu
install_packages() {
    cp "$DEBS"/*.deb /var/cache/apt/archives/ 2>/dev/null || true
    apt-get -q -o Dpkg::Use-Pty=0 update >/tmp/apt.log 2>&1 ||
        { tail -n 30 /tmp/apt.log; echo "apt-get update failed"; exit 1; }
    apt-get -q -o Dpkg::Use-Pty=0 install -y --no-install-recommends "$@" >>/tmp/apt.log 2>&1 ||
        { tail -n 30 /tmp/apt.log; echo "apt-get install $* failed"; exit 1; }
    for deb in /var/cache/apt/archives/*.deb; do
        [ -f "$deb" ] || continue
        name=${deb##*/}
        [ -e "$DEBS/$name" ] && continue
        { cp "$deb" "$DEBS/.$name.$$" && mv -n "$DEBS/.$name.$$" "$DEBS/$name"; } 2>/dev/null || true
        rm -f "$DEBS/.$name.$$"
    done
}
"""

# name: (packages to install, commands, the last lines they must print)
WORKLOADS = {
    "apt": (["jq"], r"""
printf '{"a": [1, 2, {"b": "jq-ok"}]}' | jq -r '.a[2].b'
""", "jq-ok"),
    "pip": (["python3-venv"], r"""
python3 -m venv /opt/venv
/opt/venv/bin/pip install -q six >/tmp/pip.log 2>&1 || { tail -n 30 /tmp/pip.log; exit 1; }
/opt/venv/bin/python -c 'import six; print("pip-ok" if six.PY3 else "py2?")'
""", "pip-ok"),
    "git": (["git"], r"""
git init -q /srv/repo && cd /srv/repo
git config user.email jail@example.invalid && git config user.name Jail
echo one > f && git add f && git commit -q -m first
echo two >> f && git commit -q -am second
git log --format=%s | tr '\n' ' '; echo
git rev-list --count HEAD
""", "second first \n2"),
    "gcc": (["gcc", "libc6-dev", "make"], r"""
mkdir -p /srv/hello && cd /srv/hello
printf '#include <stdio.h>\nint main(void) { printf("hello, %%s\\n", "make"); return 0; }\n' > hello.c
printf 'hello: hello.c\n\tgcc -O2 -Wall -o hello hello.c\n' > Makefile
make -s
./hello
""", "hello, make"),
    "useradd": ([], r"""
useradd -m alice
su alice -c 'touch /tmp/f && id -un'
ls -l /tmp/f | awk '{print $3, $4}'
ls -ld /home/alice | awk '{print $3, $4}'
""", "alice\nalice alice\nalice alice"),
}
USERS = ["root", "user"]
UMLPY_ONLY = ["PYTHONPATH", "XDG_CACHE_HOME", "TMPDIR"]       # umlpy_env's, not the guest's


def workload_script(name):
    packages, commands, _ = WORKLOADS[name]
    setup = f"install_packages {' '.join(packages)}\n" if packages else ""
    return INSTALL + setup + commands


def guest_options():
    """The guest's environment, beside umlpy's own (umlpy_env, which
    guest_argv drops): GUEST_ENV and where the shared .deb files are."""
    env = dict(GUEST_ENV, DEBS=GUEST_DEBS)
    return [word for k, v in env.items() for word in ("--env", f"{k}={v}")]


def guest_argv(name):
    """The workload's command, without what of umlpy's environment the
    guest inherits and has no use for."""
    unset = [word for k in UMLPY_ONLY for word in ("-u", k)]
    return ["/usr/bin/env", *unset, "/bin/sh", "-c", workload_script(name)]


def umlpy_argv(python, image, name, user, debs_dir=None):
    """umlpy's command line for workload `name` as `user` ("root": umlpy
    as root; "user": uid 65534 with --root, through setpriv).  debs_dir:
    the host directory shared as /mnt/debs (none: an empty tmpfs)."""
    options = ["run", "--rootfs", str(image), "--net", "host",
               "--bind", f"{HOST_CA}:{GUEST_CA}:ro"]
    if debs_dir is not None:
        options += ["--bind", f"{debs_dir}:{GUEST_DEBS}"]
    else:
        options += ["--tmpfs", GUEST_DEBS]
    if user == "user":
        options.append("--root")
    argv = [python, "-m", "umlpy", *options, *guest_options(), "--", *guest_argv(name)]
    return SETPRIV + argv if user == "user" else argv


def umlpy_env(uid):
    """umlpy's own environment: what it needs to import itself, and its
    caches and throwaway uppers kept out of /tmp (and out of a home uid
    65534 lacks)."""
    env = {"PATH": GUEST_PATH, "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    for key, kind in (("XDG_CACHE_HOME", "xdg-cache"), ("TMPDIR", "tmp")):
        path = CACHE / f"{kind}-{uid}"
        if not path.exists():
            path.mkdir(mode=0o755, parents=True)
            os.chown(path, uid, uid)
        env[key] = str(path)
    return env


def check_output(name, p):
    """None if the run printed what the workload must, else why not."""
    out = p.stdout.decode(errors="replace")
    want = WORKLOADS[name][2]
    if p.returncode == 0 and out.rstrip("\n").endswith(want):
        return None
    return (f"exit {p.returncode}, wanted output ending {want!r}\n"
            f"stdout: {out[-3000:]}\nstderr: {p.stderr.decode(errors='replace')[-3000:]}")


def prepare_cache():
    CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(CACHE, 0o755)


def debs_dir(name):
    """The host directory where runs of workload `name` share .deb files
    (any sandbox's ids may add to it; sticky, so none replaces another's)."""
    d = CACHE / "debs" / name
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d.parent, 0o755)
    os.chmod(d, 0o1777)
    return d


def _unavailable(reason):
    # In CI the image must be built (the workflow installs debootstrap):
    # a missing tool there is a failure, not a skip.
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def debian_image():
    if not AS_ROOT:
        _unavailable("the Debian jail runs umlpy as root and as uid 65534 (set up as root)")
    prepare_cache()
    given = os.environ.get("UMLPY_DEBIAN_IMAGE")
    image = Path(given) if given else CACHE / "debian.tar"
    if given and image.is_file():
        return image
    if shutil.which("debootstrap") is None:
        _unavailable("debootstrap not installed (apt-get install debootstrap)")
    done = subprocess.run([str(MAKE_DEBIAN), str(image)], capture_output=True, text=True,
                          timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    os.chmod(image, 0o644)          # uid 65534 reads it too
    return image


@pytest.fixture(params=USERS)
def jail_user(request):
    """("root" | "user", the Python that runs umlpy).  "user": uid 65534
    with a subordinate range in /etc/subuid and /etc/subgid for the test's
    length (the files restored exactly afterwards), as in
    test_identities.py."""
    user = request.param
    if user == "root":
        yield user, sys.executable
        return
    with subordinate_ids_of_nobody() as python:
        yield user, python


def run_workload(python, image, name, user, debs=None, timeout=RUN_TIMEOUT):
    """One run of a workload; (CompletedProcess, seconds)."""
    uid = NOBODY if user == "user" else 0
    start = time.monotonic()
    p = subprocess.run(umlpy_argv(python, image, name, user, debs), capture_output=True,
                       env=umlpy_env(uid), cwd="/", timeout=timeout)
    return p, time.monotonic() - start


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_debian_workload(debian_image, jail_user, name):
    user, python = jail_user
    debs = debs_dir(name)
    failures, times = [], []
    for i in range(REPEAT):
        p, seconds = run_workload(python, debian_image, name, user, debs)
        times.append(seconds)
        why = check_output(name, p)
        if why:
            failures.append(f"repetition {i + 1}: {why}")
    print(f"{name} as {user}: {REPEAT - len(failures)} of {REPEAT} passed, seconds "
          + " ".join(f"{t:.1f}" for t in times))
    assert not failures, f"{len(failures)} of {REPEAT} failed; first: {failures[0]}"
