"""Permission checks, chown and /proc/self/status under changed ids.

Run as root: natively (real root) and in `umlpy run --root` with one id
(emulated ids, tests/test_fake_ids.py); the two outputs must be the same.
Root makes a tree of its own, then checks what root may do that its
modes would refuse anyone else, and a child that became uid 1000 (group
1000, supplementary group 7) checks what Linux refuses it.  Each line is
one call and its result: "ok" or the errno's name."""
import ctypes
import errno
import os
import shutil
import sys
import tempfile

AT_FDCWD = -100
AT_EACCESS = 0x200
libc = ctypes.CDLL(None, use_errno=True)
STATUS_FIELDS = ("Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapAmb:")
BASE = None


def result(label, fn):
    try:
        fn()
        print(label, "ok")
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, e.errno))
    sys.stdout.flush()


def access(path, mode, flags=None):
    """access(2), or faccessat(2) with flags, as the C library calls them."""
    b = os.fsencode(path)
    r = libc.access(b, mode) if flags is None else libc.faccessat(AT_FDCWD, b, mode, flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def open_close(path, flags, mode=0o644, data=None):
    fd = os.open(path, flags, mode)
    try:
        if data is not None:
            os.write(fd, data)
    finally:
        os.close(fd)


def status():
    """The id lines of /proc/self/status; a capability set that is the
    whole bounding set shows as "all" (a user namespace's root has every
    capability, a host's root those of its bounding set)."""
    with open("/proc/self/status") as f:
        lines = f.read().splitlines()
    bounding = next(line.split()[1] for line in lines if line.startswith("CapBnd:"))
    for line in lines:
        if line.startswith(STATUS_FIELDS):
            name, _, value = line.partition("\t")
            if name.startswith("Cap") and value == bounding:
                value = "all"
            print(f"{name}\t{value}|")
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/status") as f:
        print("task:", " ".join(line.split()[1] for line in f if line.startswith("Uid:")))
    sys.stdout.flush()


def run(path):
    """execve of path in a child: ok if it ran (and exited 0), else the
    errno the exec failed with."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(path, [path])
        except OSError as e:
            os._exit(e.errno)
        os._exit(255)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status:
        raise OSError(status, os.strerror(status))


def write_file(path, data, mode):
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, mode)


def make_tree(base):
    """Made as an owner would, without needing root's overrides: a
    directory's mode is set once its files are in."""
    os.chmod(base, 0o755)
    for name in ("rootdir", "closed", "sealed", "shut", "sticky", "home", "groupdir"):
        os.mkdir(name)
    write_file("rootdir/secret", "secret\n", 0o600)
    write_file("rootdir/pub", "pub\n", 0o644)
    write_file("rootdir/ro", "ro\n", 0o444)
    write_file("rootdir/none", "none\n", 0o000)
    write_file("rootdir/prog", "#!/bin/sh\nexit 0\n", 0o700)
    write_file("rootdir/pubprog", "#!/bin/sh\nexit 0\n", 0o755)
    write_file("rootdir/grp", "grp\n", 0o640)
    os.chown("rootdir/grp", 0, 7)
    write_file("rootdir/grpw", "grpw\n", 0o660)
    os.chown("rootdir/grpw", 0, 8)
    write_file("closed/inside", "inside\n", 0o644)
    write_file("sealed/f", "f\n", 0o644)
    write_file("sticky/roots", "roots\n", 0o666)
    write_file("home/mine", "mine\n", 0o644)
    os.chown("home/mine", 1000, 1000)
    os.chown("home", 1000, 1000)
    os.chown("groupdir", 0, 7)
    os.mkdir("groupdir/rd")
    os.mkdir("groupdir/rd2")
    for name, mode in (("rootdir", 0o755), ("closed", 0o700), ("sealed", 0o555),
                       ("shut", 0o000), ("sticky", 0o1777), ("home", 0o755),
                       ("groupdir", 0o775)):
        os.chmod(name, mode)


def as_root():
    """What root may do although the modes say no (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_CHOWN)."""
    result("root open ro O_WRONLY", lambda: open_close("rootdir/ro", os.O_WRONLY, data=b"RO\n"))
    result("root open ro O_RDWR|O_APPEND",
           lambda: open_close("rootdir/ro", os.O_RDWR | os.O_APPEND, data=b"more\n"))
    result("root open ro O_TRUNC", lambda: open_close("rootdir/ro", os.O_WRONLY | os.O_TRUNC))
    result("root access ro W_OK", lambda: access("rootdir/ro", os.W_OK))
    result("root faccessat ro W_OK EACCESS",
           lambda: access("rootdir/ro", os.W_OK, AT_EACCESS))
    result("root open none O_RDONLY", lambda: open_close("rootdir/none", os.O_RDONLY))
    result("root open none O_RDWR", lambda: open_close("rootdir/none", os.O_RDWR))
    result("root access none R_OK|W_OK", lambda: access("rootdir/none", os.R_OK | os.W_OK))
    result("root access none X_OK", lambda: access("rootdir/none", os.X_OK))
    result("root access pub X_OK", lambda: access("rootdir/pub", os.X_OK))
    result("root exec prog", lambda: run("rootdir/prog"))
    result("root exec pub", lambda: run("rootdir/pub"))
    result("root mkdir sealed/new", lambda: os.mkdir("sealed/new"))
    result("root rename sealed/new", lambda: os.rename("sealed/new", "sealed/new2"))
    result("root rmdir sealed/new2", lambda: os.rmdir("sealed/new2"))
    result("root creat sealed/c", lambda: open_close("sealed/c", os.O_CREAT | os.O_WRONLY))
    result("root unlink sealed/c", lambda: os.unlink("sealed/c"))
    result("root access shut W_OK|X_OK", lambda: access("shut", os.W_OK | os.X_OK))
    result("root chdir shut", lambda: os.chdir("shut"))
    os.chdir(BASE)
    # not yet inside: looking up or listing names in a directory of the
    # sandbox's own that its host owner may not read or search (0000)
    result("root chmod home/mine", lambda: os.chmod("home/mine", 0o640))
    result("root chown home/mine", lambda: os.chown("home/mine", 1000, 7))
    with open("rootdir/ro") as f:
        print("ro now", repr(f.read()))


def as_user():
    """uid 1000, gid 1000, groups [7]: what Linux refuses it."""
    status()
    result("user open secret O_RDONLY", lambda: open_close("rootdir/secret", os.O_RDONLY))
    result("user access secret R_OK", lambda: access("rootdir/secret", os.R_OK))
    result("user faccessat secret R_OK EACCESS",
           lambda: access("rootdir/secret", os.R_OK, AT_EACCESS))
    result("user access secret F_OK", lambda: access("rootdir/secret", os.F_OK))
    result("user open pub O_RDONLY", lambda: open_close("rootdir/pub", os.O_RDONLY))
    result("user open pub O_WRONLY", lambda: open_close("rootdir/pub", os.O_WRONLY))
    result("user open pub O_TRUNC", lambda: open_close("rootdir/pub", os.O_RDONLY | os.O_TRUNC))
    result("user access pub R_OK", lambda: access("rootdir/pub", os.R_OK))
    result("user access pub W_OK", lambda: access("rootdir/pub", os.W_OK))
    result("user access pub R_OK|W_OK", lambda: access("rootdir/pub", os.R_OK | os.W_OK))
    result("user open ro O_WRONLY", lambda: open_close("rootdir/ro", os.O_WRONLY))
    result("user exec prog", lambda: run("rootdir/prog"))
    result("user exec pubprog", lambda: run("rootdir/pubprog"))
    result("user access prog X_OK", lambda: access("rootdir/prog", os.X_OK))
    result("user open grp O_RDONLY", lambda: open_close("rootdir/grp", os.O_RDONLY))
    result("user open grp O_WRONLY", lambda: open_close("rootdir/grp", os.O_WRONLY))
    result("user access grp R_OK", lambda: access("rootdir/grp", os.R_OK))
    result("user open grpw O_RDWR", lambda: open_close("rootdir/grpw", os.O_RDWR))
    result("user access grpw W_OK", lambda: access("rootdir/grpw", os.W_OK))
    result("user access rootdir W_OK", lambda: access("rootdir", os.W_OK))
    result("user access rootdir R_OK|X_OK", lambda: access("rootdir", os.R_OK | os.X_OK))
    result("user mkdir rootdir/new", lambda: os.mkdir("rootdir/new"))
    result("user creat rootdir/newf",
           lambda: open_close("rootdir/newf", os.O_CREAT | os.O_WRONLY))
    result("user symlink rootdir/l", lambda: os.symlink("pub", "rootdir/l"))
    result("user mknod rootdir/fifo", lambda: os.mkfifo("rootdir/fifo"))
    result("user link rootdir/pub2", lambda: os.link("home/mine", "rootdir/mine"))
    result("user unlink rootdir/pub", lambda: os.unlink("rootdir/pub"))
    result("user rmdir closed", lambda: os.rmdir("closed"))
    result("user rename rootdir/pub home/pub", lambda: os.rename("rootdir/pub", "home/pub"))
    result("user rename home/mine rootdir/mine", lambda: os.rename("home/mine", "rootdir/mine"))
    result("user rename home/mine home/mine2", lambda: os.rename("home/mine", "home/mine2"))
    result("user rename home/mine2 home/mine", lambda: os.rename("home/mine2", "home/mine"))
    result("user mkdir groupdir/d", lambda: os.mkdir("groupdir/d"))
    result("user rename groupdir/rd home/rd", lambda: os.rename("groupdir/rd", "home/rd"))
    result("user rename groupdir/rd groupdir/rd3",
           lambda: os.rename("groupdir/rd", "groupdir/rd3"))
    result("user rename groupdir/rd2 groupdir/d",
           lambda: os.rename("groupdir/rd2", "groupdir/d"))
    result("user creat home/new", lambda: open_close("home/new", os.O_CREAT | os.O_WRONLY))
    result("user chdir closed", lambda: os.chdir("closed"))
    result("user chdir shut", lambda: os.chdir("shut"))
    result("user chdir home", lambda: os.chdir("home"))
    os.chdir(BASE)
    result("user stat closed/inside", lambda: os.stat("closed/inside"))
    result("user open closed/inside", lambda: open_close("closed/inside", os.O_RDONLY))
    result("user access closed/inside R_OK", lambda: access("closed/inside", os.R_OK))
    result("user listdir closed", lambda: os.listdir("closed"))
    result("user unlink sticky/roots", lambda: os.unlink("sticky/roots"))
    result("user rename sticky/roots", lambda: os.rename("sticky/roots", "sticky/r2"))
    result("user open sticky/roots O_RDWR", lambda: open_close("sticky/roots", os.O_RDWR))
    result("user chmod rootdir/pub", lambda: os.chmod("rootdir/pub", 0o666))
    result("user chmod home/mine", lambda: os.chmod("home/mine", 0o600))
    result("user utime rootdir/pub now", lambda: os.utime("rootdir/pub"))
    result("user utime rootdir/pub 0", lambda: os.utime("rootdir/pub", (0, 0)))
    result("user truncate rootdir/pub", lambda: os.truncate("rootdir/pub", 0))
    result("user chown rootdir/pub 1000", lambda: os.chown("rootdir/pub", 1000, -1))
    result("user chown home/mine 0", lambda: os.chown("home/mine", 0, -1))
    result("user chown home/mine 1000", lambda: os.chown("home/mine", 1000, -1))
    result("user chown home/mine :7", lambda: os.chown("home/mine", -1, 7))
    result("user chown home/mine :8", lambda: os.chown("home/mine", -1, 8))
    result("user chown home/mine :1000", lambda: os.chown("home/mine", -1, 1000))
    result("user chown home/mine 1000:7", lambda: os.chown("home/mine", 1000, 7))
    result("user lchown rootdir/pub -1:-1", lambda: os.lchown("rootdir/pub", -1, -1))
    result("user chown home/mine 1001:-1", lambda: os.chown("home/mine", 1001, -1))
    fd = os.open("rootdir/pub", os.O_RDONLY)
    result("user fchmod pub", lambda: os.fchmod(fd, 0o666))
    result("user fchown pub", lambda: os.fchown(fd, 1000, 1000))
    result("user fchown pub -1:-1", lambda: os.fchown(fd, -1, -1))
    result("user ftruncate pub (read-only fd)", lambda: os.ftruncate(fd, 0))
    result("user futimes pub", lambda: os.utime(fd, (0, 0)))
    os.close(fd)
    fd = os.open("home/mine", os.O_RDONLY)
    result("user fchown mine :7", lambda: os.fchown(fd, -1, 7))
    result("user fchown mine 0", lambda: os.fchown(fd, 0, -1))
    result("user fchmod mine", lambda: os.fchmod(fd, 0o640))
    os.close(fd)


def in_child(fn):
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            sys.stdout.flush()
            os._exit(0)
    os.waitpid(pid, 0)


def become_user():
    os.setgroups([7])
    os.setresgid(1000, 1000, 1000)
    os.setresuid(1000, 1000, 1000)
    as_user()


def mixed_ids():
    """Every id different: status shows each (and root's saved uid keeps
    the permitted capabilities, not the effective ones)."""
    os.setgroups([3, 9, 4])
    os.setresgid(11, 12, 13)
    os.setresuid(21, 22, 0)
    status()


def real_and_effective():
    """access(2) checks the real ids (and root's capabilities only for a
    real uid 0), faccessat(AT_EACCESS) the effective ones."""
    os.setgroups([])
    os.setresgid(1000, 0, 0)
    os.setresuid(1000, 0, 0)
    result("ruid 1000 access secret R_OK", lambda: access("rootdir/secret", os.R_OK))
    result("ruid 1000 faccessat secret R_OK EACCESS",
           lambda: access("rootdir/secret", os.R_OK, AT_EACCESS))
    result("ruid 1000 open secret O_RDONLY", lambda: open_close("rootdir/secret", os.O_RDONLY))
    os.setresuid(0, 1000, 0)
    result("euid 1000 access secret R_OK", lambda: access("rootdir/secret", os.R_OK))
    result("euid 1000 faccessat secret R_OK EACCESS",
           lambda: access("rootdir/secret", os.R_OK, AT_EACCESS))
    result("euid 1000 open secret O_RDONLY", lambda: open_close("rootdir/secret", os.O_RDONLY))


def main():
    global BASE
    base = BASE = tempfile.mkdtemp(prefix="fake-access-")
    os.chdir(base)
    os.umask(0o022)
    os.setgroups([0])
    status()
    make_tree(base)
    as_root()
    in_child(become_user)
    in_child(mixed_ids)
    in_child(real_and_effective)
    os.chmod("shut", 0o755)
    for name in sorted(os.listdir(".")):
        if os.path.isdir(name):
            print(name, sorted(os.listdir(name)))
    for path in ("home/mine", "rootdir/pub", "rootdir/ro", "rootdir/prog"):
        st = os.lstat(path)
        print(path, oct(st.st_mode), st.st_uid, st.st_gid)
    os.chdir("/")
    shutil.rmtree(base)


if __name__ == "__main__":
    main()
