"""Exec plans the guest kernel reuses: a shell loop runs the same few
programs hundreds of times, and each plan (binfmt.plan_exec) costs two
lookups, a permission check and a read of the program's first page.

A plan is kept by the rule the native path cache keeps an answer by
(fastpath.py): every lookup it rests on walked only directories anyone may
search, in the root filesystem's lower layer, to a lower-only object, from
the real root.  Then only the guest kernel's own changes (which clear the
plans with the path cache) or the host's changes to its tree can make it
wrong.  For the host's, a plan expires after fastpath.TTL_MS like a cache
entry, and each file it names is checked with one lstat before it is
used: a program replaced on the host is planned again at once.

The key holds the caller's guest credentials and host identity: the
permission check and the read of the first page are theirs."""
import os
import time

from ..abi.fcntl import AT_FDCWD
from .fastpath import TTL_MS, answer_is_shared
from .vfs.binfmt import plan_exec

MAX_PLANS = 256


def _signature(st):
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns)


class ExecPlans:
    def __init__(self):
        self._plans = {}        # key -> (plan, ((host path, signature), ...), expiry)
        self.hits = 0

    def clear(self):
        self._plans.clear()

    def plan(self, vfs, task, dirfd, path, follow=True):
        """plan_exec(vfs, task, dirfd, path, follow), from a kept plan
        when one still holds."""
        if task.ctx.root != "/" or not path or vfs.mounts.root.noexec:
            return plan_exec(vfs, task, dirfd, path, follow)
        if path.startswith("/"):
            where = None
        elif dirfd == AT_FDCWD:
            where = task.cwd
        else:
            return plan_exec(vfs, task, dirfd, path, follow)
        creds = task.creds
        key = (where, path, follow, creds.fsuid, creds.fsgid, creds.groups, creds.caps,
               task.host_identity.creds)
        kept = self._plans.get(key)
        if kept is not None:
            plan, files, expiry = kept
            if time.monotonic() < expiry and _unchanged(files):
                self.hits += 1
                return plan
            del self._plans[key]
        seen = []
        plan = plan_exec(vfs, task, dirfd, path, follow, seen=seen)
        files = _files_of(task, seen)
        if files is not None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = (plan, files, time.monotonic() + TTL_MS / 1000)
        return plan


def _files_of(task, seen):
    """(host path, signature) of every object the lookups found, or None
    if one of them may not be replayed to a later caller."""
    if not task.fast_ok:
        return None
    files = []
    for res in seen:
        d = res.dentry
        if d is None or not answer_is_shared(task, res):
            return None
        host = d.fs.host_path(d)
        try:
            files.append((host, _signature(os.lstat(host))))
        except OSError:
            return None
    return tuple(files)


def _unchanged(files):
    for host, signature in files:
        try:
            if _signature(os.lstat(host)) != signature:
                return False
        except OSError:
            return False
    return True
