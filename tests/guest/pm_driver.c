/* Process-model driver: pid 1 of the sandbox in tests/test_process_model.py.
 *
 * usage: pm_driver CMD_FD REPLY_FD
 *
 * Reads one command per line from CMD_FD and answers one line on REPLY_FD.
 * It forks "members" that block in a futex wait on a slot of a MAP_SHARED
 * page inherited by every descendant, so any member (child or grandchild,
 * even one re-parented to us) can be told to exit, fork, setsid or setpgid.
 *
 *   fork                 fork a member; answers its pid
 *   spawn PID            member PID forks a member; answers its pid
 *   exit PID CODE        member PID calls _exit(CODE); answers ok
 *   setsid PID           PID calls setsid() itself (PID 1: we do); answers the sid or -EXXX
 *   selfpgid PID PGID    member PID calls setpgid(0, PGID); answers 0 or -EXXX
 *   setpgid PID PGID     we call setpgid(PID, PGID); answers 0 or -EXXX
 *   kill PID SIG         kill(PID, SIG); answers 0 or -EXXX
 *   killpg PGID SIG      kill(-PGID, SIG); answers 0 or -EXXX
 *   wait PID             waitpid(PID, &st, 0) (5 s alarm); answers a status
 *   waitnohang PID       waitpid(PID, &st, WNOHANG), PID may be -1, 0, -PGID
 *   settle PID...        block (5 s at most) until every PID is dead, then
 *                        until each one that is our child can be waited for
 *   view PID...          "PID getpgid getsid state ppid pgrp session" per
 *                        PID, ';'-separated (/proc fields "-" if gone)
 *   quit                 exit 0
 *
 * Statuses: "PID exited CODE", "PID signaled SIG", "0", "-EXXX".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSLOTS 1024

enum { C_EXIT = 1, C_FORK, C_SETSID, C_SETPGID };

struct slot {
    atomic_uint cmd_seq;        /* the driver bumps it to post a command */
    atomic_uint done_seq;       /* the member sets it to cmd_seq when done */
    int cmd, arg, result, err;
};

static struct slot *slots;
static int slot_pid[NSLOTS];
static int next_slot = 1;
static int cmd_fd, reply_fd;

static long futex(atomic_uint *addr, int op, unsigned val, const struct timespec *t)
{
    /* Shared (not FUTEX_PRIVATE_FLAG): the page is shared across processes. */
    return syscall(SYS_futex, (unsigned *)addr, op, val, t, NULL, 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *errname(int e)
{
    static char buf[16];
    switch (e) {
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ECHILD: return "ECHILD";
    case EINVAL: return "EINVAL";
    case EINTR: return "EINTR";
    case EAGAIN: return "EAGAIN";
    }
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(reply_fd, buf + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(3);
        }
        off += w;
    }
}

static void reply_rc(long rc)
{
    if (rc < 0)
        reply("-%s", errname(errno));
    else
        reply("%ld", rc);
}

/* A member: wait for commands on slot idx, forever. */
static void member(int idx) __attribute__((noreturn));
static void member(int idx)
{
    struct slot *s = &slots[idx];
    unsigned seen = 0;
    close(cmd_fd);
    close(reply_fd);
    for (;;) {
        unsigned seq;
        while ((seq = atomic_load(&s->cmd_seq)) == seen)
            futex(&s->cmd_seq, FUTEX_WAIT, seen, NULL);
        seen = seq;
        int result = 0, err = 0;
        switch (s->cmd) {
        case C_EXIT:
            _exit(s->arg);
        case C_FORK: {
            int child_slot = s->arg;
            pid_t pid = fork();
            if (pid == 0)
                member(child_slot);
            result = pid;
            err = pid < 0 ? errno : 0;
            break;
        }
        case C_SETSID:
            result = setsid();
            err = result < 0 ? errno : 0;
            break;
        case C_SETPGID:
            result = setpgid(0, s->arg);
            err = result < 0 ? errno : 0;
            break;
        default:
            result = -1;
            err = EINVAL;
        }
        s->result = result;
        s->err = err;
        atomic_store(&s->done_seq, seen);
        futex(&s->done_seq, FUTEX_WAKE, 1, NULL);
    }
}

static int slot_of(int pid)
{
    for (int i = 1; i < next_slot; i++)
        if (slot_pid[i] == pid)
            return i;
    return -1;
}

static int new_slot(void)
{
    if (next_slot >= NSLOTS)
        return -1;
    int i = next_slot++;
    memset(&slots[i], 0, sizeof slots[i]);
    return i;
}

/* Post cmd to member pid; 1 and the result, or 0 on timeout/unknown. */
static int post(int pid, int cmd, int arg, int wait_done, int *result, int *err)
{
    int i = slot_of(pid);
    if (i < 0)
        return 0;
    struct slot *s = &slots[i];
    s->cmd = cmd;
    s->arg = arg;
    unsigned seq = atomic_fetch_add(&s->cmd_seq, 1) + 1;
    futex(&s->cmd_seq, FUTEX_WAKE, 1, NULL);
    if (!wait_done)
        return 1;
    double deadline = now() + 5;
    unsigned done;
    while ((done = atomic_load(&s->done_seq)) != seq) {
        double left = deadline - now();
        if (left <= 0)
            return 0;
        struct timespec t = { (time_t)left, (long)((left - (time_t)left) * 1e9) };
        futex(&s->done_seq, FUTEX_WAIT, done, &t);
    }
    *result = s->result;
    *err = s->err;
    return 1;
}

static void reply_status(pid_t pid, int st)
{
    if (pid <= 0)
        reply("%d", pid);
    else if (WIFEXITED(st))
        reply("%d exited %d", pid, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        reply("%d signaled %d", pid, WTERMSIG(st));
    else
        reply("%d other %#x", pid, st);
}

static void on_alarm(int sig) { (void)sig; }

/* settle: every pid dead, then waitable if it is our child. */
static void settle(int *pids, int n)
{
    double deadline = now() + 5;
    for (int k = 0; k < n; k++) {
        int fd = syscall(SYS_pidfd_open, pids[k], 0);
        if (fd < 0) {
            if (errno == ESRCH)
                continue;           /* already reaped */
            reply("error pidfd_open %d %s", pids[k], errname(errno));
            return;
        }
        for (;;) {
            int left = (int)((deadline - now()) * 1000);
            struct pollfd p = { fd, POLLIN, 0 };
            int r = left > 0 ? poll(&p, 1, left) : 0;
            if (r > 0)
                break;
            if (r < 0 && errno == EINTR)
                continue;
            close(fd);
            reply("timeout alive %d", pids[k]);
            return;
        }
        close(fd);
    }
    for (int k = 0; k < n; k++) {
        for (;;) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            int r = waitid(P_PID, pids[k], &si, WEXITED | WNOWAIT | WNOHANG);
            if (r < 0 || si.si_pid == pids[k])
                break;              /* not our child, or ready to be waited for */
            if (now() > deadline) {
                reply("timeout unwaitable %d", pids[k]);
                return;
            }
            struct timespec t = { 0, 1000000 };
            nanosleep(&t, NULL);
        }
    }
    reply("ok");
}

static void view(int *pids, int n)
{
    char out[8192];
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; k < n; k++) {
        int pid = pids[k];
        char pg[24], sid[24], fields[96] = "- - - -";
        pid_t r = getpgid(pid);
        if (r < 0)
            snprintf(pg, sizeof pg, "-%s", errname(errno));
        else
            snprintf(pg, sizeof pg, "%d", r);
        r = getsid(pid);
        if (r < 0)
            snprintf(sid, sizeof sid, "-%s", errname(errno));
        else
            snprintf(sid, sizeof sid, "%d", r);
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t got = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (got > 0) {
                buf[got] = 0;
                char *p = strrchr(buf, ')');
                char state;
                int ppid, pgrp, session;
                if (p && sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) == 4)
                    snprintf(fields, sizeof fields, "%c %d %d %d", state, ppid, pgrp, session);
            }
        }
        len += snprintf(out + len, sizeof out - len, "%s%d %s %s %s",
                        k ? ";" : "", pid, pg, sid, fields);
        if (len >= sizeof out - 128)
            break;
    }
    reply("%s", out);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pm_driver CMD_FD REPLY_FD\n");
        return 2;
    }
    cmd_fd = atoi(argv[1]);
    reply_fd = atoi(argv[2]);
    slots = mmap(NULL, NSLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        return 2;
    /* Members must die of the signals the test sends, whatever we inherited,
     * and dead children must stay zombies until waited for (no SIG_IGN). */
    int deflt[] = { SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGQUIT, SIGPIPE, SIGCHLD };
    for (unsigned i = 0; i < sizeof deflt / sizeof deflt[0]; i++)
        signal(deflt[i], SIG_DFL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;           /* no SA_RESTART: waitpid gets EINTR */
    sigaction(SIGALRM, &sa, NULL);

    FILE *in = fdopen(cmd_fd, "r");
    if (!in)
        return 2;
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        char *words[256];
        int n = 0;
        for (char *save, *w = strtok_r(line, " \t\n", &save); w && n < 256;
             w = strtok_r(NULL, " \t\n", &save))
            words[n++] = w;
        if (n == 0)
            continue;
        const char *c = words[0];
        int a1 = n > 1 ? atoi(words[1]) : 0, a2 = n > 2 ? atoi(words[2]) : 0;
        int result, err;
        if (!strcmp(c, "quit")) {
            reply("bye");
            return 0;
        } else if (!strcmp(c, "fork")) {
            int i = new_slot();
            if (i < 0) {
                reply("error no slot");
                continue;
            }
            pid_t pid = fork();
            if (pid == 0)
                member(i);
            slot_pid[i] = pid;
            reply_rc(pid);
        } else if (!strcmp(c, "spawn")) {
            int i = new_slot();
            if (i < 0)
                reply("error no slot");
            else if (!post(a1, C_FORK, i, 1, &result, &err))
                reply("error no answer from %d", a1);
            else if (result < 0)
                reply("-%s", errname(err));
            else {
                slot_pid[i] = result;
                reply("%d", result);
            }
        } else if (!strcmp(c, "exit")) {
            if (post(a1, C_EXIT, a2, 0, &result, &err))
                reply("ok");
            else
                reply("error unknown member %d", a1);
        } else if (!strcmp(c, "setsid") && a1 == 1) {
            reply_rc(setsid());
        } else if (!strcmp(c, "setsid") || !strcmp(c, "selfpgid")) {
            int cmd = !strcmp(c, "setsid") ? C_SETSID : C_SETPGID;
            if (!post(a1, cmd, a2, 1, &result, &err))
                reply("error no answer from %d", a1);
            else if (result < 0)
                reply("-%s", errname(err));
            else
                reply("%d", result);
        } else if (!strcmp(c, "setpgid")) {
            reply_rc(setpgid(a1, a2));
        } else if (!strcmp(c, "kill")) {
            reply_rc(kill(a1, a2));
        } else if (!strcmp(c, "killpg")) {
            reply_rc(kill(-a1, a2));
        } else if (!strcmp(c, "wait") || !strcmp(c, "waitnohang")) {
            int nohang = c[4] != 0, st = 0;
            if (!nohang)
                alarm(5);
            pid_t r = waitpid(a1, &st, nohang ? WNOHANG : 0);
            if (!nohang)
                alarm(0);
            if (r < 0)
                reply("-%s", errname(errno));
            else
                reply_status(r, st);
        } else if (!strcmp(c, "settle") || !strcmp(c, "view")) {
            int pids[256];
            for (int k = 1; k < n; k++)
                pids[k - 1] = atoi(words[k]);
            if (c[0] == 's')
                settle(pids, n - 1);
            else
                view(pids, n - 1);
        } else {
            reply("error unknown command %s", c);
        }
    }
    return 0;
}
