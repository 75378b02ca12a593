"""struct utsname (uname(2)): six NUL-padded fields of 65 bytes."""
from .layout import Layout

UTSNAME_FIELD_LEN = 65          # __NEW_UTS_LEN + 1
UTSNAME = Layout("utsname", tuple((name, f"{UTSNAME_FIELD_LEN}s") for name in (
    "sysname", "nodename", "release", "version", "machine", "domainname")))
UTSNAME_RELEASE_OFFSET = UTSNAME.offset("release")


def utsname_field(value):
    """A field's bytes as Linux stores it: at most 64 bytes, then a NUL."""
    if isinstance(value, str):
        value = value.encode()
    return value[:UTSNAME_FIELD_LEN - 1] + b"\0"
