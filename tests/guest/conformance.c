/* Linux conformance probe (tests/test_conformance.py): each command prints
 * one line per call, "what: result", the result an errno name or what the
 * call found, so a run natively and a run inside umlpy can be compared line
 * by line.
 *
 *   sockaddr DIR      bind/connect/sendto of AF_UNIX addresses on internet
 *                     sockets (DIR: a directory of the test's own)
 *   deleted DIR       *at calls relative to a dirfd of a removed directory,
 *                     and in a removed working directory (chdir, fchdir)
 *   howsize           openat2 with struct open_how sizes around 24
 *   resolve DIR       openat2's RESOLVE_* flags over DIR (a tree the test
 *                     made: sub/, file, abs -> /, up -> .., sub/rel -> ../file)
 *   perm DIR          tree changes in DIR, a directory the caller may not
 *                     write (DIR/file, DIR/sub exist)
 *   sched             sched_setscheduler/sched_setattr and what the get calls
 *                     report back (in a child too)
 *   rlimit            lowering and raising hard limits, what getrlimit reports
 *   mlock [MIB]       mlock of MIB (10) MiB */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ename(int e)
{
    static char buf[32];
    const char *n = strerrorname_np(e);
    if (n)
        return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static void report(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, ename(errno));
    else
        printf("%s: ok\n", what);
    fflush(stdout);
}

/* ---- sockaddr ---------------------------------------------------------- */

static void sockaddr_cmd(const char *dir)
{
    static const struct { int family, type; const char *name; } socks[] = {
        {AF_INET, SOCK_STREAM, "inet-stream"}, {AF_INET, SOCK_DGRAM, "inet-dgram"},
        {AF_INET6, SOCK_STREAM, "inet6-stream"}, {AF_INET6, SOCK_DGRAM, "inet6-dgram"},
    };
    char existing[256], missing[256], sockpath[256];
    snprintf(existing, sizeof existing, "%s", dir);                 /* a directory */
    snprintf(missing, sizeof missing, "%s/missing", dir);
    snprintf(sockpath, sizeof sockpath, "%s/sock", dir);
    unlink(sockpath);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un la = {.sun_family = AF_UNIX};
    strcpy(la.sun_path, sockpath);
    if (bind(listener, (struct sockaddr *)&la, sizeof la) < 0 || listen(listener, 1) < 0)
        report("unix listener", -1);
    const char *paths[] = {existing, missing, sockpath};
    const char *pnames[] = {"existing", "missing", "socket"};
    for (unsigned s = 0; s < sizeof socks / sizeof socks[0]; s++)
        for (int p = 0; p < 3; p++)
            for (int full = 0; full < 2; full++) {
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                strcpy(a.sun_path, paths[p]);
                socklen_t len = full ? sizeof a
                    : offsetof(struct sockaddr_un, sun_path) + strlen(paths[p]) + 1;
                char what[128];
                const char *calls[] = {"bind", "connect", "sendto"};
                for (int c = 0; c < 3; c++) {
                    int fd = socket(socks[s].family, socks[s].type, 0);
                    long r;
                    if (c == 0)
                        r = bind(fd, (struct sockaddr *)&a, len);
                    else if (c == 1)
                        r = connect(fd, (struct sockaddr *)&a, len);
                    else
                        r = sendto(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, len);
                    snprintf(what, sizeof what, "%s %s %s len=%s", socks[s].name, calls[c],
                             pnames[p], full ? "full" : "exact");
                    report(what, r);
                    close(fd);
                }
            }
    /* an internet address on an AF_UNIX socket */
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(1)};
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    report("unix bind inet", bind(u, (struct sockaddr *)&in, sizeof in));
    report("unix connect inet", connect(u, (struct sockaddr *)&in, sizeof in));
    close(u);
    close(listener);
    unlink(sockpath);
}

/* ---- deleted ----------------------------------------------------------- */

/* What stat found for a removed directory itself, compared with the
 * directory as it was before the removal (same inode, now unlinked). */
static void dead_attrs(const char *what, long r, const struct stat *st,
                       const struct stat *was)
{
    char line[160];
    snprintf(line, sizeof line, "%s .", what);
    report(line, r);
    if (r < 0)
        return;
    printf("%s attrs .: nlink %lu mode %o size %lld uid %u same inode %s\n", what,
           (unsigned long)st->st_nlink, st->st_mode, (long long)st->st_size, st->st_uid,
           st->st_ino == was->st_ino && st->st_dev == was->st_dev ? "yes" : "no");
}

/* A working directory removed under the process (chdir, then rmdir by
 * its path), or entered by fchdir after its removal. */
static void dead_cwd(const char *dir, int by_fd)
{
    char gone[256];
    const char *how = by_fd ? "fchdir" : "cwd";
    snprintf(gone, sizeof gone, "%s/%s", dir, by_fd ? "gone-fd" : "gone-cwd");
    struct stat was, st;
    if (mkdir(gone, 0755) < 0 || stat(gone, &was) < 0)
        report("mkdir cwd", -1);
    int fd = open(gone, O_RDONLY | O_DIRECTORY);
    if (!by_fd && chdir(gone) < 0)
        report("chdir", -1);
    if (rmdir(gone) < 0)
        report("rmdir cwd", -1);
    char what[128];
    if (by_fd) {
        snprintf(what, sizeof what, "%s into removed", how);
        report(what, fchdir(fd));
    }
    snprintf(what, sizeof what, "%s stat", how);
    dead_attrs(what, stat(".", &st), &st, &was);
    snprintf(what, sizeof what, "%s stat ./", how);
    dead_attrs(what, stat("./", &st), &st, &was);
    snprintf(what, sizeof what, "%s fstatat empty", how);
    dead_attrs(what, fstatat(AT_FDCWD, "", &st, AT_EMPTY_PATH), &st, &was);
    snprintf(what, sizeof what, "%s mkdir .", how);
    report(what, mkdir(".", 0755));
    snprintf(what, sizeof what, "%s chdir .", how);
    report(what, chdir("."));
    snprintf(what, sizeof what, "%s stat again", how);
    dead_attrs(what, stat(".", &st), &st, &was);
    snprintf(what, sizeof what, "%s mkdir x", how);
    report(what, mkdir("x", 0755));
    snprintf(what, sizeof what, "%s stat x", how);
    report(what, stat("x", &st));
    snprintf(what, sizeof what, "%s getcwd", how);
    report(what, getcwd(what + 100, 20) ? 0 : -1);
    struct stat parent, up;
    stat(dir, &parent);
    snprintf(what, sizeof what, "%s stat ..", how);
    report(what, stat("..", &up));
    printf("%s .. is the parent: %s\n", how,
           up.st_ino == parent.st_ino && up.st_dev == parent.st_dev ? "yes" : "no");
    if (chdir(dir) < 0)
        report("chdir back", -1);
    close(fd);
}

static void deleted_cmd(const char *dir)
{
    char gone[256], file[256];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    snprintf(file, sizeof file, "%s/file", dir);
    close(open(file, O_CREAT | O_WRONLY, 0644));
    struct stat was;
    if (mkdir(gone, 0755) < 0 || stat(gone, &was) < 0)
        report("mkdir", -1);
    int fd = open(gone, O_RDONLY | O_DIRECTORY);
    int pfd = open(gone, O_PATH | O_DIRECTORY);
    if (rmdir(gone) < 0)
        report("rmdir", -1);
    for (int k = 0; k < 2; k++) {
        int d = k ? pfd : fd;
        const char *how = k ? "path-fd" : "fd";
        char what[128];
#define AT(name, call) (snprintf(what, sizeof what, "%s %s", how, name), report(what, call))
        AT("mkdirat x", mkdirat(d, "x", 0755));
        AT("mknodat x", mknodat(d, "x", S_IFIFO | 0644, 0));
        AT("openat creat x", openat(d, "x", O_CREAT | O_WRONLY, 0644));
        AT("openat x", openat(d, "x", O_RDONLY));
        AT("symlinkat x", symlinkat("target", d, "x"));
        AT("linkat file x", linkat(AT_FDCWD, file, d, "x", 0));
        AT("linkat x file2", linkat(d, "x", AT_FDCWD, "file2", 0));
        AT("renameat file x", renameat(AT_FDCWD, file, d, "x"));
        AT("renameat x file2", renameat(d, "x", AT_FDCWD, "file2"));
        AT("unlinkat x", unlinkat(d, "x", 0));
        AT("unlinkat x dir", unlinkat(d, "x", AT_REMOVEDIR));
        AT("readlinkat x", readlinkat(d, "x", what + 100, 20));
        struct stat st;
        AT("fstatat x", fstatat(d, "x", &st, 0));
        snprintf(what, sizeof what, "%s fstatat", how);
        dead_attrs(what, fstatat(d, ".", &st, 0), &st, &was);
        snprintf(what, sizeof what, "%s fstatat ./.", how);
        dead_attrs(what, fstatat(d, "./.", &st, 0), &st, &was);
        snprintf(what, sizeof what, "%s fstatat empty", how);
        dead_attrs(what, fstatat(d, "", &st, AT_EMPTY_PATH), &st, &was);
        AT("faccessat x", faccessat(d, "x", F_OK, 0));
        AT("fchmodat x", fchmodat(d, "x", 0644, 0));
        AT("mkdirat .", mkdirat(d, ".", 0755));
        AT("symlinkat .", symlinkat("target", d, "."));
        int r = openat(d, "..", O_RDONLY | O_DIRECTORY);
        AT("openat ..", r);
        if (r >= 0) {
            /* where ".." of a removed directory is: its parent of old */
            struct stat a, b;
            fstat(r, &a);
            stat(dir, &b);
            printf("%s .. is the parent: %s\n", how,
                   a.st_ino == b.st_ino && a.st_dev == b.st_dev ? "yes" : "no");
            close(r);
        }
#undef AT
    }
    unlink(file);
    dead_cwd(dir, 0);
    dead_cwd(dir, 1);
}

/* ---- openat2 ----------------------------------------------------------- */

static long openat2_(int dirfd, const char *path, void *how, size_t size)
{
    return syscall(SYS_openat2, dirfd, path, how, size);
}

static void howsize_cmd(void)
{
    static unsigned char buf[8192];
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY};
    size_t sizes[] = {0, 8, 16, 23, 24, 25, 32, 64, 4096, 4097};
    for (int extra = 0; extra < 2; extra++)
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            memset(buf, 0, sizeof buf);
            memcpy(buf, &how, sizeof how);
            if (extra && sizes[i] > sizeof how)
                buf[sizes[i] - 1] = 1;
            char what[64];
            snprintf(what, sizeof what, "size %zu%s", sizes[i], extra ? " nonzero" : "");
            long r = openat2_(AT_FDCWD, "/", buf, sizes[i]);
            report(what, r);
            if (r >= 0)
                close(r);
        }
    /* the extra bytes unreadable: past the end of a mapping */
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + page, page);
    memcpy(m + page - sizeof how, &how, sizeof how);
    long r = openat2_(AT_FDCWD, "/", m + page - sizeof how, sizeof how + 8);
    report("size 32 unreadable", r);
    if (r >= 0)
        close(r);
}

/* the guest path an fd names: in the tree (relative to top), or outside */
static void name_fd(const char *what, long fd, const char *top)
{
    if (fd < 0) {
        report(what, -1);
        return;
    }
    char link[64], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    /* pids differ between the runs: /proc/PID, task/PID */
    char norm[512], *o = norm;
    for (const char *c = target; *c && o < norm + sizeof norm - 8; ) {
        if ((strncmp(c, "/proc/", 6) == 0 || strncmp(c, "/task/", 6) == 0) &&
            c[6] >= '0' && c[6] <= '9') {
            memcpy(o, c, 6), o += 6, c += 6;
            while (*c >= '0' && *c <= '9')
                c++;
            memcpy(o, "PID", 3), o += 3;
        } else
            *o++ = *c++;
    }
    *o = 0;
    strcpy(target, norm);
    size_t t = strlen(top);
    if (strncmp(target, top, t) == 0 && (target[t] == 0 || target[t] == '/'))
        printf("%s: ok TOP%s\n", what, target + t);
    else if (strncmp(target, "/proc/", 6) == 0 || strncmp(target, "/dev/", 5) == 0 ||
             strcmp(target, "/") == 0 || strcmp(target, "/proc") == 0 ||
             strncmp(target, "/etc", 4) == 0)
        printf("%s: ok %s\n", what, target);
    else
        printf("%s: ok (elsewhere)\n", what);
    fflush(stdout);
    close(fd);
}

static void resolve_cmd(const char *top)
{
    static const struct { const char *name; unsigned long long bits; } flags[] = {
        {"BENEATH", RESOLVE_BENEATH}, {"IN_ROOT", RESOLVE_IN_ROOT},
        {"NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS}, {"NO_SYMLINKS", RESOLVE_NO_SYMLINKS},
        {"NO_XDEV", RESOLVE_NO_XDEV},
    };
    static const struct { const char *dir; const char *path; } cases[] = {
        {"/", ".."}, {"/", "../etc"}, {"/", "etc/../.."}, {"/", "."}, {"/", "/etc"},
        {"/", "proc"}, {"/", "proc/.."}, {"/", "proc/self"}, {"/", "proc/self/fd/0"},
        {"/", "dev/null"},
        {"/proc", ".."}, {"/proc", "self"}, {"/proc", "self/fd/0"}, {"/proc", "self/exe"},
        {"/proc", "self/cwd"}, {"/proc", "self/root"}, {"/proc", "self/fd"},
        {"/proc", "/"}, {"/proc", "thread-self/cwd"},
        {"TOP", "."}, {"TOP", ".."}, {"TOP", "file"}, {"TOP", "sub/../file"},
        {"TOP", "sub/../../TOPNAME/file"}, {"TOP", "abs"}, {"TOP", "abs/etc"},
        {"TOP", "up"}, {"TOP", "up/TOPNAME/file"}, {"TOP", "sub/rel"}, {"TOP", "/file"},
        {"TOP", "sub/.."}, {"TOP", "sub/../.."}, {"TOP/sub", "../file"},
        {"TOP/sub", "rel"}, {"TOP/sub", "../sub/rel"},
    };
    const char *topname = strrchr(top, '/') + 1;
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[512], path[512];
        if (strncmp(cases[c].dir, "TOP", 3) == 0)
            snprintf(dir, sizeof dir, "%s%s", top, cases[c].dir + 3);
        else
            snprintf(dir, sizeof dir, "%s", cases[c].dir);
        const char *p = strstr(cases[c].path, "TOPNAME");
        if (p)
            snprintf(path, sizeof path, "%.*s%s%s", (int)(p - cases[c].path), cases[c].path,
                     topname, p + 7);
        else
            snprintf(path, sizeof path, "%s", cases[c].path);
        int dfd = open(dir, O_PATH | O_DIRECTORY);
        for (unsigned f = 0; f < sizeof flags / sizeof flags[0]; f++)
            for (int nofollow = 0; nofollow < 2; nofollow++) {
                /* (an O_PATH|O_NOFOLLOW fd of /proc/self itself: not here) */
                if (nofollow && !strcmp(strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
                                        "self"))
                    continue;
                struct open_how how = {.resolve = flags[f].bits,
                                       .flags = nofollow ? O_PATH | O_NOFOLLOW : O_PATH};
                char what[256];
                snprintf(what, sizeof what, "%s %s %s%s", cases[c].dir, cases[c].path,
                         flags[f].name, nofollow ? " nofollow" : "");
                name_fd(what, openat2_(dfd, path, &how, sizeof how), top);
            }
        close(dfd);
    }
}

/* ---- perm -------------------------------------------------------------- */

static void perm_cmd(const char *dir)
{
    char a[512], b[512], file[512], sub[512];
    snprintf(file, sizeof file, "%s/file", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(a, sizeof a, "%s/new", dir);
    snprintf(b, sizeof b, "%s/file2", dir);
    report("symlink", symlink("target", a));
    report("link", link(file, a));
    report("mkdir", mkdir(a, 0755));
    report("mknod fifo", mknod(a, S_IFIFO | 0644, 0));
    report("creat", open(a, O_CREAT | O_WRONLY, 0644));
    report("rename", rename(file, b));
    report("rename into", rename(file, a));
    report("unlink", unlink(file));
    report("rmdir", rmdir(sub));
}

/* ---- sched ------------------------------------------------------------- */

struct attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

static void show_sched(const char *when)
{
    struct sched_param sp = {0};
    int pol = sched_getscheduler(0);
    int r = sched_getparam(0, &sp);
    struct attr at = {0};
    long ra = syscall(SYS_sched_getattr, 0, &at, sizeof at, 0);
    printf("%s: policy %d (%s) param %d (%s) attr policy %u priority %u nice %d (%s)\n",
           when, pol, pol < 0 ? ename(errno) : "ok", sp.sched_priority,
           r < 0 ? ename(errno) : "ok", at.policy, at.priority, at.nice,
           ra < 0 ? ename(errno) : "ok");
    fflush(stdout);
}

static void sched_cmd(void)
{
    struct sched_param sp = {.sched_priority = 10};
    show_sched("start");
    report("setscheduler fifo 10", sched_setscheduler(0, SCHED_FIFO, &sp));
    show_sched("after fifo");
    pid_t child = fork();
    if (child == 0) {
        show_sched("child after fifo");
        _exit(0);
    }
    waitpid(child, NULL, 0);
    sp.sched_priority = 20;
    report("setparam 20", sched_setparam(0, &sp));
    show_sched("after setparam");
    sp.sched_priority = 200;
    report("setscheduler fifo 200", sched_setscheduler(0, SCHED_FIFO, &sp));
    struct attr at = {.size = sizeof at, .policy = SCHED_RR, .priority = 5};
    report("setattr rr 5", syscall(SYS_sched_setattr, 0, &at, 0));
    show_sched("after rr");
    sp.sched_priority = 0;
    report("setscheduler other", sched_setscheduler(0, SCHED_OTHER, &sp));
    show_sched("after other");
    report("setscheduler batch", sched_setscheduler(0, SCHED_BATCH, &sp));
    show_sched("after batch");
    sp.sched_priority = 7;
    report("setscheduler rr 7 reset-on-fork",
           sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp));
    show_sched("after rr reset-on-fork");
    child = fork();
    if (child == 0) {
        show_sched("child after reset-on-fork");
        _exit(0);
    }
    waitpid(child, NULL, 0);
    sp.sched_priority = 0;
    report("setscheduler other", sched_setscheduler(0, SCHED_OTHER, &sp));
    show_sched("at the end");
}

static void show_limit(const char *what, int resource, rlim_t base)
{
    struct rlimit rl;
    getrlimit(resource, &rl);
    printf("%s: soft %lld hard %lld\n", what, (long long)(rl.rlim_cur - base),
           (long long)(rl.rlim_max - base));
    fflush(stdout);
}

static void rlimit_cmd(void)
{
    struct rlimit rl, old;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t hard = rl.rlim_max;
    struct rlimit lower = {.rlim_cur = 100, .rlim_max = hard - 10};
    report("nofile hard lowered", setrlimit(RLIMIT_NOFILE, &lower));
    show_limit("nofile - hard", RLIMIT_NOFILE, hard);
    struct rlimit back = {.rlim_cur = 200, .rlim_max = hard};
    report("nofile hard raised back", setrlimit(RLIMIT_NOFILE, &back));
    show_limit("nofile - hard", RLIMIT_NOFILE, hard);
    pid_t child = fork();
    if (child == 0) {
        show_limit("child nofile - hard", RLIMIT_NOFILE, hard);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    struct rlimit past = {.rlim_cur = 200, .rlim_max = 1 << 30};
    report("nofile hard past nr_open", setrlimit(RLIMIT_NOFILE, &past));
    struct rlimit soft_over = {.rlim_cur = 300, .rlim_max = 200};
    report("nofile soft over hard", setrlimit(RLIMIT_NOFILE, &soft_over));

    struct rlimit zero = {.rlim_cur = 0, .rlim_max = 0};
    report("rtprio lowered", setrlimit(RLIMIT_RTPRIO, &zero));
    struct rlimit inf = {.rlim_cur = 10, .rlim_max = RLIM_INFINITY};
    report("prlimit rtprio infinity", prlimit(0, RLIMIT_RTPRIO, &inf, &old));
    printf("prlimit's old: soft %lld hard %lld\n", (long long)old.rlim_cur,
           (long long)old.rlim_max);
    report("prlimit rtprio get", prlimit(0, RLIMIT_RTPRIO, NULL, &old));
    printf("rtprio: soft %lld hard %s\n", (long long)old.rlim_cur,
           old.rlim_max == RLIM_INFINITY ? "infinity" : "finite");
    struct rlimit mid = {.rlim_cur = 10, .rlim_max = 50};
    report("rtprio lowered from infinity", setrlimit(RLIMIT_RTPRIO, &mid));
    show_limit("rtprio", RLIMIT_RTPRIO, 0);
    report("rtprio raised back to 50 again", setrlimit(RLIMIT_RTPRIO, &mid));
    struct rlimit core = {.rlim_cur = 0, .rlim_max = RLIM_INFINITY};
    report("core raised", setrlimit(RLIMIT_CORE, &core));
    fflush(stdout);
}

static void mlock_cmd(const char *mib)
{
    size_t n = (size_t)atoi(mib ? mib : "10") << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char what[32];
    snprintf(what, sizeof what, "mlock %sMiB", mib ? mib : "10");
    report(what, mlock(p, n));
    report("munlock", munlock(p, n));
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "sockaddr"))
        sockaddr_cmd(argv[2]);
    else if (!strcmp(cmd, "deleted"))
        deleted_cmd(argv[2]);
    else if (!strcmp(cmd, "howsize"))
        howsize_cmd();
    else if (!strcmp(cmd, "resolve"))
        resolve_cmd(argv[2]);
    else if (!strcmp(cmd, "perm"))
        perm_cmd(argv[2]);
    else if (!strcmp(cmd, "sched"))
        sched_cmd();
    else if (!strcmp(cmd, "rlimit"))
        rlimit_cmd();
    else if (!strcmp(cmd, "mlock"))
        mlock_cmd(argv[2]);
    else
        return 2;
    return 0;
}
