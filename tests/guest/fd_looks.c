/* The calls that still stop at ptrace in the default mode, made again and
 * again: statx of an fd itself (AT_EMPTY_PATH: of a file, a directory and
 * a pipe) and openat2 with nothing openat could not ask.  fd_looks N FILE
 * DIR: what they saw, the same every round. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, int fd, int round)
{
    struct statx stx;
    int r = statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx);
    if (round == 0 || r < 0)
        printf("statx %s: %s mode %o size %llu nlink %u\n", what, r < 0 ? strerror(errno) : "ok",
               r < 0 ? 0 : stx.stx_mode, r < 0 ? 0ULL : (unsigned long long)stx.stx_size,
               r < 0 ? 0 : stx.stx_nlink);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int rounds = atoi(argv[1]);
    int file = open(argv[2], O_RDONLY), dir = open(argv[3], O_RDONLY | O_DIRECTORY);
    int p[2];
    if (file < 0 || dir < 0 || pipe(p) < 0)
        return 1;
    for (int round = 0; round < rounds; round++) {
        show("file", file, round);
        show("dir", dir, round);
        show("pipe", p[0], round);
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_RDONLY | O_CLOEXEC;
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, argv[2], &how, sizeof how);
        char buf[16] = {0};
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        if (round == 0 || fd < 0)
            printf("openat2: %s, read %zd, cloexec %d\n", fd < 0 ? strerror(errno) : "ok", n,
                   fd < 0 ? -1 : (fcntl(fd, F_GETFD) & FD_CLOEXEC));
        close(fd);
        how.flags = O_RDONLY | O_DIRECTORY;
        fd = (int)syscall(SYS_openat2, AT_FDCWD, argv[3], &how, sizeof how);
        if (round == 0 || fd < 0)
            printf("openat2 dir: %s\n", fd < 0 ? strerror(errno) : "ok");
        close(fd);
    }
    return 0;
}
