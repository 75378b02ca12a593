"""A child in a user namespace of its own, whose maps its parent writes:
what entering the user's subordinate ids (identity.py) and an idmapped
mount's namespace (vfs/idmapped.py) both start from."""
import ctypes
import os

from ..abi.sched import CLONE_NEWUSER


class NamespaceChild:
    """A forked child that unshared its user namespace and waits.
    ``unshared``: whether it could; ``release(go)`` lets it go on: with
    go, the child runs then() (which should exec or return to exit 0);
    without, it exits 126."""

    def __init__(self, then=None):
        ready_r, ready_w = os.pipe()
        go_r, self._go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(ready_r)
                os.close(self._go_w)
                if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) < 0:
                    os._exit(126)
                os.write(ready_w, b"u")
                if os.read(go_r, 1) != b"g":
                    os._exit(126)
                if then is not None:
                    then()
                os._exit(0)
            finally:
                os._exit(126)
        os.close(ready_w)
        os.close(go_r)
        self.unshared = os.read(ready_r, 1) == b"u"
        os.close(ready_r)

    def release(self, go=True):
        os.write(self._go_w, b"g" if go else b"x")
        os.close(self._go_w)
