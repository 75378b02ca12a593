"""The observer: sees every call the guest kernel decides (it runs in
``Mode.TRACE_ALL``), keeps what a trace needs of it in a ``Rec`` and hands
finished records to the sinks (text, JSON lines, summary, timeline).

It also follows the process tree (clone/fork/vfork results give each
child's parent; execve its program) and process exits, which the
timeline draws and the text trace prints as ``+++ exited with N +++``.
"""
import os
import sys
import time

from .decode import Ctx, DEFAULT_STRSIZE, decode_entry, decode_exit
from .filters import Filter

CREATORS = frozenset({"clone", "clone3", "fork", "vfork"})
EXECS = frozenset({"execve", "execveat"})


class Rec:
    """One syscall of one thread."""
    __slots__ = ("seq", "tid", "pid", "nr", "name", "args", "decoded", "result", "t0",
                 "t1", "note", "unfinished", "shown", "ctx", "comm")

    def __init__(self, seq, tid, pid, nr, name, args, t0):
        self.seq = seq
        self.tid = tid          # host tid
        self.pid = pid          # the guest's tid
        self.nr = nr
        self.name = name
        self.args = args
        self.t0 = t0
        self.t1 = None
        self.result = None
        self.decoded = None
        self.note = None        # INJECTED / DELAYED
        self.unfinished = False
        self.shown = True
        self.ctx = None         # the decoders' Ctx, from entry to exit
        self.comm = None        # execve: the program's name

    @property
    def duration(self):
        return None if self.t1 is None else self.t1 - self.t0


class Proc:
    """One guest thread as the trace saw it."""
    __slots__ = ("tid", "pid", "parent", "start", "end", "status", "comm", "thread",
                 "calls", "errors")

    def __init__(self, tid, pid, start):
        self.tid, self.pid, self.start = tid, pid, start
        self.parent = None
        self.end = None
        self.status = None
        self.comm = None
        self.thread = False
        self.calls = 0
        self.errors = 0


class TraceSession:
    def __init__(self, filter=None, injector=None, strsize=DEFAULT_STRSIZE,
                 decode_fds=False, sinks=(), decoding=True):
        self.filter = filter or Filter()
        self.injector = injector
        self.strsize = strsize
        self.decode_fds = decode_fds
        self.sinks = list(sinks)
        self.decoding = decoding
        self.kernel = None
        self.seq = 0
        self.procs = {}             # host tid -> Proc (the live ones)
        self.all_procs = []         # every Proc, in the order seen
        self.parents = {}           # guest pid -> (parent guest pid, is a thread)
        self.started = None
        self._complained = False

    # wiring --------------------------------------------------------------------
    def attach(self, kernel):
        """Called with the guest kernel before the guest starts."""
        self.kernel = kernel
        self.started = time.time()
        if self.injector:
            self.injector.install(kernel)
        kernel.observe(self)
        # process exits: the kernel's observers see calls only, so follow
        # its exit handler (an instance attribute: the class is untouched)
        inner = kernel._on_exit

        def on_exit(tid, status):
            inner(tid, status)
            self.process_exit(tid, status)
        kernel._on_exit = on_exit

    def close(self):
        if self.kernel is None:
            return          # the guest never started (bad options): nothing to report
        for proc in self.procs.values():
            if proc.end is None:
                proc.end = time.time()
        for sink in self.sinks:
            sink.close(self) if getattr(sink, "wants_session", False) else sink.close()

    # the observer interface ----------------------------------------------------
    # A bug of the trace must not end the guest: said once, then the call
    # goes untraced (UMLPY_DEBUG=1 raises instead).
    def on_enter(self, call, decision):
        try:
            return self._enter(call)
        except Exception as e:
            self._internal_error(e)
            return None

    def on_exit(self, rec, result):
        try:
            self._exit(rec, result)
        except Exception as e:
            self._internal_error(e)

    def _internal_error(self, error):
        if os.environ.get("UMLPY_DEBUG"):
            raise error
        if not self._complained:
            self._complained = True
            sys.stderr.write(f"umlpy trace: internal error: {type(error).__name__}: {error} "
                             "(some calls are not traced)\n")

    def _enter(self, call):
        tid = call.tid
        inj = self.injector
        if inj and inj.is_internal(tid):
            return None
        now = time.time()
        proc = self.procs.get(tid)
        if proc is None:
            proc = self._new_proc(tid, now)
        name = call.name
        note = inj.take_note(tid) if inj else None
        shown = self.filter.selects(name)
        if not shown and name not in CREATORS and name not in EXECS:
            return None
        self.seq += 1
        rec = Rec(self.seq, tid, proc.pid, call.nr, name, call.args,
                  note[1] if note else now)
        rec.note = note[0] if note else None
        rec.shown = shown
        if name in EXECS:
            rec.comm = self._exec_name(call)
        if shown and self.decoding:
            ctx = Ctx(call, self.strsize)
            if self.decode_fds:
                ctx.fd_text = self._fd_texter(tid)
                ctx.cwd_text = self._cwd_texter(tid)
            rec.decoded = decode_entry(name, ctx)
            rec.ctx = ctx
            for sink in self.sinks:
                if hasattr(sink, "enter"):
                    sink.enter(rec)
        return rec

    def _exit(self, rec, result):
        if rec is None:
            return
        rec.t1 = time.time()
        inj = self.injector
        if inj:
            result = inj.results.pop(rec.tid, result)
            if rec.tid in inj.undelayed:
                inj.undelayed.discard(rec.tid)
                rec.note = None
        rec.result = result
        name = rec.name
        if name in CREATORS and result is not None and result > 0:
            thread = name in ("clone", "clone3") and self._clone_thread(rec)
            self.parents[result] = (rec.pid, thread)
        elif name in EXECS and result == 0 and rec.comm:
            proc = self.procs.get(rec.tid)
            if proc is not None:
                proc.comm = rec.comm
        if not rec.shown:
            return
        proc = self.procs.get(rec.tid)
        if proc is not None:
            proc.calls += 1
            if result is not None and -4096 < result < 0:
                proc.errors += 1
        if rec.decoded is not None:
            decode_exit(name, rec.ctx, rec.decoded, result)
        rec.ctx = None
        if not self.filter.outcome_ok(result):
            return
        for sink in self.sinks:
            sink.exit(rec)

    def process_exit(self, tid, status):
        proc = self.procs.pop(tid, None)
        if proc is None:
            return
        proc.end = time.time()
        proc.status = status
        for sink in self.sinks:
            if hasattr(sink, "process_exit"):
                sink.process_exit(proc.pid, status, proc.end)

    # helpers ---------------------------------------------------------------------
    def _new_proc(self, tid, now):
        pid = tid
        kernel = self.kernel
        if kernel is not None:
            try:
                pid = kernel.processes.guest_tid(tid) or tid
            except OSError:
                pass
        proc = self.procs[tid] = Proc(tid, pid, now)
        self.all_procs.append(proc)
        return proc

    def guest_pid(self, tid):
        proc = self.procs.get(tid)
        return proc.pid if proc is not None else tid

    @staticmethod
    def _clone_thread(rec):
        if rec.name == "clone":
            return bool(rec.args[0] & 0x10000)
        # clone3 keeps its flags in memory; the kernel makes the guest's libc
        # fall back to clone, so this is rare: call it a process
        return False

    def _exec_name(self, call):
        try:
            path = call.read_str(call.args[0 if call.name == "execve" else 1], 4096)
        except OSError:
            return None
        return os.path.basename(os.fsdecode(path)) or None

    def _fd_texter(self, tid):
        vfs = self.kernel.vfs if self.kernel is not None else None

        def fd_text(fd):
            if vfs is None:
                return None
            try:
                return vfs.fd_link_text(tid, fd)
            except (OSError, ValueError):
                return None
        return fd_text

    def _cwd_texter(self, tid):
        vfs = self.kernel.vfs if self.kernel is not None else None

        def cwd_text():
            if vfs is None:
                return None
            try:
                return vfs.context(vfs.tgid_of(tid)).cwd
            except (OSError, ValueError, KeyError):
                return None
        return cwd_text
