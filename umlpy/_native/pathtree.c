/* Delegated trees: host directories whose whole subtree the guest sees
 * exactly as the host shows it, so that C answers lookups below them from
 * the host itself, with no entry of Python's for each name.
 *
 * Python decides which trees there are (fastpath.py, VFS.delegable): a
 * directory of the root filesystem that exists only in the lower layer (so
 * everything below it does), with no mountpoint and nothing hidden at or
 * below it, reached from the root through directories anyone may search.
 * C then applies Python's one rule for a cached answer (it is the same for
 * every caller): every directory a lookup walks through below the tree's
 * root must be a directory anyone may search.  Such a directory is checked
 * once (lstat, o+x) and remembered for the cache's lifetime.  Whatever is
 * unusual (a symlink on the way, "..", a host mountpoint, a permission
 * refused, a FIFO) goes to Python.
 *
 * The host objects are reached only from the tree's directory fd, with
 * openat2 and RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
 * | RESOLVE_NO_XDEV.  Answers carry ids through the guest's user-namespace
 * map, as HostTreeFS presents them.  The whole set is dropped with the
 * path cache (every change the guest kernel makes, and TTL). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "pathtree.h"

#define MAX_TREES 64
#define DIRS_CAPACITY 65536         /* slots, a power of two */
#define MAX_DIRS (DIRS_CAPACITY / 2)
#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | \
                 RESOLVE_NO_XDEV)
#define OVERFLOW_ID 65534

struct tree {
    char *guest, *host;         /* canonical paths, no trailing slash */
    size_t glen, hlen;
    int fd;                     /* O_PATH of the host directory */
    uint64_t mnt_id;            /* statx's mount id of what it shows */
    long stamp_ms;
    int users, dead;
};

struct dir_slot {
    uint64_t hash;              /* 0: free */
    char *path;
    long stamp_ms;
};

/* A user namespace's map of one kind of id: (inside, outside, count)
 * triples, as Python's IdMap has them. */
struct idmap {
    unsigned int *ranges;
    int n;
};

struct umlpy_trees {
    pthread_mutex_t lock;
    struct tree *trees[MAX_TREES];
    int count;
    struct dir_slot *dirs;      /* host directories anyone may search */
    unsigned long ndirs;
    long ttl_ms;
    int identity;               /* the guest shares the host's ids */
    struct idmap uids, gids;    /* else: its user namespace's maps */
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static uint64_t hash_of(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static int openat2_beneath(int dirfd, const char *path, long flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.resolve = BENEATH;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

struct umlpy_trees *pathtree_new(void)
{
    struct umlpy_trees *T = calloc(1, sizeof *T);
    if (!T)
        return NULL;
    T->dirs = calloc(DIRS_CAPACITY, sizeof *T->dirs);
    if (!T->dirs) {
        free(T);
        return NULL;
    }
    T->identity = 1;
    T->ttl_ms = 1000;
    pthread_mutex_init(&T->lock, NULL);
    return T;
}

static void tree_free(struct tree *t)
{
    if (t->fd >= 0)
        close(t->fd);
    free(t->guest);
    free(t->host);
    free(t);
}

static void dirs_clear(struct umlpy_trees *T)
{
    if (!T->ndirs)
        return;
    for (size_t i = 0; i < DIRS_CAPACITY; i++) {
        free(T->dirs[i].path);
        T->dirs[i].path = NULL;
        T->dirs[i].hash = 0;
    }
    T->ndirs = 0;
}

/* Trees still in use by a lookup on the other thread are freed by it. */
void pathtree_clear(struct umlpy_trees *T)
{
    pthread_mutex_lock(&T->lock);
    for (int i = 0; i < T->count; i++) {
        struct tree *t = T->trees[i];
        t->dead = 1;
        if (!t->users)
            tree_free(t);
        T->trees[i] = NULL;
    }
    T->count = 0;
    dirs_clear(T);
    pthread_mutex_unlock(&T->lock);
}

void pathtree_free(struct umlpy_trees *T)
{
    if (!T)
        return;
    pathtree_clear(T);
    free(T->dirs);
    free(T->uids.ranges);
    free(T->gids.ranges);
    free(T);
}

void pathtree_configure(struct umlpy_trees *T, long ttl_ms)
{
    pthread_mutex_lock(&T->lock);
    T->ttl_ms = ttl_ms;
    pthread_mutex_unlock(&T->lock);
}

static void idmap_set(struct idmap *m, const unsigned int *ranges, int n)
{
    free(m->ranges);
    m->ranges = NULL;
    m->n = 0;
    if (n <= 0 || !(m->ranges = malloc(sizeof(unsigned int) * 3 * (size_t)n)))
        return;         /* no range: every host id shows as the overflow id */
    memcpy(m->ranges, ranges, sizeof(unsigned int) * 3 * (size_t)n);
    m->n = n;
}

void pathtree_idmap(struct umlpy_trees *T, int identity,
                    const unsigned int *uid_ranges, int nuid,
                    const unsigned int *gid_ranges, int ngid)
{
    pthread_mutex_lock(&T->lock);
    T->identity = identity;
    idmap_set(&T->uids, uid_ranges, nuid);
    idmap_set(&T->gids, gid_ranges, ngid);
    pthread_mutex_unlock(&T->lock);
}

/* Python's tree: its directory opened here with no symlink followed, and
 * checked to be the object Python looked at.  0 or -errno. */
int pathtree_add(struct umlpy_trees *T, const char *guest, const char *host,
                 unsigned long dev, unsigned long ino, unsigned long mnt_id)
{
    size_t glen = strlen(guest), hlen = strlen(host);
    if (guest[0] != '/' || host[0] != '/' || glen < 2 || hlen < 2 ||
        guest[glen - 1] == '/' || host[hlen - 1] == '/')
        return -EINVAL;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, host, &how, sizeof how);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != dev || st.st_ino != ino) {
        close(fd);
        return -ESTALE;
    }
    struct tree *t = calloc(1, sizeof *t);
    if (!t || !(t->guest = strdup(guest)) || !(t->host = strdup(host))) {
        if (t) {
            free(t->guest);
            free(t);
        }
        close(fd);
        return -ENOMEM;
    }
    t->glen = glen;
    t->hlen = hlen;
    t->fd = fd;
    t->mnt_id = mnt_id;
    t->stamp_ms = now_ms();
    pthread_mutex_lock(&T->lock);
    int slot = -1, oldest = 0;
    for (int i = 0; i < T->count && slot < 0; i++) {
        if (strcmp(T->trees[i]->host, host) == 0)
            slot = i;                           /* the same tree again */
        else if (T->trees[i]->stamp_ms < T->trees[oldest]->stamp_ms)
            oldest = i;
    }
    if (slot < 0 && T->count < MAX_TREES)
        slot = T->count++;
    else if (slot < 0)
        slot = oldest;
    if (T->trees[slot]) {
        struct tree *old = T->trees[slot];
        old->dead = 1;
        if (!old->users)
            tree_free(old);
    }
    T->trees[slot] = t;
    pthread_mutex_unlock(&T->lock);
    return 0;
}

static int prefixed(const char *s, const char *prefix, size_t n)
{
    return strncmp(s, prefix, n) == 0 && (s[n] == 0 || s[n] == '/');
}

/* The fresh tree whose root base is at or below (by host path or by
 * guest path), or NULL.  Under the lock. */
static struct tree *tree_of(struct umlpy_trees *T, const char *base, int by_host)
{
    long now = now_ms();
    for (int i = 0; i < T->count; i++) {
        struct tree *t = T->trees[i];
        if (now - t->stamp_ms <= T->ttl_ms &&
            prefixed(base, by_host ? t->host : t->guest, by_host ? t->hlen : t->glen))
            return t;
    }
    return NULL;
}

/* The tree a call's path lies in: where is "" for an absolute guest path,
 * the host path of the directory fd it is relative to, or "@" and the
 * guest path of the cwd it is relative to.  The tree (held:
 * pathtree_release it) and the path below its root in rel ("." for the
 * root itself), or NULL. */
struct tree *pathtree_find(struct umlpy_trees *T, const char *where, const char *path,
                           char *rel, size_t room)
{
    if (where[0] == '@') {
        /* from the cwd: as the absolute guest path it continues */
        char full[PATH_MAX + 1];
        const char *cwd = where + 1;
        int n = snprintf(full, sizeof full, "%s%s%s", cwd,
                         cwd[0] && cwd[strlen(cwd) - 1] == '/' ? "" : "/", path);
        if (n < 0 || n >= (int)sizeof full)
            return NULL;
        return pathtree_find(T, "", full, rel, room);
    }
    int by_host = where[0] == '/';
    const char *base = by_host ? where : path;
    pthread_mutex_lock(&T->lock);
    struct tree *found = tree_of(T, base, by_host);
    if (found)
        found->users++;
    pthread_mutex_unlock(&T->lock);
    if (!found)
        return NULL;
    const char *below = base + (by_host ? found->hlen : found->glen);
    while (*below == '/')
        below++;
    int n = by_host ? snprintf(rel, room, "%s%s%s", below, *below ? "/" : "", path)
                   : snprintf(rel, room, "%s", below);
    if (n < 0 || (size_t)n >= room) {
        pathtree_release(T, found);
        return NULL;
    }
    if (!*rel)
        strcpy(rel, ".");
    return found;
}

/* The tree the host directory path lies in (held), with the path below
 * its root in rel, or NULL. */
struct tree *pathtree_find_host(struct umlpy_trees *T, const char *host, char *rel,
                                size_t room)
{
    size_t n = strlen(host);
    if (host[0] != '/' || (n > 10 && strcmp(host + n - 10, " (deleted)") == 0))
        return NULL;
    return pathtree_find(T, host, "", rel, room);
}

/* Whether the host directory path lies in a tree (its listing is the
 * guest's). */
int pathtree_holds(struct umlpy_trees *T, const char *host)
{
    return pathtree_mnt_of(T, host) != 0;
}

/* The mount id of the tree the host path lies in, 0 if none. */
unsigned long pathtree_mnt_of(struct umlpy_trees *T, const char *host)
{
    size_t n = strlen(host);
    if (host[0] != '/' || (n > 10 && strcmp(host + n - 10, " (deleted)") == 0))
        return 0;
    pthread_mutex_lock(&T->lock);
    struct tree *t = tree_of(T, host, 1);
    unsigned long id = t ? (unsigned long)t->mnt_id : 0;
    pthread_mutex_unlock(&T->lock);
    return id;
}

unsigned long pathtree_tree_mnt(const struct tree *t)
{
    return (unsigned long)t->mnt_id;
}

void pathtree_release(struct umlpy_trees *T, struct tree *t)
{
    pthread_mutex_lock(&T->lock);
    if (--t->users == 0 && t->dead)
        tree_free(t);
    pthread_mutex_unlock(&T->lock);
}

static struct dir_slot *dir_slot(struct umlpy_trees *T, const char *path, size_t n,
                                 uint64_t h)
{
    for (size_t i = h & (DIRS_CAPACITY - 1);; i = (i + 1) & (DIRS_CAPACITY - 1)) {
        struct dir_slot *d = &T->dirs[i];
        if (!d->hash || (d->hash == h && strncmp(d->path, path, n) == 0 && !d->path[n]))
            return d;
    }
}

static int dir_known(struct umlpy_trees *T, const char *path, size_t n)
{
    uint64_t h = hash_of(path, n);
    pthread_mutex_lock(&T->lock);
    struct dir_slot *d = dir_slot(T, path, n, h);
    int ok = d->hash && now_ms() - d->stamp_ms <= T->ttl_ms;
    pthread_mutex_unlock(&T->lock);
    return ok;
}

static void dir_remember(struct umlpy_trees *T, const char *path, size_t n)
{
    char *copy = strndup(path, n);
    if (!copy)
        return;
    uint64_t h = hash_of(path, n);
    pthread_mutex_lock(&T->lock);
    if (T->ndirs >= MAX_DIRS)
        dirs_clear(T);              /* a guest cannot grow it without bound */
    struct dir_slot *d = dir_slot(T, path, n, h);
    if (d->hash)
        free(d->path);
    else
        T->ndirs++;
    d->hash = h;
    d->path = copy;
    d->stamp_ms = now_ms();
    pthread_mutex_unlock(&T->lock);
}

static int is_answer(int err)
{
    return err == ENOENT || err == ENOTDIR;
}

/* Every directory the walk of rel passes through (all its components but
 * the last) is a directory anyone may search: 0.  -errno: the answer
 * (a name missing on the way, a file used as a directory); 1: Python's. */
static int walk_ok(struct umlpy_trees *T, struct tree *t, const char *rel)
{
    char path[PATH_MAX + 1];
    int n = snprintf(path, sizeof path, "%s/%s", t->host, rel);
    if (n < 0 || n >= (int)sizeof path)
        return 1;
    const char *inner = path + t->hlen + 1;     /* rel, in path */
    for (const char *p = inner; *p; p++) {
        if (*p != '/')
            continue;
        const char *start = p;
        while (start > inner && start[-1] != '/')
            start--;
        size_t clen = (size_t)(p - start);
        if (clen == 0 || (clen == 1 && start[0] == '.'))
            continue;
        if (clen == 2 && start[0] == '.' && start[1] == '.')
            return 1;
        size_t len = (size_t)(p - path);
        if (dir_known(T, path, len))
            continue;
        path[len] = 0;
        int fd = openat2_beneath(t->fd, inner, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        path[len] = '/';
        if (fd < 0)
            return is_answer(errno) ? -errno : 1;
        struct stat st;
        int r = fstat(fd, &st);
        close(fd);
        if (r < 0 || S_ISLNK(st.st_mode))
            return 1;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        if (!(st.st_mode & S_IXOTH))
            return 1;
        dir_remember(T, path, len);
    }
    return 0;
}

#define HOLD_PYTHON (-100000)

/* An O_PATH fd of rel in the tree, every directory on the way checked
 * (walk_ok), and its lstat in *st: the fd, -errno (the answer), or
 * HOLD_PYTHON (anything unusual). */
static int hold(struct umlpy_trees *T, struct tree *t, const char *rel, struct stat *st)
{
    int r = walk_ok(T, t, rel);
    if (r)
        return r < 0 ? r : HOLD_PYTHON;
    int fd = openat2_beneath(t->fd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return is_answer(errno) ? -errno : HOLD_PYTHON;
    if (fstat(fd, st) < 0) {
        close(fd);
        return HOLD_PYTHON;
    }
    return fd;
}

/* lstat (follow: stat) of rel in the tree: 0 and *st, -errno (the
 * answer), or 1 (Python's: a symlink to follow, anything unusual). */
int pathtree_stat(struct umlpy_trees *T, struct tree *t, const char *rel, int follow,
                  struct stat *st)
{
    int fd = hold(T, t, rel, st);
    if (fd < 0)
        return fd == HOLD_PYTHON ? 1 : fd;
    close(fd);
    return follow && S_ISLNK(st->st_mode) ? 1 : 0;
}

/* access(2) of rel in the tree (mode without W_OK), checked by the host as
 * the calling thread: the notification server, switched to the guest's
 * host identity, as Python's identity workers check it.  0 or -errno (the
 * answer), or 1 (Python's: a symlink at the end, anything unusual). */
int pathtree_access(struct umlpy_trees *T, struct tree *t, const char *rel, int mode)
{
    struct stat st;
    int fd = hold(T, t, rel, &st);
    if (fd < 0)
        return fd == HOLD_PYTHON ? 1 : fd;
    if (S_ISLNK(st.st_mode)) {
        close(fd);
        return 1;
    }
    int r = mode ? (int)syscall(SYS_faccessat2, fd, "", mode, AT_EMPTY_PATH | AT_EACCESS) : 0;
    int err = errno;
    close(fd);
    return r < 0 ? -err : 0;
}

/* chdir(2) to rel in the tree (fchdir: to the directory the fd holds,
 * found by its host path): the canonical guest path of the new working
 * directory in guest, and 0; -errno (the answer); or 1 (Python's: a
 * symlink, "..", a directory not everyone may search). */
int pathtree_chdir(struct umlpy_trees *T, struct tree *t, const char *rel, char *guest,
                   size_t room)
{
    size_t n = (size_t)snprintf(guest, room, "%s", t->guest);
    if (n >= room)
        return 1;
    for (const char *p = rel; *p;) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        if (len && !(len == 1 && p[0] == '.')) {
            if (n + 1 + len + 1 > room)
                return 1;
            guest[n++] = '/';
            memcpy(guest + n, p, len);
            n += len;
            guest[n] = 0;
        }
        p = *end ? end + 1 : end;
    }
    struct stat st;
    int fd = hold(T, t, rel, &st);
    if (fd < 0)
        return fd == HOLD_PYTHON ? 1 : fd;
    close(fd);
    if (S_ISLNK(st.st_mode) || (S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH)))
        return 1;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* readlink(2) of rel in the tree: the length of the target put in buf (cut
 * at size, as Linux's), -errno (the answer: EINVAL for no symlink), or
 * PATHTREE_PYTHON. */
long pathtree_readlink(struct umlpy_trees *T, struct tree *t, const char *rel, char *buf,
                       size_t size)
{
    struct stat st;
    int fd = hold(T, t, rel, &st);
    if (fd < 0)
        return fd == HOLD_PYTHON ? PATHTREE_PYTHON : fd;
    long n = -EINVAL;
    if (S_ISLNK(st.st_mode) && (n = readlinkat(fd, "", buf, size)) < 0)
        n = PATHTREE_PYTHON;
    close(fd);
    return n;
}

/* A read-only open of rel in the tree with the guest's flags: the fd, -errno
 * (the answer), or PATHTREE_PYTHON.  Only files and directories are opened
 * here: a FIFO's open waits, a device's has effects; they are Python's. */
int pathtree_open(struct umlpy_trees *T, struct tree *t, const char *rel, long flags)
{
    struct stat want, got;
    int held = hold(T, t, rel, &want);
    if (held < 0)
        return held == HOLD_PYTHON ? PATHTREE_PYTHON : held;
    close(held);
    if (!(S_ISREG(want.st_mode) || S_ISDIR(want.st_mode)))
        return PATHTREE_PYTHON;         /* a symlink (ELOOP or followed), a FIFO */
    if (flags & O_DIRECTORY && !S_ISDIR(want.st_mode))
        return -ENOTDIR;
    int fd = openat2_beneath(t->fd, rel, (flags & (037777777 & ~(O_PATH | O_CREAT | O_TRUNC))) |
                                             O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_LARGEFILE);
    if (fd < 0)
        return PATHTREE_PYTHON;         /* EACCES and the like: Python says */
    if (fstat(fd, &got) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
        close(fd);
        return PATHTREE_PYTHON;
    }
    if (!(flags & O_NONBLOCK))
        fcntl(fd, F_SETFL, (int)(flags & ~O_NONBLOCK & ~O_CLOEXEC & 0xffffff));
    return fd;
}

static uint32_t id_in(const struct idmap *m, uint32_t id)
{
    for (int i = 0; i < m->n; i++) {
        const unsigned int *r = m->ranges + 3 * i;
        if (id >= r[1] && id - r[1] < r[2])
            return r[0] + (id - r[1]);
    }
    return OVERFLOW_ID;
}

static uint32_t uid_in(const struct umlpy_trees *T, uint32_t uid)
{
    return T->identity ? uid : id_in(&T->uids, uid);
}

static uint32_t gid_in(const struct umlpy_trees *T, uint32_t gid)
{
    return T->identity ? gid : id_in(&T->gids, gid);
}

/* struct stat as the guest sees it (Attr.pack_stat): the host's, its ids
 * mapped, the padding zeroed. */
void pathtree_pack_stat(struct umlpy_trees *T, const struct stat *host, struct stat *out)
{
    memset(out, 0, sizeof *out);
    out->st_dev = host->st_dev;
    out->st_ino = host->st_ino;
    out->st_nlink = host->st_nlink;
    out->st_mode = host->st_mode;
    out->st_uid = uid_in(T, host->st_uid);
    out->st_gid = gid_in(T, host->st_gid);
    out->st_rdev = host->st_rdev;
    out->st_size = host->st_size;
    out->st_blksize = host->st_blksize;
    out->st_blocks = host->st_blocks;
    out->st_atim = host->st_atim;
    out->st_mtim = host->st_mtim;
    out->st_ctim = host->st_ctim;
}

/* struct statx as the guest sees it (Attr.pack_statx): the basic stats and
 * the mount's id, no birth time. */
void pathtree_pack_statx(struct umlpy_trees *T, const struct stat *host, struct statx *out,
                         unsigned long mnt_id)
{
    memset(out, 0, sizeof *out);
    out->stx_mask = STATX_BASIC_STATS | 0x1000;     /* STATX_MNT_ID */
    out->stx_blksize = (uint32_t)host->st_blksize;
    out->stx_nlink = (uint32_t)host->st_nlink;
    out->stx_uid = uid_in(T, host->st_uid);
    out->stx_gid = gid_in(T, host->st_gid);
    out->stx_mode = (uint16_t)(host->st_mode & 0xFFFF);
    out->stx_ino = host->st_ino;
    out->stx_size = (uint64_t)host->st_size;
    out->stx_blocks = (uint64_t)host->st_blocks;
    out->stx_atime.tv_sec = host->st_atim.tv_sec;
    out->stx_atime.tv_nsec = (uint32_t)host->st_atim.tv_nsec;
    out->stx_ctime.tv_sec = host->st_ctim.tv_sec;
    out->stx_ctime.tv_nsec = (uint32_t)host->st_ctim.tv_nsec;
    out->stx_mtime.tv_sec = host->st_mtim.tv_sec;
    out->stx_mtime.tv_nsec = (uint32_t)host->st_mtim.tv_nsec;
    out->stx_rdev_major = major(host->st_rdev);
    out->stx_rdev_minor = minor(host->st_rdev);
    out->stx_dev_major = major(host->st_dev);
    out->stx_dev_minor = minor(host->st_dev);
    /* stx_mnt_id follows the minor numbers (Linux 5.8) */
    uint64_t id = mnt_id;
    memcpy((char *)out + 0x90, &id, sizeof id);
}
