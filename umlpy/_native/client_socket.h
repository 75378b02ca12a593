/* What umlpy's C clients (exec_client.c, front.c) need to reach a daemon
 * of the user's: where the user keeps named sandboxes and warm pools
 * (hostuser.registry_root() in C; tests/test_warm.py checks the two
 * agree), a socket's address, and a request sent with fds.  Header-only:
 * each client is a program of its own.  Errors come back as a sentence. */
#ifndef UMLPY_CLIENT_SOCKET_H
#define UMLPY_CLIENT_SOCKET_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBORDINATE_ENV "UMLPY_SUBORDINATE_OF"      /* hostuser.py */

static int append_path(char *out, size_t size, const char *part)
{
    size_t len = strlen(out);
    if (len && out[len - 1] != '/' && part[0] != '/') {
        if (len + 1 >= size)
            return -1;
        out[len++] = '/';
        out[len] = 0;
    }
    if (strlen(part) >= size - len)
        return -1;
    strcpy(out + len, part);
    return 0;
}

/* os.path.abspath: joined to the working directory, "." and ".." taken
   away by name (as Python does, not by following symbolic links). */
static const char *absolute_path(const char *path, char *out, size_t size)
{
    char joined[PATH_MAX * 2];
    if (path[0] == '/')
        joined[0] = 0;
    else if (!getcwd(joined, PATH_MAX))
        return "the working directory is gone";
    if (strlen(joined) + strlen(path) + 2 > sizeof joined)
        return "UMLPY_REGISTRY is too long";
    strcat(joined, "/");
    strcat(joined, path);
    size_t len = 0;
    out[0] = 0;
    char *save;
    for (char *part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (!strcmp(part, "."))
            continue;
        if (!strcmp(part, "..")) {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
            out[len] = 0;
            continue;
        }
        if (len + 1 + strlen(part) >= size)
            return "UMLPY_REGISTRY is too long";
        out[len++] = '/';
        strcpy(out + len, part);
        len += strlen(part);
    }
    if (len == 0)
        strcpy(out, "/");
    return NULL;
}

/* The user umlpy runs for (hostuser.host_uid): the one outside, in the
   user namespace of subordinate ids umlpy enters for a user; -1 if the
   variable is malformed. */
static long host_uid(void)
{
    const char *entered = getenv(SUBORDINATE_ENV);
    if (!entered || !*entered || geteuid() != 0)
        return (long)geteuid();
    char *end;
    errno = 0;
    unsigned long uid = strtoul(entered, &end, 10);
    if (errno || end == entered || (*end && *end != ':') || uid > (uid_t)-2)
        return -1;
    return (long)uid;
}

static const char *registry_root(char *out, size_t size)
{
    static const char *too_long = "the registry's path is too long";
    const char *override = getenv("UMLPY_REGISTRY");
    if (override && *override)
        return absolute_path(override, out, size);
    out[0] = 0;
    long uid = host_uid();
    if (uid < 0)
        return SUBORDINATE_ENV " is not uid:gid";
    if (uid == 0)
        return append_path(out, size, "/var/lib/umlpy") < 0 ? too_long : NULL;
    const char *state = getenv("XDG_STATE_HOME");
    if (state && *state) {
        if (append_path(out, size, state) < 0)
            return too_long;
    } else {
        const char *home = getenv("HOME");      /* os.path.expanduser("~") */
        if (!home) {
            struct passwd *pw = getpwuid(getuid());
            if (!pw)
                return "no HOME, and no home in the password file";
            home = pw->pw_dir;
        }
        if (append_path(out, size, *home ? home : "/") < 0 ||
            append_path(out, size, ".local/state") < 0)
            return too_long;
    }
    return append_path(out, size, "umlpy") < 0 ? too_long : NULL;
}

/* A socket's address (control.short_path): a path too long for a
   sockaddr_un goes through an fd of its directory, left open.  -1 if
   even that fails. */
static int socket_address(const char *dir, const char *leaf, struct sockaddr_un *addr)
{
    char path[PATH_MAX + 64];
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (snprintf(path, sizeof path, "%s/%s", dir, leaf) >= (int)sizeof path)
        return -1;
    if (strlen(path) >= sizeof addr->sun_path) {
        int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        if (snprintf(path, sizeof path, "/proc/self/fd/%d/%s", fd, leaf) >=
            (int)sizeof addr->sun_path)
            return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

/* One packet of len bytes with fds attached (SCM_RIGHTS); the bytes sent,
   or -1 with errno. */
static ssize_t send_with_fds(int sock, const void *data, size_t len, const int *fds, int nfds)
{
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int) * 8)]; } control;
    if (nfds < 1 || nfds > 8) {
        errno = EINVAL;
        return -1;
    }
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

#endif
