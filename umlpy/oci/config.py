"""A bundle's config.json (the OCI runtime spec) -> umlpy's Config and
the container's process.

Every field is either honoured, shown to be what umlpy gives every
guest anyway, or refused in one line: a field umlpy cannot honour is
never dropped in silence, since a container that asked to be more
confined than umlpy makes it would otherwise run less confined than its
owner believes."""
import json
import os
import re

from ..abi import resource as R
from ..config.values import NOEXEC_OWN
from ..kernel.cgroups import CFS_PERIOD_DEFAULT
from ..kernel.identity import IDS_INSIDE
from ..errors import BadInput
from . import hooks as oci_hooks
from . import sysctl as oci_sysctl

# What every umlpy guest has, whatever the config says: its own pid,
# IPC, UTS, mount and network namespaces, and a user namespace (or, as
# an ordinary user, emulated ids); no cgroup filesystem to see through.
OWN_NAMESPACES = ("pid", "ipc", "uts", "mount", "network")
ACCEPTED_NAMESPACES = OWN_NAMESPACES + ("user", "cgroup")

# Mounts the guest VFS gives every guest at these places (the guest's
# /proc and /sys are read-only, /dev holds umlpy's own device nodes).
OWN_MOUNTS = {("proc", "/proc"), ("sysfs", "/sys"), ("devpts", "/dev/pts"),
              ("mqueue", "/dev/mqueue"), ("tmpfs", "/dev"), ("tmpfs", "/dev/shm"),
              ("cgroup", "/sys/fs/cgroup"), ("cgroup2", "/sys/fs/cgroup")}
# cgroup v1's cpu.shares of every cgroup that was given none
DEFAULT_CPU_SHARES = 1024
# An engine's bind for the container's shared memory: umlpy's own
# /dev/shm is the container's (its IPC namespace is its own).
SHARED_MEMORY = ("/dev/shm",)
# Options that change nothing umlpy does, or that umlpy always applies:
# nosuid (no_new_privs is always set), nodev (a guest makes no devices),
# propagation (no guest mount ever reaches the host), times.
HARMLESS_OPTIONS = {"bind", "rbind", "nosuid", "nodev", "private", "rprivate", "slave",
                    "rslave", "shared", "rshared", "unbindable", "runbindable", "relatime",
                    "norelatime", "strictatime", "noatime", "nodiratime", "rw", "ro"}
# Options of the mounts umlpy gives itself (its own sizes and modes).
# (size= of /dev: umlpy's /dev is read-only to the guest, whatever its
# size; /dev/shm's becomes --shm-size.  noexec: --noexec of umlpy's own
# mounts; /dev and /sys/fs/cgroup hold no file a guest could make.)
OWN_MOUNT_OPTIONS = ("mode=", "size=", "newinstance", "ptmxmode=", "gid=", "uid=",
                     "nr_inodes=", "noexec")


RLIMITS = {name: getattr(R, name) for name in dir(R) if name.startswith("RLIMIT_")
           and isinstance(getattr(R, name), int) and name != "RLIMIT_NLIMITS"}

# Linux's capabilities by number (capability.h), as config.json names
# them without CAP_.
CAPABILITY_NUMBERS = {name: number for number, name in enumerate((
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split())}

# The guest's /proc and /sys are read-only to it but for a process's
# own oom_score_adj (kernel/vfs/procfs_fs.py WRITABLE): a read-only path
# there is read-only already.
READ_ONLY_TREES = ("/proc/", "/sys/")


class Spec:
    """What a bundle asks for: the sandbox's Config keywords, the
    container process, and what the runtime keeps in its state."""

    def __init__(self):
        self.options = {}           # Config(**options)
        self.process = {}           # argv, env, cwd, user, group, rlimits, oom_score_adj
        self.annotations = {}
        self.oci_version = ""
        self.capabilities = None    # {capability set: [numbers]}, or None
        self.seccomp = None         # linux.seccomp, as given
        self.hooks = {}             # hooks.py: {kind: [hook]}
        self.sysctl = {}            # sysctl.py: {key: value}


def load(bundle):
    """Spec of the bundle directory's config.json; BadInput, in one line,
    for a bundle umlpy cannot run as asked."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise BadInput(f"umlpy-oci: {path}: no such file (is {bundle} an OCI bundle?)") \
            from None
    except (OSError, ValueError) as e:
        raise BadInput(f"umlpy-oci: {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise BadInput(f"umlpy-oci: {path}: not a JSON object")
    return from_json(data, bundle)


def _fail(what):
    raise BadInput(f"umlpy-oci: config.json: {what}")


def _obj(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(f"{where} is not an object")
    return value


def _list(value, where):
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(f"{where} is not a list")
    return value


def _empty(section, where, keys):
    """Refuse each of keys that section gives a value."""
    for key in keys:
        if section.get(key) not in (None, "", [], {}, 0, False):
            _fail(f"{where}.{key} is not supported by umlpy yet")


def from_json(data, bundle):
    spec = Spec()
    spec.oci_version = str(data.get("ociVersion", ""))
    spec.annotations = {str(k): str(v) for k, v in _obj(data.get("annotations"),
                                                          "annotations").items()}
    # config.md: a property the spec does not define is ignored, never an
    # error ("Extensibility"); those of other platforms (windows, solaris,
    # vm, zos) are not this one's
    if not re.fullmatch(r"1\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",
                        spec.oci_version):
        _fail(f"ociVersion {spec.oci_version!r}: umlpy-oci runs version 1 of the runtime spec "
              "(1.MINOR.PATCH)")
    _empty(data, "config", ["domainname"])
    spec.hooks = oci_hooks.check(_obj(data.get("hooks"), "hooks"))
    _root(spec, _obj(data.get("root"), "root"), bundle)
    if data.get("hostname"):
        spec.options["hostname"] = str(data["hostname"])
    check_process(spec, _obj(data.get("process"), "process"))
    _mounts(spec, _list(data.get("mounts"), "mounts"))
    _linux(spec, _obj(data.get("linux"), "linux"))
    from ..hostuser import entered_ids
    if os.geteuid() != 0 or entered_ids() is not None:
        # An ordinary user's guest is its one id (fake root), or, in a
        # rootless engine's user namespace, the user's own (the namespace's
        # root) with subordinate ids: root lets the container be root as
        # containers expect.
        spec.options["root"] = True
    return spec


def _root(spec, root, bundle):
    path = root.get("path")
    if not isinstance(path, str) or not path:
        _fail("root.path is missing")
    full = os.path.join(bundle, path)
    if not os.path.isdir(full):
        _fail(f"root.path {path}: not a directory")
    if root.get("readonly"):
        spec.options["read_only"] = True
    spec.options["rootfs"] = os.path.abspath(full)


def check_process(spec, process):
    """spec.process from a process object (config.json's, or exec's
    process.json); spec.options["rootfs"] set already."""
    args = _list(process.get("args"), "process.args")
    if not args or not all(isinstance(a, str) for a in args):
        _fail("process.args must be a non-empty list of strings")
    terminal = bool(process.get("terminal"))
    size = _obj(process.get("consoleSize"), "process.consoleSize")
    rows, cols = size.get("height", 0), size.get("width", 0)
    if not all(isinstance(x, int) and 0 <= x < 65536 for x in (rows, cols)):
        _fail("process.consoleSize: height and width must be numbers")
    env = {}
    for item in _list(process.get("env"), "process.env"):
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            _fail(f"process.env {item!r}: expected KEY=VALUE")
        env[key] = value
    cwd = process.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        _fail(f"process.cwd {cwd!r}: must be an absolute path")
    user = _obj(process.get("user"), "process.user")
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if not all(isinstance(x, int) and 0 <= x < 1 << 32 for x in (uid, gid)):
        _fail("process.user: uid and gid must be numbers")
    umask = user.get("umask")
    if umask is not None and not (isinstance(umask, int) and 0 <= umask <= 0o777):
        _fail(f"process.user.umask {umask!r}: a mode from 0 to 0777")
    groups = _list(user.get("additionalGids"), "process.user.additionalGids")
    who, group, groups = _user(uid, gid, groups)
    rlimits = []
    for item in _list(process.get("rlimits"), "process.rlimits"):
        item = _obj(item, "process.rlimits[]")
        number = RLIMITS.get(item.get("type"))
        if number is None:
            _fail(f"process.rlimits: unknown type {item.get('type')!r}")
        soft, hard = item.get("soft"), item.get("hard")
        if not all(isinstance(x, int) and x >= 0 for x in (soft, hard)) or soft > hard:
            _fail(f"process.rlimits {item.get('type')}: soft and hard must be numbers, "
                  "soft at most hard")
        rlimits.append((number, soft, hard))
    # noNewPrivileges: umlpy sets no_new_privs on every guest, whatever
    # the config says (its seccomp filter needs it), and umlpy-init sets
    # it again before the container's own filter.
    _empty(process, "process", ["apparmorProfile", "selinuxLabel", "ioPriority", "scheduler",
                                "execCPUAffinity", "commandLine"])
    oom = process.get("oomScoreAdj")
    if oom is not None and not (isinstance(oom, int) and -1000 <= oom <= 1000):
        _fail(f"process.oomScoreAdj {oom!r}: -1000 to 1000")
    spec.capabilities = _capabilities(_obj(process.get("capabilities"), "process.capabilities"))
    # umlpy-init's optional "X" fields (lifecycle/initproto.py
    # confinement_fields); the seccomp program is linux.seccomp's, added
    # by _linux
    confinement = {"umask": umask, "groups": groups}
    if spec.capabilities is not None:
        confinement["capabilities"] = spec.capabilities
    spec.process = {"argv": args, "env": env, "cwd": cwd, "user": who, "group": group,
                    "rlimits": rlimits, "oom_score_adj": oom, "terminal": terminal,
                    "rows": rows, "cols": cols, "confinement": confinement}


def _user(uid, gid, groups):
    """init's user and group words and the supplementary groups, as runc
    sets them for a numeric user: exactly additionalGids (none when
    there are none; the rootfs's /etc/group is not read)."""
    if not all(isinstance(g, int) and 0 <= g < 1 << 32 for g in groups):
        _fail("process.user.additionalGids: gids must be numbers")
    if len(groups) > 256:
        _fail("process.user.additionalGids: at most 256 groups")
    return str(uid), str(gid), sorted(set(groups))


CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def _capabilities(caps):
    """{set: [capability numbers]} of process.capabilities, each of the
    five sets (a set not given is empty, as runc reads it), or None when
    the config gives none (the process keeps init's: the guest root's
    full set inside its own user namespace).  umlpy-init drops the
    bounding set and sets the others by Linux's calls (init.c), which
    the guest kernel emulates where the guest's ids are emulated
    (kernel/fakeids.py)."""
    if not caps:
        return None
    for kind in caps:
        if kind not in CAPABILITY_SETS:
            _fail(f"process.capabilities.{kind} is not a capability set")
    out = {}
    for kind in CAPABILITY_SETS:
        numbers = set()
        for name in _list(caps.get(kind), f"process.capabilities.{kind}"):
            number = CAPABILITY_NUMBERS.get(str(name).upper().removeprefix("CAP_"))
            if number is None:
                _fail(f"process.capabilities.{kind}: unknown capability {name!r}")
            numbers.add(number)
        out[kind] = sorted(numbers)
    return out


def _mounts(spec, mounts):
    binds, tmpfs, noexec = [], [], []
    for m in mounts:
        m = _obj(m, "mounts[]")
        kind, dest = m.get("type") or "", m.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            _fail(f"mounts: destination {dest!r} must be an absolute path")
        dest = os.path.normpath(dest)
        options = [str(o) for o in _list(m.get("options"), f"mounts {dest}: options")]
        is_bind = kind == "bind" or "bind" in options or "rbind" in options
        words = [w for w in ("noexec",) if w in options]
        if is_bind and dest in SHARED_MEMORY:
            # an engine's shared memory for the container (podman's
            # userdata/shm, a tmpfs of its own): the sandbox's own /dev/shm,
            # private to its IPC namespace, of the same size
            _options(options, dest, ("noexec",))
            size = _tmpfs_size_of(m.get("source"), dest)
            if size is not None:
                spec.options["shm_size"] = size
            noexec += [dest] if words else []
        elif is_bind:
            _options(options, dest, ("noexec",))
            source = m.get("source")
            if not isinstance(source, str) or not os.path.exists(source):
                _fail(f"mounts {dest}: bind source {source!r} does not exist")
            words = (["ro"] if "ro" in options else []) + words
            binds.append(f"{os.path.realpath(source)}:{dest}" +
                         (":" + ",".join(words) if words else ""))
        elif (kind, dest) in OWN_MOUNTS:
            _options(options, dest, OWN_MOUNT_OPTIONS)
            if dest == "/dev/shm":
                size = _size_option(options, dest)
                if size is not None:
                    spec.options["shm_size"] = size
            if words and dest in NOEXEC_OWN:
                noexec.append(dest)
        elif kind == "tmpfs":
            _options(options, dest, ("mode=", "size=", "noexec"))
            size = _size_option(options, dest)
            words += [f"size={size}"] if size is not None else []
            tmpfs.append(dest + (":" + ",".join(words) if words else ""))
        elif kind in ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"):
            _fail(f"mounts {dest}: umlpy gives a {kind} only at its usual place")
        else:
            _fail(f"mounts {dest}: mount type {kind!r} is not supported by umlpy")
    spec.options["binds"] = binds
    spec.options["tmpfs"] = tmpfs
    spec.options["noexec"] = noexec


def _size_option(options, dest):
    """A tmpfs's size= in bytes (mount(8)'s k, m, g suffixes; a % of
    memory is refused), or None."""
    sizes = [o[len("size="):] for o in options if o.startswith("size=")]
    if not sizes:
        return None
    text = sizes[-1].lower()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    try:
        return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    except ValueError:
        _fail(f"mounts {dest}: size={sizes[-1]}: expected bytes, or k, m or g of them")


def _tmpfs_size_of(source, dest):
    """The size of the tmpfs an engine mounted for the container, or None
    where the source is no tmpfs of its own (yet): the sandbox's /dev/shm
    is then bounded by its --memory and --disk, as the directory would be."""
    if not isinstance(source, str) or not os.path.isdir(source):
        _fail(f"mounts {dest}: bind source {source!r} does not exist")
    real = os.path.realpath(source)
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split(" - ") for line in f]
    except OSError:
        return None
    if not any(len(m) == 2 and m[0].split()[4] == real and m[1].split()[0] == "tmpfs"
               for m in mounts):
        return None
    st = os.statvfs(real)
    return st.f_blocks * st.f_frsize


def _options(options, dest, allowed_prefixes):
    for o in options:
        if o in HARMLESS_OPTIONS or any(o.startswith(p) for p in allowed_prefixes):
            continue
        _fail(f"mounts {dest}: mount option {o!r} is not supported by umlpy yet")


def _linux(spec, linux):
    known = {"namespaces", "uidMappings", "gidMappings", "resources", "maskedPaths",
             "readonlyPaths", "cgroupsPath", "rootfsPropagation", "mountLabel", "sysctl",
             "seccomp", "devices", "intelRdt", "personality", "timeOffsets", "memoryPolicy"}
    for key in linux:
        if key not in known:
            _fail(f"linux.{key} is not supported by umlpy")
    # cgroupsPath: where the sandbox's own cgroups for its limits go.
    # rootfsPropagation: no guest mount ever reaches the host.
    cgroups_path = linux.get("cgroupsPath")
    if isinstance(cgroups_path, str) and cgroups_path and ":" not in cgroups_path:
        # a path (cgroupfs's); systemd's slice:prefix:name is not one, and
        # the sandbox's cgroup then gets umlpy's own name
        if "\0" in cgroups_path or ".." in cgroups_path.split("/"):
            _fail(f"linux.cgroupsPath {cgroups_path!r}: not a cgroup path")
        spec.options["cgroup_path"] = cgroups_path
    spec.sysctl = oci_sysctl.check(_obj(linux.get("sysctl"), "linux.sysctl"))
    _seccomp(spec, linux.get("seccomp"))
    _id_mappings(spec, _list(linux.get("uidMappings"), "linux.uidMappings"),
                 _list(linux.get("gidMappings"), "linux.gidMappings"))
    _empty(linux, "linux", ["mountLabel",
                            "devices", "intelRdt", "personality", "timeOffsets",
                            "memoryPolicy"])
    _namespaces(spec, _list(linux.get("namespaces"), "linux.namespaces"))
    _resources(spec, _obj(linux.get("resources"), "linux.resources"))
    _masked(spec, _list(linux.get("maskedPaths"), "linux.maskedPaths"))
    _read_only(spec, _list(linux.get("readonlyPaths"), "linux.readonlyPaths"))


def _seccomp(spec, seccomp):
    """linux.seccomp compiled (oci/seccomp.py) into the process's
    confinement, which the daemon keeps for every exec too
    (server.py spawn_exec); spec.seccomp is the object as given."""
    spec.seccomp = seccomp or None
    if seccomp:
        from . import seccomp as oci_seccomp
        program, flags = oci_seccomp.compile_profile(seccomp)
        spec.process.setdefault("confinement", {}).update(
            seccomp=program.hex(), seccomp_flags=flags)


def _namespaces(spec, namespaces):
    """Each namespace umlpy always gives its own of; a network namespace
    an engine made (its path: netavark's, CNI's) is joined (--net ns:),
    and no network namespace at all is the host's network (--net host),
    as the config asks.  Joining any other is refused."""
    listed = set()
    for ns in namespaces:
        ns = _obj(ns, "linux.namespaces[]")
        kind = ns.get("type")
        if kind not in ACCEPTED_NAMESPACES:
            _fail(f"linux.namespaces: namespace type {kind!r} is not supported by umlpy")
        path = ns.get("path")
        if path and kind == "network":
            if not isinstance(path, str) or not path.startswith("/"):
                _fail(f"linux.namespaces: network path {path!r} must be an absolute path")
            _network_namespace(path)
            spec.options["net"] = f"ns:{path}"
        elif path:
            _fail(f"linux.namespaces: joining the {kind} namespace {path} is not "
                  "supported by umlpy (each sandbox has its own)")
        listed.add(kind)
    if "network" not in listed:
        spec.options["net"] = "host"
    if "cgroup" in listed and spec.process:
        # made by init's child for the process, at the sandbox's cgroup
        spec.process["confinement"]["cgroupns"] = True
    for kind in OWN_NAMESPACES:
        if kind not in listed and kind != "network":
            # an absent namespace means the host's: umlpy always gives its own
            _fail(f"linux.namespaces: no {kind} namespace means the host's, which umlpy "
                  "does not give a container (list it)")


def _id_mappings(spec, uids, gids):
    """A user namespace's mappings (podman's --userns=auto, docker's
    userns-remap): umlpy's guests always have one, whose ids 0..65535 are
    a block of 65536 host ids (--id-block): a mapping of exactly such a
    block, the same for users and groups, picks it; any other is refused."""
    if not uids and not gids:
        return
    ranges = []
    for name, entries in (("uidMappings", uids), ("gidMappings", gids)):
        entries = [_obj(e, f"linux.{name}[]") for e in entries]
        ranges.append([(e.get("containerID"), e.get("hostID"), e.get("size"))
                       for e in entries])
    if ranges[0] != ranges[1] or len(ranges[0]) != 1 or ranges[0][0][0] != 0 or \
            ranges[0][0][2] != IDS_INSIDE or not isinstance(ranges[0][0][1], int):
        _fail("linux.uidMappings/gidMappings: umlpy maps a container's ids 0..65535 to one "
              "block of 65536 host ids, the same for users and groups (containerID 0, size "
              "65536); not this mapping")
    if os.geteuid() != 0 or _entered():
        _fail("linux.uidMappings: the host ids of a container's block are root's to choose")
    spec.options["id_block"] = ranges[0][0][1]


def _entered():
    from ..hostuser import entered_ids
    return entered_ids() is not None


def _network_namespace(path):
    """A one-line error now, at create, for a path that is no network
    namespace (the sandbox would fail to start on it later)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        _fail(f"linux.namespaces: network path {path}: {e.strerror}")
    try:
        if os.fstat(fd).st_dev != os.stat("/proc/self/ns/net").st_dev:
            _fail(f"linux.namespaces: network path {path}: not a network namespace")
    finally:
        os.close(fd)


def _resources(spec, resources):
    known = {"devices", "memory", "pids", "cpu", "blockIO", "hugepageLimits", "network",
             "rdma", "unified"}
    for key in resources:
        if key not in known:
            _fail(f"linux.resources.{key} is not supported by umlpy")
    # devices: the guest's /dev holds umlpy's own nodes only, whatever
    # the cgroup's device rules allow.
    # an engine's zero values (docker's cpu.shares 0, blockIO.weight 0)
    # ask for nothing
    _cpu(spec, dict(_obj(resources.get("cpu"), "linux.resources.cpu")))
    for key, value in ((k, resources.get(k)) for k in (
            "blockIO", "hugepageLimits", "network", "rdma", "unified")):
        if _asks_something(value):
            _fail(f"linux.resources.{key} is not supported by umlpy yet")
    memory = _obj(resources.get("memory"), "linux.resources.memory")
    _empty(memory, "linux.resources.memory", ["kernel", "kernelTCP", "disableOOMKiller"])
    limit = memory.get("limit")
    if limit not in (None, 0, -1):
        if not isinstance(limit, int) or limit < 0:
            _fail(f"linux.resources.memory.limit {limit!r}: expected bytes")
        spec.options["memory"] = limit
    # swap (umlpy has none for the guest) and reservation (a soft floor)
    # leave the limit as it is.
    pids = _obj(resources.get("pids"), "linux.resources.pids").get("limit")
    if pids not in (None, 0, -1):
        if not isinstance(pids, int) or pids < 0:
            _fail(f"linux.resources.pids.limit {pids!r}: expected a number")
        spec.options["pids"] = pids


def _cpu(spec, cpu):
    """linux.resources.cpu -> --cpus (quota/period), --cpu-period,
    --cpu-shares, --cpuset-cpus, --cpuset-mems: the sandbox's own cgroup
    holds them, or the container does not start."""
    if cpu.get("shares") == DEFAULT_CPU_SHARES:
        del cpu["shares"]       # the default weight (containerd's default spec)
    for key in ("realtimeRuntime", "realtimePeriod", "idle"):
        if _asks_something(cpu.get(key)):
            _fail(f"linux.resources.cpu.{key} is not supported by umlpy yet")
    numbers = {}
    for key in ("shares", "quota", "period"):
        value = cpu.get(key)
        if value is not None and not isinstance(value, int):
            _fail(f"linux.resources.cpu.{key} {value!r}: expected a number")
        numbers[key] = value
    if numbers["shares"]:
        spec.options["cpu_shares"] = numbers["shares"]
    if numbers["period"]:
        spec.options["cpu_period"] = numbers["period"]
    quota = numbers["quota"]
    if quota is not None and quota > 0:
        spec.options["cpus"] = quota / (numbers["period"] or CFS_PERIOD_DEFAULT)
    for key, option in (("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")):
        if cpu.get(key):
            spec.options[option] = str(cpu[key])


def _asks_something(value):
    if isinstance(value, dict):
        return any(_asks_something(v) for v in value.values())
    if isinstance(value, list):
        return any(_asks_something(v) for v in value)
    return value not in (None, "", 0, False)


def _masked(spec, paths):
    """A masked file is /dev/null bound over it, a masked directory an
    empty tmpfs; a path that is not there (in the rootfs, or in the host's
    /proc and /sys that the guest's mirror) needs no mask."""
    for path in paths:
        path = _guest_path(path, "linux.maskedPaths")
        where = path if path.startswith(READ_ONLY_TREES) else \
            os.path.join(spec.options["rootfs"], path.lstrip("/"))
        if os.path.isdir(where):
            spec.options.setdefault("tmpfs", []).append(path)
        elif os.path.lexists(where):
            spec.options.setdefault("binds", []).append(f"/dev/null:{path}:ro")


def _read_only(spec, paths):
    for path in paths:
        path = _guest_path(path, "linux.readonlyPaths")
        if path.startswith(READ_ONLY_TREES) and not path.startswith(("/proc/self", "/proc/1")):
            continue
        where = os.path.join(spec.options["rootfs"], path.lstrip("/"))
        if os.path.lexists(where):
            spec.options.setdefault("binds", []).append(f"{os.path.realpath(where)}:{path}:ro")


def _guest_path(path, where):
    if not isinstance(path, str) or not path.startswith("/"):
        _fail(f"{where}: {path!r} must be an absolute path")
    return os.path.normpath(path)
