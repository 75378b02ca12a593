/* The guest's opener: a process that has joined the sandbox's user,
 * mount, network, IPC and UTS namespaces and taken the guest's ids, and
 * opens paths for the guest kernel as a guest would.
 *
 * What procfs shows, and whom it lets in, depends on who opens: the
 * caller's process (its own /proc entries), its user namespace (ptrace
 * access to guest processes, capabilities), its credentials (kallsyms,
 * kcore).  An open the guest kernel made from one of umlpy's threads
 * would be checked as umlpy.  The opener is checked as a guest: it is
 * in the guest's user namespace with the guest's ids, and has no power
 * in the host's.  It stays outside the guest's pid namespace, so no
 * guest sees or signals it.
 *
 * Protocol (SOCK_SEQPACKET): a request is {int flags; int mode; path};
 * the answer is {int err} with the fd attached (SCM_RIGHTS) when err is
 * 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tracer_api.h"

#define JOINED (UMLPY_NEWUSER | UMLPY_NEWNS | UMLPY_NEWNET | UMLPY_NEWIPC | UMLPY_NEWUTS)

struct request {
    int flags;
    int mode;
    char path[4096];
};

/* A message of one int (an errno), with room for one passed fd. */
struct int_msg {
    int value;
    struct iovec io;
    struct msghdr m;
    char control[CMSG_SPACE(sizeof(int))];
};

static struct msghdr *int_msg(struct int_msg *x, int with_fd)
{
    memset(x, 0, sizeof *x);
    x->io.iov_base = &x->value;
    x->io.iov_len = sizeof x->value;
    x->m.msg_iov = &x->io;
    x->m.msg_iovlen = 1;
    if (with_fd) {
        x->m.msg_control = x->control;
        x->m.msg_controllen = sizeof x->control;
    }
    return &x->m;
}

static void answer(int sock, int err, int fd)
{
    struct int_msg x;
    struct msghdr *m = int_msg(&x, fd >= 0);
    x.value = err;
    if (fd >= 0) {
        struct cmsghdr *c = CMSG_FIRSTHDR(m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    sendmsg(sock, m, MSG_NOSIGNAL);
}

static void serve(int sock)
{
    struct request r;
    for (;;) {
        ssize_t n = recv(sock, &r, sizeof r, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            _exit(0);           /* the guest kernel is gone */
        }
        if ((size_t)n <= offsetof(struct request, path)) {
            answer(sock, EINVAL, -1);
            continue;
        }
        ((char *)&r)[n < (ssize_t)sizeof r ? n : (ssize_t)sizeof r - 1] = 0;
        int fd = open(r.path, r.flags | O_CLOEXEC, r.mode);
        answer(sock, fd < 0 ? errno : 0, fd);
        if (fd >= 0)
            close(fd);
    }
}

/* Every fd above 2 closed but keep[0..n) (ascending): what the threaded
   umlpy held at the clone (a named sandbox's clients' stdio, its locks)
   is no business of a process with the guest's ids, and an end of a
   client's pipe held here would keep the client waiting for EOF. */
static void close_all_but(const int *keep, int n)
{
    unsigned int from = 3;
    for (int i = 0; i < n; i++) {
        if ((unsigned int)keep[i] > from)
            syscall(SYS_close_range, from, (unsigned int)keep[i] - 1, 0);
        if ((unsigned int)keep[i] + 1 > from)
            from = (unsigned int)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

static void sort3(int *v)
{
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (v[j] < v[i]) {
                int t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
}

int umlpy_opener_start(int init_pid, int clone_flags, int uid, int gid, int *pid_out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int pidfd = (int)syscall(SYS_pidfd_open, init_pid, 0);
    if (pidfd < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    int status_pipe[2];
    if (pipe2(status_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        close(pidfd);
        return -e;
    }
    /* a raw clone: no atfork handlers of the (threaded) Python process */
    pid_t pid = (pid_t)syscall(SYS_clone, (long)SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        int keep[3] = { sv[1], status_pipe[1], pidfd };
        sort3(keep);
        close_all_but(keep, 3);
        int err = 0;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if ((clone_flags & JOINED) && setns(pidfd, clone_flags & JOINED) < 0)
            err = errno;
        if (!err) {
            /* Raw calls: glibc's set*id would signal every thread it thinks
               we have (the threaded parent's, in a raw clone) and wait for
               them forever. */
            syscall(SYS_setgroups, 0L, NULL);   /* refused where setgroups is denied */
            if (syscall(SYS_setresgid, (long)gid, (long)gid, (long)gid) < 0 ||
                syscall(SYS_setresuid, (long)uid, (long)uid, (long)uid) < 0)
                err = errno;
        }
        if (!err && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            err = errno;
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);     /* no guest may ptrace it */
        if (write(status_pipe[1], &err, sizeof err) != sizeof err || err)
            _exit(1);
        close(status_pipe[1]);
        close(pidfd);
        serve(sv[1]);
        _exit(0);
    }
    int e = pid < 0 ? errno : 0;
    close(sv[1]);
    close(pidfd);
    close(status_pipe[1]);
    int err = e;
    if (!e && read(status_pipe[0], &err, sizeof err) != sizeof err)
        err = EPIPE;
    close(status_pipe[0]);
    if (err) {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        close(sv[0]);
        return -err;
    }
    *pid_out = pid;
    return sv[0];
}

int umlpy_opener_open(int sock, const char *path, int flags, int mode)
{
    struct request r;
    size_t len = strlen(path);
    if (len >= sizeof r.path)
        return -ENAMETOOLONG;
    r.flags = flags;
    r.mode = mode;
    memcpy(r.path, path, len + 1);
    if (send(sock, &r, offsetof(struct request, path) + len + 1, MSG_NOSIGNAL) < 0)
        return -errno;
    struct int_msg x;
    struct msghdr *m = int_msg(&x, 1);
    ssize_t n = recvmsg(sock, m, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return n < 0 ? -errno : -EPIPE;
    int err = x.value;
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    int fd = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (err) {
        if (fd >= 0)
            close(fd);
        return -err;
    }
    return fd >= 0 ? fd : -EPROTO;
}

/* The mqueue filesystem of an IPC namespace, for a guest's mount -t
 * mqueue (Linux's ipc/mqueue.c): mounting it takes CAP_SYS_ADMIN in the
 * user namespace that owns the IPC namespace, and an fs_context shows
 * the queues of the IPC namespace of the process that opened it.  So a
 * child of ours joins that user namespace and that IPC namespace, makes
 * itself a mount namespace of its own (fsopen asks for CAP_SYS_ADMIN
 * over the caller's mount namespace: the host's is not the sandbox's to
 * mount in), and makes a detached mount (fsmount): attached nowhere, in
 * no mount table, reached only through the fd it passes back, from
 * which the guest kernel opens, lists and unlinks the queues itself.
 * The child takes nothing from the guest but the namespace fd the guest
 * kernel opened, holds none of our other fds, and exits at once. */
int umlpy_mqueue_mount(int ipc_fd)
{
    int userns = ioctl(ipc_fd, NS_GET_USERNS);
    if (userns < 0)
        return -errno;
    /* an IPC namespace of our own user namespace (umlpy's as root with
       --host-root): nothing to join, setns would refuse it (EINVAL) */
    struct stat theirs, ours;
    int join_user = fstat(userns, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0 ||
                    theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        close(userns);
        return -e;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, (long)SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        int keep[3] = { sv[1], userns, ipc_fd };
        sort3(keep);
        close_all_but(keep, 3);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        int err = 0, mnt = -1;
        if (join_user && setns(userns, CLONE_NEWUSER) < 0)
            err = errno;
        else if (unshare(CLONE_NEWNS) < 0 || setns(ipc_fd, CLONE_NEWIPC) < 0)
            err = errno;
        else {
            int fs = (int)syscall(SYS_fsopen, "mqueue", FSOPEN_CLOEXEC);
            if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
                (mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                    MOUNT_ATTR_NOEXEC)) < 0)
                err = errno;
        }
        answer(sv[1], err, mnt);
        _exit(0);
    }
    int e = pid < 0 ? errno : 0;
    close(sv[1]);
    close(userns);
    int fd = -e;
    if (!e) {
        struct int_msg x;
        struct msghdr *m = int_msg(&x, 1);
        ssize_t n;
        do
            n = recvmsg(sv[0], m, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(m) : NULL;
        fd = n < 0 ? -errno : n == 0 ? -EPIPE : -x.value;
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got;
            memcpy(&got, CMSG_DATA(c), sizeof got);
            if (fd == 0)
                fd = got;
            else
                close(got);
        } else if (fd == 0) {
            fd = -EPROTO;
        }
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close(sv[0]);
    return fd;
}
