"""Real programs inside an image: tar, git, cp -a, find and ls -lR,
python3 -m compileall, make and gcc, run over one tar image built from the
host's own programs (rootfs/make-image host --tree ...), and compared with
the same commands run natively.  Writes never change the image, nor the
host tree when it is the lower layer: checksums before and after.

What legitimately differs between the image and the host tree it was made
from (and is masked where the outputs are compared): st_blocks (``total``
in ``ls -l``, ``du``: the image has no block allocation, blocks follow the
size), the size of directories (4096 in the image; ext4 grows big ones) and
the column widths that follow from it."""
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import AS_ROOT, ROOT, _env, run_native, run_umlpy
from umlpy.kernel.vfs.tarimage import stack_images

MAKE_IMAGE = ROOT / "rootfs" / "make-image"
PYTHON = "/usr/bin/python3"
CFLAGS = "-O2 -Wall"

# The environment of every command, inside and natively: fixed locale,
# zone and git identity and dates, so outputs (commit ids too) compare.
ENV = {
    "PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC",
    "PYTHONDONTWRITEBYTECODE": "1",       # compileall writes; imports do not
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "tester@example.org",
    "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "tester@example.org",
    "GIT_AUTHOR_DATE": "2020-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2020-01-02T03:04:05Z",
}
# Programs the scripts below use besides the big ones.
TOOLS = ["tar", "cp", "find", "ls", "sha256sum", "cat", "mkdir", "touch", "ln", "chmod",
         "stat", "rm", "mv", "sort", "cmp", "diff", "grep", "sed", "head", "wc", "env",
         "xargs", "tr", "sleep", "mkfifo", "yes", "true", "readlink", "du"]
OLD = 1577934245        # 2020-01-02 03:04:05 UTC: the sources' times

PROJECT = {
    "util.h": "int add(int a, int b);\nconst char *greeting(void);\n",
    "main.c": ('#include <stdio.h>\n#include <string.h>\n#include "util.h"\n'
               'int main(void)\n{\n    printf("%d %s %zu\\n", add(2, 3), greeting(), '
               'strlen(greeting()));\n    return 0;\n}\n'),
    "util.c": ('#include <stdlib.h>\n#include "util.h"\n'
               'int add(int a, int b) { return a + b; }\n'
               'const char *greeting(void) { return getenv("NO_SUCH") ? "?" : "hello"; }\n'),
    "Makefile": (f"CC = gcc\nCFLAGS = {CFLAGS}\n"
                 "prog: main.o util.o\n\t$(CC) -o $@ main.o util.o\n"
                 "main.o: main.c util.h\nutil.o: util.c util.h\n"
                 "clean:\n\trm -f prog *.o\n.PHONY: clean\n"),
}
PACKAGE = {
    "pkg/__init__.py": "from .sub.mod import square\n\ndef answer():\n    return square(6) + 6\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/mod.py": "def square(x):\n    return x * x\n",
}
REPO = {"README": "a repository in the image\n", "lib/z.c": "int z;\n",
        "lib/deep/y.txt": "y\n"}


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root):
    """Everything about a host tree a guest could change: names, types,
    modes, times, sizes, link targets, contents."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames) + ["."]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)} {st.st_mode:o} {st.st_mtime_ns} "
                     f"{st.st_size} {st.st_nlink}\n".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(digest(path).encode())
    return h.hexdigest()


def write_tree(root, files):
    for rel, text in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def set_times(root, mtime=OLD):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def git_native(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, env=dict(ENV, HOME=str(cwd)),
                          check=True, capture_output=True, text=True).stdout


def make_sources(where, with_repo):
    """The project, package and repository an image holds (and a host tree)."""
    write_tree(where / "project", PROJECT)
    write_tree(where, PACKAGE)
    if with_repo:
        write_tree(where / "repo", REPO)
        git_native(where / "repo", "init", "-q", "-b", "main", ".")
        git_native(where / "repo", "add", ".")
        git_native(where / "repo", "commit", "-q", "-m", "first")
    set_times(where)


class Image:
    def __init__(self, tar, src, stdlib, have, seconds):
        self.tar, self.src, self.stdlib, self.have = tar, src, stdlib, have
        self.seconds = seconds
        self.identity = self._identity()
        self.sha256 = digest(tar)
        self.src_digest = tree_digest(src)

    def _identity(self):
        st = os.stat(self.tar)
        return st.st_size, st.st_mtime_ns, st.st_ino

    def assert_unchanged(self):
        assert self._identity() == self.identity, "the image file was written"

    def need(self, *programs):
        missing = [p for p in programs if p not in self.have]
        if missing:
            pytest.skip(f"not on this host: {', '.join(missing)} "
                        f"(apt-get install {' '.join(missing)})")


def gcc_pieces(project):
    """The host files gcc needs to build project: its programs, start
    files, libraries and the headers the sources include."""
    def ask(option, name):
        return subprocess.run(["gcc", f"-{option}={name}"], capture_output=True,
                              text=True, check=True).stdout.strip()
    pieces = ["gcc"]
    for prog in ("cc1", "collect2", "lto-wrapper", "as", "ld"):
        found = ask("print-prog-name", prog)
        found = found if found.startswith("/") else shutil.which(found)
        if found and os.path.exists(found):
            pieces.append(found)
    for name in ("Scrt1.o", "crti.o", "crtn.o", "crtbeginS.o", "crtendS.o", "libgcc.a",
                 "libgcc_s.so", "libgcc_s.so.1", "libc.so", "libc_nonshared.a",
                 "liblto_plugin.so"):
        found = ask("print-file-name", name)
        if os.path.isabs(found):
            pieces.append(os.path.normpath(found))
    deps = subprocess.run(["gcc", *CFLAGS.split(), "-M", "main.c", "util.c"], cwd=project,
                          capture_output=True, text=True, check=True).stdout
    pieces += sorted({w for w in deps.replace("\\\n", " ").split() if w.startswith("/")})
    return pieces


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """One image with the shell, coreutils, tar, git, python3 and its
    standard library, make and what gcc needs; plus a C project, a python
    package and a git repository (in the image's lower layer)."""
    if not AS_ROOT:
        pytest.skip("compares with native runs as root: the image's files are root's")
    base = tmp_path_factory.mktemp("image-programs")
    have = {p for p in ("git", "make", "gcc") if shutil.which(p)}
    if os.path.exists(PYTHON):
        have.add("python3")
    src = base / "src"
    make_sources(src, "git" in have)
    args, trees, stdlib = [], [], None
    if "python3" in have:
        ask = "import sysconfig; print(sysconfig.get_paths()['stdlib'])"
        stdlib = subprocess.run([PYTHON, "-c", ask], capture_output=True, text=True,
                                check=True).stdout.strip()
        trees.append(stdlib)
        args.append(PYTHON)
    if "git" in have:
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                   check=True).stdout.strip()
        trees += [exec_path] + [t for t in ["/usr/share/git-core/templates"] if os.path.isdir(t)]
        args.append("git")
    if "make" in have:
        args.append("make")
    if "gcc" in have:
        args += gcc_pieces(src / "project")
    args += [t for t in TOOLS if shutil.which(t)]
    out = base / "programs.tar"
    started = time.monotonic()
    made = subprocess.run([sys.executable, str(MAKE_IMAGE), "host", str(out), "--tree", str(src),
                           *(f"--tree={t}" for t in trees), *args],
                          capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert made.returncode == 0, made.stderr
    built = Image(out, src, stdlib, have, seconds)
    print(f"\nimage: {out.stat().st_size / 1e6:.0f} MB in {seconds:.1f} s")
    yield built
    assert digest(out) == built.sha256, "the image changed"
    assert tree_digest(src) == built.src_digest, "the image's host sources changed"


def umlpy_env(cache):
    """umlpy's environment, which the guest inherits: the same as natively
    (no MAKEFLAGS, GIT_DIR... of whoever runs the tests), plus what umlpy
    needs; its content cache goes away with the test's tmp."""
    return dict(ENV, PYTHONPATH=_env()["PYTHONPATH"], XDG_CACHE_HOME=str(cache),
                HOME=os.environ.get("HOME", "/root"))


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory):
    return umlpy_env(tmp_path_factory.mktemp("cache"))


def in_image(image, cache_env, script, mode, upper=None, **variables):
    options = ["--rootfs", str(image.tar)]
    if upper is not None:
        options += ["--upper", str(upper)]
    # the rest of ENV comes from umlpy's own environment
    values = dict(HOME="/root", PYTHONPATH="", SRC=image.src, STDLIB=image.stdlib, **variables)
    for key, value in values.items():
        options += ["-e", f"{key}={value}"]
    p = run_umlpy(["/bin/sh", "-c", script], mode, options=options, env=cache_env, timeout=300)
    image.assert_unchanged()
    return p


def natively(image, script, home, **variables):
    env = dict(ENV, HOME=str(home), SRC=str(image.src), STDLIB=str(image.stdlib))
    env.update((k, str(v)) for k, v in variables.items())
    return run_native(["/bin/sh", "-c", script], env=env, timeout=300)


def same(inside, native, stderr=True):
    assert inside.stdout.decode() == native.stdout.decode(), inside.stderr.decode()[-3000:]
    if stderr:
        assert inside.stderr.decode() == native.stderr.decode()
    assert inside.returncode == native.returncode == 0, inside.stderr.decode()[-3000:]


# ---------------------------------------------------------------- tar

TAR = r"""
set -e
mkdir -p "$W/src/d/e" "$W/src/empty" && cd "$W"
yes abcdefgh | head -c 300000 > src/big
printf 'x\n' > src/d/f && chmod 600 src/d/f
printf '#!/bin/sh\necho hi\n' > src/d/e/run && chmod 755 src/d/e/run
ln src/big src/d/big-link
ln -s ../big src/d/sym
ln -s /nonexistent src/dangling
touch -h -d '2001-02-03 04:05:06' src/big src/d/f src/d/e/run src/d/sym src/dangling \
    src/d/e src/d src/empty src
tar --sort=name -cf a.tar -C src .
tar tvf a.tar | sort
mkdir out && tar xpf a.tar -C out
tar df a.tar -C out && echo same
(cd src && find . -type f | sort | xargs sha256sum) > s1
(cd out && find . -type f | sort | xargs sha256sum) > s2
cmp s1 s2 && cat s2
find out ! -type d -printf '%p %y %m %n %T@ %l\n' | sort
# a directory of the image (of the host natively) through tar
tar --sort=name -cf j.tar -C "$STDLIB" json
mkdir j && tar xf j.tar -C j && tar df j.tar -C j && echo json same
(cd j && find . -type f | sort | xargs sha256sum)
"""


def test_tar_create_extract_verify(image, cache_env, mode, tmp_path):
    image.need("python3")
    inside = in_image(image, cache_env, TAR, mode, W="/tmp/w")
    native = natively(image, TAR, tmp_path, W=tmp_path / "w")
    same(inside, native)
    out = inside.stdout.decode()
    assert "\nsame\n" in out and "json same" in out and "d/big-link link to ./big" in out


# ---------------------------------------------------------------- git

GIT = r"""
set -e
mkdir -p "$W/repo" && cd "$W/repo"
git init -q -b main .
printf 'one\n' > a && mkdir d && printf 'two\n' > d/b && chmod 755 d/b && ln -s a link
git add . && git commit -q -m first
printf 'three\n' >> a && git rm -q d/b && printf 'x' > new && git add -A
git commit -q -m second
git log --format='%H %an <%ae> %ad %s' --date=iso-strict
git cat-file -p HEAD
git ls-tree -r HEAD
git status --porcelain && echo clean
git diff --stat HEAD~1
git gc -q && git count-objects -v | grep -E '^(count|in-pack|packs):'
git fsck --strict --no-progress && echo fsck ok
git clone -q "$W/repo" "$W/clone" && git -C "$W/clone" log --oneline
git archive HEAD | tar tf - | sort
"""


def test_git_init_add_commit_log(image, cache_env, mode, tmp_path):
    image.need("git")
    inside = in_image(image, cache_env, GIT, mode, W="/tmp/w")
    native = natively(image, GIT, tmp_path, W=tmp_path / "w")
    same(inside, native)
    assert b"clean\n" in inside.stdout and b"fsck ok\n" in inside.stdout


GIT_IN_IMAGE = r"""
set -e
cd "$REPO"
git log --oneline && git status --porcelain && echo clean
echo more >> README && git commit -q -am 'changed in the guest'
git log --oneline && git status --porcelain && echo clean
mkdir -p build/x && cd build/x && git rev-parse --show-prefix --show-cdup
"""


def test_git_on_a_repository_in_the_image(image, cache_env, mode, tmp_path):
    image.need("git")
    inside = in_image(image, cache_env, GIT_IN_IMAGE, mode, REPO=image.src / "repo")
    shutil.copytree(image.src / "repo", tmp_path / "repo", symlinks=True)
    native = natively(image, GIT_IN_IMAGE, tmp_path, REPO=tmp_path / "repo")
    same(inside, native)


GIT_SUBDIR = r"""
cd "$REPO" && touch untracked && cd lib/deep && git rev-parse --show-prefix && git status --porcelain
"""


def test_git_finds_its_repository_from_a_subdirectory(image, cache_env, mode, tmp_path):
    """git stops looking for .git where st_dev changes (a mount point): the
    repository's directory has been copied up, its subdirectory has not;
    both must show the same device (and build/x, only in the upper layer,
    too: see test_git_on_a_repository_in_the_image)."""
    image.need("git")
    inside = in_image(image, cache_env, GIT_SUBDIR, mode, REPO=image.src / "repo")
    shutil.copytree(image.src / "repo", tmp_path / "repo", symlinks=True)
    native = natively(image, GIT_SUBDIR, tmp_path, REPO=tmp_path / "repo")
    assert native.stdout == b"lib/deep/\n?? untracked\n"
    same(inside, native)


# ---------------------------------------------------------------- cp -a

CP = r"""
set -e
mkdir -p "$W/src/sub/deeper" && cd "$W"
printf 'data\n' > src/file && chmod 640 src/file
printf 'tool\n' > src/sub/tool && chmod 4755 src/sub/tool
ln src/file src/sub/hard
ln -s file src/rel && ln -s "$STDLIB" src/abs && ln -s missing src/dangling
mkfifo src/fifo
chmod 1777 src/sub/deeper
touch -h -d '2001-02-03 04:05:06.123456789' src/file src/sub/tool src/rel src/abs \
    src/dangling src/fifo src/sub/deeper src/sub src
cp -a src dst
list() { (cd "$1" && find . \( -type d -printf '%p d %m %n %U %G %T@\n' \) -o \
    -printf '%p %y %m %n %U %G %s %T@ %l\n' | sort); }
list src > a && list dst > b && cmp a b && cat b
[ "$(stat -c %i dst/file)" = "$(stat -c %i dst/sub/hard)" ] && echo hard link kept
[ "$(stat -c %i dst/file)" != "$(stat -c %i src/file)" ] && echo a copy
# a directory of the image (of the host natively)
cp -a "$STDLIB/json" json
list "$STDLIB/json" > c && list json > d && cmp c d && echo json copied
"""


def test_cp_a_keeps_modes_links_and_times(image, cache_env, mode, tmp_path):
    image.need("python3")
    inside = in_image(image, cache_env, CP, mode, W="/tmp/w")
    native = natively(image, CP, tmp_path, W=tmp_path / "w")
    same(inside, native)
    assert inside.stdout.endswith(b"hard link kept\na copy\njson copied\n")


# ------------------------------------------------------ find and ls -lR

FIND = r"""
cd "$STDLIB" || exit 1
find . -name __pycache__ -prune -o \( -type d -printf '%p d %m %n %U %G %T@\n' \) -o \
    -printf '%p %y %m %n %U %G %s %T@ %l\n' | sort
find . -name '*.so' -type f | wc -l
find . -name __pycache__ -prune -o -type l -print | sort
find . -name __pycache__ -prune -o -perm -u+x -type f -print | sort
find . -name __pycache__ -prune -o -newer os.py -type f -print | wc -l
"""
LS = 'cd "$STDLIB" && ls -lR --time-style=full-iso --ignore=__pycache__ .'


def masked_ls(text):
    """ls -l output without what the image cannot have alike (see above)."""
    lines = []
    for line in text.decode().splitlines():
        if line.startswith("total "):
            continue
        fields = line.split()
        if line.startswith("d") and len(fields) > 4:
            fields[4] = "DIR"
        lines.append(" ".join(fields))
    return lines


def test_find_in_an_image_directory(image, cache_env, mode, tmp_path):
    image.need("python3")
    inside = in_image(image, cache_env, FIND, mode)
    native = natively(image, FIND, tmp_path)
    same(inside, native)
    assert len(inside.stdout.splitlines()) > 500


def test_ls_lR_of_an_image_directory(image, cache_env, mode, tmp_path):
    image.need("python3")
    inside = in_image(image, cache_env, LS, mode)
    native = natively(image, LS, tmp_path)
    assert inside.returncode == native.returncode == 0, inside.stderr
    assert inside.stderr == native.stderr == b""
    assert masked_ls(inside.stdout) == masked_ls(native.stdout)


def test_ls_l_of_proc_magic_links(image, cache_env, mode):
    """ls -l asks every name for its SELinux label (lgetxattr), symlinks too."""
    p = in_image(image, cache_env, "ls -ld /proc/self /proc/thread-self >/dev/null", mode)
    assert p.stderr == b"" and p.returncode == 0


def test_find_xdev_stays_in_the_image(image, cache_env, mode):
    """One filesystem: find -xdev from / sees the image's directories."""
    image.need("python3")
    script = ('touch /tmp/new && find / -xdev -path "$STDLIB/json" -print && '
              'stat -c %d / /usr /tmp "$STDLIB" | sort -u | wc -l')
    p = in_image(image, cache_env, script, mode)
    assert p.stdout == f"{image.stdlib}/json\n1\n".encode(), p.stderr


IDENTITY = r"""
import os, sys
stdlib = sys.argv[1]
json = os.path.join(stdlib, "json")
before = os.stat(json)
open(os.path.join(json, "new"), "w").close()        # copies json (and its parents) up
os.makedirs("/tmp/made/deeper")
after = os.stat(json)
print("copy-up keeps the identity", (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino))
mounts = {line.split()[4] for line in open("/proc/self/mountinfo")}
devices, mismatches = set(), []
for top in ("/", "/tmp", "/tmp/made", stdlib, json, "/usr"):
    devices.add(os.stat(top).st_dev)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    if os.fstat(fd)[:3] != os.stat(top)[:3]:
        mismatches.append(("fstat", top))
    os.close(fd)
    for entry in os.scandir(top):
        if entry.path in mounts:     # Linux too: d_ino is the covered directory's
            continue
        st = entry.stat(follow_symlinks=False)
        if entry.inode() != st.st_ino:
            mismatches.append(("d_ino", entry.path))
        if entry.is_dir(follow_symlinks=False):
            devices.add(st.st_dev)
print("one device for the directories", len(devices) == 1)
print("mismatches", mismatches)
"""


def test_directories_keep_one_identity(image, cache_env, mode):
    """Directories show one st_dev, before and after copy-up (as overlayfs
    does), and getdents, stat and fstat agree on their inode numbers."""
    image.need("python3")
    p = in_image(image, cache_env, 'python3 -c "$PY" "$STDLIB"', mode, PY=IDENTITY)
    assert p.stdout == (b"copy-up keeps the identity True\none device for the directories True\n"
                        b"mismatches []\n"), p.stderr


# ------------------------------------------------- python3 -m compileall

COMPILEALL = r"""
mkdir -p "$W/pkg/sub" && cd "$W" || exit 1
printf 'from .sub.mod import square\ndef answer():\n    return square(6) + 6\n' > pkg/__init__.py
: > pkg/sub/__init__.py
printf 'def square(x):\n    return x * x\n' > pkg/sub/mod.py
printf 'def broken(:\n' > pkg/bad.py
python3 -m compileall -q pkg; echo "compileall: $?"
rm pkg/bad.py
python3 -m compileall pkg | sort; echo "again: $?"
find pkg -name '*.pyc' | sort
python3 -c 'import pkg, pkg.sub.mod as m, os
print(pkg.answer(), os.path.relpath(m.__cached__), m.__spec__.loader.__class__.__name__)
import importlib.util as u; print(open(m.__cached__, "rb").read(4) == u.MAGIC_NUMBER)'
"""


def test_python_compileall_then_import(image, cache_env, mode, tmp_path):
    image.need("python3")
    inside = in_image(image, cache_env, COMPILEALL, mode, W="/tmp/w")
    native = natively(image, COMPILEALL, tmp_path, W=tmp_path / "w")
    same(inside, native)
    assert b"42 pkg/sub/__pycache__/mod.cpython-" in inside.stdout
    assert b"compileall: 1\n" in inside.stdout


# ---------------------------------------------------------------- make

MAKE = r"""
set -e
cp -a "$SRC/project" "$W" && cd "$W"
make
./prog
make
sleep 1 && touch util.c
make
./prog
make clean
"""


def test_make_builds_a_c_project(image, cache_env, mode, tmp_path):
    image.need("make", "gcc")
    inside = in_image(image, cache_env, MAKE, mode, W="/tmp/project")
    native = natively(image, MAKE, tmp_path, W=tmp_path / "project")
    same(inside, native)
    assert inside.stdout.decode() == (
        f"gcc {CFLAGS}   -c -o main.o main.c\ngcc {CFLAGS}   -c -o util.o util.c\n"
        "gcc -o prog main.o util.o\n5 hello 5\nmake: 'prog' is up to date.\n"
        f"gcc {CFLAGS}   -c -o util.o util.c\ngcc -o prog main.o util.o\n5 hello 5\n"
        "rm -f prog *.o\n")


# ---------------------------------------- the upper layer keeps the results

IN_PLACE = r"""
set -e
cd "$SRC/project" && make -s && ./prog
cd "$SRC/repo" && echo change >> README && git commit -q -am 'in the upper layer'
git log --oneline | wc -l
python3 -m compileall -q "$SRC/pkg"
cd "$SRC" && python3 -c 'import pkg; print(pkg.answer())'
"""
AGAIN = r"""
set -e
cd "$SRC/project" && make && ./prog
git -C "$SRC/repo" log --format=%s | head -1
git -C "$SRC/repo" status --porcelain && echo clean
ls "$SRC/pkg/__pycache__" | wc -l
"""


def test_upper_layer_keeps_what_programs_wrote(image, cache_env, mode, tmp_path):
    image.need("git", "make", "gcc", "python3")
    upper = tmp_path / "upper"
    upper.mkdir()
    first = in_image(image, cache_env, IN_PLACE, mode, upper=upper)
    assert first.stdout == b"5 hello 5\n2\n42\n", first.stderr
    kept = upper / str(image.src).lstrip("/")
    for rel in ("project/prog", "project/main.o", "project/util.o", "repo/.git/index",
                "pkg/__pycache__", "pkg/sub/__pycache__"):
        assert (kept / rel).exists(), rel
    assert not (image.src / "project" / "prog").exists()
    assert digest(image.tar) == image.sha256
    assert tree_digest(image.src) == image.src_digest
    # a second sandbox over the same upper layer sees the first one's work
    again = in_image(image, cache_env, AGAIN, mode, upper=upper)
    assert again.stdout == (b"make: 'prog' is up to date.\n5 hello 5\nin the upper layer\n"
                            b"clean\n1\n"), again.stderr
    diff = subprocess.run([sys.executable, "-m", "umlpy", "diff", "--upper", str(upper),
                           "--rootfs", str(image.tar)], capture_output=True, env=cache_env)
    assert f"A {image.src}/project/prog\n".encode() in diff.stdout, diff.stderr
    assert f"M {image.src}/repo/README\n".encode() in diff.stdout


# ------------------------------------- the host tree as the lower layer

ON_HOST_TREE = r"""
set -e
cd "$H/project" && make -s && ./prog && make
cd "$H/repo" && echo change >> README && git commit -q -am guest && git log --oneline | wc -l
python3 -m compileall -q "$H/pkg" && cd "$H" && python3 -c 'import pkg; print(pkg.answer())'
cp -a "$H/project" "$H/copy" && tar cf "$H/p.tar" -C "$H" project && tar xf "$H/p.tar" -C "$H/copy"
rm -rf "$H/pkg" "$H/repo/lib" && ls "$H"
"""


def test_host_lower_tree_never_changes(mode, tmp_path):
    missing = [p for p in ("git", "make", "gcc") if not shutil.which(p)]
    if missing or not os.path.exists(PYTHON):
        pytest.skip(f"not on this host: {missing or PYTHON}")
    host = tmp_path / "host"
    make_sources(host, True)
    before = tree_digest(host)
    env = umlpy_env(tmp_path / "cache")
    options = ["-e", f"H={host}", "-e", f"HOME={tmp_path}", "-e", "PYTHONPATH="]
    p = run_umlpy(["/bin/sh", "-c", ON_HOST_TREE], mode, options=options, env=env, timeout=300)
    assert p.stdout == b"5 hello 5\nmake: 'prog' is up to date.\n2\n42\ncopy\np.tar\nproject\nrepo\n", \
        p.stderr
    assert tree_digest(host) == before


# ------------------------------------------------ the builder's --tree

def make_image(*args):
    return subprocess.run([sys.executable, str(MAKE_IMAGE), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_make_image_tree_is_copied_as_it_is(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a").write_text("a\n")
    (tree / "a").chmod(0o4750)
    os.link(tree / "a", tree / "sub" / "hard")
    (tree / "sub" / "rel").symlink_to("../a")
    (tmp_path / "odir").mkdir()
    (tmp_path / "ofile").write_text("outside\n")
    (tree / "out").symlink_to(tmp_path / "ofile")
    (tree / "sub" / "outdir").symlink_to("../../odir")
    (tree / "dangling").symlink_to("/no/such/file")
    os.mkfifo(tree / "fifo")
    shutil.copy2("/bin/true", tree / "sub" / "true")
    (tree / "sub" / "deeper").chmod(0o1777)
    os.utime(tree / "a", ns=(0, 1_234_567_890_123_456_789))
    out = tmp_path / "t.tar"
    done = make_image("host", out, "--tree", tree)
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as tar:
        found = {m.name: m for m in tar.getmembers()}
    rel = str(tree).lstrip("/")
    assert found[f"{rel}/a"].isreg() and found[f"{rel}/a"].mode == 0o4750
    assert found[f"{rel}/sub/hard"].islnk() and found[f"{rel}/sub/hard"].linkname == f"{rel}/a"
    assert found[f"{rel}/sub/rel"].issym() and found[f"{rel}/sub/rel"].linkname == "../a"
    assert found[f"{rel}/dangling"].linkname == "/no/such/file"
    assert found[f"{rel}/sub/deeper"].isdir() and found[f"{rel}/sub/deeper"].mode == 0o1777
    assert f"{rel}/fifo" not in found
    assert found[f"{rel}/out"].issym() and found[f"{rel}/out"].linkname == str(tmp_path / "ofile")
    outside = str(tmp_path).lstrip("/")
    assert found[f"{outside}/ofile"].isreg() and found[f"{outside}/odir"].isdir()
    with stack_images(str(out)) as tree_view:
        entry = tree_view.lookup(f"{rel}/a")
        assert entry.mtime_ns == 1_234_567_890_123_456_789 and entry.nlink == 2
        true_libs = [line.split("=>")[-1].split("(")[0].strip() for line in
                     subprocess.run(["ldd", "/bin/true"], capture_output=True,
                                    text=True).stdout.splitlines()]
        for lib in (p for p in true_libs if p.startswith("/")):
            real = os.path.realpath(lib).lstrip("/")
            assert tree_view.lookup(real) is not None, lib
    assert all(m.uid == 0 and m.gid == 0 for m in found.values())


def test_make_image_tree_errors(tmp_path):
    (tmp_path / "file").write_text("")
    done = make_image("host", tmp_path / "o.tar", "--tree", tmp_path / "file")
    assert done.returncode == 2
    assert done.stderr.strip() == f"make-image: {tmp_path / 'file'}: not a directory"
    for args in (["--tree"], ["--tree="], ["--bogus", "/bin/true"]):
        done = make_image("host", tmp_path / "o.tar", *args)
        assert done.returncode == 2 and done.stderr.startswith("usage:"), args
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_make_image_tree_with_a_missing_library_warns(tmp_path):
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    tree = tmp_path / "plugins"
    tree.mkdir()
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int dep(void);\nint plugin(void) { return dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libdep.so", tmp_path / "dep.c"],
                   check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tree / "plugin.so", tmp_path / "plugin.c",
                    "-L", tmp_path, "-ldep"], check=True)
    done = make_image("host", tmp_path / "o.tar", "--tree", tree)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"make-image: warning: {tree}/plugin.so: library libdep.so not found\n"
    with tarfile.open(tmp_path / "o.tar") as tar:
        assert tar.getmember(f"{str(tree).lstrip('/')}/plugin.so").isreg()
