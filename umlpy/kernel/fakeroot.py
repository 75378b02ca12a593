"""Fake root ownership (`umlpy run --root`), as PRoot -0 gives it.

The guest sees uid and gid 0 (its user namespace maps them to the invoking
user), so its own files look like root's.  A chown or chmod the host
refuses (another owner, ids outside the namespace) succeeds as the guest
sees it: the guest kernel records the new owner or mode, keyed by the
file's (st_dev, st_ino), and the VFS's stat reports it back.  Nothing
changes on the host.
"""
import errno


class FakeOwnership:
    def __init__(self):
        self.records = {}           # (dev, ino) -> {"uid": .., "gid": .., "mode": ..}

    def chown_result(self, attr, uid, gid, result):
        """The result the guest sees for a chown the host answered with result."""
        if result not in (0, -errno.EPERM, -errno.EINVAL):
            return None
        entry = self.records.setdefault((attr.dev, attr.ino), {})
        if uid != -1:
            entry["uid"] = uid
        if gid != -1:
            entry["gid"] = gid
        return 0

    def created(self, attr, uid, gid):
        """A guest thread of emulated ids (fakeids.py) made attr's object,
        as uid and gid: recorded unless they are the ids the host shows;
        a record of an earlier object of that inode goes."""
        self.records.pop((attr.dev, attr.ino), None)
        if (uid, gid) != (attr.uid, attr.gid):
            self.records[attr.dev, attr.ino] = {"uid": uid, "gid": gid}

    def chmod_result(self, attr, mode, result):
        key = (attr.dev, attr.ino)
        if result == 0:
            self.records.get(key, {}).pop("mode", None)
            return None
        if result == -errno.EPERM:
            self.records.setdefault(key, {})["mode"] = mode & 0o7777
            return 0
        return None

    def apply(self, attr):
        entry = self.records.get((attr.dev, attr.ino))
        if not entry:
            return attr
        changes = {}
        if "uid" in entry:
            changes["uid"] = entry["uid"]
        if "gid" in entry:
            changes["gid"] = entry["gid"]
        if "mode" in entry:
            changes["mode"] = (attr.mode & ~0o7777) | entry["mode"]
        return attr.copy(**changes)
