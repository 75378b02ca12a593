"""Parsers of option values.  Each takes the option's flag (for the
one-line error) and a value as the command line gives it (a string) or
as the Python API may (already typed), and returns the typed value or
raises BadInput.  Beside the parsers whose typed value is no plain
string or number, a show_* function is their inverse: the word the
parser would take back (words.option_words: a named sandbox made with
the API keeps its options as `umlpy run`'s words)."""
import os

from ..errors import BadInput

# The largest number an option keeps: a larger one (1e400, 10**20) means
# "more than any machine has" and is taken as this, what a 64-bit rlimit
# or counter holds with room to add (issue 12: they ended in OverflowError)
MAX_NUMBER = 1 << 62

SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def text(flag, value):
    return str(value)


def shown(flag, value):
    """A string's or a number's word (the parsers of sizes, counts and
    seconds take their typed values' str back)."""
    return str(value)


def flag(flag, value):
    return bool(value)


def size(flag, value):
    """'512K', '64M', '2G', '1.5GiB' or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        t = str(value)
    else:
        t = str(value).strip().lower()
    if t.endswith("ib"):
        t = t[:-2]
    elif t.endswith("b") and len(t) > 1 and t[-2] in SIZE_UNITS:
        t = t[:-1]
    unit = t[-1:] if t[-1:] in SIZE_UNITS and not t[-1:].isdigit() else ""
    number = t[:-1] if unit else t
    try:
        result = float(number) * SIZE_UNITS[unit]
    except ValueError:
        raise BadInput(f"{flag} {value!r}: expected a size like 512K, 64M or 2G") from None
    if result != result:        # nan
        raise BadInput(f"{flag} {value!r}: expected a size like 512K, 64M or 2G")
    if result < 1:
        raise BadInput(f"{flag} {value!r}: must be at least 1 byte")
    return int(min(result, MAX_NUMBER))


def count(flag, value, low=1):
    try:
        result = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{flag} {value!r}: expected a whole number") from None
    if result < low:
        raise BadInput(f"{flag} {value!r}: must be at least {low}")
    return min(result, MAX_NUMBER)


def fd_count(flag, value):
    """A number of descriptors, 0 or more."""
    return count(flag, value, 0)


def file_count(flag, value):
    """A descriptor limit: stdin, stdout and stderr need 3."""
    return count(flag, value, 3)


def seconds(flag, value):
    """'10', '2.5s', '1m', '500ms', '1h' or a number of seconds."""
    t = str(value).strip().lower()
    scale = 1
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if t.endswith(suffix):
            t, scale = t[:-len(suffix)], factor
            break
    try:
        result = float(t) * scale
    except ValueError:
        raise BadInput(f"{flag} {value!r}: expected seconds, like 10 or 2.5s or 1m") from None
    if result != result:        # nan
        raise BadInput(f"{flag} {value!r}: expected seconds, like 10 or 2.5s or 1m")
    if result <= 0:
        raise BadInput(f"{flag} {value!r}: must be positive")
    return min(result, MAX_NUMBER)


def cpus(flag, value):
    """A number of CPUs' worth of time, as docker's --cpus: '1.5'."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{flag} {value!r}: expected a number of CPUs, like 0.5 or 2") from None
    if not 0.001 <= result <= 1 << 16:
        raise BadInput(f"{flag} {value!r}: from 0.001 to 65536 CPUs")
    return result


def cpu_period(flag, value):
    """The CFS period in microseconds (Linux takes 1000 to 1000000)."""
    result = count(flag, value, 1000)
    if result > 1000000:
        raise BadInput(f"{flag} {value!r}: at most 1000000 microseconds")
    return result


def cpu_shares(flag, value):
    """cgroup v1's cpu.shares weight (Linux takes 2 to 262144)."""
    result = count(flag, value, 2)
    if result > 262144:
        raise BadInput(f"{flag} {value!r}: at most 262144")
    return result


def cpu_list(flag, value):
    """A CPU or memory node list as cpuset takes it: '0-3,6'."""
    import re
    t = str(value).strip()
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", t):
        raise BadInput(f"{flag} {value!r}: expected a list like 0-3,6")
    return t


def rate(flag, value):
    """Bytes per second: '1M', '512K/s' or a number."""
    t = str(value).strip()
    if t.lower().endswith("/s"):
        t = t[:-2]
    return size(flag, t)


def existing_path(flag, value):
    path = os.fspath(value)
    if not os.path.exists(path):
        raise BadInput(f"{flag} {path}: No such file or directory")
    return os.path.abspath(path)


def existing_file(flag, value):
    path = os.fspath(value)
    if not os.path.exists(path):
        raise BadInput(f"{flag} {path}: No such file")
    if not os.path.isfile(path):
        raise BadInput(f"{flag} {path}: not a regular file")
    return os.path.abspath(path)


def directory_to_keep(flag, value):
    """A directory that exists, or one umlpy may make."""
    path = os.fspath(value)
    if not path:
        raise BadInput(f"{flag} {path!r}: expected a directory")
    if os.path.lexists(path) and not os.path.isdir(path):     # a file, a dangling symlink
        raise BadInput(f"{flag} {path}: not a directory")
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise BadInput(f"{flag} {path}: {above} is not a directory")
    return os.path.abspath(path)


# What a --bind's or a --tmpfs's OPTS may say (mount(8)'s words): ro/rw,
# noexec/exec; nosuid and nodev are accepted, since umlpy always behaves so
# (no_new_privs is set for every guest, a guest makes no device nodes).
MOUNT_WORDS = ("ro", "rw", "noexec", "exec", "nosuid", "nodev", "suid", "dev")


class Bind(tuple):
    """A --bind: (host's real path, normalized guest path, read_only,
    noexec)."""
    __slots__ = ()

    def __new__(cls, host, guest, read_only=False, noexec=False):
        return super().__new__(cls, (host, guest, bool(read_only), bool(noexec)))

    host = property(lambda self: self[0])
    guest = property(lambda self: self[1])
    read_only = property(lambda self: self[2])
    noexec = property(lambda self: self[3])


class Tmpfs(tuple):
    """A --tmpfs: (normalized guest path, read_only, noexec, size in bytes
    or None: bounded only by the sandbox's --disk and --memory)."""
    __slots__ = ()

    def __new__(cls, guest, read_only=False, noexec=False, size=None):
        return super().__new__(cls, (guest, bool(read_only), bool(noexec), size))

    guest = property(lambda self: self[0])
    read_only = property(lambda self: self[1])
    noexec = property(lambda self: self[2])
    size = property(lambda self: self[3])


def mount_words(flag, spec, words):
    """OPTS (a comma list, the last of ro/rw and of noexec/exec wins, as
    in mount(8)) -> (read_only, noexec)."""
    read_only = noexec = False
    for word in words.split(","):
        if word not in MOUNT_WORDS:
            raise BadInput(f"{flag} {spec}: unknown mount option {word!r} (options: "
                           "ro, rw, noexec, exec, nosuid, nodev)")
        if word in ("ro", "rw"):
            read_only = word == "ro"
        elif word in ("noexec", "exec"):
            noexec = word == "noexec"
        elif word in ("suid", "dev"):
            raise BadInput(f"{flag} {spec}: {word} is not offered (umlpy's mounts are "
                           "always nosuid and nodev)")
    return read_only, noexec


def show_mount_words(read_only, noexec):
    words = (["ro"] if read_only else []) + (["noexec"] if noexec else [])
    return (":" + ",".join(words)) if words else ""


def bind(flag, value):
    """'HOST:GUEST[:OPTS]' (OPTS: mount_words), or (host, guest[,
    read_only[, noexec]]) from the API -> Bind."""
    if isinstance(value, (tuple, list)):
        if not 2 <= len(value) <= 4:
            raise BadInput(f"{flag} {value!r}: expected (HOST, GUEST[, read_only[, noexec]])")
        host, guest = os.fspath(value[0]), os.fspath(value[1])
        ro = bool(value[2]) if len(value) > 2 else False
        noexec = bool(value[3]) if len(value) > 3 else False
        spec = f"{host}:{guest}" + show_mount_words(ro, noexec)
    else:
        spec = str(value)
        parts = spec.split(":")
        if len(parts) == 3:
            host, guest = parts[0], parts[1]
            ro, noexec = mount_words(flag, spec, parts[2])
        elif len(parts) == 2:
            host, guest, ro, noexec = parts[0], parts[1], False, False
        else:
            raise BadInput(f"{flag} {spec}: expected HOST:GUEST[:OPTS]")
    if not os.path.exists(host):
        raise BadInput(f"{flag} {spec}: {host}: No such file or directory")
    if not guest.startswith("/"):
        raise BadInput(f"{flag} {spec}: the guest path must be absolute")
    return Bind(os.path.realpath(host), os.path.normpath(guest), ro, noexec)


def show_bind(flag, value):
    host, guest, read_only, noexec = value
    if ":" in host or ":" in guest:
        raise BadInput(f"{flag} {host}:{guest}: a path with ':' cannot be written as "
                       "HOST:GUEST[:OPTS]")
    return f"{host}:{guest}" + show_mount_words(read_only, noexec)


def guest_path(flag, value):
    path = os.fspath(value)
    if not path.startswith("/"):
        raise BadInput(f"{flag} {path}: the guest path must be absolute")
    return os.path.normpath(path)


def tmpfs(flag, value):
    """'GUEST[:OPTS]' (OPTS: mount_words), or (guest[, read_only[,
    noexec]]) from the API -> Tmpfs."""
    if isinstance(value, (tuple, list)):
        if not 1 <= len(value) <= 3:
            raise BadInput(f"{flag} {value!r}: expected (GUEST[, read_only[, noexec]])")
        guest = os.fspath(value[0])
        ro = bool(value[1]) if len(value) > 1 else False
        noexec = bool(value[2]) if len(value) > 2 else False
        spec = guest + show_mount_words(ro, noexec)
    else:
        spec = os.fspath(value)
        guest, sep, words = spec.partition(":")
        sizes = [w[len("size="):] for w in words.split(",") if w.startswith("size=")]
        words = ",".join(w for w in words.split(",") if not w.startswith("size="))
        ro, noexec = mount_words(flag, spec, words) if words else (False, False)
        if sizes:
            return Tmpfs(guest_path(flag, guest), ro, noexec, size(flag, sizes[-1]))
    return Tmpfs(guest_path(flag, guest), ro, noexec)


def show_tmpfs(flag, value):
    guest, read_only, noexec, _ = value
    if ":" in guest:
        raise BadInput(f"{flag} {guest}: a path with ':' cannot be written as GUEST[:OPTS]")
    shown = guest + show_mount_words(read_only, noexec)
    if value.size is not None:
        shown += ("," if shown != guest else ":") + f"size={value.size}"
    return shown


# umlpy's own mounts that --noexec may make noexec (/dev/mqueue: where an
# engine asks for one; umlpy has none of its own there, and the guest's
# own mount there is made noexec, syscalls/fs/mount.py)
NOEXEC_OWN = ("/dev", "/dev/shm", "/dev/mqueue", "/dev/pts", "/proc", "/sys")


def own_mount(flag, value):
    path = guest_path(flag, value)
    if path not in NOEXEC_OWN:
        raise BadInput(f"{flag} {path}: not one of umlpy's own mounts "
                       f"({', '.join(NOEXEC_OWN)}); a --bind or --tmpfs takes :noexec")
    return path


def env_item(flag, value):
    """'KEY=VALUE' -> (key, value)."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]), str(value[1])
    key, sep, val = str(value).partition("=")
    if not sep or not key:
        raise BadInput(f"{flag} {value!r}: expected KEY=VALUE")
    return key, val


def show_env_item(flag, value):
    key, val = value
    if "=" in key:
        raise BadInput(f"{flag} {key!r}: a variable's name cannot hold '='")
    return f"{key}={val}"


def hostname(flag, value):
    name = str(value)
    if not 0 < len(name.encode()) <= 64:
        raise BadInput(f"{flag} {name!r}: 1 to 64 bytes")
    return name


def uname_field(flag, value):
    """A utsname field: at most 64 bytes, as Linux's __NEW_UTS_LEN."""
    field = str(value)
    if len(field.encode()) > 64 or "\0" in field:
        raise BadInput(f"{flag} {field!r}: at most 64 bytes, no NUL")
    return field


def net_policy(flag, value):
    from ..kernel.netpolicy import NetPolicy
    return value if isinstance(value, NetPolicy) else NetPolicy.parse(value)


def show_net_policy(flag, value):
    return value.text()


def log_level(flag, value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    name = str(value).lower()
    if name not in LOG_LEVELS:
        raise BadInput(f"{flag} {value}: expected one of {', '.join(LOG_LEVELS)}")
    return name


def show_log_level(flag, value):
    if isinstance(value, int):
        import logging
        name = logging.getLevelName(value)
        if not isinstance(name, str) or name.lower() not in LOG_LEVELS:
            raise BadInput(f"{flag} {value}: only the named levels have a word "
                           f"({', '.join(LOG_LEVELS)})")
        return name.lower()
    return value


class Break:
    """A --break point: the call's number, the condition's text and code."""
    __slots__ = ("nr", "text", "code")

    def __init__(self, nr, text, code):
        self.nr, self.text, self.code = nr, text, code


def break_point(flag, value):
    """'SYSCALL[:COND]' -> Break (BadInput if the name or COND is wrong)."""
    if isinstance(value, Break):
        return value
    from ..kernel.syscalls.names import syscall_nr
    name, sep, cond = str(value).partition(":")
    name = name.strip()
    try:
        nr = syscall_nr(int(name) if name.isdigit() else name)
    except ValueError as e:
        raise BadInput(f"{flag} {value}: {e}") from None
    code = None
    if sep and cond.strip():
        try:
            code = compile(cond.strip(), "<--break condition>", "eval")
        except SyntaxError as e:
            raise BadInput(f"{flag} {value}: bad condition: {e.msg}") from None
    return Break(nr, cond.strip() if sep else "", code)


def show_break(flag, value):
    from ..kernel.syscalls.names import SYSCALL_NAMES
    name = SYSCALL_NAMES.get(value.nr, str(value.nr))
    return f"{name}:{value.text}" if value.text else name


def choice(*allowed):
    def parse(flag, value):
        if value not in allowed:
            raise BadInput(f"{flag} {value!r}: expected one of {', '.join(map(repr, allowed))}")
        return value
    return parse


def optional_flag(flag, value):
    """True, False, or None (umlpy decides)."""
    return None if value is None else bool(value)


def host_id_block(flag, value):
    """The first host id of the guest's block (above 0; that the whole
    block can be mapped is checked when it is taken)."""
    return count(flag, value)
