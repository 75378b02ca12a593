/* A chdir racing the removal of its target: cwd_race BASE N, where
 * BASE/xI/d (I < N) are empty directories of the host's tree.
 *
 * Round I: the main thread looks at BASE/xI/d once (the guest kernel lets
 * C serve the tree from then on), then chdirs into it while a second
 * thread removes it.  Whichever wins, Linux leaves no working directory
 * with a name: the chdir fails (ENOENT), or it succeeds and the cwd is
 * gone (getcwd: ENOENT).  A chdir applied after the removal was seen would
 * leave the process in a directory by a name that no longer exists. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *base;
static pthread_barrier_t start, done;
static int round_no, rounds;

static void *remover(void *arg)
{
    (void)arg;
    char p[PATH_MAX];
    for (int i = 0; i < rounds; i++) {
        snprintf(p, sizeof p, "%s/x%d/d", base, i);
        pthread_barrier_wait(&start);
        if (rmdir(p) < 0)
            printf("rmdir %d: %s\n", i, strerrorname_np(errno));
        pthread_barrier_wait(&done);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    base = argv[1];
    rounds = atoi(argv[2]);
    pthread_barrier_init(&start, NULL, 2);
    pthread_barrier_init(&done, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, remover, NULL);
    int entered = 0, named = 0;
    char p[PATH_MAX], cwd[PATH_MAX];
    struct stat st;
    for (round_no = 0; round_no < rounds; round_no++) {
        snprintf(p, sizeof p, "%s/x%d/d", base, round_no);
        stat(p, &st);
        pthread_barrier_wait(&start);
        int r = chdir(p);
        pthread_barrier_wait(&done);
        if (r == 0) {
            entered++;
            if (getcwd(cwd, sizeof cwd)) {
                named++;
                printf("round %d: in %s after its removal\n", round_no, cwd);
            }
        } else if (errno != ENOENT) {
            printf("round %d: chdir %s\n", round_no, strerrorname_np(errno));
        }
        if (chdir("/") < 0)
            return 1;
    }
    pthread_join(t, NULL);
    printf("entered before the removal: %s; cwd named after it: %d\n",
           entered ? "some" : "none", named);
    return 0;
}
