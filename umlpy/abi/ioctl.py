"""ioctl(2) requests umlpy names: terminals' and the inode-flag ones."""
from .layout import Layout

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCOUTQ = 0x540E, 0x540F, 0x5410, 0x5411
TIOCSTI = 0x5412
TIOCGWINSZ, TIOCSWINSZ = 0x5413, 0x5414
FIONREAD = 0x541B
TIOCLINUX = 0x541C
FIONBIO, TIOCNOTTY = 0x5421, 0x5422
TIOCGSID = 0x5429
FIONCLEX, FIOCLEX, FIOASYNC = 0x5450, 0x5451, 0x5452
TIOCGPTN, TIOCSPTLCK, TIOCGDEV = 0x80045430, 0x40045431, 0x80045432
TIOCGPTPEER = 0x5441
TCGETS2, TCSETS2 = 0x802C542A, 0x402C542B
TCSETSW2, TCSETSF2 = 0x402C542C, 0x402C542D
TCSETA, TCSETAW, TCSETAF = 0x5406, 0x5407, 0x5408       # the old struct termio
TIOCEXCL, TIOCNXCL = 0x540C, 0x540D
TIOCGEXCL = 0x80045440
TIOCSETD, TIOCGETD = 0x5423, 0x5424
TCOON = 1                   # TCXONC's argument: restart suspended output

# the arguments, as the kernel reads and writes them: struct termios
# (asm-generic/termbits.h: NCCS 19, no speed fields), struct winsize, an int
TERMIOS = Layout("termios", (("c_iflag", "I"), ("c_oflag", "I"), ("c_cflag", "I"),
                             ("c_lflag", "I"), ("c_line", "B"), ("c_cc", "19s")))
WINSIZE = Layout("winsize", (("ws_row", "H"), ("ws_col", "H"), ("ws_xpixel", "H"),
                             ("ws_ypixel", "H")))
IOCTL_INT = Layout("int", (("value", "i"),))

FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS = 0x40086602, 0x40046602
FS_IOC_FSSETXATTR = 0x401C5820
FS_IOC_SETVERSION, FS_IOC32_SETVERSION = 0x40087602, 0x40047602
