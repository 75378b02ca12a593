"""Reading facts about guest threads from the host's /proc (the tracer's
view: host pids).  Small, uncached readers; callers cache what they need."""


def status_fields(host_tid):
    """/proc/TID/status as {field: value string}; {} if the thread is gone."""
    try:
        with open(f"/proc/{host_tid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def innermost_ids(value):
    """The last number of an NSpid/NStgid/NSpgid/NSsid line: the id as the
    innermost pid namespace sees it (0 if it cannot see it)."""
    parts = value.split()
    return int(parts[-1]) if parts else 0


def signal_disposition(host_tid, sig):
    """'ignored', 'handled' or 'default' for sig in host_tid's process."""
    fields = status_fields(host_tid)
    bit = 1 << (sig - 1)
    if int(fields.get("SigIgn", "0"), 16) & bit:
        return "ignored"
    if int(fields.get("SigCgt", "0"), 16) & bit:
        return "handled"
    return "default"


def process_group(host_pid):
    """The host process-group id of host_pid, or None if it is gone."""
    try:
        with open(f"/proc/{host_pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[2])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def pidfd_target(host_pid, fd):
    """The host pid a pidfd of host_pid's refers to, or None."""
    try:
        with open(f"/proc/{host_pid}/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return None
