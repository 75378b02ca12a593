/* A guest racing the host's resolution of the host paths the guest kernel
 * hands it (tests/escape/test_hostpath_escapes.py).
 *
 *   hp_race CALL ARENA VIEW ATTEMPTS LOCATION...
 *
 * CALL is one of mkdirat mknodat symlinkat linkat unlinkat renameat2
 * fchmodat fchownat utimensat utimes (utime and utimes) truncate chdir
 * bind (an AF_UNIX socket) open (O_WRONLY|O_CREAT|O_TRUNC).  ARENA is a host directory (its host path),
 * VIEW the same directory bound read-only into the guest, where the guest
 * watches what happens to the host's arena.  LOCATION is where the guest
 * makes its own writable tree: "shm" (/dev/shm, a tmpfs mount: the
 * guest's own process makes its renameat2 there) or "upper" (/tmp, the
 * copy-on-write upper layer: the tracer makes renames there).
 *
 * In BASE = LOCATION/hp-PID-LOCATION the guest makes a directory d (with
 * a file named like the arena's marker in it) and a symlink l -> ARENA; a
 * swapper thread keeps exchanging the two (renameat2 RENAME_EXCHANGE)
 * while the main thread makes CALL on a path through BASE/d.  If the
 * guest kernel checks the call while d is a directory and hands the host
 * an absolute host path through BASE/d, and the host resolves that path
 * after an exchange, it follows the symlink and the call lands in ARENA.
 *
 * The swapper runs at SCHED_IDLE, and the caller beside a spinner, all on
 * one CPU: the exchange comes late (once the guest kernel has let the
 * swapper's renameat2 go, it waits for the CPU), and so does the caller's
 * host call (it waits behind the spinner), so an exchange often falls
 * between the guest kernel's check and the host's use.
 *
 * chdir: the guest kernel keeps the working directory as a guest path, so
 * what the guest makes relative to it cannot show where the host put the
 * process.  After each chdir that succeeded the program writes "PROBE N
 * CWD" (CWD: what getcwd says) and reads one byte from stdin: the test
 * (on the host) answers 'y' if the process's host working directory is
 * ARENA while CWD is not.  Every CHECK_EVERY attempts it also makes a file
 * relative to its cwd (with open, which resolves without following
 * symlinks) and looks for it in ARENA.
 *
 * Every change to ARENA seen through VIEW is printed as "ESCAPE ..." and
 * ends the run, unless HP_KEEP_GOING is set (then the wins are counted:
 * changes seen, checked every CHECK_EVERY attempts).  The test checks the
 * host arena itself.  Prints "RESULT CALL LOCATION attempts=N ok=N
 * failed=N wins=N" per location, then "DONE". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif
#define CHECK_EVERY 8

static const char *call_name, *arena, *view;
static char base[256], dpath[300], lpath[300], own[300];
static atomic_int stop_threads;
static int cpu;
static long ok, failed, wins;
static int keep_going;
static struct stat marker0;
static long entries0;

static void pin(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *swapper(void *arg)
{
    (void)arg;
    pin();
    struct sched_param sp = {0};
    sched_setscheduler(0, SCHED_IDLE, &sp);
    while (!atomic_load(&stop_threads))
        syscall(SYS_renameat2, AT_FDCWD, dpath, AT_FDCWD, lpath, RENAME_EXCHANGE);
    return NULL;
}

static void *spinner(void *arg)
{
    (void)arg;
    pin();
    while (!atomic_load(&stop_threads))
        ;
    return NULL;
}

static void die(const char *what)
{
    printf("SETUP-FAILED %s: %s\n", what, strerror(errno));
    exit(3);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        die(path);
    if (write(fd, text, strlen(text)) < 0)
        die(path);
    close(fd);
}

static long count_entries(void)
{
    DIR *d = opendir(view);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n++;
    closedir(d);
    return n;
}

/* has ARENA changed, as the host sees it?  (the marker's metadata, the
 * number of entries) */
static int arena_changed(char *why, size_t n)
{
    char p[512];
    struct stat st;
    long entries = count_entries();
    if (entries != entries0) {
        snprintf(why, n, "the host arena has %ld entries, not %ld", entries, entries0);
        entries0 = entries;
        return 1;
    }
    snprintf(p, sizeof p, "%s/marker", view);
    if (lstat(p, &st) < 0) {
        if (!marker0.st_ino)
            return 0;           /* gone, and said so */
        snprintf(why, n, "the host marker is gone (%s)", strerror(errno));
        marker0.st_ino = 0;
        return 1;
    }
    if (st.st_ino != marker0.st_ino || st.st_mode != marker0.st_mode
        || st.st_size != marker0.st_size || st.st_nlink != marker0.st_nlink
        || st.st_uid != marker0.st_uid || st.st_gid != marker0.st_gid
        || st.st_mtim.tv_sec != marker0.st_mtim.tv_sec
        || st.st_mtim.tv_nsec != marker0.st_mtim.tv_nsec
        || st.st_ctim.tv_sec != marker0.st_ctim.tv_sec
        || st.st_ctim.tv_nsec != marker0.st_ctim.tv_nsec) {
        snprintf(why, n, "the host marker changed: mode %o->%o size %ld->%ld nlink %ld->%ld "
                 "mtime %ld->%ld ctime %ld.%09ld->%ld.%09ld",
                 marker0.st_mode, st.st_mode, (long)marker0.st_size, (long)st.st_size,
                 (long)marker0.st_nlink, (long)st.st_nlink, (long)marker0.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_sec, (long)marker0.st_ctim.tv_sec,
                 (long)marker0.st_ctim.tv_nsec, (long)st.st_ctim.tv_sec,
                 (long)st.st_ctim.tv_nsec);
        marker0 = st;           /* the next change is another win */
        return 1;
    }
    return 0;
}

static void recreate_marker(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/marker", dpath);
    int fd = open(p, O_WRONLY | O_CREAT, 0666);
    if (fd >= 0)
        close(fd);
}

static void result(long r)
{
    if (r == 0)
        ok++;
    else
        failed++;
}

static void won(const char *loc, long i, const char *what)
{
    wins++;
    printf("ESCAPE %s (%s) won by attempt %ld: %s\n", call_name, loc, i, what);
}

/* ask the test whether the process's host cwd is ARENA, while the guest
 * kernel has it elsewhere (a chdir that followed l in guest terms is in
 * ARENA as the guest sees it, the host's tree: not an escape) */
static int probe_cwd(long i)
{
    char c = 0, cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "(getcwd: %s)", strerror(errno));
    printf("PROBE %ld %s\n", i, cwd);
    fflush(stdout);
    if (read(0, &c, 1) != 1) {
        printf("SETUP-FAILED no answer to PROBE\n");
        exit(3);
    }
    return c == 'y';
}

static void attempt(const char *loc, long i)
{
    char p[400], q[400], name[64];
    const char *c = call_name;

    if (!strcmp(c, "mkdirat")) {
        snprintf(p, sizeof p, "%s/m%s%ld", dpath, loc, i);
        result(mkdirat(AT_FDCWD, p, 0777));
    } else if (!strcmp(c, "mknodat")) {
        snprintf(p, sizeof p, "%s/n%s%ld", dpath, loc, i);
        result(mknodat(AT_FDCWD, p, S_IFIFO | 0666, 0));
    } else if (!strcmp(c, "symlinkat")) {
        snprintf(p, sizeof p, "%s/s%s%ld", dpath, loc, i);
        result(symlinkat("guest-link", AT_FDCWD, p));
    } else if (!strcmp(c, "linkat")) {
        if (i & 1) {
            /* the new name through d: a link to the guest's file in ARENA */
            snprintf(p, sizeof p, "%s/k%s%ld", dpath, loc, i);
            result(linkat(AT_FDCWD, own, AT_FDCWD, p, 0));
        } else {
            /* the old name through d: a hard link to the host's marker in
             * the guest's own tree (the marker's nlink shows it), through
             * which the guest could write the host's file */
            snprintf(p, sizeof p, "%s/marker", dpath);
            snprintf(q, sizeof q, "%s/k%ld", base, i);
            result(linkat(AT_FDCWD, p, AT_FDCWD, q, 0));
        }
    } else if (!strcmp(c, "unlinkat")) {
        recreate_marker();
        snprintf(p, sizeof p, "%s/marker", dpath);
        result(unlinkat(AT_FDCWD, p, 0));
    } else if (!strcmp(c, "renameat2")) {
        snprintf(p, sizeof p, "%s/marker", dpath);
        snprintf(q, sizeof q, "%s/r%ld", base, i);
        if (i & 1) {
            /* the new name through d: the guest's file replaces ARENA's
             * marker */
            int fd = open(q, O_WRONLY | O_CREAT, 0666);
            if (fd >= 0)
                close(fd);
            result(syscall(SYS_renameat2, AT_FDCWD, q, AT_FDCWD, p, 0));
        } else {
            /* the old name through d: ARENA's marker moves into the
             * guest's tree */
            recreate_marker();
            result(syscall(SYS_renameat2, AT_FDCWD, p, AT_FDCWD, q, 0));
        }
    } else if (!strcmp(c, "fchmodat")) {
        snprintf(p, sizeof p, "%s/marker", dpath);
        result(fchmodat(AT_FDCWD, p, (i & 1) ? 0640 : 0604, 0));
    } else if (!strcmp(c, "fchownat")) {
        snprintf(p, sizeof p, "%s/marker", dpath);
        result(fchownat(AT_FDCWD, p, geteuid(), getegid(), 0));
    } else if (!strcmp(c, "utimensat")) {
        struct timespec ts[2] = {{1000 + i, 0}, {1000 + i, 0}};
        snprintf(p, sizeof p, "%s/marker", dpath);
        result(utimensat(AT_FDCWD, p, ts, 0));
    } else if (!strcmp(c, "utimes")) {
        snprintf(p, sizeof p, "%s/marker", dpath);
        if (i & 1) {
            struct timeval tv[2] = {{1000 + i, 0}, {1000 + i, 0}};
            result(utimes(p, tv));
        } else {
            struct utimbuf ub = {1000 + i, 1000 + i};
            result(syscall(SYS_utime, p, &ub));
        }
    } else if (!strcmp(c, "truncate")) {
        snprintf(p, sizeof p, "%s/marker", dpath);
        result(truncate(p, 0));
    } else if (!strcmp(c, "open")) {
        /* the marker through d, opened for writing and cut (the guest
         * kernel makes the open); or a new file created through d */
        if (i & 1)
            snprintf(p, sizeof p, "%s/marker", dpath);
        else
            snprintf(p, sizeof p, "%s/o%s%ld", dpath, loc, i);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            (void)!write(fd, "GUEST", 5);
            close(fd);
        }
        result(fd < 0 ? -1 : 0);
    } else if (!strcmp(c, "bind")) {
        /* an AF_UNIX socket bound on a path through d */
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int n = snprintf(p, sizeof p, "%s/u%ld", dpath, i);
        if (n >= (int)sizeof a.sun_path)
            die("socket path too long");
        memcpy(a.sun_path, p, n + 1);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        result(bind(s, (struct sockaddr *)&a, sizeof a));
        close(s);
    } else if (!strcmp(c, "connect")) {
        /* a connect to BASE/d/sock, the guest's own listener: swapped, the
         * path names the arena's socket, a host service's (the test counts
         * what reaches it) */
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int n = snprintf(p, sizeof p, "%s/sock", dpath);
        if (n >= (int)sizeof a.sun_path)
            die("socket path too long");
        memcpy(a.sun_path, p, n + 1);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int r = connect(s, (struct sockaddr *)&a, sizeof a);
        result(r < 0 && errno == EAGAIN ? 0 : r);    /* its backlog is full */
        close(s);
    } else if (!strcmp(c, "chdir")) {
        int r = chdir(dpath);
        result(r);
        if (r == 0) {
            if (probe_cwd(i))
                won(loc, i, "the process's host working directory is the host arena");
            /* what is made relative to the cwd must land in the guest's d
             * (an open, which the host resolves without following
             * symlinks: a swap of d meanwhile makes it fail, not escape) */
            if (i % CHECK_EVERY == 0) {
                snprintf(name, sizeof name, "f%s%ld", loc, i);
                int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
                if (fd >= 0)
                    close(fd);
            }
        }
    } else {
        printf("unknown call %s\n", c);
        exit(2);
    }
}

static void run(const char *loc, long attempts)
{
    const char *dir = !strcmp(loc, "shm") ? "/dev/shm" : "/tmp";
    snprintf(base, sizeof base, "%s/hp-%d-%s", dir, (int)getpid(), loc);
    snprintf(dpath, sizeof dpath, "%s/d", base);
    snprintf(lpath, sizeof lpath, "%s/l", base);
    snprintf(own, sizeof own, "%s/own", base);
    char p[400], why[512];
    if (mkdir(base, 0777) < 0 || mkdir(dpath, 0777) < 0)
        die(base);
    snprintf(p, sizeof p, "%s/marker", dpath);
    write_file(p, "the guest's own marker\n");
    write_file(own, "the guest's own file\n");
    if (!strcmp(call_name, "connect")) {
        /* the guest's own listener, never accepting */
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", dpath);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0)
            die("the guest's own listener");
    }
    if (symlink(arena, lpath) < 0)
        die(lpath);

    ok = failed = wins = 0;
    atomic_store(&stop_threads, 0);
    pthread_t sw, sp;
    pthread_create(&sp, NULL, spinner, NULL);
    pthread_create(&sw, NULL, swapper, NULL);
    long i;
    for (i = 0; i < attempts; i++) {
        attempt(loc, i);
        if ((i % CHECK_EVERY == CHECK_EVERY - 1 || i == attempts - 1)
            && arena_changed(why, sizeof why))
            won(loc, i, why);
        if (wins && !keep_going) {
            i++;
            break;
        }
    }
    atomic_store(&stop_threads, 1);
    pthread_join(sw, NULL);
    pthread_join(sp, NULL);
    if (arena_changed(why, sizeof why))
        won(loc, i, why);
    printf("RESULT %s %s attempts=%ld ok=%ld failed=%ld wins=%ld\n", call_name, loc, i, ok,
           failed, wins);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: hp_race CALL ARENA VIEW ATTEMPTS LOCATION...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    call_name = argv[1];
    arena = argv[2];
    view = argv[3];
    long attempts = atol(argv[4]);
    keep_going = getenv("HP_KEEP_GOING") != NULL;
    cpu = getenv("HP_CPU") ? atoi(getenv("HP_CPU")) : sched_getcpu();
    pin();
    char p[512];
    snprintf(p, sizeof p, "%s/marker", view);
    if (lstat(p, &marker0) < 0)
        die(p);
    entries0 = count_entries();
    long total = 0;
    for (int a = 5; a < argc; a++) {
        run(argv[a], attempts);
        total += wins;
        if (total && !keep_going)
            break;
    }
    printf("DONE\n");
    return total ? 1 : 0;
}
