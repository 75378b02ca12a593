"""The guest's process table.

It records every guest thread as the tracer learns of it (host tids, from
ptrace events) and maps host ids to the guest's both ways.  With a pid
namespace the host kernel allocates guest pids (so futexes, siginfo,
SCM_CREDENTIALS and tty process groups all agree); the table reads each
thread's guest id from /proc/TID/status (NSpid) when first asked.
"""
from . import procfs
FORK, VFORK, CLONE = 1, 2, 3      # PTRACE_EVENT_FORK/VFORK/CLONE


class Thread:
    __slots__ = ("tid", "parent", "created_by", "execs", "guest_tid")

    def __init__(self, tid):
        self.tid = tid
        self.guest_tid = None        # filled on demand
        self.parent = None           # tid that created it, if known
        self.created_by = 0          # FORK, VFORK or CLONE (0: spawned or unknown)
        self.execs = 0


class ProcessTable:
    def __init__(self, pid_namespace=True):
        self.threads = {}
        self.main = None
        self.created = 0             # threads and processes ever seen
        self.starting = {}           # tid -> its clone/fork/vfork in flight (--pids)
        # Threads that exited before their parent's event was seen (their
        # own stops came first): the event, when it comes, is about a
        # thread that is gone.
        self.gone_unannounced = set()
        self.pid_namespace = pid_namespace

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
        """parent's fork, vfork or clone event made child: its Thread, or
        None if child has already come and gone (it is not made again:
        it would stay in the table, and count, for good)."""
        self._add(parent)
        self.starting.pop(parent, None)     # the child counts itself now
        if child in self.gone_unannounced:
            self.gone_unannounced.discard(child)
            return None
        return self._add(child, parent, how)

    def counted(self):
        """Threads, with the ones a clone in flight is making: what --pids
        holds to, as a cgroup's pids.max charges a fork before it runs."""
        return len(self.threads) + len(self.starting)

    def first_stop(self, tid):
        """A tracee's first stop; it may come before its parent's event."""
        return self._add(tid)

    def exec_done(self, tid, former_tid):
        if former_tid != tid:
            # A non-leader thread exec'd: it now has the leader's tid.
            self.threads.pop(former_tid, None)
        self._add(tid).execs += 1

    def exited(self, tid):
        self.starting.pop(tid, None)
        thread = self.threads.pop(tid, None)
        if thread is not None and thread.parent is None and tid != self.main:
            self.gone_unannounced.add(tid)
        return thread

    def live_tids(self):
        return list(self.threads)

    def is_init_thread(self, host_tid):
        """Is host_tid a thread of the sandbox's first process?"""
        if host_tid == self.main:
            return True
        tgid = procfs.status_fields(host_tid).get("Tgid")
        return tgid is not None and int(tgid) == self.main

    def guest_tid(self, host_tid):
        """The tid the guest knows host_tid by (0 if it cannot see it)."""
        if not self.pid_namespace:
            return host_tid
        thread = self.threads.get(host_tid)
        if thread is not None and thread.guest_tid:
            return thread.guest_tid
        nspid = procfs.status_fields(host_tid).get("NSpid", "")
        guest = procfs.innermost_ids(nspid) if len(nspid.split()) > 1 else 0
        if thread is not None:
            thread.guest_tid = guest
        return guest

    def host_tid(self, guest_tid):
        """The host tid of guest thread guest_tid, or None if the sandbox
        has no such thread."""
        if not self.pid_namespace:
            return guest_tid if guest_tid in self.threads else None
        for host in list(self.threads):
            if self.guest_tid(host) == guest_tid:
                return host
        return None
