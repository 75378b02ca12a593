"""config.json's linux.sysctl: kernel parameters of the container's own
namespaces, as runc sets them.

Only parameters that belong to a namespace the container has of its own
may be set: those of its network namespace (net.*) and of its IPC
namespace (SysV IPC's kernel.msg*, kernel.sem, kernel.shm* and POSIX
message queues' fs.mqueue.*).  Any other is the host's, and refused in
one line.  They are written by a thread of the container's daemon that
joins the namespace for the moment of the write (setns(2) of a network
or IPC namespace changes only the calling thread), before the
container's process starts."""
import os
import threading

from ..abi.sched import CLONE_NEWIPC, CLONE_NEWNET
from ..errors import BadInput

IPC_KEYS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def namespace_of(key):
    """("net" or "ipc", its clone flag) for a parameter a container may
    set; BadInput for one it may not."""
    if key.startswith("net.") and ".." not in key:
        return "net", CLONE_NEWNET
    if key in IPC_KEYS or (key.startswith("fs.mqueue.") and ".." not in key):
        return "ipc", CLONE_NEWIPC
    raise BadInput(f"umlpy-oci: config.json: linux.sysctl {key!r}: not a parameter of the "
                   "container's own network or IPC namespace (the host's may not be set)")


def check(sysctl):
    """{key: value} of config.json's linux.sysctl, each checked."""
    out = {}
    for key, value in sysctl.items():
        key = str(key)
        if not key or "/" in key or "\0" in key or any(p in ("", ".") for p in key.split(".")):
            raise BadInput(f"umlpy-oci: config.json: linux.sysctl {key!r}: not a parameter name")
        namespace_of(key)
        if not isinstance(value, str) or "\0" in value:
            raise BadInput(f"umlpy-oci: config.json: linux.sysctl {key}: the value must be "
                           "a string")
        out[key] = value
    return out


def apply(pid, sysctl):
    """Write each parameter in the namespaces of the process pid (the
    container's init); OSError of the first that fails, naming it."""
    if not sysctl:
        return
    failure = []

    def writer():
        from ..kernel.netns import setns
        joined = set()
        try:
            for key, value in sysctl.items():
                kind, flag = namespace_of(key)
                if kind not in joined:
                    fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        setns(fd, flag)
                    finally:
                        os.close(fd)
                    joined.add(kind)
                path = "/proc/sys/" + key.replace(".", "/")
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                    try:
                        os.write(fd, value.encode())
                    finally:
                        os.close(fd)
                except OSError as e:
                    raise OSError(e.errno, f"sysctl {key}: {e.strerror}") from None
        except OSError as e:
            failure.append(e)

    # a thread of its own, which ends in the namespaces it joined: no
    # other thread of the daemon ever leaves the host's
    t = threading.Thread(target=writer, name="umlpy-oci-sysctl")
    t.start()
    t.join()
    if failure:
        raise failure[0]
