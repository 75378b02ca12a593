/* The seccomp user-notification server: opens are made by the guest
 * kernel, never by the guest.
 *
 * The guest's filter answers open, openat and creat, the stat family
 * (stat, lstat, newfstatat, statx without AT_EMPTY_PATH) and getdents,
 * with SECCOMP_RET_USER_NOTIF.  The calling thread sleeps in the kernel (only
 * a fatal signal wakes it: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) while
 * this server reads its path once, into its own memory, and either
 *   - finds the answer in the path cache (pathcache.c: Python's entries, or
 *     a delegated tree) and opens the host object itself, as the
 *     sandbox's host identity, or writes the struct stat back, or
 *   - hands the call to Python (umlpy_notifier_next returns), which
 *     decides and opens;
 * then installs the opened file in the caller's fd table and makes the
 * call return its number in one step (SECCOMP_IOCTL_NOTIF_ADDFD with
 * SECCOMP_ADDFD_FLAG_SEND), or sends the return.  Nothing the guest can
 * write is read after the decision, and no host path ever reaches the
 * guest's process.
 *
 * One thread (a Python thread, running here with the GIL released) calls
 * umlpy_notifier_next in a loop; the tracer's ptrace loop runs beside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pathtree.h"
#include "tracer_api.h"

#ifndef SECCOMP_IOCTL_NOTIF_RECV
#define SECCOMP_IOCTL_NOTIF_RECV SECCOMP_IOWR(0, struct seccomp_notif)
#define SECCOMP_IOCTL_NOTIF_SEND SECCOMP_IOWR(1, struct seccomp_notif_resp)
#define SECCOMP_IOCTL_NOTIF_ID_VALID SECCOMP_IOW(2, __u64)
#define SECCOMP_IOCTL_NOTIF_ADDFD SECCOMP_IOW(3, struct seccomp_notif_addfd)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

#define KICK_SIGNAL (SIGRTMIN + 6)  /* wakes the server out of NOTIF_RECV */
#define MAX_GROUPS 256
#define VALID_OPEN_FLAGS 037777703      /* Linux's: what openat2 accepts */

int umlpy_pathcache_open(struct umlpy_pathcache *c, int tid, long nr,
                         const unsigned long *args, char *host, size_t room,
                         long *flags, int *err, int *fd);
long umlpy_pathcache_list(struct umlpy_pathcache *c, int tid, int fd, char *buf,
                          unsigned int count);
typedef int look_fn(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *args,
                    unsigned char *out, size_t room, size_t *len, unsigned long *addr,
                    long *ret);
look_fn umlpy_pathcache_look, umlpy_pathcache_cwd;

struct umlpy_notifier {
    int listener;
    struct umlpy_pathcache *cache;
    /* who replayed opens run as (setfs[ug]id + setgroups on this thread
     * only, while it is in C); switch == 0: umlpy is that identity */
    int switch_creds, uid, gid, ngroups;
    gid_t groups[MAX_GROUPS];
    gid_t own_groups[MAX_GROUPS];
    int own_ngroups;
    volatile int stopping;
    volatile int waiting;       /* in NOTIF_RECV: a kick wakes it */
    pthread_t thread;
    int have_thread;
    unsigned long served, handed, empty;
    int sync_wake;
};

static void kick_handler(int sig) { (void)sig; }

struct umlpy_notifier *umlpy_notifier_new(int listener, struct umlpy_pathcache *cache)
{
    struct umlpy_notifier *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->listener = listener;
    n->cache = cache;
    /* The woken server runs on the caller's CPU (Linux 6.6+): a hand-off
     * to an idle CPU costs several times more.  Older kernels: EINVAL. */
    n->sync_wake = ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                         (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kick_handler;       /* no SA_RESTART: RECV returns EINTR */
    sigaction(KICK_SIGNAL, &sa, NULL);
    return n;
}

void umlpy_notifier_free(struct umlpy_notifier *n)
{
    if (!n)
        return;
    if (n->listener >= 0)
        close(n->listener);
    free(n);
}

int umlpy_notifier_identity(struct umlpy_notifier *n, int uid, int gid,
                            const unsigned int *groups, int ngroups)
{
    if (ngroups < 0 || ngroups > MAX_GROUPS)
        return -EINVAL;
    n->uid = uid;
    n->gid = gid;
    n->ngroups = ngroups;
    for (int i = 0; i < ngroups; i++)
        n->groups[i] = (gid_t)groups[i];
    n->switch_creds = geteuid() == 0 && (uid != 0 || gid != 0);
    return 0;
}

/* Per-thread credentials: the raw syscalls (glibc's would switch every
 * thread of umlpy).  fsuid and fsgid are what the host's permission checks
 * use; a non-zero fsuid also drops this thread's filesystem capabilities. */
static int become_guest(struct umlpy_notifier *n)
{
    if (!n->switch_creds)
        return 0;
    int k = (int)syscall(SYS_getgroups, MAX_GROUPS, n->own_groups);
    n->own_ngroups = k < 0 ? 0 : k;
    if (syscall(SYS_setgroups, n->ngroups, n->groups) < 0)
        return -errno;
    syscall(SYS_setfsgid, n->gid);
    syscall(SYS_setfsuid, n->uid);
    if ((int)syscall(SYS_setfsuid, -1) != n->uid)
        return -EPERM;
    return 0;
}

static void become_self(struct umlpy_notifier *n)
{
    if (!n->switch_creds)
        return;
    syscall(SYS_setfsuid, 0);
    syscall(SYS_setfsgid, 0);
    syscall(SYS_setgroups, n->own_ngroups, n->own_groups);
}

static int id_valid(struct umlpy_notifier *n, uint64_t id)
{
    return ioctl(n->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int umlpy_notifier_valid(struct umlpy_notifier *n, unsigned long long id)
{
    return id_valid(n, id);
}

/* The caller's call returns -err (err > 0) or val. */
int umlpy_notifier_reply(struct umlpy_notifier *n, unsigned long long id, long val)
{
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.id = id;
    if (val < 0 && val >= -4095)
        resp.error = (int32_t)val;
    else
        resp.val = val;
    if (ioctl(n->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
        return -errno;      /* ENOENT: the caller was killed meanwhile */
    return 0;
}

/* Install our fd srcfd in the caller's table and make its call return the
 * new number, atomically.  The number, or -errno (EMFILE: the caller's
 * limit; ENOENT: the caller is gone). */
int umlpy_notifier_install(struct umlpy_notifier *n, unsigned long long id, int srcfd,
                           int cloexec)
{
    struct seccomp_notif_addfd add;
    memset(&add, 0, sizeof add);
    add.id = id;
    add.flags = SECCOMP_ADDFD_FLAG_SEND;
    add.srcfd = (uint32_t)srcfd;
    add.newfd_flags = cloexec ? O_CLOEXEC : 0;
    /* A FIFO's or a device's open counts readers and writers: our copy
     * must be gone before the guest runs on (a lone O_NONBLOCK writer
     * meets ENXIO after its reader's close, as natively), so the number
     * is sent after the close, not with the install. */
    struct stat st;
    int counted = fstat(srcfd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    if (counted)
        add.flags = 0;
    int r = ioctl(n->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
    int err = errno;
    /* Closed at once, with no lock or GIL to wait for: the guest runs on as
     * soon as its fd is in, and its own close must be the file's last
     * reference, as natively (inotify's CLOSE_WRITE, a FIFO's EOF). */
    close(srcfd);
    if (r >= 0 && counted) {
        int sent = umlpy_notifier_reply(n, id, r);
        return sent < 0 ? sent : r;
    }
    if (r >= 0)
        return r;
    r = -err;
    if (r != -ENOENT && r != -ESRCH)
        umlpy_notifier_reply(n, id, r);     /* EMFILE and the like are the call's */
    return r;
}

/* An open whose answer Python put in the path cache, made again here:
 * 1 if answered. */
static int replay(struct umlpy_notifier *n, const struct seccomp_notif *req)
{
    char host[4097];
    long flags = 0;
    int err = 0, fd = -1;
    unsigned long args[6];
    for (int i = 0; i < 6; i++)
        args[i] = (unsigned long)req->data.args[i];
    int r = umlpy_pathcache_open(n->cache, (int)req->pid, req->data.nr, args, host,
                                 sizeof host, &flags, &err, &fd);
    if (r <= 0)
        return 0;
    /* the path was read from a thread that might have died and been
     * replaced meanwhile: it must still be the caller's */
    if (!id_valid(n, req->id)) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    if (err) {
        umlpy_notifier_reply(n, req->id, -(long)err);
        return 1;
    }
    if (fd < 0) {
        /* O_NONBLOCK: a name the cache took for a file could meanwhile be
         * a FIFO, whose open would block this server; such objects are
         * Python's (which waits for them on a thread of their own). */
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)((flags & VALID_OPEN_FLAGS) | O_LARGEFILE |
                               O_NONBLOCK | O_CLOEXEC);
        how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        fd = (int)syscall(SYS_openat2, AT_FDCWD, host, &how, sizeof how);
        if (fd < 0)
            return 0;       /* the host changed under the cache: Python decides */
        struct stat st;
        if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
            close(fd);
            return 0;
        }
        if (!(flags & O_NONBLOCK))
            fcntl(fd, F_SETFL, (int)(flags & ~O_NONBLOCK & ~O_CLOEXEC & 0xffffff));
    }
    umlpy_notifier_install(n, req->id, fd, (flags & O_CLOEXEC) != 0);   /* closes fd */
    return 1;
}

/* A stat-family call answered from the path cache (Python's entries or a
 * delegated tree; an fstat on a copy of the fd): its struct written where
 * the caller asked, then its return; an access or readlink likewise (no
 * bytes, or the link's target), a chdir, fchdir or getcwd (look: the
 * working directories').  1 if answered. */
static int answer_look(struct umlpy_notifier *n, const struct seccomp_notif *req,
                       look_fn *look)
{
    unsigned char out[4096];        /* a struct stat, or a readlink's target */
    size_t len = 0;
    unsigned long addr = 0, args[6];
    long ret = 0;
    for (int i = 0; i < 6; i++)
        args[i] = (unsigned long)req->data.args[i];
    if (look(n->cache, (int)req->pid, req->data.nr, args, out, sizeof out, &len, &addr,
             &ret) <= 0)
        return 0;
    /* the caller's memory is written only while it still waits for us */
    if (!id_valid(n, req->id))
        return 1;
    if (len && umlpy_write_user((int)req->pid, addr, out, len) != (long)len)
        return 0;           /* EFAULT: Python's to say */
    umlpy_notifier_reply(n, req->id, ret);
    return 1;
}

/* getdents64 of a directory the host lists as the guest sees it, made
 * by the path cache on a copy of the caller's fd.  1 if answered. */
static int answer_listing(struct umlpy_notifier *n, const struct seccomp_notif *req)
{
    static __thread char buf[65536];
    if (req->data.nr != SYS_getdents64)
        return 0;
    long got = umlpy_pathcache_list(n->cache, (int)req->pid, (int)req->data.args[0], buf,
                                    (unsigned int)req->data.args[2]);
    if (got == PATHTREE_PYTHON || !id_valid(n, req->id))
        return got != PATHTREE_PYTHON;
    if (got > 0 && umlpy_write_user((int)req->pid, (unsigned long)req->data.args[1], buf,
                                    (unsigned long)got) != got)
        return 0;       /* EFAULT: Python's to say (the offset has moved, as Linux's) */
    umlpy_notifier_reply(n, req->id, got);
    return 1;
}

static int is_look(int nr)
{
    return nr == SYS_stat || nr == SYS_lstat || nr == SYS_newfstatat || nr == SYS_statx ||
           nr == SYS_access || nr == SYS_faccessat || nr == SYS_faccessat2 ||
           nr == SYS_readlink || nr == SYS_readlinkat;
}

static int is_cwd(int nr)
{
    return nr == SYS_chdir || nr == SYS_fchdir || nr == SYS_getcwd;
}

/* Serve notifications until one needs Python: 1 and *out filled; 0 when
 * stopped; -errno on an error of the listener. */
int umlpy_notifier_next(struct umlpy_notifier *n, struct umlpy_notif_req *out)
{
    if (!n->have_thread) {
        n->thread = pthread_self();
        n->have_thread = 1;
    }
    int cred_err = become_guest(n);
    int ret = 0;
    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        n->waiting = 1;
        if (n->stopping) {
            n->waiting = 0;
            ret = 0;
            break;
        }
        int r = ioctl(n->listener, SECCOMP_IOCTL_NOTIF_RECV, &req);
        n->waiting = 0;
        if (r < 0) {
            if (errno == EINTR)
                continue;       /* a kick: stopping is checked above */
            if (errno == ENOENT) {
                n->empty++;
                /* the caller was killed before we got it; or no guest
                 * uses the filter any more (POLLHUP), and RECV would fail
                 * at once, again and again: then nothing is left to serve */
                struct pollfd p = {.fd = n->listener, .events = POLLIN};
                if (poll(&p, 1, 0) == 1 && p.revents & POLLHUP) {
                    ret = 0;
                    break;
                }
                continue;
            }
            ret = -errno;
            break;
        }
        int nr = req.data.nr;
        if (!cred_err && (is_look(nr) ? answer_look(n, &req, umlpy_pathcache_look) :
                          is_cwd(nr) ? answer_look(n, &req, umlpy_pathcache_cwd) :
                          nr == SYS_getdents64 || nr == SYS_getdents ? answer_listing(n, &req) :
                          replay(n, &req))) {
            n->served++;
            continue;
        }
        out->id = req.id;
        out->pid = (int)req.pid;
        out->nr = req.data.nr;
        out->arch = req.data.arch;
        for (int i = 0; i < 6; i++)
            out->args[i] = (unsigned long)req.data.args[i];
        n->handed++;
        ret = 1;
        break;
    }
    become_self(n);
    return ret;
}

/* Make the serving thread return 0 from umlpy_notifier_next (now, or the
 * next time it enters it).  Called from another thread. */
void umlpy_notifier_stop(struct umlpy_notifier *n)
{
    n->stopping = 1;
    if (n->have_thread && n->waiting)
        pthread_kill(n->thread, KICK_SIGNAL);
}

void umlpy_notifier_counts(struct umlpy_notifier *n, unsigned long *out)
{
    out[0] = n->served;
    out[1] = n->handed;
    out[2] = (unsigned long)n->sync_wake;
    out[3] = n->empty;
}
