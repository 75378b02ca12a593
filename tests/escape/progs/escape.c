/* The escape suite's attacker: `escape TECHNIQUE` tries one way out of the
 * sandbox and reports every attempt on stdout:
 *
 *   ok WHAT: ERRNO      the attempt failed (as it must)
 *   note WHAT: ...      neutral information (allowed inside the sandbox)
 *   ESCAPE WHAT: ...    the sandbox was crossed (the test fails)
 *   DONE attempts=N technique=T   the technique ran to its end, after N
 *                       attempts (WORD attempts=N technique=T: the count
 *                       so far, printed where it may not reach its end)
 *
 * Every attempt counts (blocked(), note(), the try_* and *_check helpers,
 * each call of a scan): the test fails a technique that tried nothing.
 * The count lives in a shared page, so children's attempts count too
 * (not those of programs it execs: they print DONE lines of their own).
 *
 * What the test knows about the host comes in ESC_* environment variables
 * (the marker file outside the sandbox and its content, a host process,
 * host sockets...).  Changes made on the host are checked by the test
 * itself; this program reports what only the guest can see (a host secret
 * read, a call that should never succeed).
 *
 * Never run `kill-all` outside a pid namespace: it checks that it is pid 1
 * before calling kill(-1). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <asm/ldt.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/xattr.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef PTRACE_SEIZE
#define PTRACE_SEIZE 0x4206
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef SYS_file_getattr
#define SYS_file_getattr 468
#define SYS_file_setattr 469
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define X32 0x40000000UL

static const char *MARKER, *SECRET, *ARENA, *ROOTFILE, *ROOTSECRET;
static int IMAGE, PIDHOST;
static pid_t HOSTPID;

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v ? v : "";
}

static const char *en(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

/* The attempts of this technique, children and threads included. */
static long attempts_here, *ATTEMPTS = &attempts_here;

static void attempt(void)
{
    __atomic_add_fetch(ATTEMPTS, 1, __ATOMIC_RELAXED);
}

#define ESCAPE(...) do { printf("ESCAPE "); printf(__VA_ARGS__); printf("\n"); } while (0)

/* A call that must fail. */
static void blocked(const char *what, long r)
{
    attempt();
    if (r < 0)
        printf("ok %s: %s\n", what, en(errno));
    else
        ESCAPE("%s: succeeded (%ld)", what, r);
}

/* A call whose success is harmless (or judged by the test on the host). */
static void note(const char *what, long r)
{
    attempt();
    if (r < 0)
        printf("note %s: %s\n", what, en(errno));
    else
        printf("note %s: ok (%ld)\n", what, r);
}

/* A raw syscall's result as -errno. */
static long rawsys(unsigned long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static int fd_has_secret(int fd, int *root_secret)
{
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    *root_secret = 0;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    if (*ROOTSECRET && strstr(buf, ROOTSECRET)) {
        *root_secret = 1;
        return 1;
    }
    return *SECRET && strstr(buf, SECRET) != NULL;
}

/* Judge an fd the guest obtained somehow: the root-only host file is never
 * readable; the marker is readable only when the root is the host's tree. */
static void judge_fd(int fd, const char *what)
{
    int rootsecret;
    if (fd_has_secret(fd, &rootsecret) && (rootsecret || IMAGE))
        ESCAPE("%s: read a host secret%s", what, rootsecret ? " (root-only file)" : "");
    else
        printf("note %s: opened\n", what);
}

static void try_read_at(int dirfd, const char *path, const char *what)
{
    attempt();
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("ok %s: %s\n", what, en(errno));
        return;
    }
    judge_fd(fd, what);
    close(fd);
}

static void try_read(const char *path, const char *what)
{
    try_read_at(AT_FDCWD, path, what);
}

/* Opening the marker for writing: in the host tree this lands in the upper
 * layer (the test checks the host copy); in an image the path must not exist. */
static void try_write_at(int dirfd, const char *path, const char *what)
{
    attempt();
    int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        printf("ok %s: %s\n", what, en(errno));
        return;
    }
    if (write(fd, "GUEST-WROTE\n", 12) < 0) {}
    if (IMAGE)
        ESCAPE("%s: a host path opened for writing in an image root", what);
    else
        printf("note %s: written (must land in the upper layer)\n", what);
    close(fd);
}

static void try_write(const char *path, const char *what)
{
    try_write_at(AT_FDCWD, path, what);
}

/* Paths the guest is shown must be guest paths. */
static void leak_check(const char *s, const char *what)
{
    attempt();
    const char *u = strstr(s, "/umlpy-");
    if ((u && (strstr(u, "/upper") || strstr(u, "/spool") || strstr(u, "/content"))) ||
        strstr(s, "umlpy/content") || strstr(s, "umlpy/index"))
        ESCAPE("%s: shows a host path of the sandbox: %s", what, s);
    else if (IMAGE && (strstr(s, ARENA) || strstr(s, "pytest-of")))
        ESCAPE("%s: shows a host path outside the image: %s", what, s);
}

static void readlink_check(const char *path, const char *what)
{
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) {
        attempt();
        return;
    }
    buf[n] = 0;
    leak_check(buf, what);
}

static void cwd_check(const char *what)
{
    char buf[4096];
    if (getcwd(buf, sizeof buf))
        leak_check(buf, what);
    else
        attempt();
}

/* The marker's path relative to "/" (for `..` tricks). */
static const char *rel_marker(void)
{
    const char *m = MARKER;
    while (*m == '/')
        m++;
    return m;
}

static const char *ups(int n, const char *tail, char *buf, size_t size)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++)
        strncat(buf, "../", size - strlen(buf) - 1);
    strncat(buf, tail, size - strlen(buf) - 1);
    return buf;
}

static int wait_child(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR) {}
    return st;
}

/* Run fn in a child process; the parent waits for it. */
static void in_child(void (*fn)(void *), void *arg, const char *what)
{
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    int st = wait_child(pid);
    if (WIFSIGNALED(st))
        printf("note %s: child killed by signal %d\n", what, WTERMSIG(st));
}

/* ------------------------------------------------------------- paths */

static void t_dotdot(void)
{
    char p[8192];
    if (chdir("/") < 0) {}
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0) {}
    cwd_check("getcwd after 64 chdir ..");
    try_read(rel_marker(), "marker relative to / after chdir .. x64");
    snprintf(p, sizeof p, "/../../../../../../..%s", MARKER);
    try_read(p, "/../../..+marker");
    try_write(p, "/../../..+marker for writing");
    if (chdir("/tmp") == 0) {
        try_read(ups(40, rel_marker(), p, sizeof p), "../ x40 from /tmp");
        try_write(p, "../ x40 from /tmp for writing");
    }
    int root = open("/", O_PATH | O_DIRECTORY);
    int fd = root;
    for (int i = 0; i < 64; i++) {
        int up = openat(fd, "..", O_PATH | O_DIRECTORY);
        if (up < 0)
            break;
        if (fd != root)
            close(fd);
        fd = up;
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat("/", &b) == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev))
        printf("note openat(..) x64 ends elsewhere than / (ino %lu vs %lu)\n",
               (unsigned long)a.st_ino, (unsigned long)b.st_ino);
    try_read_at(fd, rel_marker(), "openat(.. x64 of /, marker)");
    for (int flags = 0; flags < 2; flags++) {
        struct open_how how = {.flags = O_RDONLY,
                               .resolve = flags ? RESOLVE_IN_ROOT : RESOLVE_BENEATH};
        int r = syscall(SYS_openat2, root, ups(30, rel_marker(), p, sizeof p), &how, sizeof how);
        attempt();
        if (r >= 0) {
            judge_fd(r, flags ? "openat2 RESOLVE_IN_ROOT ../" : "openat2 RESOLVE_BENEATH ../");
            close(r);
        } else {
            printf("ok openat2 %s: %s\n", flags ? "IN_ROOT" : "BENEATH", en(errno));
        }
    }
    struct stat dd, d;
    if (stat("/..", &dd) == 0 && stat("/", &d) == 0 && dd.st_ino != d.st_ino)
        ESCAPE("/.. is not / (ino %lu vs %lu)", (unsigned long)dd.st_ino, (unsigned long)d.st_ino);
}

static void chroot_fchdir(void *unused)
{
    char p[8192];
    (void)unused;
    mkdir("/tmp/jail", 0755);
    mkdir("/tmp/jail/sub", 0755);
    int outside = open("/", O_RDONLY | O_DIRECTORY);
    long r = chroot("/tmp/jail");
    note("chroot /tmp/jail", r);
    note("fchdir to the fd of the old root", fchdir(outside));
    for (int i = 0; i < 100; i++)
        if (chdir("..") < 0) {}
    cwd_check("getcwd after fchdir + chdir .. x100");
    note("chroot .", chroot("."));
    try_read(MARKER, "marker after chroot-fchdir escape");
    try_read(rel_marker(), "marker (relative) after chroot-fchdir escape");
    try_write(MARKER, "marker for writing after chroot-fchdir escape");
    try_read_at(outside, ups(40, rel_marker(), p, sizeof p), "openat(old root fd, ../..marker)");
}

static void chroot_cwd_outside(void *unused)
{
    char p[8192];
    (void)unused;
    mkdir("/tmp/jail2", 0755);
    mkdir("/tmp/jail2/sub", 0755);
    if (chdir("/tmp/jail2") < 0) {}
    note("chroot sub while cwd is above it", chroot("/tmp/jail2/sub"));
    for (int i = 0; i < 100; i++)
        if (chdir("..") < 0) {}
    note("chroot .", chroot("."));
    try_read(MARKER, "marker after cwd-outside-chroot escape");
    try_read(ups(40, rel_marker(), p, sizeof p), "../ x40 after cwd-outside-chroot");
    try_write(MARKER, "marker for writing after cwd-outside-chroot");
    /* a chrooted child of a chrooted parent, and the parent's /proc root */
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/root", getppid());
    readlink_check(link, "readlink /proc/PPID/root");
}

static void t_chroot_fchdir(void)
{
    in_child(chroot_fchdir, NULL, "chroot-fchdir");
    in_child(chroot_cwd_outside, NULL, "chroot-cwd-outside");
}

static void proc_entry(const char *base)
{
    char p[8192], l[8192];
    const char *subs[] = {"root", "cwd"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", base, subs[i]);
        readlink_check(p, p);
        snprintf(l, sizeof l, "%s/%s%s", base, subs[i], MARKER);
        try_read(l, l);
        snprintf(l, sizeof l, "%s/%s/%s", base, subs[i], ups(40, rel_marker(), p, sizeof p));
        try_read(l, "PROC/root/../..marker");
        snprintf(l, sizeof l, "%s/%s%s", base, subs[i], ROOTFILE);
        try_read(l, "PROC/root+rootfile");
    }
    snprintf(p, sizeof p, "%s/exe", base);
    readlink_check(p, p);
    snprintf(p, sizeof p, "%s/fd", base);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(l, sizeof l, "%s/fd/%s", base, e->d_name);
        readlink_check(l, l);
        snprintf(l, sizeof l, "%s/fd/%s/%s", base, e->d_name, ups(40, rel_marker(), p, sizeof p));
        try_read(l, "PROC/fd/N/../..marker");
    }
    if (d)
        closedir(d);
    snprintf(p, sizeof p, "%s/mountinfo", base);
    FILE *f = fopen(p, "r");
    while (f && fgets(l, sizeof l, f))
        leak_check(l, "/proc/PID/mountinfo");
    if (f)
        fclose(f);
}

static void t_proc_root(void)
{
    char p[1024];
    int tmpfd = open("/tmp", O_RDONLY | O_DIRECTORY);   /* something in fd/ */
    void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, open("/proc/self/exe", O_RDONLY), 0);
    (void)m;
    (void)tmpfd;
    proc_entry("/proc/self");
    proc_entry("/proc/thread-self");
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        n++;
        snprintf(p, sizeof p, "/proc/%s", e->d_name);
        proc_entry(p);
        snprintf(p, sizeof p, "/proc/%s/task", e->d_name);
        DIR *t = opendir(p);
        struct dirent *te;
        while (t && (te = readdir(t))) {
            if (te->d_name[0] < '0' || te->d_name[0] > '9')
                continue;
            snprintf(p, sizeof p, "/proc/%s/task/%s", e->d_name, te->d_name);
            proc_entry(p);
        }
        if (t)
            closedir(t);
    }
    if (d)
        closedir(d);
    printf("note /proc lists %d processes\n", n);
    if (HOSTPID > 0) {
        snprintf(p, sizeof p, "/proc/%d", HOSTPID);
        proc_entry(p);
    }
}

/* Mapped files: /proc/PID/maps and map_files name the host object behind
 * every mapping (the program itself, an upper-layer file). */
static void t_proc_maps(void)
{
    char p[512], l[8192];
    int up = open("/tmp/mapped-upper", O_RDWR | O_CREAT, 0644);
    if (up >= 0 && write(up, "x", 1) < 0) {}
    void *m1 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, up, 0);
    int exe = open("/proc/self/exe", O_RDONLY);
    void *m2 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, exe, 0);
    (void)m1;
    (void)m2;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(l, sizeof l, f))
        leak_check(l, "/proc/self/maps");
    if (f)
        fclose(f);
    DIR *d = opendir("/proc/self/map_files");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/self/map_files/%s", e->d_name);
        readlink_check(p, p);
    }
    if (d)
        closedir(d);
}

static void t_proc_cwd(void)
{
    char p[8192], q[8192];
    if (chdir("/tmp") < 0) {}
    try_read(ups(40, rel_marker(), p, sizeof p), "../ from /tmp");
    snprintf(q, sizeof q, "/proc/self/cwd/%s", ups(40, rel_marker(), p, sizeof p));
    try_read(q, "/proc/self/cwd/../..marker");
    try_write(q, "/proc/self/cwd/../..marker for writing");
    /* a bind mount's host parent holds the marker (ESC_SHARED is arena/shared) */
    const char *shared = "/mnt/shared";
    if (chdir(shared) == 0) {
        cwd_check("getcwd in the bind");
        try_read("../marker", "../marker from the bind");
        try_read("/proc/self/cwd/../marker", "/proc/self/cwd/../marker from the bind");
        try_write("/proc/self/cwd/../marker", "/proc/self/cwd/../marker for writing");
        int fd = open(shared, O_RDONLY | O_DIRECTORY);
        try_read_at(fd, "../marker", "openat(bind fd, ../marker)");
        snprintf(q, sizeof q, "/proc/self/fd/%d/../marker", fd);
        try_read(q, "/proc/self/fd/BIND/../marker");
        snprintf(q, sizeof q, "/dev/fd/%d/../marker", fd);
        try_read(q, "/dev/fd/BIND/../marker");
        if (fchdir(fd) == 0 && chdir("..") == 0) {
            cwd_check("getcwd after fchdir(bind) + ..");
            try_read("marker", "marker after fchdir(bind) + ..");
        }
    } else {
        printf("note no bind at %s: %s\n", shared, en(errno));
    }
    if (chdir("/") < 0) {}
    cwd_check("getcwd /");
}

/* --------------------------------------------------------- processes */

static void ptrace_target(pid_t pid, const char *who)
{
    char w[128];
    if (pid <= 0)
        return;
    snprintf(w, sizeof w, "ptrace ATTACH %s (%d)", who, pid);
    long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    blocked(w, r);
    if (r == 0)
        ptrace(PTRACE_DETACH, pid, 0, 0);
    snprintf(w, sizeof w, "ptrace SEIZE %s", who);
    r = ptrace(PTRACE_SEIZE, pid, 0, 0);
    blocked(w, r);
    if (r == 0)
        ptrace(PTRACE_DETACH, pid, 0, 0);
    snprintf(w, sizeof w, "ptrace PEEKDATA %s", who);
    errno = 0;
    r = ptrace(PTRACE_PEEKDATA, pid, (void *)0x400000, 0);
    blocked(w, errno ? -1 : 0);
    snprintf(w, sizeof w, "ptrace INTERRUPT %s", who);
    blocked(w, ptrace(PTRACE_INTERRUPT, pid, 0, 0));
}

static void t_ptrace(void)
{
    ptrace_target(HOSTPID, "host process");
    if (getppid() > 1)
        ptrace_target(getppid(), "parent (the tracer when --pid-host)");
    if (getpid() != 1)
        ptrace_target(1, "pid 1");
}

static void traceme_child(void *unused)
{
    (void)unused;
    blocked("PTRACE_TRACEME", ptrace(PTRACE_TRACEME, 0, 0, 0));
    blocked("PTRACE_DETACH of itself", ptrace(PTRACE_DETACH, getpid(), 0, 0));
    blocked("PTRACE_DETACH of its parent", ptrace(PTRACE_DETACH, getppid(), 0, 0));
    /* still traced: paths still go through the guest VFS */
    try_read(MARKER, "marker after TRACEME/DETACH");
    try_write(MARKER, "marker for writing after TRACEME/DETACH");
    try_read(ROOTFILE, "root-only file after TRACEME/DETACH");
}

static void t_ptrace_self(void)
{
    in_child(traceme_child, NULL, "traceme");
    blocked("PTRACE_DETACH of itself (parent)", ptrace(PTRACE_DETACH, getpid(), 0, 0));
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return;
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(pipefd[1]);
        if (read(pipefd[0], &b, 1) < 0) {}
        try_read(MARKER, "child's marker after its parent's ptrace attempts");
        try_write(MARKER, "child's marker for writing after its parent's attempts");
        _exit(0);
    }
    close(pipefd[0]);
    ptrace_target(c, "own child");
    blocked("PTRACE_DETACH own child", ptrace(PTRACE_DETACH, c, 0, 0));
    if (write(pipefd[1], "g", 1) < 0) {}
    close(pipefd[1]);
    wait_child(c);
}

static void vm_target(pid_t pid, const char *who)
{
    char buf[64] = "GUEST-WROTE", w[128];
    struct iovec l = {buf, sizeof buf}, r = {(void *)0x400000, sizeof buf};
    if (pid <= 0)
        return;
    snprintf(w, sizeof w, "process_vm_readv %s (%d)", who, pid);
    blocked(w, process_vm_readv(pid, &l, 1, &r, 1, 0));
    snprintf(w, sizeof w, "process_vm_writev %s", who);
    blocked(w, process_vm_writev(pid, &l, 1, &r, 1, 0));
    snprintf(w, sizeof w, "/proc/%d/mem", pid);
    int fd = open(w, O_RDWR);
    blocked("open /proc/PID/mem O_RDWR", fd);
    if (fd >= 0)
        close(fd);
}

static void t_process_vm(void)
{
    vm_target(HOSTPID, "host process");
    if (getppid() > 1)
        vm_target(getppid(), "parent (the tracer when --pid-host)");
}

static void signal_target(pid_t pid, const char *who)
{
    char w[128];
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGKILL;
    si.si_code = SI_QUEUE;
    if (pid <= 1)
        return;
    snprintf(w, sizeof w, "kill(%s %d, SIGKILL)", who, pid);
    blocked(w, kill(pid, SIGKILL));
    snprintf(w, sizeof w, "tkill %s", who);
    blocked(w, syscall(SYS_tkill, pid, SIGKILL));
    snprintf(w, sizeof w, "tgkill %s", who);
    blocked(w, syscall(SYS_tgkill, pid, pid, SIGKILL));
    snprintf(w, sizeof w, "rt_sigqueueinfo %s", who);
    blocked(w, syscall(SYS_rt_sigqueueinfo, pid, SIGKILL, &si));
    snprintf(w, sizeof w, "kill(-%s, SIGKILL) (its group)", who);
    blocked(w, kill(-pid, SIGKILL));
}

static void t_kill(void)
{
    signal_target(HOSTPID, "host process");
    if (!PIDHOST) {
        /* every pid the guest can signal must be one of its own */
        int seen = 0, host = 0;
        for (pid_t p = 2; p < 4194304 && p < 40000; p++) {
            attempt();
            if (kill(p, 0) == 0 || errno == EPERM) {
                char path[64];
                struct stat st;
                seen++;
                snprintf(path, sizeof path, "/proc/%d", p);
                if (stat(path, &st) < 0)
                    host++;
            }
        }
        printf("note %d pids answer kill(0)\n", seen);
        if (host)
            ESCAPE("%d pids outside the guest's /proc answer kill(pid, 0)", host);
    }
}

static void t_kill_all(void)
{
    /* kill(-1) only where it cannot reach the host: pid 1 of a namespace. */
    if (getpid() != 1) {
        printf("note not pid 1: kill(-1) not attempted\n");
        return;
    }
    for (int i = 0; i < 3; i++)
        if (fork() == 0) {
            sleep(30);
            _exit(0);
        }
    pid_t c = fork();
    if (c == 0) {
        if (getppid() != 1)
            _exit(1);
        note("kill(-1, SIGTERM) from a child", kill(-1, SIGTERM));
        printf("note kill(-1, SIGKILL) from a child: next (Linux spares pid 1)\n");
        note("kill(-1, SIGKILL) from a child", kill(-1, SIGKILL));
        _exit(0);
    }
    wait_child(c);
    note("kill(-1, SIGKILL) from pid 1", kill(-1, SIGKILL));
    while (wait(NULL) > 0) {}
    if (HOSTPID > 0 && getpid() == 1)
        blocked("kill(host pid, 0)", kill(HOSTPID, 0));
}

/* ------------------------------------------------------ the tracer-hunt
 *
 * Find the tracer (umlpy) and stop or kill it: through /proc (every
 * /proc/PID/status it can read: the TracerPid of itself and of its
 * children, its parent, its ancestors up to one whose command line names
 * umlpy, NSpid entries), through pid guessing (kill(pid, 0) and pidfd_open
 * around its own pid, its parent's and the low pids), and by the tracer's
 * host pid, which the test writes on its stdin.  Each suspect gets SIGSTOP
 * (a call the guest kernel must answer is timed after it; the test
 * watches umlpy's state), then SIGKILL.  Signals go to suspects only:
 * with --pid-host other host processes of the same uid are not its to
 * hit (that grant is pinned by test_kill_host_processes). */

#define MAX_SUSPECTS 16
static pid_t suspects[MAX_SUSPECTS];
static int nsuspects;

static void suspect(pid_t pid, const char *why)
{
    if (pid <= 1 || pid == getpid())
        return;
    for (int i = 0; i < nsuspects; i++)
        if (suspects[i] == pid)
            return;
    if (nsuspects < MAX_SUSPECTS)
        suspects[nsuspects++] = pid;
    printf("note suspect %d: %s\n", pid, why);
}

/* A small file's text (NULs made spaces), "" when unreadable. */
static const char *slurp(const char *path, char *buf, size_t size)
{
    attempt();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    buf[0] = 0;
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = 0;
    return buf;
}

/* A /proc/PID/status field's text ("" when absent). */
static const char *field(const char *status, const char *key, char *out, size_t size)
{
    size_t k = strlen(key);
    out[0] = 0;
    for (const char *l = status; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, k) && l[k] == ':') {
            const char *v = l + k + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            if (n >= size)
                n = size - 1;
            memcpy(out, v, n);
            out[n] = 0;
            break;
        }
    return out;
}

static long field_num(const char *status, const char *key)
{
    char v[64];
    return *field(status, key, v, sizeof v) ? strtol(v, NULL, 10) : -1;
}

static int names_umlpy(const char *cmdline)
{
    return strstr(cmdline, "umlpy") != NULL;
}

#define MAX_SEEN 4096
static struct { pid_t pid, ppid, tracer; char umlpy, python; } seen[MAX_SEEN];
static int nseen;

static int seen_index(pid_t pid)
{
    for (int i = 0; i < nseen; i++)
        if (seen[i].pid == pid)
            return i;
    return -1;
}

static void hunt_proc(pid_t self, pid_t ppid, long own_tracer)
{
    char path[64], status[4096], cmd[4096], v[256];
    int readable = 0, multi = 0;
    DIR *d = opendir("/proc");
    attempt();
    struct dirent *e;
    while (d && (e = readdir(d))) {
        pid_t pid = atoi(e->d_name);
        if (pid <= 0 || nseen == MAX_SEEN)
            continue;
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        if (!*slurp(path, status, sizeof status))
            continue;
        readable++;
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        slurp(path, cmd, sizeof cmd);
        seen[nseen].pid = pid;
        seen[nseen].ppid = field_num(status, "PPid");
        seen[nseen].tracer = field_num(status, "TracerPid");
        seen[nseen].umlpy = names_umlpy(cmd);
        seen[nseen].python = strstr(cmd, "python") != NULL;
        nseen++;
        field(status, "NSpid", v, sizeof v);
        if (strchr(v, ' ') || strchr(v, '\t'))
            multi++;
        if (pid == own_tracer)
            printf("note /proc/%d is its TracerPid: %.120s\n", pid, cmd);
        if (pid == ppid)
            printf("note /proc/%d is its parent: %.120s\n", pid, cmd);
        if (seen[nseen - 1].umlpy)
            printf("note /proc/%d runs umlpy: %.120s\n", pid, cmd);
    }
    if (d)
        closedir(d);
    printf("note /proc: %d processes readable, %d with nested NSpid entries\n", readable, multi);
    if (own_tracer > 0 && seen_index(own_tracer) < 0)
        printf("note /proc/%ld (its TracerPid): not readable\n", own_tracer);
    if (ppid > 0 && seen_index(ppid) < 0)
        printf("note /proc/%d (its parent): not readable\n", ppid);
    /* the tracers of its own processes (itself and its children) */
    for (int i = 0; i < nseen; i++)
        if ((seen[i].pid == self || seen[i].ppid == self) && seen[i].tracer > 0) {
            snprintf(v, sizeof v, "TracerPid of its process %d", seen[i].pid);
            suspect(seen[i].tracer, v);
        }
    /* its ancestors, up to the first that runs umlpy */
    pid_t up = ppid;
    for (int steps = 0; up > 1 && steps < 16; steps++) {
        int i = seen_index(up);
        if (i < 0)
            break;
        if (seen[i].umlpy) {
            suspect(up, "an ancestor running umlpy");
            break;
        }
        up = seen[i].ppid;
    }
    /* what the suspects run: umlpy's helpers (its opener) are its children */
    for (int i = 0; i < nseen; i++)
        for (int j = 0; j < nsuspects; j++)
            if (seen[i].umlpy && seen[i].ppid == suspects[j]) {
                snprintf(v, sizeof v, "runs umlpy, a child of suspect %d", suspects[j]);
                suspect(seen[i].pid, v);
                break;
            }
    int umlpys = 0, pythons = 0;
    for (int i = 0; i < nseen; i++) {
        umlpys += seen[i].umlpy;
        pythons += seen[i].python;
    }
    printf("note /proc: %d command lines name umlpy, %d python\n", umlpys, pythons);
}

static void hunt_guess(pid_t self, pid_t ppid)
{
    pid_t centres[3] = {1, self, ppid};
    int tried = 0, answered = 0, pidfds = 0;
    for (int c = 0; c < 3; c++) {
        if (c == 2 && ppid <= 0)
            continue;
        for (pid_t p = centres[c] - 64; p <= centres[c] + 64; p++) {
            if (p <= 0 || p == self)
                continue;
            tried++;
            attempt();
            int alive = kill(p, 0) == 0 || errno == EPERM;
            attempt();
            int fd = syscall(SYS_pidfd_open, p, 0);
            if (fd >= 0) {
                pidfds++;
                close(fd);
            }
            if (!alive && fd < 0)
                continue;
            answered++;
            char path[64];
            struct stat st;
            snprintf(path, sizeof path, "/proc/%d", p);
            if (stat(path, &st) < 0 && !PIDHOST)
                ESCAPE("pid %d answers but is not in the guest's /proc", p);
            if (p == ppid)
                suspect(p, "its parent, answering kill(pid, 0)");
        }
    }
    printf("note pid guessing: %d pids tried, %d answered (%d pidfds)\n", tried, answered, pidfds);
}

/* The tracer's host pid, as the test wrote it on stdin (0: none). */
static pid_t told_tracer_pid(void)
{
    char buf[32] = "";
    struct timeval tv = {5, 0};
    fd_set r;
    FD_ZERO(&r);
    FD_SET(0, &r);
    if (select(1, &r, NULL, NULL, &tv) <= 0)
        return 0;
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return atoi(buf);
}

static void signal_suspect(pid_t pid, int sig, const char *name, const char *who)
{
    char w[160];
    snprintf(w, sizeof w, "kill(%s %d, %s)", who, pid, name);
    note(w, kill(pid, sig));
    snprintf(w, sizeof w, "tgkill(%s %d, %s)", who, pid, name);
    note(w, syscall(SYS_tgkill, pid, pid, sig));
    int fd = syscall(SYS_pidfd_open, pid, 0);
    snprintf(w, sizeof w, "pidfd_open(%s %d)", who, pid);
    note(w, fd);
    if (fd >= 0) {
        snprintf(w, sizeof w, "pidfd_send_signal(%s %d, %s)", who, pid, name);
        note(w, syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0));
        close(fd);
    }
    if (getpgid(pid) == pid) {
        snprintf(w, sizeof w, "kill(-%s %d, %s) (its group)", who, pid, name);
        note(w, kill(-pid, sig));
    }
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Print the count so far: a technique that may not reach DONE. */
static void report_attempts(const char *word);

static void t_kill_tracer(void)
{
    for (int i = 0; i < 3; i++)
        if (fork() == 0) {
            setsid();
            for (int j = 0; j < 50; j++) {
                usleep(100000);
                try_write(MARKER, "marker for writing after the tracer's death");
            }
            _exit(0);
        }
    pid_t self = getpid(), ppid = getppid(), told = told_tracer_pid();
    char status[4096], v[256];
    slurp("/proc/self/status", status, sizeof status);
    long own_tracer = field_num(status, "TracerPid");
    printf("note itself: pid %d, parent %d, TracerPid %ld, NSpid %s\n", self, ppid, own_tracer,
           field(status, "NSpid", v, sizeof v));
    printf("note the tracer's host pid (told): %d\n", told);
    if (own_tracer > 0)
        suspect(own_tracer, "its TracerPid");
    if (ppid > 1)
        suspect(ppid, "its parent");
    hunt_proc(self, ppid, own_tracer);
    hunt_guess(self, ppid);
    if (told > 1 && PIDHOST) {
        suspect(told, "the tracer's host pid");
    } else if (told > 1) {
        /* in a pid namespace the number names nothing, or a guest process */
        attempt();
        int alive = kill(told, 0) == 0 || errno == EPERM;
        if (alive && seen_index(told) < 0)
            ESCAPE("the tracer's host pid %d answers kill(pid, 0) in the pid namespace", told);
        else if (alive)
            printf("note the tracer's host pid %d is a guest process's here\n", told);
        else {
            printf("note the tracer's host pid names nothing here\n");
            blocked("kill(the tracer's host pid, SIGSTOP)", kill(told, SIGSTOP));
            blocked("kill(the tracer's host pid, SIGKILL)", kill(told, SIGKILL));
            blocked("pidfd_open(the tracer's host pid)", syscall(SYS_pidfd_open, told, 0));
        }
    }
    printf("note suspects: %d\n", nsuspects);
    blocked("pidfd_open(0)", syscall(SYS_pidfd_open, 0, 0));
    if (nsuspects) {
        for (int i = 0; i < nsuspects; i++)
            signal_suspect(suspects[i], SIGSTOP, "SIGSTOP", "suspect");
        /* a call the guest kernel answers: a stopped tracer holds it up
         * (the test watches umlpy's state, and sends SIGCONT) */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        try_read("/etc/hostname", "a guest kernel call after SIGSTOP");
        printf("note a guest kernel call after SIGSTOP took %ld ms\n", ms_since(&t0));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        try_read("/proc/self/status", "a /proc open after SIGSTOP");
        printf("note a /proc open after SIGSTOP took %ld ms\n", ms_since(&t0));
        report_attempts("HUNTED");
        for (int i = 0; i < nsuspects; i++)
            signal_suspect(suspects[i], SIGKILL, "SIGKILL", "suspect");
    } else {
        printf("note no tracer visible: nothing to stop or kill but by its host pid\n");
        report_attempts("HUNTED");
    }
    sleep(1);
    try_write(MARKER, "marker for writing after killing the tracer");
    try_read(ROOTFILE, "root-only host file after the hunt");
    try_write(ROOTFILE, "root-only host file for writing after the hunt");
}

static void t_pidfd(void)
{
    int fd;
    if (HOSTPID > 0) {
        fd = syscall(SYS_pidfd_open, HOSTPID, 0);
        blocked("pidfd_open(host process)", fd);
        if (fd >= 0) {
            for (int n = 0; n < 4; n++) {
                int got = syscall(SYS_pidfd_getfd, fd, n, 0);
                blocked("pidfd_getfd(host process)", got);
                if (got >= 0) {
                    char p[64];
                    snprintf(p, sizeof p, "/proc/self/fd/%d", got);
                    readlink_check(p, "stolen fd");
                }
            }
            blocked("pidfd_send_signal(host process, SIGKILL)",
                    syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0));
        }
    }
    if (getppid() > 1) {
        fd = syscall(SYS_pidfd_open, getppid(), 0);
        note("pidfd_open(parent)", fd);
        if (fd >= 0 && PIDHOST)
            for (int n = 0; n < 64; n++) {
                int got = syscall(SYS_pidfd_getfd, fd, n, 0);
                if (got >= 0) {
                    char p[64];
                    ESCAPE("pidfd_getfd took fd %d of the tracer", n);
                    snprintf(p, sizeof p, "/proc/self/fd/%d", got);
                    readlink_check(p, "tracer's fd");
                }
            }
    }
    /* inside: pid 1's fds are the guest's own */
    fd = syscall(SYS_pidfd_open, 1, 0);
    note("pidfd_open(1)", fd);
    if (fd >= 0 && getpid() != 1)
        for (int n = 0; n < 64; n++) {
            int got = syscall(SYS_pidfd_getfd, fd, n, 0);
            if (got >= 0) {
                char p[64];
                snprintf(p, sizeof p, "/proc/self/fd/%d", got);
                readlink_check(p, "pid 1's fd");
            }
        }
    for (pid_t p = 2; p < 40000 && !PIDHOST; p++) {
        int f = syscall(SYS_pidfd_open, p, 0);
        attempt();
        if (f >= 0) {
            char path[64];
            struct stat st;
            snprintf(path, sizeof path, "/proc/%d", p);
            if (stat(path, &st) < 0)
                ESCAPE("pidfd_open(%d): a pid outside the guest's /proc", p);
            close(f);
        }
    }
}

/* ---------------------------------------------------------- namespaces */

static void mount_family(const char *when)
{
    char w[160], path[PATH_MAX];
#define M(name, call) do { snprintf(w, sizeof w, "%s (%s)", name, when); blocked(w, call); } while (0)
    /* The guest's root may mount in its own mount table (the guest VFS's):
     * what counts is that nothing it reaches through its mounts is more
     * than it reached before, and that the host's table never changes
     * (the test compares it). */
#define N(name, call) do { snprintf(w, sizeof w, "%s (%s)", name, when); note(w, call); } while (0)
    N("mount tmpfs on /tmp", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    N("bind / on /mnt", mount("/", "/mnt", NULL, MS_BIND | MS_REC, NULL));
    snprintf(path, sizeof path, "/mnt%s", MARKER);
    snprintf(w, sizeof w, "marker through a bind of / (%s)", when);
    try_write(path, w);
    snprintf(path, sizeof path, "/mnt%s", ROOTFILE);
    snprintf(w, sizeof w, "root-only file through a bind of / (%s)", when);
    try_read(path, w);
    N("remount / read-write", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
    snprintf(w, sizeof w, "marker after a remount of / (%s)", when);
    try_write(MARKER, w);
    N("remount the arena's read-only view read-write",
      mount(NULL, ARENA, NULL, MS_REMOUNT | MS_BIND, NULL));
    snprintf(w, sizeof w, "marker after a remount of its view (%s)", when);
    try_write(MARKER, w);
    N("mount proc", mount("proc", "/mnt", "proc", 0, NULL));
#undef N
    M("umount2 /proc", umount2("/proc", MNT_DETACH));
    M("umount2 /", umount2("/", MNT_DETACH));
    M("pivot_root", syscall(SYS_pivot_root, ".", "."));
    M("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
    M("fsopen tmpfs", syscall(SYS_fsopen, "tmpfs", 0));
    M("fspick /", syscall(SYS_fspick, AT_FDCWD, "/", 0));
    M("move_mount", syscall(SYS_move_mount, AT_FDCWD, "/proc", AT_FDCWD, "/mnt", 0));
    M("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, NULL, 0));
#undef M
}

static void unshared_mount(void *unused)
{
    (void)unused;
    note("unshare(CLONE_NEWUSER|CLONE_NEWNS)", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    mount_family("after unshare");
    note("chroot / after unshare", chroot("/"));
    try_read(MARKER, "marker after unshare");
    try_write(MARKER, "marker for writing after unshare");
    try_read(ROOTFILE, "root-only file after unshare");
}

static void t_mount(void)
{
    mount_family("as the guest");
    in_child(unshared_mount, NULL, "unshare+mount");
}

static void unshare_one(void *arg)
{
    long flag = (long)arg;
    char w[64];
    snprintf(w, sizeof w, "unshare(%#lx)", flag);
    note(w, unshare(flag));
    if (flag & CLONE_NEWPID) {
        pid_t c = fork();
        if (c == 0) {
            printf("note pid in the new pid namespace: %d\n", getpid());
            try_read(MARKER, "marker from a nested pid namespace");
            try_write(MARKER, "marker for writing from a nested pid namespace");
            _exit(0);
        }
        if (c > 0)
            wait_child(c);
    }
    if (flag & CLONE_NEWUSER) {
        int fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd >= 0) {
            note("write uid_map 0 0 1", write(fd, "0 0 1\n", 6));
            close(fd);
        }
        note("setuid(0) in the nested user namespace", setuid(0));
        blocked("sethostname", sethostname("escaped", 7));
        mount_family("nested user namespace");
    }
    try_read(MARKER, "marker after unshare");
    try_write(MARKER, "marker for writing after unshare");
    try_read(ROOTFILE, "root-only file after unshare");
}

static void t_unshare(void)
{
    long flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC,
                    CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME, CLONE_FS, CLONE_FILES,
                    CLONE_SYSVSEM, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        in_child(unshare_one, (void *)flags[i], "unshare");
}

static void ns_compare(const char *when)
{
    const char *kinds[] = {"mnt", "net", "pid", "user"};
    for (int i = 0; i < 4; i++) {
        char p[64], link[128], var[64];
        snprintf(p, sizeof p, "/proc/self/ns/%s", kinds[i]);
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0)
            continue;
        link[n] = 0;
        snprintf(var, sizeof var, "ESC_HOSTNS_%s", kinds[i]);
        if (*env(var) && !strcmp(link, env(var)))
            ESCAPE("%s: the guest is in the host's %s namespace (%s)", when, kinds[i], link);
    }
}

static void setns_child(void *unused)
{
    const char *kinds[] = {"mnt", "pid", "net", "user", "ipc", "uts", "cgroup", "time",
                           "pid_for_children", "time_for_children"};
    char p[128], w[160];
    (void)unused;
    ns_compare("before setns");
    const char *owners[] = {"/proc/1", "/proc/self", "/proc/thread-self", NULL, NULL};
    char hostp[64];
    if (HOSTPID > 0) {
        snprintf(hostp, sizeof hostp, "/proc/%d", HOSTPID);
        owners[3] = hostp;
    }
    for (int o = 0; owners[o]; o++)
        for (int k = 0; k < 10; k++) {
            snprintf(p, sizeof p, "%s/ns/%s", owners[o], kinds[k]);
            int fd = open(p, O_RDONLY);
            if (fd < 0) {
                printf("note open %s: %s\n", p, en(errno));
                continue;
            }
            snprintf(w, sizeof w, "setns(%s)", p);
            note(w, setns(fd, 0));
            close(fd);
        }
    int pfd = syscall(SYS_pidfd_open, 1, 0);
    if (pfd >= 0)
        note("setns(pidfd 1, all)", setns(pfd, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWCGROUP));
    if (HOSTPID > 0) {
        pfd = syscall(SYS_pidfd_open, HOSTPID, 0);
        if (PIDHOST)
            note("pidfd_open(host process) for setns", pfd);
        else
            blocked("pidfd_open(host process) for setns", pfd);
        if (pfd >= 0)
            blocked("setns(host pidfd, mnt|net)", setns(pfd, CLONE_NEWNS | CLONE_NEWNET));
    }
    ns_compare("after setns");
    try_read(MARKER, "marker after setns");
    try_write(MARKER, "marker for writing after setns");
    try_read(ROOTFILE, "root-only file after setns");
}

static void t_setns(void)
{
    in_child(setns_child, NULL, "setns");
}

/* ---------------------------------------------------- kernel interfaces */

static void t_bpf(void)
{
    union bpf_attr a;
    struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    blocked("bpf MAP_CREATE", syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (unsigned long)prog;
    a.insn_cnt = 2;
    a.license = (unsigned long)"GPL";
    blocked("bpf PROG_LOAD", syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a));
    memset(&a, 0, sizeof a);
    a.pathname = (unsigned long)"/sys/fs/bpf/umlpy";
    blocked("bpf OBJ_GET", syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof a));
    blocked("bpf x32", rawsys(SYS_bpf | X32, BPF_PROG_LOAD, (long)&a, sizeof a, 0, 0, 0) < 0 ? -1 : 0);
}

static void t_perf(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    blocked("perf_event_open system-wide (pid -1, cpu 0)",
            syscall(SYS_perf_event_open, &a, -1, 0, -1, 0));
    if (HOSTPID > 0)
        blocked("perf_event_open on the host process",
                syscall(SYS_perf_event_open, &a, HOSTPID, -1, -1, 0));
    if (getppid() > 1)
        blocked("perf_event_open on the parent (tracer when --pid-host)",
                syscall(SYS_perf_event_open, &a, getppid(), -1, -1, 0));
    a.type = PERF_TYPE_TRACEPOINT;
    a.config = 1;
    blocked("perf_event_open tracepoint", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = PERF_COUNT_HW_INSTRUCTIONS;
    a.exclude_kernel = 0;
    blocked("perf_event_open counting the kernel", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    note("perf_event_open own user space", syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
}

static void t_userfaultfd(void)
{
    note("userfaultfd(0) (kernel faults)", syscall(SYS_userfaultfd, O_CLOEXEC));
    int dev = open("/dev/userfaultfd", O_RDWR);
    note("open /dev/userfaultfd", dev);
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    note("userfaultfd(USER_MODE_ONLY)", uffd);
    if (uffd < 0)
        return;
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(uffd, UFFDIO_API, &api) < 0)
        return;
    char *region = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg = {.range = {(unsigned long)region, 2 * 4096},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        printf("note UFFDIO_REGISTER: %s\n", en(errno));
        return;
    }
    /* The guest kernel reads paths and addresses from guest memory: a page
     * that faults into userfaultfd must not stall it. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    note("open(path in a userfaultfd page)", open(region, O_RDONLY));
    note("stat(path in a userfaultfd page)", ({ struct stat st; stat(region + 4096, &st); }));
    {
        char *argv[] = {"x", NULL};
        note("execve(path in a userfaultfd page)", execve(region, argv, NULL));
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    note("connect(address in a userfaultfd page)",
         connect(s, (struct sockaddr *)region, sizeof(struct sockaddr_un)));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (dt > 5)
        ESCAPE("userfaultfd stalled the guest kernel for %.1f s", dt);
    else
        printf("note userfaultfd attempts took %.3f s\n", dt);
}

static void t_keyctl(void)
{
    const char *desc = env("ESC_KEYDESC"), *secret = env("ESC_KEYSECRET");
    char buf[4096];
    long ids[] = {KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING,
                  KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_THREAD_KEYRING};
    const char *names[] = {"@s", "@u", "@us", "@p", "@t"};
    for (int i = 0; i < 5; i++) {
        long n = syscall(SYS_keyctl, KEYCTL_READ, ids[i], buf, sizeof buf);
        char w[64];
        snprintf(w, sizeof w, "keyctl READ %s", names[i]);
        note(w, n);
        for (long k = 0; n > 0 && k < n / 4 && k < (long)(sizeof buf / 4); k++) {
            int32_t key = ((int32_t *)buf)[k];
            char d[512] = "", v[512] = "";
            long m = syscall(SYS_keyctl, KEYCTL_DESCRIBE, key, d, sizeof d - 1);
            long r = syscall(SYS_keyctl, KEYCTL_READ, key, v, sizeof v - 1);
            printf("note key %d in %s: %s\n", key, names[i], m > 0 ? d : en(errno));
            if (r > 0 && *secret && memmem(v, r, secret, strlen(secret)))
                ESCAPE("keyctl READ of host key %d (%s) in %s gave the host's secret", key, d, names[i]);
        }
    }
    long key = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", desc, 0);
    blocked("keyctl SEARCH @s for the host's key", key);
    if (key < 0)
        key = syscall(SYS_request_key, "user", desc, NULL, 0);
    if (key >= 0) {
        char v[512];
        long r = syscall(SYS_keyctl, KEYCTL_READ, key, v, sizeof v - 1);
        if (r > 0 && memmem(v, r, secret, strlen(secret)))
            ESCAPE("keyctl READ of the host's key gave its secret");
        blocked("keyctl UPDATE of the host's key",
                syscall(SYS_keyctl, KEYCTL_UPDATE, key, "GUEST-WROTE", 11));
        blocked("keyctl SETPERM of the host's key",
                syscall(SYS_keyctl, KEYCTL_SETPERM, key, 0x3f3f3f3f));
    }
    FILE *f = fopen("/proc/keys", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (*desc && strstr(line, desc))
            ESCAPE("/proc/keys lists the host's key: %s", line);
    if (f)
        fclose(f);
}

/* -------------------------------------------------------- scratch memory */

static unsigned long scratch_lo, scratch_hi;

static void find_scratch(void)
{
    /* make sure it is mapped: a statx on a pipe's fd is run with its empty
     * path from scratch memory (opens and fstat no longer use it: the
     * guest kernel makes them itself) */
    int p[2];
    if (pipe(p) == 0) {
        struct statx stx;
        statx(p[0], "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx);
        close(p[0]);
        close(p[1]);
    }
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    while (m && fgets(line, sizeof line, m)) {
        unsigned long a, b;
        char perm[8];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perm, &n) >= 3 &&
            b - a == 4UL << 20 && !strcmp(perm, "r--p") && (line[n] == '\n' || !line[n])) {
            scratch_lo = a;
            scratch_hi = b;
        }
    }
    if (m)
        fclose(m);
}

static const char PWN[] = "PWNED-BY-GUEST";

static void scratch_check(const char *when)
{
    if (memmem((void *)scratch_lo, scratch_hi - scratch_lo, PWN, sizeof PWN - 1))
        ESCAPE("the guest wrote into the scratch memory (%s)", when);
}

static void scratch_child(void *unused)
{
    (void)unused;
    char buf[32];
    strcpy(buf, PWN);
    struct iovec l = {buf, sizeof PWN}, r = {(void *)scratch_lo, sizeof PWN};
    blocked("process_vm_writev into the parent's scratch", process_vm_writev(getppid(), &l, 1, &r, 1, 0));
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/mem", getppid());
    int fd = open(p, O_RDWR);
    blocked("open /proc/PPID/mem O_RDWR", fd);
    if (fd >= 0)
        blocked("pwrite /proc/PPID/mem over scratch", pwrite(fd, PWN, sizeof PWN, scratch_lo));
}

static void t_scratch(void)
{
    find_scratch();
    if (!scratch_lo) {
        ESCAPE("no 4 MiB read-only scratch mapping found");
        return;
    }
    void *lo = (void *)scratch_lo;
    size_t len = scratch_hi - scratch_lo;
    printf("note scratch at %lx-%lx\n", scratch_lo, scratch_hi);
    blocked("mprotect RW", mprotect(lo, 4096, PROT_READ | PROT_WRITE));
    blocked("mprotect RW whole", mprotect(lo, len, PROT_READ | PROT_WRITE));
    blocked("pkey_mprotect RW", syscall(SYS_pkey_mprotect, lo, 4096, PROT_READ | PROT_WRITE, -1));
    blocked("munmap", munmap(lo, 4096));
    blocked("munmap last page", munmap((char *)lo + len - 4096, 4096));
    void *p = mmap(lo, 4096, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    blocked("mmap MAP_FIXED over it", p == MAP_FAILED ? -1 : 0);
    p = mremap(lo, 4096, 8192, 0);
    blocked("mremap grow", p == MAP_FAILED ? -1 : 0);
    char *other = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(other, PWN);
    p = mremap(other, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, lo);
    blocked("mremap another mapping onto it", p == MAP_FAILED ? -1 : 0);
    int advs[] = {MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_DONTFORK, MADV_WIPEONFORK,
                  MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_WRITE, MADV_GUARD_INSTALL, 0};
    for (int i = 0; advs[i]; i++) {
        char w[64];
        snprintf(w, sizeof w, "madvise(%d)", advs[i]);
        long r = madvise(lo, 4096, advs[i]);
        if (advs[i] == MADV_COLD || advs[i] == MADV_PAGEOUT)
            note(w, r);           /* reclaim hints keep the content */
        else
            blocked(w, r);
    }
    int shm = shmget(IPC_PRIVATE, 4096, 0600);
    if (shm >= 0) {
        blocked("shmat SHM_REMAP over it", shmat(shm, lo, SHM_REMAP) == (void *)-1 ? -1 : 0);
        shmctl(shm, IPC_RMID, NULL);
    }
    char buf[32];
    strcpy(buf, PWN);
    struct iovec l = {buf, sizeof PWN}, r = {lo, sizeof PWN};
    blocked("process_vm_writev on itself", process_vm_writev(getpid(), &l, 1, &r, 1, 0));
    const char *mems[] = {"/proc/self/mem", "/proc/thread-self/mem", NULL, NULL};
    char m3[64];
    snprintf(m3, sizeof m3, "/proc/%d/mem", getpid());
    mems[2] = m3;
    for (int i = 0; mems[i]; i++) {
        int fd = open(mems[i], O_RDWR);
        char w[96];
        snprintf(w, sizeof w, "open %s O_RDWR", mems[i]);
        blocked(w, fd);
        if (fd >= 0) {
            blocked("pwrite scratch through /proc/self/mem", pwrite(fd, PWN, sizeof PWN, scratch_lo));
            close(fd);
        }
    }
    int pfd = syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd >= 0) {
        struct iovec v = {lo, 4096};
        blocked("process_madvise DONTNEED", syscall(SYS_process_madvise, pfd, &v, 1, MADV_DONTNEED, 0));
    }
    in_child(scratch_child, NULL, "scratch child");
    /* the guest kernel still works, and the guest's data is nowhere in it */
    int fd = open("/etc/hostname", O_RDONLY);
    note("open after the attempts", fd);
    scratch_check("after the attempts");
}

/* userfaultfd: fill a never-touched page of the scratch mapping with the
 * guest's own data (mseal does not stop UFFDIO_COPY into a missing page). */
static void t_scratch_uffd(void)
{
    find_scratch();
    if (!scratch_lo)
        return;
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    note("userfaultfd", uffd);
    if (uffd < 0)
        return;
    struct uffdio_api api = {.api = UFFD_API};
    ioctl(uffd, UFFDIO_API, &api);
    unsigned long last = scratch_hi - 4096;
    struct uffdio_register reg = {.range = {last, 4096}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    note("UFFDIO_REGISTER on scratch", ioctl(uffd, UFFDIO_REGISTER, &reg));
    char *src = aligned_alloc(4096, 4096);
    memset(src, 0, 4096);
    strcpy(src, PWN);
    struct uffdio_copy copy = {.dst = last, .src = (unsigned long)src, .len = 4096};
    blocked("UFFDIO_COPY into scratch", ioctl(uffd, UFFDIO_COPY, &copy));
    scratch_check("UFFDIO_COPY");
}

/* The race the scratch memory is there to prevent.  The guest kernel writes
 * a rewritten call's arguments into the thread's slot through /proc/PID/mem;
 * a write that stops at a page the guest registered with userfaultfd (and
 * left missing) comes back short.  If a short write is taken for a whole one,
 * the call runs with the rest of its arguments missing, and a guest thread
 * can fill that page (UFFDIO_COPY) before the host reads it.
 *
 * symlink(TARGET, "/tmp/lnkN"): the slot holds TARGET then the host path of
 * the link; a 4094-byte target puts that path's first byte ("/") last on the
 * slot's first page.  The attacker writes the rest: the arena's path. */
static unsigned long race_slot_lo;
static volatile long race_cur = -1;
static volatile int race_delay_ns, race_uffd = -1;
static char race_target[4096];
static int race_hold[2];

static void spin_ns(long ns)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ns);
}

static void *race_filler(void *unused)
{
    (void)unused;
    char *src = aligned_alloc(4096, 4096);
    memset(src, 0, 4096);
    snprintf(src, 4096, "%s/evil-link", ARENA + 1);
    for (;;) {
        long s;
        while ((s = race_cur) < 0) {}
        volatile char *slot = (char *)(race_slot_lo + (unsigned long)s * 65536);
        while (slot[4095] != '/' && race_cur == s) {}
        if (race_cur != s)
            continue;
        spin_ns(race_delay_ns);
        struct uffdio_copy c = {.dst = (unsigned long)slot + 4096, .src = (unsigned long)src, .len = 4096};
        ioctl(race_uffd, UFFDIO_COPY, &c);
        race_cur = -1;
    }
    return NULL;
}

static void *race_victim(void *arg)
{
    char name[64];
    snprintf(name, sizeof name, "/tmp/lnk%ld", (long)arg);
    long r = symlink(race_target, name);
    printf("note attempt %ld (delay %d ns): symlink %s\n", (long)arg, race_delay_ns,
           r < 0 ? en(errno) : "ok");
    char b;
    if (read(race_hold[0], &b, 1) < 0) {}      /* keep the slot */
    return NULL;
}

static void t_scratch_race(void)
{
    char dest[4096];
    snprintf(dest, sizeof dest, "%s/evil-link", ARENA);
    memset(race_target, 'A', 4094);
    if (pipe(race_hold) < 0)
        return;
    find_scratch();
    if (!scratch_lo)
        return;
    race_slot_lo = scratch_lo;
    race_uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    note("userfaultfd", race_uffd);
    if (race_uffd < 0)
        return;
    struct uffdio_api api = {.api = UFFD_API};
    ioctl(race_uffd, UFFDIO_API, &api);
    struct uffdio_register reg = {.range = {scratch_lo, scratch_hi - scratch_lo},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    note("UFFDIO_REGISTER on the whole scratch mapping", ioctl(race_uffd, UFFDIO_REGISTER, &reg));
    /* the first page of every free slot present, the second missing */
    char *zero = aligned_alloc(4096, 4096);
    memset(zero, 0, 4096);
    for (int s = 1; s < 64; s++) {
        struct uffdio_copy c = {.dst = scratch_lo + s * 65536UL, .src = (unsigned long)zero, .len = 4096};
        ioctl(race_uffd, UFFDIO_COPY, &c);
    }
    pthread_t filler;
    pthread_create(&filler, NULL, race_filler, NULL);
    for (long i = 1; i < 60; i++) {
        struct stat st;
        race_delay_ns = (int)(i % 12) * 2000;
        race_cur = i;          /* slots are handed out in order; earlier threads keep theirs */
        pthread_t t;
        pthread_create(&t, NULL, race_victim, (void *)i);
        for (int w = 0; w < 200 && race_cur == i; w++)
            usleep(100);
        usleep(3000);
        race_cur = -1;
        if (fstatat(AT_FDCWD, dest, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            ESCAPE("a symlink appeared on the host at %s (attempt %ld)", dest, i);
            break;
        }
    }
}

/* No room for the scratch mapping (run first, before any call the guest
 * kernel rewrites): the guest kernel must fail the call, not run it as the
 * guest made it. */
static void scratch_room_gone(const char *how)
{
    char w[160];
    snprintf(w, sizeof w, "marker for writing with %s", how);
    try_write(MARKER, w);
    snprintf(w, sizeof w, "root-only file with %s", how);
    try_read(ROOTFILE, w);
    snprintf(w, sizeof w, "marker with %s", how);
    try_read(MARKER, w);
    char d[4096];
    snprintf(d, sizeof d, "%s/guest-dir", ARENA);
    snprintf(w, sizeof w, "mkdir in the arena with %s", how);
    long r = mkdir(d, 0777);
    if (IMAGE)
        blocked(w, r);
    else
        note(w, r);
}

static void t_scratch_exhaust(void)
{
    long n = 0;
    for (unsigned long sz = 1UL << 46; sz >= 4096; sz >>= 1)
        while (mmap(NULL, sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) != MAP_FAILED)
            n++;
    printf("note address space filled with %ld mappings\n", n);
    scratch_room_gone("a full address space");
}

static void t_scratch_rlimit(void)
{
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = 1 << 20;           /* less than the program already has */
    note("setrlimit(RLIMIT_AS, 1 MiB)", setrlimit(RLIMIT_AS, &r));
    scratch_room_gone("RLIMIT_AS below the scratch size");
}

/* ------------------------------------------------------------ fd guessing */

static void judge_dirfd(int fd, const char *what)
{
    char p[8192], w[256];
    int cur = dup(fd);
    for (int i = 0; i < 64 && cur >= 0; i++) {
        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY);
        if (up < 0)
            break;
        close(cur);
        cur = up;
    }
    if (cur >= 0) {
        snprintf(w, sizeof w, "%s: openat(.. x64, marker)", what);
        try_read_at(cur, rel_marker(), w);
        snprintf(w, sizeof w, "%s: openat(.. x64, rootfile)", what);
        try_read_at(cur, ROOTFILE + 1, w);
        snprintf(p, sizeof p, "/proc/self/fd/%d", cur);
        readlink_check(p, "readlink of the .. x64 fd");
        close(cur);
    }
    snprintf(w, sizeof w, "%s: openat(../..marker)", what);
    try_read_at(fd, ups(40, rel_marker(), p, sizeof p), w);
    snprintf(w, sizeof w, "%s: write ../..marker", what);
    try_write_at(fd, p, w);
    int saved = open(".", O_RDONLY | O_DIRECTORY);
    if (fchdir(fd) == 0) {
        cwd_check("getcwd after fchdir");
        for (int i = 0; i < 64; i++)
            if (chdir("..") < 0) {}
        cwd_check("getcwd after fchdir + .. x64");
        snprintf(w, sizeof w, "%s: fchdir, .. x64, marker", what);
        try_read(rel_marker(), w);
    }
    if (saved >= 0) {
        if (fchdir(saved) < 0) {}
        close(saved);
    }
}

static void t_fd_guess(void)
{
    char p[64], w[128];
    for (int fd = 3; fd <= 1024; fd++)
        if (attempt(), fcntl(fd, F_GETFD) >= 0) {
            char link[4096] = "";
            snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(p, link, sizeof link - 1);
            if (n > 0)
                link[n] = 0;
            ESCAPE("fd %d is open in a fresh guest: %s", fd, link);
        }
    int sv[2];
    int fds[] = {
        open("/", O_RDONLY | O_DIRECTORY), open("/tmp", O_RDONLY | O_DIRECTORY),
        open("/etc", O_RDONLY | O_DIRECTORY), open("/proc", O_RDONLY | O_DIRECTORY),
        open("/dev", O_RDONLY | O_DIRECTORY), open("/", O_PATH),
        open("/etc/hostname", O_RDONLY), open("/tmp/fdguess", O_RDWR | O_CREAT, 0644),
        open("/proc/self", O_RDONLY | O_DIRECTORY), open("/proc/self/exe", O_RDONLY),
        socket(AF_UNIX, SOCK_STREAM, 0), socket(AF_INET, SOCK_DGRAM, 0),
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 ? sv[0] : -1,
        memfd_create("x", 0), eventfd(0, 0),
    };
    int nfds = sizeof fds / sizeof fds[0];
    if (fds[0] >= 0)
        dup2(fds[0], 1000);
    if (fds[1] >= 0)
        dup2(fds[1], 1024);
    (void)nfds;
    for (int fd = 3; fd <= 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            continue;
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        readlink_check(p, "readlink /proc/self/fd/N");
        snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
        FILE *f = fopen(p, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f))
            leak_check(line, "/proc/self/fdinfo/N");
        if (f)
            fclose(f);
        if (S_ISDIR(st.st_mode)) {
            snprintf(w, sizeof w, "fd %d", fd);
            judge_dirfd(fd, w);
        }
    }
    printf("note %d fds examined\n", nfds);
}

/* ------------------------------------------------------------- seccomp */

static struct sock_fprog allow_all(void)
{
    static struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog p = {1, f};
    return p;
}

static void after_filter(const char *what)
{
    char w[160];
    snprintf(w, sizeof w, "marker after %s", what);
    try_read(MARKER, w);
    snprintf(w, sizeof w, "marker for writing after %s", what);
    try_write(MARKER, w);
    snprintf(w, sizeof w, "root-only file after %s", what);
    try_read(ROOTFILE, w);
    snprintf(w, sizeof w, "mkdir in the arena after %s", what);
    char d[4096];
    snprintf(d, sizeof d, "%s/guest-dir", ARENA);
    long r = mkdir(d, 0777);
    if (IMAGE)
        blocked(w, r);
    else
        note(w, r);
    /* the guest VFS's own table: the host's must not change (compared) */
    note("mount after a filter of its own", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
}

static void filt_allow(void *unused)
{
    (void)unused;
    struct sock_fprog p = allow_all();
    note("seccomp(SET_MODE_FILTER, allow all)", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p));
    after_filter("an allow-all filter");
}

static void filt_prctl(void *unused)
{
    (void)unused;
    struct sock_fprog p = allow_all();
    note("prctl(PR_SET_SECCOMP, allow all)", prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0));
    after_filter("prctl(PR_SET_SECCOMP)");
}

static void filt_trace(void *unused)
{
    (void)unused;
    static struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | 0xffff)};
    struct sock_fprog p = {1, f};
    note("seccomp(RET_TRACE|0xffff for all)", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p));
    after_filter("a RET_TRACE filter");
}

static void *filtered_thread(void *unused)
{
    (void)unused;
    after_filter("a new thread (fresh scratch slot)");
    return NULL;
}

/* Fail the calls the guest kernel injects or rewrites into. */
static void filt_errno(void *arg)
{
    long action = (long)arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 462 /* mseal */, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_chdir, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mkdirat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, (unsigned)action),
    };
    struct sock_fprog p = {sizeof f / sizeof f[0], f};
    char w[96];
    signal(SIGSYS, SIG_IGN);
    snprintf(w, sizeof w, "seccomp(%#lx for the injected calls)", action);
    note(w, syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p));
    after_filter(w);
    pthread_t t;
    if (pthread_create(&t, NULL, filtered_thread, NULL) == 0)
        pthread_join(t, NULL);
}

static void t_seccomp_filter(void)
{
    blocked("prctl(PR_SET_NO_NEW_PRIVS, 0)", prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0));
    blocked("seccomp(SET_MODE_FILTER) with a bad program",
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, NULL));
    in_child(filt_allow, NULL, "allow-all filter");
    in_child(filt_prctl, NULL, "prctl filter");
    in_child(filt_trace, NULL, "trace filter");
    in_child(filt_errno, (void *)(long)(SECCOMP_RET_ERRNO | EPERM), "errno filter");
    in_child(filt_errno, (void *)(long)SECCOMP_RET_TRAP, "trap filter");
    in_child(filt_errno, (void *)(long)SECCOMP_RET_KILL_PROCESS, "kill filter");
    int fd = open("/etc/hostname", O_RDONLY);
    note("the sandbox still answers", fd);
}

/* SECCOMP_RET_USER_NOTIF outranks SECCOMP_RET_TRACE: a guest filter could
 * take the calls the sandbox stops, and let the host run them as they are. */
static volatile int notif_fd = -1;

static void *notif_supervisor(void *unused)
{
    (void)unused;
    while (notif_fd < 0)
        usleep(1000);
    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(notif_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
            return NULL;
        struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        ioctl(notif_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

static void t_seccomp_notif(void)
{
    pthread_t t;
    pthread_create(&t, NULL, notif_supervisor, NULL);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mkdir, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog p = {sizeof f / sizeof f[0], f};
    /* the supervisor's own ioctl must not be notified: it runs in a thread
     * created before the filter (filters are per thread without TSYNC) */
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &p);
    blocked("seccomp(NEW_LISTENER) with USER_NOTIF", fd);
    if (fd < 0)
        return;
    notif_fd = fd;
    after_filter("a USER_NOTIF filter answered with CONTINUE");
    usleep(10000);
}

/* ----------------------------------------------------- other syscall ABIs */

static void t_x32(void)
{
    char w[96];
    struct { const char *name; unsigned long nr; long a, b, c; } calls[] = {
        {"open", 2, (long)MARKER, O_WRONLY | O_TRUNC, 0},
        {"openat", 257, AT_FDCWD, (long)MARKER, O_WRONLY | O_TRUNC},
        {"creat", 85, (long)MARKER, 0644, 0},
        {"truncate", 76, (long)MARKER, 0, 0},
        {"chmod", 90, (long)MARKER, 0777, 0},
        {"unlink", 87, (long)MARKER, 0, 0},
        {"mkdir", 83, (long)"/tmp/x32dir", 0755, 0},
        {"mount", 165, (long)"tmpfs", (long)"/tmp", (long)"tmpfs"},
        {"chroot", 161, (long)"/tmp", 0, 0},
        {"kill", 62, HOSTPID, SIGKILL, 0},
        {"ptrace (x32 521)", 521, PTRACE_ATTACH, HOSTPID, 0},
        {"execve (x32 520)", 520, (long)"/bin/true", 0, 0},
        {"clone3", 435, 0, 0, 0},
        {"io_uring_setup", 425, 8, 0, 0},
        {"file_setattr", 469, AT_FDCWD, (long)MARKER, 0},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        long r = rawsys(calls[i].nr | X32, calls[i].a, calls[i].b, calls[i].c, 0, 0, 0);
        attempt();
        snprintf(w, sizeof w, "x32 %s", calls[i].name);
        if (r == -ENOSYS)
            printf("ok %s: ENOSYS\n", w);
        else if (r >= 0)
            ESCAPE("%s: succeeded (%ld)", w, r);
        else
            ESCAPE("%s: reached the host kernel (%s)", w, en(-r));
    }
}

/* int $0x80 from 64-bit code and a far call into 32-bit code (the GDT's
 * compat code segment, or one of its own made with modify_ldt). */
extern long compat_int80(long nr, long a, long b, long c, long sel, long stack);
__asm__(
    ".text\n"
    ".globl compat_int80\n"
    "compat_int80:\n"
    "  push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    "  mov %rsp, compat_saved_rsp(%rip)\n"
    "  mov %r9, %rsp\n"
    "  mov %rdi, %rax\n"
    "  mov %rsi, %rbx\n"
    "  mov %rcx, %r10\n"
    "  mov %rdx, %rcx\n"
    "  mov %r10, %rdx\n"
    "  push %r8\n"
    "  lea 1f(%rip), %r11\n"
    "  push %r11\n"
    "  lretq\n"
    ".code32\n"
    "1:\n"
    "  int $0x80\n"
    "  pushl $0x33\n"
    "  pushl $2f\n"
    "  lret\n"
    ".code64\n"
    "2:\n"
    "  mov compat_saved_rsp(%rip), %rsp\n"
    "  movslq %eax, %rax\n"
    "  pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
    "  ret\n"
    ".data\n"
    "compat_saved_rsp: .quad 0\n"
    ".text\n");

static long int80_64(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

struct i386call { const char *name; long nr; long a, b, c; };

static void i386_calls(void *arg)
{
    long how = (long)arg;
    char *low = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED)
        return;
    char *path = low, *tmpdir = low + 4096, *stack = low + (1 << 16) - 16;
    snprintf(path, 4096, "%s", MARKER);
    strcpy(tmpdir, "/tmp/i386dir");
    char *fs = low + 8192, *tgt = low + 8192 + 64;
    strcpy(fs, "tmpfs");
    strcpy(tgt, "/tmp");
    long sel = 0x23;
    if (how == 2) {
        struct user_desc d = {.entry_number = 0, .base_addr = 0, .limit = 0xfffff, .seg_32bit = 1,
                              .contents = MODIFY_LDT_CONTENTS_CODE, .read_exec_only = 0,
                              .limit_in_pages = 1, .seg_not_present = 0, .useable = 1};
        long r = syscall(SYS_modify_ldt, 1, &d, sizeof d);
        note("modify_ldt: a 32-bit code segment", r);
        if (r < 0)
            return;
        sel = 7;     /* LDT entry 0, RPL 3 */
    }
    struct i386call calls[] = {
        {"open", 5, (long)path, O_WRONLY | O_TRUNC, 0},
        {"creat", 8, (long)path, 0644, 0},
        {"chmod", 15, (long)path, 0777, 0},
        {"unlink", 10, (long)path, 0, 0},
        {"mkdir", 39, (long)tmpdir, 0755, 0},
        {"mount", 21, (long)fs, (long)tgt, (long)fs},
        {"kill", 37, HOSTPID, SIGKILL, 0},
        {"ptrace", 26, PTRACE_ATTACH, HOSTPID, 0},
        {"openat", 295, AT_FDCWD, (long)path, O_WRONLY | O_TRUNC},
        {"truncate", 92, (long)path, 0, 0},
    };
    const char *mode = how == 0 ? "int 0x80 (64-bit code)" : how == 1 ? "int 0x80 (GDT compat code)"
                                                                      : "int 0x80 (LDT code)";
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        long r = how == 0 ? int80_64(calls[i].nr, calls[i].a, calls[i].b, calls[i].c)
                          : compat_int80(calls[i].nr, calls[i].a, calls[i].b, calls[i].c, sel,
                                         (long)stack);
        attempt();
        char w[128];
        snprintf(w, sizeof w, "%s i386 %s", mode, calls[i].name);
        if (r == -ENOSYS)
            printf("ok %s: ENOSYS\n", w);
        else if (r >= 0)
            ESCAPE("%s: succeeded (%ld)", w, r);
        else
            ESCAPE("%s: reached the host kernel (%s)", w, en(-r));
    }
}

static void t_int80(void)
{
    in_child(i386_calls, (void *)0L, "int 0x80");
    in_child(i386_calls, (void *)1L, "compat mode");
}

static void t_modify_ldt(void)
{
    char buf[64];
    note("modify_ldt read", syscall(SYS_modify_ldt, 0, buf, sizeof buf));
    in_child(i386_calls, (void *)2L, "ldt compat mode");
}

static void bad_nr_child(void *arg)
{
    long r = rawsys((unsigned long)arg, 0, 0, 0, 0, 0, 0);
    printf("note syscall %ld from outside a uprobe trampoline: %ld\n", (long)arg, r);
}

static void t_bad_nr(void)
{
    /* uretprobe (335) and uprobe (336) skip seccomp in Linux itself; called
     * from anywhere but their trampoline they kill the caller (SIGILL) */
    in_child(bad_nr_child, (void *)335L, "uretprobe");
    in_child(bad_nr_child, (void *)336L, "uprobe");
    unsigned long nrs[] = {337, 400, 423, 470, 471, 500, 511, 512, 547, 548, 1000, 1024, 4096, 0xffff,
                           0x7fffffff, 0xffffffffUL, (unsigned long)-1L,
                           0x100000000UL | SYS_openat, 0xffffffff00000000UL | SYS_openat,
                           0x80000000UL | SYS_openat, X32 | 600, X32 | 1000};
    for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++) {
        long r = rawsys(nrs[i], AT_FDCWD, (long)MARKER, O_WRONLY | O_TRUNC, 0, 0, 0);
        attempt();
        if (r == -ENOSYS)
            printf("ok syscall %#lx: ENOSYS\n", nrs[i]);
        else if (r >= 0 && (nrs[i] >> 32) && (int)nrs[i] == SYS_openat)
            /* Linux reads a syscall number as an int: this is openat, which
             * the guest kernel made (the host's marker must be intact) */
            printf("note syscall %#lx: made as openat\n", nrs[i]);
        else if (r >= 0)
            ESCAPE("syscall %#lx: succeeded (%ld)", nrs[i], r);
        else
            printf("note syscall %#lx: %s\n", nrs[i], en(-r));
    }
}

/* --------------------------------------------------------- privilege */

static void t_suid_probe(void)
{
    printf("note uid %d euid %d\n", getuid(), geteuid());
    try_read(ROOTFILE, "root-only host file");
    try_read("/etc/shadow", "/etc/shadow");
    int fd = open(ROOTFILE, O_WRONLY | O_APPEND);
    blocked("root-only host file for writing", fd);
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "NoNewPrivs:", 11))
            printf("note %s", line);
    if (f)
        fclose(f);
}

static void t_setuid(void)
{
    const char *progs[] = {"ESC_SUIDPROG", "ESC_CAPPROG"};
    for (int i = 0; i < 2; i++) {
        const char *prog = env(progs[i]);
        if (!*prog)
            continue;
        attempt();
        pid_t c = fork();
        if (c == 0) {
            execl(prog, prog, "suid-probe", (char *)NULL);
            printf("note exec %s: %s\n", prog, en(errno));
            _exit(0);
        }
        wait_child(c);
    }
    const char *tools[][4] = {{"/usr/bin/passwd", "-S", "root", NULL},
                              {"/usr/bin/newgrp", "root", NULL, NULL}};
    for (int i = 0; i < 2; i++) {
        if (access(tools[i][0], X_OK) < 0)
            continue;
        int pfd[2];
        if (pipe(pfd) < 0)
            continue;
        attempt();
        pid_t c = fork();
        if (c == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(pfd[1], 1);
            dup2(pfd[1], 2);
            execv(tools[i][0], (char *const *)tools[i]);
            _exit(127);
        }
        close(pfd[1]);
        char out[4096];
        ssize_t n, total = 0;
        while ((n = read(pfd[0], out + total, sizeof out - 1 - total)) > 0)
            total += n;
        out[total] = 0;
        close(pfd[0]);
        int st = wait_child(c);
        printf("note %s exited %d\n", tools[i][0], WEXITSTATUS(st));
        char status[8] = "", date[32] = "";
        if (strstr(out, "root:") ||
            (sscanf(out, "root %7s %31s", status, date) == 2 && date[0] >= '0' && date[0] <= '9'))
            ESCAPE("%s printed root's shadow data: %.60s", tools[i][0], out);
        else
            printf("note %s said: %.80s\n", tools[i][0], out);
    }
}

/* --------------------------------------------------------- file handles */

static void t_handles(void)
{
    struct { struct file_handle h; unsigned char b[128]; } fh;
    int mnt = -1;
    fh.h.handle_bytes = 128;
    blocked("name_to_handle_at(marker)", syscall(SYS_name_to_handle_at, AT_FDCWD, MARKER, &fh.h, &mnt, 0));
    /* the host's handle of the marker, computed by the test */
    const char *hex = env("ESC_HANDLE");
    if (strlen(hex) > 8) {
        unsigned type = 0;
        sscanf(hex, "%8x", &type);
        size_t n = 0;
        unsigned char *bytes = (unsigned char *)&fh + offsetof(struct file_handle, f_handle);
        for (const char *p = hex + 9; p[0] && p[1] && n < 128; p += 2)
            sscanf(p, "%2hhx", bytes + n++);
        fh.h.handle_type = type;
        fh.h.handle_bytes = n;
        const char *dirs[] = {"/", "/tmp", "/etc", "/proc", NULL};
        for (int i = 0; dirs[i]; i++) {
            int d = open(dirs[i], O_RDONLY | O_DIRECTORY);
            int fd = syscall(SYS_open_by_handle_at, d, &fh.h, O_RDONLY);
            blocked("open_by_handle_at(host handle of the marker)", fd);
            if (fd >= 0) {
                judge_fd(fd, "open_by_handle_at");
                close(fd);
            }
            fd = syscall(SYS_open_by_handle_at, d, &fh.h, O_RDWR);
            blocked("open_by_handle_at(host handle) O_RDWR", fd);
            close(d);
        }
    }
}

/* -------------------------------------------------------- tracer's /proc */

static void t_tracer_proc(void)
{
    char p[256], q[8192];
    pid_t targets[2] = {getppid(), HOSTPID};
    const char *who[2] = {"parent (tracer when --pid-host)", "host process"};
    for (int i = 0; i < 2; i++) {
        if (targets[i] <= 1)
            continue;
        snprintf(p, sizeof p, "/proc/%d/fd", targets[i]);
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(q, sizeof q, "/proc/%d/fd/%s", targets[i], e->d_name);
            int fd = open(q, O_RDONLY);
            if (fd >= 0) {
                char w[300];
                snprintf(w, sizeof w, "%s fd %s", who[i], e->d_name);
                if (i == 0)
                    ESCAPE("opened the %s's fd %s", who[i], e->d_name);
                judge_fd(fd, w);
                close(fd);
            }
        }
        if (d)
            closedir(d);
        const char *subs[] = {"root", "cwd"};
        for (int s = 0; s < 2; s++) {
            snprintf(q, sizeof q, "/proc/%d/%s%s", targets[i], subs[s], MARKER);
            try_read(q, "PID/root+marker");
            try_write(q, "PID/root+marker for writing");
            snprintf(q, sizeof q, "/proc/%d/%s/marker", targets[i], subs[s]);
            try_read(q, "PID/cwd/marker");
            try_write(q, "PID/cwd/marker for writing");
            snprintf(q, sizeof q, "/proc/%d/%s%s", targets[i], subs[s], ROOTFILE);
            try_read(q, "PID/root+rootfile");
        }
        snprintf(q, sizeof q, "/proc/%d/environ", targets[i]);
        int fd = open(q, O_RDONLY);
        if (fd >= 0 && i == 0) {
            char env[8192];
            ssize_t n = read(fd, env, sizeof env);
            if (n > 0)
                ESCAPE("read the tracer's environ");
        }
        snprintf(q, sizeof q, "/proc/%d/mem", targets[i]);
        blocked("open PID/mem O_RDWR", open(q, O_RDWR));
    }
    if (!PIDHOST) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) == HOSTPID)
                ESCAPE("/proc lists the host process %s", e->d_name);
        if (d)
            closedir(d);
    }
}

/* ------------------------------------------------------------ terminal */

static void t_tiocsti(void)
{
    const char *inject = "echo INJECTED\n";
    int fds[4] = {open("/dev/tty", O_RDWR), 0, 1, 2};
    note("open /dev/tty", fds[0]);
    for (int i = 0; i < 4; i++) {
        if (fds[i] < 0 || !isatty(fds[i]))
            continue;
        char w[64];
        snprintf(w, sizeof w, "TIOCSTI on fd %d", fds[i]);
        long r = 0;
        for (const char *c = inject; *c && r == 0; c++)
            r = ioctl(fds[i], TIOCSTI, c);
        blocked(w, r);
        r = ioctl(fds[i], TIOCSTI | 0xffff00000000UL, inject);
        blocked("TIOCSTI with high bits in the request", r);
        char sel[2] = {3, 0};
        blocked("TIOCLINUX", ioctl(fds[i], TIOCLINUX, sel));
        blocked("TIOCCONS", ioctl(fds[i], TIOCCONS));
        blocked("TIOCSCTTY steal", ioctl(fds[i], TIOCSCTTY, 1));
        blocked("vhangup", syscall(SYS_vhangup));
    }
}

/* --------------------------------------------------------------- sockets */

static void t_unix_path(void)
{
    const char *path = env("ESC_UNIX"), *dgram = env("ESC_UNIXDG");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char q[200];
    const char *paths[4] = {path, NULL, NULL, NULL};
    snprintf(q, sizeof q, "/proc/self/root%s", path);
    paths[1] = q;
    symlink(path, "/tmp/hostsock");
    paths[2] = "/tmp/hostsock";
    for (int i = 0; paths[i]; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(a.sun_path, sizeof a.sun_path, "%s", paths[i]);
        char w[300];
        snprintf(w, sizeof w, "connect %s", paths[i]);
        blocked(w, connect(s, (struct sockaddr *)&a, sizeof a));
        close(s);
    }
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", dgram);
    blocked("sendto host datagram socket", sendto(s, "GUEST", 5, 0, (struct sockaddr *)&a, sizeof a));
    struct msghdr mh = {.msg_name = &a, .msg_namelen = sizeof a};
    struct iovec iov = {"GUEST", 5};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    blocked("sendmsg host datagram socket", sendmsg(s, &mh, 0));
    struct mmsghdr mm = {.msg_hdr = mh};
    blocked("sendmmsg host datagram socket", syscall(SYS_sendmmsg, s, &mm, 1, 0) > 0 ? 0 : -1);
    /* a socket made by the guest at a host path lands in the sandbox */
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s/guest.sock", ARENA);
    note("bind in the arena", bind(b, (struct sockaddr *)&a, sizeof a));
}

static void t_unix_abstract(void)
{
    const char *name = env("ESC_ABSTRACT");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(a.sun_path + 1, name, n);
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    blocked("connect host abstract socket", connect(s, (struct sockaddr *)&a, len));
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    blocked("sendto host abstract name", sendto(s, "GUEST", 5, 0, (struct sockaddr *)&a, len));
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    note("bind the host's abstract name", bind(s, (struct sockaddr *)&a, len));
}

static void t_tcp(void)
{
    int port = atoi(env("ESC_TCP")), uport = atoi(env("ESC_UDP"));
    const char *addrs[] = {"127.0.0.1", env("ESC_HOSTIP"), NULL};
    for (int i = 0; addrs[i]; i++) {
        if (!*addrs[i])
            continue;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, addrs[i], &a.sin_addr);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        char w[96];
        snprintf(w, sizeof w, "TCP connect %s:%d", addrs[i], port);
        blocked(w, connect(s, (struct sockaddr *)&a, sizeof a));
        close(s);
        s = socket(AF_INET, SOCK_DGRAM, 0);
        a.sin_port = htons(uport);
        snprintf(w, sizeof w, "UDP sendto %s:%d", addrs[i], uport);
        note(w, sendto(s, "GUEST", 5, 0, (struct sockaddr *)&a, sizeof a));
        close(s);
    }
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    blocked("TCP connect [::1]", connect(s, (struct sockaddr *)&a6, sizeof a6));
}

/* ------------------------------------------------------- /sys and /proc */

static void open_only(const char *path)
{
    /* never write: opening for writing is already the failure */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    char w[300];
    snprintf(w, sizeof w, "open %s for writing", path);
    blocked(w, fd);
    if (fd >= 0)
        close(fd);
}

static void t_sysfs(void)
{
    const char *paths[] = {"/sys/kernel/mm/transparent_hugepage/enabled",
                           "/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/cgroup.subtree_control",
                           "/sys/kernel/uevent_helper", "/sys/power/state", "/sys/class/net/lo/mtu",
                           "/sys/kernel/profiling", "/sys/block/vda/queue/scheduler",
                           "/sys/module/kernel/parameters/panic", NULL};
    for (int i = 0; paths[i]; i++)
        open_only(paths[i]);
    blocked("mkdir /sys/fs/cgroup/escape", mkdir("/sys/fs/cgroup/escape", 0755));
    blocked("mkdir /sys/kernel/escape", mkdir("/sys/kernel/escape", 0755));
}

static void t_procsys(void)
{
    const char *paths[] = {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname",
                           "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
                           "/proc/sys/kernel/sysrq", "/proc/sysrq-trigger",
                           "/proc/sys/fs/binfmt_misc/register", "/proc/sys/kernel/yama/ptrace_scope",
                           "/proc/sys/vm/overcommit_memory", "/proc/sys/fs/suid_dumpable",
                           "/proc/sys/dev/tty/legacy_tiocsti", NULL};
    for (int i = 0; paths[i]; i++)
        open_only(paths[i]);
}

static void t_proc_attr(void)
{
    const char *paths[] = {"/proc/self/attr/current", "/proc/self/attr/exec",
                           "/proc/self/attr/fscreate", "/proc/self/loginuid",
                           "/proc/self/uid_map", "/proc/self/gid_map", "/proc/self/setgroups",
                           "/proc/1/attr/current", NULL};
    for (int i = 0; paths[i]; i++)
        open_only(paths[i]);
    /* opened as on Linux; the sandbox's time namespace is the host's */
    int tfd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (tfd >= 0) {
        blocked("timens_offsets of the host's time namespace",
                write(tfd, "monotonic 100 0\n", 16));
        close(tfd);
    } else {
        blocked("open /proc/self/timens_offsets for writing", tfd);
    }
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    attempt();
    if (fd >= 0) {
        blocked("oom_score_adj -1000 (needs host CAP_SYS_RESOURCE)", write(fd, "-1000", 5));
        close(fd);
    } else {
        printf("ok open oom_score_adj: %s\n", en(errno));
    }
}

static void t_devices(void)
{
    struct { const char *path; mode_t kind; int maj, min; } nodes[] = {
        {"/tmp/vda", S_IFBLK, 254, 0}, {"/tmp/sda", S_IFBLK, 8, 0}, {"/tmp/mem", S_IFCHR, 1, 1},
        {"/tmp/kmsg", S_IFCHR, 1, 11}, {"/tmp/port", S_IFCHR, 1, 4}, {"/tmp/tty1", S_IFCHR, 4, 1},
    };
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        char w[96];
        snprintf(w, sizeof w, "mknod %s", nodes[i].path);
        blocked(w, mknod(nodes[i].path, nodes[i].kind | 0666, makedev(nodes[i].maj, nodes[i].min)));
        int fd = open(nodes[i].path, O_RDONLY | O_NONBLOCK);
        snprintf(w, sizeof w, "open %s", nodes[i].path);
        blocked(w, fd);
    }
    const char *devs[] = {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda",
                          "/dev/console", "/dev/tty0", "/dev/tty1", "/dev/loop-control",
                          "/dev/mapper/control", "/dev/btrfs-control", "/dev/autofs",
                          "/dev/uinput", "/dev/cpu/0/msr", "/dev/nvram", "/dev/hpet", NULL};
    for (int i = 0; devs[i]; i++) {
        int fd = open(devs[i], O_RDONLY | O_NONBLOCK);
        char w[96];
        snprintf(w, sizeof w, "open %s", devs[i]);
        blocked(w, fd);
    }
    const char *soft[] = {"/dev/fuse", "/dev/net/tun", "/dev/kvm", NULL};
    for (int i = 0; soft[i]; i++) {
        char w[96];
        snprintf(w, sizeof w, "open %s", soft[i]);
        note(w, open(soft[i], O_RDWR | O_NONBLOCK));
    }
}

static void t_host_admin(void)
{
    struct timex tx = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    blocked("reboot (bad magic)", syscall(SYS_reboot, 0, 0, 0, NULL));
    blocked("sethostname", sethostname("escaped", 7));
    blocked("setdomainname", setdomainname("escaped", 7));
    blocked("settimeofday(NULL, NULL)", syscall(SYS_settimeofday, NULL, NULL));
    blocked("clock_settime(now)", clock_settime(CLOCK_REALTIME, &ts));
    blocked("adjtimex(read only)", syscall(SYS_adjtimex, &tx));
    blocked("acct(NULL)", syscall(SYS_acct, NULL));
    blocked("swapoff", syscall(SYS_swapoff, "/nonexistent-umlpy"));
    blocked("syslog SIZE_BUFFER", syscall(SYS_syslog, 10, NULL, 0));
    blocked("iopl(0)", syscall(SYS_iopl, 0));
    blocked("ioperm off", syscall(SYS_ioperm, 0x80, 1, 0));
    blocked("init_module(empty)", syscall(SYS_init_module, NULL, 0, ""));
    blocked("delete_module", syscall(SYS_delete_module, "umlpy_nonexistent", O_NONBLOCK));
    blocked("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    blocked("quotactl", syscall(SYS_quotactl, 0, "/dev/null", 0, NULL));
    blocked("fanotify_init", syscall(SYS_fanotify_init, 0, 0));
    blocked("lookup_dcookie", syscall(212, 0, NULL, 0));
}

/* ----------------------------------------------------------- core dumps */

static void t_core(void)
{
    struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
    note("setrlimit(RLIMIT_CORE, unlimited)", setrlimit(RLIMIT_CORE, &r));
    /* in the host tree: a host directory the guest's outside uid may write;
     * in an image: wherever the guest starts */
    if (!IMAGE)
        note("chdir to the arena", chdir(ARENA));
    cwd_check("getcwd before the dump");
    prctl(PR_SET_DUMPABLE, 1);
    pid_t c = fork();
    if (c == 0) {
        abort();
    }
    int st = wait_child(c);
    printf("note child %s\n", WCOREDUMP(st) ? "dumped core" : "did not dump core");
    /* what the guest itself sees: a core in the sandbox is fine */
    struct stat s;
    note("stat core in the guest's cwd", stat("core", &s));
}

/* ------------------------------------------------------------ tracing */

static void untraced_child_body(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "TracerPid:", 10)) {
            printf("note untraced child: %s", line);
            /* a child nobody traces runs every call its filter allows,
             * unseen: that is the escape, whatever its calls then get (in
             * a pid namespace the tracer outside shows as 0 here) */
            if (PIDHOST && atoi(line + 10) == 0)
                ESCAPE("a CLONE_UNTRACED child runs with no tracer");
        }
    /* sysinfo always stops for the guest kernel: with no tracer the
     * filter's trace action fails it with ENOSYS */
    struct sysinfo si;
    if (sysinfo(&si) != 0 && errno == ENOSYS)
        ESCAPE("a CLONE_UNTRACED child runs with no tracer (sysinfo: ENOSYS)");
    if (f)
        fclose(f);
    try_read(MARKER, "marker from a CLONE_UNTRACED child");
    try_write(MARKER, "marker for writing from a CLONE_UNTRACED child");
    try_read(ROOTFILE, "root-only file from a CLONE_UNTRACED child");
    if (PIDHOST) {
        /* outlive the sandbox if the flag got through */
        sleep(1);
        try_write(MARKER, "marker from a CLONE_UNTRACED child, later");
    }
}

static char untraced_stack[65536] __attribute__((aligned(16)));

static int untraced_fn(void *arg)
{
    (void)arg;
    untraced_child_body();
    fflush(stdout);
    syscall(SYS_exit, 0);
    return 0;
}

static void t_clone_untraced(void)
{
    long pid = syscall(SYS_clone, CLONE_UNTRACED | SIGCHLD, 0, NULL, NULL, 0);
    if (pid == 0) {
        untraced_child_body();
        fflush(stdout);
        _exit(0);
    }
    note("clone(CLONE_UNTRACED|SIGCHLD)", pid);
    if (pid > 0 && !PIDHOST)       /* under --pid-host it is left to outlive us */
        wait_child(pid);
    pid = clone(untraced_fn, untraced_stack + sizeof untraced_stack,
                CLONE_UNTRACED | CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    note("clone(CLONE_UNTRACED|CLONE_VM|CLONE_VFORK)", pid);
    if (pid > 0)
        wait_child(pid);
    struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } ca = {
        .flags = CLONE_UNTRACED, .exit_signal = SIGCHLD};
    pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0) {
        untraced_child_body();
        _exit(0);
    }
    blocked("clone3(CLONE_UNTRACED)", pid);
    if (pid > 0)
        wait_child(pid);
}

/* ------------------------------------------------------------- races */

static char race_buf[4096];
static volatile int race_stop;
static char race_a[4096], race_b[4096];

static void *flipper(void *unused)
{
    (void)unused;
    size_t la = strlen(race_a) + 1, lb = strlen(race_b) + 1;
    while (!race_stop) {
        memcpy(race_buf, race_a, la);
        for (volatile int k = 0; k < 300; k++) {}
        memcpy(race_buf, race_b, lb);
        for (volatile int k = 0; k < 300; k++) {}
    }
    return NULL;
}

static void t_path_toctou(void)
{
    pthread_t t;
    snprintf(race_a, sizeof race_a, "/etc/hostname");
    snprintf(race_b, sizeof race_b, "%s", IMAGE ? MARKER : ROOTFILE);
    strcpy(race_buf, race_a);
    pthread_create(&t, NULL, flipper, NULL);
    int got = 0;
    for (int i = 0; i < 1500; i++) {
        int fd = open(race_buf, O_RDONLY);
        attempt();
        if (fd >= 0) {
            int rootsecret;
            if (fd_has_secret(fd, &rootsecret) && (rootsecret || IMAGE)) {
                ESCAPE("a racing path opened a host secret (attempt %d)", i);
                break;
            }
            got++;
            close(fd);
        }
    }
    race_stop = 1;
    pthread_join(t, NULL);
    printf("note %d racing opens succeeded (on the guest's files)\n", got);
}

static void t_exec_race(void)
{
    pthread_t t;
    snprintf(race_a, sizeof race_a, "/bin/escape");
    snprintf(race_b, sizeof race_b, "%s", env("ESC_HOSTPROG"));
    strcpy(race_buf, race_a);
    pthread_create(&t, NULL, flipper, NULL);
    int ran = 0;
    for (int i = 0; i < 150; i++) {
        pid_t c = vfork();
        if (c == 0) {
            char *argv[] = {"x", "noop", NULL};
            execve(race_buf, argv, environ);
            _exit(127);
        }
        int st = wait_child(c);
        attempt();
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ran++;
    }
    race_stop = 1;
    pthread_join(t, NULL);
    printf("note %d racing execs ran a program\n", ran);
    /* and execve of the host program by name, plainly */
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {"x", "noop", NULL};
        attempt();
        execve(env("ESC_HOSTPROG"), argv, environ);
        printf("ok execve of the host program: %s\n", en(errno));
        _exit(0);
    }
    wait_child(c);
}

/* ----------------------------------------------------------- hard links */

static void t_hardlink(void)
{
    char p[64];
    int fd = open(MARKER, O_RDONLY);
    note("open marker read-only", fd);
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    struct { const char *what; int r; const char *dest; } tries[] = {
        {"link(marker, /tmp/hl1)", link(MARKER, "/tmp/hl1"), "/tmp/hl1"},
        {"linkat(fd, \"\", AT_EMPTY_PATH)", linkat(fd, "", AT_FDCWD, "/tmp/hl2", AT_EMPTY_PATH), "/tmp/hl2"},
        {"linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW)",
         linkat(AT_FDCWD, p, AT_FDCWD, "/tmp/hl3", AT_SYMLINK_FOLLOW), "/tmp/hl3"},
        {"link(marker, bind/hl4)", link(MARKER, "/mnt/shared/hl4"), "/mnt/shared/hl4"},
        {"linkat(fd, bind/hl5, AT_EMPTY_PATH)",
         linkat(fd, "", AT_FDCWD, "/mnt/shared/hl5", AT_EMPTY_PATH), "/mnt/shared/hl5"},
        {"linkat(/proc/self/fd/N, bind/hl6)",
         linkat(AT_FDCWD, p, AT_FDCWD, "/mnt/shared/hl6", AT_SYMLINK_FOLLOW), "/mnt/shared/hl6"},
        {"rename(marker, bind/mv)", rename(MARKER, "/mnt/shared/mv"), "/mnt/shared/mv"},
    };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        note(tries[i].what, tries[i].r);
        if (tries[i].r == 0) {
            int w = open(tries[i].dest, O_WRONLY | O_APPEND);
            if (w >= 0) {
                if (write(w, "GUEST-WROTE\n", 12) < 0) {}
                close(w);
            }
        }
    }
    struct stat a, b;
    if (stat("/tmp/hl2", &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        printf("note /tmp/hl2 is the same object as the open marker\n");
}

/* ---------------------------------------------------------- host files */

struct file_attr_s { uint64_t fa_xflags; uint32_t fa_extsize, fa_nextents, fa_projid, fa_cowextsize; };

static void t_file_attr(void)
{
    struct file_attr_s fa = {0};
    long r = syscall(SYS_file_getattr, AT_FDCWD, MARKER, &fa, sizeof fa, 0);
    if (IMAGE)
        blocked("file_getattr(host marker path) in an image root", r);
    else
        note("file_getattr(marker)", r);
    r = syscall(SYS_file_getattr, AT_FDCWD, ARENA, &fa, sizeof fa, 0);
    if (IMAGE)
        blocked("file_getattr(host arena path) in an image root", r);
    fa.fa_xflags |= 0x80 | 0x40;      /* FS_XFLAG_NODUMP | FS_XFLAG_NOATIME */
    note("file_setattr(marker, NODUMP|NOATIME)",
         syscall(SYS_file_setattr, AT_FDCWD, MARKER, &fa, sizeof fa, 0));
    int fd = open(MARKER, O_RDONLY);
    if (fd >= 0)
        note("file_setattr(fd, \"\", AT_EMPTY_PATH)",
             syscall(SYS_file_setattr, fd, "", &fa, sizeof fa, AT_EMPTY_PATH));
    if (chdir("/tmp") == 0) {
        char p[8192];
        note("file_setattr(../..marker)",
             syscall(SYS_file_setattr, AT_FDCWD, ups(30, rel_marker(), p, sizeof p), &fa, sizeof fa, 0));
    }
}

static void t_fs_ioctl(void)
{
    int fds[] = {open(MARKER, O_RDONLY), open(MARKER, O_PATH), open(ARENA, O_RDONLY | O_DIRECTORY)};
    const char *names[] = {"marker O_RDONLY", "marker O_PATH", "arena dir"};
    for (int i = 0; i < 3; i++) {
        int flags = 0;
        char w[128];
        if (fds[i] < 0)
            continue;
        snprintf(w, sizeof w, "FS_IOC_GETFLAGS %s", names[i]);
        note(w, ioctl(fds[i], FS_IOC_GETFLAGS, &flags));
        flags |= FS_NODUMP_FL | FS_NOATIME_FL;
        snprintf(w, sizeof w, "FS_IOC_SETFLAGS %s", names[i]);
        note(w, ioctl(fds[i], FS_IOC_SETFLAGS, &flags));
        struct fsxattr fx;
        if (ioctl(fds[i], FS_IOC_FSGETXATTR, &fx) == 0) {
            fx.fsx_xflags |= FS_XFLAG_NODUMP;
            snprintf(w, sizeof w, "FS_IOC_FSSETXATTR %s", names[i]);
            note(w, ioctl(fds[i], FS_IOC_FSSETXATTR, &fx));
        }
    }
}

static void t_lower_fd(void)
{
    int fd = open(MARKER, O_RDONLY);
    note("open marker read-only", fd);
    if (fd < 0)
        return;
    blocked("write(read-only fd)", write(fd, "GUEST", 5));
    blocked("ftruncate(read-only fd)", ftruncate(fd, 0));
    blocked("fallocate(read-only fd)", fallocate(fd, 0, 0, 4096));
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    blocked("mmap MAP_SHARED PROT_WRITE", m == MAP_FAILED ? -1 : 0);
    m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED)
        blocked("mprotect shared mapping writable", mprotect(m, 4096, PROT_READ | PROT_WRITE));
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int w = open(p, O_WRONLY | O_APPEND);
    note("reopen /proc/self/fd/N for writing", w);
    if (w >= 0 && write(w, "GUEST-WROTE\n", 12) < 0) {}
    int path = open(MARKER, O_PATH);
    snprintf(p, sizeof p, "/proc/self/fd/%d", path);
    w = open(p, O_RDWR);
    note("reopen an O_PATH fd for writing", w);
    if (w >= 0 && write(w, "GUEST-WROTE\n", 12) < 0) {}
    int pipefd[2];
    if (pipe(pipefd) == 0) {
        if (write(pipefd[1], "GUEST", 5) < 0) {}
        blocked("splice into the read-only fd", splice(pipefd[0], NULL, fd, NULL, 5, 0));
    }
    int src = memfd_create("src", 0);
    if (write(src, "GUEST", 5) < 0) {}
    loff_t off = 0;
    blocked("copy_file_range into the read-only fd",
            syscall(SYS_copy_file_range, src, &off, fd, NULL, 5, 0));
    note("sendfile into the read-only fd", sendfile(fd, src, &off, 5));
    /* the first change of another lower file, on its own read-only fd:
     * copies it up (changes through fds older than a copy-up: see
     * stale-lower-fd) */
    int fd2 = open(env("ESC_MARKER2"), O_RDONLY);
    note("fchmod(read-only fd of marker2) as its first change", fchmod(fd2, 0600));
    note("truncate(marker)", truncate(MARKER, 0));
    note("chmod(marker)", chmod(MARKER, 0777));
    note("utimes(marker)", utimes(MARKER, NULL));
    note("setxattr(marker)", setxattr(MARKER, "user.escape", "x", 1, 0));
}

/* An fd opened on a lower file before the file was copied up still names
 * the host's file: fd calls through it must still not change the host. */
static void t_stale_lower_fd(void)
{
    int fd = open(MARKER, O_RDONLY);
    note("open marker read-only", fd);
    note("chmod(marker path) (copies it up)", chmod(MARKER, 0644));
    note("fchmod(old fd, 0600)", fchmod(fd, 0600));
    note("fsetxattr(old fd, user.escape)", fsetxattr(fd, "user.escape", "x", 1, 0));
    note("fremovexattr(old fd)", fremovexattr(fd, "user.nonexistent"));
    struct timespec ts[2] = {{1, 0}, {1, 0}};
    note("futimens(old fd, 1970)", futimens(fd, ts));
    note("fchown(old fd, 0, 0)", fchown(fd, 0, 0));
}

static volatile int dnotify_events;

static void on_sigio(int sig)
{
    (void)sig;
    dnotify_events++;
}

static void t_locks(void)
{
    signal(SIGIO, on_sigio);
    int fd = open(MARKER, O_RDONLY);
    note("open marker read-only", fd);
    if (fd < 0)
        return;
    note("flock LOCK_EX", flock(fd, LOCK_EX | LOCK_NB));
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    note("fcntl F_SETLK F_RDLCK", fcntl(fd, F_SETLK, &fl));
    int ofd = open(MARKER, O_RDONLY);
    note("fcntl F_OFD_SETLK F_RDLCK", fcntl(ofd, F_OFD_SETLK, &fl));
    note("fcntl F_SETLEASE F_RDLCK", fcntl(fd, F_SETLEASE, F_RDLCK));
    int dir = open(ARENA, O_RDONLY | O_DIRECTORY);
    note("fcntl F_NOTIFY on the arena", fcntl(dir, F_NOTIFY, DN_MODIFY | DN_CREATE | DN_MULTISHOT));
    printf("LOCKED\n");
    fflush(stdout);
    char b;
    /* hold them until the test has looked from the host */
    while (read(0, &b, 1) < 0 && errno == EINTR) {}
    printf("note dnotify reported %d changes of the host's arena\n", dnotify_events);
}

/* ---------------------------------------------------------------- IPC */

static void t_sysv_ipc(void)
{
    key_t shmkey = strtol(env("ESC_SHMKEY"), NULL, 0), msgkey = strtol(env("ESC_MSGKEY"), NULL, 0),
          semkey = strtol(env("ESC_SEMKEY"), NULL, 0);
    int shm = shmget(shmkey, 0, 0);
    blocked("shmget(host key)", shm);
    if (shm >= 0) {
        char *p = shmat(shm, NULL, 0);
        if (p != (void *)-1) {
            if (strstr(p, SECRET))
                ESCAPE("shmat: read the host's shared memory");
            strcpy(p, "GUEST-WROTE");
        }
    }
    int msg = msgget(msgkey, 0);
    blocked("msgget(host key)", msg);
    if (msg >= 0) {
        struct { long type; char text[32]; } m = {1, "GUEST-WROTE"};
        blocked("msgsnd to the host's queue", msgsnd(msg, &m, sizeof m.text, IPC_NOWAIT));
    }
    int sem = semget(semkey, 0, 0);
    blocked("semget(host key)", sem);
    if (sem >= 0) {
        struct sembuf op = {0, 5, 0};
        blocked("semop on the host's set", semop(sem, &op, 1));
    }
    /* objects of the guest's own must end with the sandbox */
    key_t leftkey = strtol(env("ESC_LEFTKEY"), NULL, 0);
    note("shmget(a new segment of the guest's own)", shmget(leftkey, 4096, IPC_CREAT | 0600));
    struct shm_info info;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
    int seen = 0;
    for (int i = 0; i <= max && i < 4096; i++) {
        struct shmid_ds ds;
        attempt();
        if (shmctl(i, SHM_STAT_ANY, &ds) >= 0 || shmctl(i, SHM_STAT, &ds) >= 0)
            seen++;
    }
    /* one of them is the guest's own, made just above */
    if (seen > 1)
        ESCAPE("shmctl(SHM_STAT) lists %d shared memory segments of the host", seen - 1);
    FILE *f = fopen("/proc/sysvipc/shm", "r");
    char line[512];
    int lines = 0;
    while (f && fgets(line, sizeof line, f))
        lines++;
    if (f)
        fclose(f);
    if (lines > 2)      /* the header and the guest's own segment */
        ESCAPE("/proc/sysvipc/shm lists %d host segments", lines - 2);
}

static void t_mqueue(void)
{
    const char *name = env("ESC_MQ");
    mqd_t q = mq_open(name, O_RDWR);
    blocked("mq_open(host queue)", q);
    if (q != (mqd_t)-1)
        blocked("mq_send to the host's queue", mq_send(q, "GUEST-WROTE", 11, 0));
    blocked("mq_unlink(host queue)", mq_unlink(name));
}

/* --------------------------------------------------------- other sandboxes */

static void t_cross_sandbox(void)
{
    const char *name = env("ESC_CROSSNAME");
    DIR *d = opendir("/tmp");
    struct dirent *e;
    int tried = 0;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "umlpy-", 6))
            continue;
        char p[1024];
        const char *subs[] = {"upper/tmp", "upper", "spool", NULL};
        for (int i = 0; subs[i]; i++) {
            snprintf(p, sizeof p, "/tmp/%s/%s/%s", e->d_name, subs[i], name);
            int fd = open(p, O_RDONLY);
            tried++;
            attempt();
            if (fd >= 0) {
                char buf[256] = "";
                ssize_t n = read(fd, buf, sizeof buf - 1);
                if (n > 0 && strstr(buf, env("ESC_CROSSSECRET")))
                    ESCAPE("read another sandbox's file %s", p);
                close(fd);
            }
        }
    }
    if (d)
        closedir(d);
    /* and the layout umlpy uses, named without listing: <tmp>/umlpy-UID/XXXXXXXX */
    unsigned uids[] = {0, 65534, (unsigned)getuid()};
    for (int u = 0; u < 3; u++) {
        char state[256];
        snprintf(state, sizeof state, "/tmp/umlpy-%u", uids[u]);
        DIR *sd = opendir(state);
        tried++;
        attempt();
        if (sd) {
            ESCAPE("listed umlpy's state directory %s", state);
            while ((e = readdir(sd))) {
                char p[1024];
                snprintf(p, sizeof p, "%s/%s/upper/tmp/%s", state, e->d_name, name);
                int fd = open(p, O_RDONLY);
                if (fd >= 0) {
                    ESCAPE("opened another sandbox's file %s", p);
                    close(fd);
                }
            }
            closedir(sd);
        }
    }
    printf("note %d paths into other sandboxes tried\n", tried);
}

static void t_cross_writer(void)
{
    char p[512];
    snprintf(p, sizeof p, "/tmp/%s", env("ESC_CROSSNAME"));
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, env("ESC_CROSSSECRET"), strlen(env("ESC_CROSSSECRET"))) < 0) {}
        close(fd);
    }
    printf("READY\n");
    fflush(stdout);
    char b;
    if (read(0, &b, 1) < 0) {}
}

/* A setuid copy of the attacker in the sandbox's upper layer: the upper
 * directory is on the host; whoever can reach it there can run it. */
static void t_upper_setuid(void)
{
    char dest[256];
    snprintf(dest, sizeof dest, "/tmp/%s", env("ESC_SUIDNAME"));
    int in = open("/proc/self/exe", O_RDONLY), out = open(dest, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    char buf[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            break;
    close(out);
    note("chmod 04755 (and 02755) the copy", chmod(dest, 06755));
    struct stat st;
    if (stat(dest, &st) == 0)
        printf("note the copy is mode %o uid %d\n", st.st_mode & 07777, st.st_uid);
    printf("READY\n");
    fflush(stdout);
    char b;
    if (read(0, &b, 1) < 0) {}
}

static void t_whoami(void)
{
    printf("uid %d euid %d egid %d\n", getuid(), geteuid(), getegid());
}

static void t_dev_shm(void)
{
    char p[512];
    snprintf(p, sizeof p, "/dev/shm/%s", env("ESC_SHMNAME"));
    int fd = open(p, O_RDWR);
    blocked("open the host's /dev/shm file", fd);
    if (fd >= 0) {
        int rs;
        if (fd_has_secret(fd, &rs))
            ESCAPE("read the host's /dev/shm file");
        if (pwrite(fd, "GUEST-WROTE", 11, 0) < 0) {}
    }
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, "umlpy-escape"))
            ESCAPE("/dev/shm lists the host's %s", e->d_name);
    if (d)
        closedir(d);
}

static void t_io_uring(void)
{
    unsigned char params[120];
    memset(params, 0, sizeof params);
    blocked("io_uring_setup", syscall(SYS_io_uring_setup, 8, params));
    memset(params, 0, sizeof params);
    ((uint32_t *)params)[2] = 1 << 1;     /* IORING_SETUP_SQPOLL */
    blocked("io_uring_setup SQPOLL", syscall(SYS_io_uring_setup, 8, params));
    blocked("io_uring_enter", syscall(SYS_io_uring_enter, 0, 1, 0, 0, NULL, 0));
    blocked("io_uring_register", syscall(SYS_io_uring_register, 0, 0, NULL, 0));
}

static void t_self_exe(void)
{
    note("open /proc/self/exe for writing", open("/proc/self/exe", O_WRONLY));
    int fd = open("/proc/self/exe", O_RDONLY);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    note("reopen the exe fd for writing", open(p, O_RDWR));
    const char *prog = env("ESC_PROG");
    if (*prog) {
        int w = open(prog, O_RDWR);
        note("open the program's path for writing", w);
        if (w >= 0 && pwrite(w, "GUEST", 5, 0) < 0) {}
        note("truncate the program", truncate(prog, 0));
        note("unlink the program", unlink(prog));
        note("rename over the program", rename("/etc/hostname", prog));
    }
}

/* ----------------------------------------------------------------- main */

/* Descriptors umlpy's caller holds: stdin on the host's marker, and fd 3
 * on it too (the test passes it to umlpy).  Fds above 2 must be closed
 * before the guest runs, unless --preserve-fds N keeps 3..3+N-1
 * (ESC_PRESERVE=N); whatever is inherited, a change of the host file's
 * metadata through it must not reach the host (the test compares the
 * arena).  Reading it is what the caller meant: allowed. */
static void t_inherited_fds(void)
{
    int keep = atoi(env("ESC_PRESERVE"));
    for (int fd = 3; fd < 3 + 16; fd++) {
        int is_open = fcntl(fd, F_GETFD) >= 0;
        if (is_open && fd >= 3 + keep)
            ESCAPE("fd %d of umlpy's caller is open in the guest", fd);
        if (is_open && fd < 3 + keep)
            printf("note preserved fd %d is open\n", fd);
    }
    char buf[256];
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        printf("note read stdin: %s\n", strstr(buf, SECRET) ? "the marker's content" : "other");
    } else {
        note("read stdin", n);
    }
    int fds[2] = {0, 3};
    for (int i = 0; i < 2; i++) {
        int fd = fds[i];
        char w[96], p[64];
        if (fcntl(fd, F_GETFD) < 0)
            continue;
        struct timespec ts[2] = {{1, 0}, {1, 0}};
        snprintf(w, sizeof w, "fchmod(fd %d, 0600)", fd);
        note(w, fchmod(fd, 0600));
        snprintf(w, sizeof w, "fchmodat2(fd %d, \"\", AT_EMPTY_PATH)", fd);
        note(w, syscall(452, fd, "", 0640, AT_EMPTY_PATH));
        snprintf(w, sizeof w, "fchown(fd %d) to its own ids", fd);
        note(w, fchown(fd, getuid(), getgid()));
        snprintf(w, sizeof w, "fchownat(fd %d, \"\", AT_EMPTY_PATH)", fd);
        note(w, fchownat(fd, "", getuid(), getgid(), AT_EMPTY_PATH));
        snprintf(w, sizeof w, "futimens(fd %d, 1970)", fd);
        note(w, futimens(fd, ts));
        snprintf(w, sizeof w, "futimens(fd %d, now)", fd);
        note(w, futimens(fd, NULL));
        snprintf(w, sizeof w, "utimensat(fd %d, \"\", AT_EMPTY_PATH)", fd);
        note(w, utimensat(fd, "", ts, AT_EMPTY_PATH));
        snprintf(w, sizeof w, "fsetxattr(fd %d, user.escape)", fd);
        note(w, fsetxattr(fd, "user.escape", "x", 1, 0));
        snprintf(w, sizeof w, "fremovexattr(fd %d)", fd);
        note(w, fremovexattr(fd, "user.nonexistent"));
        int flags = 0;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
            flags |= FS_NODUMP_FL;
            snprintf(w, sizeof w, "FS_IOC_SETFLAGS(fd %d, nodump)", fd);
            note(w, ioctl(fd, FS_IOC_SETFLAGS, &flags));
        }
        struct fsxattr fx;
        if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) == 0) {
            fx.fsx_xflags |= FS_XFLAG_NODUMP;
            snprintf(w, sizeof w, "FS_IOC_FSSETXATTR(fd %d)", fd);
            note(w, ioctl(fd, FS_IOC_FSSETXATTR, &fx));
        }
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        snprintf(w, sizeof w, "chmod(%s)", p);
        note(w, chmod(p, 0600));
        snprintf(w, sizeof w, "utimes(%s)", p);
        note(w, utimes(p, NULL));
        snprintf(w, sizeof w, "chown(%s)", p);
        note(w, chown(p, getuid(), getgid()));
        snprintf(w, sizeof w, "setxattr(%s)", p);
        note(w, setxattr(p, "user.escape", "x", 1, 0));
        snprintf(w, sizeof w, "flock(fd %d, LOCK_SH)", fd);
        note(w, flock(fd, LOCK_SH | LOCK_NB));
        snprintf(w, sizeof w, "F_SETLEASE(fd %d)", fd);
        note(w, fcntl(fd, F_SETLEASE, F_RDLCK));
    }
}

/* AF_VSOCK has one port space per machine, not per network namespace:
 * under --net none it must not exist (EAFNOSUPPORT, as on a kernel
 * without vsock).  ESC_VSOCK_PORT: a port the host is bound to. */
static void t_vsock(void)
{
    unsigned port = (unsigned)atoi(env("ESC_VSOCK_PORT"));
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    attempt();
    if (s < 0) {
        printf("%s socket(AF_VSOCK): %s\n", errno == EAFNOSUPPORT ? "ok" : "WRONG", en(errno));
    } else {
        ESCAPE("socket(AF_VSOCK) succeeded");
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
                                .svm_port = port};
        attempt();
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE)
            ESCAPE("bind(AF_VSOCK port %u): EADDRINUSE, the host's port space", port);
        close(s);
    }
    int sv[2];
    attempt();
    if (socketpair(AF_VSOCK, SOCK_STREAM, 0, sv) < 0)
        printf("%s socketpair(AF_VSOCK): %s\n", errno == EAFNOSUPPORT ? "ok" : "WRONG",
               en(errno));
    else
        ESCAPE("socketpair(AF_VSOCK) succeeded");
}

/* Leave the user's terminal (fd 0) unusable: exclusive (TIOCEXCL: every
 * later open fails with EBUSY), echo and canonical mode off, a 3x7 window,
 * the foreground given to a group of the guest's that then exits.  Then
 * end as ESC_TTY_END says: "exit", "signal" (abort), or "wait" until umlpy
 * is signalled. */
static void t_tty_mess(void)
{
    const char *end = env("ESC_TTY_END");
    note("TIOCEXCL", ioctl(0, TIOCEXCL));
    struct termios t;
    if (tcgetattr(0, &t) == 0) {
        t.c_lflag &= ~(ECHO | ICANON);
        t.c_cc[VMIN] = 1;
        note("tcsetattr -echo -icanon", tcsetattr(0, TCSANOW, &t));
    }
    struct winsize ws = {.ws_row = 3, .ws_col = 7};
    note("TIOCSWINSZ 3x7", ioctl(0, TIOCSWINSZ, &ws));
    signal(SIGTTOU, SIG_IGN);
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        note("tcsetpgrp to a group of the guest's", tcsetpgrp(0, getpid()));
        _exit(0);
    }
    wait_child(c);
    report_attempts("MESSED");
    fflush(stdout);
    if (!strcmp(end, "signal"))
        abort();
    if (!strcmp(end, "wait"))
        for (;;)
            pause();
}

struct technique { const char *name; void (*fn)(void); };

static const char *TECHNIQUE = "?";

static void report_attempts(const char *word)
{
    printf("%s attempts=%ld technique=%s\n", word, __atomic_load_n(ATTEMPTS, __ATOMIC_RELAXED),
           TECHNIQUE);
    fflush(stdout);
}

static void t_noop(void) {}

static const struct technique techniques[] = {
    {"dotdot", t_dotdot}, {"chroot-fchdir", t_chroot_fchdir}, {"proc-root", t_proc_root},
    {"proc-cwd", t_proc_cwd}, {"ptrace", t_ptrace}, {"ptrace-self", t_ptrace_self},
    {"process-vm", t_process_vm}, {"kill", t_kill}, {"kill-all", t_kill_all},
    {"kill-tracer", t_kill_tracer}, {"pidfd", t_pidfd}, {"mount", t_mount},
    {"unshare", t_unshare}, {"setns", t_setns}, {"bpf", t_bpf}, {"perf", t_perf},
    {"userfaultfd", t_userfaultfd}, {"keyctl", t_keyctl}, {"scratch", t_scratch},
    {"fd-guess", t_fd_guess}, {"seccomp-filter", t_seccomp_filter},
    {"seccomp-notif", t_seccomp_notif}, {"x32", t_x32}, {"int80", t_int80},
    {"modify-ldt", t_modify_ldt}, {"bad-nr", t_bad_nr}, {"setuid", t_setuid},
    {"suid-probe", t_suid_probe}, {"handles", t_handles}, {"tracer-proc", t_tracer_proc},
    {"tiocsti", t_tiocsti}, {"unix-path", t_unix_path}, {"unix-abstract", t_unix_abstract},
    {"tcp", t_tcp}, {"sysfs", t_sysfs}, {"procsys", t_procsys}, {"proc-attr", t_proc_attr},
    {"devices", t_devices}, {"host-admin", t_host_admin}, {"core", t_core},
    {"clone-untraced", t_clone_untraced}, {"path-toctou", t_path_toctou},
    {"exec-race", t_exec_race}, {"hardlink", t_hardlink}, {"file-attr", t_file_attr},
    {"fs-ioctl", t_fs_ioctl}, {"lower-fd", t_lower_fd}, {"locks", t_locks},
    {"sysv-ipc", t_sysv_ipc}, {"mqueue", t_mqueue}, {"cross-sandbox", t_cross_sandbox},
    {"cross-writer", t_cross_writer}, {"io-uring", t_io_uring}, {"self-exe", t_self_exe},
    {"proc-maps", t_proc_maps}, {"scratch-uffd", t_scratch_uffd},
    {"scratch-race", t_scratch_race}, {"stale-lower-fd", t_stale_lower_fd},
    {"scratch-exhaust", t_scratch_exhaust},
    {"scratch-rlimit", t_scratch_rlimit}, {"upper-setuid", t_upper_setuid}, {"whoami", t_whoami},
    {"dev-shm", t_dev_shm}, {"inherited-fds", t_inherited_fds},
    {"tty-mess", t_tty_mess}, {"vsock", t_vsock},
    {"noop", t_noop},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: escape TECHNIQUE\n");
        return 2;
    }
    MARKER = env("ESC_MARKER");
    SECRET = env("ESC_SECRET");
    ARENA = env("ESC_ARENA");
    ROOTFILE = env("ESC_ROOTFILE");
    ROOTSECRET = env("ESC_ROOTSECRET");
    IMAGE = !strcmp(env("ESC_IMAGE"), "1");
    PIDHOST = !strcmp(env("ESC_PIDHOST"), "1");
    HOSTPID = atoi(env("ESC_HOSTPID"));
    if (!*ROOTFILE)
        ROOTFILE = "/nonexistent-rootfile";
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED)
        ATTEMPTS = page;
    for (size_t i = 0; i < sizeof techniques / sizeof techniques[0]; i++)
        if (!strcmp(argv[1], techniques[i].name)) {
            TECHNIQUE = techniques[i].name;
            techniques[i].fn();
            report_attempts("DONE");
            return 0;
        }
    fprintf(stderr, "escape: unknown technique %s\n", argv[1]);
    return 2;
}
