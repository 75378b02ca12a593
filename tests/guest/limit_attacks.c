/* Attacks on the sandbox's resource limits, one per mode (issue 12):
 *
 *   pids-race N     N threads wait at a barrier, then each forks once at
 *                   the same moment; prints how many tasks existed at once
 *   memfd MB        fills a memfd with write() (no mapping), then waits
 *   shm MB          SysV segments of 16 MB, each touched, detached and kept
 *   cpu-children N MS   N children in turn, each burning MS ms of CPU
 *   mmap-write MB PATH  grows PATH with ftruncate and writes it through a
 *                   MAP_SHARED mapping (no write(2) at all)
 *   aio MB PATH     writes PATH through Linux AIO (io_submit)
 *
 * Each prints what it managed ("done ..."), so a test can compare it with
 * the limit; a process the sandbox kills prints nothing more. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MB (1024L * 1024L)

static pthread_barrier_t barrier, after;
static int forked_ok;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *forker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&barrier);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(300000);
        _exit(0);
    }
    if (pid > 0) {
        pthread_mutex_lock(&lock);
        forked_ok++;
        pthread_mutex_unlock(&lock);
    }
    /* every thread lives until all have forked: the children and their
     * makers exist at once */
    pthread_barrier_wait(&after);
    return NULL;
}

static int pids_race(int n)
{
    pthread_t t[256];
    int started = 0;
    /* a big address space: each fork spends milliseconds copying its page
     * tables, between the call's entry and the child's creation */
    size_t big = 256 * MB;
    char *mem = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem != MAP_FAILED)
        for (size_t off = 0; off < big; off += 4096)
            mem[off] = 1;
    pthread_barrier_init(&barrier, NULL, n);
    pthread_barrier_init(&after, NULL, n);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, forker, NULL) != 0)
            break;
        started++;
    }
    if (started != n) {
        printf("threads %d of %d\n", started, n);
        return 1;
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    /* main, its n threads (still counted until joined: they all ran at
     * once) and the children that were forked */
    printf("done tasks %d forked %d\n", 1 + n + forked_ok, forked_ok);
    while (wait(NULL) > 0)
        ;
    return 0;
}

static int fill_memfd(long mb)
{
    int fd = memfd_create("hog", 0);
    if (fd < 0) {
        perror("memfd_create");
        return 1;
    }
    static char buf[1 << 20];
    memset(buf, 'x', sizeof buf);
    long written = 0;
    for (long i = 0; i < mb; i++) {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
            printf("done memfd write failed after %ld MB: %s\n", written, strerror(errno));
            return 0;
        }
        written++;
    }
    sleep(2);
    printf("done memfd %ld MB kept\n", written);
    return 0;
}

static int fill_shm(long mb)
{
    /* 16 MB segments, each attached only while it is touched: no process
     * ever maps more than 16 MB of them */
    long kept = 0;
    for (long done = 0; done < mb; done += 16) {
        int id = shmget(IPC_PRIVATE, 16 * MB, IPC_CREAT | 0600);
        if (id < 0) {
            printf("done shmget failed after %ld MB: %s\n", kept, strerror(errno));
            return 0;
        }
        char *p = shmat(id, NULL, 0);
        if (p == (void *)-1) {
            printf("done shmat failed after %ld MB: %s\n", kept, strerror(errno));
            return 0;
        }
        for (long off = 0; off < 16 * MB; off += 4096)
            p[off] = 'x';
        shmdt(p);
        kept += 16;
    }
    sleep(2);
    printf("done shm %ld MB kept\n", kept);
    return 0;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cpu_children(int n, int ms)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            double until = cpu_now() + ms / 1000.0;
            volatile unsigned long x = 0;
            while (cpu_now() < until)
                x++;
            _exit(0);
        }
        if (pid < 0)
            break;
        int status;
        waitpid(pid, &status, 0);
        done++;
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("done children %d cpu %.2f\n", done,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    return 0;
}

static int mmap_write(long mb, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    long done = 0;
    for (long i = 0; i < mb; i++) {
        if (ftruncate(fd, (i + 1) * MB) != 0) {
            printf("done mmap ftruncate failed after %ld MB: %s\n", done, strerror(errno));
            return 0;
        }
        char *p = mmap(NULL, MB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, i * MB);
        if (p == MAP_FAILED) {
            printf("done mmap failed after %ld MB: %s\n", done, strerror(errno));
            return 0;
        }
        memset(p, 'y', MB);
        if (msync(p, MB, MS_SYNC) != 0) {
            printf("done msync failed after %ld MB: %s\n", done, strerror(errno));
            return 0;
        }
        munmap(p, MB);
        done++;
    }
    close(fd);
    printf("done mmap %ld MB\n", done);
    return 0;
}

static int aio_write(long mb, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 8, &ctx) != 0) {
        printf("done io_setup failed: %s\n", strerror(errno));
        return 0;
    }
    static char buf[1 << 20];
    memset(buf, 'z', sizeof buf);
    long done = 0;
    for (long i = 0; i < mb; i++) {
        struct iocb cb;
        memset(&cb, 0, sizeof cb);
        cb.aio_fildes = fd;
        cb.aio_lio_opcode = IOCB_CMD_PWRITE;
        cb.aio_buf = (unsigned long)buf;
        cb.aio_nbytes = sizeof buf;
        cb.aio_offset = i * MB;
        struct iocb *cbs[1] = {&cb};
        if (syscall(SYS_io_submit, ctx, 1, cbs) != 1) {
            printf("done io_submit failed after %ld MB: %s\n", done, strerror(errno));
            return 0;
        }
        struct io_event ev;
        if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1 || (long)ev.res < 0) {
            printf("done aio failed after %ld MB: %s\n", done,
                   strerror(ev.res < 0 ? -(long)ev.res : errno));
            return 0;
        }
        done++;
    }
    printf("done aio %ld MB\n", done);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "pids-race"))
        return pids_race(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "memfd"))
        return fill_memfd(atol(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "shm"))
        return fill_shm(atol(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "cpu-children"))
        return cpu_children(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 4 && !strcmp(argv[1], "mmap-write"))
        return mmap_write(atol(argv[2]), argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "aio"))
        return aio_write(atol(argv[2]), argv[3]);
    fprintf(stderr, "usage: limit_attacks MODE ARGS\n");
    return 2;
}
