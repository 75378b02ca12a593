/* fd-table driver for tests/test_fdtable.py.
 *
 * usage: fdops            (ops on stdin, one per line)
 *        fdops --cont OP...  (after the exec op: the remaining ops in argv)
 *
 * After every op it prints
 *
 *   > OP                      the op as read
 *   = RESULT                  a number, "A B" (pipe, socketpair), "N DATA"
 *                             (read), or -ENAME
 *    FD CLOEXEC FLAGS OFF STAT LINK   one line per open fd (the dump)
 *
 * The fds are those /proc/self/fd lists (in a thread: /proc/thread-self/fd),
 * checked against F_GETFD of every fd up to the highest listed one + 8
 * ("! ..." lines on a mismatch).  FLAGS is F_GETFL & (O_ACCMODE|O_APPEND|
 * O_NONBLOCK|O_PATH) spelt RDONLY|APPEND..., OFF is lseek(fd, 0, SEEK_CUR)
 * or -ENAME, STAT is fstat's type (f d c p s, - for an anonymous inode)
 * with the size of a regular file (f5), LINK is readlink(/proc/self/fd/FD)
 * (in a thread: /proc/thread-self/fd/FD) or -ENAME.
 *
 * Ops (FD, A, B, MIN are numbers; FLAGS are names joined by '|', or 0):
 *   open PATH FLAGS       RDONLY WRONLY RDWR CREAT EXCL TRUNC APPEND NONBLOCK
 *                         CLOEXEC DIRECTORY PATH (mode 0644)
 *   openat DIRFD NAME FLAGS | fchdir FD   (PATH may be relative)
 *   reopen FD FLAGS       open("/proc/self/fd/FD", FLAGS) (thread-self in a thread)
 *   unlink PATH
 *   dup FD | dup2 A B | dup3 A B FLAGS | dupfd FD MIN | dupfd_cloexec FD MIN
 *   setfd FD V | setfl FD FLAGS | close FD | close_range A B FLAGS
 *                         (FLAGS: CLOEXEC UNSHARE; B may be "max")
 *   write FD TEXT | read FD N | lseek FD OFF
 *   pipe FLAGS | socketpair FLAGS | eventfd FLAGS | timerfd FLAGS
 *   signalfd FLAGS | epoll FLAGS | memfd NAME FLAGS   (FLAGS: CLOEXEC NONBLOCK)
 *   fork          the next op runs in a forked child (which dumps its own
 *                 table and exits); then "= STATUS" and the parent's dump
 *   thread        the next op runs in a thread (shared table); "= 0", dump
 *   clone_files   the next op runs in a clone(CLONE_FILES) child process
 *   exec          re-exec ourselves with the remaining ops: the new image
 *                 prints "= 0" and its dump (close-on-exec fds are gone)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAXFD 1024
#define MAXOPS 4096

static char outbuf[1 << 16];
static size_t outlen;

static void flush(void)
{
    size_t off = 0;
    while (off < outlen) {
        ssize_t n = write(1, outbuf + off, outlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(3);
        }
        off += n;
    }
    outlen = 0;
}

static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(outbuf + outlen, sizeof outbuf - outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof outbuf - outlen) {
        flush();
        va_start(ap, fmt);
        n = vsnprintf(outbuf, sizeof outbuf, fmt, ap);
        va_end(ap);
    }
    outlen += n;
    if (outlen > sizeof outbuf / 2)
        flush();
}

static void out_raw(const char *data, size_t n)
{
    if (n > sizeof outbuf - outlen)
        flush();
    memcpy(outbuf + outlen, data, n);
    outlen += n;
}

static const char *ename(int e)
{
    const char *s = strerrorname_np(e);
    return s ? s : "E?";
}

static __thread int in_thread;

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The open fds as /proc/self/fd (in a thread: /proc/thread-self/fd) lists
 * them, sorted; the listing's own fd left out.  -1 if it cannot be read. */
static int list_fds(int *fds, int max)
{
    int d = open(in_thread ? "/proc/thread-self/fd" : "/proc/self/fd",
                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) {
        out("! open fd directory: -%s\n", ename(errno));
        return -1;
    }
    char buf[8192];
    long n;
    int count = 0;
    while ((n = syscall(SYS_getdents64, d, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_name[0] == '.')
                continue;
            int fd = atoi(e->d_name);
            if (fd != d && count < max)
                fds[count++] = fd;
        }
    }
    if (n < 0)
        out("! getdents64: -%s\n", ename(errno));
    close(d);
    qsort(fds, count, sizeof *fds, cmp_int);
    return count;
}

static void dump(void)
{
    static int fds[MAXFD];
    int nfds = list_fds(fds, MAXFD);
    if (nfds < 0)
        return;
    /* the listing must be the table: every fd below the highest listed
     * one (and a few above) is open exactly when it is listed */
    int top = nfds ? fds[nfds - 1] + 8 : 8;
    for (int fd = 0, i = 0; fd <= top; fd++) {
        int listed = i < nfds && fds[i] == fd;
        if (listed)
            i++;
        if ((fcntl(fd, F_GETFD) >= 0) != listed)
            out("! fd %d is %s but %s\n", fd, listed ? "listed" : "not listed",
                listed ? "closed" : "open");
    }
    for (int i = 0; i < nfds; i++) {
        int fd = fds[i];
        int fdfl = fcntl(fd, F_GETFD);
        if (fdfl < 0) {
            out(" %d -%s\n", fd, ename(errno));
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        char fls[64];
        if (fl < 0) {
            snprintf(fls, sizeof fls, "-%s", ename(errno));
        } else {
            int acc = fl & O_ACCMODE;
            snprintf(fls, sizeof fls, "%s%s%s%s",
                     acc == O_RDONLY ? "RDONLY" : acc == O_WRONLY ? "WRONLY"
                                                 : acc == O_RDWR ? "RDWR" : "ACC3",
                     fl & O_APPEND ? "|APPEND" : "", fl & O_NONBLOCK ? "|NONBLOCK" : "",
                     fl & O_PATH ? "|PATH" : "");
        }
        char offs[32];
        off_t off = lseek(fd, 0, SEEK_CUR);
        if (off < 0)
            snprintf(offs, sizeof offs, "-%s", ename(errno));
        else
            snprintf(offs, sizeof offs, "%lld", (long long)off);
        char st[32];
        struct stat sb;
        if (fstat(fd, &sb) < 0) {
            snprintf(st, sizeof st, "-%s", ename(errno));
        } else {
            switch (sb.st_mode & S_IFMT) {
            case S_IFREG: snprintf(st, sizeof st, "f%lld", (long long)sb.st_size); break;
            case S_IFDIR: snprintf(st, sizeof st, "d"); break;
            case S_IFCHR: snprintf(st, sizeof st, "c"); break;
            case S_IFIFO: snprintf(st, sizeof st, "p"); break;
            case S_IFSOCK: snprintf(st, sizeof st, "s"); break;
            case 0: snprintf(st, sizeof st, "-"); break;
            default: snprintf(st, sizeof st, "?%o", sb.st_mode & S_IFMT);
            }
        }
        char path[64], link[4096];
        snprintf(path, sizeof path, in_thread ? "/proc/thread-self/fd/%d" : "/proc/self/fd/%d",
                 fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0)
            snprintf(link, sizeof link, "-%s", ename(errno));
        else
            link[n] = 0;
        out(" %d %d %s %s %s %s\n", fd, fdfl & FD_CLOEXEC ? 1 : 0, fls, offs, st, link);
    }
}

struct flagname {
    const char *name;
    int value;
};

static const struct flagname open_flags[] = {
    {"RDONLY", O_RDONLY}, {"WRONLY", O_WRONLY}, {"RDWR", O_RDWR}, {"CREAT", O_CREAT},
    {"EXCL", O_EXCL}, {"TRUNC", O_TRUNC}, {"APPEND", O_APPEND}, {"NONBLOCK", O_NONBLOCK},
    {"CLOEXEC", O_CLOEXEC}, {"DIRECTORY", O_DIRECTORY}, {"PATH", O_PATH},
    {"UNSHARE", CLOSE_RANGE_UNSHARE}, {NULL, 0}};

/* "A|B|C", "0" or a number */
static long parse_flags(const char *s, const struct flagname *names, const char *cloexec_means,
                        int cloexec_value, int nonblock_value)
{
    long v = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|")) {
        if ((tok[0] >= '0' && tok[0] <= '9') || tok[0] == '-') {
            v |= strtol(tok, NULL, 0);
            continue;
        }
        if (cloexec_means && !strcmp(tok, "CLOEXEC")) {
            v |= cloexec_value;
            continue;
        }
        if (cloexec_means && !strcmp(tok, "NONBLOCK")) {
            v |= nonblock_value;
            continue;
        }
        const struct flagname *f;
        for (f = names; f->name; f++)
            if (!strcmp(tok, f->name))
                break;
        if (!f->name) {
            fprintf(stderr, "fdops: unknown flag %s\n", tok);
            exit(2);
        }
        v |= f->value;
    }
    return v;
}

static long oflags(const char *s)
{
    return parse_flags(s, open_flags, NULL, 0, 0);
}

/* creation calls: CLOEXEC and NONBLOCK mean the call's own flags */
static long cflags(const char *s, int cloexec, int nonblock)
{
    return parse_flags(s, open_flags, "", cloexec, nonblock);
}

static long num(const char *s)
{
    if (!strcmp(s, "max"))
        return 0xFFFFFFFFL;
    return strtol(s, NULL, 0);
}

#define NTOK 8
static char *tok[NTOK];

static int split(char *line)
{
    int n = 0;
    for (char *t = strtok(line, " "); t && n < NTOK; t = strtok(NULL, " "))
        tok[n++] = t;
    for (int i = n; i < NTOK; i++)
        tok[i] = "";
    return n;
}

static void result(long r)
{
    if (r < 0)
        out("= -%s\n", ename(errno));
    else
        out("= %ld\n", r);
}

static void pair_result(int r, int *fds)
{
    if (r < 0)
        out("= -%s\n", ename(errno));
    else
        out("= %d %d\n", fds[0], fds[1]);
}

/* one simple op (no fork/thread/exec) and the dump */
static void do_op(const char *text)
{
    char line[1024];
    snprintf(line, sizeof line, "%s", text);
    out("> %s\n", text);
    split(line);
    const char *op = tok[0];
    int fds[2];
    if (!strcmp(op, "open")) {
        result(open(tok[1], oflags(tok[2]), 0644));
    } else if (!strcmp(op, "openat")) {
        result(openat(num(tok[1]), tok[2], oflags(tok[3]), 0644));
    } else if (!strcmp(op, "reopen")) {
        char path[64];
        snprintf(path, sizeof path, in_thread ? "/proc/thread-self/fd/%ld" : "/proc/self/fd/%ld",
                 num(tok[1]));
        result(open(path, oflags(tok[2])));
    } else if (!strcmp(op, "fchdir")) {
        result(fchdir(num(tok[1])));
    } else if (!strcmp(op, "unlink")) {
        result(unlink(tok[1]));
    } else if (!strcmp(op, "dup")) {
        result(dup(num(tok[1])));
    } else if (!strcmp(op, "dup2")) {
        result(dup2(num(tok[1]), num(tok[2])));
    } else if (!strcmp(op, "dup3")) {
        result(dup3(num(tok[1]), num(tok[2]), oflags(tok[3])));
    } else if (!strcmp(op, "dupfd")) {
        result(fcntl(num(tok[1]), F_DUPFD, num(tok[2])));
    } else if (!strcmp(op, "dupfd_cloexec")) {
        result(fcntl(num(tok[1]), F_DUPFD_CLOEXEC, num(tok[2])));
    } else if (!strcmp(op, "setfd")) {
        result(fcntl(num(tok[1]), F_SETFD, num(tok[2])));
    } else if (!strcmp(op, "setfl")) {
        result(fcntl(num(tok[1]), F_SETFL, oflags(tok[2])));
    } else if (!strcmp(op, "close")) {
        result(close(num(tok[1])));
    } else if (!strcmp(op, "close_range")) {
        unsigned fl = 0;
        if (strstr(tok[3], "CLOEXEC"))
            fl |= CLOSE_RANGE_CLOEXEC;
        if (strstr(tok[3], "UNSHARE"))
            fl |= CLOSE_RANGE_UNSHARE;
        result(syscall(SYS_close_range, (unsigned)num(tok[1]), (unsigned)num(tok[2]), fl));
    } else if (!strcmp(op, "write")) {
        result(write(num(tok[1]), tok[2], strlen(tok[2])));
    } else if (!strcmp(op, "read")) {
        char buf[4096];
        long want = num(tok[2]);
        ssize_t n = read(num(tok[1]), buf, want < (long)sizeof buf ? want : (long)sizeof buf);
        if (n < 0)
            out("= -%s\n", ename(errno));
        else {
            out("= %zd ", n);
            out_raw(buf, n);            /* a hole reads as NULs */
            out("\n");
        }
    } else if (!strcmp(op, "lseek")) {
        result(lseek(num(tok[1]), num(tok[2]), SEEK_SET));
    } else if (!strcmp(op, "pipe")) {
        pair_result(pipe2(fds, cflags(tok[1], O_CLOEXEC, O_NONBLOCK)), fds);
    } else if (!strcmp(op, "socketpair")) {
        pair_result(socketpair(AF_UNIX, SOCK_STREAM | cflags(tok[1], SOCK_CLOEXEC,
                                                               SOCK_NONBLOCK), 0, fds), fds);
    } else if (!strcmp(op, "eventfd")) {
        result(eventfd(0, cflags(tok[1], EFD_CLOEXEC, EFD_NONBLOCK)));
    } else if (!strcmp(op, "timerfd")) {
        result(timerfd_create(CLOCK_MONOTONIC, cflags(tok[1], TFD_CLOEXEC, TFD_NONBLOCK)));
    } else if (!strcmp(op, "signalfd")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        result(signalfd(-1, &set, cflags(tok[1], SFD_CLOEXEC, SFD_NONBLOCK)));
    } else if (!strcmp(op, "epoll")) {
        result(epoll_create1(cflags(tok[1], EPOLL_CLOEXEC, 0)));
    } else if (!strcmp(op, "memfd")) {
        result(memfd_create(tok[1], cflags(tok[2], MFD_CLOEXEC, 0)));
    } else {
        fprintf(stderr, "fdops: unknown op %s\n", op);
        exit(2);
    }
    dump();
}

static void *thread_main(void *arg)
{
    in_thread = 1;
    do_op(arg);
    return NULL;
}

static char *self_path;

static void run(char **ops, int nops)
{
    for (int i = 0; i < nops; i++) {
        const char *op = ops[i];
        if (!strcmp(op, "fork") || !strcmp(op, "clone_files")) {
            if (i + 1 >= nops)
                exit(2);
            out("> %s\n", op);
            flush();
            pid_t pid = !strcmp(op, "fork")
                ? fork()
                : (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
            if (pid < 0) {
                result(-1);
            } else if (pid == 0) {
                do_op(ops[i + 1]);
                flush();
                _exit(0);
            } else {
                int st;
                waitpid(pid, &st, 0);
                out("= %d\n", st);
            }
            dump();
            i++;
        } else if (!strcmp(op, "thread")) {
            if (i + 1 >= nops)
                exit(2);
            out("> %s\n", op);
            pthread_t t;
            int e = pthread_create(&t, NULL, thread_main, ops[i + 1]);
            if (e) {
                errno = e;
                result(-1);
            } else {
                pthread_join(t, NULL);
                out("= 0\n");
            }
            dump();
            i++;
        } else if (!strcmp(op, "exec")) {
            out("> exec\n");
            flush();
            char **argv = calloc(nops - i + 3, sizeof *argv);
            argv[0] = self_path;
            argv[1] = "--cont";
            for (int j = i + 1; j < nops; j++)
                argv[j - i + 1] = ops[j];
            execv(self_path, argv);
            result(-1);
            dump();
        } else {
            do_op(op);
        }
        flush();
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    self_path = argv[0];
    if (argc >= 2 && !strcmp(argv[1], "--cont")) {
        out("= 0\n");
        dump();
        flush();
        run(argv + 2, argc - 2);
        return 0;
    }
    static char text[1 << 20];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(0, text + len, sizeof text - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += n;
    }
    text[len] = 0;
    static char *ops[MAXOPS];
    int nops = 0;
    for (char *line = strtok(text, "\n"); line && nops < MAXOPS; line = strtok(NULL, "\n"))
        if (*line)
            ops[nops++] = line;
    run(ops, nops);
    return 0;
}
