"""config.json's hooks, run as the runtime spec says (config.md "POSIX
platform hooks", runtime.md "Lifecycle").

Each hook is a host program run by the runtime, in the runtime's own
namespaces, with the container's state (JSON) on its stdin:

  prestart, createRuntime   after create made the container's
                            namespaces, before its process runs; one
                            that fails (non-zero, or past its timeout)
                            fails create, and the container is removed;
  poststart                 after start started the process; a failure
                            is logged (a warning), start still succeeds;
  poststop                  when delete removes the container; likewise.

The state's pid is the container's init as the host sees it, so a hook
that joins the container's namespaces through /proc/PID/ns (docker's
libnetwork-setkey does) reaches the sandbox's.

createContainer and startContainer hooks must run inside the container's
namespaces, which no host program enters in umlpy (every guest process
is a traced one): they are refused in one line."""
import json
import os
import subprocess

from ..errors import BadInput, UmlpyError

HOST_SIDE = ("prestart", "createRuntime", "poststart", "poststop")
INSIDE = ("createContainer", "startContainer")


def check(hooks):
    """{kind: [hook]} of config.json's hooks, each checked."""
    out = {}
    for kind, entries in hooks.items():
        if kind in INSIDE and entries:
            raise BadInput(f"umlpy-oci: config.json: hooks.{kind} run inside the "
                           "container's namespaces, which umlpy does not let a host "
                           "program enter")
        if kind not in HOST_SIDE:
            raise BadInput(f"umlpy-oci: config.json: hooks.{kind} is not a hook kind")
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise BadInput(f"umlpy-oci: config.json: hooks.{kind} is not a list")
        checked = []
        for hook in entries:
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) or \
                    not hook["path"].startswith("/"):
                raise BadInput(f"umlpy-oci: config.json: hooks.{kind}: each needs an "
                               "absolute path")
            args = hook.get("args") or [hook["path"]]
            env = hook.get("env") or []
            timeout = hook.get("timeout")
            if not all(isinstance(a, str) for a in args) or \
                    not all(isinstance(e, str) and "=" in e for e in env):
                raise BadInput(f"umlpy-oci: config.json: hooks.{kind} {hook['path']}: args "
                               "and env must be strings (env KEY=VALUE)")
            if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
                raise BadInput(f"umlpy-oci: config.json: hooks.{kind} {hook['path']}: "
                               "timeout must be a positive number of seconds")
            checked.append({"path": hook["path"], "args": args, "env": env,
                            "timeout": timeout})
        out[kind] = checked
    return out


def run(hooks, kind, state):
    """Run hooks[kind] in order with state on stdin; UmlpyError, in one
    line, at the first that fails."""
    data = json.dumps(state).encode()
    for hook in hooks.get(kind) or ():
        env = dict(e.split("=", 1) for e in hook["env"])
        try:
            p = subprocess.run(hook["args"], executable=hook["path"], input=data, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=hook["timeout"], close_fds=True)
        except subprocess.TimeoutExpired:
            raise UmlpyError(f"umlpy-oci: {kind} hook {hook['path']}: timed out after "
                             f"{hook['timeout']} s") from None
        except OSError as e:
            raise UmlpyError(f"umlpy-oci: {kind} hook {hook['path']}: {e.strerror}") from None
        if p.returncode:
            said = p.stderr.decode(errors="replace").strip().splitlines()
            raise UmlpyError(f"umlpy-oci: {kind} hook {hook['path']} failed with status "
                             f"{p.returncode}" + (f": {said[-1]}" if said else ""))


def run_logged(hooks, kind, state, log):
    """Run hooks whose failure is only a warning (poststart, poststop)."""
    try:
        run(hooks, kind, state)
    except UmlpyError as e:
        log(str(e))
