"""Linux's x86_64 ABI as umlpy uses it, in one place (as gVisor's
pkg/abi/linux).  The handlers, the trace decoders, the Sandbox API and
the C fast path's Python side take every number and struct layout of the
ABI from here, never write one of their own (tests/test_abi.py checks
each against the host's C headers, and the C sources' own copies against
these).

  args        how syscall arguments are read: s32, u32, s64, MASK32, MASK64
              (SyscallCall.int/uint/long/ptr/fd use them)
  layout      Layout: a struct.Struct with named fields (pack/unpack,
              todict/fromdict, get, offset, prefix)
  fcntl       open flags (O_*, VALID_OPEN_FLAGS, O_PATH_FLAGS), AT_* and
              AT_FDCWD, RESOLVE_* and OPEN_HOW (struct open_how), F_*
              commands and seals, R_OK/W_OK/X_OK, RENAME_*, SEEK_*, LOCK_*,
              POSIX_FADV_*, FALLOC_FL_*, inotify's IN_* flags
  stat        S_IF*/S_I* mode bits, STATX_* mask bits, dev_major/dev_minor,
              STAT (struct stat), STATX (struct statx), STATFS (struct statfs)
  dirent      DT_*, IFTODT, DIRENT64/DIRENT (getdents64's and getdents'
              record heads), pack_dirent64/pack_dirent
  time        TIMESPEC, TIMEVAL, ITIMERVAL, UTIMBUF, UTIME_NOW/UTIME_OMIT,
              CLOCK_*, ITIMER_*, pack_timespec
  utsname     UTSNAME (struct utsname), UTSNAME_FIELD_LEN,
              UTSNAME_RELEASE_OFFSET, utsname_field
  sysinfo     SYSINFO (struct sysinfo)
  uio         IOVEC (struct iovec), UIO_MAXIOV, POLLFD (struct pollfd), POLL*
  socket      AF_*, SOCK_*, SOL_*/SO_*, MSG_*, SHUT_*, IPPROTO_*; SOCKADDR_UN,
              SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_NL, MSGHDR, MMSGHDR and their
              helpers (sockaddr_family, pack_sockaddr_un, unpack_sockaddr_in,
              unpack_sockaddr_in6, with_inet_addr)
  signal      SIG* numbers, SA_*, SIG_BLOCK.., SIGACTION (the kernel's struct
              sigaction), SIGINFO (siginfo_t), UCONTEXT and
              UCONTEXT_SIGMASK_OFFSET
  sched       CLONE_* and CSIGNAL, CLONE_ARGS (struct clone_args), KCMP_*,
              PTRACE_TRACEME, wait options (WNOHANG..)
  seccomp     SECCOMP_RET_*, SECCOMP_FILTER_FLAG_NEW_LISTENER, BPF opcodes,
              AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, SECCOMP_DATA, SOCK_FILTER
  capability  CAP_* as bits of a capability set
  mman        PROT_*, MAP_*, MREMAP_*, MFD_*, PAGE_SIZE
  resource    RLIMIT_*, RLIM_INFINITY, RLIMIT (struct rlimit), PATH_MAX,
              NAME_MAX, MAXSYMLINKS, XATTR_NAME_MAX/XATTR_SIZE_MAX,
              OVERFLOW_UID/OVERFLOW_GID
  elf         ELF64_EHDR, ELF64_PHDR, PT_INTERP, BINPRM_MAX_RECURSION, the
              auxv types (AT_NULL, AT_IGNORE, AT_SYSINFO_EHDR)
  ioctl       the terminal requests (TCGETS.., TIOCSTI, TIOCLINUX) and the
              inode-flag ones (FS_IOC_*)

Only ``args`` is imported with the package; the others are imported by
name (``from umlpy.abi.fcntl import AT_FDCWD``).  They import nothing but
``struct`` (through layout): umlpy's start-up stays cheap."""
from .args import MASK32, MASK64, s32, s64, u32  # noqa: F401
