"""The shared read-only content cache: host files and directories that
stand for members of a filesystem image when the host itself must touch
them (exec, mmap, a directory to chdir into).

Layout: ``<root>/<tree digest>/<key>``.  A key names one member within
one tree (the tree picks it; an inode number is stable for a given stack
of images, so every sandbox and process agrees on it).  Nothing is ever
modified once published, so sandboxes share the cache without locks.

Everything here is readable (directories searchable, executables
executable) by every uid: the guest may run as nobody on the host while
the tracer runs as root, and the guest kernel does its own permission
checks from the image's metadata, so host modes only need to let the
host open the object."""
import os
import stat

from umlpy.errors import UmlpyError

# Cache directories are published to every uid; files are never writable.
DIR_MODE = 0o755
FILE_MODE = 0o444
EXEC_BITS = 0o111


def user_cache_dir(kind, need_world_search=False):
    """Where umlpy keeps cache `kind` ("index", "content") for this user:
    $XDG_CACHE_HOME/umlpy/KIND or ~/.cache/umlpy/KIND, else (no usable
    home, or a home others cannot traverse when `need_world_search`)
    <tmp>/umlpy-<uid>/KIND.  The directory exists on return."""
    for base in _home_cache_bases():
        path = os.path.join(base, "umlpy", kind)
        if need_world_search and not world_searchable(_nearest_existing(path)):
            continue
        try:
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK) and (
                not need_world_search or world_searchable(path)):
            return path
    from ..identity import host_uid
    tmp_base = os.path.join(_tempdir(), f"umlpy-{host_uid()}")
    ensure_own_dir(tmp_base)
    path = os.path.join(tmp_base, kind)
    ensure_own_dir(path)
    return path


def _home_cache_bases():
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        yield xdg
    home = os.path.expanduser("~")
    if os.path.isabs(home) and home != "/" and os.path.isdir(home):
        yield os.path.join(home, ".cache")


def _tempdir():
    from .tmpdirs import temp_dir
    return temp_dir()


def _nearest_existing(path):
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def world_searchable(path):
    """Can any uid reach `path` (every directory on the way has o+x)?"""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def ensure_own_dir(path):
    """Create directory `path` (mode 0755) unless it exists, and refuse it
    unless it is a real directory owned by us and writable by no one
    else: in a shared place (/tmp) someone may have planted it first."""
    try:
        os.mkdir(path, DIR_MODE)
        os.chmod(path, DIR_MODE)   # mkdir's mode is cut by the umask
    except FileExistsError:
        pass
    except OSError as e:
        raise UmlpyError(f"{path}: cannot create cache directory: {e.strerror}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UmlpyError(f"{path}: cache directory is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise UmlpyError(f"{path}: unsafe cache directory "
                         f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
    return path


class ContentCache:
    """Publishes files and directories under root, each at most once."""

    def __init__(self, root=None):
        if root is None:
            root = user_cache_dir("content", need_world_search=True)
        else:
            os.makedirs(root, mode=DIR_MODE, exist_ok=True)
        self.root = os.path.abspath(root)
        self._real_root = os.path.realpath(self.root)
        self._ready = {}        # digest -> its directory, checked

    def area(self, digest):
        """The directory of one tree's members, created on first use."""
        path = self._ready.get(digest)
        if path is None:
            path = ensure_own_dir(os.path.join(self.root, digest))
            self._ready[digest] = path
        return path

    def publish_file(self, digest, key, data, mode, mtime_ns):
        """The path of a read-only file holding `data` (a bytes-like
        object), with the execute bits if `mode` has any, and `mtime_ns`.
        Racing publishers are fine: the first link wins, the others find
        it and drop their copy."""
        path = os.path.join(self.area(digest), key)
        if _is_published_file(path, len(data)):
            return path
        final_mode = FILE_MODE | (EXEC_BITS if mode & EXEC_BITS else 0)
        tmp = os.path.join(os.path.dirname(path), f".tmp.{key}.{os.getpid()}.{os.urandom(4).hex()}")
        # O_EXCL|O_NOFOLLOW: never write through a name someone planted.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, final_mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
            _publish(tmp, path, lambda: _is_published_file(path, len(data)))
        finally:
            _unlink_quietly(tmp)
        return path

    def publish_dir(self, digest, key, mtime_ns):
        """The path of an empty directory (mode 0755) with `mtime_ns`."""
        path = os.path.join(self.area(digest), key)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise UmlpyError(f"{path}: content cache entry is not a directory") from None
            return path
        os.chmod(path, DIR_MODE)
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        return path

    def locate(self, host_path):
        """(digest, key) for a path this cache published, else None."""
        parent, key = os.path.split(os.path.normpath(host_path))
        area, digest = os.path.split(parent)
        if area != self.root and os.path.realpath(area) != self._real_root:
            return None
        return digest, key


def _is_published_file(path, size):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise UmlpyError(f"{path}: unexpected symlink in the content cache")
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _publish(tmp, path, already_good):
    """Give tmp the name path without replacing a good copy that another
    process published first (a replaced file would change its inode under
    guests already using it)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        if already_good():
            return
    except OSError:
        pass                    # no hard links on this filesystem
    os.rename(tmp, path)


def _write_all(fd, data):
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:done + (1 << 22)])


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
