"""Address spaces and shared memory (the memory family)."""
from .registry import TABLE

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
