/* Micro benchmarks for benchmarks/run.py.
 *
 * usage: micro MODE N FILE
 *   MODE  getpid | open | stat | read | fork | exec
 *   N     iterations
 *   FILE  an existing regular file (used by open, stat and read)
 *
 * Prints "MODE N RESULT" where RESULT is a value that is the same in every
 * correct run, so the harness can check a sandbox did not break anything.
 * Built with -static -O2 so dynamic-loader noise stays out of the timings.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Number of getpid calls that returned the same pid as the first one. */
static long run_getpid(long n, const char *path)
{
    (void)path;
    long first = syscall(SYS_getpid), same = 0;
    for (long i = 0; i < n; i++)
        same += syscall(SYS_getpid) == first;
    return same;
}

/* Number of successful open+close pairs. */
static long run_open(long n, const char *path)
{
    long ok = 0;
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && close(fd) == 0)
            ok++;
    }
    return ok;
}

/* Sum of the st_size values seen. */
static long run_stat(long n, const char *path)
{
    long total = 0;
    struct stat st;
    for (long i = 0; i < n; i++)
        if (stat(path, &st) == 0)
            total += st.st_size;
    return total;
}

/* Sum of the bytes read, one byte at a time, cycling through the file. */
static long run_read(long n, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long total = 0;
    unsigned char c;
    for (long i = 0; i < n; i++)
        if (pread(fd, &c, 1, i % 4096) == 1)
            total += c;
    close(fd);
    return total;
}

/* Number of children that exited with the status they were given. */
static long run_fork(long n, const char *path)
{
    (void)path;
    long ok = 0;
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(7);
        int status;
        if (pid > 0 && waitpid(pid, &status, 0) == pid
            && WIFEXITED(status) && WEXITSTATUS(status) == 7)
            ok++;
    }
    return ok;
}

/* Number of /bin/true children that exited with status 0. */
static long run_exec(long n, const char *path)
{
    (void)path;
    long ok = 0;
    char *argv[] = {"true", NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execv("/bin/true", argv);
            _exit(127);
        }
        int status;
        if (pid > 0 && waitpid(pid, &status, 0) == pid
            && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
    }
    return ok;
}

static const struct {
    const char *name;
    long (*run)(long, const char *);
} modes[] = {
    {"getpid", run_getpid}, {"open", run_open}, {"stat", run_stat},
    {"read", run_read},     {"fork", run_fork}, {"exec", run_exec},
};

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODE N FILE\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            printf("%s %ld %ld\n", argv[1], n, modes[i].run(n, argv[3]));
            return 0;
        }
    }
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 2;
}
