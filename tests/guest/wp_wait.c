/* wait semantics: waitpid/wait4/waitid with WNOHANG, WUNTRACED, WCONTINUED,
 * __WALL/__WCLONE for a clone()d child with a non-SIGCHLD exit signal,
 * P_PGID, P_PIDFD, WNOWAIT, ECHILD, every exit status, deaths by signal and
 * wait4's rusage.  Prints nothing that depends on pid values: children are
 * named by index, errors by errno name. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case ECHILD: return "ECHILD";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case ENOSYS: return "ENOSYS";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

/* A wait status in words, without pids. */
static const char *wstr(int st)
{
    static char buf[96];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "killed by %s%s", strsignal(WTERMSIG(st)),
                 WCOREDUMP(st) ? " (core)" : "");
    else if (WIFSTOPPED(st))
        snprintf(buf, sizeof buf, "stopped by %s", strsignal(WSTOPSIG(st)));
    else if (WIFCONTINUED(st))
        snprintf(buf, sizeof buf, "continued");
    else
        snprintf(buf, sizeof buf, "raw 0x%x", st);
    return buf;
}

static const char *codestr(int code)
{
    switch (code) {
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_DUMPED: return "CLD_DUMPED";
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_TRAPPED: return "CLD_TRAPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    default: return "?";
    }
}

/* siginfo from waitid in words; `kids` maps si_pid to a child index. */
static const char *istr(const siginfo_t *si, const pid_t *kids, int n)
{
    static char buf[128];
    if (si->si_pid == 0) {
        snprintf(buf, sizeof buf, "nothing (si_pid 0)");
        return buf;
    }
    int idx = -1;
    for (int i = 0; i < n; i++)
        if (kids[i] == si->si_pid)
            idx = i;
    int status_is_sig = si->si_code != CLD_EXITED;
    snprintf(buf, sizeof buf, "child %d %s status %d%s%s uid_ok=%d", idx, codestr(si->si_code),
             si->si_status, status_is_sig ? " " : "",
             status_is_sig ? strsignal(si->si_status) : "", si->si_uid == getuid());
    return buf;
}

static pid_t fork_or_die(void)
{
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        exit(99);
    }
    return p;
}

/* A child that blocks until its pipe is closed, then exits with `code`. */
static pid_t held_child(int code, int *release_fd, int own_pgrp)
{
    int p[2];
    if (pipe(p) < 0)
        exit(98);
    pid_t c = fork_or_die();
    if (c == 0) {
        char ch;
        close(p[1]);
        if (own_pgrp > 0)
            setpgid(0, own_pgrp == 1 ? 0 : own_pgrp);
        while (read(p[0], &ch, 1) < 0 && errno == EINTR)
            ;
        _exit(code);
    }
    close(p[0]);
    *release_fd = p[1];
    return c;
}

static void section_echild(void)
{
    int st;
    siginfo_t si;
    errno = 0;
    pid_t r = wait(&st);
    say("no children: wait -> %d %s", (int)r, ename(errno));
    errno = 0;
    r = waitpid(-1, &st, WNOHANG);
    say("no children: waitpid WNOHANG -> %d %s", (int)r, ename(errno));
    errno = 0;
    int ri = waitid(P_ALL, 0, &si, WEXITED);
    say("no children: waitid P_ALL -> %d %s", ri, ename(errno));
    errno = 0;
    r = wait4(-1, &st, __WALL, NULL);
    say("no children: wait4 __WALL -> %d %s", (int)r, ename(errno));
    errno = 0;
    r = waitpid(1 << 22, &st, 0);       /* above any pid_max default */
    say("not a child: waitpid -> %d %s", (int)r, ename(errno));
    errno = 0;
    ri = waitid(P_PID, 0, &si, WEXITED);
    say("waitid P_PID with pid 0 -> %d %s", ri, ename(errno));
    errno = 0;
    ri = waitid(P_ALL, 0, &si, WNOHANG);  /* none of WEXITED/WSTOPPED/WCONTINUED */
    say("waitid with no state flags -> %d %s", ri, ename(errno));
    errno = 0;
    r = waitpid(-1, &st, WNOWAIT);   /* a waitid-only flag */
    say("waitpid with WNOWAIT -> %d %s", (int)r, ename(errno));
}

static void section_wnohang(void)
{
    int rel, st;
    siginfo_t si;
    pid_t c = held_child(3, &rel, 0);
    pid_t kids[1] = {c};
    errno = 0;
    pid_t r = waitpid(c, &st, WNOHANG);
    say("WNOHANG running child: waitpid -> %s", r == 0 ? "0" : r == c ? "child" : "other");
    r = waitpid(-1, &st, WNOHANG);
    say("WNOHANG running child: waitpid(-1) -> %s", r == 0 ? "0" : r == c ? "child" : "other");
    r = wait4(c, &st, WNOHANG, NULL);
    say("WNOHANG running child: wait4 -> %s", r == 0 ? "0" : r == c ? "child" : "other");
    memset(&si, 0xff, sizeof si);
    int ri = waitid(P_PID, c, &si, WEXITED | WNOHANG);
    say("WNOHANG running child: waitid -> %d %s", ri, istr(&si, kids, 1));
    close(rel);
    r = waitpid(c, &st, 0);
    say("released child: waitpid -> %s %s", r == c ? "child" : "other", wstr(st));
}

static void section_exit_codes(void)
{
    /* every exit status 0..255, reaped by waitpid/wait4/waitid in turn */
    int bad = 0, seen[256] = {0};
    for (int base = 0; base < 256; base += 32) {
        pid_t kids[32];
        for (int i = 0; i < 32; i++) {
            kids[i] = fork_or_die();
            if (kids[i] == 0)
                _exit(base + i);
        }
        for (int i = 0; i < 32; i++) {
            int code = base + i, st = 0;
            siginfo_t si;
            switch (code % 3) {
            case 0:
                if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) ||
                    WEXITSTATUS(st) != code)
                    bad++;
                else
                    seen[code]++;
                break;
            case 1:
                if (wait4(kids[i], &st, 0, NULL) != kids[i] || !WIFEXITED(st) ||
                    WEXITSTATUS(st) != code)
                    bad++;
                else
                    seen[code]++;
                break;
            default:
                memset(&si, 0, sizeof si);
                if (waitid(P_PID, kids[i], &si, WEXITED) != 0 || si.si_pid != kids[i] ||
                    si.si_code != CLD_EXITED || si.si_status != code || si.si_signo != SIGCHLD)
                    bad++;
                else
                    seen[code]++;
            }
        }
    }
    int all = 1;
    for (int i = 0; i < 256; i++)
        all &= seen[i] == 1;
    say("exit statuses 0..255: %s (bad %d)", all ? "all as exited" : "MISSING", bad);
}

static void section_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGKILL, SIGHUP, SIGINT, SIGUSR1, SIGUSR2,
                               SIGPIPE, SIGALRM};
    int n = sizeof sigs / sizeof sigs[0];
    for (int i = 0; i < n; i++) {
        /* half kill themselves, half are killed by the parent */
        int rel = -1, st;
        pid_t c;
        if (i % 2 == 0) {
            c = fork_or_die();
            if (c == 0) {
                signal(sigs[i], SIG_DFL);
                raise(sigs[i]);
                _exit(100);
            }
        } else {
            c = held_child(100, &rel, 0);
            kill(c, sigs[i]);
        }
        if (i % 4 < 2) {
            pid_t r = waitpid(c, &st, 0);
            say("signal %d: waitpid -> %s %s", i, r == c ? "child" : "other", wstr(st));
        } else {
            siginfo_t si;
            pid_t kids[1] = {c};
            memset(&si, 0, sizeof si);
            int r = waitid(P_PID, c, &si, WEXITED);
            say("signal %d: waitid -> %d %s", i, r, istr(&si, kids, 1));
        }
        if (rel >= 0)
            close(rel);
    }
}

static void section_stop_continue(void)
{
    int rel, st;
    siginfo_t si;
    pid_t c = held_child(5, &rel, 0);
    pid_t kids[1] = {c};

    kill(c, SIGSTOP);
    pid_t r = waitpid(c, &st, WUNTRACED);
    say("SIGSTOP: waitpid WUNTRACED -> %s %s", r == c ? "child" : "other", wstr(st));
    r = waitpid(c, &st, WUNTRACED | WNOHANG);
    say("stop already reported: waitpid WUNTRACED|WNOHANG -> %s", r == 0 ? "0" : "child");
    r = waitpid(c, &st, WCONTINUED | WNOHANG);
    say("still stopped: waitpid WCONTINUED|WNOHANG -> %s", r == 0 ? "0" : "child");

    kill(c, SIGCONT);
    r = waitpid(c, &st, WCONTINUED);
    say("SIGCONT: waitpid WCONTINUED -> %s %s", r == c ? "child" : "other", wstr(st));

    /* the same through waitid, with WNOWAIT seeing the stop twice */
    kill(c, SIGSTOP);
    memset(&si, 0, sizeof si);
    int ri = waitid(P_PID, c, &si, WSTOPPED | WNOWAIT);
    say("SIGSTOP: waitid WSTOPPED|WNOWAIT -> %d %s", ri, istr(&si, kids, 1));
    memset(&si, 0, sizeof si);
    ri = waitid(P_PID, c, &si, WSTOPPED);
    say("SIGSTOP: waitid WSTOPPED again -> %d %s", ri, istr(&si, kids, 1));
    memset(&si, 0, sizeof si);
    ri = waitid(P_PID, c, &si, WSTOPPED | WNOHANG);
    say("stop consumed: waitid WSTOPPED|WNOHANG -> %d %s", ri, istr(&si, kids, 1));
    r = wait4(c, &st, WNOHANG, NULL);
    say("stopped child without WUNTRACED: wait4 WNOHANG -> %s", r == 0 ? "0" : "child");

    kill(c, SIGCONT);
    memset(&si, 0, sizeof si);
    ri = waitid(P_PID, c, &si, WCONTINUED);
    say("SIGCONT: waitid WCONTINUED -> %d %s", ri, istr(&si, kids, 1));

    close(rel);
    r = waitpid(c, &st, WUNTRACED | WCONTINUED);
    say("released: waitpid WUNTRACED|WCONTINUED -> %s %s", r == c ? "child" : "other", wstr(st));

    c = fork_or_die();
    if (c == 0) {
        raise(SIGSTOP);
        _exit(6);
    }
    /* a stop the child raised itself */
    r = wait4(c, &st, WUNTRACED, NULL);
    say("child raised SIGSTOP: wait4 WUNTRACED -> %s %s", r == c ? "child" : "other", wstr(st));
    kill(c, SIGCONT);
    r = wait4(c, &st, 0, NULL);     /* no WCONTINUED: the next thing is the exit */
    say("continued child: wait4 -> %s %s", r == c ? "child" : "other", wstr(st));
}

static volatile sig_atomic_t got_usr1, got_chld;
static void on_usr1(int s) { (void)s; got_usr1++; }
static void on_chld(int s) { (void)s; got_chld++; }

static int clone_fn(void *arg)
{
    _exit((int)(long)arg);
}

static void section_clone_child(void)
{
    static char stack[2][64 * 1024];
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    got_usr1 = got_chld = 0;

    int st;
    fflush(stdout);
    pid_t c = clone(clone_fn, stack[0] + sizeof stack[0], SIGUSR1, (void *)7L);
    if (c < 0) {
        say("clone: %s", ename(errno));
        return;
    }
    errno = 0;
    pid_t r;
    do
        r = waitpid(c, &st, 0);
    while (r < 0 && errno == EINTR);
    say("clone child (exit signal SIGUSR1): waitpid without __WALL -> %d %s", (int)r, ename(errno));
    do
        r = waitpid(-1, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    say("clone child: waitpid(-1, WNOHANG) -> %d %s", (int)r, ename(errno));
    do
        r = waitpid(c, &st, __WALL);
    while (r < 0 && errno == EINTR);
    say("clone child: waitpid __WALL -> %s %s", r == c ? "child" : "other", wstr(st));
    say("clone child: parent got SIGUSR1: %s, SIGCHLD: %s", got_usr1 ? "yes" : "no",
        got_chld ? "yes" : "no");

    /* __WCLONE picks clone children only; exit signal 0 is a clone child too */
    got_usr1 = got_chld = 0;
    int rel;
    pid_t normal = held_child(8, &rel, 0);
    c = clone(clone_fn, stack[1] + sizeof stack[1], 0, (void *)9L);
    do
        r = wait4(-1, &st, __WCLONE, NULL);
    while (r < 0 && errno == EINTR);
    say("exit signal 0 child: wait4(-1, __WCLONE) -> %s %s",
        r == c ? "clone child" : r == normal ? "normal child" : "other", wstr(st));
    close(rel);
    do
        r = waitpid(-1, &st, __WCLONE | WNOHANG);
    while (r < 0 && errno == EINTR);
    say("only a normal child left: waitpid(-1, __WCLONE|WNOHANG) -> %d %s", (int)r,
        ename(r < 0 ? errno : 0));
    do
        r = waitpid(-1, &st, 0);
    while (r < 0 && errno == EINTR);
    say("normal child: waitpid(-1) -> %s %s", r == normal ? "normal child" : "other", wstr(st));
    say("exit signal 0: parent got SIGUSR1: %s", got_usr1 ? "yes" : "no");

    signal(SIGUSR1, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
}

static void section_pgid(void)
{
    /* children 0 and 1 in a new process group led by child 0; child 2 stays */
    int rel[3], st;
    pid_t kids[3];
    kids[0] = held_child(20, &rel[0], 1);
    setpgid(kids[0], kids[0]);
    kids[1] = held_child(21, &rel[1], kids[0]);
    setpgid(kids[1], kids[0]);
    kids[2] = held_child(22, &rel[2], 0);
    say("P_PGID: child pgids: %s %s %s",
        getpgid(kids[0]) == kids[0] ? "own" : "?",
        getpgid(kids[1]) == kids[0] ? "child0's" : "?",
        getpgid(kids[2]) == getpgrp() ? "parent's" : "?");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int ri = waitid(P_PGID, kids[0], &si, WEXITED | WNOHANG);
    say("P_PGID nothing exited yet -> %d %s", ri, istr(&si, kids, 3));
    for (int i = 0; i < 3; i++)
        close(rel[i]);
    int got[3] = {0};
    for (int n = 0; n < 2; n++) {
        memset(&si, 0, sizeof si);
        ri = waitid(P_PGID, kids[0], &si, WEXITED);
        for (int i = 0; i < 3; i++)
            if (ri == 0 && si.si_pid == kids[i] && si.si_code == CLD_EXITED &&
                si.si_status == 20 + i)
                got[i]++;
    }
    say("P_PGID reaped: child0 %d child1 %d child2 %d", got[0], got[1], got[2]);
    errno = 0;
    ri = waitid(P_PGID, kids[0], &si, WEXITED);
    say("P_PGID group now empty -> %d %s", ri, ename(errno));
    pid_t r = waitpid(0, &st, 0);       /* any child in our own group */
    say("waitpid(0) -> %s %s", r == kids[2] ? "child2" : "other", wstr(st));

    /* waitpid(-pgid) and waitid(P_PGID, 0) = our own group */
    kids[0] = held_child(30, &rel[0], 1);
    setpgid(kids[0], kids[0]);
    kids[1] = held_child(31, &rel[1], 0);
    close(rel[0]);
    close(rel[1]);
    r = waitpid(-kids[0], &st, 0);
    say("waitpid(-pgid) -> %s %s", r == kids[0] ? "child0" : "other", wstr(st));
    memset(&si, 0, sizeof si);
    ri = waitid(P_PGID, 0, &si, WEXITED);
    say("waitid(P_PGID, 0) -> %d %s", ri, istr(&si, kids, 2));
}

static void section_pidfd(void)
{
    int rel, st;
    pid_t c = held_child(44, &rel, 0);
    pid_t kids[1] = {c};
    int fd = (int)syscall(SYS_pidfd_open, c, 0);
    if (fd < 0) {
        say("pidfd_open: %s", ename(errno));
        close(rel);
        waitpid(c, &st, 0);
        return;
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int ri = waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG);
    say("P_PIDFD running -> %d %s", ri, istr(&si, kids, 1));
    close(rel);
    memset(&si, 0, sizeof si);
    ri = waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT);
    say("P_PIDFD WNOWAIT -> %d %s", ri, istr(&si, kids, 1));
    memset(&si, 0, sizeof si);
    ri = waitid(P_PIDFD, fd, &si, WEXITED);
    say("P_PIDFD -> %d %s", ri, istr(&si, kids, 1));
    errno = 0;
    ri = waitid(P_PIDFD, fd, &si, WEXITED);
    say("P_PIDFD after reap -> %d %s", ri, ename(errno));
    close(fd);

    int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    errno = 0;
    ri = waitid(P_PIDFD, self, &si, WEXITED);
    say("P_PIDFD on self -> %d %s", ri, ename(errno));
    close(self);
    errno = 0;
    ri = waitid(P_PIDFD, 0x7fff, &si, WEXITED);
    say("P_PIDFD bad fd -> %d %s", ri, ename(errno));
    errno = 0;
    ri = waitid(P_PIDFD, 1, &si, WEXITED);   /* not a pidfd */
    say("P_PIDFD on stdout -> %d %s", ri, ename(errno));
}

static void section_wnowait(void)
{
    int st;
    pid_t c = fork_or_die();
    if (c == 0)
        _exit(42);
    pid_t kids[1] = {c};
    siginfo_t si;
    for (int i = 0; i < 2; i++) {
        memset(&si, 0, sizeof si);
        int ri = waitid(P_ALL, 0, &si, WEXITED | WNOWAIT);
        say("WNOWAIT look %d -> %d %s", i + 1, ri, istr(&si, kids, 1));
    }
    memset(&si, 0, sizeof si);
    int ri = waitid(P_PID, c, &si, WEXITED | WNOWAIT | WNOHANG);
    say("WNOWAIT|WNOHANG look 3 -> %d %s", ri, istr(&si, kids, 1));
    pid_t r = waitpid(c, &st, 0);
    say("WNOWAIT then waitpid -> %s %s", r == c ? "child" : "other", wstr(st));
    errno = 0;
    r = waitpid(c, &st, 0);
    say("reaped twice -> %d %s", (int)r, ename(errno));
}

/* ---- SIGCHLD: its si_code for stop/continue/exit, SA_NOCLDSTOP, and
 * children of a parent ignoring SIGCHLD reaping themselves ---- */
static volatile sig_atomic_t chld_codes[16], chld_n, chld_status[16];
static void on_chld_info(int s, siginfo_t *si, void *ctx)
{
    (void)s;
    (void)ctx;
    if (chld_n < 16) {
        chld_status[chld_n] = si->si_status;
        chld_codes[chld_n++] = si->si_code;
    }
}

static void wait_for_chld(int n)
{
    sigset_t none;
    sigemptyset(&none);
    while (chld_n < n)
        sigsuspend(&none);
}

static void section_sigchld(void)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld_info;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);

    for (int nocldstop = 0; nocldstop < 2; nocldstop++) {
        sa.sa_flags = SA_SIGINFO | SA_RESTART | (nocldstop ? SA_NOCLDSTOP : 0);
        sigaction(SIGCHLD, &sa, NULL);
        chld_n = 0;
        int rel, st;
        pid_t c = held_child(12, &rel, 0);
        kill(c, SIGSTOP);
        waitpid(c, &st, WUNTRACED);
        kill(c, SIGCONT);
        waitpid(c, &st, WCONTINUED);
        close(rel);
        waitpid(c, &st, 0);
        /* every notification is pending by now (only one SIGCHLD can be).
         * Only its si_code is printed: its si_status for a stop is read from
         * the group's stop code, which our waitpid(WUNTRACED) consumes; if
         * that wait runs before the notification is built, si_status is 0
         * (natively a tiny window; under ptrace with --trace-all a wide one,
         * see test_wait_and_proc.py). */
        wait_for_chld(1);
        char line[256] = "";
        for (int i = 0; i < chld_n; i++)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s",
                     codestr(chld_codes[i]));
        say("SIGCHLD%s with SIGCHLD blocked:%s", nocldstop ? " (SA_NOCLDSTOP)" : "", line);

        /* unblocked: one SIGCHLD per event, in order */
        sigprocmask(SIG_SETMASK, &old, NULL);
        chld_n = 0;
        c = held_child(13, &rel, 0);
        kill(c, SIGSTOP);
        if (!nocldstop)
            wait_for_chld(1);
        waitpid(c, &st, WUNTRACED);
        kill(c, SIGCONT);
        if (!nocldstop)
            wait_for_chld(2);
        waitpid(c, &st, WCONTINUED);
        close(rel);
        wait_for_chld(nocldstop ? 1 : 3);
        waitpid(c, &st, 0);
        line[0] = 0;
        for (int i = 0; i < chld_n; i++)
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s/%d",
                     codestr(chld_codes[i]), chld_status[i]);
        say("SIGCHLD%s one by one:%s", nocldstop ? " (SA_NOCLDSTOP)" : "", line);
        sigprocmask(SIG_BLOCK, &block, NULL);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* SIGCHLD ignored: children are reaped by the kernel, wait gets ECHILD
     * once they are all gone */
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 3; i++)
        if (fork_or_die() == 0)
            _exit(i);
    int st;
    errno = 0;
    pid_t r = wait(&st);
    say("SIGCHLD ignored: wait -> %d %s", (int)r, ename(errno));
    /* the same with SA_NOCLDWAIT and a handler: still no zombies, but a SIGCHLD */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDWAIT;
    sigaction(SIGCHLD, &sa, NULL);
    chld_n = 0;
    pid_t c = fork_or_die();
    if (c == 0)
        _exit(77);
    wait_for_chld(1);
    errno = 0;
    r = waitpid(c, &st, 0);
    say("SA_NOCLDWAIT: SIGCHLD %s/%d, then waitpid -> %d %s", codestr(chld_codes[0]),
        chld_status[0], (int)r, ename(errno));
    signal(SIGCHLD, SIG_DFL);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void section_rusage(void)
{
    int st;
    pid_t c = fork_or_die();
    if (c == 0) {
        double start = cpu_now();
        volatile unsigned long x = 0;
        while (cpu_now() - start < 0.060)
            for (int i = 0; i < 10000; i++)
                x += i;
        _exit(0);
    }
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t r = wait4(c, &st, 0, &ru);
    double used = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                  ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    say("rusage: wait4 -> %s %s", r == c ? "child" : "other", wstr(st));
    say("child used cpu: %s", used >= 0.045 ? "yes" : "no");
    say("child used cpu is plausible: %s", used < 5.0 ? "yes" : "no");
    struct rusage all;
    getrusage(RUSAGE_CHILDREN, &all);
    double sum = all.ru_utime.tv_sec + all.ru_utime.tv_usec / 1e6 +
                 all.ru_stime.tv_sec + all.ru_stime.tv_usec / 1e6;
    say("RUSAGE_CHILDREN includes it: %s", sum >= used ? "yes" : "no");

    /* wait4 on a child that does no work: rusage of that child only */
    c = fork_or_die();
    if (c == 0)
        _exit(0);
    memset(&ru, 0, sizeof ru);
    wait4(c, &st, 0, &ru);
    used = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    say("idle child's utime is small: %s", used < 0.045 ? "yes" : "no");
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    section_echild();
    section_wnohang();
    section_exit_codes();
    section_signals();
    section_stop_continue();
    section_clone_child();
    section_pgid();
    section_pidfd();
    section_wnowait();
    section_rusage();
    section_sigchld();
    section_echild();
    return 0;
}
