/* A guest asking the guest kernel to copy up host objects it may not read
 * (tests/escape/test_hostpath_escapes.py).
 *
 *   hp_copyup TECHNIQUE FILE DIR
 *
 * FILE is a host file and DIR a host directory that the guest's host
 * identity may not read.  TECHNIQUE (chown, utimensat, utimes, link,
 * inotify) is a call that makes the guest kernel copy the object up to
 * the upper layer; the program then reads FILE (and, for link, the new
 * name) and lists DIR, and prints whatever it got: the test looks for the
 * secret content and the hidden entry's name in its output. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static void show_file(const char *tag, const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s read %s: %s\n", tag, path, strerror(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        printf("%s read %s: %s\n", tag, path, strerror(errno));
        return;
    }
    buf[n] = 0;
    printf("%s read %s: [%s]\n", tag, path, buf);
}

static void show_dir(const char *tag, const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        printf("%s list %s: %s\n", tag, path, strerror(errno));
        return;
    }
    printf("%s list %s:", tag, path);
    struct dirent *e;
    while ((e = readdir(d)))
        printf(" %s", e->d_name);
    printf("\n");
    closedir(d);
}

static void report(const char *what, int r)
{
    printf("CALL %s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: hp_copyup TECHNIQUE FILE DIR\n");
        return 2;
    }
    const char *how = argv[1], *file = argv[2], *dir = argv[3];
    char newname[256] = "";
    show_file("BEFORE", file);
    show_dir("BEFORE", dir);
    if (!strcmp(how, "chown")) {
        report("chown file", chown(file, getuid(), getgid()));
        report("chown dir", chown(dir, getuid(), getgid()));
    } else if (!strcmp(how, "utimensat")) {
        report("utimensat file", utimensat(AT_FDCWD, file, NULL, 0));
        report("utimensat dir", utimensat(AT_FDCWD, dir, NULL, 0));
    } else if (!strcmp(how, "utimes")) {
        report("utimes file", utimes(file, NULL));
        report("utimes dir", utimes(dir, NULL));
    } else if (!strcmp(how, "link")) {
        /* into a directory of the guest's own (already in the upper layer) */
        char dir2[128];
        snprintf(dir2, sizeof dir2, "/tmp/hp-links-%d", (int)getpid());
        report("mkdir", mkdir(dir2, 0755));
        snprintf(newname, sizeof newname, "%s/newname", dir2);
        report("link", link(file, newname));
    } else if (!strcmp(how, "inotify")) {
        int ifd = inotify_init1(IN_CLOEXEC);
        int w = inotify_add_watch(ifd, dir, IN_ALL_EVENTS);
        report("inotify_add_watch dir", w < 0 ? -1 : 0);
        w = inotify_add_watch(ifd, file, IN_ALL_EVENTS);
        report("inotify_add_watch file", w < 0 ? -1 : 0);
    } else {
        printf("unknown technique %s\n", how);
        return 2;
    }
    show_file("AFTER", file);
    show_dir("AFTER", dir);
    if (newname[0])
        show_file("AFTER", newname);
    printf("DONE\n");
    return 0;
}
