/* An OCI container's confinement as its process meets it
 * (tests/test_oci_confinement.py).  Each argument is one probe; each
 * prints "NAME: OK" or "NAME: ERRNONAME" on its own line:
 *
 *   chown:PATH        chown(PATH, 1, 1)
 *   raise:CAP         capset adding CAP (a number) to the effective and
 *                     permitted sets
 *   bset:CAP          PR_CAPBSET_READ of CAP ("OK 1" / "OK 0")
 *   bdrop:CAP         PR_CAPBSET_DROP of CAP
 *   mkdir:PATH        mkdir(PATH, 0755)
 *   personality:HEX   personality(HEX)
 *   ptrace-parent     PTRACE_ATTACH to its parent
 *   umask             the umask, in octal ("OK 027")
 *   mseal             mseal of an empty range (x86_64's 462)
 *   clone:HEX         a child by clone(HEX | SIGCHLD), which exits at once
 *   exec:PROG         execv(PROG, [PROG, the probes after it]) */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

static void report(const char *name, long r)
{
    if (r < 0)
        printf("%s: %s\n", name, strerrorname_np(errno));
    else
        printf("%s: OK\n", name);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i], *value = strchr(arg, ':');
        if (value)
            *value++ = 0;
        errno = 0;
        if (!strcmp(arg, "chown")) {
            report(arg, chown(value, 1, 1));
        } else if (!strcmp(arg, "raise")) {
            int cap = atoi(value);
            struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
            struct __user_cap_data_struct d[2];
            long r = syscall(SYS_capget, &h, d);
            if (r == 0) {
                d[cap / 32].permitted |= 1u << (cap % 32);
                d[cap / 32].effective |= 1u << (cap % 32);
                r = syscall(SYS_capset, &h, d);
            }
            report(arg, r);
        } else if (!strcmp(arg, "bset")) {
            int r = prctl(PR_CAPBSET_READ, atoi(value), 0, 0, 0);
            if (r < 0)
                report(arg, r);
            else
                printf("bset: OK %d\n", r);
        } else if (!strcmp(arg, "bdrop")) {
            report(arg, prctl(PR_CAPBSET_DROP, atoi(value), 0, 0, 0));
        } else if (!strcmp(arg, "mkdir")) {
            report(arg, mkdir(value, 0755));
        } else if (!strcmp(arg, "personality")) {
            /* personality(0xffffffff) only reads it */
            report(arg, syscall(SYS_personality, strtoul(value, NULL, 16)));
        } else if (!strcmp(arg, "ptrace-parent")) {
            report(arg, ptrace(PTRACE_ATTACH, getppid(), 0, 0));
        } else if (!strcmp(arg, "clone")) {
            long r = syscall(SYS_clone, strtoul(value, NULL, 16) | SIGCHLD, 0, 0, 0, 0);
            if (r == 0)
                _exit(0);
            if (r > 0)
                waitpid((pid_t)r, NULL, 0);
            report(arg, r);
        } else if (!strcmp(arg, "mseal")) {
            report(arg, syscall(462, 0, 0, 0));
        } else if (!strcmp(arg, "umask")) {
            mode_t m = umask(0);
            umask(m);
            printf("umask: OK %03o\n", m);
        } else if (!strcmp(arg, "exec")) {
            fflush(stdout);
            argv[i] = value;
            execv(value, argv + i);
            report(arg, -1);
            return 1;
        } else {
            printf("%s: unknown probe\n", arg);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
