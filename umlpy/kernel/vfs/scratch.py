"""Scratch memory in each guest process: where the guest kernel writes the
arguments of a call it rewrote (a host path, an open_how, an argv).

One mapping per address space, made by a syscall injected into the
stopped thread; each thread gets its own slot, so a rewritten call of one
thread never reads another's arguments.  The mapping is PROT_READ for the
guest (the tracer writes through /proc/PID/mem), so a guest thread cannot
scribble over a slot between the rewrite and the host reading it; and it
is sealed (mseal, Linux 6.10+), so the guest can neither make it writable
nor unmap it and put memory of its own in its place.  (Writing it through
/proc/PID/mem, which ignores protections, is refused by the guest VFS.)"""
import errno

from ...abi import MASK64
from ...abi.mman import MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PAGE_SIZE, PROT_READ
from ..syscalls.names import SYSCALL_NUMBERS

SYS_MMAP = SYSCALL_NUMBERS["mmap"]
SYS_MSEAL = SYSCALL_NUMBERS["mseal"]
SLOT_SIZE = 64 * 1024
SLOTS = 64
REGION = SLOT_SIZE * SLOTS


_has_mseal = None


def kernel_has_mseal():
    """Asked of the host kernel from umlpy's own process (an empty range),
    never of the guest, whose filters could answer in its place."""
    global _has_mseal
    if _has_mseal is None:
        from ..._native._tracer import lib
        _has_mseal = bool(lib.umlpy_kernel_has_mseal())
    return _has_mseal


def _seccomp_filters(pid="self", status=None):
    from .. import procfs
    value = (status or procfs.status_fields(pid)).get("Seccomp_filters")
    return int(value) if value is not None and value.isdigit() else None


def _no_filters_of_its_own(tid, known):
    """Whether thread tid carries only GUEST_FILTERS, counted after the
    calls injected into it (filters are never removed).  known: its
    status read at this stop, before them; enough if it was then its
    process's only thread, for only a thread of its own process (with
    SECCOMP_FILTER_FLAG_TSYNC) could have given it a filter since."""
    if known is None or known.get("Threads") != "1":
        known = None
    return _seccomp_filters(tid, known) == GUEST_FILTERS


# What every guest thread carries: the filters umlpy itself runs under
# (a container engine's, say), which its guests inherit, plus the one
# umlpy installs.  A thread with exactly these has no filter of its own.
GUEST_FILTERS = (_seccomp_filters() or 0) + 1


class ScratchSpace:
    """Slots are handed out per mapping, not per process: a vfork child
    shares its parent's memory, so its slot must differ from those of the
    parent's other threads (a forked child merely wastes a few slots)."""

    def __init__(self, tracer):
        self.tracer = tracer
        self.regions = {}       # tgid -> base address of its mapping
        self.slots = {}         # base -> {tid: slot number}
        self.slot_of = {}       # tid -> base it holds a slot in
        self.execed = set()     # tgids whose exec we saw (their own memory now)
        self.unsealed = False   # the host kernel has no mseal
        # address spaces whose scratch mapping was not what was asked for
        # (a guest filter faked the injected mmap or mseal): no call that
        # needs scratch memory is made for them, ever
        self.tainted = set()
        self.on_slot = None     # on_slot(tid, address or 0): the native cache's copy
        self.parent_of = {}     # tgid -> the tgid that forked it
        # processes whose forked children mapped scratch memory of their own
        # (a shell running programs): mapped once in the parent instead, at
        # its next fork, every child after that inherits it
        self.forkers = set()
        self.same_memory = {}   # vfork child tgid -> the parent whose memory it runs in
        self.mapped = 0         # mappings made (injected mmap + mseal)

    def _release(self, tid):
        base = self.slot_of.pop(tid, None)
        if base is not None:
            self.slots.get(base, {}).pop(tid, None)
            if self.on_slot is not None:
                self.on_slot(tid, 0)

    def forget(self, tgid, tid=None):
        """An exec replaced the address space (of tgid, run by tid)."""
        self.regions.pop(tgid, None)
        self.execed.add(tgid)
        self.forkers.discard(tgid)      # another program now
        self.same_memory.pop(tgid, None)    # and its own memory
        self._release(tgid)
        if tid is not None:
            self._release(tid)

    def inherit(self, parent_tgid, child_tgid, shares_memory=False):
        """fork and vfork children see the mapping at the same address.
        shares_memory: the child runs in its parent's address space (vfork,
        CLONE_VM), so a mapping it makes is its parent's too."""
        self.parent_of[child_tgid] = parent_tgid
        if shares_memory:
            self.same_memory[child_tgid] = parent_tgid
        else:
            self.same_memory.pop(child_tgid, None)
        base = self.regions.get(parent_tgid)
        if base is not None and child_tgid not in self.execed:
            self.regions[child_tgid] = base

    def wants_premap(self, tgid):
        """Whether to map tgid's scratch at this fork of its: children of
        its needed one of their own, and it has none."""
        return tgid in self.forkers and tgid not in self.regions and tgid not in self.tainted

    def _mapped(self, tid, base):
        try:
            return len(self.tracer.read_mem(tid, base, 1)) == 1
        except OSError:
            return False

    def thread_exited(self, tgid, tid):
        self._release(tid)
        if tid == tgid:
            self.tainted.discard(tgid)
            self.execed.discard(tgid)
            self.regions.pop(tgid, None)
            self.parent_of.pop(tgid, None)
            self.same_memory.pop(tgid, None)
            self.forkers.discard(tgid)

    def slot(self, tid, tgid, status=None):
        """(address, size) of tid's slot, mapping the region if needed
        (status: tid's /proc status fields read at this stop, if any)."""
        if tgid in self.tainted:
            raise OSError(errno.EPERM, "the guest interfered with its scratch memory")
        base = self.regions.get(tgid)
        if base is not None and not self._mapped(tid, base):
            # the fork event came after the child's exec: not its memory
            self.forget(tgid, tid)
            base = None
        if base is None:
            r = self.tracer.inject_syscall(tid, SYS_MMAP, (
                0, REGION, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                MASK64, 0))                 # fd -1
            if -4096 < r < 0:
                raise OSError(-r, "cannot map the guest kernel's scratch memory")
            sealed = self.tracer.inject_syscall(tid, SYS_MSEAL, (r, REGION, 0, 0, 0, 0))
            has_mseal = kernel_has_mseal()
            if has_mseal and sealed != 0:
                # a filter of the guest's own answered it (the host kernel
                # has mseal): no rewritten call for this address space
                self.tainted.add(tgid)
                raise OSError(errno.EPERM, "the guest kept its scratch memory from "
                              "being sealed")
            if sealed != 0 and sealed != -errno.ENOSYS:
                raise OSError(-sealed, "cannot seal the guest kernel's scratch memory")
            if sealed != 0 and not self.unsealed:
                import sys
                sys.stderr.write("umlpy: warning: this kernel has no mseal (Linux < 6.10): "
                                 "the guest could make its scratch memory writable\n")
            self.unsealed = self.unsealed or sealed != 0
            # The guest's own seccomp filters apply to injected calls too:
            # one can answer mseal (or mmap) with a fake success.  A thread
            # that has none, counted after both calls (filters are never
            # removed), had its calls answered by the host kernel; for any
            # other, believe only what the host kernel shows of the mapping.
            if not _no_filters_of_its_own(tid, status) and \
                    not mapping_is_sealed(tid, r, REGION, require_seal=has_mseal):
                self.tainted.add(tgid)
                raise OSError(errno.EPERM, "the guest interfered with its scratch memory")
            base = self.regions[tgid] = r
            self.mapped += 1
            parent = self.parent_of.get(tgid)
            if parent is not None and self.same_memory.get(tgid) == parent:
                # made, and checked sealed, in the parent's own memory:
                # its next vfork children find it there
                self.regions.setdefault(parent, r)
            elif parent is not None:
                self.forkers.add(parent)
        if self.slot_of.get(tid) != base:
            self._release(tid)
        used = self.slots.setdefault(base, {})
        n = used.get(tid)
        if n is None:
            taken = set(used.values())
            n = next((i for i in range(SLOTS) if i not in taken), None)
            if n is None:
                raise OSError(errno.EAGAIN, "too many threads in the VFS at once")
            used[tid] = n
            self.slot_of[tid] = base
            if self.on_slot is not None:
                self.on_slot(tid, base + n * SLOT_SIZE)
        return base + n * SLOT_SIZE, SLOT_SIZE


def mapping_is_sealed(tid, base, size, require_seal=True):
    """Whether /proc/TID/smaps shows every byte of [base, base+size) in
    read-only mappings, sealed (the "sl" flag: mprotect can no longer make
    them writable) if require_seal.  Neighbouring mappings with the same
    flags merge (the scratch of a vfork child beside its parent's), so the
    range may lie inside a larger one."""
    if base <= 0 or base & (PAGE_SIZE - 1):
        return False
    try:
        with open(f"/proc/{tid}/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    covered = base             # the range is checked up to here
    header = None
    for line in lines:
        first = line.split(" ", 1)[0]
        if "-" in first and line[:1] in "0123456789abcdef":
            start, end = (int(x, 16) for x in first.split("-"))
            header = (start, end, line.split()[1]) if start <= covered < end else None
        elif header is not None and line.startswith("VmFlags:"):
            start, end, perms = header
            flags = line.split()[1:]
            if not perms.startswith("r-") or "wr" in flags or \
                    (require_seal and "sl" not in flags):
                return False
            covered = end
            if covered >= base + size:
                return True
            header = None
    return False


class ArgWriter:
    """Lay out strings and structs in a slot; write() puts them in the guest."""

    def __init__(self, base, size):
        self.base, self.size = base, size
        self.buf = bytearray()

    def add(self, data, align=8):
        pad = (-len(self.buf)) % align
        self.buf += bytes(pad)
        addr = self.base + len(self.buf)
        self.buf += data
        if len(self.buf) > self.size:
            raise OSError(errno.E2BIG, "rewritten arguments do not fit")
        return addr

    def string(self, s):
        if isinstance(s, str):
            s = s.encode("utf-8", "surrogateescape")
        return self.add(s + b"\0", 1)
