"""Path resolution, the guest kernel's own (Linux's namei): every
component looked up in the guest's filesystems, symlinks followed in the
guest's terms (absolute ones from the process's root), ``..`` never above
that root, mountpoints crossed, 40 links at most; openat2's RESOLVE_*
scoping as Linux's LOOKUP_* flags (``walk``'s scope)."""
import errno
from collections import deque

from ...abi.fcntl import RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, \
    RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV
from ...abi.resource import MAXSYMLINKS, NAME_MAX, PATH_MAX

SCOPED = RESOLVE_BENEATH | RESOLVE_IN_ROOT


class Frame:
    """One directory on the way: its canonical guest path, dentry, mount."""
    __slots__ = ("path", "dentry", "mount")

    def __init__(self, path, dentry, mount):
        self.path, self.dentry, self.mount = path, dentry, mount

    def __repr__(self):
        return f"<Frame {self.path}>"


def join(dir_path, name):
    return f"/{name}" if dir_path == "/" else f"{dir_path}/{name}"


class Lookup:
    """The result: ``dentry`` (None when the last name does not exist),
    its ``parents`` (frames, root first; the last is the directory that
    holds it), its ``name``, canonical ``path`` and ``mount``."""
    __slots__ = ("parents", "name", "dentry", "path", "mount", "dir_required")

    def __init__(self, parents, name, dentry, path, mount, dir_required):
        self.parents, self.name, self.dentry = parents, name, dentry
        self.path, self.mount, self.dir_required = path, mount, dir_required

    @property
    def parent(self):
        return self.parents[-1]

    @property
    def exists(self):
        return self.dentry is not None

    @property
    def fs(self):
        return self.dentry.fs if self.dentry is not None else self.parent.dentry.fs

    def parent_dentries(self):
        return [f.dentry for f in self.parents]

    def __repr__(self):
        return f"<Lookup {self.path} {'exists' if self.dentry else 'missing'}>"


class Resolver:
    def __init__(self, mounts, search_check=None):
        """search_check(dentry) -> errno or 0: may the caller search this
        directory (None: no check)."""
        self.mounts = mounts
        self.search_check = search_check

    def root_frames(self, root_path="/"):
        m = self.mounts.root
        frames = [Frame("/", m.fs.root(), m)]
        if root_path != "/":
            res = self.walk(frames, frames, root_path, follow_last=True)
            if res.dentry is None:
                raise OSError(errno.ENOENT, root_path)
            frames = res.parents + [Frame(res.path, res.dentry, res.mount)]
        return frames

    def _enter(self, path, dentry, mount):
        """Cross into a filesystem mounted on path, if any."""
        m = self.mounts.by_path.get(path)
        if m is not None and m is not mount:
            return m.fs.root(), m
        return dentry, mount

    def walk(self, root, start, path, follow_last=True, magic=None, search=None, scope=0):
        """Resolve path (str) from the frames start (cwd or a dirfd's
        directory), with root the process's root frames.  magic(dentry)
        may turn a /proc magic link into (frames, dentry) directly.
        search(dentry) -> errno or 0 checks each directory walked through.

        scope: openat2's RESOLVE_* bits, as Linux's namei applies them
        (root is then the dirfd's frames for BENEATH and IN_ROOT):
        NO_SYMLINKS: any symlink followed is ELOOP; NO_MAGICLINKS: a
        /proc magic link followed is ELOOP; BENEATH: an absolute path or
        symlink, ".." at the root, a magic link are EXDEV; IN_ROOT: they
        stay at the root, but a magic link is EXDEV; NO_XDEV: crossing a
        mountpoint down or up, a magic link to another mount, and an
        absolute symlink (Linux's nd_jump_root compares the mount with a
        root it sets only for an absolute path or a "..": before either,
        any absolute symlink) are EXDEV."""
        if not path:
            raise OSError(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, "path too long")
        if path.startswith("/") and scope & RESOLVE_BENEATH:
            raise OSError(errno.EXDEV, "absolute path beneath a directory")
        stack = list(root if path.startswith("/") else start)
        pending = deque(path.split("/"))
        links = 0
        root_set = path.startswith("/") or bool(scope & SCOPED)
        while pending:
            name = pending.popleft()
            if name == "" or name == ".":
                if name == "." or not pending:
                    if not stack[-1].dentry.attr.is_dir():
                        raise OSError(errno.ENOTDIR, "not a directory")
                continue
            cur = stack[-1]
            cd = cur.dentry
            if not cd.attr.is_dir():
                raise OSError(errno.ENOTDIR, "not a directory")
            check = search or self.search_check
            if check is not None:
                err = check(cd)
                if err:
                    raise OSError(err, "search permission")
            if name == "..":
                # stops at the process's root itself, not at its depth: a
                # cwd or dirfd outside a chroot walks up to the real "/"
                root_set = True
                if len(stack) > 1 and stack[-1].path != root[-1].path:
                    if scope & RESOLVE_NO_XDEV and stack[-2].mount is not stack[-1].mount:
                        raise OSError(errno.EXDEV, "'..' leaves the mount")
                    stack.pop()
                elif scope & RESOLVE_BENEATH and stack[-1].path == root[-1].path:
                    raise OSError(errno.EXDEV, "'..' above the directory")
                continue
            if len(name) > NAME_MAX:
                raise OSError(errno.ENAMETOOLONG, "name too long")
            last = not any(p not in ("", ) for p in pending)
            # a slash after the last name (the path's own, or the end of a
            # symlink's body being walked) makes it followed and a directory
            dir_required = last and bool(pending)
            child = cd.fs.lookup(cd, name)
            child_path = join(cur.path, name)
            mount = cur.mount
            if child is None:
                if self.mounts.by_path.get(child_path) is None:
                    if last:
                        return Lookup(stack, name, None, child_path, mount, dir_required)
                    raise OSError(errno.ENOENT, "no such file or directory")
            child, mount = self._enter(child_path, child, mount)
            if mount is not cur.mount and scope & RESOLVE_NO_XDEV:
                raise OSError(errno.EXDEV, "a mountpoint")
            if child.attr.is_link() and (not last or follow_last or dir_required):
                links += 1
                if links > MAXSYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                if scope & RESOLVE_NO_SYMLINKS:
                    raise OSError(errno.ELOOP, "a symlink")
                jump = magic(child) if magic is not None else None
                if jump is not None:
                    parents, target, tpath, tmount = jump
                    if scope & RESOLVE_NO_MAGICLINKS:
                        raise OSError(errno.ELOOP, "a magic link")
                    if scope & RESOLVE_NO_XDEV and tmount is not cur.mount or scope & SCOPED:
                        raise OSError(errno.EXDEV, "a magic link")
                    if last:
                        if dir_required and not target.attr.is_dir():
                            raise OSError(errno.ENOTDIR, "not a directory")
                        return Lookup(list(parents), tpath.rpartition("/")[2] or "/",
                                      target, tpath, tmount, dir_required)
                    stack = list(parents) + [Frame(tpath, target, tmount)]
                    continue
                target = child.fs.readlink(child)
                if not target:
                    raise OSError(errno.ENOENT, "empty symlink")
                if target.startswith("/"):
                    if scope & RESOLVE_BENEATH or scope & RESOLVE_NO_XDEV and \
                            (not root_set or root[-1].mount is not cur.mount):
                        raise OSError(errno.EXDEV, "an absolute symlink")
                    stack = list(root)
                pending.extendleft(reversed(target.split("/")))
                continue
            if last:
                if dir_required and not child.attr.is_dir():
                    raise OSError(errno.ENOTDIR, "not a directory")
                return Lookup(stack, name, child, child_path, mount, dir_required)
            stack.append(Frame(child_path, child, mount))
        # the path ended in "/", "." or "..": the result is a directory on the stack
        top = stack[-1]
        parents = stack[:-1] if len(stack) > 1 else stack[:]
        return Lookup(parents, top.dentry.name or "/", top.dentry, top.path, top.mount, True)
