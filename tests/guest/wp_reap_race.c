/* Once a child is a zombie it is waitable: natively, waitpid(WNOHANG)
 * finds a child as soon as its pidfd polls readable, or as soon as
 * /proc/PID/stat shows state Z.  Repeated, to catch a window in which the
 * child has died but cannot be reaped yet. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static pid_t child(void)
{
    fflush(stdout);
    pid_t c = fork();
    if (c < 0)
        exit(99);
    if (c == 0)
        _exit(5);
    return c;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200, st;
    int missed_pidfd = 0, missed_proc = 0, bad_status = 0;
    for (int i = 0; i < rounds; i++) {
        pid_t c = child();
        int fd = (int)syscall(SYS_pidfd_open, c, 0);
        if (fd < 0) {
            printf("pidfd_open failed\n");
            return 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        while (poll(&p, 1, -1) != 1)
            ;
        pid_t r = waitpid(c, &st, WNOHANG);
        if (r == 0) {
            missed_pidfd++;
            r = waitpid(c, &st, 0);
        }
        if (r != c || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
            bad_status++;
        close(fd);
    }
    for (int i = 0; i < rounds; i++) {
        pid_t c = child();
        while (proc_state(c) != 'Z')
            ;
        pid_t r = waitpid(c, &st, WNOHANG);
        if (r == 0) {
            missed_proc++;
            r = waitpid(c, &st, 0);
        }
        if (r != c || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
            bad_status++;
    }
    printf("pidfd readable, then waitpid(WNOHANG) finds the child: %s\n",
           missed_pidfd ? "not always" : "always");
    printf("/proc says Z, then waitpid(WNOHANG) finds the child: %s\n",
           missed_proc ? "not always" : "always");
    printf("statuses right: %s\n", bad_status ? "no" : "yes");
    fprintf(stderr, "missed: pidfd %d, proc %d of %d\n", missed_pidfd, missed_proc, rounds);
    return 0;
}
