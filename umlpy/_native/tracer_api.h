/* The interface between umlpy's native tracer and the Python guest kernel.
 *
 * This file is read twice: by tracer.c and by cffi's cdef parser, so it
 * holds only declarations and integer #defines (no includes, no guards). */

#define UMLPY_TABLE_SIZE 512     /* x86_64 syscall numbers we keep a policy for */

/* What the native loop does at a seccomp stop for syscall nr. */
#define UMLPY_ACT_ALLOW 0        /* resume without entering Python */
#define UMLPY_ACT_ERRNO 1        /* skip the call, return -errno, no Python */
#define UMLPY_ACT_PYTHON 2       /* report UMLPY_EV_SYSCALL to the guest kernel */
#define UMLPY_ACT_CACHE 3        /* answer from the path cache; a miss is PYTHON's */
#define UMLPY_ACT_TIMED 5        /* resume, noting when the wait began (umlpy_set_wait) */

/* A timed wait's word (registry.TimedWait, umlpy_set_wait): the timeout's
 * argument (bits 0-3), a struct timespec pointer rather than int
 * milliseconds, and -EAGAIN rather than 0 for a wait whose time is up. */
#define UMLPY_WAIT_TIMESPEC 0x10
#define UMLPY_WAIT_EAGAIN 0x20

/* Events umlpy_wait() hands to Python. */
#define UMLPY_EV_NONE 0          /* no tracee is left */
#define UMLPY_EV_SYSCALL 1       /* seccomp stop at syscall entry */
#define UMLPY_EV_SYSCALL_EXIT 2  /* syscall-exit stop that Python asked for */
#define UMLPY_EV_CHILD 3         /* fork/vfork/clone in the parent: msg = new tid */
#define UMLPY_EV_EXEC 4          /* execve succeeded: msg = former tid */
#define UMLPY_EV_EXIT 5          /* tracee exited or was killed: status */
#define UMLPY_EV_NEW 6           /* first stop of a tracee (auto-attach) */
#define UMLPY_EV_SIGNAL 7        /* signal-delivery stop (only if reported) */
#define UMLPY_EV_GROUP_STOP 8    /* the init entered a group stop (if reported) */

/* Kinds of ptrace-stop a thread can sit in; injection needs to know. */
#define UMLPY_STOP_NONE 0
#define UMLPY_STOP_SECCOMP 1
#define UMLPY_STOP_SYSCALL_EXIT 2
#define UMLPY_STOP_OTHER 3

/* Where the child's set-up failed (reported through the status pipe). */
#define UMLPY_SETUP_SYNC 1
#define UMLPY_SETUP_USERNS 2
#define UMLPY_SETUP_CHROOT 3
#define UMLPY_SETUP_CHDIR 4
#define UMLPY_SETUP_SECCOMP 5
#define UMLPY_SETUP_EXEC 6
#define UMLPY_SETUP_MOUNT_PROC 7
#define UMLPY_SETUP_HOSTNAME 8
#define UMLPY_SETUP_ID_MAP 9
#define UMLPY_SETUP_SETUID 10

/* Namespaces a guest can be started in (values of CLONE_NEW*). */
#define UMLPY_NEWNS 0x00020000
#define UMLPY_NEWUTS 0x04000000
#define UMLPY_NEWIPC 0x08000000
#define UMLPY_NEWUSER 0x10000000
#define UMLPY_NEWPID 0x20000000
#define UMLPY_NEWNET 0x40000000
#define UMLPY_SETUP_NET 11
#define UMLPY_SETUP_RLIMIT 12
#define UMLPY_SETUP_LISTENER 13  /* not a failure: err is the listener's fd */

struct umlpy_event {
    int kind;
    int pid;
    int status;          /* raw wait status */
    int sig;             /* stop signal, for UMLPY_EV_SIGNAL */
    int ptrace_event;    /* PTRACE_EVENT_* for UMLPY_EV_CHILD */
    long nr;             /* syscall number */
    unsigned long args[6];
    long retval;         /* for UMLPY_EV_SYSCALL_EXIT */
    unsigned long msg;   /* PTRACE_GETEVENTMSG */
    unsigned long ip;    /* instruction pointer at the stop */
};

/* Same layout as the kernel's x86_64 struct user_regs_struct. */
struct umlpy_regs {
    unsigned long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
    unsigned long rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags;
    unsigned long rsp, ss, fs_base, gs_base, ds, es, fs, gs;
};

struct umlpy_setup_report {
    int stage;           /* UMLPY_SETUP_* */
    int err;             /* errno */
};

struct umlpy_spawn_opts {
    const char *cwd;         /* NULL: inherit */
    const char *root;        /* NULL: no chroot */
    int clone_flags;         /* UMLPY_NEW* */
    int uid_inside;          /* with UMLPY_NEWUSER: the ids the guest sees, */
    int gid_inside;
    int uid_outside;         /* mapped to these host ids */
    int gid_outside;
    int switch_ids;          /* become uid/gid_inside (our host ids differ from
                              * the mapped ones), dropping supplementary groups */
    const char *hostname;    /* with UMLPY_NEWUTS, or NULL */
    int mount_proc;          /* mount a procfs of the new pid namespace */
    int new_pgrp;            /* lead a process group of its own */
    int tty_fd;              /* >= 0: make that group the terminal's foreground */
    int nrlimits;            /* resource limits set before exec (soft = hard) */
    int rlimit_resource[6];
    unsigned long long rlimit_value[6];
    int notify;              /* the filter has a user-notification listener */
    int preserve_fds;        /* the caller's fds 3..3+N-1 reach the guest; every
                              * other fd above 2 is closed at its exec */
    const char *uid_map;     /* with UMLPY_NEWUSER: the whole map ("IN OUT COUNT"
                              * lines), or NULL for "uid_inside uid_outside 1" */
    const char *gid_map;
};

struct umlpy_tracer;

struct umlpy_tracer *umlpy_tracer_new(void);
void umlpy_tracer_free(struct umlpy_tracer *t);
void umlpy_set_action(struct umlpy_tracer *t, int nr, int action, int err);
/* nr is a timed wait (how: its UMLPY_WAIT_* word; -1: it is none): at
 * each seccomp stop it makes, whatever its action, the tracer notes its
 * deadline, and keeps it when it makes the call again (tracer.c). */
void umlpy_set_wait(struct umlpy_tracer *t, int nr, int how);
void umlpy_set_report_signals(struct umlpy_tracer *t, int on);
/* The signals whose default action is to ignore them (bit sig-1), as
 * kernel/signals.py says: a signal a thread would not have received
 * natively is dropped at its delivery stop. */
void umlpy_set_ignored_by_default(struct umlpy_tracer *t, unsigned long long mask);

/* Make the calling (tracer) process non-dumpable: a guest running as the
 * same host user can then neither ptrace it nor use process_vm_writev,
 * pidfd_getfd or /proc/PID/mem on it.  Called once the first guest is
 * seized (a non-dumpable parent's child could not be).  0 or -errno. */
int umlpy_harden_self(void);

/* Start a guest (in the namespaces opts asks for): it waits until seized
 * (and, in a user namespace, until its id maps are written), sets up its
 * mounts, hostname, root and cwd, installs the seccomp filter (an array of
 * struct sock_filter, filter_len instructions) and execs path, searching
 * PATH from envp when path has no slash.  Returns the host pid or -errno;
 * *status_fd receives the read end of a close-on-exec pipe on which a
 * failing child writes one struct umlpy_setup_report. */
int umlpy_spawn(struct umlpy_tracer *t, const char *path, char **argv,
                char **envp, const struct umlpy_spawn_opts *opts,
                const unsigned char *filter, int filter_len, int *status_fd);
/* With opts->notify: the filter is installed with a listener
 * (SECCOMP_FILTER_FLAG_NEW_LISTENER | WAIT_KILLABLE_RECV); *listener_fd is
 * the number it has in the child (-1 if the child failed before), to be
 * copied (pidfd_getfd) at the child's execve stop, before the exec closes
 * it. */
int umlpy_spawn_notified(struct umlpy_tracer *t, const char *path, char **argv,
                         char **envp, const struct umlpy_spawn_opts *opts,
                         const unsigned char *filter, int filter_len, int *status_fd,
                         int *listener_fd);

/* The guest's pid-namespace init: signal-delivery stops of this thread
 * are reported (unless the signal is ignored by default) so the guest
 * kernel can give it the signal semantics of an ordinary process. */
void umlpy_set_init_pid(struct umlpy_tracer *t, int pid);
void umlpy_report_init_stops(struct umlpy_tracer *t, int on);
int umlpy_listen(struct umlpy_tracer *t, int pid);

/* How signals sent to umlpy reach the guest: by kill(2) to the guest's
 * first process, by the terminal (si_code > 0) to its process group when
 * tty_to_group, else not at all (the guest shares umlpy's group). */
void umlpy_set_forward_mode(int tty_to_group);

/* Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to umlpy by kill(2) to pid
 * (terminal-generated ones already reach the guest's process group).
 * pid 0 stops forwarding. */
void umlpy_forward_signals_to(int pid);
void umlpy_restore_signals(void);

int umlpy_wait(struct umlpy_tracer *t, struct umlpy_event *ev);
/* How long umlpy_wait polls for the next stop before it sleeps (0: never). */
void umlpy_set_spin(struct umlpy_tracer *t, long spin_ns);

int umlpy_cont(struct umlpy_tracer *t, int pid, int sig);
int umlpy_cont_to_exit(struct umlpy_tracer *t, int pid);
int umlpy_skip(struct umlpy_tracer *t, int pid, long retval);
int umlpy_set_retval(int pid, long retval);
int umlpy_set_syscall(int pid, long nr, const unsigned long *args);

int umlpy_get_regs(int pid, struct umlpy_regs *regs);
int umlpy_set_regs(int pid, const struct umlpy_regs *regs);

long umlpy_read_mem(int pid, unsigned long addr, void *buf, unsigned long len);
long umlpy_write_mem(int pid, unsigned long addr, const void *buf, unsigned long len);
/* As the kernel's copy_to_user: only where the guest itself may write
 * (process_vm_writev; no /proc/PID/mem fallback).  For results written to
 * addresses the guest chose, which must never reach read-only memory such
 * as the scratch slots.  Bytes written, or -errno. */
long umlpy_write_user(int pid, unsigned long addr, const void *buf, unsigned long len);
long umlpy_read_str(int pid, unsigned long addr, char *buf, unsigned long max);
/* From an event stop inside a call (a fork's), on to that call's exit
 * stop, where calls may be injected before it returns: 0, or -errno
 * (-ESRCH: killed meanwhile). */
int umlpy_to_syscall_exit(struct umlpy_tracer *t, int pid);

/* Run syscall nr(args) in a thread sitting in a seccomp stop or a
 * syscall-exit stop, and leave the thread in the same stop with the same
 * registers.  Returns 0 and the syscall's result in *result, or -errno. */
int umlpy_inject_syscall(struct umlpy_tracer *t, int pid, long nr,
                         const unsigned long *args, long *result);

int umlpy_stop_kind(struct umlpy_tracer *t, int pid);

/* Host-side file helpers for the guest VFS (each returns >= 0 or -errno).
 * openat2 with RESOLVE_* flags: how the tracer touches layer trees without
 * following a symlink someone else planted. */
int umlpy_openat2(int dirfd, const char *path, int flags, int mode,
                  unsigned long long resolve);
int umlpy_renameat2(int olddirfd, const char *oldpath, int newdirfd,
                    const char *newpath, unsigned int flags);
/* getdents64 on our fd: the bytes written to buf, or -errno. */
/* The calling thread alone (raw syscalls: glibc's wrappers would switch
 * every thread): unshare(CLONE_FS), then, if uid >= 0, setgroups (EPERM
 * tolerated when tolerate_groups), setresgid and setresuid.  0 or -errno. */
int umlpy_thread_become(int uid, int gid, int ngroups, const unsigned int *groups,
                        int tolerate_groups);
/* syscall(nr, args...) in the calling thread: the result, or -errno */
long umlpy_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
/* 1 if the host kernel has mseal (Linux 6.10+), asked of umlpy's own process */
int umlpy_kernel_has_mseal(void);
long umlpy_getdents64(int fd, void *buf, unsigned int count);
/* A copy of fd `fd` of the process behind `pidfd` (same open file). */
int umlpy_pidfd_getfd(int pidfd, int fd);

/* The path cache (pathcache.c): answers of the stat family and readlink
 * that Python computed, replayed at the seccomp stop of an identical call.
 * Keys: kind ('s' struct stat, 'x' struct statx, 'l' link text, 'o' an
 * open's host object, 'd' a directory the host lists as the guest sees
 * it), follow ('1'/'0'; for 'o' '0' + 1 for O_NOFOLLOW + 2 for
 * O_DIRECTORY), the host path of the dirfd for a relative path (nothing
 * for an absolute one; for 'd' the fd's own), NUL, the path as the guest
 * wrote it.  An entry holds an errno (> 0), -1 (the host lists it: made
 * on a copy of the fd), -2 (run it on its fd, the empty path from
 * scratch), or the bytes the call writes back (for 'o': the host path openat2 opens).  A miss on the exact
 * variant tries the ones Python puts for answers that do not depend on
 * it: 'A' (stat of a non-symlink, followed or not), '*' (open of a
 * directory, any flags), 'F' (open of a file, without O_DIRECTORY). */
struct umlpy_pathcache;
struct umlpy_pathcache *umlpy_tracer_cache(struct umlpy_tracer *t);
void umlpy_cache_configure(struct umlpy_pathcache *c, int enabled, long ttl_ms);
int umlpy_cache_put(struct umlpy_pathcache *c, const unsigned char *key, int keylen,
                    int err, const unsigned char *data, int len);
void umlpy_cache_clear(struct umlpy_pathcache *c);
void umlpy_cache_counts(struct umlpy_pathcache *c, unsigned long *out);
/* umlpy_cache_put: 0, 1 if the table was full and emptied first, or -errno. */
/* A directory below which the host's answers are the guest's, whole
 * (pathtree.c): its guest path, host path, the device and inode Python
 * saw, and the id of the guest mount it shows (statx's).  0 or -errno. */
int umlpy_cache_tree(struct umlpy_pathcache *c, const char *guest, const char *host,
                     unsigned long dev, unsigned long ino, unsigned long mnt_id);
/* How host ids show inside (the guest's user-namespace map as (inside,
 * outside, count) triples, or the identity), for answers made from the
 * host. */
void umlpy_cache_idmap(struct umlpy_pathcache *c, int identity,
                       const unsigned int *uid_ranges, int nuid,
                       const unsigned int *gid_ranges, int ngid);
/* Where tid's scratch slot is (0: none), for replayed opens. */
void umlpy_cache_set_scratch(struct umlpy_pathcache *c, int tid, unsigned long addr);
/* Working directories (workdir.c): a box per guest process holds its cwd
 * (a canonical guest path; NULL once removed), which C keys cwd-relative
 * calls by ("@" and the path) and moves on a chdir or fchdir it serves.
 * new: a box, or -1 when there are too many; set: its change count, or
 * -errno; seq: its change count; get: the path's length, -ENOENT if
 * removed; attach: tid's process has box (-1: unknown); bump: whatever C
 * looked up before does not move a box. */
int umlpy_cwd_new(struct umlpy_pathcache *c);
void umlpy_cwd_free(struct umlpy_pathcache *c, int box);
int umlpy_cwd_set(struct umlpy_pathcache *c, int box, const char *path);
int umlpy_cwd_seq(struct umlpy_pathcache *c, int box);
long umlpy_cwd_get(struct umlpy_pathcache *c, int box, char *buf, size_t room);
void umlpy_cwd_attach(struct umlpy_pathcache *c, int tid, int box);
void umlpy_cwd_bump(struct umlpy_pathcache *c);
/* What C's chdir does, open to tests: the epoch, tid's cwd as C keys it
 * (its length, or -errno), and a move of tid's process to path that lands
 * only if nothing changed since epoch (1 if it did). */
unsigned long umlpy_cwd_epoch(struct umlpy_pathcache *c);
long umlpy_cwd_of(struct umlpy_pathcache *c, int tid, char *buf, size_t room);
int umlpy_cwd_move(struct umlpy_pathcache *c, int tid, const char *path, unsigned long epoch);

/* The user-notification server (notify.c): serves the calls the filter
 * sends to the listener, answering what the path cache knows and handing
 * the rest to Python. */
struct umlpy_notif_req {
    unsigned long long id;
    int pid;             /* host tid of the caller */
    int nr;
    unsigned int arch;
    unsigned long args[6];
};
struct umlpy_notifier;
struct umlpy_notifier *umlpy_notifier_new(int listener, struct umlpy_pathcache *cache);
void umlpy_notifier_free(struct umlpy_notifier *n);
/* Who the opens it replays run as (a root umlpy switches this thread's
 * fsuid, fsgid and groups while it serves). 0 or -errno. */
int umlpy_notifier_identity(struct umlpy_notifier *n, int uid, int gid,
                            const unsigned int *groups, int ngroups);
/* 1: *out is a call for Python; 0: stopped; -errno. */
int umlpy_notifier_next(struct umlpy_notifier *n, struct umlpy_notif_req *out);
/* Whether the notification is still pending (the caller still waits). */
int umlpy_notifier_valid(struct umlpy_notifier *n, unsigned long long id);
/* The call returns val (-errno for an error). 0 or -errno. */
int umlpy_notifier_reply(struct umlpy_notifier *n, unsigned long long id, long val);
/* Our srcfd becomes the caller's; its call returns the new fd number.
 * srcfd is closed here, in every case.  The number or -errno (a failure
 * other than ENOENT is the call's). */
int umlpy_notifier_install(struct umlpy_notifier *n, unsigned long long id, int srcfd,
                           int cloexec);
void umlpy_notifier_stop(struct umlpy_notifier *n);
/* out[0]: opens answered in C, out[1]: calls handed to Python, out[2]:
 * whether the kernel wakes the server on the caller's CPU (Linux 6.6+),
 * out[3]: receives that found no call (a caller killed meanwhile). */
void umlpy_notifier_counts(struct umlpy_notifier *n, unsigned long *out);

/* The guest's opener (opener.c): a process in the sandbox's user, mount,
 * network, IPC and UTS namespaces (clone_flags says which it has) with
 * the guest's ids (uid/gid as seen inside), which opens paths as a guest
 * would, for what depends on who opens (procfs).  Returns its socket and
 * *pid_out, or -errno. */
int umlpy_opener_start(int init_pid, int clone_flags, int uid, int gid, int *pid_out);
/* An fd the opener opened (open(path, flags | O_CLOEXEC, mode)), or -errno. */
int umlpy_opener_open(int sock, const char *path, int flags, int mode);
/* The mqueue filesystem of the IPC namespace ipc_fd names (an fd of
 * /proc/TID/ns/ipc), as a detached mount: fsmount's O_PATH fd of its
 * root, attached nowhere, or -errno (opener.c). */
int umlpy_mqueue_mount(int ipc_fd);
