"""seccomp(2) and classic BPF: the filter's return values, the flags umlpy
uses, struct seccomp_data (what a filter reads) and struct sock_filter
(one instruction), the opcodes (linux/bpf_common.h)."""
from .layout import Layout

BPF_LD, BPF_ALU, BPF_JMP, BPF_RET = 0x00, 0x04, 0x05, 0x06
BPF_AND = 0x50
BPF_W, BPF_ABS, BPF_K = 0x00, 0x20, 0x00
BPF_JA, BPF_JEQ, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x30, 0x40

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF

SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_DATA = Layout("seccomp_data", (
    ("nr", "i"), ("arch", "I"), ("instruction_pointer", "Q"),
    *((f"args{i}", "Q") for i in range(6)),
))


def seccomp_data_arg_low(i):
    """The offset of args[i]'s low 32 bits in struct seccomp_data (little endian)."""
    return SECCOMP_DATA.offset(f"args{i}")


def seccomp_data_arg_high(i):
    return SECCOMP_DATA.offset(f"args{i}") + 4


SOCK_FILTER = Layout("sock_filter", (("code", "H"), ("jt", "B"), ("jf", "B"), ("k", "I")))
