/* listing_hog DIR ENTRIES LISTINGS MODE: makes DIR with ENTRIES files (if
   ENTRIES > 0), then lists it LISTINGS times, each through an open of its
   own, read to the end with getdents64.  MODE picks what differs between
   the listings, to defeat a cache keyed by it:
     same     open, list, close: the same fd each time
     fds      every fd kept open: a new fd each time
     threads  each listing in a thread of its own (a new tid each time)
     paths    the same directory by a new path each time (DIR/./.., //DIR...)
     half     every fd kept open after reading only its first buffer
   Prints the number of entries of the last listing. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *dir;
static char mode[16];
static long last;

static long list_one(const char *path, int keep, int half)
{
    char buf[32768];
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    long n = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got < 0) {
            perror("getdents64");
            exit(1);
        }
        if (got == 0)
            break;
        for (long off = 0; off < got;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            off += reclen;
            n++;
        }
        if (half)
            break;
    }
    if (!keep)
        close(fd);
    return n;
}

static void *in_thread(void *arg)
{
    (void)arg;
    last = list_one(dir, 0, 0);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: listing_hog DIR ENTRIES LISTINGS MODE\n");
        return 2;
    }
    dir = argv[1];
    int entries = atoi(argv[2]), listings = atoi(argv[3]);
    snprintf(mode, sizeof mode, "%s", argv[4]);
    if (entries > 0) {
        if (mkdir(dir, 0755) != 0) {
            perror("mkdir");
            return 1;
        }
        char name[4096];
        for (int i = 0; i < entries; i++) {
            snprintf(name, sizeof name, "%s/a-rather-long-file-name-to-fill-the-listing-%06d", dir, i);
            int fd = open(name, O_CREAT | O_WRONLY, 0644);
            if (fd < 0) {
                perror(name);
                return 1;
            }
            close(fd);
        }
    }
    char path[8192];
    for (int i = 0; i < listings; i++) {
        if (strcmp(mode, "threads") == 0) {
            pthread_t t;
            pthread_create(&t, NULL, in_thread, NULL);
            pthread_join(t, NULL);
        } else if (strcmp(mode, "paths") == 0) {
            int len = snprintf(path, sizeof path, "%s", dir);
            for (int j = 0; j < i && len < (int)sizeof path - 8; j++)
                len += snprintf(path + len, sizeof path - len, j % 2 ? "/." : "//");
            last = list_one(path, 0, 0);
        } else {
            last = list_one(dir, strcmp(mode, "same") != 0, strcmp(mode, "half") == 0);
        }
    }
    printf("%ld\n", last);
    return 0;
}
