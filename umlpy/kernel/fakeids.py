"""Emulated credentials: --root with one id (identity.py's "otherwise").

An ordinary user with no subordinate ids (or the Python API run by one)
has a guest of one id: its user namespace maps only 0 to the user, so
setuid(42) fails there as in any one-id namespace, and apt cannot drop to
_apt.  With --root the guest kernel then keeps each guest thread's
credentials itself, as Linux's struct cred holds them: the real,
effective, saved and filesystem uids and gids, the supplementary groups
and the effective, permitted and inheritable capabilities.  They start as
root's (every id 0, groups [0], the namespace's capabilities), a child
inherits its creator's, execve keeps them (the saved ids take the
effective ones and the capabilities are recomputed, as for a program with
no file capabilities: NO_NEW_PRIVS is set, no set-uid bit counts), and
the id calls change them by Linux's rules (kernel/sys.c, kernel/groups.c,
security/commoncap.c), which this module holds; syscalls/ids.py reads the
calls' arguments and writes their results.

What it is: the ids every id call reports and /proc/PID/status shows
(procfs_fs.py), the ids and capabilities the guest VFS checks a thread's
access with (vfs.Task.creds; access(2) its real ids, access_creds), every
object the sandbox's own included (common.host_checks: the host sees
only its one user, who owns them all), and the owner recorded for what
the thread makes (fakeroot.FakeOwnership).  Where the guest kernel let a
thread in and the host refuses its one user by a mode of the sandbox's
own files (root writing its 0444 file, listing its 0000 directory), it
opens them to their host owner for the call (vfs/ownermodes.py, from
common.overriding_modes and the union's own lookups and listings).  What it is not: the host
kernel enforces none of it between guest processes: syscalls/ids.py
refuses a signal to one process or thread as Linux would, but a process
that "is" uid 42 may still signal a process group, or any process by a
pidfd, and what the guest kernel does not decide (a descriptor already
open, memory shared between processes) is the host user's.  A sandbox
with many real ids (root's block, subordinate ids) emulates nothing: the
host kernel does it all.
"""
import os
from errno import EINVAL, EPERM

from ..abi import MASK32
from ..abi.capability import CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, \
    CAP_FSETID, CAP_LINUX_IMMUTABLE, CAP_MAC_OVERRIDE, CAP_MKNOD, CAP_SETGID, CAP_SETPCAP, \
    CAP_SETUID
from ..abi.resource import NGROUPS_MAX
from ..abi.stat import S_ISGID
from . import procfs
from .identity import IDS_INSIDE
from .vfs.creds import Creds

# The capabilities a change of the filesystem uid from 0 takes from the
# effective set (capabilities(7), "Effect of user ID changes")
FS_CAPS = CAP_CHOWN | CAP_DAC_OVERRIDE | CAP_DAC_READ_SEARCH | CAP_FOWNER | CAP_FSETID | \
    CAP_LINUX_IMMUTABLE | CAP_MAC_OVERRIDE | CAP_MKNOD
UNCHANGED = -1                  # (uid_t)-1 as an argument: leave this id as it is


def id_arg(value):
    """A uid_t/gid_t argument: UNCHANGED for (uid_t)-1, else the id."""
    value &= MASK32
    return UNCHANGED if value == MASK32 else value


def valid(ident):
    """An id the guest's ids include (a container's 0..65535)."""
    return 0 <= ident < IDS_INSIDE


class Cred:
    """One thread's credentials.  The set* methods apply Linux's rules and
    return 0 or the errno the call fails with (setfs* return the old id)."""
    __slots__ = ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "groups",
                 "effective", "permitted", "inheritable", "keepcaps")

    def __init__(self, caps=(0, 0, 0)):
        self.uid = self.euid = self.suid = self.fsuid = 0
        self.gid = self.egid = self.sgid = self.fsgid = 0
        self.groups = (0,)
        self.effective, self.permitted, self.inheritable = caps
        self.keepcaps = False           # prctl(PR_SET_KEEPCAPS): SECURE_KEEP_CAPS

    def copy(self):
        new = Cred.__new__(Cred)
        for name in Cred.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def capable(self, cap):
        return bool(self.effective & cap)

    # -- uids ------------------------------------------------------------
    def _fix_setuid(self, old):
        """security/commoncap.c cap_emulate_setxuid, after a set[res]uid."""
        if 0 in (old.uid, old.euid, old.suid) and 0 not in (self.uid, self.euid, self.suid):
            if not self.keepcaps:
                self.permitted = self.effective = 0
        if old.euid == 0 and self.euid != 0:
            self.effective = 0
        if old.euid != 0 and self.euid == 0:
            self.effective = self.permitted

    def setuid(self, uid):
        if not valid(uid):
            return EINVAL
        old = self.copy()
        if self.capable(CAP_SETUID):
            self.uid = self.suid = uid
        elif uid != self.uid and uid != self.suid:
            return EPERM
        self.euid = self.fsuid = uid
        self._fix_setuid(old)
        return 0

    def setreuid(self, ruid, euid):
        if (ruid != UNCHANGED and not valid(ruid)) or (euid != UNCHANGED and not valid(euid)):
            return EINVAL
        old = self.copy()
        privileged = self.capable(CAP_SETUID)
        if ruid != UNCHANGED and ruid not in (old.uid, old.euid) and not privileged:
            return EPERM
        if euid != UNCHANGED and euid not in (old.uid, old.euid, old.suid) and not privileged:
            return EPERM
        if ruid != UNCHANGED:
            self.uid = ruid
        if euid != UNCHANGED:
            self.euid = euid
        if ruid != UNCHANGED or (euid != UNCHANGED and euid != old.uid):
            self.suid = self.euid
        self.fsuid = self.euid
        self._fix_setuid(old)
        return 0

    def setresuid(self, ruid, euid, suid):
        if any(i != UNCHANGED and not valid(i) for i in (ruid, euid, suid)):
            return EINVAL
        if (ruid == UNCHANGED or ruid == self.uid) and \
                (euid == UNCHANGED or (euid == self.euid and euid == self.fsuid)) and \
                (suid == UNCHANGED or suid == self.suid):
            return 0
        ours = (self.uid, self.euid, self.suid)
        if any(i != UNCHANGED and i not in ours for i in (ruid, euid, suid)) and \
                not self.capable(CAP_SETUID):
            return EPERM
        old = self.copy()
        if ruid != UNCHANGED:
            self.uid = ruid
        if euid != UNCHANGED:
            self.euid = euid
        if suid != UNCHANGED:
            self.suid = suid
        self.fsuid = self.euid
        self._fix_setuid(old)
        return 0

    def setfsuid(self, uid):
        """The old fsuid; changed only if uid is one of the thread's ids
        or it holds CAP_SETUID."""
        old_fsuid = self.fsuid
        if valid(uid) and (uid in (self.uid, self.euid, self.suid, self.fsuid) or
                           self.capable(CAP_SETUID)) and uid != old_fsuid:
            self.fsuid = uid
            if old_fsuid == 0:
                self.effective &= ~FS_CAPS
            elif uid == 0:
                self.effective |= self.permitted & FS_CAPS
        return old_fsuid

    # -- gids ------------------------------------------------------------
    def setgid(self, gid):
        if not valid(gid):
            return EINVAL
        if self.capable(CAP_SETGID):
            self.gid = self.sgid = gid
        elif gid != self.gid and gid != self.sgid:
            return EPERM
        self.egid = self.fsgid = gid
        return 0

    def setregid(self, rgid, egid):
        if (rgid != UNCHANGED and not valid(rgid)) or (egid != UNCHANGED and not valid(egid)):
            return EINVAL
        privileged = self.capable(CAP_SETGID)
        old_gid = self.gid
        if rgid != UNCHANGED and rgid not in (self.gid, self.egid) and not privileged:
            return EPERM
        if egid != UNCHANGED and egid not in (self.gid, self.egid, self.sgid) and \
                not privileged:
            return EPERM
        if rgid != UNCHANGED:
            self.gid = rgid
        if egid != UNCHANGED:
            self.egid = egid
        if rgid != UNCHANGED or (egid != UNCHANGED and egid != old_gid):
            self.sgid = self.egid
        self.fsgid = self.egid
        return 0

    def setresgid(self, rgid, egid, sgid):
        if any(i != UNCHANGED and not valid(i) for i in (rgid, egid, sgid)):
            return EINVAL
        if (rgid == UNCHANGED or rgid == self.gid) and \
                (egid == UNCHANGED or (egid == self.egid and egid == self.fsgid)) and \
                (sgid == UNCHANGED or sgid == self.sgid):
            return 0
        ours = (self.gid, self.egid, self.sgid)
        if any(i != UNCHANGED and i not in ours for i in (rgid, egid, sgid)) and \
                not self.capable(CAP_SETGID):
            return EPERM
        if rgid != UNCHANGED:
            self.gid = rgid
        if egid != UNCHANGED:
            self.egid = egid
        if sgid != UNCHANGED:
            self.sgid = sgid
        self.fsgid = self.egid
        return 0

    def setfsgid(self, gid):
        old_fsgid = self.fsgid
        if valid(gid) and (gid in (self.gid, self.egid, self.sgid, self.fsgid) or
                           self.capable(CAP_SETGID)):
            self.fsgid = gid
        return old_fsgid

    def setgroups(self, groups):
        """groups: the new list (its size already checked: may_setgroups)."""
        if any(not valid(g) for g in groups):
            return EINVAL
        self.groups = tuple(sorted(groups))
        return 0

    def may_setgroups(self, size):
        """The errno setgroups(size, ...) fails with before reading the list."""
        if not self.capable(CAP_SETGID):
            return EPERM
        if not 0 <= size <= NGROUPS_MAX:
            return EINVAL
        return 0

    # -- capabilities ----------------------------------------------------
    def capset(self, effective, permitted, inheritable, bounding):
        """security/commoncap.c cap_capset."""
        if not self.capable(CAP_SETPCAP) and \
                inheritable & ~(self.inheritable | self.permitted):
            return EPERM
        if inheritable & ~(self.inheritable | bounding):
            return EPERM
        if permitted & ~self.permitted or effective & ~permitted:
            return EPERM
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable
        return 0

    def exec_done(self, bounding):
        """execve of a program with no file capabilities, under NO_NEW_PRIVS
        (security/commoncap.c cap_bprm_creds_from_file): root keeps its
        permitted set (no more than it had), effective only as euid 0; any
        other user has none; the saved ids take the effective ones."""
        if self.uid == 0 or self.euid == 0:
            self.permitted &= self.inheritable | bounding
            self.effective = self.permitted if self.euid == 0 else 0
        else:
            self.permitted = self.effective = 0
        self.suid = self.fsuid = self.euid
        self.sgid = self.fsgid = self.egid
        self.keepcaps = False



def _caps_of(status, field):
    return int(status.get(field, "0"), 16)


class FakeIds:
    """Every guest thread's Cred, by host tid."""

    def __init__(self, ownership):
        self.ownership = ownership      # fakeroot.FakeOwnership: what stat shows
        self.by_tid = {}
        self._initial = None

    def initial(self, status):
        """Root's credentials, with the capabilities the sandbox's first
        thread had (its namespace's), from its /proc status."""
        if self._initial is None:
            cred = Cred((_caps_of(status, "CapEff"), _caps_of(status, "CapPrm"),
                         _caps_of(status, "CapInh")))
            if not status:
                return cred         # a thread already gone: no capabilities
            self._initial = cred
        return self._initial.copy()

    def of(self, tid):
        """tid's credentials; a thread the guest kernel has not seen made
        yet (its first calls can come before its creator's event) starts
        with its process's or its parent process's."""
        cred = self.by_tid.get(tid)
        if cred is None:
            cred = self.by_tid[tid] = self._inherited(tid)
        return cred

    def _inherited(self, tid):
        status = procfs.status_fields(tid)
        tgid = int(status.get("Tgid", tid))
        groups = [tgid] if tgid != tid else []
        groups.append(int(status.get("PPid", 0)))
        for group in groups:
            known = self.by_tid.get(group)
            if known is None:
                known = next((self.by_tid[t] for t in _threads(group) if t in self.by_tid),
                             None)
            if known is not None:
                return known.copy()
        return self.initial(status)

    def child_created(self, parent, child):
        """parent's fork, vfork or clone made child: a copy of parent's
        (unless child's own calls came first and took it already)."""
        if child not in self.by_tid:
            self.by_tid[child] = self.of(parent).copy()

    def exec_done(self, tid, former_tid):
        cred = self.by_tid.pop(former_tid, None) or self.of(tid)
        self.by_tid[tid] = cred
        bounding = _caps_of(procfs.status_fields(tid), "CapBnd")
        cred.exec_done(bounding)

    def exited(self, tid):
        self.by_tid.pop(tid, None)

    def creds(self, tid, status, idmap):
        """The VFS's view of tid (vfs.Task.creds)."""
        return EmulatedCreds(self.of(tid), int(status.get("Umask", "0022"), 8), idmap,
                             self.ownership)

    def access_creds(self, tid, status, idmap):
        """What access(2) and faccessat without AT_EACCESS check tid with
        (fs/open.c access_override_creds): its real uid and gid as the
        filesystem ids, root's permitted capabilities for real uid 0 and
        none for any other."""
        cred = self.of(tid).copy()
        cred.fsuid, cred.fsgid = cred.uid, cred.gid
        cred.effective = cred.permitted if cred.uid == 0 else 0
        return self.creds_of(cred, status, idmap)

    def creds_of(self, cred, status, idmap):
        return EmulatedCreds(cred, int(status.get("Umask", "0022"), 8), idmap, self.ownership)

    def record_created(self, attr, tid, parent_attr):
        """tid made the object attr describes in the directory parent_attr
        describes: it is tid's fsuid's, and its fsgid's or, in a set-group-id
        directory, the directory's group's (what an earlier object of
        that inode had set is gone)."""
        cred = self.of(tid)
        parent = self.ownership.apply(parent_attr)
        gid = parent.gid if parent.mode & S_ISGID else cred.fsgid
        self.ownership.created(attr, cred.fsuid, gid)


def _threads(tgid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{tgid}/task")]
    except (OSError, ValueError):
        return []


class EmulatedCreds(Creds):
    """Creds of an emulated thread: its fsuid, fsgid, groups and effective
    capabilities; objects seen with the ownership fake root recorded; every
    id of the guest's is one its capabilities count for (only an owner the
    host's namespace does not map, shown as the overflow id, is no one's).
    The guest kernel checks such a thread's access to every object itself,
    the sandbox's own included, root's too (the host sees only its one
    user, who owns them all: common.host_checks)."""
    __slots__ = ("ownership",)

    def __init__(self, cred, umask, idmap, ownership):
        super().__init__(cred.fsuid, cred.fsgid, frozenset(cred.groups), cred.effective,
                         idmap, umask)
        self.ownership = ownership

    def _seen(self, attr):
        return self.ownership.apply(attr)

    def capable_wrt(self, cap, attr):
        return bool(self.caps & cap) and not self._seen(attr).unmapped

    def is_owner(self, attr):
        return super().is_owner(self._seen(attr))

    def permission(self, attr, want):
        return super().permission(self._seen(attr), want)

    def may_delete(self, dir_attr, victim_attr):
        return super().may_delete(self._seen(dir_attr), self._seen(victim_attr))
