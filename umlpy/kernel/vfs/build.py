"""Assemble a sandbox's filesystem from the user's options: the root
(host tree, host directory or tar images) under a copy-on-write upper
layer, /proc, /dev, /sys, binds and tmpfs mounts, and the state directory
that holds what is the sandbox's own."""
import errno
import os
import stat as _stat

from ...errors import BadInput
from .fs import HostTreeFS
from .mounts import MountTable
from .procfs_fs import ProcFS
from .synth import SDir, SFile, SynthFS, dev_tree, sys_tree, with_files
from .statedirs import claim
from ...hostuser import registry_root, searchable_above
from .tmpdirs import remove_tree, temp_dir
from .union import UnionFS
from .vfs import VFS


STATE_ROOT_MODE = 0o711


def state_root():
    """Where sandboxes keep their state: <tmp>/umlpy-<uid>, beside the
    content cache (the guest's host user must be able to pass through, to
    its own 0700 sandbox directory).  Short on purpose: a guest's UNIX
    socket gets a host path below it, and those are limited to 107 bytes."""
    from .contentcache import ensure_own_dir
    from ..identity import host_uid
    root = os.path.join(temp_dir(), f"umlpy-{host_uid()}")
    ensure_own_dir(root)
    # passable, not listable: a sandbox directory's random name is what
    # keeps the host's other users out of one its guest's ids all pass
    if os.stat(root).st_mode & 0o777 != STATE_ROOT_MODE:
        os.chmod(root, STATE_ROOT_MODE)
    return root


class StatePaths:
    """Matches the host paths of every user's umlpy state and caches:
    <tmp>/umlpy-<uid> and what is below (what re would match with
    TMP/umlpy-\\d+(/|$), without re's and enum's start-up cost)."""
    __slots__ = ("prefix",)

    def __init__(self, tmp):
        self.prefix = tmp.rstrip("/") + "/umlpy-"

    def match(self, path):
        if not path.startswith(self.prefix):
            return None
        uid, _, _ = path[len(self.prefix):].partition("/")
        return True if uid.isdigit() and uid.isascii() else None


def umlpy_private_paths():
    """Host paths of every user's umlpy state and caches in the temporary
    directory (<tmp>/umlpy-<uid>), which no guest may see: a matcher, and
    the directory they are in."""
    tmp = os.path.realpath(temp_dir())
    return StatePaths(tmp), tmp


# umlpy's own mounts: a --bind or --tmpfs may not replace them (the guest
# kernel answers for them).  (What it adds to an image's /etc is no mount:
# see _with_etc.)
OWN_MOUNTS = ("/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys")


def resolver_conf(net):
    """The /etc/resolv.conf an image without one gets.  A sandbox that
    shares the host's network (--net host, allow=...) resolves as the host
    does: the host's own file, read when the guest opens it.  When that
    names a stub resolver on 127.x (systemd-resolved's 127.0.0.53), it is
    kept: --net host shares the host's loopback, so the stub answers;
    under allow= the guest reaches it only if a rule allows it (as any
    other nameserver).  A sandbox with a network of its own (--net none)
    or only the loopback has no resolver but one a guest runs itself on
    127.0.0.1: names resolve from /etc/hosts (localhost) only."""
    if net is not None and net.mode in (net.HOST, net.ALLOW):
        try:
            with open("/etc/resolv.conf", "rb") as f:
                return f.read()
        except OSError:
            pass        # the host has none: glibc's default, as below
    return b"nameserver 127.0.0.1\n"


class SandboxFS:
    """The built filesystem; close() removes the throwaway parts."""

    def __init__(self, options, idmap, guest_ids=None, content_cache=None):
        self.options = options
        self.idmap = idmap
        self.vfs = None
        self.idmapped_root = None       # a directory --rootfs's idmapped mount (idmapped.py)
        self.reached = []               # binds mounted in the state (_reachable)
        # locked while this run lives: a later run sweeps it if this one
        # dies without removing it (statedirs.py)
        self.state, self._state_lock = claim(state_root())
        try:
            self._build(options, idmap, guest_ids, content_cache)
        except BaseException:
            self.close()        # a bad option or image leaves nothing behind
            raise

    def _build(self, options, idmap, guest_ids, content_cache):
        # Only the guest's host user may enter (it opens its upper files by
        # host path): nobody else on the host can reach, or run, what the
        # guest made there (a setuid file, say).
        # A guest with many ids (identity.py) has them all pass through: the
        # directory's random name, in a parent no one may list, keeps the
        # rest of the host out.
        if guest_ids is not None:
            try:
                os.chown(self.state, guest_ids[0], guest_ids[1])
            except PermissionError:
                pass
        os.chmod(self.state, 0o711 if idmap.many else 0o700)
        self.spool = os.path.join(self.state, "spool")
        os.mkdir(self.spool, 0o711)
        # and the user's named sandboxes: their records, uppers, logs and
        # control sockets are no guest's to see
        self.hidden = [self.state, registry_root()]
        lower, image_root = self._lower(options, content_cache)
        spool = SynthFS(SDir(), self.spool, idmap)
        if image_root:
            lower = self._with_etc(lower, spool, options)
        if options.upper:
            upper = os.path.abspath(options.upper)
            try:
                os.makedirs(upper, exist_ok=True)
            except OSError as e:
                raise BadInput(f"--upper {options.upper}: {e.strerror}") from None
            self.hidden.append(upper)
            # what umlpy diff/commit compare it with (the first run decides)
            from .changes import record_lower
            try:
                record_lower(upper, options.rootfs, options.layers or ())
            except OSError as e:
                raise BadInput(f"--upper {options.upper}: {e.strerror}") from None
        else:
            upper = os.path.join(self.state, "upper")
            os.mkdir(upper, 0o755)
        if guest_ids is None and os.geteuid() == 0:
            # --host-root: the guest is host root and may become any host
            # user, who must pass through to the throwaway upper and the
            # tmpfs dirs as through a kept --upper's parents: search, not
            # list; what it may then make there (a setuid file) it could
            # make anywhere as host root
            os.chmod(self.state, 0o711)
        if isinstance(lower, HostTreeFS) and self.idmapped_root is None:
            # (an idmapped --rootfs is mounted inside the state: it holds
            # nothing but the directory's own files)
            lower.hidden = frozenset(os.path.realpath(h) for h in self.hidden)
            # every sandbox's state and the shared caches: no guest sees
            # another's changes or learns where its own live
            lower.hidden_pattern, lower.hidden_pattern_dir = umlpy_private_paths()
        self.union = UnionFS(lower, upper, idmap, owner=guest_ids)
        try:
            self._mirror_root(upper, lower)
        except OSError as e:        # an --upper the host will not let us use
            raise BadInput(f"--upper {options.upper}: {e.strerror}") from None
        self.mounts = MountTable(self.union)
        if options.read_only:
            self.mounts.root.read_only = True
        self.vfs = VFS(self.mounts, idmap, cwd=options.cwd or (
            os.getcwd() if options.rootfs is None else "/"))
        self.vfs.spool_dir = self.spool
        from .aliases import Aliases
        self.vfs.aliases = Aliases(os.path.join(self.state, "a"))
        from .execnames import ExecNames
        self.vfs.exec_names = ExecNames(os.path.join(self.state, "n"))
        self.union.open_lower = self._open_lower_as_guest
        self.union.owner_access = self._owner_access(self.union.upper_fd)
        self.vfs.own_storage = self.own_storage()
        self.procfs = None
        from .guestmounts import GuestMounts
        self.guest_mounts = GuestMounts(self)     # what the guest's mount(2) makes
        # --noexec: umlpy's own mounts made noexec (locked: the guest may
        # not remount them exec)
        self.own_noexec = frozenset(options.noexec or ())
        noexec = lambda path: dict(noexec_locked=path in self.own_noexec)  # noqa: E731
        self.dev = SynthFS(dev_tree(), self.spool, idmap, "devtmpfs", "udev")
        self.mounts.add("/dev", self.dev, **noexec("/dev"))
        if os.path.isdir("/dev/pts"):
            self.mounts.add("/dev/pts", HostTreeFS("/dev/pts", idmap, writable=False,
                                                   fstype="devpts", source="devpts"),
                            **noexec("/dev/pts"))
        self.mounts.add("/dev/shm", self._tmpfs("shm", guest_ids, size=options.shm_size),
                        options="mode=1777", **noexec("/dev/shm"))
        self.mounts.add("/sys", SynthFS(sys_tree(), self.spool, idmap, "sysfs", "sysfs"),
                        read_only=True, **noexec("/sys"))
        self.spool_fs = spool
        planned = self._planned_mounts(options)
        for guest, fs, ro, nx, size in sorted(planned, key=lambda m: m[0].count("/")):
            self._make_mountpoint_parents(guest, guest_ids)
            if fs is None:
                fs = self._tmpfs(f"tmpfs{len(self.mounts.by_path)}", guest_ids, size=size)
            self.mounts.add(guest, fs, read_only=ro, noexec_locked=nx)

    def _planned_mounts(self, options):
        """[(guest path, HostTreeFS or None for a tmpfs, read_only, noexec,
        a tmpfs's size or None)]
        of the --bind and --tmpfs options; BadInput (one line, status 2)
        for one on umlpy's own mounts or on a path another one takes."""
        from ...config.values import show_mount_words
        planned, taken = [], {}
        wanted = [(os.path.normpath(guest), host, ro, nx, None, f"--bind {host}:{guest}"
                   + show_mount_words(ro, nx)) for host, guest, ro, nx in options.binds]
        wanted += [(os.path.normpath(guest), None, ro, nx, size, f"--tmpfs {guest}"
                    + show_mount_words(ro, nx)) for guest, ro, nx, size in options.tmpfs]
        for guest, host, ro, nx, size, spec in wanted:
            if guest in OWN_MOUNTS:
                raise BadInput(f"{spec}: {guest} is already umlpy's own mount "
                               f"(the guest's {guest}); not replaced")
            if guest in taken:
                raise BadInput(f"{spec}: {guest} is already a mountpoint ({taken[guest]})")
            taken[guest] = spec
            fs = None if host is None else HostTreeFS(self._reachable(host), self.idmap,
                                                      writable=not ro, source=host)
            planned.append((guest, fs, ro, nx, size))
        return planned

    def _reachable(self, host):
        """host, or, where umlpy runs as root and the directories above it
        are closed to others (a container engine's 0700 storage, where its
        /etc/hosts and resolv.conf for the container live), the same
        object mounted in the state directory, in umlpy's own mount
        namespace (idmapped.py), where the sandbox's host ids reach it."""
        if os.geteuid() != 0 or self.idmap.block() is None or \
                searchable_above(os.path.realpath(host)):
            return host     # (without a block of ids the guest is root itself)
        from .idmapped import mount_plain
        target = os.path.join(self.state, f"bind{len(self.reached)}")
        self.reached.append(target)
        if os.path.isdir(host):
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        try:
            mount_plain(host, target)
        except OSError:
            return host
        return target

    def _make_mountpoint_parents(self, path, guest_ids):
        """A mount whose parent directory the root lacks (--bind X:/mnt/x
        on an image without /mnt) hangs from an empty tmpfs made at the
        first missing directory, as container runtimes create mountpoints;
        the image and the upper layer stay untouched."""
        resolver = self.vfs.resolver
        root = resolver.root_frames("/")
        parts = path.split("/")
        for depth in range(2, len(parts)):
            prefix = "/".join(parts[:depth])
            try:
                found = resolver.walk(root, root, prefix).dentry is not None
            except OSError:
                found = False
            if not found:
                if prefix not in self.mounts.by_path:
                    fs = self._tmpfs(f"mnt{len(self.mounts.by_path)}", guest_ids, 0o755)
                    self.mounts.add(prefix, fs)
                    below = "/".join(parts[depth:-1])
                    if below:
                        os.makedirs(os.path.join(fs.root_path, below), 0o755)
                return

    def _open_lower_as_guest(self, path):
        """A lower file read for a copy-up, opened by the calling guest
        thread's host identity (the host's own permission checks)."""
        task = self.vfs.current
        if task is None:
            raise OSError(errno.EACCES, "copy-up outside a guest call")
        return task.as_host(os.open, path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY
                            | os.O_NONBLOCK)

    def _owner_access(self, root_fd):
        """A filesystem's owner_access (fs.py) for a tree of the sandbox's
        own storage at root_fd: fn() with its directories at rels opened
        to their host owner (ownermodes.py), only for a guest whose ids the
        guest kernel emulates (fakeids.py), which decided the guest's
        access itself; otherwise the host's refusal stands."""
        def access(rels, fn, refused):
            task = self.vfs.current
            if task is None or self.vfs.fake_ids is None:
                raise refused
            from .ownermodes import with_owner_access
            return with_owner_access(task, root_fd, rels, fn)
        return access

    def own_storage(self):
        """Host directories the guest writes into that belong to the
        sandbox (what --disk counts): the upper layer, tmpfs mounts, shm."""
        roots = [self.state]
        if self.options.upper:
            roots.append(os.path.abspath(self.options.upper))
        return roots

    def check_cwd(self):
        cwd = self.vfs.initial.cwd
        root = self.vfs.resolver.root_frames("/")
        try:
            res = self.vfs.resolver.walk(root, root, cwd)
            ok = res.dentry is not None and res.dentry.attr.is_dir()
        except OSError:
            ok = False
        if not ok:
            self.close()
            raise BadInput(f"-C {cwd}: not a directory in the guest")

    def attach_proc(self, proc_root, guest_tid, host_tid, hostname=None, system=None):
        self.procfs = ProcFS(self.vfs, self.idmap, self.spool_fs, guest_tid, host_tid,
                             proc_root, hostname, system)
        self.vfs.procfs = self.procfs
        self.mounts.add("/proc", self.procfs, noexec_locked="/proc" in self.own_noexec)

    def _tmpfs(self, name, guest_ids, mode=0o1777, size=None):
        """A tmpfs for the guest: a directory of the state's, or, with a
        size, a real tmpfs of that size mounted there in umlpy's own mount
        namespace (idmapped.py), where the host's kernel holds the size
        (ENOSPC) as Linux's tmpfs does; that needs umlpy to be root (of
        the host, or of the user's namespace of subordinate ids)."""
        path = os.path.join(self.state, name)
        os.mkdir(path)
        if size is not None:
            if os.geteuid() != 0:
                raise BadInput(f"a tmpfs of {size} bytes needs a tmpfs of umlpy's own, "
                               "which only root may mount (or a user with subordinate ids)")
            from .idmapped import mount_tmpfs
            try:
                mount_tmpfs(path, size)
            except OSError as e:
                raise BadInput(f"cannot make a tmpfs of {size} bytes: {e.strerror}") from None
            self.reached.append(path)
        os.chmod(path, mode)
        if guest_ids is not None and os.geteuid() == 0:
            # guest root's, as a tmpfs is its mounter's
            os.chown(path, guest_ids[0], guest_ids[1])
        fs = HostTreeFS(path, self.idmap, writable=True, fstype="tmpfs", source="tmpfs")
        fs.sandbox_own = True
        fs.owner_access = self._owner_access(fs.root_fd)
        return fs

    def _lower(self, options, content_cache):
        if options.rootfs is None:
            if options.layers:
                raise BadInput("--layer needs a --rootfs image to stack on")
            return HostTreeFS("/", self.idmap, source="/"), False
        root = options.rootfs
        if not os.path.exists(root):
            raise BadInput(f"--rootfs {root}: No such file or directory")
        if os.path.isdir(root):
            if options.layers:
                raise BadInput("--layer stacks tar images: --rootfs must be an image too")
            return HostTreeFS(self._as_image(root), self.idmap, source=root), True
        from .tarimage import stack_images
        from .tarfs import TarFS
        kwargs = {}
        if content_cache is not None:
            kwargs["cache"] = content_cache
        tree = stack_images([root] + options.layers, **kwargs)
        return TarFS(tree), True

    def _as_image(self, root):
        """The directory to use for a directory --rootfs: as root with a
        block of ids, an idmapped mount of it (idmapped.py), else itself."""
        block = self.idmap.block()
        if block is None or os.geteuid() != 0:
            return root
        from .idmapped import mount_idmapped
        target = os.path.join(self.state, "rootfs")
        os.mkdir(target, 0o755)
        try:
            reachable = searchable_above(os.path.realpath(root), itself=True)
            mount_idmapped(root, target, *block, or_plain=not reachable)
        except OSError:
            os.rmdir(target)
            return root
        self.idmapped_root = target
        return target

    def _mirror_root(self, upper, lower):
        """The upper root has the lower root's mode and owner (guest
        root's, when the guest's namespace does not map the host's: the
        layer is the sandbox's, and a kept layer's owner tells its block,
        identity.block_of_upper)."""
        a = lower.root().attr
        os.chmod(upper, _stat.S_IMODE(a.mode))
        uid, gid = self.idmap.uid_out(a.uid), self.idmap.gid_out(a.gid)
        if a.unmapped:
            uid, gid = self.idmap.uid_out(0), self.idmap.gid_out(0)
        try:
            os.chown(upper, -1 if uid is None else uid, -1 if gid is None else gid)
        except PermissionError:
            pass

    def _with_etc(self, lower, spool, options):
        """An image without /etc/hostname, hosts or resolv.conf gets ours,
        as files of its lower layer (synth.with_files): guest root may
        rewrite or rename over them (copy-up), and a --bind there mounts
        over them, as over any image file.  An image without /etc gets
        none."""
        name = options.hostname or "umlpy"
        files = {
            "hostname": lambda: f"{name}\n".encode(),
            "hosts": lambda: f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
                             "::1\tlocalhost ip6-localhost ip6-loopback\n".encode(),
            "resolv.conf": lambda: resolver_conf(options.net),
        }
        etc = lower.lookup(lower.root(), "etc")
        if etc is None or not etc.attr.is_dir():
            return lower
        added = {f"etc/{fname}": SFile(produce, 0o644) for fname, produce in files.items()
                 if lower.lookup(etc, fname) is None}
        return with_files(lower, added, spool) if added else lower

    def close(self):
        if self.vfs is not None:
            self.vfs.executor.close()
        for target in ([self.idmapped_root] if self.idmapped_root else []) + self.reached:
            from .idmapped import unmount
            if not unmount(target):
                return      # never remove what a mount still shows: the user's files
        remove_tree(self.state)
        if self._state_lock is not None:
            os.close(self._state_lock)
            self._state_lock = None
