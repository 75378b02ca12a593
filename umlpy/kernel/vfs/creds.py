"""Who a guest thread is, in the guest's terms, and the permission checks
the guest VFS makes for objects the host cannot check itself (image files,
copy-up, deletions that leave whiteouts)."""
import errno

from ...abi.capability import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
from ...abi.fcntl import R_OK, W_OK, X_OK
from ...abi.resource import OVERFLOW_GID, OVERFLOW_UID
from ...abi.stat import S_ISVTX, S_IXUGO
from .attr import UNMAPPED_GID, UNMAPPED_UID, Attr


def _up(ranges, outside_id, overflow):
    for inside, outside, count in ranges:
        if 0 <= outside_id - outside < count:
            return inside + outside_id - outside
    return overflow


def _down(ranges, inside_id):
    for inside, outside, count in ranges:
        if 0 <= inside_id - inside < count:
            return outside + inside_id - inside
    return None


class IdMap:
    """The guest's user namespace map, as /proc/PID/uid_map and gid_map
    hold it: (inside, outside, count) ranges (or the identity, when the
    guest shares the host's ids).  A host id no range covers shows as the
    overflow id, as Linux shows it."""

    def __init__(self, uid_inside=None, uid_outside=None, gid_inside=None,
                 gid_outside=None, uid_ranges=None, gid_ranges=None):
        if uid_ranges is None and uid_inside is not None:
            uid_ranges = [(uid_inside, uid_outside, 1)]
        if gid_ranges is None and gid_inside is not None:
            gid_ranges = [(gid_inside, gid_outside, 1)]
        self.uid_ranges = tuple(map(tuple, uid_ranges)) if uid_ranges is not None else None
        self.gid_ranges = tuple(map(tuple, gid_ranges)) if gid_ranges is not None else None

    @property
    def identity(self):
        return self.uid_ranges is None

    def block(self):
        """(first host id, count) when the guest's ids are one block (0..N-1
        to first..first+N-1), else None."""
        if self.identity or len(self.uid_ranges) != 1 or self.uid_ranges != self.gid_ranges:
            return None
        inside, first, count = self.uid_ranges[0]
        return (first, count) if inside == 0 and count > 1 else None

    @property
    def many(self):
        """More than one id of each kind: the guest may change ids."""
        return not self.identity and sum(r[2] for r in self.uid_ranges) > 1

    def uid_in(self, host_uid):
        if self.identity:
            return host_uid
        return _up(self.uid_ranges, host_uid, OVERFLOW_UID)

    def gid_in(self, host_gid):
        if self.identity:
            return host_gid
        return _up(self.gid_ranges, host_gid, OVERFLOW_GID)

    def attr_of(self, st):
        """A host os.stat_result as the guest sees it: ids through the map."""
        attr = Attr.from_host(st, self.uid_in(st.st_uid), self.gid_in(st.st_gid))
        if not self.identity:
            attr.unmapped = \
                (UNMAPPED_UID if _up(self.uid_ranges, st.st_uid, None) is None else 0) | \
                (UNMAPPED_GID if _up(self.gid_ranges, st.st_gid, None) is None else 0)
        return attr

    def uid_out(self, uid):
        """The host uid for a guest uid, or None if the namespace has none."""
        if self.identity:
            return uid
        return _down(self.uid_ranges, uid)

    def gid_out(self, gid):
        if self.identity:
            return gid
        return _down(self.gid_ranges, gid)

    def uid_mapped(self, uid):
        return self.identity or _down(self.uid_ranges, uid) is not None

    def gid_mapped(self, gid):
        return self.identity or _down(self.gid_ranges, gid) is not None


class Creds:
    """A thread's filesystem credentials, inside terms."""
    __slots__ = ("fsuid", "fsgid", "groups", "caps", "idmap", "umask")

    def __init__(self, fsuid, fsgid, groups, caps, idmap, umask=0o022):
        self.fsuid, self.fsgid, self.groups = fsuid, fsgid, groups
        self.caps, self.idmap, self.umask = caps, idmap, umask

    @classmethod
    def from_status(cls, f, idmap):
        """From /proc/TID/status fields (procfs.status_fields)."""
        fsuid = idmap.uid_in(int(f["Uid"].split()[3]))
        fsgid = idmap.gid_in(int(f["Gid"].split()[3]))
        groups = frozenset(idmap.gid_in(int(g)) for g in f.get("Groups", "").split())
        caps = int(f.get("CapEff", "0"), 16)
        umask = int(f.get("Umask", "0022"), 8)
        return cls(fsuid, fsgid, groups, caps, idmap, umask)

    def capable_wrt(self, cap, attr):
        """A capability counts only for files whose owner the guest's
        namespace maps (as Linux's capable_wrt_inode_uidgid)."""
        return bool(self.caps & cap) and not attr.unmapped and \
            self.idmap.uid_mapped(attr.uid) and self.idmap.gid_mapped(attr.gid)

    def capable_of_copy(self, cap, attr):
        """capable_wrt, where a host object of the lower layer counts as
        the sandbox's own copy of it, which a change makes: guest root
        owns its copy-on-write world.  What it may read stays what its
        host identity may read (the copy is read as that identity)."""
        return self.capable_wrt(cap, attr) or (attr.cow and bool(self.caps & cap))

    def in_group(self, gid):
        return gid == self.fsgid or gid in self.groups

    def is_owner(self, attr):
        """The caller is attr's owner (an unmapped host owner is no one
        inside, even when it shows as an id the caller has)."""
        return self.fsuid == attr.uid and not attr.unmapped & UNMAPPED_UID

    def permission(self, attr, want):
        """0 if the guest may access attr's object with want (R/W/X bits),
        else EACCES."""
        mode = attr.mode
        if self.is_owner(attr):
            bits = (mode >> 6) & 7
        elif self.in_group(attr.gid) and not attr.unmapped & UNMAPPED_GID:
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        if want & ~bits == 0:
            return 0
        if self.capable_wrt(CAP_DAC_OVERRIDE, attr):
            # root may read and write anything, search any directory, but
            # execute only what someone may execute
            if not want & X_OK or attr.is_dir() or mode & S_IXUGO:
                return 0
        if self.capable_wrt(CAP_DAC_READ_SEARCH, attr):
            if want == R_OK or (attr.is_dir() and want & W_OK == 0):
                return 0
        if want & ~bits == W_OK and self.capable_of_copy(CAP_DAC_OVERRIDE, attr):
            return 0        # writing a lower object: its copy is root's
        return errno.EACCES

    def owns(self, attr):
        return self.is_owner(attr) or self.capable_of_copy(CAP_FOWNER, attr)

    def may_delete(self, dir_attr, victim_attr):
        """Write and search on the directory, and the sticky bit's rule."""
        err = self.permission(dir_attr, W_OK | X_OK)
        if err:
            return err
        if dir_attr.mode & S_ISVTX and not self.is_owner(dir_attr) \
                and not self.is_owner(victim_attr) \
                and not self.capable_of_copy(CAP_FOWNER, victim_attr):
            return errno.EPERM
        return 0
