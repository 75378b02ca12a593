/* A read() on a pipe interrupted by SIGALRM: restarted with SA_RESTART,
 * failing with EINTR without it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { alarms++; }

static void trial(int flags, const char *label)
{
    int p[2];
    char buf[16] = {0};
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    if (pipe(p) < 0)
        return;
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        usleep(300000);
        if (write(p[1], "data", 4) != 4)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    struct itimerval it = {{0, 0}, {0, 50000}};
    alarms = 0;
    setitimer(ITIMER_REAL, &it, NULL);
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    int err = errno;
    if (n < 0)
        printf("%s: read failed: %s (alarms %d)\n", label, strerror(err), (int)alarms);
    else
        printf("%s: read %zd bytes '%s' (alarms %d)\n", label, n, buf, (int)alarms);
    waitpid(child, NULL, 0);
    close(p[0]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    trial(SA_RESTART, "SA_RESTART");
    trial(0, "no SA_RESTART");
    return 0;
}
