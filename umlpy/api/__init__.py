"""umlpy's Python API, one job a module:

* ``sandbox.py``: ``Sandbox`` (a recipe for sandboxes: options and
  handlers; each ``run`` makes a fresh guest kernel);
* ``result.py``: ``Result`` and ``Stats``, what a run or an exec gives;
* ``named.py``: ``NamedSandbox``, a named, long-lived sandbox
  (``Sandbox.create(name)``, ``Sandbox.get(name)``) over umlpy/lifecycle:
  start, exec, ps, stop, kill, remove, logs; handlers registered before
  start run in its daemon; ``named_exec.py``: its exec (stdio through
  pipes, a timeout);
* ``call.py``: ``Call``, the view of one stopped call a handler gets;
* ``handlers.py``: handlers put in front of the guest kernel and composed
  with it (a changed call is decided by the guest kernel as if the guest
  had made it), and hiding the vDSO;
* ``debugger.py``: ``umlpy run --break`` (pdb inside the guest kernel,
  the terminal taken from the guest and given back);
* ``log.py``: ``umlpy run --log-level`` (the guest kernel's decisions
  through the ``logging`` module, its calls decoded by trace/decode.py as
  ``umlpy trace`` decodes them).

``umlpy.sandbox`` re-exports the public names for older imports.  The
package may import ``umlpy.kernel`` and ``umlpy.trace``, never the
reverse; ``umlpy run`` imports it only for ``--break``/``--log-level``.
"""

_LAZY = {"Sandbox": "sandbox", "Result": "result", "Stats": "result", "Call": "call",
         "NamedSandbox": "named"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'umlpy.api' has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f".{module}", __name__), name)
