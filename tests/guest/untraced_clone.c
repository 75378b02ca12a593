/* A child made with CLONE_UNTRACED reports its TracerPid. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char stack[1 << 16];

static int child(void *arg)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "TracerPid:", 10) == 0)
            printf("child %s", line);
    fflush(stdout);
    return 0;
}

int main(void)
{
    pid_t pid = clone(child, stack + sizeof stack, CLONE_UNTRACED | SIGCHLD, NULL);
    if (pid < 0) {
        perror("clone");
        return 1;
    }
    int st;
    waitpid(pid, &st, 0);
    return WEXITSTATUS(st);
}
