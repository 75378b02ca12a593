"""Hostile racers against the guest kernel's checks (time of check to
time of use): for each syscall family, 10^4 attempts while one thread flips
the path buffer between an allowed guest path and a host path, and
another swaps symlinks.  No attempt may reach the host objects, which the
guest's root (an image) does not contain."""
import hashlib
import os
import socket
import threading

import pytest

from conftest import ROOT, run_umlpy

ATTEMPTS = 10_000
FAMILIES = ["open", "stat", "execve", "rename", "connect", "chdir"]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    import subprocess
    import sys
    out = tmp_path_factory.mktemp("race-img") / "busybox.tar"
    p = subprocess.run([sys.executable, str(ROOT / "rootfs" / "make-image"), "busybox",
                        str(out)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot build a busybox image: {p.stderr.decode().strip()}")
    return out


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_racers_never_reach_the_host(guest, image, tmp_path, family):
    os.chmod(tmp_path, 0o777)
    pwned = tmp_path / "pwned"
    host_file = tmp_path / "host-script"
    host_file.write_text(f"#!/bin/sh\necho pwned > {pwned}\n")
    os.chmod(host_file, 0o777)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host secret\n")
    os.chmod(host_dir, 0o777)
    os.chmod(host_dir / "secret", 0o666)
    sock_path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    os.chmod(sock_path, 0o777)
    server.listen(64)
    reached = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            reached.append(1)
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    before = {p: digest(p) for p in (host_file, host_dir / "secret")}
    fst, dst = os.stat(host_file), os.stat(host_dir)
    env = dict(os.environ, HOST_FILE_DEV=str(fst.st_dev), HOST_FILE_INO=str(fst.st_ino),
               HOST_DIR_DEV=str(dst.st_dev), HOST_DIR_INO=str(dst.st_ino),
               PYTHONPATH=str(ROOT))
    prog = guest("racer", static=True)
    try:
        p = run_umlpy(["/racer", family, str(ATTEMPTS), str(host_file), str(host_dir),
                       str(sock_path)],
                      options=["--rootfs", str(image), "--bind", f"{prog}:/racer:ro"],
                      timeout=600, env=env)
    finally:
        server.close()
    out = p.stdout.decode()
    assert "ESCAPE" not in out and p.returncode == 0, (out[-2000:], p.stderr[-2000:])
    assert out.strip().splitlines()[-1].startswith(f"done {family} ")
    assert not pwned.exists()
    assert {p: digest(p) for p in before} == before
    assert sorted(os.listdir(host_dir)) == ["secret"]
    assert host_file.exists() and reached == []
