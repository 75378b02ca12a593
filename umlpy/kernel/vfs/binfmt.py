"""What execve of a guest path really runs: #! scripts are unwrapped by
the guest kernel (their interpreter is a guest path too), and an ELF
program whose loader (PT_INTERP) the host would find somewhere else than
the guest does is started through the guest's loader explicitly.  The
program, a #! interpreter and an ELF loader on a noexec mount: EACCES,
as Linux's open_exec."""
import errno
import os
import stat

from ...abi.elf import BINPRM_MAX_RECURSION, EI_CLASS, ELF64_EHDR, ELF64_PHDR, ELFCLASS64, \
    ELFMAG, PT_INTERP
from ...abi.fcntl import X_OK
from ...abi.stat import S_IXUGO
from .union import IN_UPPER, UnionFS


class ExecPlan:
    """host_path to execute, argv changes (None: the guest's own argv),
    guest_exe: the program as /proc/PID/exe should show it."""
    __slots__ = ("host_path", "argv_prefix", "replace_argv0", "guest_exe")

    def __init__(self, host_path, argv_prefix, replace_argv0, guest_exe):
        self.host_path = host_path
        self.argv_prefix = argv_prefix      # strings put before argv[1:]
        self.replace_argv0 = replace_argv0  # whether argv[0] is dropped
        self.guest_exe = guest_exe


def elf_interp(head):
    """PT_INTERP of an ELF64 image (from its first bytes), or None."""
    if len(head) < ELF64_EHDR.size or head[:len(ELFMAG)] != ELFMAG or \
            head[EI_CLASS] != ELFCLASS64:
        return None
    ehdr = ELF64_EHDR.todict(head)
    phoff, phentsize = ehdr["e_phoff"], ehdr["e_phentsize"]
    for i in range(ehdr["e_phnum"]):
        off = phoff + i * phentsize
        if off + ELF64_PHDR.size > len(head):
            return None
        phdr = ELF64_PHDR.todict(head, off)
        p_offset, p_filesz = phdr["p_offset"], phdr["p_filesz"]
        if phdr["p_type"] == PT_INTERP:
            raw = head[p_offset:p_offset + p_filesz]
            if len(raw) < p_filesz:
                return None
            return raw.split(b"\0")[0].decode("utf-8", "surrogateescape")
    return None


def parse_shebang(head):
    """(interpreter, optional argument) of a #! line, as Linux splits it."""
    line = head[2:].split(b"\n")[0]
    line = line.replace(b"\t", b" ").strip(b" ")
    if not line:
        raise OSError(errno.ENOEXEC, "empty #! line")
    interp, _, arg = line.partition(b" ")
    arg = arg.strip(b" ")
    dec = lambda b: b.decode("utf-8", "surrogateescape")   # noqa: E731
    return dec(interp), (dec(arg) if arg else None)


def read_head_at(dirfd, name, size):
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY,
                 dir_fd=dirfd)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def exec_path(vfs, res):
    """The host path the guest's process executes: for a program in a tree
    the guest can change (the upper layer, a writable bind), an alias with
    no component the guest controls (aliases.py)."""
    d = res.dentry
    if isinstance(d.fs, UnionFS):
        writable = bool(d.flags & IN_UPPER)
    else:
        writable = d.fs.host_backed and not d.fs.read_only and not res.mount.read_only
    if writable:
        alias = vfs.aliases.of(d, stat.S_IFREG)
        if alias is not None:
            return alias
    return d.fs.host_path(d)


def plan_exec(vfs, task, dirfd, path, follow=True, depth=0, res=None, seen=None):
    """seen, if a list, gets every lookup the plan rests on (execplans.py)."""
    if depth > BINPRM_MAX_RECURSION:
        raise OSError(errno.ELOOP, "too many interpreters")
    if res is None:
        res = vfs.resolve(task, dirfd, path, follow)
    if seen is not None:
        seen.append(res)
    d = res.dentry
    if d is None:
        raise OSError(errno.ENOENT, path)
    if d.attr.is_link():
        raise OSError(errno.ELOOP, path)
    if not d.attr.is_reg():
        raise OSError(errno.EACCES, path)
    if res.mount is not None and res.mount.noexec:
        # Linux's may_open: MAY_EXEC of a regular file on an MS_NOEXEC mount
        raise OSError(errno.EACCES, path)
    if not d.fs.checks_on_host(d) or vfs.fake_ids is not None:
        # emulated ids (fakeids.py): the host sees one user, who owns
        # every file of the sandbox; the guest kernel checks them
        err = task.creds.permission(d.attr, X_OK)
        if err:
            raise OSError(err, path)
    elif not d.attr.mode & S_IXUGO:
        raise OSError(errno.EACCES, path)
    try:
        # read as the guest's host identity, never following the name
        with d.fs.object_dir(d, False) as h:
            head = task.as_host(read_head_at, h.fd, h.name, 4096)
    except OSError:
        head = b""          # unreadable (mode 0711): the host decides
    if head[:2] == b"#!":
        interp, arg = parse_shebang(head[:256])
        inner = plan_exec(vfs, task, dirfd, interp, True, depth + 1, seen=seen)
        if inner.argv_prefix:       # the interpreter itself runs through a loader
            prefix = [interp if s is None else s for s in inner.argv_prefix]
        else:
            prefix = [interp]
        prefix += ([arg] if arg else []) + [path]
        return ExecPlan(inner.host_path, prefix, True, inner.guest_exe)
    host = exec_path(vfs, res)
    interp = elf_interp(head)
    if interp is not None:
        ires = vfs.resolve(task, dirfd, interp, True)
        if seen is not None:
            seen.append(ires)
        if ires.dentry is None:
            raise OSError(errno.ENOENT, interp)
        if ires.mount is not None and ires.mount.noexec:
            # load_elf_binary opens the loader with open_exec: EACCES
            raise OSError(errno.EACCES, interp)
        loader = ires.dentry.fs.host_path(ires.dentry)
        if os.path.realpath(interp) != loader:
            # The host would load its own interp; run the guest's instead,
            # and it opens the program by its guest path.
            return ExecPlan(loader, [interp, "--argv0", None, res.path], True, res.path)
    return ExecPlan(host, [], False, res.path)
