"""Linux native AIO (io_setup, io_submit): the control block a guest
submits, as <linux/aio_abi.h> lays it out."""
from .layout import Layout

IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC = 0, 1, 2, 3
IOCB_CMD_POLL, IOCB_CMD_NOOP, IOCB_CMD_PREADV, IOCB_CMD_PWRITEV = 5, 6, 7, 8

IOCB = Layout("iocb", (
    ("aio_data", "Q"), ("aio_key", "I"), ("aio_rw_flags", "i"),
    ("aio_lio_opcode", "H"), ("aio_reqprio", "h"), ("aio_fildes", "I"),
    ("aio_buf", "Q"), ("aio_nbytes", "Q"), ("aio_offset", "q"),
    ("aio_reserved2", "Q"), ("aio_flags", "I"), ("aio_resfd", "I"),
))
# io_submit's third argument: an array of pointers to control blocks
IOCB_POINTER = Layout("iocb pointer", (("iocb", "Q"),))
