"""umlpy-oci exec and ps: another process in a container, and its
processes, through the daemon's control socket (docs/CONTROL.md).

exec asks the daemon, as `umlpy exec` does, to have umlpy-init fork the
process with our stdin, stdout and stderr, and exits with its status.
With --detach a waiter process of ours holds the connection and exits
with the process's status: its pid is the one in --pid-file, so that an
engine waits for it as it waits for runc's exec'd process (the process
itself is umlpy-init's child, inside the sandbox's pid namespace)."""
import json
import os
import signal
import subprocess

from ..errors import BadInput, UmlpyError, one_line
from ..lifecycle import client, control
from .state import Container


def _inherited_oom_score_adj(container):
    pid = container.saved().get("init_pid")
    try:
        with open(f"/proc/{pid}/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def process_of(container, process_file, args, cwd, env, user):
    """The exec request's fields: from process.json (the spec's process
    object), or from the command line's words."""
    from . import config as oci_config
    if process_file:
        try:
            with open(process_file) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise BadInput(f"umlpy-oci: {process_file}: {one_line(str(e))}") from None
        if not isinstance(data, dict):
            raise BadInput(f"umlpy-oci: {process_file}: not a JSON object")
        spec = oci_config.Spec()
        spec.options["rootfs"] = container.saved().get("rootfs", "/")
        oci_config.check_process(spec, data)
        process = spec.process
        if sorted(process["rlimits"]) != sorted(tuple(r) for r in
                                                container.saved().get("rlimits", [])):
            raise BadInput("umlpy-oci: process.rlimits other than the container's are not "
                           "supported by umlpy-oci exec yet")
        oom = process.get("oom_score_adj")
        if oom is not None and oom != _inherited_oom_score_adj(container):
            # the exec inherits init's, which is the container's process's
            raise BadInput("umlpy-oci: process.oomScoreAdj other than the container's is "
                           "not supported by exec yet")
        # its capabilities, umask and groups (the container's seccomp
        # filter applies to every exec: server.py spawn_exec)
        return {"argv": process["argv"], "env": process["env"], "cwd": process["cwd"],
                "user": process["user"], "group": process["group"],
                "terminal": process["terminal"], "rows": process["rows"] or 24,
                "cols": process["cols"] or 80, "confinement": process["confinement"]}
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise BadInput("umlpy-oci: exec needs --process FILE or a command")
    variables = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"umlpy-oci: --env {item!r}: expected KEY=VALUE")
        variables[key] = value
    uid, _, gid = (user or "").partition(":")
    if not (uid.isdigit() or not uid) or not (gid.isdigit() or not gid):
        raise BadInput(f"umlpy-oci: --user {user!r}: expected UID[:GID]")
    return {"argv": list(args), "env": variables, "cwd": cwd or "/", "user": uid,
            "group": gid, "rows": 24, "cols": 80}


def execute(root, container_id, process_file=None, args=(), detach=False, pid_file=None,
            tty=False, console_socket=None, cwd=None, env=(), user=None):
    container = Container(root, container_id)
    container.saved()
    if container.status() == "stopped":
        raise UmlpyError(f"umlpy-oci: cannot exec in container {container_id!r}: it is stopped")
    fields = process_of(container, process_file, list(args), cwd, env, user)
    tty = bool(fields.pop("terminal", False) or tty)
    if tty != bool(console_socket):
        raise BadInput("umlpy-oci: exec: a terminal (--tty, process.terminal) goes with "
                       "--console-socket, which receives its master")
    message = {"v": control.VERSION, "op": "exec", "tty": tty, **fields}
    message["console_socket"] = console_socket
    if not detach:
        sock = _started(container, message)
        old = client._forward_signals(sock)
        try:
            return client._wait_exit(sock)
        finally:
            sock.close()
            for sig, handler in old.items():
                signal.signal(sig, handler)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        _waiter(container, message, ready_w)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as f:
        said = f.read().decode(errors="replace").strip()
    if said != "ok":
        os.waitpid(pid, 0)
        raise UmlpyError(said or "umlpy-oci: exec: the waiter died")
    if pid_file:
        from .commands import write_pid
        write_pid(pid_file, pid)
    return 0


def _started(container, message):
    """The connection of an exec whose process started; UmlpyError (exit
    127 for a program not found, 126 otherwise) when it did not."""
    try:
        sock = control.connect(container.record.socket_path)
    except OSError:
        raise UmlpyError(f"umlpy-oci: container {container.id!r} is not running") from None
    console_socket = message.pop("console_socket", None)
    try:
        control.send(sock, message, () if message["tty"] else (0, 1, 2))
        answer, fds = control.receive(sock)
    except (OSError, control.ProtocolError) as e:
        sock.close()
        raise UmlpyError(f"umlpy-oci: exec in {container.id!r}: {e}") from None
    try:
        if answer and answer.get("ok") and message["tty"] and fds:
            from .console import pty_name, send_master
            send_master(console_socket, fds[0], pty_name(fds[0]))
    except UmlpyError:
        sock.close()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    if answer is None or not answer.get("ok"):
        sock.close()
        error = UmlpyError(f"umlpy-oci: exec in {container.id!r}: "
                           f"{(answer or {}).get('error', 'the daemon went away')}")
        error.oci_status = 127 if (answer or {}).get("errno") == 2 else 126
        raise error
    return sock


def _waiter(container, message, ready_w):
    """The detached exec's waiter (a forked child): start the process,
    say so, then wait for its exit and exit with its status."""
    status = 255
    try:
        try:
            sock = _started(container, message)
        except UmlpyError as e:
            os.write(ready_w, one_line(str(e)).encode())
            status = getattr(e, "oci_status", 1)
            return
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):        # the process has them; the waiter needs none
            os.dup2(null, fd)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        ready_w = None
        client._forward_signals(sock)
        status = client._wait_exit(sock)
    except BaseException:       # noqa: BLE001 -- the waiter's status says it
        pass
    finally:
        if ready_w is not None:
            os.close(ready_w)
        os._exit(status)


def ps(root, container_id, fmt="table"):
    from .commands import request
    container = Container(root, container_id)
    container.saved()
    if container.status() == "stopped":
        raise UmlpyError(f"umlpy-oci: container {container_id!r} is not running")
    processes = request(container, "ps")["processes"]
    pids = [p["host_pid"] for p in processes]
    if fmt == "json":
        print(json.dumps(pids))
        return
    # runc's table is ps -ef's lines of the container's processes
    out = subprocess.run(["ps", "-f", "-p", ",".join(map(str, pids))], capture_output=True,
                         text=True)
    print(out.stdout, end="")
