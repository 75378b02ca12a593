/* Does the guest kernel ever put the arguments of a rewritten call in
 * memory the guest can write?  vfork_scratch PATH
 *
 * A vfork child that does not share its parent's memory (clone with
 * CLONE_VFORK but no CLONE_VM) makes a call that needs scratch memory (an
 * O_PATH open of PATH), finds where its scratch mapping is, tells its
 * parent and execs.  The parent maps writable memory of its own at that
 * very address, then a real vfork child (which shares the parent's
 * memory) makes the same call.  Had the guest kernel taken the first
 * child's mapping for its parent's (as it may for a child that shares its
 * parent's memory), it would write PATH into the parent's writable page,
 * where another thread could change it after the check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGION (64 * 1024 * 64)

/* The start of a read-only anonymous mapping of REGION bytes, or 0. */
static unsigned long scratch_start(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && b - a == REGION &&
            strncmp(perms, "r--p", 4) == 0)
            found = a;
    }
    if (f)
        fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *path = argv[1];
    int p[2];
    if (pipe(p) < 0)
        return 1;
    long child = syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
    if (child == 0) {
        int fd = open(path, O_PATH);
        unsigned long at = scratch_start();
        if (write(p[1], &at, sizeof at) != sizeof at)
            _exit(1);
        if (fd >= 0)
            close(fd);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    unsigned long at = 0;
    if (read(p[0], &at, sizeof at) != sizeof at)
        return 1;
    waitpid((pid_t)child, NULL, 0);
    if (!at) {
        printf("no scratch mapping seen\n");     /* natively: nothing to find */
        return 0;
    }
    char *mine = mmap((void *)at, REGION, PROT_READ | PROT_WRITE,
                      MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mine == MAP_FAILED) {
        printf("cannot map there: %s\n", strerror(errno));
        return 0;
    }
    pid_t second = vfork();
    if (second == 0) {
        int fd = open(path, O_PATH);
        _exit(fd >= 0 ? 0 : 3);
    }
    int st;
    waitpid(second, &st, 0);
    size_t n = strlen(path);
    int written = 0;
    for (size_t i = 0; i + n <= REGION; i += 4096)
        for (size_t k = i; k < i + 4096 && k + n <= REGION; k++)
            if (mine[k] == path[0] && memcmp(mine + k, path, n) == 0)
                written = 1;
    printf("second child: %s; arguments in the guest's writable memory: %s\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "opened" : "failed", written ? "yes" : "no");
    return 0;
}
