"""Linux's x86_64 ABI as umlpy uses it, in one place (as gVisor's
pkg/abi/linux): how syscall arguments are read.  The handlers, the trace
decoders and the Sandbox API take these from here, never define their
own."""
from .args import MASK32, MASK64, s32, s64, u32  # noqa: F401
