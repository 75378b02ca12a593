/* Results of calls the sandbox must answer exactly as Linux does. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static void show(const char *what, long r)
{
    printf("%s -> %ld (%s)\n", what, r, r < 0 ? strerrorname_np(errno) : "ok");
}

int main(void)
{
    show("syscall(470)", syscall(470));
    show("syscall(1000)", syscall(1000));
    show("syscall(-5)", syscall(-5L));
    show("x32 getpid", syscall(0x40000000L | 39));
    show("set_thread_area", syscall(SYS_set_thread_area, 0));
    show("getpid == pid", syscall(SYS_getpid) == getpid());
    return 0;
}
