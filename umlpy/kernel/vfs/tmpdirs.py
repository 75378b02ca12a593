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


def remove_tree(path):
    """Remove path and all below it, as far as possible, reaching every
    entry from its directory's fd and never following a symlink (a guest
    may have left symlinks to anywhere in its upper layer)."""
    try:
        for _dir, dirs, files, dir_fd in os.fwalk(path, topdown=False):
            for name in files:
                _unlink(name, dir_fd)
            for name in dirs:
                try:
                    os.rmdir(name, dir_fd=dir_fd)
                except NotADirectoryError:      # a symlink to a directory
                    _unlink(name, dir_fd)
                except OSError:
                    pass
        os.rmdir(path)
    except OSError:
        pass


def _unlink(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
