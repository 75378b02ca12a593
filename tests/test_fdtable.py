"""The fd table against a model.

tests/guest/fdops.c reads a script of fd operations (open, openat, open of
/proc/self/fd/N, dup, dup2, dup3, F_DUPFD[_CLOEXEC], F_SETFD, F_SETFL,
close, close_range, read, write, lseek, fchdir, unlink, pipe, socketpair,
eventfd, timerfd, signalfd, epoll, memfd, and fork / thread /
clone(CLONE_FILES) / exec around them) and after each one prints its
result and its whole descriptor table as /proc/self/fd lists it (checked
against F_GETFD): per fd the close-on-exec bit, F_GETFL, the offset,
fstat's type and size, and readlink(/proc/self/fd/N).  In a thread it
uses /proc/thread-self.

``Model`` below is a small fd layer written from Linux's rules: a table per
process (shared by threads and CLONE_FILES, copied by fork and by
close_range(CLOSE_RANGE_UNSHARE), close-on-exec entries dropped by execve)
maps fds to open file descriptions, which hold the flags and the offset and
point to an object (a file with its data, a pipe with its buffer, a socket
with its receive queue...).  It predicts the program's whole output.  Each
script runs natively (the model is checked against the real kernel) and
inside umlpy, where the table is the host's but every path is the guest
VFS's: the files are created in the throwaway upper layer (their
directories are lower-layer ones), and /proc/self/fd/N must still read as
the guest path.

Inode numbers of pipes and sockets are renamed in order of first
appearance on both sides, so identity (which fds share a pipe) is
compared, not the numbers.

Found on the way, and fixed:
* open()/openat() with O_PATH ignore every flag but O_DIRECTORY,
  O_NOFOLLOW and O_CLOEXEC (build_open_how: "O_PATH beats everything
  else"), but the guest kernel applied O_CREAT|O_EXCL (EEXIST) and O_CREAT
  on a directory (EISDIR) first (umlpy/kernel/syscalls/fs/open.py);
* getdents64 of a directory the guest VFS lists (/proc/self/fd, /dev, an
  upper-layer directory) failed with ENOENT in any thread but a process's
  first: pidfd_open of a thread needs PIDFD_THREAD (glibc's readdir takes
  ENOENT for the end: `ls` in a worker thread saw empty directories)
  (umlpy/kernel/syscalls/fd.py, umlpy/kernel/vfs/hostops.py).
Reopening objects that are no path: see NO_PATH_KINDS.
"""
import difflib
import errno
import os
import re
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

from conftest import _env, umlpy_argv

# --------------------------------------------------------------------------
# the model

O = {"RDONLY": 0, "WRONLY": 1, "RDWR": 2, "CREAT": 0o100, "EXCL": 0o200,
     "TRUNC": 0o1000, "APPEND": 0o2000, "NONBLOCK": 0o4000, "DIRECTORY": 0o200000,
     "CLOEXEC": 0o2000000, "PATH": 0o10000000}
O_PATH_KEEPS = O["PATH"] | O["DIRECTORY"] | O["CLOEXEC"]    # | O_NOFOLLOW
BAD_FD = 1 << 30        # above RLIMIT_NOFILE (at most fs.nr_open, 2^20 by default)
MAX = 0xFFFFFFFF


def flag_bits(text):
    v = 0
    for t in text.split("|"):
        v |= int(t, 0) if t[0].isdigit() else O[t]
    return v


def err(e):
    return "-" + errno.errorcode[e]


class Fail(Exception):
    def __init__(self, e):
        self.errno = e


class Obj:
    """What a description points to.  kind: file dir null pipe socket
    memfd eventfd timerfd signalfd eventpoll."""
    ids = 0

    def __init__(self, kind, name=""):
        Obj.ids += 1
        self.id = Obj.ids
        self.kind, self.name = kind, name
        self.data = bytearray()     # file/memfd contents, pipe buffer, socket receive queue
        self.deleted = False
        self.peer = None            # the other socket of a pair
        self.tainted = False        # a socket whose peer was closed with data unread

    def link(self):
        if self.kind in ("pipe", "socket"):
            return f"{self.kind}:[{self.id}]"
        if self.kind in ("file", "dir", "null"):
            return self.name + (" (deleted)" if self.deleted else "")
        if self.kind == "memfd":
            return f"/memfd:{self.name} (deleted)"
        return f"anon_inode:[{self.kind}]"

    def seekable(self):
        return self.kind in ("file", "memfd", "dir", "null")


class Desc:
    """An open file description."""

    def __init__(self, obj, acc, append=False, nonblock=False, opath=False):
        self.obj, self.acc, self.append, self.nonblock, self.opath = \
            obj, acc, append, nonblock, opath
        self.offset = 0
        self.std = False            # one of the program's stdin/stdout/stderr

    @property
    def reader(self):
        return not self.opath and self.acc in (0, 2)

    @property
    def writer(self):
        return not self.opath and self.acc in (1, 2)

    def flags(self):
        s = ["RDONLY", "WRONLY", "RDWR"][self.acc]
        return s + ("|APPEND" if self.append else "") + ("|NONBLOCK" if self.nonblock else "") \
            + ("|PATH" if self.opath else "")

    def offset_text(self):
        if self.opath:
            return err(errno.EBADF)
        if not self.obj.seekable():
            return err(errno.ESPIPE) if self.obj.kind in ("pipe", "socket") else "0"
        return str(self.offset)

    def stat_text(self):
        o = self.obj
        if o.kind in ("file", "memfd"):
            return f"f{len(o.data)}"
        return {"dir": "d", "null": "c", "pipe": "p", "socket": "s"}.get(o.kind, "-")


class Proc:
    """What a process's threads share beside the table: the working
    directory (threads share it, fork and clone(CLONE_FILES) copy it)."""

    def __init__(self, cwd):
        self.cwd = cwd


class Ctx:
    """A thread's view: the table it uses (a dict fd -> [desc, cloexec])
    and its process."""

    def __init__(self, table, proc):
        self.table, self.proc = table, proc

    def path(self, name):
        return name if name.startswith("/") else f"{self.proc.cwd}/{name}"


def copy_table(table):
    return {fd: [d, c] for fd, (d, c) in table.items()}


def lowest_free(table, start=0):
    fd = start
    while fd in table:
        fd += 1
    return fd


class Model:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.names = {self.workdir: Obj("dir", self.workdir),
                      f"{self.workdir}/sub": Obj("dir", f"{self.workdir}/sub"),
                      "/dev/null": Obj("null", "/dev/null")}
        table = {}
        for fd, acc in ((0, 0), (1, 1), (2, 1)):        # three pipes from the test
            d = Desc(Obj("pipe"), acc)
            d.std = True
            table[fd] = [d, False]
        self.main = Ctx(table, Proc(self.workdir))        # fdops starts in workdir
        self.others = []            # tables alive besides main's (a child's, an unshared thread's)
        self.lines = []
        self.alive = self._alive_objs()

    # state ---------------------------------------------------------------
    def tables(self):
        return [self.main.table] + [c.table for c in self.others]

    def _alive_objs(self):
        # an O_PATH descriptor holds the inode, not the open socket or pipe
        return {d.obj for t in self.tables() for d, _ in t.values() if not d.opath}

    def _settle(self):
        """Objects whose last description went: a socket closed with unread
        data resets its peer (ECONNRESET): later reads and writes on the peer
        are left out of scripts."""
        now = self._alive_objs()
        for obj in self.alive - now:
            if obj.kind == "socket" and obj.data and obj.peer is not None:
                obj.peer.tainted = True
        self.alive = now

    def count(self, obj, role=None):
        """Descriptions of obj alive (role: only "reader"s or "writer"s)."""
        return sum(1 for t in self.tables() for d, _ in t.values()
                   if d.obj is obj and not d.opath and (role is None or getattr(d, role)))

    def would_block(self, desc):
        """A read on desc would sleep (scripts never do that)."""
        o = desc.obj
        if desc.opath or desc.nonblock or o.data:
            return False
        if o.kind == "pipe":
            return desc.reader and self.count(o, "writer") > 0
        if o.kind == "socket":
            return self.count(o.peer) > 0
        return o.kind in ("eventfd", "timerfd", "signalfd", "eventpoll")

    # output --------------------------------------------------------------
    def dump(self, table):
        for fd in sorted(table):
            d, cloexec = table[fd]
            self.lines.append(f" {fd} {int(cloexec)} {d.flags()} {d.offset_text()} "
                              f"{d.stat_text()} {d.obj.link()}")

    def run(self, ops):
        i = 0
        while i < len(ops):
            op = ops[i]
            if op in ("fork", "thread", "clone_files"):
                self.compound(op, ops[i + 1])
                i += 2
            elif op == "exec":
                self.lines.append("> exec")
                t = self.main.table
                for fd in [fd for fd, (_, c) in t.items() if c]:
                    del t[fd]
                self._settle()
                self.lines.append("= 0")
                self.dump(t)
                i += 1
            else:
                self.simple(self.main, op)
                i += 1
        return self.lines

    def sub_context(self, how):
        """The context the op after fork/thread/clone_files runs in."""
        if how == "fork":
            return Ctx(copy_table(self.main.table), Proc(self.main.proc.cwd))
        if how == "clone_files":
            return Ctx(self.main.table, Proc(self.main.proc.cwd))
        return Ctx(self.main.table, self.main.proc)

    def compound(self, how, op):
        self.lines.append(f"> {how}")
        ctx = self.sub_context(how)
        self.others = [ctx]
        self.simple(ctx, op)
        self.others = []
        self._settle()
        self.lines.append("= 0")
        self.dump(self.main.table)

    def simple(self, ctx, op):
        self.lines.append(f"> {op}")
        if ctx is not self.main and ctx not in self.others:
            self.others.append(ctx)
        try:
            res = self.apply(ctx, op.split(" "))
        except Fail as e:
            res = err(e.errno)
        self._settle()
        self.lines.append(f"= {res}")
        self.dump(ctx.table)

    # the ops -------------------------------------------------------------
    def get(self, ctx, fd):
        entry = ctx.table.get(fd)
        if entry is None:
            raise Fail(errno.EBADF)
        return entry[0]

    def install(self, ctx, desc, cloexec, start=0):
        fd = lowest_free(ctx.table, start)
        ctx.table[fd] = [desc, bool(cloexec)]
        return fd

    def apply(self, ctx, t):
        op, args = t[0], t[1:]
        table = ctx.table
        num = [MAX if a == "max" else int(a) for a in args if re.fullmatch(r"-?\d+|max", a)]
        if op == "open":
            return self.open(ctx, ctx.path(args[0]), flag_bits(args[1]))
        if op == "fchdir":
            d = self.get(ctx, num[0])
            if d.obj.kind != "dir":
                raise Fail(errno.ENOTDIR)
            ctx.proc.cwd = d.obj.name
            return 0
        if op == "openat":
            d = self.get(ctx, num[0])
            if d.obj.kind != "dir":
                raise Fail(errno.ENOTDIR)
            return self.open(ctx, f"{d.obj.name}/{args[1]}", flag_bits(args[2]))
        if op == "reopen":
            return self.reopen(ctx, num[0], flag_bits(args[1]))
        if op == "unlink":
            obj = self.names.get(args[0])
            if obj is None:
                raise Fail(errno.ENOENT)
            if obj.kind == "dir":
                raise Fail(errno.EISDIR)
            del self.names[args[0]]
            obj.deleted = True
            return 0
        if op == "dup":
            return self.install(ctx, self.get(ctx, num[0]), False)
        if op in ("dup2", "dup3"):
            a, b = num[0], num[1]
            if op == "dup3":
                fl = flag_bits(args[2])
                if fl & ~O["CLOEXEC"] or a == b:
                    raise Fail(errno.EINVAL)
            else:
                fl = 0
                if a == b:
                    self.get(ctx, a)
                    return a
            if b < 0 or b >= BAD_FD:
                raise Fail(errno.EBADF)
            d = self.get(ctx, a)
            table[b] = [d, bool(fl & O["CLOEXEC"])]
            return b
        if op in ("dupfd", "dupfd_cloexec"):
            d = self.get(ctx, num[0])
            if num[1] < 0 or num[1] >= BAD_FD:
                raise Fail(errno.EINVAL)
            return self.install(ctx, d, op == "dupfd_cloexec", num[1])
        if op == "setfd":
            self.get(ctx, num[0])
            table[num[0]][1] = bool(num[1] & 1)
            return 0
        if op == "setfl":
            d = self.get(ctx, num[0])
            if d.opath:
                raise Fail(errno.EBADF)
            fl = flag_bits(args[1])
            d.append, d.nonblock = bool(fl & O["APPEND"]), bool(fl & O["NONBLOCK"])
            return 0
        if op == "close":
            self.get(ctx, num[0])
            del table[num[0]]
            return 0
        if op == "close_range":
            a, b = num[0], num[1]
            if a > b:
                raise Fail(errno.EINVAL)
            if "UNSHARE" in args[2]:
                ctx.table = table = copy_table(table)
            for fd in [fd for fd in table if a <= fd <= b]:
                if "CLOEXEC" in args[2]:
                    table[fd][1] = True
                else:
                    del table[fd]
            return 0
        if op == "write":
            return self.write(ctx, self.get(ctx, num[0]), args[1].encode())
        if op == "read":
            return self.read(ctx, self.get(ctx, num[0]), num[1])
        if op == "lseek":
            d = self.get(ctx, num[0])
            if d.opath:
                raise Fail(errno.EBADF)
            if not d.obj.seekable():
                raise Fail(errno.ESPIPE)
            if d.obj.kind == "null":
                return 0
            d.offset = num[1]
            return d.offset
        # objects that are not files
        fl = flag_bits(args[-1]) if args else 0
        cloexec, nonblock = bool(fl & O["CLOEXEC"]), bool(fl & O["NONBLOCK"])
        if op == "pipe":
            p = Obj("pipe")
            r = self.install(ctx, Desc(p, 0, nonblock=nonblock), cloexec)
            w = self.install(ctx, Desc(p, 1, nonblock=nonblock), cloexec)
            return f"{r} {w}"
        if op == "socketpair":
            a, b = Obj("socket"), Obj("socket")
            a.peer, b.peer = b, a
            fa = self.install(ctx, Desc(a, 2, nonblock=nonblock), cloexec)
            fb = self.install(ctx, Desc(b, 2, nonblock=nonblock), cloexec)
            return f"{fa} {fb}"
        if op in ("eventfd", "timerfd", "signalfd", "epoll"):
            kind = "eventpoll" if op == "epoll" else op
            return self.install(ctx, Desc(Obj(kind), 2, nonblock=nonblock), cloexec)
        if op == "memfd":
            return self.install(ctx, Desc(Obj("memfd", args[0]), 2), cloexec)
        raise AssertionError(op)

    def open(self, ctx, path, fl):
        if fl & O["PATH"]:
            fl &= O_PATH_KEEPS          # O_PATH beats everything else
        opath = bool(fl & O["PATH"])
        acc = 0 if opath else fl & 3
        obj = self.names.get(path)
        if obj is None:
            parent = self.names.get(path.rpartition("/")[0])
            if not fl & O["CREAT"] or parent is None:
                raise Fail(errno.ENOENT)
            obj = self.names[path] = Obj("file", path)
        elif fl & O["CREAT"] and fl & O["EXCL"]:
            raise Fail(errno.EEXIST)
        writes = not opath and (acc != 0 or fl & O["TRUNC"])
        if obj.kind == "dir" and (writes or fl & O["CREAT"]) and not opath:
            raise Fail(errno.EISDIR)
        if fl & O["DIRECTORY"] and obj.kind != "dir":
            raise Fail(errno.ENOTDIR)
        if fl & O["TRUNC"] and not opath and obj.kind == "file":
            del obj.data[:]
        d = Desc(obj, acc, append=not opath and bool(fl & O["APPEND"]),
                 nonblock=not opath and bool(fl & O["NONBLOCK"]), opath=opath)
        return self.install(ctx, d, fl & O["CLOEXEC"])

    def reopen(self, ctx, fd, fl):
        """open("/proc/self/fd/FD"): a new description of the same object
        (for a pipe too: an anonymous pipe's open never waits for a
        partner); sockets and anonymous inodes only as O_PATH."""
        entry = ctx.table.get(fd)
        if entry is None:
            raise Fail(errno.ENOENT)
        o = entry[0].obj
        if fl & O["PATH"]:
            fl &= O_PATH_KEEPS
            d = Desc(o, 0, opath=True)
        elif o.kind in ("socket", "eventfd", "timerfd", "signalfd", "eventpoll"):
            raise Fail(errno.ENXIO)
        elif o.kind == "dir" and fl & 3:
            raise Fail(errno.EISDIR)
        else:
            d = Desc(o, fl & 3, append=bool(fl & O["APPEND"]), nonblock=bool(fl & O["NONBLOCK"]))
        return self.install(ctx, d, fl & O["CLOEXEC"])

    def write(self, ctx, d, data):
        o = d.obj
        if d.opath or d.acc == 0:
            raise Fail(errno.EBADF)
        if o.kind == "null":
            return len(data)
        if o.kind == "pipe":
            if self.count(o, "reader") == 0:
                raise Fail(errno.EPIPE)
            o.data += data
            return len(data)
        if o.kind == "socket":
            if self.count(o.peer) == 0:
                raise Fail(errno.EPIPE)
            o.peer.data += data
            return len(data)
        assert o.kind in ("file", "memfd"), o.kind
        if d.append:
            d.offset = len(o.data)
        end = d.offset + len(data)
        if len(o.data) < d.offset:
            o.data += bytes(d.offset - len(o.data))
        o.data[d.offset:end] = data
        d.offset = end
        return len(data)

    def read(self, ctx, d, n):
        o = d.obj
        if d.opath or d.acc == 1:
            raise Fail(errno.EBADF)
        if o.kind == "dir":
            raise Fail(errno.EISDIR)
        if o.kind == "null":
            return "0 "
        if o.kind in ("pipe", "socket"):
            if o.data:
                got = bytes(o.data[:n])
                del o.data[:n]
            elif o.kind == "pipe" and self.count(o, "writer") == 0 or \
                    o.kind == "socket" and self.count(o.peer) == 0:
                got = b""
            else:
                assert d.nonblock, "a read that would block"
                raise Fail(errno.EAGAIN)
            return f"{len(got)} {got.decode('latin-1')}"
        got = bytes(o.data[d.offset:d.offset + n])
        d.offset += len(got)
        return f"{len(got)} {got.decode('latin-1')}"


# --------------------------------------------------------------------------
# scripts

WORDS = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
SIMPLE_KINDS = ["open"] * 5 + ["openat", "reopen", "reopen", "fchdir"] + \
    ["dup", "dup2", "dup3", "dupfd", "dupfd_cloexec"] * 2 + \
    ["setfd", "setfl", "close", "close", "close_range"] + \
    ["write"] * 4 + ["read"] * 3 + ["lseek"] * 2 + \
    ["pipe", "socketpair", "eventfd", "timerfd", "signalfd", "epoll", "memfd", "unlink"]
COMPOUND = ["fork", "thread", "clone_files"]


@st.composite
def an_fd(draw, ctx, pred=None, usable=True):
    """Mostly an open fd whose description satisfies pred (not one of the
    program's stdin/stdout/stderr if usable), now and then one that is not
    open."""
    fds = sorted(fd for fd, (d, _) in ctx.table.items()
                 if (not usable or not d.std) and (pred is None or pred(d)))
    if fds and draw(st.integers(0, 9)) > 0:
        return draw(st.sampled_from(fds))
    closed = [fd for fd in (3, 4, 5, 7, 9, 12, 20, -1) if fd not in ctx.table]
    return draw(st.sampled_from(closed))


def target_fd(draw):
    return draw(st.sampled_from([3, 4, 5, 6, 8, 10, 15, 33, 1000, BAD_FD, -1]))


def file_flags(draw, model, path):
    acc = draw(st.sampled_from(["RDONLY", "WRONLY", "RDWR", "RDWR"]))
    extra = ["CREAT", "CREAT", "APPEND", "NONBLOCK", "CLOEXEC", "CLOEXEC"]
    if acc != "RDONLY":
        extra.append("TRUNC")
    flags = [acc] + draw(st.lists(st.sampled_from(extra), max_size=3, unique=True))
    if path not in model.names and "CREAT" not in flags and draw(st.integers(0, 3)):
        flags.append("CREAT")
    if "CREAT" in flags and draw(st.integers(0, 4)) == 0:
        flags.append("EXCL")
    if "CREAT" not in flags and draw(st.integers(0, 12)) == 0:
        flags.append("DIRECTORY")
    return "|".join(flags)


NAMES = ["a", "a", "b", "c", "sub/c"]      # relative to the working directory or a dirfd


@st.composite
def open_op(draw, model, ctx):
    w = model.workdir
    path = draw(st.sampled_from([f"{w}/a", f"{w}/b", f"{w}/sub/c", w, f"{w}/sub",
                                 "/dev/null"] + NAMES))
    if draw(st.integers(0, 6)) == 0:
        if ctx.path(path) not in model.names and draw(st.integers(0, 3)):
            path = draw(st.sampled_from(sorted(model.names)))
        flags = "|".join(["PATH"] + draw(st.lists(st.sampled_from(
            ["RDWR", "WRONLY", "CREAT", "EXCL", "TRUNC", "APPEND", "NONBLOCK", "CLOEXEC",
             "DIRECTORY"]), max_size=4, unique=True)))
    elif ctx.path(path) in (w, f"{w}/sub"):
        flags = "|".join([draw(st.sampled_from(["RDONLY", "RDONLY", "WRONLY"]))] + draw(st.lists(
            st.sampled_from(["DIRECTORY", "CLOEXEC", "NONBLOCK"]), max_size=2, unique=True)))
    else:
        flags = file_flags(draw, model, ctx.path(path))
    return f"open {path} {flags}"


@st.composite
def openat_op(draw, model, ctx):
    dirfd = draw(an_fd(ctx, lambda d: d.obj.kind == "dir"))
    name = draw(st.sampled_from(NAMES))
    entry = ctx.table.get(dirfd)
    where = entry[0].obj.name if entry is not None else model.workdir
    return f"openat {dirfd} {name} {file_flags(draw, model, f'{where}/{name}')}"


# open("/proc/self/fd/N") of an fd that is no guest path (a pipe, a socket,
# an anonymous inode, a memfd, a deleted file) is let through to the host
# only while no other thread or CLONE_FILES process shares the fd table (a
# dup2 onto N between the check and the open would swap the object);
# otherwise it fails with ELOOP.  Generated scripts may have shared their
# table, so they reopen those only with O_PATH;
# test_reopen_of_objects_that_are_no_path covers the unshared case.
NO_PATH_KINDS = ("pipe", "socket", "eventfd", "timerfd", "signalfd", "eventpoll", "memfd")


@st.composite
def reopen_op(draw, ctx):
    fd = draw(an_fd(ctx))
    entry = ctx.table.get(fd)
    no_path = entry is not None and (entry[0].obj.kind in NO_PATH_KINDS or entry[0].obj.deleted)
    if no_path or draw(st.integers(0, 5)) == 0:
        flags = draw(st.sampled_from(["PATH", "PATH|CLOEXEC", "PATH|RDWR|APPEND"]))
    else:
        flags = "|".join([draw(st.sampled_from(["RDONLY", "WRONLY", "RDWR"]))] + draw(st.lists(
            st.sampled_from(["APPEND", "NONBLOCK", "CLOEXEC"]), max_size=2, unique=True)))
    return f"reopen {fd} {flags}"


@st.composite
def simple_op(draw, model, ctx):
    kind = draw(st.sampled_from(SIMPLE_KINDS))
    if len(ctx.table) > 24 and kind in ("open", "openat", "reopen", "dup", "dupfd",
                                        "dupfd_cloexec", "pipe", "socketpair", "memfd",
                                        "eventfd"):
        kind = "close_range"
    if kind == "open":
        return draw(open_op(model, ctx))
    if kind == "fchdir":
        dirs = draw(st.integers(0, 4)) > 0
        return f"fchdir {draw(an_fd(ctx, (lambda d: d.obj.kind == 'dir') if dirs else None))}"
    if kind == "openat":
        return draw(openat_op(model, ctx))
    if kind == "reopen":
        return draw(reopen_op(ctx))
    if kind == "unlink":
        w = model.workdir
        return f"unlink {draw(st.sampled_from([f'{w}/a', f'{w}/b', f'{w}/sub/c', f'{w}/c', w]))}"
    if kind == "dup":
        return f"dup {draw(an_fd(ctx, usable=False))}"
    if kind == "dup2":
        a = draw(an_fd(ctx, usable=False))
        b = a if draw(st.integers(0, 5)) == 0 else target_fd(draw)
        if 0 <= b <= 2:
            b = 3
        return f"dup2 {a} {b}"
    if kind == "dup3":
        a = draw(an_fd(ctx, usable=False))
        b = a if draw(st.integers(0, 6)) == 0 else target_fd(draw)
        fl = draw(st.sampled_from(["0", "CLOEXEC", "CLOEXEC", "NONBLOCK"]))
        return f"dup3 {a} {b} {fl}"
    if kind in ("dupfd", "dupfd_cloexec"):
        a = draw(an_fd(ctx, usable=False))
        m = draw(st.sampled_from([0, 0, 3, 5, 10, 17, 1000, BAD_FD, -1]))
        return f"{kind} {a} {m}"
    if kind == "setfd":
        return f"setfd {draw(an_fd(ctx))} {draw(st.integers(0, 1))}"
    if kind == "setfl":
        fl = draw(st.sampled_from(["0", "APPEND", "NONBLOCK", "APPEND|NONBLOCK", "RDWR|APPEND"]))
        return f"setfl {draw(an_fd(ctx))} {fl}"
    if kind == "close":
        return f"close {draw(an_fd(ctx))}"
    if kind == "close_range":
        a = draw(st.integers(3, 20))
        b = draw(st.sampled_from([a - 1, a, a + 1, a + 3, a + 8, 40, "max"]))
        fl = draw(st.sampled_from(["0", "0", "CLOEXEC", "UNSHARE", "CLOEXEC|UNSHARE"]))
        return f"close_range {a} {b} {fl}"
    if kind == "write":
        def writable(d):
            o = d.obj
            return o.kind in ("file", "memfd", "null", "pipe", "dir") or \
                o.kind == "socket" and not o.tainted
        return f"write {draw(an_fd(ctx, writable))} {draw(WORDS)}"
    if kind == "read":
        def readable(d):
            o = d.obj
            ok = o.kind in ("file", "memfd", "null", "pipe", "dir") or \
                o.kind == "socket" and not o.tainted
            return ok and not model.would_block(d)
        return f"read {draw(an_fd(ctx, readable))} {draw(st.integers(1, 12))}"
    if kind == "lseek":
        def seekable(d):
            return d.obj.kind in ("file", "memfd", "null", "pipe", "socket")
        return f"lseek {draw(an_fd(ctx, seekable))} {draw(st.integers(0, 12))}"
    if kind in ("pipe", "socketpair", "eventfd", "timerfd", "signalfd"):
        return f"{kind} {draw(st.sampled_from(['0', 'CLOEXEC', 'NONBLOCK', 'CLOEXEC|NONBLOCK']))}"
    if kind == "epoll":
        return f"epoll {draw(st.sampled_from(['0', 'CLOEXEC']))}"
    if kind == "memfd":
        return f"memfd m{draw(st.integers(1, 3))} {draw(st.sampled_from(['0', 'CLOEXEC']))}"
    raise AssertionError(kind)


@st.composite
def scripts(draw, workdir, min_ops=30, max_ops=60):
    """A script, generated against the model as it runs (so fds named are
    mostly open, and no read ever blocks)."""
    model = Model(workdir)
    ops = []
    # mostly long scripts; a failure shrinks through the short branch
    if draw(st.integers(0, 3)):
        n = draw(st.integers(min_ops, max_ops))
    else:
        n = draw(st.integers(1, min_ops))
    while len(ops) < n:
        r = draw(st.integers(0, 99))
        if r < 9:
            how = draw(st.sampled_from(COMPOUND))
            ctx = model.sub_context(how)
            model.others = [ctx]
            op = draw(simple_op(model, ctx))
            model.others = []
            model.compound(how, op)
            ops += [how, op]
        elif r < 12:
            model.run(["exec"])
            ops.append("exec")
        else:
            op = draw(simple_op(model, model.main))
            model.simple(model.main, op)
            ops.append(op)
    return ops


# --------------------------------------------------------------------------
# running

LINK = re.compile(rb"\b(pipe|socket):\[(\d+)\]")


def normalise(text):
    """Pipe and socket inodes renamed in order of first appearance."""
    names = {}

    def rename(m):
        key = m.group(0)
        if key not in names:
            names[key] = b"%s:[#%d]" % (m.group(1), len(names) + 1)
        return names[key]
    return LINK.sub(rename, text).decode("latin-1").split("\n")


def fresh(workdir):
    """An empty workdir with an empty sub/: inside umlpy both are lower-layer
    directories (what the guest creates in them goes to the upper layer)."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.mkdir(workdir)
    os.mkdir(os.path.join(workdir, "sub"))


def run_script(argv, ops, workdir, env=None):
    fresh(workdir)
    p = subprocess.run(argv, input=("\n".join(ops) + "\n").encode(), capture_output=True,
                       timeout=120, env=env, cwd=workdir)
    return p


def compare(what, got, want, ops, stderr=b""):
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            break
    else:
        i = min(len(got), len(want))
    lo = max(0, i - 25)
    diff = "\n".join(difflib.unified_diff(want[lo:i + 10], got[lo:i + 10], "model",
                                          what, lineterm="", n=30))
    script = "\n".join(ops)
    pytest.fail(f"{what} differs from the model at line {i + 1}:\n{diff}\n"
                f"stderr: {stderr[-2000:].decode(errors='replace')}\nscript:\n{script}")


def check(fdops, workdir, ops, mode="default"):
    """Model, native run and umlpy run agree on every line."""
    want = normalise(("\n".join(Model(workdir).run(ops)) + "\n").encode("latin-1"))
    native = run_script([fdops], ops, workdir)
    assert native.returncode == 0, native.stderr
    compare("native", normalise(native.stdout), want, ops, native.stderr)
    inside = run_script(umlpy_argv([fdops], mode), ops, workdir, env=_env())
    assert inside.returncode == 0, inside.stderr[-2000:]
    compare("umlpy", normalise(inside.stdout), want, ops, inside.stderr)
    return want


@pytest.fixture(scope="module")
def fdops(guest):
    return guest("fdops", static=True)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path / "w"


def test_fd_table_matches_the_model(fdops, tmp_path_factory, mode):
    """Random scripts of 30-60 ops (a failure shrinks to a short one): one
    native and one umlpy run per example.  trace-all stops every call, so
    fewer examples there."""
    workdir = tmp_path_factory.mktemp("fdtable") / "w"

    @settings(max_examples=40 if mode == "default" else 25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(scripts(workdir))
    def run(ops):
        note("\n".join(ops))
        check(fdops, workdir, ops, mode)
    run()


# --------------------------------------------------------------------------
# hand-written scenarios (each also against the model, natively, in umlpy)

def result_of(lines, op):
    """The result line of op (its first occurrence)."""
    return lines[lines.index(f"> {op}") + 1]


def fd_lines(lines, after):
    """The dump that follows the result line of op `after` (first match)."""
    i = lines.index(f"> {after}")
    out = {}
    for line in lines[i + 2:]:
        if not line.startswith(" "):
            break
        fd, cloexec, flags, off, stat, link = line[1:].split(" ", 5)
        out[int(fd)] = (int(cloexec), flags, off, stat, link)
    return out


def test_cloexec_across_exec(fdops, workdir, mode):
    w = workdir
    ops = [f"open {w}/a RDWR|CREAT|CLOEXEC", "dup 3", "dupfd_cloexec 3 10", "setfd 4 1",
           "setfd 3 0", "pipe CLOEXEC", "socketpair 0", "memfd m1 CLOEXEC", "eventfd CLOEXEC",
           "dup3 7 20 CLOEXEC", "dup2 20 21", "write 3 hello", "exec",
           "read 3 9", "lseek 21 1", "write 8 xy", "read 7 9"]
    lines = check(fdops, w, ops, mode)
    after = fd_lines(lines, "exec")
    assert sorted(after) == [0, 1, 2, 3, 7, 8, 21]
    assert after[3] == (0, "RDWR", "5", "f5", f"{w}/a")
    assert after[21][4].startswith("socket:")


def test_dup2_onto_itself(fdops, workdir, mode):
    w = workdir
    ops = [f"open {w}/a WRONLY|CREAT|CLOEXEC", "dup2 3 3", "dup3 3 3 CLOEXEC", "dup3 3 3 0",
           "dup2 9 9", "dup3 9 9 0", "dup2 3 9", "dup2 9 3", "dupfd 3 3", "dup2 3 1000",
           f"dup2 3 {BAD_FD}", "dup2 3 -1"]
    lines = check(fdops, w, ops, mode)
    assert result_of(lines, "dup2 3 3") == "= 3"
    assert fd_lines(lines, "dup2 3 3")[3][0] == 1          # cloexec kept
    assert result_of(lines, "dup3 3 3 0") == "= -EINVAL"
    assert result_of(lines, "dup2 9 9") == "= -EBADF"
    assert fd_lines(lines, "dup2 9 3")[3][0] == 0          # dup2 clears it


def test_close_range_cloexec_and_unshare(fdops, workdir, mode):
    w = workdir
    ops = [f"open {w}/a RDWR|CREAT", f"open {w}/b RDWR|CREAT", "pipe 0", "socketpair 0",
           "timerfd 0", "signalfd 0", "epoll 0", "close_range 4 6 CLOEXEC",
           "thread", "close_range 3 max UNSHARE",
           "clone_files", "close 9",
           "fork", "close_range 3 max 0",
           "close_range 8 7 0",
           "exec"]
    lines = check(fdops, w, ops, mode)
    assert sorted(fd_lines(lines, "exec")) == [0, 1, 2, 3, 7, 8, 10, 11]


def test_offsets_shared_across_dup_and_fork(fdops, workdir, mode):
    w = workdir
    ops = [f"open {w}/a RDWR|CREAT", "dup 3", f"open {w}/a RDONLY", "write 3 abc",
           "fork", "write 4 def",
           "thread", "write 3 gh",
           "clone_files", "lseek 4 2",
           "read 5 20", "read 3 20", "setfl 4 APPEND", "lseek 3 0", "write 3 XY",
           "fork", "read 5 3", "read 5 3", "lseek 3 0", "read 4 100"]
    lines = check(fdops, w, ops, mode)
    assert result_of(lines, "read 5 20") == "= 8 abcdefgh"
    assert result_of(lines, "read 4 100") == "= 10 abcdefghXY"


def test_reopen_through_proc_self_fd(fdops, workdir, mode):
    """open("/proc/self/fd/N") makes a new description of N's object: its
    own offset and flags; a directory only for reading; with O_PATH any
    object, a socket or an anonymous inode too."""
    w = workdir
    ops = [f"open {w}/a RDWR|CREAT", "write 3 hello", "reopen 3 RDONLY", "read 4 3",
           "reopen 3 WRONLY|APPEND", "write 5 XY", "read 4 9", f"open {w} PATH|DIRECTORY",
           "openat 6 b WRONLY|CREAT|CLOEXEC", "reopen 6 RDONLY", "reopen 6 RDWR",
           "reopen 6 PATH", "openat 9 a RDONLY", "openat 3 a RDONLY", "openat 42 a RDONLY",
           "socketpair 0", "eventfd 0", "pipe 0", "reopen 11 PATH", "reopen 13 PATH|CLOEXEC",
           "reopen 14 PATH", "open /dev/null WRONLY", "reopen 19 RDWR", "reopen 42 RDONLY",
           "thread", "reopen 3 RDWR", "fork", "reopen 3 RDONLY"]
    lines = check(fdops, w, ops, mode)
    assert result_of(lines, "read 4 3") == "= 3 hel"
    assert result_of(lines, "read 4 9") == "= 4 loXY"
    assert result_of(lines, "reopen 6 RDWR") == "= -EISDIR"
    assert result_of(lines, "openat 3 a RDONLY") == "= -ENOTDIR"
    assert fd_lines(lines, "reopen 13 PATH|CLOEXEC")[17] == \
        (1, "RDONLY|PATH", "-EBADF", "-", "anon_inode:[eventfd]")


def test_reopen_of_objects_that_are_no_path(fdops, workdir, mode):
    """A process whose fd table nobody else shares reopens a pipe, a memfd,
    an anonymous inode or a deleted file of its own through its /proc fd
    link, as natively (a socket: ENXIO)."""
    w = workdir
    check(fdops, w, [f"open {w}/a RDWR|CREAT", f"unlink {w}/a", "reopen 3 RDONLY", "pipe 0",
                     "reopen 5 RDONLY", "reopen 6 WRONLY", "memfd m1 0", "reopen 9 RDWR",
                     "socketpair 0", "reopen 11 RDWR", "timerfd 0", "reopen 14 RDONLY"], mode)


def test_working_directory_per_process(fdops, workdir, mode):
    """fchdir moves the process: a thread's moves its process too, a fork
    or clone(CLONE_FILES) child's only the child (CLONE_FS is not shared);
    exec keeps it."""
    w = workdir
    ops = [f"open {w}/sub RDONLY|DIRECTORY", f"open {w} PATH", "open c RDWR|CREAT",
           "fork", "fchdir 3", "open c WRONLY|CREAT",
           "clone_files", "fchdir 3", "open c RDONLY|CREAT",
           "thread", "fchdir 3", "open c RDWR|CREAT|CLOEXEC", "openat 4 sub/c RDONLY",
           "fchdir 5", "exec", "open c WRONLY|APPEND", "fchdir 4", "open sub/c RDONLY"]
    lines = check(fdops, w, ops, mode)
    assert fd_lines(lines, "open c WRONLY|CREAT")[6][4] == f"{w}/c"
    assert fd_lines(lines, "open c RDONLY|CREAT")[7][4] == f"{w}/c"
    assert fd_lines(lines, "open c RDWR|CREAT|CLOEXEC")[8][4] == f"{w}/sub/c"
    assert result_of(lines, "fchdir 5") == "= -ENOTDIR"
    assert fd_lines(lines, "open c WRONLY|APPEND")[8][4] == f"{w}/sub/c"
    assert fd_lines(lines, "open sub/c RDONLY")[10][4] == f"{w}/sub/c"
