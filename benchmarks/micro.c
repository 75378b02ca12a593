/* Micro benchmarks for benchmarks/run.py.
 *
 * usage: micro MODE N FILE
 *   MODE  getpid | open | stat | stat-2t | read | fork | exec
 *   N     iterations (stat-2t: per thread, 2N stats in all)
 *   FILE  an existing regular file (used by open, stat, stat-2t and read)
 *
 * Prints "MODE M ok K", M being the number of operations done (N, or 2N for
 * stat-2t) and K the number of them that gave the right answer, and exits
 * with status 0 only if K == M, so every timed run checks that the sandbox
 * did not break anything.
 * Built with -static -O2 -pthread so dynamic-loader noise stays out of the
 * timings.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
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

/* stat-2t: two threads, started together at a barrier, each doing the stat
 * loop above N times; returns the right answers of both. */
struct stat_thread {
    long n, ok;
    const char *path;
    pthread_barrier_t *start;
};

static void *stat_thread(void *arg)
{
    struct stat_thread *t = arg;
    pthread_barrier_wait(t->start);
    t->ok = run_stat(t->n, t->path);
    return NULL;
}

static long run_stat_2t(long n, const char *path)
{
    pthread_barrier_t start;
    struct stat_thread t[2];
    pthread_t tid[2];
    long ok = 0;
    if (pthread_barrier_init(&start, NULL, 2) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        t[i] = (struct stat_thread){n, -1, path, &start};
        if (pthread_create(&tid[i], NULL, stat_thread, &t[i]) != 0)
            return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (pthread_join(tid[i], NULL) != 0 || t[i].ok < 0)
            return -1;
        ok += t[i].ok;
    }
    pthread_barrier_destroy(&start);
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
    long per_n; /* operations per unit of N */
} modes[] = {
    {"getpid", run_getpid, 1}, {"open", run_open, 1},
    {"stat", run_stat, 1},     {"stat-2t", run_stat_2t, 2},
    {"read", run_read, 1},     {"fork", run_fork, 1},
    {"exec", run_exec, 1},
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
            long ok = modes[i].run(n, argv[3]), want = n * modes[i].per_n;
            printf("%s %ld ok %ld\n", argv[1], want, ok);
            return ok == want ? 0 : 1;
        }
    }
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 2;
}
