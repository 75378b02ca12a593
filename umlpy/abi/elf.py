"""Programs: the ELF64 headers execve reads (PT_INTERP), the recursion
limit of binfmt handlers (#! scripts), and the auxiliary vector's types."""
from .layout import Layout

ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
EI_CLASS = 4
PT_INTERP = 3
BINPRM_MAX_RECURSION = 4

ELF64_EHDR = Layout("Elf64_Ehdr", (
    ("e_ident", "16s"), ("e_type", "H"), ("e_machine", "H"), ("e_version", "I"),
    ("e_entry", "Q"), ("e_phoff", "Q"), ("e_shoff", "Q"), ("e_flags", "I"),
    ("e_ehsize", "H"), ("e_phentsize", "H"), ("e_phnum", "H"),
    ("e_shentsize", "H"), ("e_shnum", "H"), ("e_shstrndx", "H"),
))
ELF64_PHDR = Layout("Elf64_Phdr", (
    ("p_type", "I"), ("p_flags", "I"), ("p_offset", "Q"), ("p_vaddr", "Q"),
    ("p_paddr", "Q"), ("p_filesz", "Q"), ("p_memsz", "Q"), ("p_align", "Q"),
))

AT_NULL, AT_IGNORE, AT_SYSINFO_EHDR = 0, 1, 33

# The initial stack execve builds is 8-byte words: argc, argv[], NULL,
# envp[], NULL, then the auxiliary vector's (type, value) pairs to AT_NULL.
STACK_WORD = Layout("stack word", (("value", "Q"),))


def stack_words(data):
    """The whole 8-byte words of data, as unsigned numbers."""
    n = len(data) // STACK_WORD.size
    return [STACK_WORD.unpack_from(data, i * STACK_WORD.size)[0] for i in range(n)]
