"""The host's temporary directory, and private directories in it, made as
tempfile and shutil make them, without importing those two at every start
(with them come random, bz2 and lzma: milliseconds per run)."""
import os
import sys

_temp_dir = None


def temp_dir():
    """tempfile.gettempdir()'s choice: $TMPDIR, $TEMP or $TMP, else /tmp,
    /var/tmp or /usr/tmp, else the working directory; the first one this
    process may make files in.  tempfile.tempdir, if a program that
    imported tempfile set it, wins, as it does for tempfile."""
    global _temp_dir
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None and tempfile.tempdir:
        return tempfile.tempdir         # set by a program that embeds umlpy
    if _temp_dir is None:
        candidates = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
        candidates += ["/tmp", "/var/tmp", "/usr/tmp", os.getcwd()]
        for candidate in candidates:
            if candidate and os.path.isdir(candidate) and \
                    os.access(candidate, os.W_OK | os.X_OK):
                _temp_dir = os.path.abspath(candidate)
                break
        else:
            raise FileNotFoundError("no usable temporary directory (TMPDIR, /tmp, /var/tmp)")
    return _temp_dir


def make_private_dir(parent):
    """A new directory of mode 0700 in parent, with a random name."""
    for _ in range(100):
        path = os.path.join(parent, os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: no free name for a private directory")


# Removal holds at most this many directory fds open; directories deeper
# than that are moved up into the top directory and emptied from there, so
# it works at any depth, without recursion (a guest makes trees as deep as
# it likes: issue 12).
MAX_OPEN_WHILE_REMOVING = 32

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path):
    """Remove path and all below it, as far as possible, reaching every
    entry from its directory's fd and never following a symlink (a guest
    may have left symlinks to anywhere in its upper layer)."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    try:
        empty_dir(fd, strict=False)
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        pass


def empty_dir(top_fd, strict=True):
    """Remove everything inside the directory top_fd; how many objects
    went.  Iterative, depth first with at most MAX_OPEN_WHILE_REMOVING fds;
    directories found deeper are moved up into top_fd and emptied from
    there.  strict: an error ends the removal (raised); otherwise what
    cannot be removed is left and the rest goes."""
    count = 0
    moved_up = 0
    rescan_top = False
    stack = [(top_fd, None, iter(_listing(top_fd)))]
    try:
        while stack:
            fd, dir_name, entries = stack[-1]
            descended = False
            for name, is_dir in entries:
                try:
                    if not is_dir:
                        os.unlink(name, dir_fd=fd)
                        count += 1
                    elif len(stack) >= MAX_OPEN_WHILE_REMOVING:
                        moved_up += 1
                        while _exists(top_fd, f".umlpy-rm.{moved_up}"):
                            moved_up += 1
                        os.rename(name, f".umlpy-rm.{moved_up}", src_dir_fd=fd,
                                  dst_dir_fd=top_fd)
                        rescan_top = True
                    else:
                        child = open_dir_to_empty(fd, name)
                        try:
                            listing = _listing(child)
                        except BaseException:
                            os.close(child)
                            raise
                        stack.append((child, name, iter(listing)))
                        descended = True
                        break
                except OSError:
                    if strict:
                        raise
            if descended:
                continue
            stack.pop()
            if stack:
                os.close(fd)
                try:
                    os.rmdir(dir_name, dir_fd=stack[-1][0])
                    count += 1
                except OSError:
                    if strict:
                        raise
            elif rescan_top:
                rescan_top = False
                stack.append((top_fd, None, iter(_listing(top_fd))))
    finally:
        for fd, _dir_name, _entries in stack[1:]:
            os.close(fd)
    return count


def _exists(dir_fd, name):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _listing(fd):
    with os.scandir(fd) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]


def open_dir_to_empty(parent_fd, name):
    """Open a directory to remove its contents, making it readable and
    writable first if the guest took that away (it is ours to delete)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=parent_fd)
        try:
            os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
            fd = os.open(".", _DIR_FLAGS, dir_fd=path_fd)
        finally:
            os.close(path_fd)
    try:
        if os.fstat(fd).st_mode & 0o300 != 0o300:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd
