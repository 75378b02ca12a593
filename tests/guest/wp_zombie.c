/* A child that has exited but is not yet reaped is a zombie: its
 * /proc/PID/stat says state Z; after waitpid the /proc entry is gone.
 * With the argument "stopped": the state of a child stopped by SIGSTOP. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

/* The state letter of /proc/PID/stat (after the last ')'), or 0 if the
 * file cannot be opened; *err gets the errno then. */
static char proc_state(pid_t pid, int *err)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *err = errno;
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        *err = n < 0 ? errno : 0;
        return '?';
    }
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static int proc_dir_exists(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    return access(path, F_OK) == 0;
}

static int stopped_state(void)
{
    int err = 0, st;
    fflush(stdout);
    pid_t c = fork();
    if (c < 0)
        return 99;
    if (c == 0) {
        pause();
        _exit(0);
    }
    kill(c, SIGSTOP);
    if (waitpid(c, &st, WUNTRACED) != c || !WIFSTOPPED(st))
        return 98;
    char state = proc_state(c, &err);
    printf("stopped child state: %c\n", state ? state : '-');
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    return 0;
}

int main(int argc, char **argv)
{
    int err = 0;
    if (argc > 1 && strcmp(argv[1], "stopped") == 0)
        return stopped_state();
    fflush(stdout);
    pid_t c = fork();
    if (c < 0)
        return 99;
    if (c == 0)
        _exit(3);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    char state = proc_state(c, &err);
    printf("zombie: %s\n", state == 'Z' ? "yes" : "no");
    if (state != 'Z')
        printf("  state was %c (%s)\n", state ? state : '-', state ? "" : strerror(err));
    int st;
    pid_t r = waitpid(c, &st, 0);
    printf("reaped: %s, status %d\n", r == c ? "yes" : "no", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    err = 0;
    state = proc_state(c, &err);
    int gone = state == 0 && err == ENOENT && !proc_dir_exists(c);
    printf("gone after reap: %s\n", gone ? "yes" : "no");
    if (!gone)
        printf("  state %c errno %s\n", state ? state : '-', strerror(err));
    return 0;
}
