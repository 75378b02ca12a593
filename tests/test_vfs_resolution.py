"""Path resolution inside umlpy equals the host kernel's.

Hypothesis builds directory trees full of symlinks (relative, absolute,
``..`` chains, targets above the root, self and mutual loops, dangling
ones, links to directories used mid-path, bodies with trailing slashes) and
a list of paths over the tree's names with ``.``, ``..``, ``//`` and
trailing slashes.  tests/guest/resolve_probe.c reports, one line per call,
what lstat, stat, statx, access, open (plain, O_NOFOLLOW, O_DIRECTORY,
O_PATH|O_NOFOLLOW then AT_EMPTY_PATH) and readlink find for each path: from
"/", after chdir and fchdir (through symlinks), relative to a dirfd, and
after a chroot whose working directory is left outside the new root.  The
probe runs natively with the tree as its root (a chroot; in fact the root of
a private mount namespace, so that ".." stops there as it does at the
guest's "/") and inside umlpy with the tree as --rootfs; the two outputs
must be equal line by line.

Names of the tree are drawn from a small pool so that random paths often
hit real entries; none is proc, dev, sys or etc (umlpy mounts those)."""
import difflib
import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import AS_ROOT, MODES, run_umlpy

NAMES = ["a", "b", "c", "d", "e"]
MISSING = "zz"                  # never an entry: dangling links, ENOENT paths


# ---- running the probe ----------------------------------------------------

@pytest.fixture(scope="module")
def probe(guest):
    path = guest("resolve_probe", static=True)
    if not AS_ROOT:
        p = subprocess.run(["unshare", "-r", "true"], capture_output=True)
        if p.returncode != 0:
            pytest.skip("the native reference needs root or unshare -r: "
                        + p.stderr.decode().strip())
    return path


def native_argv(tree, args):
    """The host kernel's answer: the probe with the tree as the root of a
    private mount namespace (see resolve_probe.c: pivot=)."""
    argv = [os.path.join(tree, "probe"), "pivot=" + tree, *args]
    return argv if AS_ROOT else ["unshare", "-r", *argv]


def build(tree, spec):
    """spec: {rel: ("dir", mode) | ("file", mode) | ("link", target)}, parents
    first.  A file's content names it; directory modes are set last."""
    dirs = []
    for rel, (kind, arg) in spec.items():
        path = os.path.join(tree, rel)
        if kind == "dir":
            os.mkdir(path)
            dirs.append((path, arg))
        elif kind == "file":
            with open(path, "w") as f:
                f.write(f"file /{rel}\n")
            os.chmod(path, arg)
        else:
            os.symlink(arg, path)
    for path, mode in dirs:
        os.chmod(path, mode)


def remove(tree):
    for top, dirs, _ in os.walk(tree):
        for d in dirs:
            p = os.path.join(top, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(tree)


def short(text):
    return text if len(text) <= 100 else f"{text[:40]}...{text[-20:]}({len(text)} chars)"


def describe(spec):
    out = []
    for rel, (kind, arg) in spec.items():
        if kind == "link":
            out.append(f"  /{short(rel)} -> {short(arg)!r}")
        else:
            out.append(f"  /{short(rel)} {kind} {arg:04o}")
    return "\n".join(out)


def compare(probe, spec, args, mode="default"):
    """Build the tree, run the probe natively and in umlpy: the
    outputs must agree.  Returns the native output."""
    tree = tempfile.mkdtemp(prefix="resolve-")
    try:
        os.chmod(tree, 0o755)
        build(tree, spec)
        shutil.copy(probe, os.path.join(tree, "probe"))
        native = subprocess.run(native_argv(tree, args), capture_output=True, timeout=60)
        assert native.returncode == 0 and native.stdout, native.stderr
        inside = run_umlpy(["/probe", *args], mode, options=["--rootfs", tree], timeout=120)
    finally:
        remove(tree)
    want = native.stdout.decode(errors="replace").splitlines()
    got = inside.stdout.decode(errors="replace").splitlines()
    if got != want or inside.returncode != 0:
        diff = "\n".join(difflib.unified_diff(want, got, "native", "umlpy", lineterm="",
                                              n=1))
        pytest.fail(f"resolution differs ({mode}, status {inside.returncode})\n"
                    f"tree:\n{describe(spec)}\nargs: {[short(a) for a in args]!r}\n{diff}\n"
                    f"umlpy stderr: {inside.stderr.decode(errors='replace')[-1500:]}",
                    pytrace=False)
    return want


# ---- hypothesis: trees and paths ------------------------------------------

def joined(parts, seps):
    out = parts[0]
    for sep, part in zip(seps, parts[1:]):
        out += sep + part
    return out


@st.composite
def walks(draw, names, max_parts=4):
    """A relative path over names, '.', '..' and a missing name, with '/'
    or '//' between components."""
    parts = draw(st.lists(st.sampled_from(names + ["..", "..", ".", MISSING]),
                          min_size=1, max_size=max_parts))
    seps = draw(st.lists(st.sampled_from(["/", "/", "/", "//"]), min_size=len(parts) - 1,
                         max_size=len(parts) - 1))
    return joined(parts, seps)


SUFFIXES = ["", "", "", "/", "/.", "/..", "//"]


def relpath(target, start):
    return os.path.relpath("/" + target, "/" + start)


@st.composite
def link_target(draw, rel, others):
    """A symlink body for the link at rel; others: every rel of the tree."""
    here = os.path.dirname(rel)
    kind = draw(st.sampled_from(["walk", "walk-abs", "existing", "existing-abs", "up-chain",
                                 "escape", "self", "other-link", "dangling", "special"]))
    if kind == "walk":
        body = draw(walks(NAMES))
    elif kind == "walk-abs":
        body = draw(st.sampled_from(["/", "//"])) + draw(walks(NAMES))
    elif kind == "existing":
        body = relpath(draw(st.sampled_from(others)), here)
    elif kind == "existing-abs":
        body = "/" + draw(st.sampled_from(others))
    elif kind == "up-chain":
        depth = rel.count("/")
        body = "/".join([".."] * draw(st.integers(1, depth + 1)))
        if draw(st.booleans()):
            body += "/" + draw(st.sampled_from(others))
    elif kind == "escape":          # far above the root: clamped there
        body = "/".join([".."] * draw(st.integers(3, 6))) + "/" + draw(st.sampled_from(others))
    elif kind == "self":
        name = os.path.basename(rel)
        body = draw(st.sampled_from([name, "./" + name, f"../{os.path.basename(here)}/{name}"
                                     if here else "/" + name, "/" + rel]))
    elif kind == "other-link":      # mutual loops and chains of links
        links = [r for r in others if r != rel] or [rel]
        other = draw(st.sampled_from(links))
        body = draw(st.sampled_from([relpath(other, here), "/" + other]))
    elif kind == "dangling":
        body = draw(st.sampled_from([MISSING, f"/{MISSING}/{NAMES[0]}",
                                     f"{NAMES[0]}/{MISSING}"]))
    else:
        return draw(st.sampled_from(["/", "//", ".", "..", "./", "../..", "/.."]))
    return body + draw(st.sampled_from(SUFFIXES))


@st.composite
def trees(draw):
    spec = {}
    dirs = [""]

    def fresh(parent):
        rel = os.path.join(parent, draw(st.sampled_from(NAMES)))
        return None if rel in spec else rel

    for _ in range(draw(st.integers(1, 6))):
        rel = fresh(draw(st.sampled_from(dirs)))
        if rel:
            spec[rel] = ("dir", draw(st.sampled_from([0o755, 0o755, 0o700, 0o711, 0o555])))
            dirs.append(rel)
    for _ in range(draw(st.integers(1, 5))):
        rel = fresh(draw(st.sampled_from(dirs)))
        if rel:
            spec[rel] = ("file", draw(st.sampled_from([0o644, 0o644, 0o600, 0o755, 0o444])))
    links = []
    for _ in range(draw(st.integers(2, 8))):
        rel = fresh(draw(st.sampled_from(dirs)))
        if rel:
            spec[rel] = ("link", None)
            links.append(rel)
    everything = list(spec)
    for rel in links:
        spec[rel] = ("link", draw(link_target(rel, everything)))
    return spec


@st.composite
def queries(draw, spec):
    """The probe's arguments: paths from "/", then after a chdir, with a
    dirfd, after an fchdir, and (as root) after a chroot."""
    rels = list(spec)
    names = NAMES
    args = ["/", "/..", "..", ""]
    for rel in rels:
        args.append("/" + rel + draw(st.sampled_from(SUFFIXES)))
        if draw(st.booleans()):
            args.append(rel + draw(st.sampled_from(["/", "//.", "/" + draw(st.sampled_from(
                names + [".."]))])))
    for _ in range(draw(st.integers(2, 8))):
        args.append(draw(st.sampled_from(["/", "//", ""])) + draw(walks(names, 6)))

    def relative_batch(lo, hi):
        batch = [draw(st.sampled_from([".", "..", "../..", "../../.."]))]
        for _ in range(draw(st.integers(lo, hi))):
            batch.append(draw(walks(names)) + draw(st.sampled_from(SUFFIXES)))
        return batch

    def somewhere():
        """A directory to go to (most often a real one or a link)."""
        lead = draw(st.sampled_from(["/", "/", "/", ""]))
        where = draw(st.one_of(st.sampled_from(rels), st.sampled_from(rels),
                               st.sampled_from([".", "..", MISSING]), walks(names, 3)))
        return lead + where + draw(st.sampled_from(["", "", "/", "/.."]))

    args.append("cd=" + somewhere())
    args += relative_batch(2, 6)
    args.append(draw(st.sampled_from(["at=", "at=", "atp="])) + somewhere())
    args += relative_batch(2, 6)
    args.append("/" + draw(walks(names)))
    args.append("at=")
    args.append("fcd=" + somewhere())
    args += relative_batch(1, 4)
    if AS_ROOT and draw(st.booleans()):
        # the working directory stays where it was, maybe outside the new root
        args.append("root=" + somewhere())
        args += relative_batch(1, 4)
        args.append("/" + draw(walks(names)))
        args.append("cd=/")
        args += relative_batch(1, 3)
    return args


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_resolution_matches_the_host_kernel(probe, data):
    spec = data.draw(trees(), label="tree")
    args = data.draw(queries(spec), label="args")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    note(describe(spec))
    compare(probe, spec, args, mode)


# ---- hand-written cases -----------------------------------------------------

def test_absolute_symlink_chain(probe, mode):
    spec = {
        "a": ("dir", 0o755), "a/b": ("dir", 0o755), "a/b/f": ("file", 0o644),
        "c": ("dir", 0o755),
        "l1": ("link", "/a/l2"),                # absolute, to another link
        "a/l2": ("link", "//c/../a/./l3/"),     # //, .., . and a trailing slash
        "a/l3": ("link", "/c/l4"),
        "c/l4": ("link", "../../../../a/b"),    # above the root, clamped there
        "c/fslash": ("link", "/a/b/f/"),        # a file with a slash: ENOTDIR
    }
    out = compare(probe, spec, ["/l1", "/l1/f", "/l1/", "l1/../b/f", "/a/l2/f", "/c/l4/..",
                                "c/fslash", "c/fslash/", "cd=l1", ".", "..", "f", "f/",
                                "at=/a/l3", "f", "../l2/f", "/l1"], mode)
    assert "'/l1/f' open: reg \"file /a/b/f|\"" in out
    assert "== chdir 'l1': cwd /a/b" in out
    assert "'c/fslash' stat: ENOTDIR" in out


def test_link_count_limit_and_loops(probe, mode):
    # n0 -> n1 -> ... -> n40 -> f: 40 links followed is allowed, 41 is ELOOP
    spec = {"f": ("file", 0o644), "d": ("dir", 0o755)}
    for i in range(41):
        spec[f"n{i}"] = ("link", f"n{i + 1}" if i < 40 else "f")
    spec["n41"] = ("link", "n0")
    spec["self"] = ("link", "self")
    spec["d/ping"] = ("link", "../d/pong")
    spec["d/pong"] = ("link", "/d/ping/")
    spec["d/mid"] = ("link", "/d/ping/x")
    out = compare(probe, spec, ["n1", "n0", "n41", "n0/", "self", "self/", "d/ping", "d/pong/",
                                "d/mid", "/d/ping/..", "cd=n1", "cd=self"], mode)
    assert "'n1' open: reg \"file /f|\"" in out
    assert "'n0' stat: ELOOP" in out
    assert "'n41' lstat: lnk 0777 size=2 nlink=1" in out
    assert "'d/mid' stat: ELOOP" in out


def test_dirfds_and_empty_paths(probe, mode):
    spec = {"a": ("dir", 0o755), "a/f": ("file", 0o644), "a/l": ("link", "f"),
            "d": ("link", "a/"), "fl": ("link", "a/f")}
    out = compare(probe, spec, ["", "at=a", "", "f", "l", "l/", "../a/l", "/a/f", "at=d", "f",
                                "atp=fl", "", "x", ".", "/a", "atp=a/l", "..", "atp=d", "f",
                                "..", "at=", "fcd=d", ".", "f", "l"], mode)
    assert "== dirfd 'd': /a" in out
    assert "== dirfd O_PATH 'fl': reg, not a directory" in out
    assert "'x' stat: ENOTDIR" in out


def test_dotdot_never_above_the_root(probe, mode):
    spec = {"a": ("dir", 0o755), "a/b": ("dir", 0o711), "a/b/c": ("dir", 0o755),
            "x": ("dir", 0o755), "x/y": ("dir", 0o755), "x/y/z": ("dir", 0o755),
            "a/f": ("file", 0o600),
            "a/b/c/up": ("link", "../../../../../../../../.."),
            "a/b/c/upf": ("link", "../../../../../../a/f")}
    args = ["/..", "/../../..", "//..//a/./b/..", "../../a/f", "a/b/c/up", "a/b/c/up/a/f",
            "a/b/c/upf", "cd=a/b/c", "..", "../../..", "../../../a", "up/x",
            "at=/a/b", "..", "../../..", "c/up/x", "at="]
    if AS_ROOT:
        # a chroot leaves the working directory outside the new root: ".."
        # stops at the root only, so from /x/y/z it climbs to the real "/"
        args += ["cd=/x/y/z", "root=/a/b", "..", "../..", "../../..", "../../../a/f", "/..",
                 "/../c", "c/up", "c/upf", "cd=/", "..", "/../../c"]
    out = compare(probe, spec, args, mode)
    assert "'a/b/c/up/a/f' open: reg \"file /a/f|\"" in out
    if AS_ROOT:
        assert "'../../../a/f' open: reg \"file /a/f|\"" in out


def test_name_and_path_length_limits(probe, mode):
    spec = {"a": ("dir", 0o755), "a/f": ("file", 0o644),
            "x" * 255: ("file", 0o644),   # no room for a ".wh." whiteout of it
            "long": ("link", "x" * 256),
            "deep": ("link", "/" + "./" * 2000 + "a/f")}
    args = ["x" * 255, "x" * 256, "a/" + "y" * 256 + "/f", "long",
            "./" * 2046 + "a/f",            # 4095 bytes: resolved
            "./" * 2046 + "a/ff",           # 4096 bytes: ENAMETOOLONG
            "deep", "deep/", "/" * 3000 + "a/f"]
    out = compare(probe, spec, args, mode)
    assert any(line.endswith("'long' stat: ENAMETOOLONG") for line in out)
    assert any("(4096 chars) lstat: ENAMETOOLONG" in line for line in out)
    assert any("(4095 chars) open: reg" in line for line in out)
