"""The VFS family, split as Linux splits fs/: open, stat (the looking
calls), namei (changing the tree), attr (changing attributes), xattr;
what they share is in common.  Importing it fills the table; the names
other families use are here."""
from . import attr, mount, namei, open, stat, xattr  # noqa: F401 -- they fill the table
from .attr import chmod, chown
from .common import checks_on_host, foreign_host_file, host_checks, host_path_is_ours, \
    lookup_existing, \
    on_fd_itself, on_host, path_arg, refuse_foreign, rewrite, vfs_call
from .open import create_here
from .stat import write_stat
from .xattr import change_xattr

__all__ = ["change_xattr", "checks_on_host", "chmod", "chown", "create_here", "host_checks",
           "foreign_host_file", "host_path_is_ours", "lookup_existing", "on_fd_itself",
           "on_host", "path_arg", "refuse_foreign", "rewrite", "vfs_call", "write_stat"]
