"""Who umlpy runs for on the host, and where that user's named sandboxes
live: what a lifecycle command needs before anything else, without the
guest kernel's imports (`umlpy exec` starts in milliseconds, not tens)."""
import os

SUBORDINATE_ENV = "UMLPY_SUBORDINATE_OF"    # "uid:gid" outside, in the umlpy that entered


def entered_ids():
    """(uid, gid) of the user outside when this umlpy runs in the user's
    subordinate namespace (kernel/identity.py), else None."""
    value = os.environ.get(SUBORDINATE_ENV)
    if not value or os.geteuid() != 0:
        return None
    uid, _, gid = value.partition(":")
    return int(uid), int(gid)


def host_uid():
    """The user umlpy runs for on the host (its state and caches are
    that user's)."""
    entered = entered_ids()
    return entered[0] if entered is not None else os.geteuid()


def registry_root():
    """Where the user umlpy runs for keeps named sandboxes
    (lifecycle/registry.py): /var/lib/umlpy for root, else
    $XDG_STATE_HOME/umlpy (~/.local/state/umlpy); $UMLPY_REGISTRY wins.
    No guest sees it (kernel/vfs/build.py hides it from the host's tree)."""
    override = os.environ.get("UMLPY_REGISTRY")
    if override:
        return os.path.abspath(override)
    if host_uid() == 0:
        return "/var/lib/umlpy"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return os.path.join(base, "umlpy")


def searchable_above(path, itself=False):
    """Whether other users may search every directory above path (and
    path itself, with itself): what the sandbox's own host ids need to
    reach it, as root (a block of ids of its own)."""
    here = os.path.abspath(path)
    if not itself:
        here = os.path.dirname(here)
    while True:
        try:
            if not os.stat(here).st_mode & 0o001:
                return False
        except OSError:
            return False
        if here == "/":
            return True
        here = os.path.dirname(here)
