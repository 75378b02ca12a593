/* Delegated trees (pathtree.c), for the path cache and the notification
 * server: not part of the Python interface. */
#ifndef UMLPY_PATHTREE_H
#define UMLPY_PATHTREE_H
#include <stddef.h>
#include <sys/stat.h>

#define PATHTREE_PYTHON 1000000     /* pathtree_open: Python decides */

struct umlpy_trees;
struct tree;
struct umlpy_trees *pathtree_new(void);
void pathtree_free(struct umlpy_trees *T);
void pathtree_clear(struct umlpy_trees *T);
void pathtree_configure(struct umlpy_trees *T, long ttl_ms);
void pathtree_idmap(struct umlpy_trees *T, int identity,
                    const unsigned int *uid_ranges, int nuid,
                    const unsigned int *gid_ranges, int ngid);
int pathtree_add(struct umlpy_trees *T, const char *guest, const char *host,
                 unsigned long dev, unsigned long ino, unsigned long mnt_id);
struct tree *pathtree_find(struct umlpy_trees *T, const char *where, const char *path,
                           char *rel, size_t room);
struct tree *pathtree_find_host(struct umlpy_trees *T, const char *host, char *rel,
                                size_t room);
int pathtree_chdir(struct umlpy_trees *T, struct tree *t, const char *rel, char *guest,
                   size_t room);
void pathtree_release(struct umlpy_trees *T, struct tree *t);
int pathtree_holds(struct umlpy_trees *T, const char *host);
unsigned long pathtree_mnt_of(struct umlpy_trees *T, const char *host);
unsigned long pathtree_tree_mnt(const struct tree *t);
int pathtree_stat(struct umlpy_trees *T, struct tree *t, const char *rel, int follow,
                  struct stat *st);
int pathtree_open(struct umlpy_trees *T, struct tree *t, const char *rel, long flags);
int pathtree_access(struct umlpy_trees *T, struct tree *t, const char *rel, int mode);
long pathtree_readlink(struct umlpy_trees *T, struct tree *t, const char *rel, char *buf,
                       size_t size);
void pathtree_pack_stat(struct umlpy_trees *T, const struct stat *host, struct stat *out);
void pathtree_pack_statx(struct umlpy_trees *T, const struct stat *host, struct statx *out,
                         unsigned long mnt_id);
#endif
