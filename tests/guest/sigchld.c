/* 50 children exit at once; a SIGCHLD handler reaps them.  If a SIGCHLD
 * were lost, sigsuspend would never return and the test would time out. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCHILD 50
static volatile sig_atomic_t reaped, handler_runs, status_sum;

static void on_sigchld(int sig)
{
    int saved = errno, st;
    pid_t pid;
    handler_runs++;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        reaped++;
        status_sum += WEXITSTATUS(st);
    }
    errno = saved;
}

int main(void)
{
    sigset_t block, old;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < NCHILD; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(i % 7);
        if (pid < 0)
            return 2;
    }
    while (reaped < NCHILD)
        sigsuspend(&old);
    printf("reaped %d children, status sum %d, handler ran: %s\n",
           (int)reaped, (int)status_sum, handler_runs > 0 ? "yes" : "no");
    return 0;
}
