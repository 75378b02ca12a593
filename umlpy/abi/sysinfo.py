"""struct sysinfo (sysinfo(2)), x86_64's."""
from .layout import Layout

SYSINFO = Layout("sysinfo", (
    ("uptime", "q"), ("load1", "Q"), ("load5", "Q"), ("load15", "Q"),
    ("totalram", "Q"), ("freeram", "Q"), ("sharedram", "Q"), ("bufferram", "Q"),
    ("totalswap", "Q"), ("freeswap", "Q"), ("procs", "H"), ("pad", "H"), (None, "4x"),
    ("totalhigh", "Q"), ("freehigh", "Q"), ("mem_unit", "I"), (None, "4x"),
))
