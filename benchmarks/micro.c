/* Micro benchmarks for benchmarks/run.py.
 *
 * usage: micro MODE N FILE
 *   MODE  getpid | open | stat | read | fork | exec
 *   N     iterations
 *   FILE  an existing regular file (used by open, stat and read)
 *
 * Prints "MODE N ok K", K being the number of operations that gave the right
 * answer, and exits with status 0 only if K == N, so every timed run checks
 * that the sandbox did not break anything.
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

/* Each run_* function does N operations and returns how many of them gave
 * the right answer, so a correct run returns N. */

static long run_getpid(long n, const char *path)
{
    (void)path;
    long first = syscall(SYS_getpid), ok = 0;
    for (long i = 0; i < n; i++)
        ok += syscall(SYS_getpid) == first;
    return ok;
}

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

/* The size stat() reports must match fstat() on an open descriptor. */
static long run_stat(long n, const char *path)
{
    struct stat ref, st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &ref) != 0)
        return -1;
    close(fd);
    long ok = 0;
    for (long i = 0; i < n; i++)
        ok += stat(path, &st) == 0 && st.st_size == ref.st_size;
    return ok;
}

/* Each byte pread() returns must match the file's first block, read once. */
static long run_read(long n, const char *path)
{
    unsigned char block[4096], c;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd < 0 ? -1 : read(fd, block, sizeof block);
    if (len <= 0)
        return -1;
    long ok = 0;
    for (long i = 0; i < n; i++)
        ok += pread(fd, &c, 1, i % len) == 1 && c == block[i % len];
    close(fd);
    return ok;
}

/* Children must exit with the status they were given. */
static long run_fork(long n, const char *path)
{
    (void)path;
    long ok = 0;
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(7);
        int status;
        ok += pid > 0 && waitpid(pid, &status, 0) == pid
              && WIFEXITED(status) && WEXITSTATUS(status) == 7;
    }
    return ok;
}

/* Each /bin/true child must exit with status 0. */
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
        ok += pid > 0 && waitpid(pid, &status, 0) == pid
              && WIFEXITED(status) && WEXITSTATUS(status) == 0;
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
            long ok = modes[i].run(n, argv[3]);
            printf("%s %ld ok %ld\n", argv[1], n, ok);
            return ok == n ? 0 : 1;
        }
    }
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 2;
}
