"""The Python API's former single module, kept so that older imports
(``from umlpy.sandbox import Sandbox, Rewrite, install_debugging``) work.
The API lives in ``umlpy/api/``: sandbox.py (``Sandbox``, ``Result``,
``Stats``), call.py (``Call``), handlers.py (handlers in front of the
guest kernel), debugger.py (``--break``) and log.py (``--log-level``).
"""
from .api.call import Call
from .api.debugger import Break, install_debugging, parse_break
from .api.handlers import VDSO_CALLS, hide_vdso, install_front, kernel_decision, make_front
from .api.log import LEVELS, format_call, format_decision
from .api.sandbox import Result, Sandbox, Stats
from .kernel.decisions import ALLOW, AllowThen, Return, Rewrite

__all__ = ["Sandbox", "Result", "Stats", "Call", "ALLOW", "Rewrite", "install_debugging"]

# names the module had beside __all__, for code that imported them
_compat = (Break, parse_break, VDSO_CALLS, hide_vdso, install_front, kernel_decision,
           make_front, LEVELS, format_call, format_decision, AllowThen, Return)
