/* Stop, continue and kill a child; report what waitpid sees each time
 * (exercises group stops, which the tracer must keep stopped). */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(pid_t pid, int flags)
{
    int st;
    pid_t r = waitpid(pid, &st, flags);
    if (r != pid)
        printf("waitpid failed\n");
    else if (WIFSTOPPED(st))
        printf("stopped by %d\n", WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("continued\n");
    else if (WIFSIGNALED(st))
        printf("killed by %d\n", WTERMSIG(st));
    else
        printf("exited %d\n", WEXITSTATUS(st));
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    kill(pid, SIGSTOP);
    report(pid, WUNTRACED);
    kill(pid, SIGCONT);
    report(pid, WCONTINUED);
    kill(pid, SIGTSTP);
    report(pid, WUNTRACED);
    kill(pid, SIGCONT);
    report(pid, WCONTINUED);
    kill(pid, SIGTERM);
    report(pid, 0);
    return 0;
}
