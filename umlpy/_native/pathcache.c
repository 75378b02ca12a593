/* The path cache: answers to looking calls (stat family, readlink) that
 * the Python guest kernel computed, kept so that the next identical call
 * is answered at its seccomp stop without entering Python.
 *
 * It is a cache, not a second VFS: it holds only what Python put in it,
 * keyed exactly as Python keys it (tracer_api.h), and Python clears it on
 * every change that could alter an answer.  Anything it does not know, or
 * any call that looks unusual (flags, an empty path, a dirfd that is not a
 * directory of the host's), goes to Python. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "pathtree.h"
#include "tracer_api.h"
#include "workdir.h"

#define CAPACITY 262144             /* slots, a power of two */
#define MAX_ENTRIES (CAPACITY / 2)  /* then the whole cache is dropped */
#define MAX_KEY 4352                /* kind, follow, a host dir path, NUL, a path */
#define MAX_DATA 4096              /* a struct statx, a link text, a host path */
#define LIST_MAX 65536              /* the largest getdents64 made here */
#define PIDFDS 1024                 /* pidfds kept, by tid (a power of two) */

#define AT_FDCWD_ -100
#define AT_SYMLINK_NOFOLLOW_ 0x100
#define AT_NO_AUTOMOUNT_ 0x800
#define AT_STATX_SYNC_ 0x6000
#define NATIVE (-1)                 /* an entry's err: let the call run as made */
#define ON_FD (-2)                  /* run it on the fd, its empty path from scratch */
#define AT_EMPTY_PATH_ 0x1000
#define AT_EACCESS_ 0x200

/* open flags a replayed open may carry: reading, nothing created or cut */
#define O_ACCMODE_ 03
#define O_CREAT_ 0100
#define O_TRUNC_ 01000
#define O_DIRECTORY_ 0200000
#define O_NOFOLLOW_ 0400000
#define O_PATH_ 010000000
#define O_TMPFILE_ 020000000
#define O_LARGEFILE_ 0100000
#define VALID_OPEN_FLAGS 037777703      /* Linux's: what openat2 accepts */
#define RESOLVE_NO_SYMLINKS_ 0x04

struct entry {
    uint64_t hash;          /* 0: free */
    unsigned char *blob;    /* key, then data */
    uint32_t keylen, len;
    int32_t err;
    long stamp_ms;
};

struct umlpy_pathcache {
    /* Python fills it from two threads (the ptrace loop's and the
     * notification server's), and C reads it from both */
    pthread_mutex_t lock;
    struct entry *slots;
    uint32_t *used;             /* the indices of the count slots in use */
    unsigned long *scratch;     /* per host tid: its scratch slot in the guest */
    size_t scratch_len;
    unsigned long count, hits, misses;
    long ttl_ms;
    int enabled;
    struct umlpy_trees *trees;  /* directories C answers below (pathtree.c) */
    struct umlpy_workdirs *wd;  /* each process's cwd (workdir.c) */
    /* pidfds of the threads whose fds were copied lately: opening one
     * costs more than the rest of a listing.  One of a thread gone (its
     * tid reused or not) fails with ESRCH and is replaced. */
    struct { int tid, pidfd; } pidfds[PIDFDS];
};

static uint64_t hash_of(const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;          /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= k[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct umlpy_pathcache *umlpy_pathcache_new(size_t max_tid)
{
    struct umlpy_pathcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->slots = calloc(CAPACITY, sizeof *c->slots);
    c->used = calloc(MAX_ENTRIES, sizeof *c->used);
    /* lazily backed, like the tracer's per-thread state */
    c->scratch = calloc(max_tid, sizeof *c->scratch);
    c->scratch_len = max_tid;
    c->trees = pathtree_new();
    c->wd = workdirs_new(max_tid);
    if (!c->slots || !c->used || !c->scratch || !c->trees || !c->wd) {
        workdirs_free(c->wd);
        pathtree_free(c->trees);
        free(c->slots);
        free(c->used);
        free(c->scratch);
        free(c);
        return NULL;
    }
    c->ttl_ms = 1000;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void clear_locked(struct umlpy_pathcache *c)
{
    workdirs_bump(c->wd);       /* a chdir looked up before is not applied */
    pathtree_clear(c->trees);
    /* only the slots in use: the table is lazily backed, and a sweep of
     * all of it would fault in megabytes at every change the guest makes */
    for (unsigned long k = 0; k < c->count; k++) {
        struct entry *e = &c->slots[c->used[k]];
        free(e->blob);
        e->blob = NULL;
        e->hash = 0;
    }
    c->count = 0;
}

void umlpy_cache_clear(struct umlpy_pathcache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void umlpy_pathcache_free(struct umlpy_pathcache *c)
{
    if (!c)
        return;
    umlpy_cache_clear(c);
    pathtree_free(c->trees);
    workdirs_free(c->wd);
    for (int i = 0; i < PIDFDS; i++)
        if (c->pidfds[i].tid)
            close(c->pidfds[i].pidfd);
    free(c->slots);
    free(c->used);
    free(c->scratch);
    free(c);
}

void umlpy_cache_configure(struct umlpy_pathcache *c, int enabled, long ttl_ms)
{
    pthread_mutex_lock(&c->lock);
    c->enabled = enabled;
    c->ttl_ms = ttl_ms;
    pathtree_configure(c->trees, ttl_ms);
    if (!enabled)
        clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

int umlpy_cache_tree(struct umlpy_pathcache *c, const char *guest, const char *host,
                     unsigned long dev, unsigned long ino, unsigned long mnt_id)
{
    if (!c->enabled || !mnt_id)
        return -EINVAL;
    return pathtree_add(c->trees, guest, host, dev, ino, mnt_id);
}

void umlpy_cache_idmap(struct umlpy_pathcache *c, int identity,
                       const unsigned int *uid_ranges, int nuid,
                       const unsigned int *gid_ranges, int ngid)
{
    pathtree_idmap(c->trees, identity, uid_ranges, nuid, gid_ranges, ngid);
}

void umlpy_cache_set_scratch(struct umlpy_pathcache *c, int tid, unsigned long addr)
{
    if (tid > 0 && (size_t)tid < c->scratch_len)
        c->scratch[tid] = addr;
}

void umlpy_cache_counts(struct umlpy_pathcache *c, unsigned long *out)
{
    pthread_mutex_lock(&c->lock);
    out[0] = c->hits;
    out[1] = c->misses;
    out[2] = c->count;
    pthread_mutex_unlock(&c->lock);
}

static struct entry *find(struct umlpy_pathcache *c, const unsigned char *key,
                          size_t n, uint64_t h)
{
    for (size_t i = h & (CAPACITY - 1);; i = (i + 1) & (CAPACITY - 1)) {
        struct entry *e = &c->slots[i];
        if (!e->hash)
            return e;
        if (e->hash == h && e->keylen == n && memcmp(e->blob, key, n) == 0)
            return e;
    }
}

int umlpy_cache_put(struct umlpy_pathcache *c, const unsigned char *key, int keylen,
                    int err, const unsigned char *data, int len)
{
    if (!c->enabled || keylen <= 0 || keylen > MAX_KEY || len < 0 || len > MAX_DATA)
        return -EINVAL;
    int emptied = 0;
    unsigned char *blob = malloc((size_t)keylen + (size_t)len);
    if (!blob)
        return -ENOMEM;
    memcpy(blob, key, (size_t)keylen);
    if (len)
        memcpy(blob + keylen, data, (size_t)len);
    uint64_t h = hash_of(key, (size_t)keylen);
    pthread_mutex_lock(&c->lock);
    if (c->count >= MAX_ENTRIES) {
        clear_locked(c);                /* a guest cannot grow it without bound */
        emptied = 1;
    }
    struct entry *e = find(c, key, (size_t)keylen, h);
    if (e->hash)
        free(e->blob);
    else
        c->used[c->count++] = (uint32_t)(e - c->slots);
    e->hash = h;
    e->blob = blob;
    e->keylen = (uint32_t)keylen;
    e->len = (uint32_t)len;
    e->err = err;
    e->stamp_ms = now_ms();
    pthread_mutex_unlock(&c->lock);
    return emptied;
}

/* The key of a call, as fastpath.py builds it: kind, follow, where a
 * relative path starts (the host path of the dirfd, or "@" and the guest
 * path of the process's cwd; "" for an absolute path), NUL, the path as
 * the guest wrote it.  0 if the call is not one the cache may answer. */
static size_t make_key(struct umlpy_workdirs *wd, int tid, unsigned char kind, int follow,
                       long dirfd, unsigned long path_addr, unsigned char *key)
{
    char path[4097];
    if (!path_addr)
        return 0;
    long n = umlpy_read_str(tid, path_addr, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    size_t k = 0;
    key[k++] = kind;
    key[k++] = follow ? '1' : '0';
    if (path[0] != '/' && (int)dirfd == AT_FDCWD_) {
        key[k++] = '@';
        long m = workdirs_of_tid(wd, tid, (char *)key + k, MAX_KEY - k - 1 - (size_t)n, NULL);
        if (m <= 0)
            return 0;       /* unknown, removed, or too long to key */
        k += (size_t)m;
    } else if (path[0] != '/') {
        if ((int)dirfd < 0)
            return 0;
        char link[64];
        snprintf(link, sizeof link, "/proc/%d/fd/%d", tid, (int)dirfd);
        size_t room = MAX_KEY - k - 1 - (size_t)n;
        ssize_t m = readlink(link, (char *)key + k, room);
        if (m <= 0 || (size_t)m >= room || key[k] != '/')
            return 0;       /* not a path (a pipe...), or too long to key */
        k += (size_t)m;
    }
    key[k++] = 0;
    memcpy(key + k, path, (size_t)n);
    return k + (size_t)n;
}

/* What an fd is (its /proc link text: a host path, "pipe:[N]"...) as the
 * key of a call on the fd itself (getdents, fstat). */
static size_t make_fd_key(int tid, unsigned char kind, unsigned char variant, long fd,
                          int paths_only, unsigned char *key)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/fd/%d", tid, (int)fd);
    key[0] = kind;
    key[1] = variant;
    ssize_t m = readlink(link, (char *)key + 2, MAX_KEY - 3);
    if ((int)fd < 0 || m <= 0 || m >= MAX_KEY - 3 || (paths_only && key[2] != '/'))
        return 0;
    key[2 + m] = 0;
    return 3 + (size_t)m;
}

/* Whether a path argument is empty (NULL counts, as Linux 6.11 allows). */
static int empty_path(int tid, unsigned long addr)
{
    char c = 1;
    return !addr || (umlpy_read_mem(tid, addr, &c, 1) == 1 && c == 0);
}

/* The call runs on its fd as the guest made it, but with the empty path
 * read from the thread's read-only scratch slot: a guest thread cannot
 * turn it into a path relative to a directory fd meanwhile. */
static int run_on_fd(struct umlpy_pathcache *c, struct umlpy_tracer *t, int tid,
                     const struct user_regs_struct *r)
{
    unsigned long slot = (size_t)tid < c->scratch_len ? c->scratch[tid] : 0;
    char nul = 0;
    if (!slot || umlpy_write_mem(tid, slot, &nul, 1) != 1)
        return 0;
    struct user_regs_struct n = *r;
    n.rsi = slot;
    if (ptrace(PTRACE_SETREGS, tid, 0, &n) == 0)
        umlpy_cont(t, tid, 0);
    return 1;
}

/* A fresh entry's answer, copied out under the lock (another thread may
 * clear the table the moment it is released). */
struct found {
    int32_t err;
    uint32_t len;
    unsigned char data[MAX_DATA];
};

#define COUNT(field) __atomic_fetch_add(&c->field, 1, __ATOMIC_RELAXED)

/* The entry for key, or for a variant Python put for answers that do not
 * depend on the exact one: an object that is no symlink, whether followed
 * or not ('A', stat), opened with any flags ('*', a directory) or any but
 * O_DIRECTORY ('F').  1 if found and fresh. */
static int lookup(struct umlpy_pathcache *c, unsigned char *key, size_t n, long flags,
                  struct found *out)
{
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, key, n, hash_of(key, n));
    if (!e->hash && (key[0] == 's' || key[0] == 'o') && key[1] != 'E') {
        unsigned char variant = key[1];
        key[1] = key[0] == 's' ? 'A' : '*';
        e = find(c, key, n, hash_of(key, n));
        if (!e->hash && key[0] == 'o' && !(flags & O_DIRECTORY_)) {
            key[1] = 'F';
            e = find(c, key, n, hash_of(key, n));
        }
        key[1] = variant;
    }
    int ok = e->hash && now_ms() - e->stamp_ms <= c->ttl_ms;
    if (ok) {
        out->err = e->err;
        out->len = e->len;
        memcpy(out->data, e->blob + e->keylen, e->len);
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* The key of a read-only open (open, openat, and openat2 asking nothing
 * openat could not: its open_how read once, here): 0 if the cache may not
 * answer it. */
static size_t open_key(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                       unsigned char *key, long *flags)
{
    if (nr == SYS_openat2) {
        uint64_t how[3];        /* flags, mode, resolve */
        if (a[3] != sizeof how || umlpy_read_mem(tid, a[2], how, sizeof how) != sizeof how ||
            how[0] & ~(uint64_t)VALID_OPEN_FLAGS || how[1] || how[2])
            return 0;           /* anything else: Python's (EINVAL, E2BIG, RESOLVE_*) */
        *flags = (long)how[0];
    } else if (nr == SYS_open || nr == SYS_openat) {
        *flags = (long)(int)(nr == SYS_open ? a[1] : a[2]);
    } else {
        return 0;
    }
    if (*flags & (O_ACCMODE_ | O_CREAT_ | O_TRUNC_ | O_PATH_ | O_TMPFILE_))
        return 0;
    size_t n = make_key(c->wd, tid, 'o', 0, nr == SYS_open ? AT_FDCWD_ : (long)a[0],
                        nr == SYS_open ? a[0] : a[1], key);
    if (n)      /* the key's second byte: the flags that change the answer */
        key[1] = (unsigned char)('0' + (*flags & O_NOFOLLOW_ ? 1 : 0) +
                                 (*flags & O_DIRECTORY_ ? 2 : 0));
    return n;
}

/* The delegated tree a path call's key lies below, with the rest of the
 * path in rel (release it with pathtree_release), or NULL. */
static struct tree *tree_of_key(struct umlpy_pathcache *c, unsigned char *key, size_t n,
                                char *rel, size_t room)
{
    key[n] = 0;
    const char *where = (const char *)key + 2;
    return pathtree_find(c->trees, where, where + strlen(where) + 1, rel, room);
}

/* For the notification server (notify.c): an open Python answered
 * before (1: *err, or the host path to open), or one below a delegated
 * tree, opened here (2: *fd, or 1 and *err); 0 on a miss. */
int umlpy_pathcache_open(struct umlpy_pathcache *c, int tid, long nr,
                         const unsigned long *args, char *host, size_t room,
                         long *flags, int *err, int *fd)
{
    if (!c || !c->enabled)
        return 0;
    unsigned char key[MAX_KEY + 1];
    struct found f;
    size_t n = open_key(c, tid, nr, args, key, flags);
    if (n && lookup(c, key, n, *flags, &f) && f.err >= 0 && f.len + 1 <= room) {
        *err = f.err;
        memcpy(host, f.data, f.len);
        host[f.len] = 0;
        COUNT(hits);
        return 1;
    }
    char rel[PATH_MAX + 1];
    struct tree *tree = n ? tree_of_key(c, key, n, rel, sizeof rel) : NULL;
    int r = tree ? pathtree_open(c->trees, tree, rel, *flags) : PATHTREE_PYTHON;
    if (tree)
        pathtree_release(c->trees, tree);
    if (r == PATHTREE_PYTHON) {
        COUNT(misses);
        return 0;
    }
    COUNT(hits);
    if (r < 0) {
        *err = -r;
        return 1;
    }
    *fd = r;
    return 2;
}

/* The open Python decided, made again: openat2 of the host path (no
 * symlink followed) with the guest's flags, the path and open_how in the
 * thread's read-only scratch slot, exactly as Python's rewrite lays them. */
static int replay_open(struct umlpy_pathcache *c, struct umlpy_tracer *t, int tid,
                       const struct user_regs_struct *r, long flags,
                       const struct found *e)
{
    unsigned long slot = (size_t)tid < c->scratch_len ? c->scratch[tid] : 0;
    if (!slot || e->len + 1 + 8 + 24 > 64 * 1024)
        return 0;
    unsigned char buf[MAX_DATA + 1 + 8 + 24];
    memcpy(buf, e->data, e->len);
    buf[e->len] = 0;
    size_t how = (e->len + 1 + 7) & ~(size_t)7;
    memset(buf + e->len + 1, 0, how - e->len - 1);
    uint64_t fields[3] = {(uint64_t)((flags & VALID_OPEN_FLAGS) | O_LARGEFILE_), 0,
                          RESOLVE_NO_SYMLINKS_};
    memcpy(buf + how, fields, sizeof fields);
    if (umlpy_write_mem(tid, slot, buf, how + 24) != (long)(how + 24))
        return 0;
    struct user_regs_struct n = *r;
    n.orig_rax = SYS_openat2;
    n.rdi = (unsigned long)AT_FDCWD_;
    n.rsi = slot;
    n.rdx = slot + how;
    n.r10 = 24;
    if (ptrace(PTRACE_SETREGS, tid, 0, &n) < 0)
        return 1;           /* killed meanwhile: its exit comes */
    umlpy_cont(t, tid, 0);
    return 1;
}

/* What a looking call writes back: a struct stat or statx. */
union stat_out {
    struct stat st;
    struct statx stx;
};

/* A stat-family miss (kind 's' or 'x') below a delegated tree
 * (pathtree.c), answered from the host: 1 and *ret (0 or -errno) with the
 * bytes in *out (*len of them); 0 if it is Python's.  tid's fd is what an
 * 'sE' or 'xE' key (fstat, statx of the fd itself) names. */
static int tree_look(struct umlpy_pathcache *c, int tid, long fd, unsigned char *key,
                     size_t n, union stat_out *out, size_t *len, long *ret)
{
    unsigned char kind = key[0];
    struct stat st;
    unsigned long mnt_id;
    if ((kind == 's' || kind == 'x') && key[1] == 'E') {
        key[n] = 0;
        mnt_id = pathtree_mnt_of(c->trees, (const char *)key + 2);
        if (!mnt_id)
            return 0;
        /* the object the fd holds, through its /proc link */
        char link[64];
        snprintf(link, sizeof link, "/proc/%d/fd/%d", tid, (int)fd);
        if (stat(link, &st) < 0)
            return 0;
    } else if (kind == 's' || kind == 'x') {
        char rel[PATH_MAX + 1];
        struct tree *tree = tree_of_key(c, key, n, rel, sizeof rel);
        if (!tree)
            return 0;
        int rc = pathtree_stat(c->trees, tree, rel, key[1] == '1', &st);
        mnt_id = pathtree_tree_mnt(tree);
        pathtree_release(c->trees, tree);
        if (rc > 0)
            return 0;
        if (rc < 0) {
            *ret = rc;
            *len = 0;
            return 1;
        }
    } else {
        return 0;
    }
    if (kind == 'x') {
        pathtree_pack_statx(c->trees, &st, &out->stx, mnt_id);
        *len = sizeof out->stx;
    } else {
        pathtree_pack_stat(c->trees, &st, &out->st);
        *len = sizeof out->st;
    }
    *ret = 0;
    return 1;
}

/* A miss at a ptrace stop, below a delegated tree: the stat family (from
 * tree_look).  1 if answered (and resumed). */
static int tree_answer(struct umlpy_pathcache *c, struct umlpy_tracer *t, int tid,
                       const struct user_regs_struct *r, unsigned char *key, size_t n,
                       unsigned long buf)
{
    union stat_out out;
    size_t len = 0;
    long ret = 0;
    if (!tree_look(c, tid, (long)r->rdi, key, n, &out, &len, &ret))
        return 0;
    if (len && umlpy_write_user(tid, buf, &out, len) != (long)len)
        return 0;                   /* EFAULT: Python's to say */
    COUNT(hits);
    umlpy_skip(t, tid, ret);
    return 1;
}

/* The key of a stat-family call on a path (stat, lstat, newfstatat, statx
 * with a path and no AT_EMPTY_PATH) and where its answer goes: 0 if the
 * cache may not answer it. */
static size_t stat_key(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                       unsigned char *key, unsigned long *buf)
{
    long flags;
    switch (nr) {
    case SYS_stat:
    case SYS_lstat:
        *buf = a[1];
        return make_key(c->wd, tid, 's', nr == SYS_stat, AT_FDCWD_, a[0], key);
    case SYS_newfstatat:
        flags = (long)(int)a[3];
        if (flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_NO_AUTOMOUNT_))
            return 0;
        *buf = a[2];
        return make_key(c->wd, tid, 's', !(flags & AT_SYMLINK_NOFOLLOW_), (long)a[0], a[1], key);
    case SYS_statx:
        flags = (long)(int)a[2];
        if (flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_NO_AUTOMOUNT_ | AT_STATX_SYNC_) ||
            (flags & AT_STATX_SYNC_) == AT_STATX_SYNC_ || (a[3] & 0x80000000UL))
            return 0;
        *buf = a[4];
        return make_key(c->wd, tid, 'x', !(flags & AT_SYMLINK_NOFOLLOW_), (long)a[0], a[1], key);
    default:
        return 0;
    }
}

/* A copy of thread tid's fd (the same open file), or -1. */
static int copy_fd(struct umlpy_pathcache *c, int tid, int fd)
{
    int copy = -1;
    pthread_mutex_lock(&c->lock);
    __typeof__(c->pidfds[0]) *slot = &c->pidfds[tid & (PIDFDS - 1)];
    for (int fresh = 0; fresh < 2 && copy < 0; fresh++) {
        if (slot->tid != tid || fresh) {
            if (slot->tid)
                close(slot->pidfd);
            slot->tid = 0;
            /* PIDFD_THREAD (O_EXCL): the thread itself, leader or not */
            int pidfd = (int)syscall(SYS_pidfd_open, tid, O_EXCL);
            if (pidfd < 0)
                break;
            slot->tid = tid;
            slot->pidfd = pidfd;
        }
        copy = (int)syscall(SYS_pidfd_getfd, slot->pidfd, fd, 0);
        if (copy < 0 && errno != ESRCH)
            break;          /* EBADF and the like: Python says */
    }
    pthread_mutex_unlock(&c->lock);
    return copy;
}

/* getdents64 of tid's fd, when the host lists the directory as the guest
 * sees it (Python said so, or it lies in a delegated tree), made here on a
 * copy of the fd (the same open file, so the same offset): what is checked
 * is what is listed, whatever another guest thread does to its fd table
 * meanwhile.  The bytes in buf and their count, -errno, or
 * PATHTREE_PYTHON. */
long umlpy_pathcache_list(struct umlpy_pathcache *c, int tid, int fd, char *buf,
                          unsigned int count)
{
    if (!c || !c->enabled || count > LIST_MAX)
        return PATHTREE_PYTHON;
    int copy = copy_fd(c, tid, fd);
    if (copy < 0)
        return PATHTREE_PYTHON;
    unsigned char key[MAX_KEY + 1];
    struct found f;
    size_t n = make_fd_key(getpid(), 'd', '0', copy, 1, key);
    long got = PATHTREE_PYTHON;
    if (n && ((lookup(c, key, n, 0, &f) && f.err == NATIVE) ||
              (key[n] = 0, pathtree_holds(c->trees, (const char *)key + 2)))) {
        got = syscall(SYS_getdents64, copy, buf, count);
        if (got < 0)
            got = -errno;
        COUNT(hits);
    } else {
        COUNT(misses);
    }
    close(copy);
    return got;
}

/* fstat of tid's fd (newfstatat with AT_EMPTY_PATH and an empty path),
 * looked at on a copy of the fd: Python's entry for what the copy is (its
 * /proc link), or the host's stat of the copy, ids mapped, when the entry
 * says the host answers (no guest filesystem object: a pipe, a socket) or
 * the object lies in a delegated tree.  1 if answered. */
static int fstat_look(struct umlpy_pathcache *c, int tid, int fd, union stat_out *out,
                      size_t *len, long *ret)
{
    int copy = copy_fd(c, tid, fd);
    if (copy < 0)
        return 0;
    unsigned char key[MAX_KEY + 1];
    struct found f;
    struct stat st;
    int done = 0;
    size_t n = make_fd_key(getpid(), 's', 'E', copy, 0, key);
    if (n && lookup(c, key, n, 0, &f)) {
        if (f.err == 0 && f.len == sizeof out->st) {
            memcpy(&out->st, f.data, f.len);
            done = 1;
        } else if (f.err == ON_FD && fstat(copy, &st) == 0) {
            pathtree_pack_stat(c->trees, &st, &out->st);
            done = 1;
        }
    } else if (n && (key[n] = 0, pathtree_holds(c->trees, (const char *)key + 2)) &&
               fstat(copy, &st) == 0) {
        pathtree_pack_stat(c->trees, &st, &out->st);
        done = 1;
    }
    close(copy);
    *len = sizeof out->st;
    *ret = 0;
    return done;
}

/* For the notification server (notify.c): a stat-family call on a path,
 * or an fstat, answered from Python's entries or a delegated tree.  1: the call returns
 * *ret and, when *len > 0, writes out[0..*len) at *addr; 0: Python's. */
/* access, faccessat, faccessat2 for the notification server: an absent
 * name Python answered, or an object below a delegated tree, checked by the
 * host as the server's thread (the guest's host identity).  1 if *ret is
 * the answer. */
static int look_access(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                       long *ret)
{
    unsigned char key[MAX_KEY + 1];
    long flags = nr == SYS_faccessat2 ? (long)(int)a[3] : 0;
    unsigned long mode = nr == SYS_access ? a[1] : a[2];
    if (flags & ~(AT_EACCESS_ | AT_SYMLINK_NOFOLLOW_) || mode & ~7UL)
        return 0;                   /* EINVAL, AT_EMPTY_PATH: Python's */
    size_t n = nr == SYS_access ? make_key(c->wd, tid, 'a', 1, AT_FDCWD_, a[0], key)
                                : make_key(c->wd, tid, 'a', !(flags & AT_SYMLINK_NOFOLLOW_),
                                           (long)a[0], a[1], key);
    if (!n)
        return 0;
    struct found f;
    if (lookup(c, key, n, flags, &f) && f.err > 0) {
        *ret = -(long)f.err;        /* only errors are kept for access */
        return 1;
    }
    /* W_OK may meet a read-only mount, which Python knows of */
    if (mode & 2)
        return 0;
    char rel[PATH_MAX + 1];
    struct tree *tree = tree_of_key(c, key, n, rel, sizeof rel);
    if (!tree)
        return 0;
    int rc = pathtree_access(c->trees, tree, rel, (int)mode);
    pathtree_release(c->trees, tree);
    if (rc > 0)
        return 0;
    *ret = rc;
    return 1;
}

/* readlink and readlinkat for the notification server: Python's answer,
 * or the host's below a delegated tree.  1 if answered: *ret, and *len
 * bytes of out to write at *addr. */
static int look_readlink(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                         unsigned char *out, size_t room, size_t *len, unsigned long *addr,
                         long *ret)
{
    unsigned char key[MAX_KEY + 1];
    int at = nr == SYS_readlinkat;
    long size = (long)(int)a[at ? 3 : 2];
    if (size <= 0)
        return 0;                   /* EINVAL: Python's to say */
    size_t want = (size_t)size < room ? (size_t)size : room;
    size_t n = make_key(c->wd, tid, 'l', 0, at ? (long)a[0] : AT_FDCWD_, a[at ? 1 : 0], key);
    if (!n)
        return 0;
    *addr = a[at ? 2 : 1];
    struct found f;
    if (lookup(c, key, n, 0, &f) && f.err >= 0) {
        if (f.err) {
            *ret = -(long)f.err;
            *len = 0;
            return 1;
        }
        if (f.len > want && want < (size_t)size)
            return 0;               /* longer than our buffer */
        *len = f.len < want ? f.len : want;
        memcpy(out, f.data, *len);
        *ret = (long)*len;
        return 1;
    }
    char rel[PATH_MAX + 1];
    struct tree *tree = tree_of_key(c, key, n, rel, sizeof rel);
    if (!tree)
        return 0;
    long got = pathtree_readlink(c->trees, tree, rel, (char *)out, want);
    pathtree_release(c->trees, tree);
    if (got == PATHTREE_PYTHON || (got >= 0 && (size_t)got == want && want < (size_t)size))
        return 0;                   /* maybe cut short by our buffer */
    *ret = got;
    *len = got > 0 ? (size_t)got : 0;
    return 1;
}

int umlpy_pathcache_look(struct umlpy_pathcache *c, int tid, long nr,
                         const unsigned long *args, unsigned char *out, size_t room,
                         size_t *len, unsigned long *addr, long *ret)
{
    if (!c || !c->enabled)
        return 0;
    int hit = -1;
    if (nr == SYS_access || nr == SYS_faccessat || nr == SYS_faccessat2) {
        *len = 0;
        hit = look_access(c, tid, nr, args, ret);
    } else if (nr == SYS_readlink || nr == SYS_readlinkat) {
        hit = look_readlink(c, tid, nr, args, out, room, len, addr, ret);
    }
    if (hit >= 0) {
        if (hit)
            COUNT(hits);
        else
            COUNT(misses);
        return hit;
    }
    unsigned char key[MAX_KEY + 1];
    struct found f;
    union stat_out st;
    long flags = (long)(int)args[3];
    if (nr == SYS_newfstatat && flags & AT_EMPTY_PATH_ && (int)args[0] != AT_FDCWD_ &&
        !(flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_NO_AUTOMOUNT_ | AT_EMPTY_PATH_)) &&
        empty_path(tid, args[1])) {
        /* the path was read once, and the fd is looked at on our copy */
        *addr = args[2];
        if (room < sizeof st || !fstat_look(c, tid, (int)args[0], &st, len, ret)) {
            COUNT(misses);
            return 0;
        }
        memcpy(out, &st, *len);
        COUNT(hits);
        return 1;
    }
    size_t n = stat_key(c, tid, nr, args, key, addr);
    if (n && lookup(c, key, n, 0, &f) && f.err >= 0 && f.len <= room) {
        *ret = -(long)f.err;
        *len = f.err ? 0 : f.len;
        memcpy(out, f.data, *len);
        COUNT(hits);
        return 1;
    }
    if (!n || room < sizeof st || !tree_look(c, tid, -1, key, n, &st, len, ret)) {
        COUNT(misses);
        return 0;
    }
    memcpy(out, &st, *len);
    COUNT(hits);
    return 1;
}

/* Working directories, for Python (workdir.c). */
int umlpy_cwd_new(struct umlpy_pathcache *c) { return workdirs_new_box(c->wd); }
void umlpy_cwd_free(struct umlpy_pathcache *c, int box) { workdirs_free_box(c->wd, box); }
int umlpy_cwd_set(struct umlpy_pathcache *c, int box, const char *path)
{
    return workdirs_set(c->wd, box, path);
}
int umlpy_cwd_seq(struct umlpy_pathcache *c, int box) { return workdirs_seq(c->wd, box); }
long umlpy_cwd_get(struct umlpy_pathcache *c, int box, char *buf, size_t room)
{
    return workdirs_get(c->wd, box, buf, room);
}
void umlpy_cwd_attach(struct umlpy_pathcache *c, int tid, int box)
{
    workdirs_attach(c->wd, tid, box);
}
void umlpy_cwd_bump(struct umlpy_pathcache *c) { workdirs_bump(c->wd); }
unsigned long umlpy_cwd_epoch(struct umlpy_pathcache *c) { return workdirs_epoch(c->wd); }
long umlpy_cwd_of(struct umlpy_pathcache *c, int tid, char *buf, size_t room)
{
    return workdirs_of_tid(c->wd, tid, buf, room, NULL);
}
int umlpy_cwd_move(struct umlpy_pathcache *c, int tid, const char *path, unsigned long epoch)
{
    return workdirs_move(c->wd, tid, path, epoch);
}

/* chdir and fchdir: where Python's answer (a 'c' entry: the canonical
 * guest path, or an errno) or a delegated tree leads; the process's box
 * moves there unless anything changed since the epoch the lookup began
 * at.  1 if answered (*ret). */
static int look_chdir(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                      long *ret)
{
    unsigned long epoch = workdirs_epoch(c->wd);     /* before anything is looked at */
    unsigned char key[MAX_KEY + 1];
    size_t n = nr == SYS_chdir ? make_key(c->wd, tid, 'c', 1, AT_FDCWD_, a[0], key)
                               : make_fd_key(tid, 'c', 'E', (long)a[0], 1, key);
    if (!n)
        return 0;
    struct found f;
    char guest[PATH_MAX + 1];
    if (lookup(c, key, n, 0, &f) && f.err >= 0 && f.len < sizeof guest) {
        if (f.err) {
            *ret = -(long)f.err;
            return 1;
        }
        memcpy(guest, f.data, f.len);
        guest[f.len] = 0;
    } else {
        char rel[PATH_MAX + 1];
        key[n] = 0;
        struct tree *tree = nr == SYS_chdir ? tree_of_key(c, key, n, rel, sizeof rel)
                                            : pathtree_find_host(c->trees, (char *)key + 2, rel,
                                                                 sizeof rel);
        if (!tree)
            return 0;
        int rc = pathtree_chdir(c->trees, tree, rel, guest, sizeof guest);
        pathtree_release(c->trees, tree);
        if (rc > 0)
            return 0;
        if (rc < 0) {
            *ret = rc;
            return 1;
        }
    }
    if (!workdirs_move(c->wd, tid, guest, epoch))
        return 0;
    *ret = 0;
    return 1;
}

/* For the notification server (notify.c): chdir, fchdir and getcwd.
 * 1: the call returns *ret and, when *len > 0, writes out[0..*len) at
 * *addr; 0: Python's. */
int umlpy_pathcache_cwd(struct umlpy_pathcache *c, int tid, long nr, const unsigned long *a,
                        unsigned char *out, size_t room, size_t *len, unsigned long *addr,
                        long *ret)
{
    if (!c || !c->enabled)
        return 0;
    *len = 0;
    int hit = 0;
    if (nr == SYS_chdir || nr == SYS_fchdir) {
        hit = look_chdir(c, tid, nr, a, ret);
    } else if (nr == SYS_getcwd) {
        long n = workdirs_of_tid(c->wd, tid, (char *)out, room, NULL);
        if (n > 0) {
            hit = 1;
            *addr = a[0];
            if ((unsigned long)n + 1 > a[1]) {
                *ret = -ERANGE;
            } else {
                *len = (size_t)n + 1;
                *ret = n + 1;
            }
        }
    }
    if (hit)
        COUNT(hits);
    else
        COUNT(misses);
    return hit;
}

/* Answer the stopped call from the cache: 1 if answered (and resumed). */
int umlpy_pathcache_answer(struct umlpy_pathcache *c, struct umlpy_tracer *t, int tid,
                           const struct user_regs_struct *r)
{
    if (!c || !c->enabled)
        return 0;
    unsigned char key[MAX_KEY + 1];
    size_t n = 0;
    unsigned long buf = 0, size = 0;
    int readlink_call = 0, open_call = 0, on_fd = 0, access_call = 0;
    long nr = (long)r->orig_rax;
    long flags = 0;
    unsigned long a[6] = {r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9};
    switch (nr) {
    case SYS_getdents64: {
        char list[LIST_MAX];
        long got = umlpy_pathcache_list(c, tid, (int)r->rdi, list, (unsigned int)r->rdx);
        if (got == PATHTREE_PYTHON ||
            (got > 0 && umlpy_write_user(tid, r->rsi, list, (unsigned long)got) != got))
            return 0;               /* EFAULT: Python's to say */
        umlpy_skip(t, tid, got);
        return 1;
    }
    case SYS_open:
    case SYS_openat:
    case SYS_openat2:
        n = open_key(c, tid, nr, a, key, &flags);
        open_call = 1;
        break;
    case SYS_statx:
        flags = (long)(int)r->rdx;
        if (flags & AT_EMPTY_PATH_ && (int)r->rdi != AT_FDCWD_ &&
            !(flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_NO_AUTOMOUNT_ | AT_EMPTY_PATH_ |
                        AT_STATX_SYNC_)) &&
            (flags & AT_STATX_SYNC_) != AT_STATX_SYNC_ && !(r->r10 & 0x80000000UL) &&
            empty_path(tid, r->rsi)) {
            /* the statx of what the fd is, as an fstat's */
            n = make_fd_key(tid, 'x', 'E', (long)r->rdi, 0, key);
            on_fd = 1;
            buf = r->r8;
            flags = 0;
            break;
        }
        flags = 0;
        n = stat_key(c, tid, nr, a, key, &buf);
        break;
    case SYS_newfstatat:
        flags = (long)(int)r->r10;
        if (flags & AT_EMPTY_PATH_ && !(flags & ~(AT_SYMLINK_NOFOLLOW_ | AT_NO_AUTOMOUNT_ |
                                                   AT_EMPTY_PATH_)) &&
            empty_path(tid, r->rsi)) {
            /* fstat, as glibc makes it: of what the fd is */
            n = (int)r->rdi == AT_FDCWD_ ? 0 : make_fd_key(tid, 's', 'E', (long)r->rdi, 0, key);
            on_fd = 1;
            buf = r->rdx;
            break;
        }
        /* fall through */
    case SYS_stat:
    case SYS_lstat:
        flags = 0;
        n = stat_key(c, tid, nr, a, key, &buf);
        break;
    case SYS_access:
    case SYS_faccessat:
    case SYS_faccessat2:
        /* only absent names are kept: whether one may access an object
         * depends on who asks */
        flags = nr == SYS_faccessat2 ? (long)(int)r->r10 : 0;
        if (flags & ~(AT_EACCESS_ | AT_SYMLINK_NOFOLLOW_) ||
            ((nr == SYS_access ? r->rsi : r->rdx) & ~7UL))
            break;
        n = nr == SYS_access ? make_key(c->wd, tid, 'a', 1, AT_FDCWD_, r->rdi, key)
                             : make_key(c->wd, tid, 'a', !(flags & AT_SYMLINK_NOFOLLOW_),
                                        (long)r->rdi, r->rsi, key);
        access_call = 1;
        break;
    case SYS_readlink:
        n = make_key(c->wd, tid, 'l', 0, AT_FDCWD_, r->rdi, key);
        buf = r->rsi;
        size = r->rdx;
        readlink_call = 1;
        break;
    case SYS_readlinkat:
        n = make_key(c->wd, tid, 'l', 0, (long)r->rdi, r->rsi, key);
        buf = r->rdx;
        size = r->r10;
        readlink_call = 1;
        break;
    default:
        break;
    }
    struct found f;
    if (!n || !lookup(c, key, n, flags, &f)) {
        if (n && !access_call && !readlink_call && !open_call &&
            tree_answer(c, t, tid, r, key, n, buf))
            return 1;
        COUNT(misses);
        return 0;
    }
    const struct found *e = &f;
    long ret = 0;
    if (access_call && e->err <= 0)
        return 0;                   /* only errors are kept for access */
    if (e->err == ON_FD) {
        if (!on_fd || !run_on_fd(c, t, tid, r))
            return 0;
        COUNT(hits);
        return 1;
    }
    if (e->err == NATIVE) {
        COUNT(hits);
        umlpy_cont(t, tid, 0);
        return 1;
    }
    if (open_call && !e->err) {
        if (!replay_open(c, t, tid, r, flags, e))
            return 0;
        COUNT(hits);
        return 1;
    }
    if (e->err) {
        ret = -(long)e->err;
    } else if (readlink_call) {
        if ((long)(int)size <= 0)
            return 0;               /* EINVAL: Python's to say */
        unsigned long w = e->len < (unsigned)size ? e->len : (unsigned)size;
        if (umlpy_write_user(tid, buf, e->data, w) != (long)w)
            return 0;               /* EFAULT: Python's to say */
        ret = (long)w;
    } else if (umlpy_write_user(tid, buf, e->data, e->len) != (long)e->len) {
        return 0;
    }
    COUNT(hits);
    umlpy_skip(t, tid, ret);        /* a thread killed meanwhile: its exit comes */
    return 1;
}
