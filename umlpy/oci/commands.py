"""umlpy-oci's commands: create, start, state, kill, delete, features.

A container is a named sandbox (lifecycle/) whose record is the
container directory's ``sandbox/``: create records the options the
bundle maps to and starts its daemon, whose umlpy-init waits as pid 1
with nothing else running; the container's process and create's stdio
wait in the daemon (server.py) until start."""
import json
import os
import signal
import sys
import time

from ..errors import BadInput, UmlpyError
from ..lifecycle import control
from . import hooks as oci_hooks
from .state import OCI_VERSION, Container

STOP_WAIT = 10.0


def request(container, op, fds=(), **fields):
    """One request to the container's daemon; its answer, or UmlpyError."""
    return control.request(container.record.socket_path, op,
                           f"umlpy-oci: container {container.id!r}", "", fds, **fields)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def create(root, container_id, bundle, pid_file=None, console_socket=None, preserve_fds=0):
    from ..config import Config
    from ..config.words import option_words
    from ..lifecycle import daemon
    from . import config as oci_config
    from . import console
    from .server import OciServer

    container = Container(root, container_id)
    bundle = os.path.abspath(bundle or ".")
    spec = oci_config.load(bundle)
    terminal = spec.process["terminal"]
    if bool(console_socket) != terminal:
        raise BadInput("umlpy-oci: --console-socket goes with process.terminal (and "
                       "process.terminal with --console-socket)")
    if preserve_fds:
        raise BadInput("umlpy-oci: --preserve-fds is not supported by umlpy-oci yet")
    words = option_words(Config(**spec.options))
    container.make()
    try:
        container.save({"ociVersion": spec.oci_version or OCI_VERSION, "id": container.id,
                        "bundle": bundle, "annotations": spec.annotations, "pid": 0,
                        "created": _now(), "rootfs": spec.options["rootfs"],
                        "rlimits": spec.process["rlimits"]})
        record = container.record
        record.create(words, None, bundle)
        pid = daemon.start(record, serve=OciServer)
        container.save({**container.saved(), "pid": pid})
        # the container's stdio is create's (an engine's pipes or files),
        # or a terminal's whose master went to the engine's console socket
        if terminal:
            slave = console.open_terminal(console_socket, spec.process["rows"],
                                          spec.process["cols"])
            try:
                answer = request(container, "oci_prepare", fds=(slave,) * 3,
                                 process=spec.process, sysctl=spec.sysctl)
            finally:
                os.close(slave)
        else:
            answer = request(container, "oci_prepare", fds=(0, 1, 2), process=spec.process,
                             sysctl=spec.sysctl)
        # the state's pid: init, in the container's namespaces (a hook
        # joins them through /proc/PID/ns); --pid-file's is the daemon,
        # whose exit status is the container's
        container.save({**container.saved(), "init_pid": answer.get("init_pid", 0),
                        "hooks": spec.hooks})
        oci_hooks.run(spec.hooks, "createRuntime", container.state())
        oci_hooks.run(spec.hooks, "prestart", container.state())
        if pid_file:
            write_pid(pid_file, pid)
    except BaseException:
        _destroy(container)
        raise


def write_pid(path, pid):
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def start(root, container_id):
    container = Container(root, container_id)
    status = _status(container)
    if status != "created":
        raise UmlpyError(f"umlpy-oci: cannot start container {container_id!r}: it is {status}")
    request(container, "oci_start")
    oci_hooks.run_logged(container.saved().get("hooks") or {}, "poststart",
                         container.state(), warn)


def warn(message):
    sys.stderr.write(f"{message} (a warning)\n")


def _status(container):
    container.saved()       # the one-line "does not exist"
    return container.status()


def state(root, container_id):
    container = Container(root, container_id)
    print(json.dumps(container.state(), indent=2))


def kill(root, container_id, sig="SIGTERM", all_processes=False):
    container = Container(root, container_id)
    number = signal_number(sig)
    status = _status(container)
    if status == "stopped":
        raise UmlpyError(f"umlpy-oci: container {container_id!r} is not running")
    if all_processes:
        request(container, "kill", signal=number, all=True)
    elif status == "running":
        request(container, "oci_signal", signal=number)
    else:
        # created: nothing runs but umlpy-init, which ends the sandbox on
        # SIGTERM, SIGINT, SIGHUP and SIGKILL
        request(container, "kill", signal=number, all=False)


def signal_number(sig):
    text = str(sig).strip().upper()
    if text.isdigit():
        number = int(text)
    else:
        name = text if text.startswith("SIG") else f"SIG{text}"
        number = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ \
            else None
        number = int(number) if number is not None else None
    if number is None or not 0 < number < 65:
        raise BadInput(f"umlpy-oci: bad signal {sig!r}")
    return number


def delete(root, container_id, force=False):
    container = Container(root, container_id)
    if not os.path.isdir(container.dir):
        if force:
            return
        raise UmlpyError(f"umlpy-oci: container {container_id!r} does not exist")
    status = container.status() if container.exists() else "stopped"
    if status == "running" and not force:
        raise UmlpyError(f"umlpy-oci: cannot delete container {container_id!r}: it is running "
                         "(kill it first, or delete --force)")
    saved = container.saved() if container.exists() else {}
    _destroy(container)
    if saved.get("hooks"):
        state = {"ociVersion": saved.get("ociVersion", OCI_VERSION), "id": container_id,
                 "status": "stopped", "pid": 0, "bundle": saved.get("bundle", ""),
                 "annotations": saved.get("annotations", {})}
        oci_hooks.run_logged(saved["hooks"], "poststop", state, warn)


def _destroy(container):
    """Stop the daemon (every guest process with it) and remove the
    container's directory."""
    from ..lifecycle.daemon import wait_gone
    record = container.record
    if record.daemon_alive():
        try:
            request(container, "stop", timeout=0)
        except UmlpyError:
            pass
        if not wait_gone(record, STOP_WAIT):
            pid = (record.daemon() or {}).get("pid")
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)    # PTRACE_O_EXITKILL: the guest too
                except ProcessLookupError:
                    pass
            wait_gone(record, STOP_WAIT)
    container.remove()


def features():
    """What umlpy-oci supports, as runc's `features` prints it."""
    from .config import ACCEPTED_NAMESPACES, CAPABILITY_NUMBERS, HARMLESS_OPTIONS
    from .seccomp import features as seccomp_features
    print(json.dumps({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(oci_hooks.HOST_SIDE),
        "mountOptions": sorted(HARMLESS_OPTIONS),
        "linux": {
            "namespaces": list(ACCEPTED_NAMESPACES),
            "capabilities": [f"CAP_{name}" for name in CAPABILITY_NUMBERS],
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {
            "org.umlpy.sandbox": "ptrace+seccomp guest kernel (umlpy)",
            "org.umlpy.noNewPrivileges": "always true",
        },
    }, indent=2))

