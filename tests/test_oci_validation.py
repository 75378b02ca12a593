"""umlpy-oci against the OCI runtime spec, beside runc in the same run:
our validation driver (tests/oci_validation/, Go, over Debian's
runtime-tools libraries: its generate and validate packages) takes both
runtimes through the same cases, interleaved, and checks inside each
container (a static checker as the container's process) and from the
host what runtime.md and config.md say.  See tests/oci_validation/README.md.

The driver is built once per source (cached under $XDG_CACHE_HOME or
/var/tmp/umlpy-oci-validation).  The test prints the table of cases (run
pytest with -s to see it), and fails when a case umlpy-oci passed when
this was written fails now, or when runc fails a case it should pass
(the driver would be wrong, or the host unfit)."""
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, busybox_rootfs

pytestmark = pytest.mark.slow

SRC = ROOT / "tests" / "oci_validation"
GOPATH = pathlib.Path("/usr/share/gocode")
RUNTIME_TOOLS = GOPATH / "src/github.com/opencontainers/runtime-tools"
PACKAGE = "golang-github-opencontainers-runtime-tools-dev"
UMLPY_OCI = str(pathlib.Path(sys.executable).with_name("umlpy-oci"))

# Cases runc 1.1 fails, by what it does (the spec says otherwise):
RUNC_FAILS = {
    # runc 1.1 ignores an unknown capability with a warning
    "process_capabilities_fail",
    # runc 1.1 runs poststart hooks at create (fixed in runc 1.2), and a
    # failing one fails create where the spec has a warning
    "hooks_poststart", "hooks_poststart_fail",
    # runc deletes a created container (it kills it first)
    "delete_created",
    # runc does not check ociVersion (an invalid value is to be an error)
    "misc_invalid_version",
}

# Cases umlpy-oci passes (pinned when this test was written): one that
# fails now is a regression.
UMLPY_PASSES = {
    "base", "hostname", "process", "process_exit_status", "process_user",
    "process_user_additional_gids", "process_rlimits_fail", "process_capabilities",
    "process_capabilities_host_all", "process_capabilities_fail", "process_oom_score_adj",
    "process_no_new_privileges", "process_umask", "linux_masked_paths", "linux_readonly_paths",
    "linux_ns_path_type", "linux_seccomp", "linux_rootfs_propagation_private",
    "delete_resources", "hooks", "hooks_poststart", "hooks_poststart_fail",
    "hooks_poststop_fail", "hooks_prestart_fail", "state", "create", "start", "kill_created",
    "kill_running_term", "kill_running_kill", "kill_signals", "kill_errors", "delete_running",
    "delete_stopped", "config_updates_without_affect",
    # since: a read-only root, sysctls in any order, user namespace
    # mappings, cgroupsPath, CPU controls, unknown properties, ociVersion
    "root_readonly_true", "linux_sysctl", "linux_uid_mappings", "linux_cgroups_memory",
    "linux_cgroups_relative_memory", "linux_cgroups_pids", "linux_cgroups_relative_pids",
    "linux_cgroups_cpus", "misc_unknown_property", "misc_invalid_version", "linux_ns_nopath",
}

LINE = re.compile(r"^(ok|not ok) \d+ - (\S+) (\S+)(?: # (.*))?$")


def go_env(cache):
    env = dict(os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOFLAGS="", GOPROXY="off",
               GOCACHE=str(cache / "gocache"), CGO_ENABLED="0")
    env.pop("GOROOT", None)
    return env


def source_key(go):
    h = hashlib.sha256()
    for path in sorted(SRC.rglob("*.go")):
        h.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())
    h.update(subprocess.run([go, "version"], capture_output=True).stdout)
    h.update(subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                            capture_output=True).stdout if shutil.which("dpkg-query") else b"")
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def programs():
    """The driver and the checker, built (offline, GOPATH mode over the
    Debian package's sources) once per source hash."""
    go = shutil.which("go")
    if not go:
        pytest.skip("go not installed (apt-get install golang-go)")
    if not (RUNTIME_TOOLS / "generate").is_dir() or not (RUNTIME_TOOLS / "validate").is_dir():
        pytest.skip(f"runtime-tools' Go sources not installed (apt-get install {PACKAGE})")
    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or "/var/tmp") / "umlpy-oci-validation"
    out = base / source_key(go)
    if not (out / "driver").exists() or not (out / "checker").exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="build-", dir=base))
        for name in ("checker", "driver"):
            p = subprocess.run([go, "build", "-o", str(tmp / name), "./" + name], cwd=SRC,
                               env=go_env(base), capture_output=True, text=True, timeout=600)
            if p.returncode:
                shutil.rmtree(tmp, ignore_errors=True)
                pytest.fail(f"go build {name}:\n{p.stderr}")
        try:
            tmp.rename(out)
        except OSError:         # built meanwhile by another run
            shutil.rmtree(tmp, ignore_errors=True)
    return out / "driver", out / "checker"


@pytest.fixture(scope="module")
def rootfs():
    yield from busybox_rootfs("umlpy-oci-validation-")


def parse(output):
    """{case: {runtime: (status, details)}}, status "ok", "not ok" or "skip"."""
    results, last = {}, None
    for line in output.splitlines():
        m = LINE.match(line)
        if m:
            status, case, runtime, note = m.groups()
            if status == "ok" and (note or "").startswith("SKIP"):
                status = "skip"
            last = []
            results.setdefault(case, {})[runtime] = (status, last)
        elif line.startswith("#   ") and last is not None:
            last.append(line[4:])
    return results


def test_runtime_spec_validation(programs, rootfs):
    if os.geteuid() != 0:
        pytest.skip("runc runs these containers as root")
    runc = shutil.which("runc")
    assert runc, "runc, the reference, is not installed (apt-get install runc)"
    driver, checker = programs
    work = pathlib.Path(tempfile.mkdtemp(prefix="work-", dir=rootfs.parent))
    os.chmod(work, 0o755)
    try:
        p = subprocess.run([str(driver), "-checker", str(checker), "-rootfs", str(rootfs),
                            "-work", str(work), "-runtime", f"runc={runc}",
                            "-runtime", f"umlpy-oci={UMLPY_OCI}"],
                           capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    results = parse(p.stdout)
    cases = subprocess.run([str(driver), "-list"], capture_output=True, text=True,
                           check=True).stdout.split()

    print(f"\n{'case':40} {'runc':8} {'umlpy-oci':8}")
    for case in cases:
        row = results.get(case, {})
        print(f"{case:40} {row.get('runc', ('-',))[0]:8} {row.get('umlpy-oci', ('-',))[0]:8}")
    run = [c for c in cases if results.get(c, {}).get("runc", ("skip",))[0] != "skip"]
    for runtime in ("runc", "umlpy-oci"):
        passed = sum(results[c][runtime][0] == "ok" for c in run)
        print(f"{runtime}: {passed} of {len(run)} cases passed "
              f"({len(cases) - len(run)} skipped on this host)")
    print("umlpy-oci's failures:")
    for case in run:
        status, details = results[case]["umlpy-oci"]
        if status != "ok":
            print(f"  {case}:", *details, sep="\n    ")

    assert set(results) == set(cases), (set(cases) - set(results), p.stdout[-2000:])
    for case in run:
        for runtime in ("runc", "umlpy-oci"):
            details = results[case][runtime][1]
            assert not any(d.startswith(("bundle", "driver")) for d in details), \
                f"the driver's own bundle for {case} is wrong: {details}"
    runc_fails = {c: results[c]["runc"][1] for c in run
                  if results[c]["runc"][0] != "ok" and c not in RUNC_FAILS}
    assert not runc_fails, f"runc fails cases it should pass: {runc_fails}"
    regressed = {c: results[c]["umlpy-oci"][1] for c in sorted(UMLPY_PASSES & set(run))
                 if results[c]["umlpy-oci"][0] != "ok"}
    assert not regressed, f"umlpy-oci fails cases it passed: {regressed}"
