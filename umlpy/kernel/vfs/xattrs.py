"""Extended attributes as the guest sees them: Linux's rules (fs/xattr.c's
xattr_permission, commoncap's security.capability checks) and where each
attribute is kept.

* ``user.*``, ``security.*`` other than ``security.capability`` and
  ``system.*``: on the host object itself, as the caller's host identity
  (the host checks them again).
* ``trusted.*`` and ``security.capability``: emulated.  The host allows
  trusted.* only to CAP_SYS_ADMIN in its initial user namespace, and a
  real security.capability would give the file capabilities on the host
  (when run there, or after ``umlpy commit``).  The guest kernel checks
  them as Linux would for the guest (a guest root may set them on its own
  files) and keeps them in the upper layer under the same name behind
  ``user.umlpy.`` (``RESERVED``), which the guest can neither see, read nor
  set (EOPNOTSUPP, as overlayfs answers for its own trusted.overlay.*).
  Where the host cannot keep a user.* attribute (a symlink, a FIFO, a
  device, a filesystem without user xattrs) they are kept in the guest
  kernel's ``Records``, within the kernel's own limits per object and a
  cap per sandbox, and those of the upper layer's objects on disk beside
  them (xattrstore.py), so a kept ``--upper`` keeps them.  The guest kernel writes the
  reserved names itself only on the sandbox's own files (its upper
  layer): elsewhere (a writable bind) the caller's host identity does
  (syscalls/fs/xattr.py's on_object)."""
import errno
import os

from ...abi.fcntl import R_OK, W_OK
from ...abi.stat import S_ISVTX
from ..bounded import OBJECT_BYTES
from ...abi.capability import CAP_SETFCAP, CAP_SYS_ADMIN
from ...abi.xattr import VFS_CAP_DATA, VFS_CAP_REVISION_2, \
    VFS_CAP_REVISION_3, VFS_CAP_REVISION_MASK, VFS_NS_CAP_DATA, XATTR_LIST_MAX, \
    XATTR_NAME_CAPS, XATTR_SECURITY_PREFIX, XATTR_SIZE_MAX, XATTR_SYSTEM_PREFIX, \
    XATTR_TRUSTED_PREFIX, XATTR_USER_PREFIX

RESERVED = "user.umlpy."
POSIX_ACLS = ("system.posix_acl_access", "system.posix_acl_default")

# What the guest kernel keeps in memory for objects that cannot hold a
# user.* attribute, in all: beyond it a set fails with ENOSPC, as a full
# filesystem's would.  Counted as the Python objects take it: an
# attribute's name and value and their headers, an object's key, its
# dicts and the path it was set at (so many tiny attributes on many
# symlinks are counted as what they cost, not as their few bytes).
RECORDS_BYTES = 4 << 20
ATTRIBUTE_BYTES = 2 * OBJECT_BYTES          # a str's and a bytes' headers, a slot
RECORD_BYTES = 10 * OBJECT_BYTES            # the key tuple, a dict, two slots, a str


def check_namespace(name):
    """Linux's xattr_resolve_name for the filesystems the sandbox shows:
    EOPNOTSUPP for a namespace no handler serves, EINVAL for a bare prefix
    (``user.``).  A name of umlpy's own is no guest's."""
    if name.startswith(RESERVED):
        raise OSError(errno.EOPNOTSUPP, "a name umlpy keeps for itself")
    for prefix in (XATTR_USER_PREFIX, XATTR_TRUSTED_PREFIX, XATTR_SECURITY_PREFIX):
        if name.startswith(prefix):
            if name == prefix:
                raise OSError(errno.EINVAL, "no name after the namespace")
            return
    if name not in POSIX_ACLS:
        raise OSError(errno.EOPNOTSUPP, "no such namespace")


def emulated(name):
    return name.startswith(XATTR_TRUSTED_PREFIX) or name == XATTR_NAME_CAPS


def stored_name(name):
    """The host name that keeps the guest's name name."""
    return RESERVED + name if emulated(name) else name


def shown_name(host_name):
    """The guest's name for a host attribute's, None for one it must not see."""
    if host_name.startswith(RESERVED):
        rest = host_name[len(RESERVED):]
        return rest if emulated(rest) else None
    return host_name


def carried(name):
    """Whether a copy of an object carries the attribute (copy-up, `umlpy
    diff`, `umlpy commit`): the guest's user.* and the emulated ones; the
    rest are the host's or a security module's business."""
    return (name.startswith(XATTR_USER_PREFIX) and not name.startswith(RESERVED)) \
        or emulated(name)


def guest_view(pairs):
    """{guest name: value} of what a copy carries, from a host object's
    [(host name, value)]: user.* as they are, the emulated ones from behind
    RESERVED (else a real security.capability, as emulated_value reads
    it); never a real trusted.* (the host's own) nor umlpy's other records
    (setid.py's)."""
    found, real_caps = {}, None
    for name, value in pairs:
        if name == XATTR_NAME_CAPS:
            real_caps = value
        elif name.startswith(RESERVED):
            rest = name[len(RESERVED):]
            if emulated(rest):
                found[rest] = value
        elif name.startswith(XATTR_USER_PREFIX):
            found[name] = value
    if real_caps is not None:
        found.setdefault(XATTR_NAME_CAPS, real_caps)
    return found


def permission(creds, attr, name, write):
    """Linux's xattr_permission (0 or an errno): user.* only on regular
    files and directories, by their read or write permission (a sticky
    directory's only by its owner), trusted.* only with CAP_SYS_ADMIN (the
    guest's: trusted.* is emulated), security.* and system.* left to the
    checks that follow."""
    if name.startswith((XATTR_SECURITY_PREFIX, XATTR_SYSTEM_PREFIX)):
        return 0
    if name.startswith(XATTR_TRUSTED_PREFIX):
        if not creds.caps & CAP_SYS_ADMIN:
            return errno.EPERM if write else errno.ENODATA
        return 0
    if name.startswith(XATTR_USER_PREFIX):
        if not (attr.is_reg() or attr.is_dir()):
            return errno.EPERM if write else errno.ENODATA
        if write and attr.is_dir() and attr.mode & S_ISVTX and not creds.owns(attr):
            return errno.EPERM
    return creds.permission(attr, W_OK if write else R_OK)


def check_capability_change(creds, attr):
    """Setting or removing security.capability wants CAP_SETFCAP over the
    file (commoncap: capable_wrt_inode_uidgid)."""
    if not creds.capable_wrt(CAP_SETFCAP, attr):
        raise OSError(errno.EPERM, "CAP_SETFCAP")


def capability_value(value):
    """The value Linux keeps for a security.capability the guest sets
    (cap_convert_nscap): a revision 2 header of 20 bytes or a revision 3
    one of 24, else EINVAL; revision 3 for the namespace's own root
    (rootid 0) is kept, and read back, as revision 2."""
    if len(value) == VFS_CAP_DATA.size:
        revision = VFS_CAP_DATA.get(value, "magic_etc") & VFS_CAP_REVISION_MASK
        if revision == VFS_CAP_REVISION_2:
            return value
    elif len(value) == VFS_NS_CAP_DATA.size:
        magic = VFS_NS_CAP_DATA.get(value, "magic_etc")
        if magic & VFS_CAP_REVISION_MASK == VFS_CAP_REVISION_3:
            if VFS_NS_CAP_DATA.get(value, "rootid") != 0:
                return value
            fields = list(VFS_NS_CAP_DATA.unpack(value))[:len(VFS_CAP_DATA.fields)]
            fields[0] = magic & ~VFS_CAP_REVISION_MASK | VFS_CAP_REVISION_2
            return VFS_CAP_DATA.pack(*fields)
    raise OSError(errno.EINVAL, "not a security.capability value")


def list_bytes(names):
    """listxattr's answer: each name NUL-ended."""
    return b"".join(os.fsencode(n) + b"\0" for n in names)


def visible(creds, names):
    """The names a caller is shown, in order, once each: trusted.* only to
    CAP_SYS_ADMIN, as the filesystems' list handlers do."""
    seen = []
    for n in names:
        if n is None or n in seen:
            continue
        if n.startswith(XATTR_TRUSTED_PREFIX) and not creds.caps & CAP_SYS_ADMIN:
            continue
        seen.append(n)
    return seen


def fits(name, value):
    """Whether an attribute is one the kernel could hold at all (an image's
    may claim anything)."""
    raw = os.fsencode(name)
    return 0 < len(raw) <= 255 and len(value) <= XATTR_SIZE_MAX


class Records:
    """The emulated attributes of objects that cannot hold a user.* one on
    the host (symlinks, FIFOs, sockets, devices), keyed by
    hostops.object_key (device, inode number and birth time: an inode
    number given to a new object is not the old one's).  Each object within
    the kernel's limits (XATTR_LIST_MAX of names, XATTR_SIZE_MAX a value),
    the sandbox within ``limit`` bytes: when they are used up, the records
    of objects no longer at the host path where they were last set are
    dropped (removed; a renamed one loses them then), then ENOSPC."""

    def __init__(self, limit=RECORDS_BYTES, key_of=None):
        self.objects = {}           # key -> {name: value}
        self.where = {}             # key -> the host path it was last set at
        self.overhead = {}          # key -> what its record costs beyond its attributes
        self.limit = limit
        self.used = 0
        self.key_of = key_of        # host path -> key, or None (nothing there)
        # xattrstore.Store: the upper layer's records outlive the run
        self.store = None

    @staticmethod
    def _cost(name, value):
        return len(os.fsencode(name)) + 1 + len(value) + ATTRIBUTE_BYTES

    def get(self, key, name):
        value = self.objects.get(key, {}).get(name)
        if value is None:
            raise OSError(errno.ENODATA, name)
        return value

    def names(self, key):
        return list(self.objects.get(key, ()))

    def set(self, key, name, value, create, replace, where=None, keep=True):
        """keep: tell the store (a record loaded from it is there already)."""
        attrs = self.objects.get(key, {})
        old = attrs.get(name)
        if create and old is not None:
            raise OSError(errno.EEXIST, name)
        if replace and old is None:
            raise OSError(errno.ENODATA, name)
        cost = self._cost(name, value) - (self._cost(name, old) if old is not None else 0)
        overhead = 0 if key in self.objects else RECORD_BYTES + len(where or "")
        cost += overhead
        names = len(list_bytes(attrs)) + (0 if old is not None else len(os.fsencode(name)) + 1)
        if self.used + cost > self.limit:
            self.prune(keep=key)
        if names > XATTR_LIST_MAX or self.used + cost > self.limit:
            raise OSError(errno.ENOSPC, "no room for the attribute")
        self.objects.setdefault(key, attrs)[name] = bytes(value)
        if overhead:
            self.overhead[key] = overhead
        if where is not None:
            self.where[key] = where
        self.used += cost
        if keep:
            self._keep(key)

    def _keep(self, key):
        if self.store is not None:
            self.store.save(key, self.objects[key], self.where.get(key))

    def prune(self, keep=None):
        """Drop the records of objects gone from where they were set."""
        if self.key_of is None:
            return
        for key in list(self.objects):
            where = self.where.get(key)
            if key != keep and (where is None or self.key_of(where) != key):
                self.forget(key)

    def forget(self, key):
        if self.store is not None and key in self.objects:
            self.store.drop(key)
        self.where.pop(key, None)
        self.used -= self.overhead.pop(key, 0)
        for name, value in self.objects.pop(key, {}).items():
            self.used -= self._cost(name, value)

    def remove(self, key, name):
        attrs = self.objects.get(key, {})
        old = attrs.pop(name, None)
        if old is None:
            raise OSError(errno.ENODATA, name)
        self.used -= self._cost(name, old)
        if not attrs:
            self.forget(key)
        else:
            self._keep(key)
