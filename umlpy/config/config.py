"""One sandbox's configuration, typed and checked once, whichever way it
was given: ``umlpy run``'s words or the Sandbox API's keywords."""
import os

from ..errors import BadInput
from .options import BY_NAME, OPTIONS


class Config:
    """Every option of OPTIONS as an attribute, with its typed value (or
    its default).  Built once per sandbox; the guest kernel and the
    syscall handlers read it (``call.kernel.config``) and never change it.
    A run with other values is made with ``replace``."""

    def __init__(self, **given):
        unknown = sorted(set(given) - set(BY_NAME))
        if unknown:
            raise TypeError(f"unknown sandbox option {unknown[0]!r} "
                            f"(options: {', '.join(BY_NAME)})")
        for opt in OPTIONS:
            value = given.get(opt.name)
            setattr(self, opt.name, _typed(opt, value))
        self._relate()

    @classmethod
    def from_words(cls, parsed):
        """From a command line's parsed words: {keyword: str or [str]}
        (options not given absent)."""
        return cls(**parsed)

    def replace(self, **changes):
        """A copy with these options changed (given as for Config())."""
        new = object.__new__(Config)
        new.__dict__.update(self.__dict__)
        for name, value in changes.items():
            if name not in BY_NAME:
                raise TypeError(f"unknown sandbox option {name!r}")
            setattr(new, name, _typed(BY_NAME[name], value))
        new._relate()
        return new

    def is_set(self, name):
        """Whether the option was given (a flag: turned on)."""
        value = getattr(self, name)
        return value not in (None, False, [], {})

    def noexec_mounts(self):
        """Whether the sandbox starts with a noexec mount (--noexec, or
        noexec in a --bind's or --tmpfs's options): only then do the
        executable mappings stop (syscalls/memory.py)."""
        return bool(self.noexec) or any(b.noexec for b in self.binds) or \
            any(t.noexec for t in self.tmpfs)

    def _relate(self):
        """What one option means depends on another."""
        if self.cwd is not None and not self.cwd.startswith("/"):
            self.cwd = os.path.normpath(os.path.join(
                os.getcwd() if self.rootfs is None else "/", self.cwd))

    @property
    def environment(self):
        """The -e variables, in order (a later one wins)."""
        return dict(self.env)

    def given(self):
        """{keyword: value} of the options that differ from their default."""
        return {opt.name: getattr(self, opt.name) for opt in OPTIONS if self.is_set(opt.name)}

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self.given().items()) + ")"


def _typed(opt, value):
    if value is None:
        return opt.unset()
    if opt.repeat:
        if isinstance(value, dict):         # env={"K": "V"}
            value = list(value.items())
        elif isinstance(value, (str, bytes, os.PathLike)):
            value = [value]
        try:
            items = list(value)
        except TypeError:
            raise BadInput(f"{opt.flag} {value!r}: expected a list") from None
        return [opt.parse(opt.flag, item) for item in items]
    return opt.parse(opt.flag, value)
