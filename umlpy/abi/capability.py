"""Capabilities umlpy checks, as bits of a capability set (1 << Linux's
capability number)."""
CAP_CHOWN = 1 << 0
CAP_DAC_OVERRIDE = 1 << 1
CAP_DAC_READ_SEARCH = 1 << 2
CAP_FOWNER = 1 << 3
CAP_FSETID = 1 << 4
CAP_KILL = 1 << 5
CAP_SETGID = 1 << 6
CAP_SETUID = 1 << 7
CAP_SETPCAP = 1 << 8
CAP_LINUX_IMMUTABLE = 1 << 9
CAP_SYS_CHROOT = 1 << 18
CAP_SYS_NICE = 1 << 23
CAP_SYS_RESOURCE = 1 << 24
CAP_MKNOD = 1 << 27
CAP_SYS_ADMIN = 1 << 21
CAP_SETFCAP = 1 << 31
CAP_MAC_OVERRIDE = 1 << 32
