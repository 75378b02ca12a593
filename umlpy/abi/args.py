"""Syscall arguments arrive as unsigned 64-bit register values; an int
argument is the low 32 bits, sign-extended (Linux's `int` parameters)."""
MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


def s32(v):
    """The register value as a C int (a fd, AT_FDCWD, flags...)."""
    v &= MASK32
    return v - (1 << 32) if v & 0x80000000 else v


def u32(v):
    """The register value as a C unsigned int (a mode, a mask...)."""
    return v & MASK32


def s64(v):
    """The register value as a C long (an offset, a return value...)."""
    v &= MASK64
    return v - (1 << 64) if v & (1 << 63) else v
