/* The working directory, as Linux keeps it: run natively and inside, the
 * output must match.  cwd_probe BASE (an empty directory anyone may
 * write): paths printed relative to BASE.
 *
 * chdir, fchdir and getcwd in lower directories (served in C) and in the
 * guest's own; calls relative to the cwd; a rename of an ancestor (the
 * cwd follows); a rmdir of the cwd, and a rename over it (the cwd is
 * gone: getcwd fails, nothing is found in it, ".." still works, a new
 * directory made at its old path is not it); threads share the cwd, a
 * fork's child has its own; the errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *base;
static size_t base_len;

static const char *err(int r)
{
    return r < 0 ? strerrorname_np(errno) : "ok";
}

static void show_cwd(const char *what)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf)) {
        printf("%s: getcwd %s\n", what, strerrorname_np(errno));
        return;
    }
    if (strncmp(buf, base, base_len) == 0)
        printf("%s: BASE%s\n", what, buf + base_len);
    else
        printf("%s: %s\n", what, buf);
}

static void show_stat(const char *path)
{
    struct stat st;
    int r = stat(path, &st);
    printf("  stat %s: %s%s\n", path, err(r), r == 0 && S_ISDIR(st.st_mode) ? " dir" : "");
}

static void at(const char *rel, char *out)
{
    snprintf(out, PATH_MAX, "%s/%s", base, rel);
}

static void make(const char *rel)
{
    char p[PATH_MAX];
    at(rel, p);
    if (mkdir(p, 0777) < 0)
        printf("mkdir %s: %s\n", rel, strerrorname_np(errno));
}

static void cd(const char *rel)
{
    char p[PATH_MAX];
    at(rel, p);
    int r = chdir(p);
    printf("chdir BASE/%s: %s\n", rel, err(r));
}

static void *thread_cd(void *arg)
{
    cd((const char *)arg);
    return NULL;
}

static void lower(void)
{
    /* directories of the host's tree nobody changed: served in C */
    printf("chdir /usr: %s\n", err(chdir("/usr")));
    printf("chdir share: %s\n", err(chdir("share")));
    show_cwd("lower");
    show_stat("doc");
    show_stat("no-such-name");
    printf("  access doc: %s\n", err(access("doc", R_OK | X_OK)));
    printf("chdir ../lib: %s\n", err(chdir("../lib")));
    show_cwd("lower");
    printf("chdir ./: %s\n", err(chdir("./")));
    printf("chdir //usr/./include/: %s\n", err(chdir("//usr/./include/")));
    show_cwd("lower");
    int fd = open("/usr/share", O_RDONLY | O_DIRECTORY);
    printf("fchdir /usr/share: %s\n", err(fchdir(fd)));
    show_cwd("lower");
    int pfd = open("/usr/lib", O_PATH | O_DIRECTORY);
    printf("fchdir O_PATH /usr/lib: %s\n", err(fchdir(pfd)));
    show_cwd("lower");
    close(fd);
    close(pfd);
    printf("chdir /usr/share/doc/..: %s\n", err(chdir("/usr/share/doc/..")));
    show_cwd("lower");
    printf("chdir /etc/hostname: %s\n", err(chdir("/etc/hostname")));
    printf("chdir /no/such: %s\n", err(chdir("/no/such")));
    printf("chdir empty: %s\n", err(chdir("")));
    char small[4];
    printf("getcwd small: %s\n", getcwd(small, sizeof small) ? "ok" : strerrorname_np(errno));
}

static void errors(void)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    printf("fchdir -1: %s\n", err(fchdir(-1)));
    printf("fchdir 999: %s\n", err(fchdir(999)));
    printf("fchdir pipe: %s\n", err(fchdir(p[0])));
    int f = open("/etc/hostname", O_RDONLY);
    printf("fchdir file: %s\n", err(fchdir(f)));
    close(f);
    close(p[0]);
    close(p[1]);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    base = argv[1];
    base_len = strlen(base);
    setvbuf(stdout, NULL, _IOLBF, 0);
    lower();
    errors();

    make("a");
    make("a/b");
    make("a/b/c");
    cd("a/b");
    show_cwd("own");
    show_stat("c");
    show_stat("../b/c");
    int dfd = open("c", O_RDONLY | O_DIRECTORY);
    printf("  open c: %s\n", dfd >= 0 ? "ok" : strerrorname_np(errno));

    /* a rename of an ancestor moves the cwd with it */
    char from[PATH_MAX], to[PATH_MAX];
    at("a", from);
    at("z", to);
    printf("rename a z: %s\n", err(rename(from, to)));
    show_cwd("renamed");
    show_stat("c");
    cd("");
    printf("fchdir c: %s\n", err(fchdir(dfd)));
    show_cwd("fchdir");
    close(dfd);

    /* the cwd removed: gone, even once a directory is made at its name */
    char c[PATH_MAX];
    at("z/b/c", c);
    printf("rmdir cwd: %s\n", err(rmdir(c)));
    show_cwd("removed");
    show_stat("x");
    show_stat("..");
    show_stat("../c");
    printf("  mkdir x: %s\n", err(mkdir("x", 0777)));
    printf("  creat x: %s\n", err(open("x", O_CREAT | O_WRONLY, 0666)));
    char link[PATH_MAX];
    ssize_t n = readlink("/proc/self/cwd", link, sizeof link - 1);
    if (n > 0) {
        link[n] = 0;
        printf("  /proc/self/cwd: %s\n", strstr(link, " (deleted)") ? "(deleted)" : "present");
    }
    make("z/b/c");
    make("z/b/c/new");
    show_stat("new");
    show_cwd("remade");
    printf("chdir ..: %s\n", err(chdir("..")));
    show_cwd("up");
    show_stat("c/new");

    /* a rename over it */
    make("r1");
    make("r2");
    cd("r2");
    at("r1", from);
    at("r2", to);
    printf("rename r1 r2: %s\n", err(rename(from, to)));
    show_cwd("replaced");
    cd("");

    /* a thread's chdir is its process's */
    pthread_t t;
    pthread_create(&t, NULL, thread_cd, "z");
    pthread_join(t, NULL);
    show_cwd("after thread");

    /* a child's is its own */
    pid_t child = fork();
    if (child == 0) {
        cd("z/b");
        show_cwd("child");
        _exit(0);
    }
    waitpid(child, NULL, 0);
    show_cwd("parent");

    /* through a symlink: the directory, not the link */
    at("z", from);
    at("lnk", to);
    if (symlink(from, to) == 0) {
        cd("lnk/b");
        show_cwd("via link");
    }
    return 0;
}
