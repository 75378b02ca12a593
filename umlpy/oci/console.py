"""--console-socket: a container's terminal, as runc makes it.

The runtime makes a pty, sends its master to the engine over the UNIX
socket the engine listens on (SCM_RIGHTS, with the terminal's name as
the message, as runc's utils.SendFd does), and gives the slave to the
container's process as its stdin, stdout, stderr and controlling
terminal (umlpy-init's TIOCSCTTY)."""
import os
import socket

from ..abi.ioctl import WINSIZE
from ..errors import UmlpyError


def open_terminal(path, rows=0, cols=0):
    """A new pty: its master sent to the console socket at path; returns
    the slave (ours to close)."""
    master, slave = os.openpty()
    try:
        if rows and cols:
            import fcntl
            import termios
            fcntl.ioctl(slave, termios.TIOCSWINSZ,
                        WINSIZE.fromdict({"ws_row": rows, "ws_col": cols}))
        send_master(path, master, os.ttyname(slave))
    except BaseException:
        os.close(slave)
        raise
    finally:
        os.close(master)
    return slave


def send_master(path, master, name):
    """The pty's master to the engine listening at path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        socket.send_fds(sock, [name.encode()], [master])
    except OSError as e:
        raise UmlpyError(f"umlpy-oci: --console-socket {path}: {e.strerror}") from None
    finally:
        sock.close()


def pty_name(master):
    """/dev/pts/N of a pty's master (TIOCGPTN)."""
    import fcntl
    from ..abi.ioctl import IOCTL_INT, TIOCGPTN
    try:
        number = IOCTL_INT.get(fcntl.ioctl(master, TIOCGPTN, bytes(IOCTL_INT.size)), "value")
        return f"/dev/pts/{number}"
    except OSError:
        return "/dev/pts/?"
