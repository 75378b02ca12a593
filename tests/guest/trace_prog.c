/* A deterministic little program for `umlpy trace` vs `strace -f`: file
 * calls that succeed and fail, a pipe, a forked child that exits with 3
 * (and is waited for), and a line on stdout.  No threads and no signal
 * handlers, so the sequence of calls of each process does not depend on
 * scheduling.  argv[1], if given, is a file to open (to make two runs
 * differ for --compare). */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char buf[128];
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf) < 0)
            return 10;
        close(fd);
    }
    if (open("/nonexistent/trace-me", O_RDONLY) >= 0)
        return 11;
    if (argc > 1 && open(argv[1], O_RDONLY | O_CLOEXEC) < 0)
        (void)access(argv[1], F_OK);
    struct stat st;
    (void)stat("/etc", &st);
    (void)access("/etc/passwd", R_OK);
    int p[2];
    if (pipe(p) < 0)
        return 12;
    if (write(p[1], "ping", 4) != 4 || read(p[0], buf, 4) != 4)
        return 13;
    close(p[0]);
    close(p[1]);
    (void)write(1, "hello from trace_prog\n", 22);
    pid_t child = fork();
    if (child == 0) {
        (void)getppid();
        (void)close(-1);
        _exit(3);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child)
        return 14;
    return WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 0 : 15;
}
