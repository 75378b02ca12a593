"""Extended attributes: the namespaces, the set flags, the kernel's size
limits, struct xattr_args (the *xattrat calls, Linux 6.13) and the header
of a security.capability value (struct vfs_cap_data / vfs_ns_cap_data)."""
from .layout import Layout
from .resource import XATTR_NAME_MAX, XATTR_SIZE_MAX  # noqa: F401 -- their home is resource

XATTR_CREATE = 0x1              # fail with EEXIST if the name exists
XATTR_REPLACE = 0x2             # fail with ENODATA if it does not
XATTR_LIST_MAX = 65536          # the longest list listxattr gives

XATTR_USER_PREFIX = "user."
XATTR_TRUSTED_PREFIX = "trusted."
XATTR_SECURITY_PREFIX = "security."
XATTR_SYSTEM_PREFIX = "system."
XATTR_NAME_CAPS = "security.capability"

# struct xattr_args (include/uapi/linux/xattr.h): the value, its size and
# the set flags; a caller passes at least its first version's size
XATTR_ARGS = Layout("xattr_args", (("value", "Q"), ("size", "I"), ("flags", "I")))
XATTR_ARGS_SIZE_VER0 = 16

# security.capability values (include/uapi/linux/capability.h): revision 2
# (permitted and inheritable, 2 x 32 bits each) and 3 (and the namespace's
# root uid the capabilities are for)
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
VFS_CAP_DATA = Layout("vfs_cap_data", (("magic_etc", "I"), ("permitted0", "I"),
                                       ("inheritable0", "I"), ("permitted1", "I"),
                                       ("inheritable1", "I")))
VFS_NS_CAP_DATA = Layout("vfs_ns_cap_data", (("magic_etc", "I"), ("permitted0", "I"),
                                             ("inheritable0", "I"), ("permitted1", "I"),
                                             ("inheritable1", "I"), ("rootid", "I")))
