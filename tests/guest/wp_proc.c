/* /proc/[pid] agrees with what a process learns from its own system calls.
 *
 *   wp_proc ns|host [ARGS...]    the parent: checks itself, then a child
 *   wp_proc child [ARGS...]      the child (exec'd by the parent)
 *
 * Every check prints "OK WHO CHECK" or "MISMATCH WHO CHECK: got ... want ...".
 * "ns": we must be pid 1 of a pid namespace whose /proc lists exactly our
 * processes.  "host": host pids and the host's /proc (only inclusion is
 * checked for the process list). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

static int failures;

static void report(const char *who, const char *check, int ok, const char *got,
                   const char *want)
{
    if (ok)
        printf("OK %s %s\n", who, check);
    else {
        printf("MISMATCH %s %s: got '%s' want '%s'\n", who, check, got, want);
        failures++;
    }
    fflush(stdout);
}

static void check_long(const char *who, const char *check, long got, long want)
{
    char g[32], w[32];
    snprintf(g, sizeof g, "%ld", got);
    snprintf(w, sizeof w, "%ld", want);
    report(who, check, got == want, g, w);
}

static void check_str(const char *who, const char *check, const char *got, const char *want)
{
    report(who, check, got && want && strcmp(got, want) == 0, got ? got : "(null)",
           want ? want : "(null)");
}

/* Whole file into buf (NUL-terminated); returns its length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += n;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

/* Fields 1 (pid), 4 (ppid), 5 (pgrp), 6 (session) of /proc/PID/stat. */
static int read_stat(const char *dir, long *pid, long *ppid, long *pgrp, long *sid, char *comm,
                     size_t commlen)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof path, "%s/stat", dir);
    if (slurp(path, buf, sizeof buf) < 0)
        return -1;
    char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren)
        return -1;
    *pid = strtol(buf, NULL, 10);
    size_t n = close_paren - open_paren - 1;
    if (n >= commlen)
        n = commlen - 1;
    memcpy(comm, open_paren + 1, n);
    comm[n] = 0;
    char state;
    if (sscanf(close_paren + 1, " %c %ld %ld %ld", &state, ppid, pgrp, sid) != 4)
        return -1;
    return 0;
}

/* The value of "Key:" in /proc/PID/status, as text (tabs kept). */
static int status_field(const char *dir, const char *key, char *out, size_t outlen)
{
    char path[PATH_MAX], buf[8192];
    snprintf(path, sizeof path, "%s/status", dir);
    if (slurp(path, buf, sizeof buf) < 0)
        return -1;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            char *v = line + klen + 1;
            while (*v == '\t' || *v == ' ')
                v++;
            size_t n = strcspn(v, "\n");
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return 0;
        }
    }
    return -1;
}

static void check_status_ids(const char *who, const char *dir, long pid, long ppid, long pgrp,
                             long sid)
{
    static const char *keys[] = {"Pid", "PPid", "Tgid", "NSpid", "NStgid", "NSpgid", "NSsid"};
    long want[] = {pid, ppid, pid, pid, pid, pgrp, sid};
    for (int i = 0; i < 7; i++) {
        char v[256], check[64], w[32];
        snprintf(check, sizeof check, "status:%s", keys[i]);
        snprintf(w, sizeof w, "%ld", want[i]);
        if (status_field(dir, keys[i], v, sizeof v) < 0) {
            report(who, check, 0, "(missing)", w);
            continue;
        }
        /* NS* lines list one id per nested namespace, seen from the /proc
         * mount's namespace down: the process lives in that namespace, so
         * there is exactly one. */
        report(who, check, strcmp(v, w) == 0, v, w);
    }
}

static void check_stat(const char *who, const char *dir, long pid, long ppid, long pgrp,
                       long sid, const char *comm)
{
    long p = -1, pp = -1, pg = -1, s = -1;
    char c[64] = "";
    if (read_stat(dir, &p, &pp, &pg, &s, c, sizeof c) < 0) {
        report(who, "stat", 0, "(unreadable)", dir);
        return;
    }
    check_long(who, "stat:1:pid", p, pid);
    check_long(who, "stat:2:comm", strcmp(c, comm), 0);
    check_long(who, "stat:4:ppid", pp, ppid);
    check_long(who, "stat:5:pgrp", pg, pgrp);
    check_long(who, "stat:6:session", s, sid);
}

/* /proc/PID/cmdline is argv, each string NUL-terminated. */
static void check_cmdline(const char *who, const char *dir, char **argv)
{
    char path[PATH_MAX], got[8192], want[8192];
    size_t wlen = 0;
    for (char **a = argv; *a; a++) {
        size_t n = strlen(*a) + 1;
        memcpy(want + wlen, *a, n);
        wlen += n;
    }
    snprintf(path, sizeof path, "%s/cmdline", dir);
    ssize_t glen = slurp(path, got, sizeof got);
    int ok = glen == (ssize_t)wlen && memcmp(got, want, wlen) == 0;
    for (ssize_t i = 0; i < glen; i++)
        if (got[i] == 0)
            got[i] = '|';
    for (size_t i = 0; i < wlen; i++)
        if (want[i] == 0)
            want[i] = '|';
    want[wlen] = 0;
    report(who, "cmdline", ok, glen < 0 ? "(unreadable)" : got, want);
}

static void expected_comm(const char *argv0, char *out)
{
    const char *base = strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0;
    snprintf(out, 16, "%s", base);      /* TASK_COMM_LEN - 1 characters */
}

static void check_link(const char *who, const char *check, const char *link, const char *want)
{
    char got[PATH_MAX];
    ssize_t n = readlink(link, got, sizeof got - 1);
    if (n < 0)
        snprintf(got, sizeof got, "(readlink: %s)", strerror(errno));
    else
        got[n] = 0;
    check_str(who, check, got, want);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Sorted numeric names in a directory; returns how many (or -1). */
static int numeric_entries(const char *path, long *out, int max, int *dir_fd)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    if (dir_fd)
        *dir_fd = dirfd(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*e->d_name && !*end && n < max)
            out[n++] = v;
    }
    closedir(d);
    qsort(out, n, sizeof *out, cmp_long);
    return n;
}

static void list_str(const long *v, int n, char *out, size_t len)
{
    out[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%ld", i ? "," : "", v[i]);
}

static void check_fds(const char *who, const char *exe_real)
{
    int fd = open(exe_real, O_RDONLY | O_CLOEXEC);
    long fds[64], want[5];
    int dfd = -1;
    int n = numeric_entries("/proc/self/fd", fds, 64, &dfd);
    long w[] = {0, 1, 2, fd, dfd};
    memcpy(want, w, sizeof w);
    qsort(want, 5, sizeof *want, cmp_long);
    char g[512], ws[512];
    list_str(fds, n < 0 ? 0 : n, g, sizeof g);
    list_str(want, 5, ws, sizeof ws);
    check_str(who, "fd:list", g, ws);
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    check_link(who, "fd:link", link, exe_real);
    close(fd);
}

/* ---- threads -------------------------------------------------------- */

static pthread_barrier_t started, finish;
static long tids[3];

static void *thread_main(void *arg)
{
    tids[(long)arg] = syscall(SYS_gettid);
    pthread_barrier_wait(&started);
    pthread_barrier_wait(&finish);
    return NULL;
}

static void check_threads(const char *who)
{
    pthread_t th[3];
    pthread_barrier_init(&started, NULL, 4);
    pthread_barrier_init(&finish, NULL, 4);
    for (long i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, thread_main, (void *)i);
    pthread_barrier_wait(&started);

    long want[4] = {syscall(SYS_gettid), tids[0], tids[1], tids[2]}, got[16];
    qsort(want, 4, sizeof *want, cmp_long);
    int n = numeric_entries("/proc/self/task", got, 16, NULL);
    char g[256], w[256];
    list_str(got, n < 0 ? 0 : n, g, sizeof g);
    list_str(want, 4, w, sizeof w);
    check_str(who, "task:list", g, w);
    check_long(who, "task:main-is-pid", want[0] == getpid() || tids[0] == getpid() ||
               tids[1] == getpid() || tids[2] == getpid(), 1);
    int stat_ok = 1;
    for (int i = 0; i < 3; i++) {
        char dir[64];
        long p, pp, pg, s;
        char c[64];
        snprintf(dir, sizeof dir, "/proc/self/task/%ld", tids[i]);
        if (read_stat(dir, &p, &pp, &pg, &s, c, sizeof c) < 0 || p != tids[i] ||
            pp != getppid())
            stat_ok = 0;
        char v[64];
        if (status_field(dir, "Pid", v, sizeof v) < 0 || strtol(v, NULL, 10) != tids[i] ||
            status_field(dir, "Tgid", v, sizeof v) < 0 || strtol(v, NULL, 10) != getpid())
            stat_ok = 0;
    }
    check_long(who, "task:stat", stat_ok, 1);
    char v[64] = "";
    status_field("/proc/self", "Threads", v, sizeof v);
    check_str(who, "status:Threads", v, "4");

    pthread_barrier_wait(&finish);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
}

/* ---- one process, from the inside ------------------------------------ */

static void check_self(const char *who, char **argv, const char *exe_real)
{
    char comm[16], dir[64], cwd[PATH_MAX];
    long pid = getpid(), ppid = getppid(), pgrp = getpgrp(), sid = getsid(0);
    expected_comm(argv[0], comm);

    check_stat(who, "/proc/self", pid, ppid, pgrp, sid, comm);
    snprintf(dir, sizeof dir, "/proc/%ld", pid);
    check_stat(who, dir, pid, ppid, pgrp, sid, comm);
    check_status_ids(who, "/proc/self", pid, ppid, pgrp, sid);
    check_cmdline(who, "/proc/self", argv);
    check_cmdline(who, dir, argv);

    char got[64] = "";
    slurp("/proc/self/comm", got, sizeof got);
    got[strcspn(got, "\n")] = 0;
    check_str(who, "comm", got, comm);

    check_link(who, "exe", "/proc/self/exe", exe_real);
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "(getcwd: %s)", strerror(errno));
    check_link(who, "cwd", "/proc/self/cwd", cwd);
    check_fds(who, exe_real);
    check_threads(who);
}

int main(int argc, char **argv)
{
    char exe_real[PATH_MAX];
    if (argc < 2 || !realpath(argv[0], exe_real)) {
        fprintf(stderr, "usage: /abs/path/wp_proc ns|host|child [ARGS]\n");
        return 2;
    }
    if (strcmp(argv[1], "child") == 0) {
        check_self("child", argv, exe_real);
        raise(SIGSTOP);     /* the parent looks at us from outside now */
        return failures ? 1 : 0;
    }
    int ns = strcmp(argv[1], "ns") == 0;
    if (ns)
        check_long("parent", "is-pid-1", getpid(), 1);
    check_self("parent", argv, exe_real);

    /* A child in its own process group and another cwd, exec'd with its own argv. */
    char *child_argv[] = {argv[0], "child", "two words", "", "last", NULL};
    fflush(stdout);
    pid_t c = fork();
    if (c < 0)
        return 99;
    if (c == 0) {
        setpgid(0, 0);
        if (chdir("/") < 0)
            _exit(98);
        execv(argv[0], child_argv);
        _exit(97);
    }
    setpgid(c, c);
    int st;
    if (waitpid(c, &st, WUNTRACED) != c || !WIFSTOPPED(st)) {
        report("parent", "child-stopped", 0, "no", "yes");
        return 1;
    }

    char dir[64], comm[16];
    snprintf(dir, sizeof dir, "/proc/%d", (int)c);
    expected_comm(argv[0], comm);
    if (ns)
        check_long("parent", "child-pid-small", c < 100, 1);
    check_stat("parent-of-child", dir, c, getpid(), getpgid(c), getsid(c), comm);
    check_long("parent-of-child", "pgrp-is-own", getpgid(c), c);
    check_status_ids("parent-of-child", dir, c, getpid(), getpgid(c), getsid(c));
    check_cmdline("parent-of-child", dir, child_argv);
    char path[PATH_MAX], got[64] = "";
    snprintf(path, sizeof path, "%s/comm", dir);
    slurp(path, got, sizeof got);
    got[strcspn(got, "\n")] = 0;
    check_str("parent-of-child", "comm", got, comm);
    snprintf(path, sizeof path, "%s/exe", dir);
    check_link("parent-of-child", "exe", path, exe_real);
    snprintf(path, sizeof path, "%s/cwd", dir);
    check_link("parent-of-child", "cwd", path, "/");

    /* The numeric entries of /proc: exactly us and the child in a pid
     * namespace; at least us and the child on the host. */
    long pids[4096];
    int n = numeric_entries("/proc", pids, 4096, NULL);
    long want[2] = {getpid(), c};
    qsort(want, 2, sizeof *want, cmp_long);
    char g[8192], w[64];
    list_str(want, 2, w, sizeof w);
    if (ns) {
        list_str(pids, n < 0 ? 0 : n, g, sizeof g);
        check_str("parent", "proc:pids", g, w);
    } else {
        int found = 0;
        for (int i = 0; i < n; i++)
            found += pids[i] == getpid() || pids[i] == c;
        snprintf(g, sizeof g, "%d of them", found);
        report("parent", "proc:pids", found == 2, g, w);
    }

    kill(c, SIGCONT);
    if (waitpid(c, &st, 0) != c)
        return 1;
    check_long("parent", "child-exit", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), 0);
    return failures ? 1 : 0;
}
