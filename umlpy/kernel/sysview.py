"""The machine as the sandbox shows it, as a VPS shows its own:
/proc/meminfo, /proc/uptime and sysinfo(2).

The uptime counts from the sandbox's start, and sysinfo's process count is
the sandbox's threads.  With a --memory limit, the limit is the machine's
memory and the guests' own private memory is what is used; the fields add
up as free(1) reads them (used = total - free - buffers - cache -
reclaimable): the host's page cache, buffers and swap are not the
sandbox's, and no other field says more than the total."""
import time

from ..abi.sysinfo import SYSINFO
from .limits import guest_tgids, private_memory

# fields of /proc/meminfo that are the host's alone: none of it in a
# sandbox with a memory limit
HOST_ONLY = ("Buffers", "Cached", "SwapCached", "SReclaimable", "Shmem", "SwapTotal",
             "SwapFree", "Zswap", "Zswapped", "ShmemHugePages", "ShmemPmdMapped",
             "FileHugePages", "FilePmdMapped")


class SystemView:
    def __init__(self, kernel, memory_limit=None):
        self.kernel = kernel
        self.memory_limit = memory_limit
        self.started = time.monotonic()

    def start(self):
        """The sandbox starts now (its first process is spawned)."""
        self.started = time.monotonic()

    def uptime(self):
        return time.monotonic() - self.started

    def used(self):
        """Private memory of every guest process, in bytes."""
        total = 0
        for tgid in guest_tgids(self.kernel):
            try:
                total += private_memory(tgid)
            except (OSError, ValueError):
                pass        # gone meanwhile
        return total

    def meminfo(self, host_text):
        """/proc/meminfo from the host's text."""
        if not self.memory_limit:
            return host_text
        total = self.memory_limit // 1024
        free = max(0, total - self.used() // 1024)
        out = []
        for line in host_text.splitlines(True):
            key, _, rest = line.partition(":")
            value = rest.split()
            if len(value) != 2 or value[1] != "kB" or not value[0].isdigit():
                out.append(line)
                continue
            if key == "MemTotal":
                kb = total
            elif key in ("MemFree", "MemAvailable"):
                kb = free
            elif key in HOST_ONLY:
                kb = 0
            else:
                kb = min(int(value[0]), total)
            out.append(f"{key + ':':<16}{kb:>8} kB\n")
        return "".join(out)

    def sysinfo(self, host_bytes):
        """struct sysinfo from the host's."""
        fields = SYSINFO.todict(host_bytes[:SYSINFO.size])
        fields["uptime"] = int(self.uptime())
        fields["procs"] = min(len(self.kernel.processes.threads), 0xFFFF)
        if self.memory_limit:
            unit = fields["mem_unit"] or 1
            free = max(0, self.memory_limit - self.used())
            fields.update(totalram=self.memory_limit // unit, freeram=free // unit,
                          sharedram=0, bufferram=0, totalswap=0, freeswap=0, totalhigh=0,
                          freehigh=0)
        return SYSINFO.fromdict(fields)
