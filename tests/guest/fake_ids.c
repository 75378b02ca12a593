/* A walk through the id calls (credentials(7), setresuid(2), setreuid(2),
 * setuid(2), setfsuid(2), setgroups(2), capget(2)), every result printed:
 * run natively as root and inside `umlpy run --root` with one id, the two
 * outputs must be the same.  Raw system calls (no glibc setxid broadcast);
 * capabilities printed relative to the first permitted set (the host's
 * bounding set and a user namespace's full set differ). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

static unsigned long long p0;       /* the permitted set at start */

static unsigned long long caps(int which)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return ~0ULL;
    if (which == 0)
        return d[0].effective | (unsigned long long)d[1].effective << 32;
    if (which == 1)
        return d[0].permitted | (unsigned long long)d[1].permitted << 32;
    return d[0].inheritable | (unsigned long long)d[1].inheritable << 32;
}

static const char *rel(unsigned long long set)
{
    static char buf[2][64];
    static int n;
    char *b = buf[n++ & 1];
    if (set == p0) return "P0";
    if (set == 0) return "0";
    if (__builtin_popcountll(set) < __builtin_popcountll(p0 & ~set))
        snprintf(b, 64, "{%llx}", set);     /* a few: named */
    else
        snprintf(b, 64, "P0-%llx", p0 & ~set);
    if (set & ~p0) snprintf(b, 64, "P0+%llx", set & ~p0);
    return b;
}

static void show(const char *what, long r)
{
    int e = errno;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    syscall(SYS_getresuid, &ru, &eu, &su);
    syscall(SYS_getresgid, &rg, &eg, &sg);
    long fsu = syscall(SYS_setfsuid, -1), fsg = syscall(SYS_setfsgid, -1);
    printf("%-28s = %ld%s%s  uid %u %u %u fs %ld  gid %u %u %u fs %ld  "
           "uid() %ld euid() %ld gid() %ld egid() %ld  cap eff %s prm %s\n",
           what, r, r < 0 ? " " : "", r < 0 ? strerrorname_np(e) : "",
           ru, eu, su, fsu, rg, eg, sg, fsg,
           syscall(SYS_getuid), syscall(SYS_geteuid), syscall(SYS_getgid),
           syscall(SYS_getegid), rel(caps(0)), rel(caps(1)));
}

static void groups(const char *what)
{
    gid_t g[8];
    long n = syscall(SYS_getgroups, 0, NULL);
    printf("%s: getgroups(0) = %ld;", what, n);
    long r = syscall(SYS_getgroups, n > 0 ? n - 1 : 0, g);
    if (n > 0)
        printf(" getgroups(%ld) = %ld %s;", n - 1, r, r < 0 ? strerrorname_np(errno) : "");
    r = syscall(SYS_getgroups, 8, g);
    printf(" getgroups(8) = %ld:", r);
    for (long i = 0; i < r; i++)
        printf(" %u", g[i]);
    printf("\n");
}

#define DO(call) show(#call, syscall call)

static void child_keeps(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        show("child after fork", 0);
        DO((SYS_setuid, 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

/* PR_SET_KEEPCAPS: the permitted set survives the loss of every root id,
 * and capset may raise the effective set from it again (as setpriv does) */
static void keepcaps(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        DO((SYS_prctl, PR_SET_KEEPCAPS, 2, 0, 0, 0));
        DO((SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0));
        DO((SYS_prctl, PR_GET_KEEPCAPS, 0, 0, 0, 0));
        DO((SYS_setresuid, 42, 42, 42));
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2] = {
            { (unsigned)p0, (unsigned)p0, 0 }, { (unsigned)(p0 >> 32), (unsigned)(p0 >> 32), 0 } };
        DO((SYS_capset, &h, d));
        d[0].inheritable = 1;
        DO((SYS_capset, &h, d));
        d[0].inheritable = 0;
        d[0].effective = d[0].permitted = 1 << 7;   /* CAP_SETUID alone */
        d[1].effective = d[1].permitted = 0;
        DO((SYS_capset, &h, d));
        DO((SYS_setuid, 7));                        /* CAP_SETUID: every id */
        DO((SYS_setgroups, 0, NULL));               /* no CAP_SETGID */
        h.version = 1;
        DO((SYS_capget, &h, NULL));
        printf("version %#x\n", h.version);
        DO((SYS_prctl, PR_GET_KEEPCAPS, 0, 0, 0, 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

/* execve: the saved ids take the effective ones; root (a root real or
 * effective uid) keeps its permitted set, effective only as euid 0; any
 * other user has no capabilities left */
static void execs(const char *self, long r1, long e1, long s1)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        DO((SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0));
        DO((SYS_setresgid, 5, 6, 7));
        DO((SYS_setresuid, r1, e1, s1));
        DO((SYS_setfsuid, 0));
        fflush(stdout);
        char p0s[32];
        snprintf(p0s, sizeof p0s, "%llx", p0);
        execl(self, self, "exec", p0s, (char *)NULL);
        _exit(1);
    }
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    p0 = caps(1);
    if (argc == 3 && strcmp(argv[1], "exec") == 0) {
        p0 = strtoull(argv[2], NULL, 16);
        show("after exec", 0);
        DO((SYS_prctl, PR_GET_KEEPCAPS, 0, 0, 0, 0));
        DO((SYS_setuid, 0));
        return 0;
    }
    gid_t g0[] = {0}, g3[] = {0, 5, 100};
    DO((SYS_setgroups, 1, g0));
    groups("start");
    DO((SYS_setgroups, 3, g3));
    groups("three");
    DO((SYS_setgroups, -1, g3));
    DO((SYS_setgroups, 70000, g3));
    DO((SYS_setgroups, 0, NULL));
    groups("none");
    DO((SYS_setgroups, 1, g0));

    /* as root: anything */
    DO((SYS_setresgid, 1000, 42, 43));
    DO((SYS_setfsgid, 7));
    DO((SYS_setresgid, -1, -1, -1));
    DO((SYS_setregid, 0, 0));
    DO((SYS_setresuid, -1, -1, -1));
    DO((SYS_setfsuid, 42));             /* fs capabilities drop */
    DO((SYS_setfsuid, 0));              /* and come back */
    keepcaps();
    execs(argv[0], 1000, 0, 42);
    execs(argv[0], 0, 42, 42);
    execs(argv[0], 1000, 42, 0);
    DO((SYS_setresuid, 1000, 42, 0));   /* euid 42: effective empty */
    child_keeps();
    DO((SYS_setfsuid, 7));              /* not one of ours: unchanged */
    DO((SYS_setfsuid, 1000));
    DO((SYS_setresuid, 7, -1, -1));     /* EPERM */
    DO((SYS_setresuid, -1, 1000, -1));  /* one of ours */
    DO((SYS_setuid, 0));                /* the saved id: euid only */
    DO((SYS_setreuid, -1, 42));         /* euid != ruid: suid follows */
    DO((SYS_setreuid, 42, -1));
    DO((SYS_setuid, 0));
    DO((SYS_setresuid, 0, 0, 0));
    DO((SYS_setgid, 5));                /* uid 0: gid, egid, sgid */
    DO((SYS_setgroups, 1, g0));
    DO((SYS_setreuid, 1000, 0));        /* ruid set: suid follows euid */
    DO((SYS_setreuid, 0, 1000));
    DO((SYS_setreuid, 1000, 1000));     /* every id non-zero: nothing left */
    DO((SYS_setgroups, 1, g0));         /* EPERM */
    DO((SYS_setgid, 0));                /* EPERM */
    DO((SYS_setuid, 0));                /* EPERM for good */
    DO((SYS_setresuid, -1, 0, -1));
    DO((SYS_setfsuid, 0));
    DO((SYS_setreuid, 1000, -1));
    DO((SYS_setreuid, -1, -1));
    DO((SYS_setuid, 1000));
    DO((SYS_setuid, -1));               /* EINVAL */
    groups("end");
    child_keeps();
    return 0;
}
