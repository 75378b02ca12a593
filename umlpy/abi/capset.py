"""capset(2): a thread that keeps some capabilities across a change of
its ids (PR_SET_KEEPCAPS) then sets them."""
from .layout import Layout

PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
LINUX_CAPABILITY_VERSION_1 = 0x19980330     # one data struct (capabilities 0-31)
LINUX_CAPABILITY_VERSION_2 = 0x20071026     # two, as version 3
LINUX_CAPABILITY_VERSION_3 = 0x20080522     # the headers' _LINUX_CAPABILITY_VERSION_3
CAP_USER_HEADER = Layout("__user_cap_header_struct", (("version", "I"), ("pid", "i")))
# version 3 takes two of these: capabilities 0-31, then 32-63
CAP_USER_DATA = Layout("__user_cap_data_struct", (
    ("effective", "I"), ("permitted", "I"), ("inheritable", "I")))
