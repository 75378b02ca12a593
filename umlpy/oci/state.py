"""Where umlpy-oci keeps its containers, and what state each is in.

--root DIR (default /run/umlpy-oci for root, $XDG_RUNTIME_DIR/umlpy-oci
for a user) holds one directory per container id:

- ``state.json``: the runtime spec's `state` (ociVersion, id, bundle,
  annotations), the daemon's pid, init's (the state's pid) and the
  hooks, written by create;
  ``status`` and ``pid`` are read live, never remembered;
- ``home``: only where other users may not search the directories
  above it (Container.home): the directory of umlpy-oci's own that
  holds the next three instead;
- ``sandbox/``: the container's sandbox, a named sandbox's record
  (lifecycle/registry.py: its words, upper layer, daemon lock, logs and
  control socket), whose daemon is the container;
- ``started``, ``exited``: written by the daemon when the container's
  process started and when it exited (server.py).

The state is the record's: created while the daemon lives and the
process has not started, running once it has, stopped once it exited or
the daemon is gone.  A directory whose daemon died is stopped too."""
import json
import os
import re

from ..errors import BadInput, UmlpyError
from ..lifecycle.registry import write_json

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}\Z")
OCI_VERSION = "1.1.0"


def store_root():
    """Where container homes go when the engine's state directory is
    closed to others (Container.home): search-only, as a named sandbox's
    registry; root's under /run, a user's (a rootless engine's, whose
    runtime runs as root of the user's namespace) in /tmp."""
    from ..hostuser import host_uid
    uid = host_uid()
    return "/run/umlpy-oci-store" if uid == 0 else f"/tmp/umlpy-oci-store-{uid}"


def _own_store():
    root = store_root()
    os.makedirs(root, mode=0o711, exist_ok=True)
    st = os.lstat(root)
    if st.st_uid != os.geteuid() or not os.path.isdir(root) or os.path.islink(root):
        raise UmlpyError(f"umlpy-oci: {root} is not umlpy-oci's (owned by uid {st.st_uid}): "
                         "remove it")
    os.chmod(root, 0o711)
    return root


def default_root():
    from ..hostuser import entered_ids
    if os.geteuid() == 0 and entered_ids() is None:
        return "/run/umlpy-oci"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        raise BadInput("umlpy-oci: XDG_RUNTIME_DIR is not set: give --root DIR")
    return os.path.join(runtime, "umlpy-oci")


def check_id(container_id):
    if not ID_PATTERN.match(container_id or ""):
        raise BadInput(f"umlpy-oci: bad container id {container_id!r}: letters, digits, "
                       "'_', '.', '+' and '-', starting with a letter or digit")
    return container_id



class Container:
    def __init__(self, root, container_id):
        self.id = check_id(container_id)
        self.root = os.path.abspath(root)
        self.dir = os.path.join(self.root, container_id)

    def path(self, leaf):
        return os.path.join(self.dir, leaf)

    @property
    def home(self):
        """Where the container's sandbox record and its started/exited
        marks live: its directory, or, when other users may not search
        the directories above it (an engine's 0700 state directory, such
        as docker's exec-root), a directory of umlpy-oci's own under
        store_root() that they may, named in the file ``home``: as root the
        sandbox's own host ids reach its upper layer only through
        searchable directories (lifecycle/daemon.py check_reachable)."""
        try:
            with open(self.path("home")) as f:
                home = f.read().strip()
        except FileNotFoundError:
            return self.dir
        if os.path.dirname(home) != store_root():
            raise UmlpyError(f"umlpy-oci: {self.path('home')}: not a store of umlpy-oci's")
        return home

    @property
    def record(self):
        from ..lifecycle.registry import Record
        return Record("sandbox", root=self.home)

    def make(self):
        """The container's directory; BadInput if the id is taken.  Both
        it and the root are search-only for others (0711): as root, the
        sandbox's own host ids reach its upper layer through them
        (lifecycle/daemon.py check_reachable)."""
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise BadInput(f"umlpy-oci: container {self.id!r} already exists") from None
        except OSError as e:
            raise UmlpyError(f"umlpy-oci: cannot make {self.dir}: {e.strerror}") from None
        from ..hostuser import searchable_above
        if os.geteuid() == 0 and not searchable_above(self.dir):
            home = os.path.join(_own_store(), os.urandom(16).hex())
            os.mkdir(home, 0o711)
            with open(self.path("home"), "w") as f:
                f.write(home)

    def exists(self):
        return os.path.exists(self.path("state.json"))

    def saved(self):
        try:
            with open(self.path("state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise BadInput(f"umlpy-oci: container {self.id!r} does not exist") from None
        except (OSError, ValueError) as e:
            raise UmlpyError(f"umlpy-oci: {self.path('state.json')}: {e}") from None

    def save(self, data):
        write_json(self.path("state.json"), data)

    def status(self):
        """created, running or stopped (see the module's text)."""
        if os.path.exists(os.path.join(self.home, "exited")):
            return "stopped"
        record = self.record
        if not record.daemon_alive():
            return "stopped"
        return "running" if os.path.exists(os.path.join(self.home, "started")) \
            else "created"

    def state(self):
        """The runtime spec's state of the container."""
        data = self.saved()
        status = self.status()
        out = {"ociVersion": data.get("ociVersion", OCI_VERSION), "id": self.id,
               "status": status,
               "pid": data.get("init_pid") or data.get("pid", 0) if status != "stopped" else 0,
               "bundle": data.get("bundle", ""), "annotations": data.get("annotations", {})}
        if data.get("created"):
            out["created"] = data["created"]
        return out

    def daemon_pid(self):
        return self.saved().get("pid", 0)

    def remove(self):
        """The whole directory: state, record, upper layer (files the
        sandbox's ids own included)."""
        from ..kernel.vfs.tmpdirs import remove_tree
        home = self.home
        if home != self.dir and os.path.isdir(home):
            doomed = os.path.join(store_root(), f".removing.{os.path.basename(home)}")
            os.rename(home, doomed)
            remove_tree(doomed)
        doomed = os.path.join(self.root, f".removing.{self.id}.{os.getpid()}")
        os.rename(self.dir, doomed)     # the id is free at once
        remove_tree(doomed)
