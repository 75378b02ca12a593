"""Who a guest thread is, in the guest's terms, and the permission checks
the guest VFS makes for objects the host cannot check itself (image files,
copy-up, deletions that leave whiteouts)."""
import errno

from ...abi.capability import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
from ...abi.fcntl import R_OK, W_OK, X_OK
from ...abi.resource import OVERFLOW_GID, OVERFLOW_UID
from ...abi.stat import S_ISVTX, S_IXUGO
from .attr import Attr


class IdMap:
    """The guest's user namespace map: one inside id to one outside id
    (or the identity, when the guest shares the host's ids)."""

    def __init__(self, uid_inside=None, uid_outside=None, gid_inside=None,
                 gid_outside=None):
        self.uid_inside, self.uid_outside = uid_inside, uid_outside
        self.gid_inside, self.gid_outside = gid_inside, gid_outside

    @property
    def identity(self):
        return self.uid_inside is None

    def uid_in(self, host_uid):
        if self.identity:
            return host_uid
        return self.uid_inside if host_uid == self.uid_outside else OVERFLOW_UID

    def gid_in(self, host_gid):
        if self.identity:
            return host_gid
        return self.gid_inside if host_gid == self.gid_outside else OVERFLOW_GID

    def attr_of(self, st):
        """A host os.stat_result as the guest sees it: ids through the map."""
        return Attr.from_host(st, self.uid_in(st.st_uid), self.gid_in(st.st_gid))

    def uid_out(self, uid):
        """The host uid for a guest uid, or None if the namespace has none."""
        if self.identity:
            return uid
        return self.uid_outside if uid == self.uid_inside else None

    def gid_out(self, gid):
        if self.identity:
            return gid
        return self.gid_outside if gid == self.gid_inside else None

    def uid_mapped(self, uid):
        return self.identity or uid == self.uid_inside

    def gid_mapped(self, gid):
        return self.identity or gid == self.gid_inside


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
        return bool(self.caps & cap) and self.idmap.uid_mapped(attr.uid) \
            and self.idmap.gid_mapped(attr.gid)

    def in_group(self, gid):
        return gid == self.fsgid or gid in self.groups

    def permission(self, attr, want):
        """0 if the guest may access attr's object with want (R/W/X bits),
        else EACCES."""
        mode = attr.mode
        if self.fsuid == attr.uid:
            bits = (mode >> 6) & 7
        elif self.in_group(attr.gid):
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
        return errno.EACCES

    def owns(self, attr):
        return self.fsuid == attr.uid or self.capable_wrt(CAP_FOWNER, attr)

    def may_delete(self, dir_attr, victim_attr):
        """Write and search on the directory, and the sticky bit's rule."""
        err = self.permission(dir_attr, W_OK | X_OK)
        if err:
            return err
        if dir_attr.mode & S_ISVTX and self.fsuid not in (dir_attr.uid, victim_attr.uid) \
                and not self.capable_wrt(CAP_FOWNER, victim_attr):
            return errno.EPERM
        return 0
