/* Watch directory argv[1] with inotify, change things in it, print the
 * events seen (name and mask names), in order. Also watch a symlink with
 * and without IN_DONT_FOLLOW. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { unsigned bit; const char *name; } masks[] = {
    {IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"},
    {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
    {IN_OPEN, "OPEN"}, {IN_MOVED_FROM, "MOVED_FROM"}, {IN_MOVED_TO, "MOVED_TO"},
    {IN_CREATE, "CREATE"}, {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"},
    {IN_ISDIR, "ISDIR"}, {IN_IGNORED, "IGNORED"},
};

static void drain(int fd, int wd_dir, int wd_link)
{
    char buf[8192] __attribute__((aligned(8)));
    ssize_t n = read(fd, buf, sizeof buf);
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *ev = (struct inotify_event *)p;
        printf("%s %s", ev->wd == wd_dir ? "dir" : ev->wd == wd_link ? "link" : "?",
               ev->len ? ev->name : "-");
        for (unsigned i = 0; i < sizeof masks / sizeof *masks; i++)
            if (ev->mask & masks[i].bit)
                printf(" %s", masks[i].name);
        printf("\n");
        p += sizeof *ev + ev->len;
    }
}

int main(int argc, char **argv)
{
    char path[PATH_MAX], other[PATH_MAX], link[PATH_MAX];
    if (argc != 2)
        return 2;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    snprintf(path, sizeof path, "%s/file", argv[1]);
    snprintf(other, sizeof other, "%s/renamed", argv[1]);
    snprintf(link, sizeof link, "%s/link", argv[1]);
    int wd = inotify_add_watch(fd, argv[1], IN_CREATE | IN_DELETE | IN_MODIFY |
                               IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_CLOSE_WRITE);
    if (wd < 0) {
        printf("add_watch %s\n", strerrorname_np(errno));
        return 1;
    }
    int f = open(path, O_CREAT | O_WRONLY, 0644);
    write(f, "data", 4);
    close(f);
    chmod(path, 0600);
    rename(path, other);
    mkdir(path, 0755);
    rmdir(path);
    symlink("renamed", link);
    drain(fd, wd, -1);
    /* following the link watches the file; IN_DONT_FOLLOW the link itself */
    int wl = inotify_add_watch(fd, link, IN_MODIFY | IN_ATTRIB | IN_DONT_FOLLOW);
    int wf = inotify_add_watch(fd, link, IN_MODIFY | IN_ATTRIB);
    printf("link watch %s, file watch %s\n", wl < 0 ? strerrorname_np(errno) : "ok",
           wf < 0 ? strerrorname_np(errno) : "ok");
    f = open(other, O_WRONLY | O_APPEND);
    write(f, "more", 4);
    close(f);
    drain(fd, wd, wf);
    unlink(link);
    unlink(other);
    drain(fd, wd, wf);
    printf("missing %s\n", inotify_add_watch(fd, "/nonexistent/x", IN_ALL_EVENTS) < 0 ?
           strerrorname_np(errno) : "ok");
    return 0;
}
