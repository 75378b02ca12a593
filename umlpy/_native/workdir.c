/* Working directories: each guest process's cwd, held here as the guest
 * kernel's one copy of it, so that the path cache (pathcache.c) can key a
 * call relative to the cwd, and the notification server can serve chdir,
 * fchdir and getcwd, with no Python.
 *
 * A box is one process's cwd (its threads share it: every one of their
 * tids points to it).  Python makes, changes and frees boxes
 * (fastpath.py's NativeWorkdirs, vfs.FsContext reads through it); C
 * changes a box only by replaying an answer Python put in the path cache,
 * or by the rule Python gave a delegated tree.  A box with no path is a
 * directory that was removed: only Python answers relative to it.
 *
 * The epoch is bumped by every change Python makes (a rename can move a
 * cwd, a rmdir remove it) and by every clear of the path cache: a chdir
 * that C looked up before it is not applied after it. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workdir.h"

#define MAX_BOXES 32768

struct box {
    char *path;             /* canonical guest path; NULL: removed */
    unsigned long seq;      /* bumped at every change, by Python or C */
    uint64_t gen;           /* bumped when freed: tids of the old process miss */
    int used;
};

struct umlpy_workdirs {
    pthread_mutex_t lock;
    struct box boxes[MAX_BOXES];    /* lazily backed: only as far as top */
    int hint, top;
    uint64_t *box_of;       /* per host tid: (gen << 16) | (box + 1), 0 if unknown */
    size_t max_tid;
    unsigned long epoch;
};

struct umlpy_workdirs *workdirs_new(size_t max_tid)
{
    struct umlpy_workdirs *W = calloc(1, sizeof *W);
    if (!W)
        return NULL;
    W->box_of = calloc(max_tid, sizeof *W->box_of);     /* lazily backed */
    if (!W->box_of) {
        free(W);
        return NULL;
    }
    W->max_tid = max_tid;
    pthread_mutex_init(&W->lock, NULL);
    return W;
}

void workdirs_free(struct umlpy_workdirs *W)
{
    if (!W)
        return;
    for (int i = 0; i < W->top; i++)
        free(W->boxes[i].path);
    free(W->box_of);
    free(W);
}

void workdirs_bump(struct umlpy_workdirs *W)
{
    __atomic_fetch_add(&W->epoch, 1, __ATOMIC_SEQ_CST);
}

unsigned long workdirs_epoch(struct umlpy_workdirs *W)
{
    return __atomic_load_n(&W->epoch, __ATOMIC_SEQ_CST);
}

static int valid(struct umlpy_workdirs *W, int box)
{
    return box >= 0 && box < MAX_BOXES && W->boxes[box].used;
}

int workdirs_new_box(struct umlpy_workdirs *W)
{
    pthread_mutex_lock(&W->lock);
    int found = -1;
    for (int k = 0; k < MAX_BOXES; k++) {
        int i = (W->hint + k) % MAX_BOXES;
        if (!W->boxes[i].used) {
            found = i;
            break;
        }
    }
    if (found >= 0) {
        W->boxes[found].used = 1;
        W->boxes[found].path = NULL;
        W->hint = found + 1;
        if (W->top < found + 1)
            W->top = found + 1;
    }
    pthread_mutex_unlock(&W->lock);
    return found;
}

void workdirs_free_box(struct umlpy_workdirs *W, int box)
{
    pthread_mutex_lock(&W->lock);
    if (valid(W, box)) {
        free(W->boxes[box].path);
        W->boxes[box].path = NULL;
        W->boxes[box].used = 0;
        W->boxes[box].seq++;
        W->boxes[box].gen++;    /* tids still pointing at it: unknown */
    }
    pthread_mutex_unlock(&W->lock);
}

/* Under the lock: tid's box, or -1. */
static int box_of_tid(struct umlpy_workdirs *W, int tid)
{
    uint64_t v = W->box_of[tid];
    int box = (int)(v & 0xffff) - 1;
    if (box < 0 || !valid(W, box) || W->boxes[box].gen != v >> 16)
        return -1;
    return box;
}

/* Under the lock: the box's path becomes path (NULL: removed). */
static int put(struct umlpy_workdirs *W, int box, const char *path)
{
    char *copy = NULL;
    if (path && !(copy = strdup(path)))
        return -ENOMEM;
    free(W->boxes[box].path);
    W->boxes[box].path = copy;
    return (int)(++W->boxes[box].seq & 0x7fffffff);
}

int workdirs_set(struct umlpy_workdirs *W, int box, const char *path)
{
    workdirs_bump(W);
    pthread_mutex_lock(&W->lock);
    int r = valid(W, box) ? put(W, box, path) : -EINVAL;
    pthread_mutex_unlock(&W->lock);
    return r;
}

int workdirs_seq(struct umlpy_workdirs *W, int box)
{
    pthread_mutex_lock(&W->lock);
    int r = valid(W, box) ? (int)(W->boxes[box].seq & 0x7fffffff) : -EINVAL;
    pthread_mutex_unlock(&W->lock);
    return r;
}

/* Under the lock: the box's path in buf, its length, or -errno (ENOENT:
 * removed). */
static long get(struct umlpy_workdirs *W, int box, char *buf, size_t room)
{
    const char *p = W->boxes[box].path;
    size_t n = p ? strlen(p) : 0;
    if (!p)
        return -ENOENT;
    if (n + 1 > room)
        return -ERANGE;
    memcpy(buf, p, n + 1);
    return (long)n;
}

long workdirs_get(struct umlpy_workdirs *W, int box, char *buf, size_t room)
{
    pthread_mutex_lock(&W->lock);
    long r = valid(W, box) ? get(W, box, buf, room) : -EINVAL;
    pthread_mutex_unlock(&W->lock);
    return r;
}

void workdirs_attach(struct umlpy_workdirs *W, int tid, int box)
{
    if (tid <= 0 || (size_t)tid >= W->max_tid)
        return;
    pthread_mutex_lock(&W->lock);
    W->box_of[tid] = valid(W, box) ? (W->boxes[box].gen << 16) | (uint64_t)(box + 1) : 0;
    pthread_mutex_unlock(&W->lock);
}

long workdirs_of_tid(struct umlpy_workdirs *W, int tid, char *buf, size_t room,
                     unsigned long *epoch)
{
    if (tid <= 0 || (size_t)tid >= W->max_tid)
        return -ENOENT;
    if (epoch)
        *epoch = workdirs_epoch(W);
    pthread_mutex_lock(&W->lock);
    int box = box_of_tid(W, tid);
    long r = box < 0 ? -ENOENT : get(W, box, buf, room);
    pthread_mutex_unlock(&W->lock);
    return r;
}

int workdirs_move(struct umlpy_workdirs *W, int tid, const char *path, unsigned long epoch)
{
    if (tid <= 0 || (size_t)tid >= W->max_tid)
        return 0;
    pthread_mutex_lock(&W->lock);
    int box = box_of_tid(W, tid);
    int done = 0;
    /* the epoch is read under the lock: Python bumps it before it takes
     * the lock to change a box */
    if (box >= 0 && workdirs_epoch(W) == epoch)
        done = put(W, box, path) >= 0;
    pthread_mutex_unlock(&W->lock);
    return done;
}
