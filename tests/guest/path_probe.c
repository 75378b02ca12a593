/* Looks at paths the way the native path cache is fed and asked: for each
 * path, stat, lstat, statx, readlink, access and a read-only open (three rounds, so
 * that later rounds are answered from the cache), then for each directory
 * a listing and, relative to the directory's fd, fstatat and openat of
 * every entry (the prefilled answers).  Between rounds 2 and 3 it may
 * change the tree (-m DIR: create DIR/new, unlink DIR/victim if present),
 * which must show in round 3.  One line per answer: the same program run
 * natively, without the cache, or with it must print the same. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show_stat(const char *what, const char *path, int r, const struct stat *st)
{
    if (r < 0)
        printf("%s %s err %d\n", what, path, errno);
    else
        printf("%s %s mode %o nlink %lu uid %u gid %u size %lld ino %llu dir %d\n", what,
               path, st->st_mode, (unsigned long)st->st_nlink, st->st_uid, st->st_gid,
               (long long)(S_ISDIR(st->st_mode) ? 0 : st->st_size),
               (unsigned long long)st->st_ino, S_ISDIR(st->st_mode));
}

static void look(const char *path)
{
    struct stat st;
    show_stat("stat", path, stat(path, &st), &st);
    show_stat("lstat", path, lstat(path, &st), &st);
    struct statx sx;
    int r = statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx);
    if (r < 0)
        printf("statx %s err %d\n", path, errno);
    else
        printf("statx %s mode %o ino %llu\n", path, sx.stx_mode,
               (unsigned long long)sx.stx_ino);
    char buf[64];
    ssize_t n = readlink(path, buf, sizeof buf);
    if (n < 0)
        printf("readlink %s err %d\n", path, errno);
    else
        printf("readlink %s %.*s\n", path, (int)n, buf);
    char shortbuf[3];
    n = readlink(path, shortbuf, sizeof shortbuf);
    printf("readlink3 %s %zd %.*s\n", path, n, n > 0 ? (int)n : 0, shortbuf);
    static const int modes[] = {F_OK, R_OK, X_OK, R_OK | X_OK};
    for (int i = 0; i < 4; i++) {
        errno = 0;
        r = access(path, modes[i]);
        printf("access %s %d %d %d\n", path, modes[i], r, r ? errno : 0);
        errno = 0;
        r = faccessat(AT_FDCWD, path, modes[i], AT_SYMLINK_NOFOLLOW | AT_EACCESS);
        printf("faccessat2 %s %d %d %d\n", path, modes[i], r, r ? errno : 0);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("open %s err %d\n", path, errno);
    } else {
        show_stat("open+fstat", path, fstat(fd, &st), &st);
        close(fd);
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    printf("opendir %s %s %d\n", path, fd < 0 ? "err" : "ok", fd < 0 ? errno : 0);
    if (fd >= 0)
        close(fd);
}

static void list(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(dup(fd));
    if (!d) {
        close(fd);
        return;
    }
    char *names[512];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 512)
        names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)count, sizeof *names,
          (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < count; i++) {
        char label[4200];
        snprintf(label, sizeof label, "%s//%s", path, names[i]);
        struct stat st;
        show_stat("fstatat-nofollow", label,
                  fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW), &st);
        show_stat("fstatat", label, fstatat(fd, names[i], &st, 0), &st);
        int f = openat(fd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (f < 0) {
            printf("openat %s err %d\n", label, errno);
        } else {
            show_stat("openat+fstat", label, fstat(f, &st), &st);
            close(f);
        }
        free(names[i]);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    const char *mutate = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-m") == 0) {
        mutate = argv[2];
        first = 3;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    for (int round = 1; round <= 3; round++) {
        printf("round %d\n", round);
        for (int i = first; i < argc; i++)
            look(argv[i]);
        for (int i = first; i < argc; i++)
            list(argv[i]);
        if (round == 2 && mutate) {
            char p[4200];
            snprintf(p, sizeof p, "%s/new", mutate);
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
            printf("create %s %d\n", p, fd < 0 ? errno : 0);
            if (fd >= 0)
                close(fd);
            snprintf(p, sizeof p, "%s/victim", mutate);
            printf("unlink %s %d\n", p, unlink(p) < 0 ? errno : 0);
        }
    }
    return 0;
}
