/* Each blocking wait with a timeout, interrupted on its way by something
 * the guest does not see natively or that Linux answers in a fixed way,
 * prints how it ended and whether it kept its deadline:
 *   ignored: a signal left at its default action of ignore (SIGWINCH)
 *            comes 200 ms into a 400 ms wait (and SIGCHLD when the child
 *            that sent it exits): Linux discards them when they are
 *            sent, so every call times out at 400 ms;
 *   stopped: the process is stopped (SIGSTOP) 100 ms into the wait and
 *            continued (SIGCONT) at 200 ms: sigtimedwait, epoll_wait and
 *            semtimedop fail with EINTR then (man 7 signal), the others
 *            are restarted
 *            with the time they had left, and end at 400 ms;
 *   pending: as ignored, with another signal blocked and pending all
 *            along (SIGUSR1), which interrupts nothing;
 *   repeated: SIGWINCH every 50 ms for 600 ms: every call still times
 *            out at 400 ms (a wait made again whole each time would end
 *            at 1000 ms).
 * "early" is before 300 ms, "on time" 300..520 ms, "late" after 520 ms
 * (a wait made again whole ends at 600 ms).  A child process sends
 * the signals, so that the whole process can be stopped. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 400

static int fds[2];

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* a child that signals its parent as the scenario says, then exits */
static pid_t disturb(const char *how)
{
    pid_t parent = getpid(), child = fork();
    if (child != 0)
        return child;
    if (!strcmp(how, "repeated")) {
        for (int i = 0; i < 12; i++) {
            sleep_ms(50);
            kill(parent, SIGWINCH);
        }
    } else if (strcmp(how, "stopped")) {
        sleep_ms(200);
        kill(parent, SIGWINCH);
    } else {
        sleep_ms(100);
        kill(parent, SIGSTOP);
        sleep_ms(100);
        kill(parent, SIGCONT);
    }
    _exit(0);
}

static void show(const char *what, long r, long ms)
{
    const char *when = ms < 300 ? "early" : ms <= 520 ? "on time" : "late";
    if (r < 0)
        printf("%s: %s, %s\n", what, strerrorname_np(errno), when);
    else
        printf("%s: %ld, %s\n", what, r, when);
    fflush(stdout);
}

/* epoll_wait as a raw call, which also tells whether the kernel (or a
 * tracer) left its timeout register as it was: a compiler may keep using
 * it after the call */
static long raw_epoll_wait(int ep, struct epoll_event *out, int ms)
{
    register long r10 asm("r10") = ms;
    long r;
    asm volatile("syscall" : "=a"(r), "+r"(r10)
                 : "0"((long)SYS_epoll_wait), "D"((long)ep), "S"(out), "d"(1L)
                 : "rcx", "r11", "memory");
    if (r10 != ms) {
        printf("epoll_wait's timeout register changed\n");
        fflush(stdout);
    }
    if (r < 0 && r > -4096) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

/* the timeout of the calls that only read it (sigtimedwait, epoll_pwait2,
 * semtimedop):
 * it must be as the caller left it afterwards */
static struct timespec read_only_ts = {0, WAIT_MS * 1000000L};

static int sem;

static long call(int which, int ep)
{
    struct timespec ts = {0, WAIT_MS * 1000000L};
    struct timeval tv = {0, WAIT_MS * 1000L};
    struct pollfd p = {fds[0], POLLIN, 0};
    struct epoll_event out;
    sigset_t usr2;
    fd_set in;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    FD_ZERO(&in);
    FD_SET(fds[0], &in);
    switch (which) {
    case 0: return sigtimedwait(&usr2, NULL, &read_only_ts);
    case 1: return raw_epoll_wait(ep, &out, WAIT_MS);
    case 2: return epoll_pwait(ep, &out, 1, WAIT_MS, NULL);
    case 3: return syscall(SYS_epoll_pwait2, ep, &out, 1, &read_only_ts, NULL, 8);
    case 4: return poll(&p, 1, WAIT_MS);
    case 5: return ppoll(&p, 1, &ts, NULL);
    case 6: return select(fds[0] + 1, &in, NULL, NULL, &tv);
    case 7: return pselect(fds[0] + 1, &in, NULL, NULL, &ts, NULL);
    case 8: return nanosleep(&ts, NULL);
    case 9: return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    default: {
        struct sembuf take = {0, -1, 0};
        return semtimedop(sem, &take, 1, &read_only_ts);
    }
    }
}

static const char *const names[] = {"sigtimedwait", "epoll_wait", "epoll_pwait",
                                    "epoll_pwait2", "poll", "ppoll", "select",
                                    "pselect6", "nanosleep", "clock_nanosleep",
                                    "semtimedop"};

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "ignored";
    if (pipe(fds) < 0)
        return 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    if (!strcmp(how, "pending")) {
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        raise(SIGUSR1);
    }
    sem = semget(IPC_PRIVATE, 1, 0600);
    for (int i = 0; i < 11; i++) {
        pid_t child = disturb(how);
        long start = now_ms();
        errno = 0;
        long r = call(i, ep);
        long ms = now_ms() - start;
        show(names[i], r, ms);
        if (read_only_ts.tv_sec != 0 || read_only_ts.tv_nsec != WAIT_MS * 1000000L)
            printf("%s's timespec changed\n", names[i]);
        waitpid(child, NULL, 0);
    }
    semctl(sem, 0, IPC_RMID);
    return 0;
}
