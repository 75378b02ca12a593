/* A syscall fuzzer for umlpy's guest kernel: random syscalls with random
 * and crafted arguments, reproducible from a seed.
 *
 *   fuzz SEED SECONDS
 *
 * It refuses to run unless it is pid 1 of a pid namespace (inside umlpy):
 * random syscalls as root on a real host would do real damage.  The init
 * (pid 1) forks workers; each makes up to BATCH random calls under an alarm
 * (a call that blocks forever is cut short), and dies as it may: the init
 * reaps it and forks the next, until SECONDS have passed.  Worker i of a
 * run draws from seed*1000003+i, so a worker's calls can be replayed with
 * `fuzz SEED SECONDS i` (it then runs worker i alone, printing each call).
 * FUZZ_NRS (comma-separated numbers) in the environment names calls to
 * favour: half of all calls are drawn from it (the test passes the calls
 * the guest kernel's Python handlers decide, where a bug could hide).
 * Prints "fuzz done seed=S workers=W calls=C". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 400
#define MAX_NR 470

static uint64_t rng;
static long favourites[512];
static int nfavourites;

static uint64_t next(void)
{
    /* xorshift64*: tiny, deterministic */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static char *pool;          /* memory the crafted pointers point into */
#define POOL_SIZE (1 << 16)

static const char *paths[] = {
    "/", "/tmp", "/tmp/fz", "/tmp/fz/a", "/etc/passwd", "/proc/self/mem",
    "/proc/self/root", "/proc/1/root/..", "/proc/self/fd/0", "/dev/null", "/dev/tty",
    "/sys", "../../../../..", ".", "", "/tmp/fz/link", "/proc/self/exe",
    "/proc/self/cwd/../..", "/dev/shm/fz", "/proc/sys/kernel/core_pattern",
};

/* Calls that would stop the worker from making more calls, or make the
 * run meaningless; each is still made, rarely. */
static int rare(long nr)
{
    return nr == SYS_exit || nr == SYS_exit_group || nr == SYS_pause ||
           nr == SYS_rt_sigsuspend || nr == SYS_vfork || nr == SYS_execve ||
           nr == SYS_execveat || nr == SYS_munmap || nr == SYS_mremap ||
           nr == SYS_brk || nr == SYS_rt_sigreturn || nr == SYS_clone ||
           nr == SYS_clone3 || nr == SYS_fork || nr == SYS_prctl ||
           nr == SYS_arch_prctl || nr == SYS_mmap || nr == SYS_mprotect ||
           nr == SYS_madvise || nr == SYS_setrlimit || nr == SYS_prlimit64 ||
           nr == SYS_kill || nr == SYS_tkill || nr == SYS_tgkill;
}

static unsigned long arg(void)
{
    switch (next() % 14) {
    case 0: return 0;
    case 1: return next() % 8;                       /* small: fds, flags */
    case 2: return (unsigned long)-1;
    case 3: return next();
    case 4: return (unsigned long)(pool + next() % POOL_SIZE);
    case 5: return (unsigned long)pool;
    case 6: return (unsigned long)paths[next() % (sizeof paths / sizeof *paths)];
    case 7: return 0xffff800000000000UL + (next() % 4096);   /* kernel space */
    case 8: return 1UL << 32;                        /* low half 0 */
    case 9: return next() % 4096;
    case 10: return (unsigned long)-100;             /* AT_FDCWD */
    case 11: return 0x1000 * (next() % 64);
    case 12: return next() & 0xFFFFFFFF;
    default: return (unsigned long)(pool + POOL_SIZE - 1 - next() % 16);  /* at the edge */
    }
}

static void scribble(void)
{
    /* the pool holds random bytes, path-like strings and sockaddrs */
    for (int i = 0; i < 64; i++) {
        size_t at = next() % (POOL_SIZE - 128);
        switch (next() % 4) {
        case 0: pool[at] = (char)next(); break;
        case 1: strcpy(pool + at, paths[next() % (sizeof paths / sizeof *paths)]); break;
        case 2: *(unsigned short *)(pool + at) = (unsigned short)(next() % 45);
                strcpy(pool + at + 2, "/tmp/fz/sock"); break;
        default: memset(pool + at, 0, 16); break;
        }
    }
}

static long worker(uint64_t seed, int verbose)
{
    long calls = 0;
    rng = seed ? seed : 1;
    pool = mmap(NULL, POOL_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED)
        _exit(3);
    for (size_t i = 0; i < POOL_SIZE; i++)
        pool[i] = (char)next();
    alarm(1);
    for (int i = 0; i < BATCH; i++) {
        long nr = nfavourites && next() % 2 ? favourites[next() % nfavourites]
                                            : (long)(next() % (MAX_NR + 20));
        if (rare(nr) && next() % 50)
            continue;
        unsigned long a[6];
        for (int j = 0; j < 6; j++)
            a[j] = arg();
        if (next() % 8 == 0)
            scribble();
        if (verbose) {
            printf("%ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n", nr, a[0], a[1], a[2],
                   a[3], a[4], a[5]);
            fflush(stdout);
        }
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        calls++;
    }
    return calls;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fuzz SEED SECONDS [WORKER]\n");
        return 2;
    }
    if (getpid() != 1) {
        fprintf(stderr, "fuzz: refusing to run outside a pid namespace (pid %d)\n", getpid());
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 10);
    double seconds = atof(argv[2]);
    mkdir("/tmp/fz", 0777);
    const char *nrs = getenv("FUZZ_NRS");
    for (char *p = (char *)nrs; p && *p && nfavourites < 512;) {
        favourites[nfavourites++] = strtol(p, &p, 10);
        if (*p == ',')
            p++;
    }
    if (argc > 3) {
        long w = atol(argv[3]);
        pid_t p = fork();
        if (p == 0) {
            worker(seed * 1000003 + (uint64_t)w, 1);
            _exit(0);
        }
        int st;
        waitpid(p, &st, 0);
        printf("worker %ld ended with status %#x\n", w, st);
        return 0;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long workers = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
            break;
        pid_t p = fork();
        if (p == 0) {
            setpgid(0, 0);
            worker(seed * 1000003 + (uint64_t)workers, 0);
            _exit(0);
        }
        if (p < 0) {
            sleep(1);
            continue;
        }
        workers++;
        /* a worker may block, stop itself or ignore its alarm: after 2 s
         * it is killed, with whatever it left behind in its group */
        int st;
        for (int waited = 0; waited < 200; waited++) {
            pid_t r = waitpid(p, &st, WNOHANG);
            if (r == p && !WIFSTOPPED(st))
                break;
            usleep(10000);
        }
        kill(-p, SIGKILL);
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
        while (waitpid(-1, &st, WNOHANG) > 0)
            ;
    }
    printf("fuzz done seed=%llu workers=%ld calls~=%ld\n", (unsigned long long)seed, workers,
           workers * BATCH);
    return 0;
}
