"""umlpy's guest kernel."""
from .decisions import ALLOW, AllowThen, Return, Rewrite, SyscallCall, fail  # noqa: F401
from .kernel import GuestKernel, exit_status_of, run  # noqa: F401
from .policy import Mode  # noqa: F401
