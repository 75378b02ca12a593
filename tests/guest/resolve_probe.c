/* Path resolution probe (tests/test_vfs_resolution.py).
 *
 * Each argument is a command or a path, run in order:
 *   cd=DIR     chdir(DIR), print the result and getcwd()
 *   fcd=DIR    open DIR (O_DIRECTORY) relative to the current dirfd, fchdir to it
 *   at=DIR     open DIR (O_DIRECTORY) relative to the working directory:
 *              later paths are resolved relative to it (at= alone: back to
 *              AT_FDCWD)
 *   atp=PATH   the same with an O_PATH fd of whatever PATH is (a file: the
 *              relative paths that follow fail with ENOTDIR)
 *   root=DIR   chroot(DIR) (the working directory stays where it is)
 *   pivot=DIR  (first argument only; the native reference) make DIR the root
 *              of a private mount namespace, as the guest's "/" is: a plain
 *              chroot(1) would let ".." climb out of the tree from a working
 *              directory that a later root= leaves outside the new root
 *   PATH       resolve PATH relative to the current dirfd with lstat, stat,
 *              statx, access, open (plain, O_NOFOLLOW, O_DIRECTORY,
 *              O_PATH|O_NOFOLLOW with AT_EMPTY_PATH follow-ups) and readlink
 *
 * One line per operation: the path (shortened when long), the operation,
 * then an errno name or what was found.  Nothing that differs between a
 * host directory and the same tree seen through a sandbox's layers (inode
 * numbers, devices, times, owners) is printed.  A directory is named by
 * fchdir-ing into it and asking getcwd(), a regular file by its first bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int dirfd_ = AT_FDCWD;
static char shown[160];

static const char *ename(int e)
{
    static char buf[32];
    const char *n = strerrorname_np(e);
    if (n)
        return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static const char *show(const char *path)
{
    size_t n = strlen(path);
    if (n <= 100)
        snprintf(shown, sizeof shown, "'%s'", path);
    else
        snprintf(shown, sizeof shown, "'%.40s...%.20s'(%zu chars)", path, path + n - 20, n);
    return shown;
}

static const char *kind(mode_t m)
{
    if (S_ISREG(m)) return "reg";
    if (S_ISDIR(m)) return "dir";
    if (S_ISLNK(m)) return "lnk";
    return "other";
}

static void line(const char *path, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void line(const char *path, const char *op, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s: ", show(path), op);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void print_stat(const char *path, const char *op, int rc, const struct stat *st)
{
    if (rc < 0) {
        line(path, op, "%s", ename(errno));
        return;
    }
    /* a directory's size and link count are its layer's business (a
     * merged directory of a union, like the root, reports the upper one's);
     * which directory it is, is what open-directory shows */
    if (S_ISDIR(st->st_mode))
        line(path, op, "dir %04o", (unsigned)(st->st_mode & 07777));
    else
        line(path, op, "%s %04o size=%lld nlink=%lu", kind(st->st_mode),
             (unsigned)(st->st_mode & 07777), (long long)st->st_size,
             (unsigned long)st->st_nlink);
}

/* Where a directory fd is: fchdir to it, getcwd, come back. */
static void where(int fd, char *out, size_t size)
{
    int back = open(".", O_PATH | O_DIRECTORY);
    if (back < 0) {
        snprintf(out, size, "?(open . %s)", ename(errno));
        return;
    }
    if (fchdir(fd) < 0) {
        snprintf(out, size, "?(fchdir %s)", ename(errno));
    } else if (!getcwd(out, size)) {
        snprintf(out, size, "?(getcwd %s)", ename(errno));
    }
    if (fchdir(back) < 0) {
        printf("cannot return to the working directory: %s\n", ename(errno));
        exit(3);
    }
    close(back);
}

static void describe_fd(const char *path, const char *op, int fd)
{
    struct stat st;
    char buf[4096];
    if (fstat(fd, &st) < 0) {
        line(path, op, "fd, fstat %s", ename(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        where(fd, buf, sizeof buf);
        line(path, op, "dir %s", buf);
    } else if (S_ISREG(st.st_mode)) {
        ssize_t n = read(fd, buf, 64);
        if (n < 0) {
            line(path, op, "reg, read %s", ename(errno));
            return;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = '|';
        line(path, op, "reg \"%.*s\"", (int)n, buf);
    } else {
        line(path, op, "%s", kind(st.st_mode));
    }
}

static void try_open(const char *path, const char *op, int flags)
{
    int fd = openat(dirfd_, path, flags);
    if (fd < 0) {
        line(path, op, "%s", ename(errno));
        return;
    }
    describe_fd(path, op, fd);
    close(fd);
}

static void probe(const char *path)
{
    struct stat st;
    struct statx stx;
    char buf[4096];
    int rc, fd;

    rc = fstatat(dirfd_, path, &st, AT_SYMLINK_NOFOLLOW);
    print_stat(path, "lstat", rc, &st);
    rc = fstatat(dirfd_, path, &st, 0);
    print_stat(path, "stat", rc, &st);

    rc = statx(dirfd_, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_SIZE, &stx);
    if (rc < 0)
        line(path, "statx-nofollow", "%s", ename(errno));
    else
        line(path, "statx-nofollow", "%s %04o size=%lld", kind(stx.stx_mode),
             (unsigned)(stx.stx_mode & 07777),
             S_ISDIR(stx.stx_mode) ? 0LL : (long long)stx.stx_size);

    rc = faccessat(dirfd_, path, F_OK, 0);
    line(path, "access", "%s", rc < 0 ? ename(errno) : "ok");
    rc = faccessat(dirfd_, path, F_OK, AT_SYMLINK_NOFOLLOW);
    line(path, "access-nofollow", "%s", rc < 0 ? ename(errno) : "ok");

    try_open(path, "open", O_RDONLY);
    try_open(path, "open-nofollow", O_RDONLY | O_NOFOLLOW);
    try_open(path, "open-directory", O_RDONLY | O_DIRECTORY);

    fd = openat(dirfd_, path, O_PATH | O_NOFOLLOW);
    if (fd < 0) {
        line(path, "opath-nofollow", "%s", ename(errno));
    } else {
        rc = fstatat(fd, "", &st, AT_EMPTY_PATH);
        print_stat(path, "opath-nofollow+fstatat-empty", rc, &st);
        ssize_t n = readlinkat(fd, "", buf, sizeof buf);
        if (n < 0)
            line(path, "opath-nofollow+readlink-empty", "%s", ename(errno));
        else
            line(path, "opath-nofollow+readlink-empty", "\"%.*s\"", (int)n, buf);
        close(fd);
    }

    ssize_t n = readlinkat(dirfd_, path, buf, sizeof buf);
    if (n < 0)
        line(path, "readlink", "%s", ename(errno));
    else
        line(path, "readlink", "\"%.*s\"", (int)n, buf);
}

static void pivot(const char *dir)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
        || mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0 || chdir(dir) < 0
        || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0
        || chdir("/") < 0) {
        fprintf(stderr, "pivot to %s: %s\n", dir, strerror(errno));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    char buf[4096];
    int i = 1;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc > 1 && !strncmp(argv[1], "pivot=", 6))
        pivot(argv[i++] + 6);
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "cd=", 3)) {
            int rc = chdir(a + 3);
            if (rc < 0)
                printf("== chdir %s: %s\n", show(a + 3), ename(errno));
            else
                printf("== chdir %s: cwd %s\n", show(a + 3),
                       getcwd(buf, sizeof buf) ? buf : ename(errno));
        } else if (!strncmp(a, "fcd=", 4)) {
            int fd = openat(dirfd_, a + 4, O_RDONLY | O_DIRECTORY);
            if (fd < 0) {
                printf("== fchdir %s: %s\n", show(a + 4), ename(errno));
                continue;
            }
            int rc = fchdir(fd);
            close(fd);
            if (rc < 0)
                printf("== fchdir %s: %s\n", show(a + 4), ename(errno));
            else
                printf("== fchdir %s: cwd %s\n", show(a + 4),
                       getcwd(buf, sizeof buf) ? buf : ename(errno));
        } else if (!strncmp(a, "at=", 3) || !strncmp(a, "atp=", 4)) {
            int opath = a[2] == 'p';
            const char *dir = a + (opath ? 4 : 3);
            struct stat st;
            if (dirfd_ != AT_FDCWD)
                close(dirfd_);
            dirfd_ = AT_FDCWD;
            if (!*dir) {
                printf("== dirfd AT_FDCWD\n");
                continue;
            }
            int fd = openat(AT_FDCWD, dir, opath ? O_PATH : O_RDONLY | O_DIRECTORY);
            if (fd < 0) {
                printf("== dirfd %s: %s (AT_FDCWD)\n", show(dir), ename(errno));
                continue;
            }
            if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
                snprintf(buf, sizeof buf, "fstatat-empty %s", ename(errno));
            else if (S_ISDIR(st.st_mode))
                where(fd, buf, sizeof buf);
            else
                snprintf(buf, sizeof buf, "%s, not a directory", kind(st.st_mode));
            printf("== dirfd%s %s: %s\n", opath ? " O_PATH" : "", show(dir), buf);
            dirfd_ = fd;
        } else if (!strncmp(a, "root=", 5)) {
            int rc = chroot(a + 5);
            printf("== chroot %s: %s\n", show(a + 5), rc < 0 ? ename(errno) : "ok");
        } else {
            probe(a);
        }
    }
    fflush(stdout);
    return 0;
}
