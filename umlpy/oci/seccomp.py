"""A bundle's linux.seccomp (the OCI runtime spec's) -> a BPF program,
compiled by libseccomp (through ctypes) as runc compiles it.

umlpy-init installs the program as the container process's last step
before its execve (init.c), stacked under the sandbox's own filter: a
process's filters all run, and the most restrictive verdict wins, so the
container's profile can only make calls fail (or kill), never let one
past the guest kernel.  What would hand calls to someone else
(SCMP_ACT_TRACE: a tracer; SCMP_ACT_NOTIFY, listenerPath: a listener)
is refused in one line.

One call is the sandbox's own: the guest kernel maps scratch memory in
every guest process by calls it injects (kernel/vfs/scratch.py), which
pass through the process's filters like its own, and seals it with
mseal, which older profiles do not name (libseccomp 2.5.4 does not know
it, so podman's default profile gives it ENOSYS).  So mseal is allowed
outright, ahead of the profile's rules, unless its default allows it
already (sealing a process's own memory only restricts it); a rule that
allows it by name changes nothing (a libseccomp that does not know the
name would drop that rule), and a profile that refuses it by name is
refused: with it refused, the scratch mapping would not show sealed and
the guest kernel, failing closed, would refuse every call that needs
scratch memory (the container's first execve got EPERM)."""
import ctypes
import errno
import os

from ..abi.seccomp import AUDIT_ARCH_X86_64, SECCOMP_DATA, SOCK_FILTER
from ..errors import BadInput
from ..kernel.seccomp import JEQ_K, LD_ABS_W, RET_K
from ..kernel.syscalls.names import SYSCALL_NUMBERS

LIBSECCOMP = "libseccomp.so.2"

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_LOG = 0x7ffc0000
SCMP_ACT_ALLOW = 0x7fff0000
ERRNO_BASE = 0x00050000

# OCI's action names -> a function of errnoRet (the errno, for ERRNO)
ACTIONS = {
    "SCMP_ACT_KILL": lambda e: SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": lambda e: SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": lambda e: SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": lambda e: SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": lambda e: ERRNO_BASE | (e & 0xffff),
    "SCMP_ACT_LOG": lambda e: SCMP_ACT_LOG,
    "SCMP_ACT_ALLOW": lambda e: SCMP_ACT_ALLOW,
}
REFUSED_ACTIONS = {
    "SCMP_ACT_TRACE": "would hand the calls to a tracer of the container's, where umlpy's "
                      "guest kernel is the only one",
    "SCMP_ACT_NOTIFY": "would hand the calls to a user-space listener (SECCOMP_RET_USER_NOTIF "
                       "outranks the guest kernel's stops)",
}
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# OCI's architecture names -> libseccomp's
ARCHITECTURES = {f"SCMP_ARCH_{name.upper()}": name for name in (
    "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel",
    "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
    "parisc64", "riscv64")}
# SECCOMP_FILTER_FLAG_*: the ones that weaken nothing (TSYNC: umlpy-init's
# child has one thread); NEW_LISTENER and WAIT_KILLABLE_RECV (a listener's)
# are refused
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
KNOWN_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath",
              "listenerMetadata", "syscalls"}
SYSCALL_KEYS = {"names", "action", "errnoRet", "args", "comment"}
SCMP_FLTATR_CTL_NNP = 3
NR_SCMP_ERROR = -1
SEALING = "mseal"


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib = None


def library():
    """libseccomp, or BadInput in one line when it is not installed."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBSECCOMP, use_errno=True)
        except OSError:
            raise BadInput("umlpy-oci: config.json: linux.seccomp needs libseccomp "
                           f"({LIBSECCOMP}), which is not installed (apt-get install "
                           "libseccomp2)") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def _fail(what):
    raise BadInput(f"umlpy-oci: config.json: linux.seccomp: {what}")


def _errno(value, where, default):
    if value is None:
        return default
    if not isinstance(value, int) or not 0 <= value < 4096:
        _fail(f"{where} {value!r}: an errno number")
    return value


def _action(name, errno_ret, where):
    if name in REFUSED_ACTIONS:
        _fail(f"{where} {name} is refused: it {REFUSED_ACTIONS[name]}")
    make = ACTIONS.get(name)
    if make is None:
        _fail(f"{where}: unknown action {name!r}")
    return make(errno_ret)


def flags_of(seccomp):
    """SECCOMP_SET_MODE_FILTER's flags of linux.seccomp.flags."""
    value = 0
    for name in seccomp.get("flags") or ():
        if name not in FLAGS:
            _fail(f"flags: {name!r} is not supported by umlpy (only "
                  f"{', '.join(sorted(FLAGS))})")
        value |= FLAGS[name]
    return value


def _arg_conditions(args, where):
    """scmp_arg_cmp of a rule's args (each {index, value, valueTwo, op})."""
    out = []
    for arg in args:
        if not isinstance(arg, dict):
            _fail(f"{where}: args[] is not an object")
        index, value, two = arg.get("index"), arg.get("value", 0), arg.get("valueTwo", 0)
        op = OPERATORS.get(arg.get("op"))
        if op is None:
            _fail(f"{where}: unknown operator {arg.get('op')!r}")
        if not isinstance(index, int) or not 0 <= index < 6 or \
                not all(isinstance(x, int) and 0 <= x < 1 << 64 for x in (value, two)):
            _fail(f"{where}: args need an index 0-5 and 64-bit values")
        out.append((index, op, value, two))
    return out


def compile_profile(seccomp):
    """(BPF program bytes, flags) of an OCI linux.seccomp object; BadInput
    in one line for what umlpy refuses or libseccomp cannot compile."""
    if not isinstance(seccomp, dict):
        _fail("not an object")
    for key in seccomp:
        if key not in KNOWN_KEYS:
            _fail(f"{key} is not supported by umlpy")
    if seccomp.get("listenerPath") or seccomp.get("listenerMetadata"):
        _fail("listenerPath is refused: it would hand calls to a user-space listener "
              "(SECCOMP_RET_USER_NOTIF outranks the guest kernel's stops)")
    flags = flags_of(seccomp)
    default_errno = _errno(seccomp.get("defaultErrnoRet"), "defaultErrnoRet", errno.EPERM)
    default = _action(seccomp.get("defaultAction"), default_errno, "defaultAction")
    arches = seccomp.get("architectures") or []
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(arches, list) or not isinstance(syscalls, list):
        _fail("architectures and syscalls are lists")
    rules = []                      # (action, name, [(index, op, a, b)])
    for i, entry in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            _fail(f"{where} is not an object")
        for key in entry:
            if key not in SYSCALL_KEYS:
                _fail(f"{where}.{key} is not supported by umlpy (includes and excludes are "
                      "the engine's to resolve)")
        names = entry.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            _fail(f"{where}.names is a list of syscall names")
        action = _action(entry.get("action"), _errno(entry.get("errnoRet"), f"{where}.errnoRet",
                                                      errno.EPERM), where)
        conditions = _arg_conditions(entry.get("args") or [], where)
        for name in names:
            if name == SEALING and action not in (SCMP_ACT_ALLOW, SCMP_ACT_LOG):
                _fail(f"{where}: {SEALING} must be allowed: umlpy's guest kernel seals its "
                      "own scratch memory in every guest process with it")
            rules.append((action, name, conditions))
    # A rule naming it may only allow it (checked above), perhaps under
    # conditions, and a libseccomp that does not know it drops the rule:
    # allowed outright, ahead, unless the default allows it already.
    sealing = None if default in (SCMP_ACT_ALLOW, SCMP_ACT_LOG) else SYSCALL_NUMBERS[SEALING]
    return _build(default, arches, rules, sealing), flags


def _build(default, arches, rules, sealing):
    lib = library()
    ctx = lib.seccomp_init(default)
    if not ctx:
        _fail("libseccomp refused the default action")
    try:
        # umlpy-init sets no_new_privs itself; the attribute only
        # matters to seccomp_load, which is never called here
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        native = lib.seccomp_arch_native()
        for name in arches:
            token = ARCHITECTURES.get(name)
            arch = lib.seccomp_arch_resolve_name(token.encode()) if token else 0
            if not arch:
                _fail(f"architectures: unknown architecture {name!r}")
            if arch != native:
                r = lib.seccomp_arch_add(ctx, arch)
                if r < 0 and r != -errno.EEXIST:
                    _fail(f"architectures: libseccomp cannot add {name}: "
                          f"{os.strerror(-r)}")
        for action, name, conditions in rules:
            if action == default:
                continue                # libseccomp refuses those; runc skips them too
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == NR_SCMP_ERROR:
                continue                # a call this libseccomp does not know: as runc
            indices = [c[0] for c in conditions]
            if len(set(indices)) != len(indices):
                # several conditions on one argument: each a rule of its own
                # (runc's reading; libseccomp would refuse them in one)
                groups = [[c] for c in conditions]
            else:
                groups = [conditions]
            for group in groups:
                array = (_ArgCmp * max(len(group), 1))(*(_ArgCmp(*c) for c in group))
                r = lib.seccomp_rule_add_array(ctx, action, number, len(group), array)
                if r < 0 and r != -errno.EEXIST:
                    _fail(f"libseccomp cannot add the rule for {name}: {os.strerror(-r)}")
        fd = os.memfd_create("umlpy-oci-seccomp", os.MFD_CLOEXEC)
        try:
            r = lib.seccomp_export_bpf(ctx, fd)
            if r < 0:
                _fail(f"libseccomp cannot export the filter: {os.strerror(-r)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if sealing is not None:
        # x86_64's mseal, allowed ahead of the profile (libseccomp cannot
        # add a rule for a number it does not know on the other arches)
        program = allow_first(sealing) + program
    if not program or len(program) % 8 or len(program) // 8 > 4096:
        _fail(f"the compiled filter has {len(program) // 8} instructions "
              "(Linux takes 1 to 4096)")
    return program


def allow_first(number):
    """BPF that allows x86_64's call number and falls through to what
    follows for every other call (seccomp_data: nr at 0, arch at 4)."""
    nr, arch = SECCOMP_DATA.offset("nr"), SECCOMP_DATA.offset("arch")
    insns = [(LD_ABS_W, 0, 0, arch), (JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
             (LD_ABS_W, 0, 0, nr), (JEQ_K, 0, 1, number),
             (RET_K, 0, 0, SCMP_ACT_ALLOW)]
    return b"".join(SOCK_FILTER.pack(*i) for i in insns)


def features():
    """`features`' linux.seccomp: what compile_profile takes (enabled when
    libseccomp is there to compile a profile)."""
    try:
        library()
        enabled = True
    except BadInput:
        enabled = False
    return {
        "enabled": enabled,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(ARCHITECTURES),
        "knownFlags": sorted(FLAGS) + ["SECCOMP_FILTER_FLAG_NEW_LISTENER",
                                       "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "supportedFlags": sorted(FLAGS),
    }
