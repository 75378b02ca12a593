"""Named, long-lived sandboxes in the Python API (issue 14):

    sb = Sandbox.create("web", hostname="web", memory="256M")

    @sb.syscall("openat")           # before start(): in its daemon, for every exec
    def no_shadow(call):
        if call.path(1) == "/etc/shadow":
            return call.deny(13)

    sb.start()
    r = sb.exec(["cat", "/etc/hostname"], capture=True)     # a Result
    sb.stop()
    sb.remove()

A NamedSandbox is a handle on a record of umlpy/lifecycle: the same
sandbox ``umlpy ls``, ``exec``, ``stop`` and ``rm`` see.  Its options
are kept as ``umlpy run``'s words (config/words.py option_words), so
``umlpy start NAME`` boots it the same way.

Handlers.  start() forks the daemon from the calling process
(lifecycle/daemon.py), so the handlers registered on this object before
start() are in the daemon's memory: they go in front of its guest kernel
before the guest's init starts, and see every process of the sandbox,
every exec.  They run in the daemon, another process: what they change
(a counter, a list) is the daemon's copy, which the caller never sees;
they can tell it through a file they open by path (the daemon closes
every descriptor it inherits) or through what the guest sees.  What they
print goes to the daemon's log (``logs(daemon=True)``).  A handler that
raises fails its call with EFAULT (said once in that log): a named
sandbox's default is ``errors="efault"``, as no caller is there to
re-raise it; with ``errors="raise"`` it ends the sandbox (``state``
crashed, ``state_detail`` the error).  A running daemon cannot take new
handlers: ``syscall()`` on a running sandbox raises; they are for the
next start() (by this object: another handle on the same name, or
``umlpy start``, starts it without them).

A program with threads.  The daemon is forked from the thread that
calls start(), alone: a lock another thread holds at that moment stays
held in the daemon forever.  So what the daemon runs is imported before
the fork (an import in progress holds its module's lock), the logging
module remakes its locks in a forked child, and a handler should take no
lock of the program's own that another thread may hold at start()."""
import os
from itertools import zip_longest

from ..config import OPTIONS, Config
from ..config.words import option_words
from ..errors import BadInput, UmlpyError
from ..kernel.decisions import ALLOW
from ..lifecycle.registry import Record, check_keepable, run_options
from .named_exec import run_exec

__all__ = ["NamedSandbox", "create", "get"]

# The Python API's own options (no flag, so no word in the record): they
# are the handlers' and belong to the handle.
HANDLER_OPTIONS = frozenset(opt.name for opt in OPTIONS if not opt.flags)


def create(recipe_class, name, init, options):
    """Sandbox.create: record the sandbox NAME (BadInput if it exists)."""
    record = Record(name)
    check_keepable(options, "Sandbox.create")
    handler_options = {k: options.pop(k) for k in list(options) if k in HANDLER_OPTIONS}
    recipe = _recipe(recipe_class, handler_options)
    words = option_words(Config(**options))
    _check_words(record, words)
    record.create(words, _init_argv(init), os.getcwd())
    return NamedSandbox(record, recipe)


def get(recipe_class, name, handler_options):
    """Sandbox.get: the sandbox NAME (BadInput if there is none)."""
    unknown = sorted(set(handler_options) - HANDLER_OPTIONS)
    if unknown:
        raise TypeError(f"Sandbox.get: unknown option {unknown[0]!r} (a named sandbox's "
                        f"options are its record's; here only {', '.join(sorted(HANDLER_OPTIONS))})")
    record = Record(name)
    record.data()
    return NamedSandbox(record, _recipe(recipe_class, handler_options))


def _recipe(recipe_class, handler_options):
    """A Sandbox that holds the handlers (and their options) only."""
    handler_options.setdefault("errors", "efault")
    return recipe_class(**handler_options)


def _check_words(record, words):
    """Read the words back as `umlpy start` will: they must say the same."""
    config, _argv, _given = run_options(words, f"Sandbox.create({record.name!r})")
    again = option_words(config)
    if again != words:
        wrong = next(w or a for w, a in zip_longest(words, again) if w != a)
        raise BadInput(f"Sandbox.create: the option {wrong!r} cannot be kept as a "
                       "command-line word")


def _init_argv(init):
    if init is None:
        return None
    argv = [init] if isinstance(init, str) else list(init)
    if not argv or not all(isinstance(a, str) for a in argv):
        raise BadInput("Sandbox.create: init: expected a program and its arguments (strings)")
    return argv


class NamedSandbox:
    """A named sandbox: ``name``, ``state`` (created, running, stopped,
    crashed), start, exec, ps, stop, kill, remove, logs, and handlers
    (``syscall``) for its daemon."""

    ALLOW = ALLOW

    def __init__(self, record, recipe):
        self.record = record
        self._recipe = recipe       # a Sandbox: its handlers, for the daemon

    @property
    def name(self):
        return self.record.name

    @property
    def state(self):
        return self.record.state()[0]

    @property
    def state_detail(self):
        """stopped: the exit status; crashed: why; else None."""
        return self.record.state()[1]

    def __repr__(self):
        return f"<NamedSandbox {self.name!r} {self.state}>"

    # handlers ----------------------------------------------------------------
    def syscall(self, *names):
        """Decorator: fn(call) runs in the daemon at each call of these
        syscalls, by every process of the sandbox, from the next start()
        on (see Sandbox.syscall).  UmlpyError if the sandbox is running."""
        if self.record.daemon_alive():
            raise UmlpyError(f"umlpy: sandbox {self.name!r} is running: its daemon cannot take "
                             "new handlers (register them before start(), or stop() first)")
        return self._recipe.syscall(*names)

    # its life -------------------------------------------------------------------
    def start(self):
        """Boot the sandbox's daemon; returns once exec can work.  The
        daemon is forked from this process (from the calling thread, alone:
        see the module's text on programs with threads), so this object's
        handlers are in it.  BadInput if it is already running."""
        from ..lifecycle.daemon import start
        _import_what_the_daemon_runs()
        start(self.record, prepare=self._in_the_daemon)
        return self

    def _in_the_daemon(self, kernel):
        """start()'s prepare: in the forked daemon, before the guest starts."""
        self._recipe.install_handlers(kernel)

    def exec(self, argv, input=None, capture=False, env=None, cwd="/", user="", timeout=None):
        """Run argv in the running sandbox until it exits -> Result.
        input: bytes (or str) for its stdin, else ours; capture: collect
        stdout and stderr, else they are ours; env: more variables; cwd:
        its guest directory; user: "USER[:GROUP]" (names or numbers of
        the guest's); timeout: seconds, then it is killed (status 137,
        result.timed_out).  CommandNotFound / CommandNotExecutable as
        `umlpy exec` exits 127 / 126; UmlpyError if not running."""
        argv = [argv] if isinstance(argv, str) else list(argv)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise BadInput(f"exec in {self.name!r}: argv: expected a program and its "
                           "arguments (strings)")
        env = {str(k): str(v) for k, v in (env or {}).items()}
        if any(not k or "=" in k for k in env):
            raise BadInput(f"exec in {self.name!r}: env: a variable's name is empty or "
                           "holds '='")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise BadInput(f"exec in {self.name!r}: timeout {timeout!r}: expected seconds > 0")
        user, _, group = str(user or "").partition(":")
        self._require_running("exec in it")
        return run_exec(self.record, argv, input, capture, env, str(cwd or "/"), user, group,
                        timeout)

    def ps(self):
        """Its processes: dicts of pid and ppid (as the guest sees them),
        uid, state, rss and cmd."""
        from ..lifecycle.client import request
        self._require_running("list its processes")
        return [{k: v for k, v in p.items() if k != "host_pid"}
                for p in request(self.record, "ps")["processes"]]

    def stop(self, timeout=10):
        """SIGTERM to every process, SIGKILL after timeout seconds; returns
        once the daemon is gone (a sandbox not running: at once)."""
        from ..lifecycle.commands import stop
        if not (isinstance(timeout, (int, float)) and 0 <= timeout <= 86400):
            raise BadInput(f"stop {self.name!r}: timeout {timeout!r}: expected seconds, "
                           "0 to 86400")
        self.record.data()
        stop(self.record, timeout)

    def kill(self, sig="KILL", all=False):
        """Send sig (a number or a name: 9, "KILL", "SIGTERM") to the
        sandbox's init, or to every process of it (all=True)."""
        from ..lifecycle.client import request
        number = _signal_number(sig)
        self._require_running("signal it")
        request(self.record, "kill", signal=number, all=bool(all))

    def remove(self, force=False):
        """Delete the sandbox: its record and its upper layer.  A running
        one: BadInput, unless force (it is stopped at once first).  (An
        ordinary user's sandbox with subordinate ids holds files only
        `umlpy rm`, which enters those ids, can remove.)"""
        from ..lifecycle.commands import remove
        self.record.data()
        remove(self.record, force)

    def logs(self, daemon=False):
        """What INIT wrote (bytes, the newest MiB); daemon=True: the
        daemon's own messages (and what handlers print)."""
        self.record.data()
        try:
            with open(self.record.path("daemon.log" if daemon else "init.log"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def _require_running(self, what):
        state = self.state
        if state != "running":
            raise UmlpyError(f"umlpy: sandbox {self.name!r} is {state}, not running "
                             f"(start() it to {what})")


def _signal_number(sig):
    if isinstance(sig, int):
        if not 0 < sig < 65:
            raise BadInput(f"kill: bad signal {sig}")
        return int(sig)
    from ..lifecycle.commands import signal_number
    return signal_number(sig)


def _import_what_the_daemon_runs():
    """start() forks the daemon from this process, maybe from one thread
    of many: a module another thread were importing at that moment would
    stay locked in the daemon, which would hang at its own import of it.
    So the daemon's code, the guest kernel's every module (about 15 ms,
    once), the lifecycle's daemon side and the API's logging, is imported
    here, before the fork: the daemon then imports none of umlpy's."""
    import importlib
    import pkgutil

    from .. import kernel
    from ..lifecycle import daemon, initproto, logfile, server  # noqa: F401
    from . import debugger, log  # noqa: F401 -- the daemon's --log-level
    for module in pkgutil.walk_packages(kernel.__path__, f"{kernel.__name__}."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            pass        # not for this host: the daemon does not import it either
