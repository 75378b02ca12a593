"""Errors of umlpy itself (never of the guest, whose errors are errno
values).  Each carries the exit status a shell would use for it."""


class UmlpyError(Exception):
    """A one-line, user-facing error."""
    exit_status = 1


def one_line(text):
    """text as one printable line: the control characters a user's value
    may hold (a newline, a carriage return) escaped as Python escapes them."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class BadInput(UmlpyError):
    """A bad option, a bad --rootfs, a bad -C directory."""
    exit_status = 2


class CommandNotFound(UmlpyError):
    exit_status = 127


class CommandNotExecutable(UmlpyError):
    exit_status = 126
