/* umlpy-init: pid 1 of a named sandbox (umlpy start).

   A static program, so that it runs in any root filesystem.  It is a guest
   process like any other: the guest kernel traces it and every process it
   starts, which is how `umlpy exec` gets a process inside the sandbox's
   namespaces, filter, limits and VFS without any setns: init forks it.

   fd 3 is a SOCK_SEQPACKET socket to the supervisor (the guest kernel's
   daemon, lifecycle/daemon.py).  Messages are NUL-separated fields
   (lifecycle/initproto.py is the other side and the protocol's text):

     supervisor -> init
       "X" id user group flags cwd argc argv... envc env... [key=value...]
           with 3 fds (stdin, stdout, stderr) attached: start a process
           (user: a number or a name of the guest's /etc/passwd; group:
           a number, a name, or "" for the user's own).  Optional fields
           after the env list (an OCI container's process; an unknown key
           fails the start with EINVAL, never ignored):
             umask=OCTAL          the process's umask (else init's, 022)
             groups=G1,G2,...     its supplementary groups, exactly these
                                  (may be empty: "groups="), as runc's
                                  additionalGids; else a named user's
                                  /etc/group ones, or just the gid
             capbnd=HEX capeff=HEX capprm=HEX capinh=HEX capamb=HEX
                                  capability masks: every capability
                                  not in capbnd is dropped from the
                                  bounding set; capeff/capprm/capinh are
                                  set by capset after the ids change
                                  (capprm and capeff default to none,
                                  capinh to none once any is given);
                                  capamb's are raised as ambient
             seccomp=HEX          a BPF program (struct sock_filter[],
                                  hex) installed with
             seccomp_flags=N      SECCOMP_SET_MODE_FILTER's flags
             cgroupns=1           a cgroup namespace of its own, rooted
                                  at the sandbox's cgroup (the first step)
           In runc's order: cgroup namespace, bounding set, PR_SET_KEEPCAPS, groups and
           ids, capset, ambient, umask, chdir, PR_SET_NO_NEW_PRIVS, the
           seccomp filter, execvp.  Any step that fails is the "F" errno.
       "K" id signal          signal the process group of exec id
       "T"                    terminate: SIGTERM to every process, then
                              exit once none is left
       "B" id cwd umask sigign sigblk nrlimits (resource soft hard)...
           argc argv... envc env...
           with 3 fds: become the process asked for, in place (a warm
           sandbox's first program, umlpy/warm/: it is then pid 1, as a
           cold `umlpy run`'s is).  The caller's umask, ignored signals
           (hex), blocked signals (hex) and resource limits are taken on,
           PATH is searched as the tracer's spawn does (exec_search.h);
           "S" id pid goes out just before the execve, "F" id errno if a
           step fails, and init then goes on as before
     init -> supervisor
       "S" id pid             started (pid as the sandbox sees it)
       "F" id errno           could not start (errno of the failed step)
       "E" id wait-status     exited

   Exec id 0 is INIT, when the sandbox was created with one: its exit
   stops the sandbox, and init exits with INIT's status.

   init also does what any pid 1 must: it reaps every orphan, and passes
   signals on, as tini and catatonit do: with an INIT, SIGTERM, SIGINT,
   SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH go to INIT (INIT's exit
   then ends the sandbox); without one, SIGTERM, SIGINT
   and SIGHUP make it pass SIGTERM to every process and exit when none is
   left. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec_search.h"

#define CONTROL_FD 3
#define MAX_MSG (256 * 1024)
#define MAX_FIELDS 8192
#define MAX_CHILDREN 4096
#define FLAG_TTY 1

struct child { long id; pid_t pid; };

static struct child children[MAX_CHILDREN];
static int nchildren;
static int signal_pipe[2];
static int terminating;
static int init_exited = -1;      /* INIT's wait status, once it exited */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t n = write(signal_pipe[1], &c, 1);
    (void)n;
    errno = saved;
}

static void send_fields(const char *kind, long a, long b)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s%c%ld%c%ld", kind, 0, a, 0, b);
    if (n > 0)
        send(CONTROL_FD, buf, (size_t)n + 1, MSG_NOSIGNAL);
}

static long number(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s)
        return -1;
    return v;
}

/* A user or group named in the guest's own /etc/passwd or /etc/group
   (read as the guest sees them: through the guest kernel). */
static int lookup(const char *file, const char *name, long *id, long *gid)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char line[4096];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *fields[4] = { 0 };
        char *p = line;
        for (int i = 0; i < 4 && p; i++) {
            fields[i] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = 0;
        }
        if (!fields[2] || strcmp(fields[0], name))
            continue;
        *id = number(fields[2]);
        if (gid && fields[3])
            *gid = number(fields[3]);
        found = *id >= 0 ? 0 : -1;
        break;
    }
    fclose(f);
    return found;
}

/* The groups a user is a member of, by /etc/group (as initgroups). */
static int member_groups(const char *user, gid_t primary, gid_t *groups, int max)
{
    int n = 0;
    groups[n++] = primary;
    FILE *f = fopen("/etc/group", "re");
    if (!f)
        return n;
    char line[8192];
    while (fgets(line, sizeof line, f) && n < max) {
        line[strcspn(line, "\n")] = 0;
        char *name = line, *p = strchr(line, ':');
        if (!p) continue;
        *p++ = 0;
        p = strchr(p, ':');
        if (!p) continue;
        char *gid_text = ++p;
        p = strchr(p, ':');
        if (!p) continue;
        *p++ = 0;
        long gid = number(gid_text);
        (void)name;
        for (char *m = strtok(p, ","); m && gid >= 0; m = strtok(NULL, ","))
            if (!strcmp(m, user) && (gid_t)gid != primary) {
                groups[n++] = (gid_t)gid;
                break;
            }
    }
    fclose(f);
    return n;
}

static int hex_mask(const char *s, unsigned long long *mask);

/* The optional key=value fields of "X" (an OCI container's process). */
struct confinement {
    long umask;                 /* -1: init's */
    int ngroups;                /* -1: not given */
    gid_t groups[256];
    int caps;                   /* any cap* field given */
    unsigned long long bnd, eff, prm, inh, amb;
    int has_bnd;
    struct sock_filter *filter;
    unsigned short nfilter;
    unsigned long seccomp_flags;
    int cgroupns;
};

static int hex_bytes(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        if (sscanf(s + 2 * i, "%2x", &byte) != 1)
            return -1;
        out[i] = (unsigned char)byte;
    }
    return 0;
}

/* Fields f[0..n): 0, or -1 with errno EINVAL for an unknown key or a bad
   value. */
static int parse_confinement(char **f, int n, struct confinement *c)
{
    memset(c, 0, sizeof *c);
    c->umask = -1;
    c->ngroups = -1;
    for (int i = 0; i < n; i++) {
        char *eq = strchr(f[i], '=');
        if (!eq)
            goto bad;
        size_t klen = (size_t)(eq - f[i]);
        const char *v = eq + 1;
        unsigned long long *mask = NULL;
#define KEY(name) (klen == sizeof(name) - 1 && !strncmp(f[i], name, klen))
        if (KEY("umask")) {
            char *end;
            errno = 0;
            c->umask = strtol(v, &end, 8);
            if (errno || *end || end == v || c->umask < 0 || c->umask > 0777)
                goto bad;
        } else if (KEY("groups")) {
            c->ngroups = 0;
            for (const char *p = v; *p; ) {
                char *end;
                errno = 0;
                unsigned long g = strtoul(p, &end, 10);
                if (errno || end == p || g > 0xfffffffeUL || c->ngroups >= 256 ||
                    (*end && *end != ','))
                    goto bad;
                c->groups[c->ngroups++] = (gid_t)g;
                p = *end ? end + 1 : end;
            }
        } else if (KEY("capbnd")) {
            mask = &c->bnd;
            c->has_bnd = 1;
        } else if (KEY("capeff")) {
            mask = &c->eff;
        } else if (KEY("capprm")) {
            mask = &c->prm;
        } else if (KEY("capinh")) {
            mask = &c->inh;
        } else if (KEY("capamb")) {
            mask = &c->amb;
        } else if (KEY("seccomp")) {
            size_t len = strlen(v);
            if (len == 0 || len % (2 * sizeof(struct sock_filter)) ||
                len / (2 * sizeof(struct sock_filter)) > BPF_MAXINSNS)
                goto bad;
            c->nfilter = (unsigned short)(len / (2 * sizeof(struct sock_filter)));
            c->filter = malloc(len / 2);
            if (!c->filter || hex_bytes(v, (unsigned char *)c->filter, len / 2) < 0)
                goto bad;
        } else if (KEY("cgroupns")) {
            if (strcmp(v, "1"))
                goto bad;
            c->cgroupns = 1;
        } else if (KEY("seccomp_flags")) {
            char *end;
            errno = 0;
            c->seccomp_flags = strtoul(v, &end, 10);
            if (errno || *end || end == v)
                goto bad;
        } else {
            goto bad;
        }
#undef KEY
        if (mask) {
            if (hex_mask(v, mask) < 0)
                goto bad;
            c->caps = 1;
        }
    }
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

/* Drop from the bounding set every capability not in c->bnd (up to the
   kernel's last one: PR_CAPBSET_READ fails with EINVAL past it). */
static int drop_bounding(const struct confinement *c)
{
    for (int cap = 0; cap < 64; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0) {
            if (errno == EINVAL)
                return 0;
            return -1;
        }
        if (r == 1 && !((c->bnd >> cap) & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -1;
    }
    return 0;
}

static int set_capabilities(const struct confinement *c)
{
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (__u32)(c->eff >> (32 * i));
        data[i].permitted = (__u32)(c->prm >> (32 * i));
        data[i].inheritable = (__u32)(c->inh >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0)
        return -1;
    for (int cap = 0; cap < 64; cap++)
        if (((c->amb >> cap) & 1) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -1;
    return 0;
}

/* The child's side of "X": become the process asked for, or report the
   errno of the step that failed through the close-on-exec pipe.
   Fields: X id user group flags cwd argc argv... envc env...; user is a
   number or a name in the guest's /etc/passwd, group a number, a name
   in /etc/group or "" (the user's own). */
static void become(char **f, int nf, int fds[3], int report)
{
    static gid_t groups[256];
    const char *user = f[2], *group = f[3];
    long flags = number(f[4]);
    const char *cwd = f[5];
    long argc = number(f[6]);
    int at = 7;
    if (argc < 1 || at + argc + 1 > nf)
        goto bad;
    char **argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!argv)
        goto fail;
    for (long i = 0; i < argc; i++)
        argv[i] = f[at + i];
    at += argc;
    long envc = number(f[at]);
    at++;
    if (envc < 0 || at + envc > nf)
        goto bad;
    char **envp = calloc((size_t)envc + 1, sizeof(char *));
    if (!envp)
        goto fail;
    for (long i = 0; i < envc; i++)
        envp[i] = f[at + i];
    at += envc;
    static struct confinement c;
    if (parse_confinement(f + at, nf - at, &c) < 0)
        goto fail;

    long uid = *user ? number(user) : (long)getuid(), gid = *user ? -1 : (long)getgid();
    int named = uid < 0;
    if (named && lookup("/etc/passwd", user, &uid, &gid) < 0) {
        errno = ESRCH;          /* no such user: as su's "user does not exist" */
        goto fail;
    }
    if (*group) {
        gid = number(group);
        if (gid < 0 && lookup("/etc/group", group, &gid, NULL) < 0) {
            errno = ESRCH;
            goto fail;
        }
    } else if (gid < 0) {
        gid = uid;              /* a bare number: its own group, as docker's -u N */
    }
    int ngroups = named ? member_groups(user, (gid_t)gid, groups, 256) : 1;
    if (!named)
        groups[0] = (gid_t)gid;
    if (c.ngroups >= 0) {
        ngroups = c.ngroups;
        memcpy(groups, c.groups, sizeof(gid_t) * (size_t)ngroups);
    }

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < 65; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    if (setsid() < 0)
        goto fail;
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            goto fail;
    if ((flags & FLAG_TTY) && ioctl(0, TIOCSCTTY, 0) < 0)
        goto fail;
    /* Its own view of the cgroups: rooted where the sandbox's cgroup is
       (the guest kernel moved init there before it ran), as runc makes
       it after joining the container's cgroup. */
    if (c.cgroupns && unshare(CLONE_NEWCGROUP) < 0)
        goto fail;
    /* runc's order: the bounding set first (dropping needs CAP_SETPCAP,
       which the capset below may take away), the capabilities kept
       across the change of ids, then set. */
    if (c.has_bnd && drop_bounding(&c) < 0)
        goto fail;
    if (c.caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        goto fail;
    /* No user asked for: init's own ids (the sandbox's default user). */
    if (*user || *group || c.ngroups >= 0) {
        /* groups asked for explicitly must be set; a named user's are
           best effort, as before (EPERM in a one-id namespace) */
        if (setgroups((size_t)ngroups, groups) < 0 && (errno != EPERM || c.ngroups >= 0))
            goto fail;
    }
    if (*user || *group) {
        if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
            setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
            goto fail;
    }
    if (c.caps) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || set_capabilities(&c) < 0)
            goto fail;
    }
    if (c.umask >= 0)
        umask((mode_t)c.umask);
    if (chdir(cwd) < 0)
        goto fail;
    /* Last: the container's own seccomp filter, stacked under the
       sandbox's (it can only make calls fail, never let one past the
       guest kernel); every call from here on passes through it. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        goto fail;
    if (c.filter) {
        struct sock_fprog prog = { c.nfilter, c.filter };
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, c.seccomp_flags, &prog) < 0)
            goto fail;
    }
    environ = envp;
    execvp(argv[0], argv);
fail:;
    int e = errno ? errno : EINVAL;
    ssize_t n = write(report, &e, sizeof e);
    (void)n;
    _exit(127);
bad:
    errno = EINVAL;
    goto fail;
}

static void start(char **f, int nf, int fds[3])
{
    if (nf < 8) {
        errno = EINVAL;
        return;
    }
    long id = number(f[1]);
    if (id < 0 || nchildren >= MAX_CHILDREN) {
        send_fields("F", id, nchildren >= MAX_CHILDREN ? EAGAIN : EINVAL);
        return;
    }
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) {
        send_fields("F", id, errno);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        send_fields("F", id, errno);
        close(report[0]);
        close(report[1]);
        return;
    }
    if (pid == 0) {
        close(report[0]);
        close(CONTROL_FD);
        become(f, nf, fds, report[1]);
    }
    close(report[1]);
    int e = 0;
    ssize_t n;
    do
        n = read(report[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == sizeof e) {
        /* It never ran: its exit is no exec's to report. */
        waitpid(pid, NULL, 0);
        send_fields("F", id, e);
        return;
    }
    children[nchildren].id = id;
    children[nchildren].pid = pid;
    nchildren++;
    send_fields("S", id, pid);
}

static void install_handlers(void);

static int hex_mask(const char *s, unsigned long long *mask)
{
    char *end;
    errno = 0;
    *mask = strtoull(s, &end, 16);
    return errno || *end || end == s ? -1 : 0;
}

/* "B": what a cold run's tracer child would have been, made of init.
   Fields: B id cwd umask sigign sigblk nrl (res soft hard)*nrl argc argv...
   envc env...  Returns only on failure, with errno set. */
static void become_in_place(char **f, int nf, int fds[3])
{
    unsigned long long ignored, blocked;
    long mask = number(f[3]), nrl = number(f[6]);
    int at = 7;
    if (mask < 0 || mask > 0777 || hex_mask(f[4], &ignored) || hex_mask(f[5], &blocked) ||
        nrl < 0 || nrl > RLIM_NLIMITS || at + 3 * nrl + 1 > nf)
        goto bad;
    for (long i = 0; i < nrl; i++, at += 3) {
        long resource = number(f[at]);
        char *end1, *end2;
        errno = 0;
        struct rlimit rl = { strtoull(f[at + 1], &end1, 10), strtoull(f[at + 2], &end2, 10) };
        if (resource < 0 || errno || *end1 || *end2)
            goto bad;
        if (setrlimit((int)resource, &rl) < 0)
            return;
    }
    long argc = number(f[at++]);
    if (argc < 1 || at + argc + 1 > nf)
        goto bad;
    char **argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!argv)
        return;
    for (long i = 0; i < argc; i++)
        argv[i] = f[at + i];
    at += argc;
    long envc = number(f[at++]);
    if (envc < 0 || at + envc > nf)
        goto bad;
    char **envp = calloc((size_t)envc + 1, sizeof(char *));
    if (!envp)
        return;
    for (long i = 0; i < envc; i++)
        envp[i] = f[at + i];
    if (chdir(f[2]) < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            return;
    umask((mode_t)mask);
    /* As the tracer's child: the caller's ignored signals stay ignored,
       but SIGPIPE and SIGXFSZ (which Python ignores) start at default. */
    sigset_t mask_set;
    sigemptyset(&mask_set);
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        int ignore = (ignored >> (s - 1)) & 1 && s != SIGPIPE && s != SIGXFSZ;
        signal(s, ignore ? SIG_IGN : SIG_DFL);
        if ((blocked >> (s - 1)) & 1)
            sigaddset(&mask_set, s);
    }
    send_fields("S", number(f[1]), getpid());
    sigprocmask(SIG_SETMASK, &mask_set, NULL);
    errno = exec_search(argv[0], argv, envp);
    /* Back to being init: its own handlers and mask. */
    sigemptyset(&mask_set);
    sigprocmask(SIG_SETMASK, &mask_set, NULL);
    install_handlers();
    free(argv);
    free(envp);
    return;
bad:
    errno = EINVAL;
}

static void signal_exec(long id, int sig)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].id == id) {
            if (kill(-children[i].pid, sig) < 0)
                kill(children[i].pid, sig);
            return;
        }
}

static void terminate_all(void)
{
    terminating = 1;
    if (getpid() == 1) {
        /* pid 1 of its own namespace: -1 is every process in it. */
        kill(-1, SIGTERM);
        kill(-1, SIGCONT);
        return;
    }
    /* Without a pid namespace (--pid-host) -1 would be every process the
       user may signal on the host: only init's own children's groups. */
    for (int i = 0; i < nchildren; i++) {
        kill(-children[i].pid, SIGTERM);
        kill(-children[i].pid, SIGCONT);
    }
}

static const int FORWARDED[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

static void on_forwarded(int sig)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i].id == 0) {      /* INIT's to handle, as tini's child */
            kill(children[i].pid, sig);
            return;
        }
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
        terminate_all();
}

static void install_handlers(void)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++)
        sigaction(FORWARDED[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
}

static void on_message(void)
{
    static char buf[MAX_MSG + 1];
    char cbuf[CMSG_SPACE(sizeof(int) * 3)];
    struct iovec iov = { buf, MAX_MSG };
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(CONTROL_FD, &msg, MSG_CMSG_CLOEXEC);
    if (n == 0) {               /* the supervisor is gone */
        terminate_all();
        return;
    }
    if (n < 0)
        return;
    buf[n] = 0;
    int fds[3] = { -1, -1, -1 }, nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), sizeof(int) * (nfds > 3 ? 3 : nfds));
        }
    static char *f[MAX_FIELDS];
    int nf = 0;
    for (char *p = buf; p < buf + n && nf < MAX_FIELDS; p += strlen(p) + 1)
        f[nf++] = p;
    if (nf >= 1 && !strcmp(f[0], "X") && nfds == 3 && !terminating)
        start(f, nf, fds);
    else if (nf >= 1 && !strcmp(f[0], "X"))
        send_fields("F", nf > 1 ? number(f[1]) : -1, terminating ? ESHUTDOWN : EBADF);
    else if (nf >= 8 && !strcmp(f[0], "B") && nfds == 3 && !terminating && !nchildren) {
        become_in_place(f, nf, fds);
        send_fields("F", number(f[1]), errno ? errno : EINVAL);
    } else if (nf >= 1 && !strcmp(f[0], "B"))
        send_fields("F", nf > 1 ? number(f[1]) : -1, EINVAL);
    else if (nf == 3 && !strcmp(f[0], "K"))
        signal_exec(number(f[1]), (int)number(f[2]));
    else if (nf == 1 && !strcmp(f[0], "T"))
        terminate_all();
    for (int i = 0; i < nfds && i < 3; i++)
        close(fds[i]);
}

static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno == ECHILD && terminating)
                exit(init_exited >= 0 ? (WIFEXITED(init_exited) ? WEXITSTATUS(init_exited)
                                         : 128 + WTERMSIG(init_exited)) : 0);
            return;
        }
        for (int i = 0; i < nchildren; i++)
            if (children[i].pid == pid) {
                send_fields("E", children[i].id, status);
                if (children[i].id == 0) {
                    init_exited = status;
                    terminate_all();
                }
                children[i] = children[--nchildren];
                break;
            }
    }
}

int main(void)
{
    if (fcntl(CONTROL_FD, F_GETFD) < 0) {
        fprintf(stderr, "umlpy-init: no supervisor on fd 3: run by umlpy start only\n");
        return 2;
    }
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return 1;
    install_handlers();
    fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC);
    send_fields("R", getpid(), 0);
    for (;;) {
        struct pollfd p[2] = { { CONTROL_FD, POLLIN, 0 }, { signal_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return 1;
        if (p[1].revents & POLLIN) {
            unsigned char sigs[64];
            ssize_t n = read(signal_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < n; i++)
                if (sigs[i] != SIGCHLD)
                    on_forwarded(sigs[i]);
            reap();
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
            on_message();
        if (terminating)
            reap();
    }
}
