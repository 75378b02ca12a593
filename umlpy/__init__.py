"""umlpy: a User-Mode-Linux style sandbox with a guest kernel in Python."""
__version__ = "0.1.0"

_LAZY = ("Sandbox", "Result", "Stats", "Call", "NamedSandbox")


def __getattr__(name):
    # `from umlpy import Sandbox` loads the API on first use: `import umlpy`
    # (every `umlpy run`) stays cheap
    if name in _LAZY:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'umlpy' has no attribute {name!r}")
