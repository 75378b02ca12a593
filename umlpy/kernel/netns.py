"""A network namespace made by someone else (``--net ns:PATH``), such
as a container engine's, with its interfaces, routes and firewall.

The guest's first process is cloned from a thread of umlpy's that has
joined the namespace for the moment of the clone: a thread's network
namespace is its own (setns(2) with CLONE_NEWNET changes only the
caller), so the rest of umlpy stays in the host's, and the guest's
other namespaces (user, pid, mount, IPC, UTS) are still made by the
clone.  Joining needs CAP_SYS_ADMIN over the namespace: an engine's
runtime has it (root, or root of the rootless engine's user namespace).
"""
import contextlib
import os

from ..abi.sched import CLONE_NEWNET
from ..errors import BadInput


def setns(fd, kind):
    """setns(2) for the calling thread (os.setns is Python 3.12's)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, kind) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_namespace(path):
    """An fd of the network namespace at path; BadInput, in one line, for
    a path that is not one or that umlpy may not join."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise BadInput(f"--net ns:{path}: {e.strerror}") from None
    try:
        mine = os.stat("/proc/thread-self/ns/net")
        st = os.fstat(fd)
        if st.st_dev != mine.st_dev:
            raise BadInput(f"--net ns:{path}: not a network namespace")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def joined(path):
    """The calling thread in the network namespace at path for the body,
    and back in its own after it, whatever happens."""
    target = open_namespace(path)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(target, CLONE_NEWNET)
        except OSError as e:
            raise BadInput(f"--net ns:{path}: cannot join it: {e.strerror}") from None
        try:
            yield
        finally:
            # Never leave a thread of umlpy in the guest's network: a
            # failure to return is fatal, not something to carry on with.
            try:
                setns(own, CLONE_NEWNET)
            except OSError as e:
                os.write(2, f"umlpy: cannot leave the network namespace {path}: "
                            f"{e.strerror}\n".encode())
                os._exit(70)
    finally:
        os.close(target)
        os.close(own)
