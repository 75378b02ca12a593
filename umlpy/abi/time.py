"""Time: struct timespec, struct timeval, struct itimerval, struct utimbuf
and utimensat's special nanoseconds; clock ids."""
from .layout import Layout

TIMESPEC = Layout("timespec", (("tv_sec", "q"), ("tv_nsec", "q")))
TIMEVAL = Layout("timeval", (("tv_sec", "q"), ("tv_usec", "q")))
UTIMBUF = Layout("utimbuf", (("actime", "q"), ("modtime", "q")))
UTIME_NOW = (1 << 30) - 1       # a tv_nsec of utimensat: now, or leave as it is
UTIME_OMIT = (1 << 30) - 2
ITIMERVAL = Layout("itimerval", (("it_interval_sec", "q"), ("it_interval_usec", "q"),
                                 ("it_value_sec", "q"), ("it_value_usec", "q")))

CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE = 4, 5, 6
CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 7, 8, 9
CLOCK_TAI = 11
TIMER_ABSTIME = 1
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2


def pack_timespec(seconds):
    """struct timespec for a duration in seconds (a float)."""
    whole = int(seconds)
    return TIMESPEC.pack(whole, int(round((seconds - whole) * 1e9)))
