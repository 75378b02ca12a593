"""Fake root ownership (`umlpy run --root`), as PRoot -0 gives it.

The guest sees uid and gid 0 (its user namespace maps them to the invoking
user), so its own files look like root's.  A chown or chmod the host
refuses (another owner, ids outside the namespace) succeeds as the guest
sees it: the guest kernel records the new owner or mode, keyed by the
file's (st_dev, st_ino), and the stat family reports it back.  Nothing
changes on the host.
"""
import errno
import os

from .decisions import AllowThen

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000

# struct stat (x86_64) and struct statx field offsets
STAT_DEV, STAT_INO, STAT_MODE, STAT_UID, STAT_GID = 0, 8, 24, 28, 32
STATX_UID, STATX_GID, STATX_MODE, STATX_INO = 20, 24, 28, 32
STATX_DEV_MAJOR, STATX_DEV_MINOR = 136, 140


def s32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def host_path(tid, dirfd, path):
    """The tracer's name for a path as guest thread tid resolves it."""
    if path.startswith(b"/"):
        return f"/proc/{tid}/root".encode() + path
    base = f"/proc/{tid}/cwd" if dirfd == AT_FDCWD else f"/proc/{tid}/fd/{dirfd}"
    return base.encode() + (b"/" + path if path else b"")


class FakeOwnership:
    def __init__(self):
        self.records = {}           # (dev, ino) -> {"uid": .., "gid": .., "mode": ..}

    def install(self, kernel):
        for name in ("chown", "lchown", "fchown", "fchownat"):
            kernel.hook(name)(self.on_chown)
        for name in ("chmod", "fchmod", "fchmodat", "fchmodat2"):
            kernel.hook(name)(self.on_chmod)
        for name in ("stat", "lstat", "fstat", "newfstatat"):
            kernel.hook(name)(lambda call: AllowThen(self.patch_stat))
        kernel.hook("statx")(lambda call: AllowThen(self.patch_statx))

    # which file a call names ------------------------------------------
    def _target(self, call):
        a, name = call.args, call.name
        follow = True
        if name in ("fchown", "fchmod"):
            where = f"/proc/{call.tid}/fd/{s32(a[0])}".encode()
        elif name in ("fchownat", "fchmodat", "fchmodat2"):
            path = call.read_str(a[1])
            flags = a[4] if name == "fchownat" else (a[3] if name == "fchmodat2" else 0)
            follow = not flags & AT_SYMLINK_NOFOLLOW
            if not path and flags & AT_EMPTY_PATH:
                where = f"/proc/{call.tid}/fd/{s32(a[0])}".encode()
            else:
                where = host_path(call.tid, s32(a[0]), path)
        else:
            where = host_path(call.tid, AT_FDCWD, call.read_str(a[0]))
            follow = name != "lchown"
        try:
            st = os.stat(where, follow_symlinks=follow)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _ids(self, call):
        a = call.args
        if call.name == "fchownat":
            return s32(a[2]), s32(a[3])
        return s32(a[1]), s32(a[2])

    # handlers -----------------------------------------------------------
    def on_chown(self, call):
        key = self._target(call)
        uid, gid = self._ids(call)

        def record(call, result):
            if key is None or result not in (0, -errno.EPERM, -errno.EINVAL):
                return None
            entry = self.records.setdefault(key, {})
            if uid != -1:
                entry["uid"] = uid
            if gid != -1:
                entry["gid"] = gid
            return 0
        return AllowThen(record)

    def on_chmod(self, call):
        key = self._target(call)
        mode = call.args[1] if call.name == "fchmod" or call.name == "chmod" else call.args[2]
        mode &= 0o7777

        def record(call, result):
            if key is None:
                return None
            if result == 0:
                self.records.get(key, {}).pop("mode", None)
                return None
            if result == -errno.EPERM:
                self.records.setdefault(key, {})["mode"] = mode
                return 0
            return None
        return AllowThen(record)

    def _buffer_arg(self, call):
        return {"stat": 1, "lstat": 1, "fstat": 1, "newfstatat": 2}[call.name]

    def patch_stat(self, call, result):
        if result != 0 or not self.records:
            return None
        buf = call.args[self._buffer_arg(call)]
        head = call.read(buf, 36)
        key = (int.from_bytes(head[STAT_DEV:STAT_DEV + 8], "little"),
               int.from_bytes(head[STAT_INO:STAT_INO + 8], "little"))
        self._patch(call, key, buf + STAT_UID, buf + STAT_GID, buf + STAT_MODE, head[24:28], 4)
        return None

    def patch_statx(self, call, result):
        if result != 0 or not self.records:
            return None
        buf = call.args[4]
        data = call.read(buf, 144)
        dev = os.makedev(int.from_bytes(data[136:140], "little"),
                         int.from_bytes(data[140:144], "little"))
        key = (dev, int.from_bytes(data[STATX_INO:STATX_INO + 8], "little"))
        self._patch(call, key, buf + STATX_UID, buf + STATX_GID, buf + STATX_MODE,
                    data[28:30], 2)
        return None

    def _patch(self, call, key, uid_at, gid_at, mode_at, mode_bytes, mode_size):
        entry = self.records.get(key)
        if not entry:
            return
        if "uid" in entry:
            call.write(uid_at, (entry["uid"] & 0xFFFFFFFF).to_bytes(4, "little"))
        if "gid" in entry:
            call.write(gid_at, (entry["gid"] & 0xFFFFFFFF).to_bytes(4, "little"))
        if "mode" in entry:
            old = int.from_bytes(mode_bytes, "little")
            new = (old & ~0o7777) | entry["mode"]
            call.write(mode_at, new.to_bytes(mode_size, "little"))
