/* A hostile guest racing the guest kernel (time-of-check-to-time-of-use).
 *
 *   racer FAMILY ATTEMPTS HOST_FILE HOST_DIR HOST_SOCK
 *
 * HOST_* are host paths that do not exist in the guest's root.  While the
 * main thread makes ATTEMPTS calls of FAMILY (open, stat, execve, rename,
 * connect, chdir), one thread flips the path buffer it passes between an
 * allowed guest path and the host path, and another keeps swapping
 * symlinks (/tmp/sw -> allowed or -> host path; /tmp/swd a directory or a
 * symlink to the host directory).  If the host ever read the guest's
 * buffer, or followed a guest symlink, after the guest kernel checked it,
 * a call would reach the host object: this program reports every call
 * whose result is the host object ("ESCAPE ..."), and the test checks the
 * host objects themselves.  Prints "done FAMILY ok=N failed=M escapes=E". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char path_buf[4096];
static struct sockaddr_un addr_buf;
static const char *allowed, *host;
static atomic_int stop;
static const char *host_file, *host_dir, *host_sock;
static struct stat host_file_st, host_dir_st;

static void *flipper(void *arg)
{
    (void)arg;
    size_t la = strlen(allowed) + 1, lh = strlen(host) + 1;
    while (!atomic_load(&stop)) {
        memcpy(path_buf, host, lh);
        memcpy(addr_buf.sun_path, host_sock, strlen(host_sock) + 1);
        memcpy(path_buf, allowed, la);
        memcpy(addr_buf.sun_path, "/tmp/guest.sock", 16);
    }
    return NULL;
}

static void *swapper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        unlink("/tmp/sw.new");
        symlink(host, "/tmp/sw.new");
        rename("/tmp/sw.new", "/tmp/sw");
        unlink("/tmp/sw.new");
        symlink(allowed, "/tmp/sw.new");
        rename("/tmp/sw.new", "/tmp/sw");
        unlink("/tmp/swd.new");
        symlink(host_dir, "/tmp/swd.new");
        rename("/tmp/swd.new", "/tmp/swd");       /* fails while /tmp/swd is a dir */
        rename("/tmp/swd", "/tmp/swd.old");
        rename("/tmp/swd.real", "/tmp/swd");
        rename("/tmp/swd.old", "/tmp/swd.real");
    }
    return NULL;
}

static int same(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static long escapes, ok, failed;

static void check_fd(int fd, const struct stat *forbidden, const char *what)
{
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && same(&st, forbidden)) {
        printf("ESCAPE %s reached the host object\n", what);
        escapes++;
    }
}

static void attempt(const char *family, long i)
{
    const char *target = (i & 1) ? path_buf : "/tmp/sw";
    if (!strcmp(family, "open")) {
        int fd = open(target, O_RDWR);
        if (fd >= 0) {
            ok++;
            check_fd(fd, &host_file_st, "open");
            close(fd);
        } else
            failed++;
        fd = open("/tmp/swd/secret", O_RDONLY);
        if (fd >= 0) {
            printf("ESCAPE open through a swapped directory\n");
            escapes++;
            close(fd);
        }
    } else if (!strcmp(family, "stat")) {
        struct stat st;
        if (stat(target, &st) == 0) {
            ok++;
            if (same(&st, &host_file_st)) {
                printf("ESCAPE stat saw the host file\n");
                escapes++;
            }
        } else
            failed++;
        if (stat("/tmp/swd/secret", &st) == 0) {
            printf("ESCAPE stat through a swapped directory\n");
            escapes++;
        }
    } else if (!strcmp(family, "execve")) {
        /* /allowed is not executable: no exec succeeds unless the host
         * runs the host script, which would then write its marker */
        char *argv[] = {(char *)target, NULL};
        execve(target, argv, NULL);
        failed++;
    } else if (!strcmp(family, "rename")) {
        int fd = open("/tmp/victim", O_CREAT | O_WRONLY, 0644);
        if (fd >= 0)
            close(fd);
        if (rename((i & 1) ? path_buf : "/tmp/sw", "/tmp/renamed") == 0)
            ok++;
        else
            failed++;
    } else if (!strcmp(family, "connect")) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(s, (struct sockaddr *)&addr_buf, sizeof addr_buf) == 0)
            ok++;
        else
            failed++;
        close(s);
    } else if (!strcmp(family, "chdir")) {
        if (chdir((i & 1) ? path_buf : "/tmp/swd") == 0) {
            ok++;
            int fd = open(".", O_RDONLY | O_DIRECTORY);
            check_fd(fd, &host_dir_st, "chdir");
            if (fd >= 0)
                close(fd);
            fd = open("secret", O_RDONLY);
            if (fd >= 0) {
                printf("ESCAPE chdir reached the host directory\n");
                escapes++;
                close(fd);
            }
            chdir("/");
        } else
            failed++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: racer FAMILY ATTEMPTS HOST_FILE HOST_DIR HOST_SOCK\n");
        return 2;
    }
    const char *family = argv[1];
    long attempts = atol(argv[2]);
    host_file = argv[3];
    host_dir = argv[4];
    host_sock = argv[5];
    /* what the host objects are, as the test measured them: passed in
     * the environment, since the guest cannot stat them itself */
    host_file_st.st_dev = strtoull(getenv("HOST_FILE_DEV"), NULL, 10);
    host_file_st.st_ino = strtoull(getenv("HOST_FILE_INO"), NULL, 10);
    host_dir_st.st_dev = strtoull(getenv("HOST_DIR_DEV"), NULL, 10);
    host_dir_st.st_ino = strtoull(getenv("HOST_DIR_INO"), NULL, 10);

    mkdir("/allowed_dir", 0755);
    mkdir("/tmp/swd.real", 0755);
    mkdir("/tmp/swd", 0755);
    int fd = open("/allowed", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
    if (!strcmp(family, "chdir")) {
        allowed = "/allowed_dir";
        host = host_dir;
    } else if (!strcmp(family, "rename")) {
        allowed = "/tmp/victim";
        host = host_file;
    } else {
        allowed = "/allowed";
        host = host_file;
    }
    strcpy(path_buf, allowed);
    addr_buf.sun_family = AF_UNIX;
    strcpy(addr_buf.sun_path, "/tmp/guest.sock");
    if (!strcmp(family, "connect")) {
        int srv = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "/tmp/guest.sock"};
        if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0 || listen(srv, 4096) < 0) {
            perror("guest server");
            return 1;
        }
        /* the backlog fills; that only makes connects fail */
    }

    pthread_t t1, t2;
    pthread_create(&t1, NULL, flipper, NULL);
    pthread_create(&t2, NULL, swapper, NULL);
    for (long i = 0; i < attempts; i++)
        attempt(family, i);
    atomic_store(&stop, 1);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    printf("done %s ok=%ld failed=%ld escapes=%ld\n", family, ok, failed, escapes);
    return escapes ? 1 : 0;
}
