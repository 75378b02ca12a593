"""Who the guest is, inside and on the host: its user namespace's maps.

A guest with many users (root, daemons that drop to their own user, apt's
_apt) needs many ids, each a real owner of the sandbox's files.  umlpy
builds them as rootless container runtimes do:

* **Run as root: a block.**  Guest ids 0..65535 map to 65536 host ids of
  the sandbox's own, a block no host user has (``--id-block`` names one;
  by default umlpy takes the first free block from BLOCKS_FROM up, held by a
  lock file while the sandbox runs).  Guest root is then root of its own
  files and no one on the host: what it may read there is what an unknown
  user may read.
* **An ordinary user with /etc/subuid and /etc/subgid ranges: those.**
  The user's own id stays the guest's (0 with --root), the rest of
  0..65535 is taken from the subordinate ranges, mapped by the set-uid
  newuidmap/newgidmap (Debian's uidmap package), as podman does.
* **Otherwise: one id.**  The guest is its user (or root with --root), and
  every other id shows as the overflow id; ownership the host refuses is
  recorded by --root's fake-ownership table.
"""
import errno
import fcntl
import os

from ..abi.resource import OVERFLOW_UID
from ..errors import UmlpyError

IDS_INSIDE = 65536              # guest ids 0..65535, as a container's
BLOCKS_FROM = 0x70000000        # above the ranges distributions and systemd hand out
BLOCKS = 4096                   # ... up to 0x7fffffff: uids some tools take as signed
LOCK_DIR = "/run/umlpy/id-blocks"
LAST_MAPPABLE_ID = 0xFFFFFFFE   # (uid_t)-1 is "no id"


class IdentityError(UmlpyError):
    """The identity asked for cannot be had (a one-line message)."""


def _listed_ids(paths):
    """Host ids that /etc/passwd-like files (id in field 3) and subid files
    (start:count) name: a block must avoid them all."""
    spans = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split(":")
            try:
                if path.endswith(("subuid", "subgid")) and len(fields) >= 3:
                    spans.append((int(fields[1]), int(fields[2])))
                elif len(fields) >= 3:
                    spans.append((int(fields[2]), 1))
            except ValueError:
                continue
    return spans


def _overlaps(first, spans):
    return any(start < first + IDS_INSIDE and first < start + count for start, count in spans)


class IdBlock:
    """65536 host ids a sandbox holds while it runs: a lock file held
    open (flock: released by the kernel however umlpy ends)."""

    def __init__(self, first, lock_fd=None):
        self.first, self._lock_fd = first, lock_fd

    @classmethod
    def take(cls, wanted=None, why="--id-block"):
        """The block at host id wanted (why: what asked for it), or a free
        one, looked for from a random block on: a block a kept --upper was
        made with is then seldom another sandbox's when it runs again."""
        try:
            os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        except OSError as e:
            raise IdentityError(f"cannot keep id blocks in {LOCK_DIR}: {e.strerror}")
        if wanted is not None:
            if wanted + IDS_INSIDE - 1 > LAST_MAPPABLE_ID:
                raise IdentityError(f"--id-block {wanted}: the block would pass host id "
                                    f"{LAST_MAPPABLE_ID}, the last a user namespace maps")
            block = cls._lock(wanted)
            if block is None:
                raise IdentityError(f"{why}: another sandbox holds its ids (the block at "
                                    f"host id {wanted})")
            return block
        taken = _listed_ids(["/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"])
        start = int.from_bytes(os.urandom(2), "little") % BLOCKS
        for i in range(BLOCKS):
            first = BLOCKS_FROM + (start + i) % BLOCKS * IDS_INSIDE
            if _overlaps(first, taken):
                continue
            block = cls._lock(first)
            if block is not None:
                return block
        raise IdentityError(f"no free block of {IDS_INSIDE} host ids for the sandbox "
                            f"({BLOCKS} sandboxes run): name one with --id-block")

    @classmethod
    def _lock(cls, first):
        fd = os.open(f"{LOCK_DIR}/{first}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        return cls(first, fd)

    def release(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def block_of_upper(path):
    """The block a kept upper layer's files belong to (its top directory's
    owner, set when the layer was first used), or None: a layer reused by
    a later run must keep its owners."""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return None
    if uid >= BLOCKS_FROM and (uid - BLOCKS_FROM) % IDS_INSIDE == 0 \
            and uid < BLOCKS_FROM + BLOCKS * IDS_INSIDE:
        return uid
    return None


def subordinate_range(kind, user, uid):
    """(start, count) of the first /etc/sub{kind} range of user (by name
    or uid) of at least IDS_INSIDE - 1 ids, or None."""
    try:
        with open(f"/etc/sub{kind}") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count >= IDS_INSIDE - 1:
            return start, count
    return None


def _user_then(outside, sub_start):
    """The user's namespace's map: the user as 0, its subordinate ids as
    1..65535."""
    return [(0, outside, 1), (1, sub_start, IDS_INSIDE - 1)]


def _user_name(uid):
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def subordinate_maps(uid, gid):
    """(uid ranges, gid ranges, newuidmap, newgidmap) of the namespace
    umlpy enters for an ordinary user who has subordinate ranges and the
    helpers, else None."""
    import shutil       # here only: it costs 1.4 ms (bz2, lzma) of every run's start
    helpers = shutil.which("newuidmap"), shutil.which("newgidmap")
    if not all(helpers):
        return None
    name = _user_name(uid)
    subuid, subgid = subordinate_range("uid", name, uid), subordinate_range("gid", name, uid)
    if subuid is None or subgid is None:
        return None
    return _user_then(uid, subuid[0]), _user_then(gid, subgid[0]), *helpers


def block_maps(first):
    """The guest's maps: its ids 0..65535 to the block at first."""
    return [(0, first, IDS_INSIDE)], [(0, first, IDS_INSIDE)]


def entered_maps(guest_uid, guest_gid):
    """The guest's maps in the user's subordinate namespace, where the user
    is 0 and the subordinate ids 1..65535: the guest's own id (the user's,
    or 0 with --root) is the user, its other ids 0..65535 the subordinate
    ones.  (A range must lie within one range of this namespace's map:
    the user's id and the subordinate ones are never mixed in one.)"""
    return _around_user(guest_uid), _around_user(guest_gid)


def _around_user(own):
    """The user (0 here) is the guest's own id; the others take the
    subordinate ids in order, but never 65534 here: this namespace shows a
    host file of an owner it does not map as 65534, which must stay no
    one's (so the guest has 0..65534, 65535 excepted)."""
    pool = [i for i in range(1, IDS_INSIDE) if i != OVERFLOW_UID]
    others = [i for i in range(IDS_INSIDE - 1) if i != own]
    ranges = [(own, 0, 1)]
    for guest, here in zip(others, pool):
        last = ranges[-1]
        if len(ranges) > 1 and guest == last[0] + last[2] and here == last[1] + last[2]:
            ranges[-1] = (last[0], last[1], last[2] + 1)
        else:
            ranges.append((guest, here, 1))
    return sorted(ranges)


def mode_text():
    """What `umlpy run --help` says about the guest's ids on this host, as
    this user."""
    if os.geteuid() == 0:
        return (f"Identity: as root, the guest's ids 0..{IDS_INSIDE - 1} map to a block of "
                "host ids of the sandbox's own (--id-block; --host-root keeps host root).")
    uid = os.geteuid()
    if subordinate_maps(uid, os.getegid()) is not None:
        return (f"Identity: the guest's ids 0..{IDS_INSIDE - 1} map to yours and to your "
                "/etc/subuid and /etc/subgid ranges (newuidmap).")
    return ("Identity: one id (you have no /etc/subuid range, or newuidmap is missing): "
            f"every other id shows as {OVERFLOW_UID}; --root records the ownership the "
            "guest sets.")


# -- an ordinary user's subordinate ids: umlpy enters them itself --------
#
# umlpy must reach every file of the sandbox's users (a 0700 directory of
# _apt's, say), which an ordinary user's process cannot.  So, as podman
# does, umlpy runs again inside a user namespace of the user's own whose
# ids 0..65535 are the user (0) and the subordinate ranges: root there,
# it is then exactly umlpy run as root, whose guest's block is that
# namespace's ids 0..65535 (block_first), and which holds no host power.

# (in hostuser.py, which the lifecycle's commands import without the kernel)
from ..hostuser import SUBORDINATE_ENV, entered_ids, host_uid  # noqa: E402,F401


def enter_subordinate_namespace(argv):
    """Run umlpy again (argv: its arguments) in a user namespace of the
    user's subordinate ids, if the user has them and this is not that
    umlpy already; returns that umlpy's exit status, or None to go on
    here (root, or no subordinate ids: one id, as mode_text says)."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 or os.environ.get(SUBORDINATE_ENV):
        return None
    maps = subordinate_maps(uid, gid)
    if maps is None:
        return None
    uid_ranges, gid_ranges, newuidmap, newgidmap = maps
    import signal
    import subprocess
    import sys
    from .userns import NamespaceChild

    def run_umlpy_again():
        os.environ[SUBORDINATE_ENV] = f"{uid}:{gid}"
        os.execv(sys.executable, [sys.executable, "-m", "umlpy", *argv])
    child = NamespaceChild(run_umlpy_again)
    pid, ok = child.pid, child.unshared
    for helper, ranges in ((newuidmap, uid_ranges), (newgidmap, gid_ranges)):
        if ok:
            args = [helper, str(pid)] + [str(n) for r in ranges for n in r]
            ok = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
    child.release(ok)
    # the terminal's signals reach both of us; the others are passed on
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
    if not ok:
        raise IdentityError("cannot map your /etc/subuid and /etc/subgid ranges "
                            "(newuidmap/newgidmap refused)")
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
        128 + os.WTERMSIG(status)
