/* umlpy's native tracer: spawning guests under ptrace + seccomp, the wait
 * loop, register and memory access, syscall skipping and injection.
 *
 * The loop answers in C every stop that needs no decision (allowed or
 * denied syscalls, signal re-injection, group stops) and returns to the
 * Python guest kernel only for the stops its policy table marks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>
#include <sched.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "tracer_api.h"

_Static_assert(sizeof(struct umlpy_regs) == sizeof(struct user_regs_struct),
               "umlpy_regs must mirror user_regs_struct");

#define PTRACE_OPTIONS (PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK |      \
                        PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |       \
                        PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL |          \
                        PTRACE_O_TRACESYSGOOD)

/* Per-thread flags, indexed by host tid. */
#define TS_SEEN 0x01        /* its first stop was reported */
#define TS_WANT_EXIT 0x02   /* resumed with PTRACE_SYSCALL: report the exit */
#define TS_ANNOUNCED 0x04   /* its parent's fork/clone event reached Python first */
#define TS_STOP_SHIFT 4     /* UMLPY_STOP_* of the current stop, bits 4-5 */
#define TS_RESTORE 0x40     /* a timed wait made again: give its timeout back at the exit */

/* A call a group stop ended with EINTR, by tid modulo WAIT_SLOTS: the
 * discarded signals dropped on its way out (drop_signal) leave it so,
 * even one that came after SIGCONT's: up to STOP_ENDS_NS after the
 * thread was continued, at the same call (rip and rsp). */
#define STOP_ENDS_NS 100000000LL
struct stopped_call {
    int tid;
    long nr;
    unsigned long long rip, rsp;
    long long at_ns;
};

/* A timed wait in progress (registry.TimedWait), by tid modulo WAIT_SLOTS:
 * one that collides is made again as before, with its whole timeout. */
#define WAIT_SLOTS 1024
struct timed_wait {
    int tid;                    /* 0: none */
    long nr;
    long long deadline_ns;      /* CLOCK_MONOTONIC */
    int again;                  /* made again with the time it had left */
    unsigned long long rip, rsp;    /* where it is made again */
    unsigned long long saved[2];    /* the guest's own timeout, given back at the exit */
    unsigned long long saved_at;    /* where a timespec was (its address) */
};

#define QUEUE_LEN 1024
#define QUEUE_ROOM 64       /* kept free by umlpy_wait for the exits of injections */

struct umlpy_tracer {
    unsigned char action[UMLPY_TABLE_SIZE];
    int err[UMLPY_TABLE_SIZE];
    int wait[UMLPY_TABLE_SIZE];     /* a timed wait's UMLPY_WAIT_* word, or -1 */
    int report_signals;
    unsigned long long ignored_by_default;  /* signals.py's default actions */
    int init_pid;
    int report_init_stops;
    unsigned char *state;
    size_t state_len;
    struct timed_wait waits[WAIT_SLOTS];
    struct stopped_call stopped[WAIT_SLOTS];
    struct umlpy_pathcache *cache;
    long spin_ns;
    long last_gap_ns;   /* how long the last wait for a stop took */
    /* Stops and exits waited for and not yet handled, in the order they
     * are handled (a ring): every thread found stopped at once is served
     * once before any is served again (umlpy_wait), and the exits a wait
     * for one thread's own stop reaped (killed in the middle of an
     * injection) join them. */
    struct { int pid, status; } queue[QUEUE_LEN];
    int qhead, qlen;
};

/* pathcache.c */
struct umlpy_pathcache *umlpy_pathcache_new(size_t max_tid);
void umlpy_pathcache_free(struct umlpy_pathcache *c);
int umlpy_pathcache_answer(struct umlpy_pathcache *c, struct umlpy_tracer *t, int tid,
                           const struct user_regs_struct *r);
long umlpy_read_str(int pid, unsigned long addr, char *buf, unsigned long max);
long umlpy_read_mem(int pid, unsigned long addr, void *buf, unsigned long len);
long umlpy_write_user(int pid, unsigned long addr, const void *buf, unsigned long len);
int umlpy_skip(struct umlpy_tracer *t, int pid, long retval);
int umlpy_cont(struct umlpy_tracer *t, int pid, int sig);

struct umlpy_pathcache *umlpy_tracer_cache(struct umlpy_tracer *t)
{
    return t->cache;
}

static int read_pid_max(void)
{
    int fd = open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC);
    char buf[32];
    long v = 4194304;
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = 0;
            v = strtol(buf, NULL, 10);
        }
        close(fd);
    }
    if (v < 32768 || v > 4194304)
        v = 4194304;
    return (int)v;
}

struct umlpy_tracer *umlpy_tracer_new(void)
{
    struct umlpy_tracer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    for (int i = 0; i < UMLPY_TABLE_SIZE; i++) {
        t->action[i] = UMLPY_ACT_PYTHON;
        t->wait[i] = -1;
    }
    t->state_len = (size_t)read_pid_max() + 1;
    /* calloc of a large block is lazily backed: untouched pages cost nothing */
    t->state = calloc(t->state_len, 1);
    t->cache = umlpy_pathcache_new(t->state_len);
    if (!t->state || !t->cache) {
        free(t->state);
        umlpy_pathcache_free(t->cache);
        free(t);
        return NULL;
    }
    return t;
}

void umlpy_tracer_free(struct umlpy_tracer *t)
{
    if (t) {
        free(t->state);
        umlpy_pathcache_free(t->cache);
        free(t);
    }
}

void umlpy_set_action(struct umlpy_tracer *t, int nr, int action, int err)
{
    if (nr >= 0 && nr < UMLPY_TABLE_SIZE) {
        t->action[nr] = (unsigned char)action;
        t->err[nr] = err;
    }
}

void umlpy_set_wait(struct umlpy_tracer *t, int nr, int how)
{
    if (nr >= 0 && nr < UMLPY_TABLE_SIZE)
        t->wait[nr] = how;
}

int umlpy_harden_self(void)
{
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ? -errno : 0;
}

void umlpy_set_report_signals(struct umlpy_tracer *t, int on)
{
    t->report_signals = on;
}

void umlpy_set_init_pid(struct umlpy_tracer *t, int pid)
{
    t->init_pid = pid;
}

void umlpy_report_init_stops(struct umlpy_tracer *t, int on)
{
    t->report_init_stops = on;
}

static inline unsigned char *state_of(struct umlpy_tracer *t, int pid)
{
    static unsigned char dummy;
    if (pid <= 0 || (size_t)pid >= t->state_len) {
        dummy = 0;
        return &dummy;
    }
    return &t->state[pid];
}

static inline void set_stop(struct umlpy_tracer *t, int pid, int kind)
{
    unsigned char *s = state_of(t, pid);
    *s = (unsigned char)((*s & ~(3 << TS_STOP_SHIFT)) | (kind << TS_STOP_SHIFT));
}

int umlpy_stop_kind(struct umlpy_tracer *t, int pid)
{
    return (*state_of(t, pid) >> TS_STOP_SHIFT) & 3;
}

/* ---- signal forwarding --------------------------------------------- */

static const int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NFORWARDED (int)(sizeof forwarded_signals / sizeof forwarded_signals[0])
static struct sigaction saved_actions[NFORWARDED];
static int saved_valid;
static volatile sig_atomic_t forward_pid;
static volatile sig_atomic_t forward_tty_to_group;

static void forward_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    int saved = errno;
    if (forward_pid <= 0)
        return;
    if (!info || info->si_code <= 0)
        kill(forward_pid, sig);             /* someone ran kill(2) on umlpy */
    else if (forward_tty_to_group)
        kill(-forward_pid, sig);            /* the terminal's, to our group */
    /* else: the terminal signalled a group the guest shares with us */
    errno = saved;
}

void umlpy_set_forward_mode(int tty_to_group)
{
    forward_tty_to_group = tty_to_group;
}

void umlpy_forward_signals_to(int pid)
{
    forward_pid = pid;
    if (!saved_valid && pid > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = forward_handler;
        sa.sa_flags = SA_SIGINFO;   /* no SA_RESTART: waitpid sees EINTR */
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < NFORWARDED; i++)
            sigaction(forwarded_signals[i], &sa, &saved_actions[i]);
        saved_valid = 1;
    }
}

void umlpy_restore_signals(void)
{
    forward_pid = 0;
    if (saved_valid) {
        for (int i = 0; i < NFORWARDED; i++)
            sigaction(forwarded_signals[i], &saved_actions[i], NULL);
        saved_valid = 0;
    }
}

/* ---- spawning --------------------------------------------------------- */

static void child_fail(int fd, int stage, int err)
{
    struct umlpy_setup_report r = {stage, err};
    ssize_t n = write(fd, &r, sizeof r);
    (void)n;
    _exit(127);
}

/* A new network namespace has only "lo", and it is down. */
static int loopback_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n < 0 ? -1 : 0;
}

/* Written by the parent: a process may map only its own ids, and the
 * parent keeps its credentials while the child's are already namespaced. */
static int write_id_maps(int pid, const struct umlpy_spawn_opts *o)
{
    char path[64], map[64];
    /* Without privilege a gid map needs setgroups denied; with it, the
     * child drops its supplementary groups itself (switch_ids). */
    if (!o->switch_ids) {
        snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
        if (write_file(path, "deny") < 0 && errno != ENOENT)
            return -1;
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    snprintf(map, sizeof map, "%d %d 1\n", o->uid_inside, o->uid_outside);
    if (write_file(path, o->uid_map ? o->uid_map : map) < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    snprintf(map, sizeof map, "%d %d 1\n", o->gid_inside, o->gid_outside);
    if (write_file(path, o->gid_map ? o->gid_map : map) < 0)
        return -1;
    return 0;
}

#include "exec_search.h"

/* Our caller's descriptors from `from` up must not reach the guest: under
 * --rootfs they are no guest objects, and they are the caller's, not the
 * sandbox's.  Marked close-on-exec rather than closed: our own pipes to the
 * parent (already close-on-exec) keep working until the exec, and the
 * listener's number, the lowest free one, stays what we report. */
static void keep_only_caller_fds(int from)
{
    if (syscall(SYS_close_range, (unsigned)from, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    /* before Linux 5.11: every number the descriptor limit allows */
    struct rlimit rl;
    long top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        ? (long)rl.rlim_cur : 1L << 20;
    for (long fd = from; fd < top; fd++)
        fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}

static void child_main(int sync_fd, int report_fd, const char *path,
                       char **argv, char **envp,
                       const struct umlpy_spawn_opts *o,
                       const unsigned char *filter, int filter_len)
{
    char c;
    const char *cwd = o->cwd, *root = o->root;
    sigset_t all, saved_mask;
    sigfillset(&all);
    sigprocmask(o->notify ? SIG_BLOCK : SIG_SETMASK, o->notify ? &all : NULL, &saved_mask);
    /* Block until the parent has seized us, so no syscall goes untraced. */
    if (read(sync_fd, &c, 1) != 1)
        child_fail(report_fd, UMLPY_SETUP_SYNC, errno ? errno : EPIPE);
    close(sync_fd);
    if (c != 'g')
        child_fail(report_fd, UMLPY_SETUP_ID_MAP, (int)(unsigned char)c);
    if (o->switch_ids) {
        /* Raw calls: in a raw clone of a threaded process, glibc's set*id
           would signal the parent's threads it believes are ours and wait
           for them forever. */
        if (syscall(SYS_setgroups, 0L, NULL) < 0 ||
            syscall(SYS_setresgid, (long)o->gid_inside, (long)o->gid_inside,
                    (long)o->gid_inside) < 0 ||
            syscall(SYS_setresuid, (long)o->uid_inside, (long)o->uid_inside,
                    (long)o->uid_inside) < 0)
            child_fail(report_fd, UMLPY_SETUP_SETUID, errno);
    }

    /* Python ignores SIGPIPE and SIGXFSZ; a guest must start as if from a
     * shell.  Forwarded signals go back to what umlpy inherited. */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    if (saved_valid)
        for (int i = 0; i < NFORWARDED; i++) {
            struct sigaction sa = saved_actions[i];
            if (sa.sa_handler != SIG_IGN)
                sa.sa_handler = SIG_DFL;
            sa.sa_flags &= ~SA_SIGINFO;
            sigaction(forwarded_signals[i], &sa, NULL);
        }

    if (o->mount_proc) {
        /* Our mounts must never propagate back to the host's namespace. */
        char proc[PATH_MAX];
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            child_fail(report_fd, UMLPY_SETUP_MOUNT_PROC, errno);
        if (snprintf(proc, sizeof proc, "%s/proc", root ? root : "") >= (int)sizeof proc)
            child_fail(report_fd, UMLPY_SETUP_MOUNT_PROC, ENAMETOOLONG);
        if (access(proc, F_OK) == 0 &&
            mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            child_fail(report_fd, UMLPY_SETUP_MOUNT_PROC, errno);
    }
    if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
        child_fail(report_fd, UMLPY_SETUP_HOSTNAME, errno);
    if ((o->clone_flags & UMLPY_NEWNET) && loopback_up() < 0)
        child_fail(report_fd, UMLPY_SETUP_NET, errno);
    if (o->new_pgrp) {
        setpgid(0, 0);
        if (o->tty_fd >= 0) {
            /* We are a background group now: SIGTTOU would stop us. */
            struct sigaction ign = {0}, old;
            ign.sa_handler = SIG_IGN;
            sigaction(SIGTTOU, &ign, &old);
            tcsetpgrp(o->tty_fd, getpid());
            sigaction(SIGTTOU, &old, NULL);
        }
    }

    if (root) {
        if (!(o->clone_flags & UMLPY_NEWUSER) && geteuid() != 0)
            child_fail(report_fd, UMLPY_SETUP_USERNS, EPERM);
        if (chroot(root) < 0)
            child_fail(report_fd, UMLPY_SETUP_CHROOT, errno);
        if (!cwd && chdir("/") < 0)
            child_fail(report_fd, UMLPY_SETUP_CHDIR, errno);
    }
    if (cwd && chdir(cwd) < 0)
        child_fail(report_fd, UMLPY_SETUP_CHDIR, errno);

    keep_only_caller_fds(3 + (o->preserve_fds > 0 ? o->preserve_fds : 0));

    for (int i = 0; i < o->nrlimits && i < 6; i++) {
        struct rlimit rl = {o->rlimit_value[i], o->rlimit_value[i]};
        if (setrlimit(o->rlimit_resource[i], &rl) < 0)
            child_fail(report_fd, UMLPY_SETUP_RLIMIT, errno);
    }

    struct sock_fprog prog = {
        .len = (unsigned short)filter_len,
        .filter = (struct sock_filter *)filter,
    };
    int listener_fd = -1;
    if (o->notify) {
        /* Which fd the listener will be (the lowest free one), told
         * before the filter is in: from then on a write of ours could
         * stop for a tracer that waits for this very report. */
        listener_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, 0);
        if (listener_fd < 0)
            child_fail(report_fd, UMLPY_SETUP_SECCOMP, errno);
        close(listener_fd);
        struct umlpy_setup_report rep = {UMLPY_SETUP_LISTENER, listener_fd};
        if (write(report_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
            child_fail(report_fd, UMLPY_SETUP_SYNC, EPIPE);
        sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(report_fd, UMLPY_SETUP_SECCOMP, errno);
    if (!o->notify) {
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            child_fail(report_fd, UMLPY_SETUP_SECCOMP, errno);
    } else {
        /* A signal must not abandon a call the guest kernel is making for
         * us (a repeated O_CREAT|O_EXCL would fail): only a fatal one
         * interrupts the wait for its answer.  The listener takes the
         * number reported above; umlpy copies it at our execve's stop,
         * before the exec closes ours. */
        long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
        if (listener < 0)
            child_fail(report_fd, UMLPY_SETUP_SECCOMP, errno);
        if (listener != listener_fd)
            child_fail(report_fd, UMLPY_SETUP_SECCOMP, EBADF);
    }

    child_fail(report_fd, UMLPY_SETUP_EXEC, exec_search(path, argv, envp));
}

/* The fd number the child's listener will have (umlpy copies it at the
 * child's execve stop), or -1 if the child failed first (its report is
 * put back for Python to read). */
static int take_listener(int pid, int report_rd, int report_wr)
{
    struct umlpy_setup_report rep;
    struct pollfd p = {report_rd, POLLIN, 0};
    if (poll(&p, 1, 30000) != 1) {       /* a child stopped from outside */
        struct umlpy_setup_report fail = {UMLPY_SETUP_SYNC, ETIMEDOUT};
        kill(pid, SIGKILL);
        if (write(report_wr, &fail, sizeof fail) != (ssize_t)sizeof fail)
            return -1;
        return -1;
    }
    ssize_t k = read(report_rd, &rep, sizeof rep);
    if (k != (ssize_t)sizeof rep)
        return -1;
    if (rep.stage != UMLPY_SETUP_LISTENER) {
        if (write(report_wr, &rep, sizeof rep) != (ssize_t)sizeof rep)
            return -1;
        return -1;
    }
    return rep.err;
}

int umlpy_spawn(struct umlpy_tracer *t, const char *path, char **argv,
                char **envp, const struct umlpy_spawn_opts *opts,
                const unsigned char *filter, int filter_len, int *status_fd)
{
    int listener = -1;
    if (opts->notify)
        return -EINVAL;
    return umlpy_spawn_notified(t, path, argv, envp, opts, filter, filter_len, status_fd,
                                &listener);
}

int umlpy_spawn_notified(struct umlpy_tracer *t, const char *path, char **argv,
                         char **envp, const struct umlpy_spawn_opts *opts,
                         const unsigned char *filter, int filter_len, int *status_fd,
                         int *listener_fd)
{
    *listener_fd = -1;
    int sync_pipe[2], report_pipe[2];
    if (filter_len <= 0 || filter_len > BPF_MAXINSNS)
        return -EINVAL;
    if (pipe2(sync_pipe, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(report_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(sync_pipe[0]);
        close(sync_pipe[1]);
        return -e;
    }
    /* Orphaned guests are re-parented to us, not to the host's init. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    /* A raw clone is a fork that can also open new namespaces; the child
     * calls nothing that needs the parent's thread state (no malloc). */
    pid_t pid = (pid_t)syscall(SYS_clone, (long)(SIGCHLD | opts->clone_flags),
                               NULL, NULL, NULL, NULL);
    if (pid < 0) {
        int e = errno;
        close(sync_pipe[0]);
        close(sync_pipe[1]);
        close(report_pipe[0]);
        close(report_pipe[1]);
        return -e;
    }
    if (pid == 0) {
        close(sync_pipe[1]);
        close(report_pipe[0]);
        child_main(sync_pipe[0], report_pipe[1], path, argv, envp, opts,
                   filter, filter_len);
        _exit(127);
    }
    close(sync_pipe[0]);
    if (!opts->notify)
        close(report_pipe[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_OPTIONS) < 0) {
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(sync_pipe[1]);
        close(report_pipe[0]);
        if (opts->notify)
            close(report_pipe[1]);
        return -e;
    }
    *state_of(t, pid) = TS_SEEN;
    /* "g" lets the child go on; any other byte is the errno of our part. */
    char go = 'g';
    if ((opts->clone_flags & UMLPY_NEWUSER) && write_id_maps(pid, opts) < 0)
        go = (char)(errno ? errno : EPERM);
    if (write(sync_pipe[1], &go, 1) != 1) {
        int e = errno;
        kill(pid, SIGKILL);
        close(sync_pipe[1]);
        close(report_pipe[0]);
        if (opts->notify)
            close(report_pipe[1]);
        return -e;
    }
    if (opts->notify) {
        /* The child blocks its signals until it has told us, so no
         * signal-delivery stop can wait for a tracer that waits here. */
        *listener_fd = go == 'g' ? take_listener(pid, report_pipe[0], report_pipe[1]) : -1;
        close(report_pipe[1]);
    }
    close(sync_pipe[1]);
    *status_fd = report_pipe[0];
    return pid;
}

/* ---- resuming ------------------------------------------------------- */

static int resume(struct umlpy_tracer *t, int pid, int sig)
{
    unsigned char *s = state_of(t, pid);
    int req = (*s & (TS_WANT_EXIT | TS_RESTORE)) ? PTRACE_SYSCALL : PTRACE_CONT;
    set_stop(t, pid, UMLPY_STOP_NONE);
    if (ptrace(req, pid, 0, (void *)(long)sig) < 0)
        return -errno;
    return 0;
}

int umlpy_cont(struct umlpy_tracer *t, int pid, int sig)
{
    return resume(t, pid, sig);
}

int umlpy_listen(struct umlpy_tracer *t, int pid)
{
    set_stop(t, pid, UMLPY_STOP_OTHER);
    if (ptrace(PTRACE_LISTEN, pid, 0, 0) < 0)
        return -errno;
    return 0;
}

int umlpy_cont_to_exit(struct umlpy_tracer *t, int pid)
{
    *state_of(t, pid) |= TS_WANT_EXIT;
    return resume(t, pid, 0);
}

int umlpy_set_retval(int pid, long retval)
{
    if (ptrace(PTRACE_POKEUSER, pid, offsetof(struct user_regs_struct, rax),
               (void *)retval) < 0)
        return -errno;
    return 0;
}

int umlpy_skip(struct umlpy_tracer *t, int pid, long retval)
{
    /* orig_rax = -1 makes the kernel skip the call and keep rax as set. */
    if (ptrace(PTRACE_POKEUSER, pid,
               offsetof(struct user_regs_struct, orig_rax), (void *)-1L) < 0)
        return -errno;
    int r = umlpy_set_retval(pid, retval);
    if (r < 0)
        return r;
    return resume(t, pid, 0);
}

int umlpy_get_regs(int pid, struct umlpy_regs *regs)
{
    if (ptrace(PTRACE_GETREGS, pid, 0, regs) < 0)
        return -errno;
    return 0;
}

int umlpy_set_regs(int pid, const struct umlpy_regs *regs)
{
    if (ptrace(PTRACE_SETREGS, pid, 0, regs) < 0)
        return -errno;
    return 0;
}

int umlpy_set_syscall(int pid, long nr, const unsigned long *args)
{
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
        return -errno;
    r.orig_rax = (unsigned long)nr;
    r.rdi = args[0];
    r.rsi = args[1];
    r.rdx = args[2];
    r.r10 = args[3];
    r.r8 = args[4];
    r.r9 = args[5];
    if (ptrace(PTRACE_SETREGS, pid, 0, &r) < 0)
        return -errno;
    return 0;
}

/* ---- the wait loop ---------------------------------------------------- */

/* A thread's signal masks, from /proc/TID/status. */
struct sigmasks {
    unsigned long long pending, blocked, ignored, caught;
};

static int read_sigmasks(int pid, struct sigmasks *m)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    static const char *const fields[] = {"SigPnd:\t", "ShdPnd:\t", "SigBlk:\t", "SigIgn:\t",
                                         "SigCgt:\t"};
    unsigned long long v[5] = {0};
    for (int i = 0; i < 5; i++) {
        const char *at = strstr(buf, fields[i]);
        if (!at)
            return -1;
        v[i] = strtoull(at + 8, NULL, 16);
    }
    m->pending = v[0] | v[1];
    m->blocked = v[2];
    m->ignored = v[3];
    m->caught = v[4];
    return 0;
}

static unsigned long long sigbit(int sig)
{
    return 1ULL << (sig - 1);
}

/* The signals Linux would discard when sent to this thread, were it not
 * traced: ignored (SIG_IGN, or left at a default action of ignore) and
 * not blocked.  A traced thread gets them anyway, in a signal-delivery
 * stop (the kernel does not discard a signal a tracer may want). */
static unsigned long long discarded(const struct umlpy_tracer *t, const struct sigmasks *m)
{
    unsigned long long ignored = m->ignored | (t->ignored_by_default & ~m->caught);
    return ignored & ~m->blocked & ~(sigbit(SIGKILL) | sigbit(SIGSTOP));
}

/* Whether thread pid catches or ignores sig (SigCgt/SigIgn in its
 * status): then the host delivers it as to any process, and the guest
 * kernel need not see it.  A guest init that takes a fast interval timer
 * would otherwise spend all its time waiting for Python. */
static int handled_by_process(int pid, int sig)
{
    struct sigmasks m;
    return read_sigmasks(pid, &m) == 0 && ((m.ignored | m.caught) & sigbit(sig));
}

#define ERESTARTNOINTR_ 513     /* the kernel's own: restart the call, whatever happens */

/* ---- timed waits -------------------------------------------------------
 * sigtimedwait, epoll_wait and semtimedop fail with EINTR when a signal
 * wakes them, and are never restarted by Linux.  A signal the guest would never have
 * received natively (drop_signal) wakes them all the same, so the tracer
 * makes the call again; natively it would have gone on to its deadline,
 * not waited its whole timeout anew.  So the call stops at its entry (in
 * C only, and only with a finite timeout: policy's TIMED rule; or for
 * Python, under --trace-all or when something hooks it), where its
 * deadline is noted (t->wait says which calls are timed waits, in every
 * mode); made again, it waits what is left (its timeout argument changed
 * for that call and given back at its exit, so the guest finds its
 * registers and memory as it left them), and one whose time is up
 * returns what it returns then.  A call made again stops at its entry
 * again, for Python too under --trace-all: there the deadline is kept,
 * not noted anew. */

static long long monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
}

static const size_t arg_offset[6] = {
    offsetof(struct user_regs_struct, rdi), offsetof(struct user_regs_struct, rsi),
    offsetof(struct user_regs_struct, rdx), offsetof(struct user_regs_struct, r10),
    offsetof(struct user_regs_struct, r8), offsetof(struct user_regs_struct, r9)};

static unsigned long long arg_of(const struct user_regs_struct *r, int how)
{
    return *(const unsigned long long *)((const char *)r + arg_offset[(how & 0x0f) % 6]);
}

/* The call's timeout in ns, or -1 if it has none (or it cannot be read). */
static long long timeout_of(int pid, int how, const struct user_regs_struct *r)
{
    unsigned long long arg = arg_of(r, how);
    if (!(how & UMLPY_WAIT_TIMESPEC))
        return (int)arg > 0 ? (int)arg * 1000000LL : -1;
    struct timespec ts;
    if (!arg || umlpy_read_mem(pid, arg, &ts, sizeof ts) != sizeof ts || ts.tv_sec < 0 ||
        ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L || ts.tv_sec > 1000000000L)
        return -1;
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* At the entry of a timed wait: note its deadline, or, if it is the one
 * drop_signal made again, have its exit stop give its timeout back. */
static void timed_wait_began(struct umlpy_tracer *t, int pid, long nr,
                             const struct user_regs_struct *r)
{
    struct timed_wait *w = &t->waits[pid % WAIT_SLOTS];
    if (w->tid == pid && w->again) {
        if (w->nr == nr && w->rip == r->rip && w->rsp == r->rsp)
            *state_of(t, pid) |= TS_RESTORE;
        return;     /* else a wait within it (a handler's) goes as before */
    }
    long long timeout = timeout_of(pid, t->wait[nr], r);
    w->tid = timeout < 0 ? 0 : pid;
    w->nr = nr;
    w->again = 0;
    w->deadline_ns = monotonic_ns() + timeout;
}

/* At the exit of a wait made again: the guest's own timeout back.  Not
 * yet if a handler of Python's made another call of it (a sleep before
 * the wait is made again, netwait.py): that wait, made again at the same
 * place, gives it back at its own exit. */
static void timed_wait_ended(struct umlpy_tracer *t, int pid)
{
    struct timed_wait *w = &t->waits[pid % WAIT_SLOTS];
    if (w->tid != pid || !w->again)
        return;
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
        return;
    if ((long)r.orig_rax != w->nr && (long)r.orig_rax != -1)
        return;     /* -1: skipped (a hook answered it), its registers as they were */
    int how = t->wait[w->nr];
    if (how & UMLPY_WAIT_TIMESPEC)
        umlpy_write_mem(pid, w->saved_at, w->saved, sizeof w->saved);
    else
        ptrace(PTRACE_POKEUSER, pid, arg_offset[(how & 0x0f) % 6], (void *)w->saved[0]);
    w->again = 0;
}

/* drop_signal's EINTR of a timed wait (registers r): sets *result to
 * what the call gives now (its result if its time is up, else
 * -ERESTARTNOINTR with the time left as its timeout) and returns 1, or
 * returns 0 if it is no wait noted here (it is made again whole: one with
 * no timeout). */
static int timed_wait_interrupted(struct umlpy_tracer *t, int pid,
                                  const struct user_regs_struct *r, long *result)
{
    long nr = (long)r->orig_rax;
    struct timed_wait *w = &t->waits[pid % WAIT_SLOTS];
    if (nr >= UMLPY_TABLE_SIZE || t->wait[nr] < 0 || w->tid != pid || w->nr != nr ||
        w->again)
        return 0;
    int how = t->wait[nr];
    unsigned long long arg = arg_of(r, how);
    if (how & UMLPY_WAIT_TIMESPEC ? arg == 0 : (int)arg <= 0)
        return 0;   /* no timeout: the wait noted was an earlier one */
    long long left = w->deadline_ns - monotonic_ns();
    if (left <= 0) {
        w->tid = 0;
        *result = how & UMLPY_WAIT_EAGAIN ? -EAGAIN : 0;
        return 1;
    }
    if (how & UMLPY_WAIT_TIMESPEC) {
        struct timespec ts = {left / 1000000000LL, left % 1000000000LL};
        if (umlpy_read_mem(pid, arg, w->saved, sizeof w->saved) != sizeof w->saved ||
            umlpy_write_mem(pid, arg, &ts, sizeof ts) != sizeof ts)
            return 0;
        w->saved_at = arg;
    } else {
        w->saved[0] = arg;
        long ms = (long)((left + 999999) / 1000000);
        if (ptrace(PTRACE_POKEUSER, pid, arg_offset[how & 0x0f], (void *)ms) < 0)
            return 0;
    }
    w->again = 1;
    w->rip = r->rip;
    w->rsp = r->rsp;
    *result = -ERESTARTNOINTR_;
    return 1;
}

/* pid sits in the signal-delivery stop of sig, which it would never have
 * received natively (discarded()): drop it, and have the call it woke go
 * on.  A call that returns ERESTART* is restarted by the kernel once no
 * handler runs (read, waitid, futex, poll, nanosleep...: those that keep
 * their deadline keep it); one that returned EINTR (sigtimedwait,
 * epoll_wait: calls Linux never restarts) is restarted here, unless
 * another signal that is neither discarded nor blocked is pending too:
 * that one interrupts it natively as well.  Nor when the thread was
 * stopped and continued meanwhile (ended_by_stop): there Linux too fails
 * those calls with EINTR (man 7 signal).  Only at the instruction after
 * the syscall (a handler run for an earlier signal of the same return has
 * moved rip).  A timed wait made again waits only the time it had left
 * (timed_wait_interrupted); another call with a relative timeout that
 * Linux does not restart itself (a socket's SO_RCVTIMEO) waits it anew. */
/* At a group stop: note the call it ended with EINTR, if any. */
static void note_stopped_call(struct umlpy_tracer *t, int pid)
{
    struct user_regs_struct r;
    struct stopped_call *c = &t->stopped[pid % WAIT_SLOTS];
    if (ptrace(PTRACE_GETREGS, pid, 0, &r) == 0 && (long)r.orig_rax >= 0 &&
        (long)r.rax == -EINTR) {
        c->tid = pid;
        c->nr = (long)r.orig_rax;
        c->rip = r.rip;
        c->rsp = r.rsp;
        c->at_ns = monotonic_ns();
    } else if (c->tid == pid) {
        c->tid = 0;
    }
}

/* At the end of a group stop (SIGCONT): its call's time starts now. */
static void note_continued(struct umlpy_tracer *t, int pid)
{
    struct stopped_call *c = &t->stopped[pid % WAIT_SLOTS];
    if (c->tid == pid)
        c->at_ns = monotonic_ns();
}

/* Whether the EINTR of the call in r is a group stop's, which Linux
 * gives the guest too (man 7 signal). */
static int ended_by_stop(struct umlpy_tracer *t, int pid, const struct user_regs_struct *r)
{
    const struct stopped_call *c = &t->stopped[pid % WAIT_SLOTS];
    return c->tid == pid && c->nr == (long)r->orig_rax && c->rip == r->rip &&
           c->rsp == r->rsp && monotonic_ns() - c->at_ns < STOP_ENDS_NS;
}

static void drop_signal(struct umlpy_tracer *t, int pid, int sig, const struct sigmasks *m)
{
    struct user_regs_struct r;
    if ((m->pending & ~m->blocked & ~sigbit(sig) & ~discarded(t, m)) == 0 &&
        ptrace(PTRACE_GETREGS, pid, 0, &r) == 0 && (long)r.orig_rax >= 0 &&
        (long)r.rax == -EINTR && !ended_by_stop(t, pid, &r)) {
        unsigned char insn[2];
        if (umlpy_read_mem(pid, r.rip - 2, insn, 2) == 2 && insn[0] == 0x0f && insn[1] == 0x05) {
            long result = -ERESTARTNOINTR_;
            timed_wait_interrupted(t, pid, &r, &result);
            ptrace(PTRACE_POKEUSER, pid, offsetof(struct user_regs_struct, rax),
                   (void *)result);
        }
    }
    resume(t, pid, 0);
}

void umlpy_set_ignored_by_default(struct umlpy_tracer *t, unsigned long long mask)
{
    t->ignored_by_default = mask;
}

static int is_stopping_signal(int sig)
{
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

static void fill_syscall(struct umlpy_event *ev, const struct user_regs_struct *r)
{
    ev->nr = (long)r->orig_rax;
    ev->args[0] = r->rdi;
    ev->args[1] = r->rsi;
    ev->args[2] = r->rdx;
    ev->args[3] = r->r10;
    ev->args[4] = r->r8;
    ev->args[5] = r->r9;
    ev->ip = r->rip;
}

/* One waited-for stop: returns 1 if ev must go to Python, 0 if handled. */
static int handle_status(struct umlpy_tracer *t, int pid, int status,
                         struct umlpy_event *ev)
{
    unsigned char *s = state_of(t, pid);
    ev->kind = UMLPY_EV_NONE;
    ev->pid = pid;
    ev->status = status;
    ev->sig = 0;
    ev->ptrace_event = 0;
    ev->msg = 0;

    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        *s = 0;
        if (t->waits[pid % WAIT_SLOTS].tid == pid)
            t->waits[pid % WAIT_SLOTS].tid = 0;
        if (t->stopped[pid % WAIT_SLOTS].tid == pid)
            t->stopped[pid % WAIT_SLOTS].tid = 0;
        ev->kind = UMLPY_EV_EXIT;
        return 1;
    }
    if (!WIFSTOPPED(status))
        return 0;

    int sig = WSTOPSIG(status);
    int event = (unsigned)status >> 16;

    if (!(*s & TS_SEEN)) {
        /* A new tracee reports first; it may even beat its parent's event. */
        *s |= TS_SEEN;
        set_stop(t, pid, UMLPY_STOP_OTHER);
        if (event == PTRACE_EVENT_STOP) {
            if (*s & TS_ANNOUNCED) {
                *s &= ~TS_ANNOUNCED;
                resume(t, pid, 0);
                return 0;
            }
            ev->kind = UMLPY_EV_NEW;
            return 1;
        }
    }

    if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
        struct user_regs_struct r;
        if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
            return 0;       /* killed under us; its exit will be reported */
        long nr = (long)r.orig_rax;
        int act = (nr >= 0 && nr < UMLPY_TABLE_SIZE) ? t->action[nr]
                                                     : UMLPY_ACT_PYTHON;
        set_stop(t, pid, UMLPY_STOP_SECCOMP);
        /* a timed wait's deadline is noted whoever decides the call (one
         * that stops for Python too: --trace-all, a hook, --net-rate) */
        if (nr >= 0 && nr < UMLPY_TABLE_SIZE && t->wait[nr] >= 0)
            timed_wait_began(t, pid, nr, &r);
        if (act == UMLPY_ACT_TIMED) {
            resume(t, pid, 0);
            return 0;
        }
        if (act == UMLPY_ACT_ALLOW) {
            resume(t, pid, 0);
            return 0;
        }
        if (act == UMLPY_ACT_ERRNO) {
            umlpy_skip(t, pid, -(long)t->err[nr]);
            return 0;
        }
        if (act == UMLPY_ACT_CACHE && umlpy_pathcache_answer(t->cache, t, pid, &r))
            return 0;
        ev->kind = UMLPY_EV_SYSCALL;
        fill_syscall(ev, &r);
        return 1;
    }

    if (sig == (SIGTRAP | 0x80)) {
        if (*s & TS_RESTORE) {
            *s &= ~TS_RESTORE;
            timed_wait_ended(t, pid);
        }
        if (*s & TS_WANT_EXIT) {
            *s &= ~TS_WANT_EXIT;
            set_stop(t, pid, UMLPY_STOP_SYSCALL_EXIT);
            struct user_regs_struct r;
            if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
                return 0;
            ev->kind = UMLPY_EV_SYSCALL_EXIT;
            fill_syscall(ev, &r);
            ev->retval = (long)r.rax;
            return 1;
        }
        resume(t, pid, 0);
        return 0;
    }

    if (event == PTRACE_EVENT_STOP) {
        set_stop(t, pid, UMLPY_STOP_OTHER);
        if (is_stopping_signal(sig)) {
            note_stopped_call(t, pid);
            if (pid == t->init_pid && t->report_init_stops) {
                ev->kind = UMLPY_EV_GROUP_STOP;
                ev->sig = sig;
                return 1;
            }
            /* Group stop: stay stopped, yet let SIGCONT wake the thread. */
            ptrace(PTRACE_LISTEN, pid, 0, 0);
            return 0;
        }
        note_continued(t, pid);
        resume(t, pid, 0);
        return 0;
    }

    if (sig == SIGTRAP && event) {
        unsigned long msg = 0;
        if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &msg) < 0)
            return 0;       /* killed since it stopped (it waited its turn): its exit follows */
        ev->msg = msg;
        ev->ptrace_event = event;
        set_stop(t, pid, UMLPY_STOP_OTHER);
        switch (event) {
        case PTRACE_EVENT_FORK:
        case PTRACE_EVENT_VFORK:
        case PTRACE_EVENT_CLONE:
            ev->kind = UMLPY_EV_CHILD;
            /* Python learns the child now: its first stop need not be told */
            if ((int)msg > 0 && !(*state_of(t, (int)msg) & TS_SEEN))
                *state_of(t, (int)msg) |= TS_ANNOUNCED;
            return 1;
        case PTRACE_EVENT_EXEC:
            if ((int)msg != pid && (int)msg > 0) {
                /* A non-leader thread exec'd and took over the leader's tid. */
                unsigned char *old = state_of(t, (int)msg);
                *s = (unsigned char)(*old | TS_SEEN);
                *old = 0;
                set_stop(t, pid, UMLPY_STOP_OTHER);
            }
            ev->kind = UMLPY_EV_EXEC;
            return 1;
        default:
            resume(t, pid, 0);
            return 0;
        }
    }

    /* Signal-delivery stop: re-inject the signal unless Python wants it.
     * A pid-namespace init would drop signals whose action is the default
     * one; Python decides what an ordinary process would have suffered. */
    set_stop(t, pid, UMLPY_STOP_OTHER);
    if (t->report_signals || (pid == t->init_pid && !(t->ignored_by_default & sigbit(sig)) &&
                              (sig == SIGSTOP || !handled_by_process(pid, sig)))) {
        ev->kind = UMLPY_EV_SIGNAL;
        ev->sig = sig;
        return 1;
    }
    struct sigmasks m;
    if (sig >= 1 && sig <= 64 && read_sigmasks(pid, &m) == 0 && (discarded(t, &m) & sigbit(sig))) {
        drop_signal(t, pid, sig, &m);
        return 0;
    }
    resume(t, pid, sig);
    return 0;
}

/* Poll for the next stop for up to spin_ns before sleeping in waitpid: a
 * guest that stops again within microseconds finds the tracer running, not
 * halted on an idle CPU that must be woken (the costly part of a hand-off
 * between CPUs). */
static long elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000L + b->tv_nsec - a->tv_nsec;
}

static pid_t wait_any(struct umlpy_tracer *t, int *status)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* only while stops come that fast: a guest that computes between its
     * calls does not keep a CPU busy for nothing */
    if (t->spin_ns > 0 && t->last_gap_ns < 4 * t->spin_ns) {
        for (;;) {
            pid_t pid = waitpid(-1, status, __WALL | WNOHANG);
            if (pid != 0) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                t->last_gap_ns = elapsed_ns(&start, &now);
                return pid;
            }
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (elapsed_ns(&start, &now) > t->spin_ns)
                break;
            sched_yield();      /* a guest thread on this CPU runs meanwhile */
        }
    }
    pid_t pid = waitpid(-1, status, __WALL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    t->last_gap_ns = elapsed_ns(&start, &now);
    return pid;
}

void umlpy_set_spin(struct umlpy_tracer *t, long spin_ns)
{
    t->spin_ns = spin_ns;
}

static void enqueue(struct umlpy_tracer *t, int pid, int status)
{
    if (t->qlen < QUEUE_LEN) {
        int at = (t->qhead + t->qlen) % QUEUE_LEN;
        t->queue[at].pid = pid;
        t->queue[at].status = status;
        t->qlen++;
    }
}

/* The next stop or exit to handle.  waitpid(-1) alone is unfair: Linux
 * looks at the tracer's own children first, then at its tracees newest
 * first, so while young threads keep stopping (16 children each making
 * calls the guest kernel serves) an older one, their parent, waits
 * behind all of them, again and again: its fork, its own calls.  So once
 * the queue is empty, every thread stopped by then is collected
 * (WNOHANG) and served in turn before anyone is served twice. */
static int next_status(struct umlpy_tracer *t, int *pid, int *status)
{
    if (t->qlen == 0) {
        pid_t p = wait_any(t, status);
        if (p < 0)
            return -errno;
        enqueue(t, p, *status);
        while (t->qlen < QUEUE_LEN - QUEUE_ROOM) {
            int st;
            p = waitpid(-1, &st, __WALL | WNOHANG);
            if (p <= 0)
                break;
            enqueue(t, p, st);
        }
    }
    *pid = t->queue[t->qhead].pid;
    *status = t->queue[t->qhead].status;
    t->qhead = (t->qhead + 1) % QUEUE_LEN;
    t->qlen--;
    return 0;
}

int umlpy_wait(struct umlpy_tracer *t, struct umlpy_event *ev)
{
    for (;;) {
        int status = 0, pid = 0;
        int r = next_status(t, &pid, &status);
        if (r < 0) {
            if (r == -EINTR)
                continue;
            if (r == -ECHILD) {
                ev->kind = UMLPY_EV_NONE;
                ev->pid = 0;
                return 0;
            }
            return r;
        }
        if (handle_status(t, pid, status, ev))
            return 0;
    }
}

/* ---- guest memory ------------------------------------------------- */

static long proc_mem_io(int pid, unsigned long addr, void *buf,
                        unsigned long len, int write_it)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int fd = open(path, (write_it ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unsigned long done = 0;
    while (done < len) {
        ssize_t n = write_it ? pwrite(fd, (char *)buf + done, len - done, (off_t)(addr + done))
                             : pread(fd, (char *)buf + done, len - done, (off_t)(addr + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (done == 0) {
                int e = errno;
                close(fd);
                return -e;
            }
            break;
        }
        if (n == 0)
            break;
        done += (unsigned long)n;
    }
    close(fd);
    return (long)done;
}

long umlpy_read_mem(int pid, unsigned long addr, void *buf, unsigned long len)
{
    if (len == 0)
        return 0;
    struct iovec local = {buf, len}, remote = {(void *)addr, len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n >= 0)
        return n;
    if (errno == EFAULT)
        return -EFAULT;
    return proc_mem_io(pid, addr, buf, len, 0);
}

long umlpy_write_mem(int pid, unsigned long addr, const void *buf, unsigned long len)
{
    if (len == 0)
        return 0;
    struct iovec local = {(void *)buf, len}, remote = {(void *)addr, len};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (n == (ssize_t)len)
        return n;
    /* Read-only pages (e.g. code) can only be written through /proc/PID/mem. */
    unsigned long done = n > 0 ? (unsigned long)n : 0;
    long m = proc_mem_io(pid, addr + done, (char *)buf + done, len - done, 1);
    if (m < 0)
        return done ? (long)done : m;
    return (long)(done + (unsigned long)m);
}

long umlpy_write_user(int pid, unsigned long addr, const void *buf, unsigned long len)
{
    if (len == 0)
        return 0;
    struct iovec local = {(void *)buf, len}, remote = {(void *)addr, len};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    return n < 0 ? -errno : (long)n;
}

long umlpy_read_str(int pid, unsigned long addr, char *buf, unsigned long max)
{
    unsigned long got = 0;
    while (got < max) {
        /* Never read across a page we were not asked about: it may be unmapped. */
        unsigned long page_left = 4096 - ((addr + got) & 4095);
        unsigned long want = max - got < page_left ? max - got : page_left;
        long n = umlpy_read_mem(pid, addr + got, buf + got, want);
        if (n <= 0)
            return got ? -EFAULT : (n < 0 ? n : -EFAULT);
        char *nul = memchr(buf + got, 0, (size_t)n);
        if (nul)
            return (long)(nul - buf);
        got += (unsigned long)n;
    }
    return -ENAMETOOLONG;
}

/* ---- syscall injection ---------------------------------------------- */

/* Wait for the next stop of pid that is not a signal-delivery stop; the
 * signals seen on the way are collected so they can be re-raised later. */
static int wait_own(struct umlpy_tracer *t, int pid, int *status, int *pending, int *npending,
                    int req)
{
    for (;;) {
        if (waitpid(pid, status, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (!WIFSTOPPED(*status)) {
            /* killed meanwhile: its exit is still the event loop's to report */
            enqueue(t, pid, *status);
            return -ESRCH;
        }
        int sig = WSTOPSIG(*status);
        int event = (unsigned)*status >> 16;
        if (sig != SIGTRAP && sig != (SIGTRAP | 0x80) && event == 0) {
            if (*npending < 32)
                pending[(*npending)++] = sig;
            if (ptrace(req, pid, 0, 0) < 0)
                return -errno;
            continue;
        }
        return 0;
    }
}

static int is_syscall_stop(int status)
{
    return WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80);
}

static int is_seccomp_stop(int status)
{
    return WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP &&
           ((unsigned)status >> 16) == PTRACE_EVENT_SECCOMP;
}

/* Drive pid, sitting just before a `syscall` instruction with regs set,
 * through that syscall to its exit stop. */
static int run_to_exit(struct umlpy_tracer *t, int pid, int *pending, int *npending)
{
    int status, r;
    if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
        return -errno;
    for (;;) {
        if ((r = wait_own(t, pid, &status, pending, npending, PTRACE_SYSCALL)) < 0)
            return r;
        if (is_syscall_stop(status)) {
            /* entry first, exit second; the seccomp stop may come between */
            if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
                return -errno;
            for (;;) {
                if ((r = wait_own(t, pid, &status, pending, npending, PTRACE_SYSCALL)) < 0)
                    return r;
                if (is_syscall_stop(status))
                    return 0;
                if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
                    return -errno;
            }
        }
        if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
            return -errno;
    }
}

/* From an event stop inside a call (a fork's PTRACE_EVENT_FORK), on to
 * that call's exit stop, where calls may be injected before it returns.
 * 0, or -errno (-ESRCH: killed meanwhile, its exit held for umlpy_wait). */
int umlpy_to_syscall_exit(struct umlpy_tracer *t, int pid)
{
    int pending[32], npending = 0, status, r;
    if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
        return -errno;
    for (;;) {
        if ((r = wait_own(t, pid, &status, pending, &npending, PTRACE_SYSCALL)) < 0)
            return r;
        if (is_syscall_stop(status))
            break;
        if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
            return -errno;
    }
    set_stop(t, pid, UMLPY_STOP_SYSCALL_EXIT);
    for (int i = 0; i < npending; i++)
        syscall(SYS_tkill, (long)pid, (long)pending[i]);
    return 0;
}

int umlpy_inject_syscall(struct umlpy_tracer *t, int pid, long nr,
                         const unsigned long *args, long *result)
{
    int kind = umlpy_stop_kind(t, pid);
    int pending[32], npending = 0, r, status;
    struct user_regs_struct saved, regs;

    if (kind != UMLPY_STOP_SECCOMP && kind != UMLPY_STOP_SYSCALL_EXIT)
        return -EINVAL;
    if (nr == SYS_fork || nr == SYS_vfork || nr == SYS_clone ||
        nr == SYS_clone3 || nr == SYS_execve || nr == SYS_execveat ||
        nr == SYS_exit || nr == SYS_exit_group || nr == SYS_rt_sigreturn)
        return -EINVAL;     /* they never come back to this stop */
    if (ptrace(PTRACE_GETREGS, pid, 0, &saved) < 0)
        return -errno;

    regs = saved;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
    if (kind == UMLPY_STOP_SECCOMP) {
        /* Replace the pending call, run it to its exit stop. */
        regs.orig_rax = (unsigned long)nr;
        if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
            return -errno;
        if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
            return -errno;
        do {
            if ((r = wait_own(t, pid, &status, pending, &npending, PTRACE_SYSCALL)) < 0)
                return r;
            if (!is_syscall_stop(status) && ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
                return -errno;
        } while (!is_syscall_stop(status));
    } else {
        /* At an exit stop rip follows the `syscall` instruction just run. */
        regs.rip = saved.rip - 2;
        regs.rax = (unsigned long)nr;
        if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
            return -errno;
        if ((r = run_to_exit(t, pid, pending, &npending)) < 0)
            return r;
    }
    if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
        return -errno;
    *result = (long)regs.rax;

    if (kind == UMLPY_STOP_SECCOMP) {
        /* Re-issue the original call so the thread is back in its seccomp
         * stop: rewind to the `syscall` instruction and step into it. */
        regs = saved;
        regs.rax = saved.orig_rax;
        regs.rip = saved.rip - 2;
        if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
            return -errno;
        /* PTRACE_CONT, not PTRACE_SYSCALL: the filter stops the call again
         * with no syscall-entry stop before it (one round trip, not two) */
        if (ptrace(PTRACE_CONT, pid, 0, 0) < 0)
            return -errno;
        for (;;) {
            if ((r = wait_own(t, pid, &status, pending, &npending, PTRACE_CONT)) < 0)
                return r;
            if (is_seccomp_stop(status))
                break;
            if (ptrace(PTRACE_CONT, pid, 0, 0) < 0)
                return -errno;
        }
        /* the seccomp stop shows rax = -ENOSYS; restore exactly what was */
        if (ptrace(PTRACE_SETREGS, pid, 0, &saved) < 0)
            return -errno;
    } else {
        if (ptrace(PTRACE_SETREGS, pid, 0, &saved) < 0)
            return -errno;
    }
    set_stop(t, pid, kind);
    for (int i = 0; i < npending; i++)
        syscall(SYS_tkill, (long)pid, (long)pending[i]);
    return 0;
}

/* ---- host-side file helpers for the guest VFS -------------------------- */

struct umlpy_open_how { unsigned long long flags, mode, resolve; };

int umlpy_openat2(int dirfd, const char *path, int flags, int mode,
                  unsigned long long resolve)
{
    struct umlpy_open_how how = {(unsigned long long)(unsigned)flags,
                                 (unsigned long long)(unsigned)mode, resolve};
    long r = syscall(437 /* openat2 */, dirfd, path, &how, sizeof how);
    return r < 0 ? -errno : (int)r;
}

int umlpy_renameat2(int olddirfd, const char *oldpath, int newdirfd,
                    const char *newpath, unsigned int flags)
{
    long r = syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
    return r < 0 ? -errno : 0;
}

long umlpy_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
    long r = syscall(nr, a0, a1, a2, a3, a4, a5);
    return r < 0 ? -errno : r;
}

int umlpy_thread_become(int uid, int gid, int ngroups, const unsigned int *groups,
                        int tolerate_groups)
{
    if (syscall(SYS_unshare, CLONE_FS) < 0)
        return -errno;
    if (uid < 0)
        return 0;
    if (syscall(SYS_setgroups, (long)ngroups, groups) < 0 &&
        !(errno == EPERM && tolerate_groups))
        return -errno;
    if (syscall(SYS_setresgid, (long)gid, (long)gid, (long)gid) < 0)
        return -errno;
    if (syscall(SYS_setresuid, (long)uid, (long)uid, (long)uid) < 0)
        return -errno;
    return 0;
}

int umlpy_kernel_has_mseal(void)
{
    /* an empty range: nothing is sealed, ENOSYS tells an older kernel */
    return syscall(462 /* mseal */, 0UL, 0UL, 0UL) == 0;
}

long umlpy_getdents64(int fd, void *buf, unsigned int count)
{
    long r = syscall(SYS_getdents64, fd, buf, count);
    return r < 0 ? -errno : r;
}

int umlpy_pidfd_getfd(int pidfd, int fd)
{
    long r = syscall(438 /* pidfd_getfd */, pidfd, fd, 0);
    return r < 0 ? -errno : (int)r;
}
