/* A sequence of extended-attribute calls on objects in the directory
 * argv[1] (made here), one line per call: its result or errno, and what
 * it read.  Run as root natively and inside umlpy, the outputs must agree.
 * The last part runs as uid 65534 (no capabilities), in a child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

struct xattr_args {
    unsigned long long value;
    unsigned int size;
    unsigned int flags;
};

static char f[4096], l[4096], p[4096], d[4096];
static int sequence(int argc, char **argv);

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s = %ld\n", what, r);
}

static void show_value(const char *what, long r, const unsigned char *buf)
{
    show(what, r);
    if (r > 0 && buf != NULL) {
        printf("  value:");
        for (long i = 0; i < r; i++)
            printf(" %02x", buf[i]);
        printf("\n");
    }
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the names of a list, sorted: filesystems list in their own order */
static void show_list(const char *what, long r, char *buf)
{
    show(what, r);
    if (r <= 0)
        return;
    char *names[512];
    int n = 0;
    for (char *s = buf; s < buf + r && n < 512; s += strlen(s) + 1)
        names[n++] = s;
    qsort(names, n, sizeof(names[0]), cmp);
    printf("  names:");
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static void as_nobody(void)
{
    unsigned char buf[256];
    char list[4096];
    if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
        perror("setresuid");
        exit(1);
    }
    show_value("nobody getxattr user.b", getxattr(f, "user.b", buf, sizeof buf), buf);
    show("nobody setxattr user.x (no write permission)", setxattr(f, "user.x", "1", 1, 0));
    show("nobody getxattr trusted.t", getxattr(f, "trusted.t", buf, sizeof buf));
    show("nobody setxattr trusted.n", setxattr(f, "trusted.n", "1", 1, 0));
    show("nobody removexattr trusted.t", removexattr(f, "trusted.t"));
    show_list("nobody listxattr", listxattr(f, list, sizeof list), list);
    show_value("nobody getxattr security.capability",
               getxattr(f, "security.capability", buf, sizeof buf), buf);
    unsigned int caps[5] = {0x02000001, 1 << 13, 0, 0, 0};
    show("nobody setxattr security.capability",
         setxattr(f, "security.capability", caps, sizeof caps, 0));
    show("nobody removexattr security.capability", removexattr(f, "security.capability"));
    show("nobody setxattr user.d on a 0777 dir", setxattr(d, "user.d2", "1", 1, 0));
}

/* One call, for the tests' scripts: get PATH NAME, list PATH, set PATH
 * NAME VALUE, remove PATH NAME, append PATH (a write: a copy-up), unlink
 * PATH, create PATH, rename FROM TO.  Prints
 * what sequence() would, exits 0. */
static int one(int argc, char **argv)
{
    static char buf[65536];
    const char *op = argv[1];
    if (!strcmp(op, "get") && argc == 4) {
        long r = getxattr(argv[2], argv[3], buf, sizeof buf);
        show(argv[3], r);
        if (r > 0)
            printf("  text: %.*s\n", (int)r, buf);
    } else if (!strcmp(op, "list") && argc == 3) {
        show_list("list", listxattr(argv[2], buf, sizeof buf), buf);
    } else if (!strcmp(op, "set") && argc == 5) {
        show("set", setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0));
    } else if (!strcmp(op, "remove") && argc == 4) {
        show("remove", removexattr(argv[2], argv[3]));
    } else if (!strcmp(op, "rename") && argc == 4) {
        show("rename", rename(argv[2], argv[3]));
    } else if (!strcmp(op, "unlink") && argc == 3) {
        show("unlink", unlink(argv[2]));
    } else if (!strcmp(op, "create") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0644);
        show("create", fd);
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(op, "append") && argc == 3) {
        int fd = open(argv[2], O_WRONLY | O_APPEND);
        show("append", fd < 0 ? -1 : write(fd, "+", 1));
    } else {
        fprintf(stderr, "xattr_probe: bad command\n");
        return 2;
    }
    return 0;
}

/* hog DIR FILES: on each of FILES files, 64 KiB values under new names
 * until the filesystem refuses; every value read back and listed with
 * the largest buffers.  Prints the calls that succeeded. */
static int hog(const char *dir, int files)
{
    static char value[65537], back[65536], list[65536];
    char path[4096], name[300];
    long sets = 0, gets = 0, lists = 0, refused = 0;
    memset(value, 'v', sizeof value);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/hog%d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        close(fd);
        for (int j = 0; j < 100000; j++) {
            memset(name, 'n', 250);
            snprintf(name, sizeof name, "user.%d.", j);
            name[strlen(name)] = 'n';
            name[250] = 0;
            size_t size = j % 2 ? 65536 : 100;
            if (setxattr(path, name, value, size, 0)) {
                if (errno != ENOSPC && errno != E2BIG) {
                    printf("unexpected %s\n", strerrorname_np(errno));
                    return 1;
                }
                if (++refused % 2 == 0)
                    break;
                continue;
            }
            sets++;
            if (getxattr(path, name, back, sizeof back) >= 0)
                gets++;
        }
        if (listxattr(path, list, sizeof list) >= 0)
            lists++;
    }
    show("oversized value", setxattr(path, "user.x", value, sizeof value, 0));
    printf("done %ld sets %ld gets %ld lists\n", sets, gets, lists);
    return 0;
}

/* hoglinks DIR LINKS: on each of LINKS symlinks, trusted.* values of
 * 64 KiB (which no user.* name can hold on the host) until refused. */
static int hoglinks(const char *dir, int links)
{
    static char value[65536];
    char path[4096], name[64];
    long sets = 0, nospace = 0;
    memset(value, 't', sizeof value);
    for (int i = 0; i < links; i++) {
        snprintf(path, sizeof path, "%s/link%d", dir, i);
        if (symlink("target", path)) {
            perror("symlink");
            return 1;
        }
        for (int j = 0; j < 64; j++) {
            snprintf(name, sizeof name, "trusted.%d", j);
            if (lsetxattr(path, name, value, sizeof value, 0) == 0) {
                sets++;
                continue;
            }
            if (errno != ENOSPC) {
                printf("unexpected %s\n", strerrorname_np(errno));
                return 1;
            }
            nospace++;
            break;
        }
    }
    printf("done %ld sets %ld refused\n", sets, nospace);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "hoglinks"))
        return hoglinks(argv[2], atoi(argv[3]));
    if (argc >= 2 && argv[1][0] != '/')
        return argc == 4 && !strcmp(argv[1], "hog") ? hog(argv[2], atoi(argv[3]))
                                                     : one(argc, argv);
    return sequence(argc, argv);
}

static int sequence(int argc, char **argv)
{
    unsigned char buf[256];
    char list[4096];
    char longname[300];
    static char big[65537];
    if (argc < 2) {
        fprintf(stderr, "usage: xattr_probe DIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) && errno != EEXIST) {
        perror("mkdir");
        return 1;
    }
    snprintf(f, sizeof f, "%s/f", argv[1]);
    snprintf(l, sizeof l, "%s/l", argv[1]);
    snprintf(p, sizeof p, "%s/p", argv[1]);
    snprintf(d, sizeof d, "%s/d", argv[1]);
    int fd = open(f, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || symlink("f", l) || mkfifo(p, 0644) || mkdir(d, 0777) || chmod(d, 0777)) {
        perror("setup");
        return 1;
    }

    /* names, values, flags */
    show("setxattr user.a", setxattr(f, "user.a", "1", 1, 0));
    show("setxattr user.a XATTR_CREATE", setxattr(f, "user.a", "2", 1, XATTR_CREATE));
    show("setxattr user.a XATTR_REPLACE", setxattr(f, "user.a", "3", 1, XATTR_REPLACE));
    show("setxattr user.b XATTR_REPLACE", setxattr(f, "user.b", "x", 1, XATTR_REPLACE));
    show("setxattr user.b XATTR_CREATE", setxattr(f, "user.b", "bee", 3, XATTR_CREATE));
    show("setxattr flags 4", setxattr(f, "user.c", "v", 1, 4));
    show("setxattr empty name", setxattr(f, "", "v", 1, 0));
    memset(longname, 'n', sizeof longname);
    memcpy(longname, "user.", 5);
    longname[256] = 0;
    show("setxattr 256-byte name", setxattr(f, longname, "v", 1, 0));
    longname[255] = 0;
    show("setxattr 255-byte name", setxattr(f, longname, "v", 1, 0));
    show("removexattr 255-byte name", removexattr(f, longname));
    show("setxattr 65537-byte value", setxattr(f, "user.big", big, sizeof big, 0));
    show("setxattr empty value", setxattr(f, "user.empty", "", 0, 0));
    show("setxattr unknown namespace", setxattr(f, "foo.bar", "v", 1, 0));
    show("setxattr no namespace", setxattr(f, "user", "v", 1, 0));
    show_value("getxattr user.a size 0", getxattr(f, "user.a", NULL, 0), NULL);
    show_value("getxattr user.a", getxattr(f, "user.a", buf, sizeof buf), buf);
    show_value("getxattr user.empty", getxattr(f, "user.empty", buf, sizeof buf), buf);
    show("getxattr user.b size 2", getxattr(f, "user.b", buf, 2));
    show("getxattr user.none", getxattr(f, "user.none", buf, sizeof buf));
    show("getxattr unknown namespace", getxattr(f, "foo.bar", buf, sizeof buf));
    show("getxattr empty name", getxattr(f, "", buf, sizeof buf));
    show("getxattr missing file", getxattr("/nonexistent/x", "user.a", buf, sizeof buf));

    /* symlinks and special files hold no user.* attributes */
    show("lsetxattr symlink user.a", lsetxattr(l, "user.a", "1", 1, 0));
    show("lgetxattr symlink user.a", lgetxattr(l, "user.a", buf, sizeof buf));
    show_value("getxattr through symlink", getxattr(l, "user.a", buf, sizeof buf), buf);
    show("setxattr through symlink", setxattr(l, "user.vial", "l", 1, 0));
    show_list("llistxattr symlink", llistxattr(l, list, sizeof list), list);
    show("setxattr fifo user.a", setxattr(p, "user.a", "1", 1, 0));
    show("getxattr fifo user.a", getxattr(p, "user.a", buf, sizeof buf));
    show("setxattr dir user.d", setxattr(d, "user.d", "dd", 2, 0));
    show_list("listxattr dir", listxattr(d, list, sizeof list), list);

    /* trusted.* and security.capability, as root */
    show("setxattr trusted.t", setxattr(f, "trusted.t", "tv", 2, 0));
    show_value("getxattr trusted.t", getxattr(f, "trusted.t", buf, sizeof buf), buf);
    show("lsetxattr symlink trusted.s", lsetxattr(l, "trusted.s", "s", 1, 0));
    show_value("lgetxattr symlink trusted.s", lgetxattr(l, "trusted.s", buf, sizeof buf), buf);
    unsigned int caps2[5] = {0x02000001, 1 << 13, 0, 0, 0};
    show("setxattr security.capability v2",
         setxattr(f, "security.capability", caps2, sizeof caps2, 0));
    show_value("getxattr security.capability",
               getxattr(f, "security.capability", buf, sizeof buf), buf);
    unsigned int caps3[6] = {0x03000000, 1 << 12, 0, 0, 0, 0};
    show("setxattr security.capability v3 rootid 0",
         setxattr(f, "security.capability", caps3, sizeof caps3, 0));
    show_value("getxattr security.capability v3 rootid 0",
               getxattr(f, "security.capability", buf, sizeof buf), buf);
    show("setxattr security.capability short",
         setxattr(f, "security.capability", caps2, 7, 0));
    show("setxattr security.capability bad revision",
         setxattr(f, "security.capability", caps3, sizeof caps2, 0));
    show("setxattr security.capability on a symlink",
         lsetxattr(l, "security.capability", caps2, sizeof caps2, 0));
    show("setxattr security.capability again",
         setxattr(f, "security.capability", caps2, sizeof caps2, 0));

    /* lists */
    show("listxattr size 0", listxattr(f, NULL, 0));
    show("listxattr size 1", listxattr(f, list, 1));
    show_list("listxattr", listxattr(f, list, sizeof list), list);
    show("removexattr user.a", removexattr(f, "user.a"));
    show("removexattr user.a again", removexattr(f, "user.a"));
    show("removexattr unknown namespace", removexattr(f, "foo.bar"));
    show("removexattr trusted.t", removexattr(f, "trusted.t"));
    show("setxattr trusted.t back", setxattr(f, "trusted.t", "tv", 2, 0));
    show_list("listxattr after", listxattr(f, list, sizeof list), list);

    /* on a descriptor */
    show("fsetxattr user.fd", fsetxattr(fd, "user.fd", "F", 1, 0));
    show_value("fgetxattr user.fd", fgetxattr(fd, "user.fd", buf, sizeof buf), buf);
    show_value("fgetxattr trusted.t", fgetxattr(fd, "trusted.t", buf, sizeof buf), buf);
    show_list("flistxattr", flistxattr(fd, list, sizeof list), list);
    show("fremovexattr user.fd", fremovexattr(fd, "user.fd"));
    show("fremovexattr user.fd again", fremovexattr(fd, "user.fd"));

    /* the *xattrat calls (Linux 6.13) */
    struct xattr_args args = {(unsigned long)"AT", 2, 0};
    show("setxattrat", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at", &args, 16));
    args.flags = XATTR_CREATE;
    show("setxattrat XATTR_CREATE", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at", &args, 16));
    args.flags = 8;
    show("setxattrat flags 8", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at", &args, 16));
    args.flags = 0;
    show("setxattrat usize 8", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at", &args, 8));
    unsigned char ext[32] = {0};
    memcpy(ext, &args, sizeof args);
    show("setxattrat usize 24", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at", ext, 24));
    ext[20] = 1;
    show("setxattrat usize 24 with a tail", syscall(SYS_setxattrat, AT_FDCWD, f, 0, "user.at",
                                                     ext, 24));
    show("setxattrat at_flags 0x8000", syscall(SYS_setxattrat, AT_FDCWD, f, 0x8000, "user.at",
                                                &args, 16));
    show("setxattrat AT_SYMLINK_NOFOLLOW", syscall(SYS_setxattrat, AT_FDCWD, l,
                                                    AT_SYMLINK_NOFOLLOW, "user.at", &args, 16));
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
    show("setxattrat relative", syscall(SYS_setxattrat, dfd, "f", 0, "user.rel", &args, 16));
    show("setxattrat AT_EMPTY_PATH", syscall(SYS_setxattrat, fd, "", AT_EMPTY_PATH, "user.fdat",
                                              &args, 16));
    show("setxattrat empty path", syscall(SYS_setxattrat, fd, "", 0, "user.fdat", &args, 16));
    struct xattr_args gargs = {(unsigned long)buf, sizeof buf, 0};
    long r = syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs, 16);
    show_value("getxattrat", r, buf);
    gargs.size = 1;
    show("getxattrat size 1", syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs, 16));
    gargs.size = 0;
    show("getxattrat size 0", syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs, 16));
    gargs.size = sizeof buf;
    gargs.flags = 1;
    show("getxattrat flags 1", syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs, 16));
    gargs.flags = 0;
    show("getxattrat usize 15", syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs, 15));
    show("getxattrat usize 8192", syscall(SYS_getxattrat, AT_FDCWD, f, 0, "user.at", &gargs,
                                           8192));
    r = syscall(SYS_getxattrat, fd, "", AT_EMPTY_PATH, "user.rel", &gargs, 16);
    show_value("getxattrat AT_EMPTY_PATH", r, buf);
    show("getxattrat missing", syscall(SYS_getxattrat, dfd, "f", 0, "user.none", &gargs, 16));
    r = syscall(SYS_listxattrat, dfd, "f", 0, list, sizeof list);
    show_list("listxattrat", r, list);
    show("listxattrat size 1", syscall(SYS_listxattrat, dfd, "f", 0, list, 1));
    r = syscall(SYS_listxattrat, AT_FDCWD, l, AT_SYMLINK_NOFOLLOW, list, sizeof list);
    show_list("listxattrat AT_SYMLINK_NOFOLLOW", r, list);
    show("removexattrat", syscall(SYS_removexattrat, dfd, "f", 0, "user.rel"));
    show("removexattrat again", syscall(SYS_removexattrat, dfd, "f", 0, "user.rel"));
    show("removexattrat AT_EMPTY_PATH", syscall(SYS_removexattrat, fd, "", AT_EMPTY_PATH,
                                                 "user.fdat"));
    show("removexattrat at_flags 0x8000", syscall(SYS_removexattrat, dfd, "f", 0x8000,
                                                   "user.at"));
    show_list("listxattr at the end", listxattr(f, list, sizeof list), list);
    fflush(stdout);

    pid_t child = fork();
    if (child == 0) {
        as_nobody();
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
