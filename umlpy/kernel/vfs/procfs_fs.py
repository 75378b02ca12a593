"""/proc as the guest sees it: the procfs of the guest's own pid namespace
(guest pids only), with what would show the host answered by the guest
kernel: self and thread-self, the magic links (exe, cwd, root, fd/N) in
guest paths, the mount table, meminfo, uptime, filesystems, hostname."""
import errno
import os
import stat as _stat
import time

from .attr import Attr
from .fs import Dentry, FileSystem
from .synth import SYNTH_DEV

MAGIC = ("exe", "cwd", "root")
# Dentry flag: a namespace link followed (its namespace, not the link)
NS_OBJECT = 1

# The files of a process's directory a guest may write: the guest's /proc
# is read-only but for these, which programs adjust (every service
# manager, browser and database sets its oom_score_adj; unshare --time
# writes timens_offsets).  The write is the host procfs's, made by the
# guest on the host file, so Linux's own rules apply: oom_score_adj may be
# raised (the host value really changes) and lowered no further than the
# least a privileged process set (EACCES, as for any unprivileged user;
# the guest has no CAP_SYS_RESOURCE in the host's user namespace);
# timens_offsets only for a time namespace the guest made itself and no
# process has entered yet (unshare(CLONE_NEWTIME)), else EACCES; the
# sandbox's own time namespace is the host's, over which the guest has
# no CAP_SYS_TIME: opened, and the write refused (EPERM).  Not
# /proc at large: /proc/PID/mem, for one, writes any page of a guest
# process, the guest kernel's scratch memory included.
WRITABLE = ("oom_score_adj", "oom_adj", "timens_offsets")
FILE_MOUNTS = 256


# a process's memory, as files (what ptrace access guards on Linux)
MEMORY_FILES = ("mem", "pagemap", "map_files")

# files listing mappings with the path of each mapped file
PATH_LISTS = ("maps", "smaps", "numa_maps")


class ProcFS(FileSystem):
    fstype = "proc"
    source = "proc"
    host_backed = True

    def __init__(self, vfs, idmap, spool, guest_tid, host_tid, proc_root,
                 hostname=None, system=None):
        """proc_root: the tracer's path to the guest's procfs (a callable,
        it exists only once the guest started).  guest_tid/host_tid map
        thread ids.  spool: a SynthFS whose spool makes produced files.
        system: the machine as the sandbox shows it (sysview.SystemView:
        meminfo, uptime), None for the host's meminfo and an uptime from now."""
        self.vfs, self.idmap, self.spool = vfs, idmap, spool
        self.guest_tid, self.host_tid = guest_tid, host_tid
        self._proc_root = proc_root
        self.hostname = hostname
        self.system = system
        self.started = time.monotonic()
        self._produced = {}          # spool host path -> rel
        # guest pids whose memory no guest may open (a named sandbox's
        # init: its supervisor's channel passes through it)
        self.protected_pids = set()
        self._file_mounts = {}       # guest path -> rel of WRITABLE files mounted
        self.produce = {
            "mounts": self._mounts, "self/mounts": self._mounts,
            "mountinfo": self._mountinfo, "meminfo": self._meminfo,
            "uptime": self._uptime, "filesystems": self._filesystems,
            "sys/kernel/hostname": self._hostname,
            # keyctl is refused in the sandbox: a guest has no keys, and
            # what these list depends on who opened them (the guest kernel
            # opens what a guest opens)
            "keys": lambda: b"", "key-users": lambda: b"",
        }

    # the tracer's way in -------------------------------------------------
    @property
    def proc_root(self):
        return self._proc_root()

    def _tracer_path(self, rel):
        return f"{self.proc_root}/{rel}" if rel else self.proc_root

    def _split(self, rel):
        """(pid dir, rest) for 'N/...' paths; N may be 'task/T' nested."""
        head, _, rest = rel.partition("/")
        return head, rest

    def _stat(self, rel):
        st = os.stat(self._tracer_path(rel), follow_symlinks=False)
        return self.idmap.attr_of(st)

    def root(self):
        return Dentry(self, "", self._stat(""))

    def _produced_kind(self, rel):
        head, rest = self._split(rel)
        if rel in self.produce:
            return rel
        if head.isdigit() and rest in ("mounts", "mountinfo"):
            return rest
        if head.isdigit() and rest.rpartition("/")[2] in PATH_LISTS:
            return "paths:" + rel
        if self.vfs.fake_ids is not None and head.isdigit() and \
                (rest == "status" or rest.startswith("task/") and rest.endswith("/status")
                 and rest.count("/") == 2):
            return "status:" + rel
        return None

    def _with_guest_paths(self, rel):
        """A maps-style file with the host paths of mapped files shown as the
        guest's (an object the guest cannot name shows as [umlpy])."""
        with open(self._tracer_path(rel), "rb") as f:
            data = f.read().decode("utf-8", "surrogateescape")
        out = []
        for line in data.splitlines(keepends=True):
            cut = line.find(" /")
            if cut >= 0 and line[0] in "0123456789abcdef":
                path = line[cut + 1:].rstrip("\n")
                deleted = path.endswith(" (deleted)")
                if deleted:
                    path = path[:-len(" (deleted)")]
                guest = self.vfs.guest_path_of_host(path) or "[umlpy]"
                line = line[:cut + 1] + guest + (" (deleted)" if deleted else "") + "\n"
            out.append(line)
        return "".join(out).encode("utf-8", "surrogateescape")

    def lookup(self, parent, name):
        rel = parent.child_rel(name)
        if rel == "self":
            return Dentry(self, rel, Attr(_stat.S_IFLNK | 0o777, 1, SYNTH_DEV, 1))
        if rel == "thread-self":
            return Dentry(self, rel, Attr(_stat.S_IFLNK | 0o777, 2, SYNTH_DEV, 1))
        try:
            attr = self._stat(rel)
        except OSError:
            return None
        if self._produced_kind(rel):
            attr = attr.copy(size=0)
        if name in WRITABLE and self._in_process_dir(rel):
            self._writable_file(rel, name)
        return Dentry(self, rel, attr)

    @staticmethod
    def _in_process_dir(rel):
        parts = rel.split("/")
        return parts[0].isdigit() and (len(parts) == 2 or len(parts) == 4 and
                                       parts[1] == "task" and parts[2].isdigit())

    def _writable_file(self, rel, name):
        """The file mounted over itself, writable (ProcFile): the resolver
        enters that mount right after this lookup, so a write-open passes
        the read-only /proc mount's EROFS and opens the host file, and the
        host kernel decides each write as Linux does (timens_offsets:
        refused at the write, not at the open, unless its process made a
        time namespace for its children no process entered yet)."""
        path = "/proc/" + rel
        mounts = self.vfs.mounts
        if path not in mounts.by_path:
            self._prune_file_mounts()
            mounts.add(path, ProcFile(self, rel))
            self._file_mounts[path] = rel

    def _prune_file_mounts(self):
        """A guest may look up these files of ever new threads: past
        FILE_MOUNTS of them, those of processes gone are dropped, then the
        oldest (a lookup mounts it again), so the mount table stays small."""
        if len(self._file_mounts) < FILE_MOUNTS:
            return
        for path, rel in list(self._file_mounts.items()):
            if not os.path.exists(self._tracer_path(rel)) or \
                    len(self._file_mounts) >= FILE_MOUNTS:
                self.vfs.mounts.remove(path)
                del self._file_mounts[path]
            if len(self._file_mounts) < FILE_MOUNTS // 2:
                break

    def _guest_self(self):
        task = self.vfs.current
        return self.guest_tid(task.tgid), self.guest_tid(task.tid)

    def readlink(self, dentry):
        rel = dentry.rel
        if rel == "self":
            return str(self._guest_self()[0])
        if rel == "thread-self":
            tgid, tid = self._guest_self()
            return f"{tgid}/task/{tid}"
        parts = rel.split("/")
        if not parts[0].isdigit():
            return os.readlink(self._tracer_path(rel))
        if len(parts) >= 4 and parts[1] == "task":
            parts = [parts[2]] + parts[3:]
        host = self._host_pid(parts[0])
        if host is None:
            raise OSError(errno.ENOENT, rel)
        if len(parts) == 2 and parts[1] in MAGIC:
            tgid = self.vfs.tgid_of(host)
            if parts[1] == "exe":
                exe = self.vfs.exe.get(tgid)
                if exe is None:
                    link = os.readlink(f"/proc/{host}/exe")
                    exe = self.vfs.guest_path_of_host(link.removesuffix(" (deleted)")) or "/"
                return exe
            ctx = self.vfs.context(tgid)
            if parts[1] == "root":
                return ctx.root
            return ctx.cwd + (" (deleted)" if ctx.gone else "")
        if len(parts) == 3 and parts[1] == "fd" and parts[2].isdigit():
            return self.vfs.fd_link_text(host, int(parts[2]))
        link = os.readlink(self._tracer_path(rel))
        if len(parts) == 3 and parts[1] == "map_files" and link.startswith("/"):
            deleted = link.endswith(" (deleted)")
            guest = self.vfs.guest_path_of_host(link.removesuffix(" (deleted)")) or "/"
            return guest + (" (deleted)" if deleted else "")
        return link

    def _host_pid(self, text):
        if not text.isdigit():
            return None
        return self.host_tid(int(text))

    def follow_magic(self, vfs, task, dentry):
        """Follow exe/cwd/root/fd/N to the object itself, as Linux does
        (not by re-reading the text)."""
        parts = dentry.rel.split("/")
        if len(parts) >= 4 and parts[1] == "task":
            parts = [parts[2]] + parts[3:]
        if len(parts) == 3 and parts[1] == "ns":
            return self._follow_ns(vfs, dentry)
        is_fd = len(parts) == 3 and parts[1] == "fd"
        if not ((len(parts) == 2 and parts[1] in MAGIC) or is_fd):
            return None
        host = self._host_pid(parts[0])
        if host is None:
            raise OSError(errno.ENOENT, dentry.rel)
        if is_fd:
            path = vfs.fd_path(host, int(parts[2]))
            if path is None:
                # a pipe, a socket...: the procfs link itself reopens it
                return [vfs.resolver.root_frames("/")[0]], dentry, "/proc/" + dentry.rel, \
                    vfs.mounts.by_path.get("/proc")
        else:
            path = self.readlink(dentry)
        root = vfs.resolver.root_frames("/")
        res = vfs.resolver.walk(root, root, path, follow_last=False)
        if res.dentry is None:
            raise OSError(errno.ENOENT, path)
        return res.parents, res.dentry, res.path, res.mount

    def _follow_ns(self, vfs, dentry):
        """A namespace link (ns/pid, ns/net, ...) leads to the namespace
        itself, an nsfs inode no path names: the link stands for it, with
        the namespace's own attributes (what stat shows, whose inode number
        readlink gives), and opening it opens the namespace (through the
        guest's opener, which follows the link in the guest's procfs).
        These are the sandbox's own namespaces, as the guest's procfs has
        them."""
        try:
            st = os.stat(self._tracer_path(dentry.rel))
        except OSError:
            raise OSError(errno.ENOENT, dentry.rel) from None
        target = Dentry(self, dentry.rel, self.idmap.attr_of(st), NS_OBJECT)
        return [vfs.resolver.root_frames("/")[0]], target, "/proc/" + dentry.rel, \
            vfs.mounts.by_path.get("/proc")

    def listdir(self, dentry):
        out = []
        with os.scandir(self._tracer_path(dentry.rel)) as it:
            for e in it:
                try:
                    t = _stat.S_IFMT(e.stat(follow_symlinks=False).st_mode) >> 12
                except OSError:
                    continue
                out.append((e.name, t, e.inode()))
        return out

    def host_path(self, dentry):
        kind = self._produced_kind(dentry.rel)
        if kind is not None:
            if kind.startswith("paths:"):
                produce = lambda: self._with_guest_paths(dentry.rel)  # noqa: E731
            elif kind.startswith("status:"):
                produce = lambda: self._emulated_status(dentry.rel)  # noqa: E731
            else:
                produce = self.produce.get(kind) or self.produce[kind.split("/")[-1]]
            path = self.spool.spool(produce)
            self._produced[path] = dentry.rel
            return path
        if dentry.rel in ("self", "thread-self"):
            raise OSError(errno.ELOOP, "magic")
        parts = dentry.rel.split("/")
        if parts[0] in self.protected_pids and any(p in MEMORY_FILES for p in parts[1:]):
            raise OSError(errno.EACCES, "a protected process's memory")
        # the guest's own mount namespace has its procfs on /proc
        return "/proc/" + dentry.rel if dentry.rel else "/proc"

    def reverse(self, host_path):
        if host_path in self._produced:
            return self._produced[host_path]
        if host_path == "/proc":
            return ""
        if host_path.startswith("/proc/"):
            return host_path[6:]
        return None

    def statfs_path(self, dentry):
        return "/proc"

    # produced files ------------------------------------------------------
    def _mounts(self):
        lines = []
        for m in self._shown_mounts():
            opts = m.flags_word()
            lines.append(f"{m.fs.source} {m.path} {m.fs.fstype} {opts} 0 0\n")
        return "".join(lines).encode()

    def _shown_mounts(self):
        """The mount table as the guest's mount namespace has it: not the
        writable files' mounts, which are part of its /proc."""
        return [m for m in self.vfs.mounts if not isinstance(m.fs, ProcFile)]

    def _mountinfo(self):
        lines = []
        for m in self._shown_mounts():
            opts = m.flags_word()
            dev = "0:%d" % (m.id + 20)
            # the mount's flags, then the superblock's (noexec is the mount's)
            lines.append(f"{m.id} {m.parent_id} {dev} / {m.path} {opts} - "
                         f"{m.fs.fstype} {m.fs.source} {'ro' if m.read_only else 'rw'}\n")
        return "".join(lines).encode()

    def _meminfo(self):
        with open("/proc/meminfo") as f:
            text = f.read()
        return (self.system.meminfo(text) if self.system is not None else text).encode()

    def _uptime(self):
        up = self.system.uptime() if self.system is not None else \
            time.monotonic() - self.started
        return f"{up:.2f} {up * (os.cpu_count() or 1):.2f}\n".encode()

    def _filesystems(self):
        kinds = sorted({m.fs.fstype for m in self._shown_mounts()})
        return "".join(f"{'' if k in ('overlay', 'hostfs') else 'nodev'}\t{k}\n"
                       for k in kinds).encode()

    def _emulated_status(self, rel):
        """PID/status or PID/task/TID/status of a thread whose ids the
        guest kernel emulates (fakeids.py): the ids and capabilities lines
        are the emulated ones the id calls report, as Linux's task_state
        prints them (the process's leader's for PID/status); the rest is
        procfs's."""
        with open(self._tracer_path(rel), "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
        parts = rel.split("/")
        host = self._host_pid(parts[2] if len(parts) == 4 else parts[0])
        if host is None:
            return text.encode("utf-8", "surrogateescape")
        cred = self.vfs.fake_ids.of(host)
        lines = {
            "Uid": f"{cred.uid}\t{cred.euid}\t{cred.suid}\t{cred.fsuid}",
            "Gid": f"{cred.gid}\t{cred.egid}\t{cred.sgid}\t{cred.fsgid}",
            # Linux ends the list with a space ("Groups:\t \n" for none)
            "Groups": "".join(f"{g} " for g in cred.groups) or " ",
            "CapInh": f"{cred.inheritable:016x}",
            "CapPrm": f"{cred.permitted:016x}",
            "CapEff": f"{cred.effective:016x}",
        }
        out = []
        for line in text.splitlines(keepends=True):
            name, tab, _ = line.partition(":\t")
            if tab and name in lines:
                line = f"{name}:\t{lines[name]}\n"
            out.append(line)
        return "".join(out).encode("utf-8", "surrogateescape")

    def _hostname(self):
        name = self.hostname or os.uname().nodename
        return f"{name}\n".encode()


class ProcFile(FileSystem):
    """One writable file of a process's /proc directory (WRITABLE), as a
    filesystem of its own mounted over itself: its attributes and host
    object are the procfs file's (opened for the guest by its opener, or
    by the guest itself), and the mount is not read-only."""
    fstype = "proc"
    source = "proc"
    read_only = False

    def __init__(self, procfs, rel):
        self.procfs, self.rel = procfs, rel

    def root(self):
        try:
            return Dentry(self, "", self.procfs._stat(self.rel))
        except FileNotFoundError:
            raise OSError(errno.ENOENT, self.rel) from None

    def lookup(self, parent, name):
        return None

    def host_path(self, dentry):
        return "/proc/" + self.rel

    def reverse(self, host_path):
        return "" if host_path == "/proc/" + self.rel else None

    def statfs_path(self, dentry):
        return "/proc"
