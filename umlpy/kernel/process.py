"""The guest's process table.

For now it records host tids as the tracer learns of them (pids are still
the host's); it is the one place that knows which threads belong to the
sandbox, and so the one place the virtual pid map will live.
"""
FORK, VFORK, CLONE = 1, 2, 3      # PTRACE_EVENT_FORK/VFORK/CLONE


class Thread:
    __slots__ = ("tid", "parent", "created_by", "execs")

    def __init__(self, tid):
        self.tid = tid
        self.parent = None           # tid that created it, if known
        self.created_by = 0          # FORK, VFORK or CLONE (0: spawned or unknown)
        self.execs = 0


class ProcessTable:
    def __init__(self):
        self.threads = {}
        self.main = None
        self.created = 0             # threads and processes ever seen

    def spawned(self, tid):
        self.main = tid
        self._add(tid)

    def _add(self, tid, parent=None, created_by=0):
        thread = self.threads.get(tid)
        if thread is None:
            thread = self.threads[tid] = Thread(tid)
            self.created += 1
        if parent is not None:
            thread.parent = parent
            thread.created_by = created_by
        return thread

    def child_created(self, parent, child, how):
        self._add(parent)
        return self._add(child, parent, how)

    def first_stop(self, tid):
        """A tracee's first stop; it may come before its parent's event."""
        return self._add(tid)

    def exec_done(self, tid, former_tid):
        if former_tid != tid:
            # A non-leader thread exec'd: it now has the leader's tid.
            self.threads.pop(former_tid, None)
        self._add(tid).execs += 1

    def exited(self, tid):
        return self.threads.pop(tid, None)

    def live_tids(self):
        return list(self.threads)
