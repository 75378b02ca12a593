/* An ignored signal arriving during a blocking call: Linux discards it
 * when it is sent (unless it is blocked), so the call goes on as if it
 * had never come.  ignored_signal ign|dfl: SIGUSR1 set to SIG_IGN, or
 * SIGWINCH left at its default action (ignore).
 *
 * A helper thread sends the signal to the main thread 100 ms into each
 * call; the call would end by itself at 300 ms (a timeout, or data the
 * helper writes).  Prints each call's result.  Then a handled signal
 * comes with the ignored one: that one interrupts the call as natively
 * (EINTR, the handler once).  Last, a signal that is blocked and ignored
 * is kept pending, and sigtimedwait returns it. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

static int sig, main_tid, fds[2];
static int write_at_ms = -1;    /* the helper writes a byte then, if >= 0 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int round_no, done_no;
static int also_handled;        /* the helper sends SIGUSR2 (handled) first */
static volatile sig_atomic_t handled;

static void on_usr2(int s)
{
    (void)s;
    handled++;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void *helper(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        pthread_mutex_lock(&lock);
        while (round_no == done_no)
            pthread_cond_wait(&go, &lock);
        int w = write_at_ms, both = also_handled;
        pthread_mutex_unlock(&lock);
        sleep_ms(100);
        if (both)
            syscall(SYS_tgkill, getpid(), main_tid, SIGUSR2);
        syscall(SYS_tgkill, getpid(), main_tid, sig);
        if (w >= 0) {
            sleep_ms(w - 100);
            if (write(fds[1], "x", 1) != 1)
                abort();
        }
        pthread_mutex_lock(&lock);
        done_no = round_no;
        pthread_cond_broadcast(&go);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* Start the helper's round; the call follows at once. */
static void begin(int write_ms)
{
    pthread_mutex_lock(&lock);
    write_at_ms = write_ms;
    round_no++;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
}

/* Wait until the helper is done, drain the pipe. */
static void end(void)
{
    pthread_mutex_lock(&lock);
    while (done_no != round_no)
        pthread_cond_wait(&go, &lock);
    pthread_mutex_unlock(&lock);
    char c;
    struct pollfd p = {fds[0], POLLIN, 0};
    while (poll(&p, 1, 0) == 1 && read(fds[0], &c, 1) == 1)
        ;
}

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int ign = argc > 1 && !strcmp(argv[1], "ign");
    sig = ign ? SIGUSR1 : SIGWINCH;
    if (ign)
        signal(sig, SIG_IGN);
    main_tid = (int)syscall(SYS_gettid);
    if (pipe(fds) < 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, helper, NULL);

    struct timespec ms300 = {0, 300000000L};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    begin(-1);
    show("sigtimedwait", sigtimedwait(&set, NULL, &ms300));
    end();

    begin(-1);
    struct timespec rem, req = ms300;
    show("nanosleep", nanosleep(&req, &rem));
    end();

    begin(300);
    char c;
    show("read", read(fds[0], &c, 1));
    end();

    begin(-1);
    struct pollfd p = {fds[0], POLLIN, 0};
    show("poll", poll(&p, 1, 300));
    end();

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
    begin(-1);
    show("epoll_wait", epoll_wait(ep, &out, 1, 300));
    end();

    static int word;
    begin(-1);
    show("futex", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &ms300, NULL, 0));
    end();

    pid_t child = fork();
    if (child == 0) {
        sleep_ms(300);
        _exit(7);
    }
    begin(-1);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    long r = waitid(P_PID, (id_t)child, &si, WEXITED);
    end();
    show("waitid", r < 0 ? r : si.si_status);

    /* a handled signal with it: that one interrupts the call, its handler
     * runs once, the ignored one is nothing */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    also_handled = 1;
    begin(-1);
    r = sigtimedwait(&term, NULL, &ms300);
    end();
    show("sigtimedwait with a handled one", r);
    printf("handler ran: %d\n", (int)handled);
    begin(-1);
    r = epoll_wait(ep, &out, 1, 300);
    end();
    show("epoll_wait with a handled one", r);
    printf("handler ran: %d\n", (int)handled);
    also_handled = 0;

    /* blocked and ignored: kept pending, and taken by sigtimedwait */
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_BLOCK, &one, NULL);
    begin(-1);
    end();
    show("blocked sigtimedwait", sigtimedwait(&one, NULL, &ms300) == sig ? 0 : -1);
    return 0;
}
