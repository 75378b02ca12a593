"""Host paths that give an execve the name Linux would give it.

Linux names a process after the file name its execve was given
(begin_new_exec: comm is kbasename(bprm->filename), 15 bytes): `sleep`
for /bin/sleep even when that is a link to busybox, `foo.sh` for a
script, `true` for a program its loader runs.  The guest kernel hands
the host another path: the program's real host file (the link's target),
its interpreter, its loader, or an alias (aliases.py), whose names are
not the guest's, so `ps`, `pgrep`, `pkill` and /proc/PID/comm would see
`busybox`, `bash`, `ld-linux-x86-64.so.2` or an alias number.

So the host is given a symlink of the guest's name, in a directory of
the sandbox's state that no guest path reaches and only the tracer's
user may change, pointing at the host path umlpy chose: the host kernel
follows it to the very file it would have opened (the link adds no
lookup the guest controls) and names the process after the link.  Links
are kept per (name, target), bounded (the oldest dropped)."""
import os
from collections import OrderedDict

COMM_LEN = 15       # TASK_COMM_LEN - 1
MAX_NAMES = 1024


class ExecNames:
    def __init__(self, directory):
        self.dir = directory
        os.mkdir(directory)
        # searchable by the guest's host ids whatever umlpy's umask is
        # (the caller's: umask 027 would close it to them)
        os.chmod(directory, 0o711)
        self._links = OrderedDict()     # (name, target) -> link path
        self._counter = 0

    def path(self, target, filename):
        """A host path for target that the host's execve names as the
        guest's filename would be named: target itself when its name is
        that already."""
        name = os.path.basename(filename)
        if not name or name in (".", "..") or \
                os.path.basename(target)[:COMM_LEN] == name[:COMM_LEN]:
            return target
        key = (name, target)
        link = self._links.get(key)
        if link is not None:
            self._links.move_to_end(key)
            return link
        self._counter += 1
        holder = os.path.join(self.dir, str(self._counter))
        try:
            os.mkdir(holder)
            os.chmod(holder, 0o711)
            link = os.path.join(holder, name)
            os.symlink(target, link)
        except OSError:
            return target       # (a name the host refuses: the host's name)
        self._links[key] = link
        while len(self._links) > MAX_NAMES:
            _, old = self._links.popitem(last=False)
            try:
                os.unlink(old)
                os.rmdir(os.path.dirname(old))
            except OSError:
                pass
        return link
