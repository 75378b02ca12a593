"""The guest's mount table: which filesystem answers below which guest
path.  The resolver crosses into a mount when it reaches its mountpoint."""
import errno


class Mount:
    """noexec: Linux's MS_NOEXEC (its files are not executed: execve,
    a #! interpreter and an ELF loader on it fail with EACCES; mapping
    them executable fails, binfmt.py and syscalls/memory.py).
    noexec_locked: the sandbox's owner made it so (an option); the guest
    may not remount it exec (EPERM), as Linux locks the flags of mounts a
    more privileged namespace made (MNT_LOCK_NOEXEC)."""
    __slots__ = ("id", "path", "fs", "read_only", "parent_id", "options", "noexec",
                 "noexec_locked")

    def __init__(self, mount_id, path, fs, read_only, parent_id, options="", noexec=False,
                 noexec_locked=False):
        self.id, self.path, self.fs = mount_id, path, fs
        self.read_only = read_only or fs.read_only
        self.parent_id, self.options = parent_id, options
        self.noexec = noexec or noexec_locked
        self.noexec_locked = noexec_locked

    def flags_word(self):
        """What /proc/PID/mounts and mountinfo show of its flags."""
        return ("ro" if self.read_only else "rw") + (",noexec" if self.noexec else "")

    def __repr__(self):
        return (f"<Mount {self.id} {self.path} {self.fs.fstype}"
                f"{' ro' if self.read_only else ''}{' noexec' if self.noexec else ''}>")


class MountTable:
    def __init__(self, root_fs):
        self._next_id = 20
        self.by_path = {}
        self._specific = None
        self.root = self.add("/", root_fs)

    def add(self, path, fs, read_only=False, options="", noexec=False, noexec_locked=False):
        if path in self.by_path:
            raise OSError(errno.EBUSY, f"{path} is already a mountpoint")
        parent = self.covering(path)
        m = Mount(self._next_id, path, fs, read_only, parent.id if parent else self._next_id,
                  options, noexec, noexec_locked)
        self._next_id += 1
        self.by_path[path] = m
        self._specific = None
        return m

    def remove(self, path):
        if path == "/" or path not in self.by_path:
            raise OSError(errno.EINVAL, "not a mountpoint")
        prefix = path.rstrip("/") + "/"
        if any(p.startswith(prefix) for p in self.by_path):
            raise OSError(errno.EBUSY, "mounts below")
        del self.by_path[path]
        self._specific = None

    def covering(self, path):
        """The mount a guest path (canonical) lies in."""
        while True:
            m = self.by_path.get(path)
            if m is not None:
                return m
            if path == "/" or not path:
                return None
            path = path.rpartition("/")[0] or "/"

    def mounted_names(self, dir_path):
        """Names of mountpoints directly inside dir_path (so a listing shows
        /proc even when the image has no such directory)."""
        prefix = "/" if dir_path == "/" else dir_path + "/"
        return [p[len(prefix):] for p in self.by_path
                if p != dir_path and p.startswith(prefix) and "/" not in p[len(prefix):]]

    def any_noexec(self):
        return any(m.noexec for m in self.by_path.values())

    def showing_host(self, host_path):
        """The mount a host object belongs to as the guest sees it: the
        most deeply nested one whose filesystem shows host_path (what
        /proc/PID/fd names the object by, VFS.guest_path_of_host), or
        None."""
        for m in self.by_specificity():
            try:
                if m.fs.reverse(host_path) is not None:
                    return m
            except OSError:
                continue
        return None

    def by_specificity(self):
        """Mounts, most deeply nested first (for host path → guest path)."""
        if self._specific is None:
            self._specific = sorted(self.by_path.values(), key=lambda m: -len(m.path))
        return self._specific

    def __iter__(self):
        return iter(sorted(self.by_path.values(), key=lambda m: m.id))
