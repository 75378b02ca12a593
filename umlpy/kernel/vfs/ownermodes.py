"""The sandbox's own files opened to their host owner for the time of one
operation the guest kernel decided to let a guest make.

With emulated ids (fakeids.py) the host sees one user, who owns every
file of the sandbox's own storage, and checks it against modes that are
the guest's to set: root's own 0444 file, its 0555 or 0000 directory.
Linux lets root past them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), and the
guest kernel, which checks the guest's emulated ids and capabilities
itself, lets it past too: then the host is asked again with the objects
and the directories above them given their owner's bits, and their modes
are given back after (syscalls/fs/common.py's overriding_modes, the
union's own lookups and listings).  Only below a directory of the
sandbox's own storage: a host directory the one user cannot read stays
unread."""
import stat as _stat

from . import hostops

# What the host owner needs of a file or directory of the sandbox's own
# for any operation the guest kernel decided to let a guest make
OWNER_NEEDS_FILE = _stat.S_IRUSR | _stat.S_IWUSR
OWNER_NEEDS_DIR = _stat.S_IRWXU


def with_owner_access(task, root_fd, rels, fn):
    """fn() with the objects at rels below root_fd (a directory of the
    sandbox's own storage) and the directories above them opened to their
    owner, as task's host identity, then given their modes back."""
    changed = task.as_host(open_to_owner, root_fd, rels, own=True)
    try:
        return fn()
    finally:
        task.as_host(give_modes_back, root_fd, changed, own=True)


def open_to_owner(root_fd, rels):
    """Each existing object at rels below root_fd, and each directory
    above it, given its owner's bits (OWNER_NEEDS_*) where it lacks them,
    top down (a directory is opened before what is below it is reached):
    [(rel, its mode)] of those changed, to give back."""
    changed = []
    try:
        _open_to_owner(root_fd, rels, changed)
    except OSError:
        give_modes_back(root_fd, changed)
        raise
    return changed


def _open_to_owner(root_fd, rels, changed):
    done = set()
    for rel in rels:
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in done:
                continue
            done.add(prefix)
            try:
                st = hostops.lstat_beneath(root_fd, prefix)
            except OSError:
                break
            if st is None or _stat.S_ISLNK(st.st_mode):
                break
            needs = OWNER_NEEDS_DIR if _stat.S_ISDIR(st.st_mode) else OWNER_NEEDS_FILE
            mode = _stat.S_IMODE(st.st_mode)
            if mode & needs != needs:
                with hostops.DirFd(root_fd, prefix) as h:
                    hostops.fchmod_nofollow(h.fd, h.name, mode | needs)
                changed.append((prefix, mode))


def give_modes_back(root_fd, changed):
    """The modes open_to_owner changed, back, bottom up (an object the call
    removed or renamed has none to get back)."""
    for rel, mode in reversed(changed):
        try:
            with hostops.DirFd(root_fd, rel) as h:
                hostops.fchmod_nofollow(h.fd, h.name, mode)
        except OSError:
            pass
