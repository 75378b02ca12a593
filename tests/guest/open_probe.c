/* Opens as a guest makes them, for tests/test_notify.py: run natively
 * and inside umlpy, the output must be the same.
 *
 *   open_probe excl DIR N US  N creates with O_CREAT|O_EXCL while an
 *                             interval timer (every US microseconds) keeps
 *                             interrupting them (SA_RESTART)
 *   open_probe fifo DIR       FIFO rendezvous, reader first then writer first
 *   open_probe cloexec        FD_CLOEXEC as asked
 *   open_probe emfile         RLIMIT_NOFILE honoured (EMFILE at the limit)
 *   open_probe umask DIR      the umask applies to created files
 *   open_probe threads N      2 threads opening and reading one file N times
 *   open_probe listener       a second seccomp listener (EBUSY inside)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long ticks;

static void tick(int sig) { (void)sig; ticks++; }

static int excl(const char *dir, int n, int usec)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tick;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, usec}, {0, usec}};
    setitimer(ITIMER_REAL, &it, NULL);
    int created = 0, exists = 0, other = 0;
    char p[4096];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/f%d", dir, i);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            created++;
            close(fd);
        } else if (errno == EEXIST) {
            exists++;
        } else {
            other++;
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("created=%d eexist=%d other=%d\n", created, exists, other);
    return 0;
}

static void fifo_round(const char *path, int reader_first)
{
    pid_t child = fork();
    if (child == 0) {
        if (!reader_first)
            usleep(100000);
        int fd = open(path, O_WRONLY);
        if (fd < 0 || write(fd, "through the fifo\n", 17) != 17)
            _exit(1);
        _exit(0);
    }
    if (reader_first)
        usleep(100000);
    int fd = open(path, O_RDONLY);
    char buf[64] = {0};
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    int st;
    waitpid(child, &st, 0);
    printf("%s first: read %zd: %s", reader_first ? "writer" : "reader", n, n > 0 ? buf : "\n");
    printf("writer status %d\n", WEXITSTATUS(st));
    if (fd >= 0)
        close(fd);
}

static int fifo(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/fifo", dir);
    unlink(p);
    if (mkfifo(p, 0600) < 0) {
        perror("mkfifo");
        return 1;
    }
    fifo_round(p, 1);
    fifo_round(p, 0);
    /* O_NONBLOCK: a reader opens at once, a writer without reader: ENXIO */
    int r = open(p, O_RDONLY | O_NONBLOCK);
    printf("nonblocking reader: %s\n", r >= 0 ? "opened" : strerror(errno));
    close(r);
    int w = open(p, O_WRONLY | O_NONBLOCK);
    printf("nonblocking writer: %s\n", w >= 0 ? "opened" : strerror(errno));
    return 0;
}

/* A FIFO's reader closed, then a lone O_NONBLOCK writer: ENXIO every
 * time, so no copy of the reader's file outlives the guest's close. */
static int fifo_race(const char *dir, int rounds)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/fifo-race", dir);
    unlink(p);
    if (mkfifo(p, 0600) < 0) {
        perror("mkfifo");
        return 1;
    }
    int opened = 0;
    for (int i = 0; i < rounds; i++) {
        close(open(p, O_RDONLY | O_NONBLOCK));
        int w = open(p, O_WRONLY | O_NONBLOCK);
        if (w >= 0) {
            opened++;
            close(w);
        } else if (errno != ENXIO) {
            perror("open");
            return 1;
        }
    }
    printf("lone writers that opened: %d\n", opened);
    return 0;
}

/* The flags an open keeps (O_SYNC on a read, made twice: the second from
 * the path cache), and the ones openat2 refuses (bits no flag has). */
static int open_flags(void)
{
    for (int round = 0; round < 2; round++) {
        int fd = open("/etc/hostname", O_RDONLY | O_SYNC);
        printf("O_SYNC read: %o\n", fd < 0 ? -1 : fcntl(fd, F_GETFL) & (O_SYNC | O_DSYNC));
        close(fd);
    }
    unsigned long long bits[] = {04, 010, 020, 040, 04000000, 04010000, 0100000, 040000000,
                                 O_RDONLY | O_DIRECTORY};
    for (int i = 0; i < 9; i++) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = bits[i];
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, i == 8 ? "/usr" : "/etc/hostname", &how,
                              sizeof how);
        printf("openat2 %llo: %s\n", bits[i], fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    /* RESOLVE_NO_XDEV: no mountpoint crossed; RESOLVE_NO_MAGICLINKS: no
     * /proc/PID/fd/N, cwd, exe or root followed */
    struct { const char *path; unsigned long long resolve; } walks[] = {
        {"/proc/self/status", RESOLVE_NO_XDEV}, {"/proc", RESOLVE_NO_XDEV},
        {"/etc/hostname", RESOLVE_NO_XDEV}, {"/proc/self/fd/0", RESOLVE_NO_MAGICLINKS},
        {"/proc/self/cwd", RESOLVE_NO_MAGICLINKS}, {"/proc/self/status", RESOLVE_NO_MAGICLINKS},
        {"/dev/null", RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS},
    };
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_RDONLY;
        how.resolve = walks[i].resolve;
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, walks[i].path, &how, sizeof how);
        printf("openat2 %s resolve %llx: %s\n", walks[i].path, walks[i].resolve,
               fd >= 0 ? "ok" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return 0;
}

static int cloexec(void)
{
    int a = open("/etc/hostname", O_RDONLY);
    int b = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    int c = openat(AT_FDCWD, "/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    printf("plain %d cloexec %d dir %d\n", fcntl(a, F_GETFD), fcntl(b, F_GETFD),
           fcntl(c, F_GETFD));
    printf("status flags: %o\n", fcntl(b, F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_APPEND));
    int d = open("/dev/null", O_WRONLY | O_APPEND | O_NONBLOCK);
    printf("status flags: %o\n", fcntl(d, F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_APPEND));
    return 0;
}

static int emfile(void)
{
    struct rlimit rl = {12, 12};
    setrlimit(RLIMIT_NOFILE, &rl);
    int n = 0, last = 0;
    for (int i = 0; i < 40; i++) {
        int fd = open("/etc/hostname", O_RDONLY);
        if (fd < 0) {
            printf("failed after %d more: %s\n", n, strerror(errno));
            break;
        }
        last = fd;
        n++;
    }
    printf("highest fd %d\n", last);
    return 0;
}

static int umask_probe(const char *dir)
{
    char p[4096];
    umask(027);
    snprintf(p, sizeof p, "%s/masked", dir);
    unlink(p);
    int fd = open(p, O_WRONLY | O_CREAT, 0666);
    struct stat st;
    fstat(fd, &st);
    printf("mode %o size %lld\n", st.st_mode & 07777, (long long)st.st_size);
    if (write(fd, "abc", 3) != 3)
        return 1;
    close(fd);
    fd = open(p, O_WRONLY | O_TRUNC);
    fstat(fd, &st);
    printf("after O_TRUNC: size %lld\n", (long long)st.st_size);
    return 0;
}

static int rounds;
static char expected[256];

static void *opener(void *arg)
{
    long bad = 0;
    for (int i = 0; i < rounds; i++) {
        char buf[256] = {0};
        int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0 || strcmp(buf, expected))
            bad++;
        close(fd);
    }
    return (void *)bad;
}

static int threads(int n)
{
    rounds = n;
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd < 0 || read(fd, expected, sizeof expected - 1) < 0)
        return 1;
    close(fd);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, opener, NULL);
    long bad = 0;
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    printf("threads: %d opens, %ld wrong\n", 2 * n, bad);
    return 0;
}

static int listener(void)
{
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                     &prog);
    printf("listener: %s\n", r >= 0 ? "got one" : strerror(errno));
    /* a filter of the guest's own that allows everything changes nothing */
    r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    printf("allow-all filter: %s\n", r >= 0 ? "installed" : strerror(errno));
    int fd = open("/etc/hostname", O_RDONLY);
    printf("open after it: %s\n", fd >= 0 ? "opened" : strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 5 && !strcmp(argv[1], "excl"))
        return excl(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "fifo"))
        return fifo(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "fifo-race"))
        return fifo_race(argv[2], atoi(argv[3]));
    if (argc >= 2 && !strcmp(argv[1], "flags"))
        return open_flags();
    if (argc >= 2 && !strcmp(argv[1], "cloexec"))
        return cloexec();
    if (argc >= 2 && !strcmp(argv[1], "emfile"))
        return emfile();
    if (argc >= 3 && !strcmp(argv[1], "umask"))
        return umask_probe(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "threads"))
        return threads(atoi(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "listener"))
        return listener();
    fprintf(stderr, "usage: open_probe excl|fifo|cloexec|emfile|umask|threads|listener ...\n");
    return 2;
}
