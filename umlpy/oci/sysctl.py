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

# parameters whose value is a range of group ids (the caller's own)
GROUP_RANGES = ("net.ipv4.ping_group_range",)
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


def _host_groups(pid, key, value):
    """A range of the container's group ids as the host's: this thread
    writes as the host's root, so the kernel reads ids as the host's, and
    the container's group 0 is its user namespace's, a host id of the
    sandbox's own."""
    try:
        low, high = (int(v) for v in value.split())
    except ValueError:
        raise OSError(22, f"sysctl {key}: expected two group ids") from None
    with open(f"/proc/{pid}/gid_map") as f:
        maps = [tuple(int(v) for v in line.split()) for line in f]

    if low > high:          # an empty range, as Linux's default "1 0"
        return value
    # the part of the range the container's groups are in (docker asks
    # "0 2147483647": all of them)
    for inside, outside, count in maps:
        a, b = max(low, inside), min(high, inside + count - 1)
        if a <= b:
            return f"{outside + a - inside} {outside + b - inside}"
    raise OSError(22, f"sysctl {key}: {value!r} holds none of the container's groups")


def _namespace_root(pid):
    """The host uid of root in the user namespace of process pid."""
    with open(f"/proc/{pid}/uid_map") as f:
        for line in f:
            inside, outside, _ = line.split()
            if inside == "0":
                return int(outside)
    raise OSError(1, "its user namespace has no root")


def _become_thread_euid(uid):
    """The calling thread's effective uid (the raw call: glibc's setresuid
    would change every thread's)."""
    import ctypes
    from ..kernel.syscalls.names import SYSCALL_NUMBERS
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYSCALL_NUMBERS["setresuid"], -1, uid, -1) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


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
            # the network's first: an IPC parameter makes the thread its
            # namespace's root, who may not write the network's
            def net_first(item):
                return namespace_of(item[0])[0] != "net"
            for key, value in sorted(sysctl.items(), key=net_first):
                kind, flag = namespace_of(key)
                if kind not in joined:
                    fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        setns(fd, flag)
                    finally:
                        os.close(fd)
                    joined.add(kind)
                if kind == "ipc" and "uid" not in joined:
                    # Linux lets only the IPC namespace's root write its
                    # parameters (ipc_permissions), whatever the writer's
                    # capabilities: this thread, and only it, becomes it
                    _become_thread_euid(_namespace_root(pid))
                    joined.add("uid")
                if key in GROUP_RANGES:
                    value = _host_groups(pid, key, value)
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
