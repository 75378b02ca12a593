"""The user's terminal, left as the sandbox found it.

The guest shares umlpy's terminal (its stdin, stdout or stderr, and
/dev/tty).  What it changes there outlives it: the line settings (echo
off), the line discipline, the window size, suspended output (TCXONC), the
exclusive mode (TIOCEXCL: the user's next open of the terminal fails with
EBUSY) and the foreground process group.  So the guest kernel saves them
before the guest runs, notes which of them a guest sets on that terminal
(the ioctl guard in syscalls/fd.py), and sets those back when the sandbox
ends, however it ends: the guest exits or is killed, or umlpy is sent
SIGTERM, SIGHUP or SIGINT (forwarded to the guest, which ends).  Only what
the guest touched is set back: a window the user resized meanwhile, or a
terminal another job of the user's set up while umlpy ran in the
background, is left alone.  SIGKILL to umlpy leaves it as the guest made it.

Raw ioctls with umlpy/abi's numbers: no termios import at start-up."""
import fcntl
import os
import stat

from ..abi.ioctl import IOCTL_INT, TCGETS, TCOON, TCSETA, TCSETAF, TCSETAW, TCSETS, \
    TCSETS2, TCSETSF, TCSETSF2, TCSETSW, TCSETSW2, TCXONC, TERMIOS, TIOCEXCL, TIOCGETD, \
    TIOCGEXCL, TIOCGWINSZ, TIOCNXCL, TIOCSETD, TIOCSPGRP, TIOCSWINSZ, WINSIZE

# request -> what it changes
SETTERS = {
    TCSETS: "termios", TCSETSW: "termios", TCSETSF: "termios",
    TCSETS2: "termios", TCSETSW2: "termios", TCSETSF2: "termios",
    TCSETA: "termios", TCSETAW: "termios", TCSETAF: "termios",
    TIOCSETD: "ldisc", TIOCSWINSZ: "winsize", TCXONC: "flow",
    TIOCEXCL: "exclusive", TIOCNXCL: "exclusive", TIOCSPGRP: "foreground",
}


def _int(fd, request):
    return IOCTL_INT.unpack(fcntl.ioctl(fd, request, bytes(IOCTL_INT.size)))[0]


class SavedTerminal:
    """One terminal's state at the sandbox's start, on a descriptor of our
    own (the guest cannot close it)."""

    def __init__(self, fd):
        self.fd = fd
        self.rdev = os.fstat(fd).st_rdev
        self.termios = fcntl.ioctl(fd, TCGETS, bytes(TERMIOS.size))
        self.winsize = fcntl.ioctl(fd, TIOCGWINSZ, bytes(WINSIZE.size))
        self.ldisc = _int(fd, TIOCGETD)
        try:
            self.exclusive = _int(fd, TIOCGEXCL)
        except OSError:
            self.exclusive = None       # before Linux 3.8
        try:
            self.foreground = os.tcgetpgrp(fd)
        except OSError:
            self.foreground = None      # not our controlling terminal
        self.touched = set()            # what a guest set on it (SETTERS' values)

    @classmethod
    def find(cls):
        """Our terminal: that of stdin, stdout or stderr, else our
        controlling terminal (a guest can open /dev/tty); None without one."""
        for fd in (0, 1, 2):
            try:
                if os.isatty(fd):
                    return cls(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
            except OSError:
                pass
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return cls(fd)
        except OSError:
            os.close(fd)
            return None

    def is_it(self, host_tid, fd):
        """Whether the guest's fd is this terminal."""
        try:
            st = os.stat(f"/proc/{host_tid}/fd/{fd}")
        except OSError:
            return False
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == self.rdev

    def note(self, request, host_tid, fd):
        """A guest makes the ioctl request on its fd."""
        what = SETTERS.get(request)
        if what is not None and what not in self.touched and self.is_it(host_tid, fd):
            self.touched.add(what)

    def restore(self, handed, sandbox_group):
        """Set back what a guest touched; the foreground also when we handed
        it to the guest (handed).  sandbox_group: the guest's own process
        group (its init's host pid), or None."""
        if not handed and not self.touched:
            return
        import signal       # not at start-up: it imports enum
        # SIGTTOU blocked, so that a background umlpy is not stopped for
        # changing the terminal (on this thread only: the API may run a
        # sandbox off the main thread, where signal.signal fails)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            self._restore(handed, sandbox_group)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _restore(self, handed, sandbox_group):
        fd, touched = self.fd, self.touched
        steps = []
        if "ldisc" in touched:
            steps.append(lambda: fcntl.ioctl(fd, TIOCSETD, IOCTL_INT.pack(self.ldisc)))
        if "flow" in touched:
            steps.append(lambda: fcntl.ioctl(fd, TCXONC, TCOON))
        if touched & {"termios", "ldisc"}:
            # now, not after a drain: output may be suspended for good
            steps.append(lambda: fcntl.ioctl(fd, TCSETS, self.termios))
        if "winsize" in touched:
            steps.append(lambda: fcntl.ioctl(fd, TIOCSWINSZ, self.winsize))
        if "exclusive" in touched and self.exclusive is not None:
            steps.append(lambda: fcntl.ioctl(fd, TIOCEXCL if self.exclusive else TIOCNXCL))
        if (handed or "foreground" in touched) and self.foreground is not None:
            steps.append(lambda: self._foreground_back(sandbox_group))
        for step in steps:
            try:
                step()
            except OSError:
                pass        # hung up, or no longer ours: nothing to restore

    def _foreground_back(self, sandbox_group):
        """The foreground back to the group that had it, if it is now a
        group of the sandbox's (all of them have ended) and not one the
        user's shell chose meanwhile (umlpy stopped and continued in the
        background)."""
        current = os.tcgetpgrp(self.fd)
        if current == self.foreground:
            return
        if current != sandbox_group:
            try:
                os.killpg(current, 0)
                return                  # a live group: not the sandbox's
            except ProcessLookupError:
                pass
            except PermissionError:
                return
        os.tcsetpgrp(self.fd, self.foreground)

    def close(self):
        try:
            os.close(self.fd)
        except OSError:
            pass
