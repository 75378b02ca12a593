/* Working directories (workdir.c), for the path cache and the
 * notification server: not part of the Python interface. */
#ifndef UMLPY_WORKDIR_H
#define UMLPY_WORKDIR_H
#include <stddef.h>

struct umlpy_workdirs;
struct umlpy_workdirs *workdirs_new(size_t max_tid);
void workdirs_free(struct umlpy_workdirs *W);
/* Python's side: a box per process, its path (NULL: removed), its change
 * count, the tids it is the cwd of. */
int workdirs_new_box(struct umlpy_workdirs *W);
void workdirs_free_box(struct umlpy_workdirs *W, int box);
int workdirs_set(struct umlpy_workdirs *W, int box, const char *path);
int workdirs_seq(struct umlpy_workdirs *W, int box);
long workdirs_get(struct umlpy_workdirs *W, int box, char *buf, size_t room);
void workdirs_attach(struct umlpy_workdirs *W, int tid, int box);
void workdirs_bump(struct umlpy_workdirs *W);
unsigned long workdirs_epoch(struct umlpy_workdirs *W);
/* C's side: tid's cwd (its length, or -errno) and the epoch it was read
 * at; a chdir of tid's process to path, applied only if nothing changed
 * since that epoch (1 if applied). */
long workdirs_of_tid(struct umlpy_workdirs *W, int tid, char *buf, size_t room,
                     unsigned long *epoch);
int workdirs_move(struct umlpy_workdirs *W, int tid, const char *path, unsigned long epoch);
#endif
