"""The registry of named sandboxes.

One directory per sandbox under the registry root (0700 both):
``$XDG_STATE_HOME/umlpy`` (default ``~/.local/state/umlpy``) for a user,
``/var/lib/umlpy`` for root.  In it:

- ``record.json``: the name, when it was made, its run options (as the
  words ``umlpy run`` takes), INIT, and the directory relative paths in
  those words are relative to;
- ``store-<random>/upper/``: its copy-on-write layer, kept until ``umlpy
  rm``.  The guest kernel reaches the upper layer's files as the guest's
  host ids (an id block, subordinate ids), which must pass through every
  directory above it: the registry and the record directories are 0711
  (search, no listing), and the store's random name, which only the
  owner's 0600 record.json holds, keeps every other host user out, as
  the run state directories' random names do (vfs/tmpdirs.py);
- ``lock``: flock'ed by create, start and rm, so that two of them on one
  name never interleave (the loser gets one clear error);
- ``alive``: flock'ed by the running daemon for its whole life: a lock
  that dies with its holder, so a daemon killed by SIGKILL is seen as
  gone at once, never as a stale "running";
- ``daemon.json``: the running daemon's pid and start time;
- ``exit.json``: how the last daemon ended (written by the daemon itself:
  its absence after a start means it died: ``crashed``);
- ``control.sock``: the daemon's control socket (server.py);
- ``init.log``, ``daemon.log``: INIT's output and the daemon's own
  messages, each bounded (logfile.py)."""
import errno
import fcntl
import json
import os
import re
import time

from ..errors import BadInput, UmlpyError
from ..hostuser import registry_root

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
RECORD_VERSION = 1


def run_options(words, command="umlpy run", show_help=None):
    """umlpy run's option words (up to '--' or the program) -> (Config,
    the words after them, the options given): what create records and
    start uses again."""
    from ..config import COMMAND_LINE, Config
    from ..config.words import parse_words

    def no_help():
        raise BadInput(f"{command}: see 'umlpy run --help' for the options")
    args = parse_words(command, COMMAND_LINE, list(words), show_help or no_help)
    return Config.from_words(args.given), args.argv, args.given


def check_keepable(options, command):
    """BadInput for the options a named sandbox cannot keep ({name: value}
    as given): its upper layer is its record's, and a daemon has no
    terminal for pdb."""
    if options.get("upper") is not None:
        raise BadInput(f"{command}: a named sandbox keeps its upper layer in its record "
                       "('umlpy diff NAME' and 'umlpy commit NAME' work on it)")
    if options.get("breaks"):
        raise BadInput(f"{command}: --break stops in pdb on a terminal, which a named "
                       "sandbox's daemon has not (umlpy run --break)")


def check_name(name):
    if not NAME_PATTERN.match(name or ""):
        raise BadInput(f"umlpy: bad sandbox name {name!r}: letters, digits, '_', '.' and '-', "
                       "at most 63, starting with a letter or digit")
    return name


def write_json(path, data):
    """Replace path with data, atomically (a reader sees the old or the new)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600),
              "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UmlpyError(f"umlpy: {path}: unreadable ({e})") from None


class Held:
    """An flock held on a file of the record, released by close()."""

    def __init__(self, fd):
        self.fd = fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Record:
    def __init__(self, name, root=None):
        self.name = check_name(name)
        self.dir = os.path.join(root or registry_root(), name)

    def path(self, leaf):
        return os.path.join(self.dir, leaf)

    @property
    def upper(self):
        store = self.data().get("store")
        return self.path(f"{store}/upper" if store else "upper")

    @property
    def socket_path(self):
        return self.path("control.sock")

    def exists(self):
        return os.path.exists(self.path("record.json"))

    def data(self):
        data = _read_json(self.path("record.json"))
        if data is None:
            raise BadInput(f"umlpy: no sandbox named {self.name!r} (see 'umlpy ls')")
        return data

    # locks -------------------------------------------------------------
    def _flock(self, leaf, what):
        fd = os.open(self.path(leaf), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(f"umlpy: sandbox {self.name!r} is busy: {what}") from None
        return Held(fd)

    def locked(self):
        """Held while create, start or rm change the record."""
        return self._flock("lock", "another umlpy create, start or rm is at work on it")

    def hold_alive(self):
        """The daemon's: held for its whole life."""
        return self._flock("alive", "its daemon is running")

    def daemon_alive(self):
        try:
            fd = os.open(self.path("alive"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # the life of a record -----------------------------------------------
    def create(self, words, init, cwd):
        """Make the record; BadInput if the name is taken."""
        root = os.path.dirname(self.dir)
        try:
            os.makedirs(root, mode=0o711, exist_ok=True)
            os.chmod(root, 0o711)
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise BadInput(f"umlpy: a sandbox named {self.name!r} already exists") from None
        except OSError as e:
            raise UmlpyError(f"umlpy: cannot make the registry {root}: {e.strerror}") from None
        with self.locked():
            store = f"store-{os.urandom(12).hex()}"
            os.mkdir(self.path(store), 0o711)
            os.mkdir(self.path(f"{store}/upper"), 0o755)
            write_json(self.path("record.json"), {
                "version": RECORD_VERSION, "name": self.name, "created": time.time(),
                "words": list(words), "init": list(init) if init else None, "cwd": cwd,
                "store": store})

    def started(self, pid):
        try:
            os.unlink(self.path("exit.json"))
        except FileNotFoundError:
            pass
        write_json(self.path("daemon.json"), {"pid": pid, "started": time.time()})

    def ended(self, reason, status=None):
        write_json(self.path("exit.json"), {"reason": reason, "status": status,
                                             "ended": time.time()})

    def remove(self):
        from ..kernel.vfs.tmpdirs import remove_tree
        doomed = f"{self.dir}.removing.{os.getpid()}"
        os.rename(self.dir, doomed)     # the name is free at once, and ls no longer lists it
        remove_tree(doomed)

    # what it is doing ------------------------------------------------------
    def state(self):
        """(state, detail): created, running, stopped or crashed."""
        if self.daemon_alive():
            return "running", None
        daemon = _read_json(self.path("daemon.json"))
        if daemon is None:
            return "created", None
        ended = _read_json(self.path("exit.json"))
        if ended is None:
            return "crashed", f"the daemon (pid {daemon.get('pid')}) died without a word"
        if ended.get("reason") != "stopped":
            return "crashed", ended.get("reason")
        return "stopped", ended.get("status")

    def daemon(self):
        return _read_json(self.path("daemon.json")) or {}


def all_records(root=None):
    root = root or registry_root()
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UmlpyError(f"umlpy: {root}: {os.strerror(e.errno or errno.EIO)}") from None
    out = []
    for name in names:
        if NAME_PATTERN.match(name) and os.path.exists(os.path.join(root, name, "record.json")):
            out.append(Record(name, root))
    return out
