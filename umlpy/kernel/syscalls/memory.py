"""Address spaces and shared memory (the memory family).

A noexec mount (--noexec, noexec in a --bind's or --tmpfs's options, the
guest's own MS_NOEXEC mount) is Linux's MS_NOEXEC for mappings too:
mmap of a file on it with PROT_EXEC fails with EPERM (mm/mmap.c,
path_noexec), and mprotect or pkey_mprotect adding PROT_EXEC to a mapping
of such a file fails with EACCES (its VM_MAYEXEC is clear), after the
mappings before it in the range were changed, as Linux walks them.  Only
a sandbox that starts with a noexec mount pays for it: there the filter
stops these calls when they ask for PROT_EXEC (a guarded option rule);
anywhere else they never stop."""
import errno

from ...abi import MASK64
from ...abi.mman import MAP_ANONYMOUS, PAGE_SIZE, PROT_EXEC
from ..decisions import AllowThen, Rewrite, fail
from .registry import TABLE, Guard

FAMILY = "memory"

TABLE.passthrough(
    FAMILY,
    "brk", "mmap", "munmap", "mprotect", "mremap", "msync", "mincore",
    "madvise", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
    "remap_file_pages", "mbind", "set_mempolicy", "get_mempolicy",
    "set_mempolicy_home_node", "migrate_pages", "move_pages",
    "pkey_mprotect", "pkey_alloc", "pkey_free", "membarrier",
    "shmget", "shmat", "shmdt", "shmctl",
    "map_shadow_stack", "mseal", "modify_ldt",
)

DELETED = " (deleted)"


def noexec_host_file(kernel, host_path):
    """Whether a host file (an fd's /proc link, a mapping's path in
    /proc/PID/maps) lies on a noexec mount as the guest sees it: the
    mount that shows it (mounts.showing_host, the one /proc/PID/fd names
    it by)."""
    vfs = kernel.vfs
    if vfs is None or not host_path or not host_path.startswith("/"):
        return False
    if host_path.endswith(DELETED):
        host_path = host_path[:-len(DELETED)]
    m = vfs.mounts.showing_host(host_path)
    return m is not None and m.noexec


def _fd_readable(tid, fd):
    """Whether the fd was opened for reading (mmap checks that first:
    EACCES from the host), from /proc/TID/fdinfo."""
    try:
        with open(f"/proc/{tid}/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & 3 != 1     # not O_WRONLY
    except (OSError, ValueError, IndexError):
        pass
    return True


def noexec_mmap(call):
    """mmap of a file on a noexec mount with PROT_EXEC: EPERM."""
    a = call.args
    if not a[2] & PROT_EXEC or a[3] & MAP_ANONYMOUS:
        return None
    fd = call.int(4)
    if fd < 0 or a[1] & MASK64 == 0 or a[5] & (PAGE_SIZE - 1):
        return None         # the host's own errors (EBADF, EINVAL) come first
    host = call.kernel.vfs.fd_host_path(call.tid, fd)
    if not noexec_host_file(call.kernel, host) or not _fd_readable(call.tid, fd):
        return None
    return fail(errno.EPERM)


def _mappings(tid):
    """[(start, end, path or "")] of the thread's address space, from its
    host /proc/TID/maps (host paths)."""
    out = []
    with open(f"/proc/{tid}/maps", "rb") as f:
        for line in f:
            fields = line.rstrip(b"\n").split(None, 5)
            if len(fields) < 5:
                continue
            start, _, end = fields[0].partition(b"-")
            path = fields[5].decode("utf-8", "surrogateescape") if len(fields) > 5 else ""
            out.append((int(start, 16), int(end, 16), path))
    return out


def noexec_mprotect(call):
    """mprotect (and pkey_mprotect) adding PROT_EXEC over a mapping of a
    file on a noexec mount: EACCES; the mappings before it in the range
    are changed first, as Linux walks them (the call is cut short there,
    and fails once it has run)."""
    a = call.args
    if not a[2] & PROT_EXEC:
        return None
    start, length = a[0] & MASK64, a[1] & MASK64
    if start & (PAGE_SIZE - 1) or length == 0:
        return None         # EINVAL, or nothing to change: the host's answer
    end = start + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end > MASK64 or end <= start:
        return None
    try:
        maps = _mappings(call.tid)
    except OSError:
        return None         # the thread is gone: its call ends with it
    cursor = start
    for vstart, vend, path in maps:
        if vend <= cursor:
            continue
        if vstart > cursor or cursor >= end:
            break           # a hole (ENOMEM from the host) or past the range
        if path and noexec_host_file(call.kernel, path):
            if cursor == start:
                return fail(errno.EACCES)
            args = list(a)
            args[1] = cursor - start

            def refused(call, result):
                return -errno.EACCES if result == 0 else None
            return AllowThen(refused, rewrite=Rewrite(call.nr, args))
        cursor = vend
    return None


WHY_MAP = ("with a file on a noexec mount: EPERM, as Linux's MS_NOEXEC (stops only with "
           "PROT_EXEC, in a sandbox with a noexec mount: --noexec, or noexec in a --bind's "
           "or --tmpfs's options)")
WHY_PROTECT = ("PROT_EXEC over a mapping of a file on a noexec mount: EACCES, as Linux's "
               "MS_NOEXEC (stops only with PROT_EXEC, in a sandbox with a noexec mount: "
               "--noexec, or noexec in a --bind's or --tmpfs's options)")


def has_noexec_mounts(config):
    return config.noexec_mounts()


TABLE.when("noexec", "mmap", why=WHY_MAP, guard=Guard(2, mask=PROT_EXEC),
           condition=has_noexec_mounts)(noexec_mmap)
TABLE.when("noexec", "mprotect", "pkey_mprotect", why=WHY_PROTECT,
           guard=Guard(2, mask=PROT_EXEC), condition=has_noexec_mounts)(noexec_mprotect)


# personality(READ_IMPLIES_EXEC) makes the host add PROT_EXEC to every
# PROT_READ mapping, where Linux never adds it for a file on a noexec
# mount; the host's files are not noexec, and a PROT_READ mmap does not
# stop.  In a sandbox with a noexec mount the bit is kept off the host.
READ_IMPLIES_EXEC = 0x0400000
PERSONALITY_QUERY = 0xFFFFFFFF


def no_read_implies_exec(call):
    persona = call.uint(0)
    if persona == PERSONALITY_QUERY or not persona & READ_IMPLIES_EXEC:
        return None
    args = list(call.args)
    args[0] = persona & ~READ_IMPLIES_EXEC
    return Rewrite(call.nr, args)


TABLE.when("noexec", "personality", why="READ_IMPLIES_EXEC is kept off the host (it would "
           "make PROT_READ mappings of a noexec mount's files executable), in a sandbox with "
           "a noexec mount", guard=Guard(0, mask=READ_IMPLIES_EXEC),
           condition=has_noexec_mounts)(no_read_implies_exec)
