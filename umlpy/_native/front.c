/* umlpy: the command's front end.

   `umlpy run [OPTIONS] -- PROG [ARGS]` is served by a warm pool of
   pre-started sandboxes (umlpy/warm/) when the user keeps one for exactly
   those option words; everything else, and every run a pool will not
   serve as a cold run's twin, execs umlpy-cli (the Python command line,
   umlpy/cli.py) installed beside this program, with the same arguments.
   A warm run never pays the interpreter's start (~10 ms here).

   A pool is asked only when falling back loses nothing: until it says
   "started", nothing of the run has begun and nothing of our stdin has
   been read.  No pool is asked when we have a terminal: a cold run hands
   the guest the foreground of our session, which no daemon can.

   The protocol is umlpy/warm/wire.py's (one SOCK_SEQPACKET packet of
   NUL-separated fields, fds 0, 1 and 2 attached); the pool's socket is
   <registry root>/warm/<key>.sock, key being wire.pool_key() of the
   option words and the environment that changes how a sandbox is made.
   UMLPY_WARM=0 makes every run cold.  UMLPY_FRONT_SHOW=1 prints the
   socket path we would use and exits (tests compare it with Python's).

   Exit status: the run's (128+N for signal N); 125 if the sandbox's
   guest kernel went away without one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_socket.h"

#define VERSION "1"                 /* wire.VERSION */
#define MAX_REQUEST (1 << 20)       /* wire.MAX_REQUEST */
#define LIMITS 16                   /* RLIMIT_CPU .. RLIMIT_RTTIME */
#define STATUS_LOST 125
#define COLD (-1)

extern char **environ;

static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM };   /* a cold run's */
#define NFORWARDED (int)(sizeof forwarded / sizeof forwarded[0])
static int signal_pipe[2] = { -1, -1 };

static char packet[MAX_REQUEST];
static size_t packet_len;
static int packet_full;

static void put_bytes(const char *s, size_t n)
{
    if (packet_len + n + 1 > sizeof packet) {
        packet_full = 1;
        return;
    }
    memcpy(packet + packet_len, s, n);
    packet_len += n;
    packet[packet_len++] = 0;
}

static void put(const char *s)
{
    put_bytes(s, strlen(s));
}

static void put_number(unsigned long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", v);
    put(buf);
}

static void put_signed(long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    put(buf);
}

/* ---- the pool's name (wire.pool_key) ------------------------------------ */

/* wire.pool_env: what changes how a sandbox is made */
static int pool_env(const char *entry)
{
    return (!strncmp(entry, "UMLPY_", 6) && strncmp(entry, "UMLPY_WARM=", 11) &&
            strncmp(entry, "UMLPY_FRONT_SHOW=", 17)) || !strncmp(entry, "TMPDIR=", 7);
}

/* Python sorts (name, value) pairs: by name, then value. */
static int by_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
    int c = memcmp(x, y, nx < ny ? nx : ny);
    if (c)
        return c;
    if (nx != ny)
        return nx < ny ? -1 : 1;
    return strcmp(x + nx, y + ny);
}

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t pool_key(char **words, int nwords)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < nwords; i++) {
        if (i)
            h = fnv(h, "", 1);
        h = fnv(h, words[i], strlen(words[i]));
    }
    h = fnv(h, "\1", 1);
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n += pool_env(*e);
    const char **picked = calloc(n + 1, sizeof *picked);
    if (!picked)
        return 0;
    n = 0;
    for (char **e = environ; *e; e++)
        if (pool_env(*e) && strchr(*e, '='))
            picked[n++] = *e;
    qsort(picked, n, sizeof *picked, by_name);
    for (size_t i = 0; i < n; i++) {
        if (i)
            h = fnv(h, "", 1);
        h = fnv(h, picked[i], strlen(picked[i]));
    }
    free(picked);
    return h;
}

/* <registry root>/warm and <key>.sock */
static int pool_socket(char **words, int nwords, char *dir, size_t size, char *leaf)
{
    if (registry_root(dir, size) || append_path(dir, size, "warm") < 0)
        return -1;
    snprintf(leaf, 32, "%016llx.sock", (unsigned long long)pool_key(words, nwords));
    return 0;
}

/* ---- what a cold run's guest would inherit ------------------------------ */

static int has_terminal(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    int tty_nr = -1;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr) != 1 || tty_nr != 0)
        return 1;
    for (int fd = 0; fd < 3; fd++)
        if (isatty(fd))
            return 1;
    return 0;
}

/* SigIgn and SigBlk of /proc/self/status, as its hex words. */
static int signal_masks(char *ignored, char *blocked, size_t size)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *out = !strncmp(line, "SigIgn:", 7) ? ignored :
                    !strncmp(line, "SigBlk:", 7) ? blocked : NULL;
        if (out && sscanf(line + 7, " %31s", out) == 1 && strlen(out) < size)
            found++;
    }
    fclose(f);
    return found == 2 ? 0 : -1;
}

static int build_request(char **run_words, int nrun)
{
    char cwd[PATH_MAX], ignored[32], blocked[32], mode[16];
    if (!getcwd(cwd, sizeof cwd) || signal_masks(ignored, blocked, sizeof ignored) < 0)
        return -1;
    mode_t mask = umask(0);
    umask(mask);
    snprintf(mode, sizeof mode, "%o", (unsigned)mask);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (errno)
        return -1;
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) < 0)
        return -1;
    char cpu_list[CPU_SETSIZE * 6] = "";
    size_t at = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &cpus))
            at += (size_t)snprintf(cpu_list + at, sizeof cpu_list - at, at ? ",%d" : "%d", c);

    put("run");
    put(VERSION);
    put(cwd);
    put(mode);
    put(ignored);
    put(blocked);
    put_signed(nice);
    put(cpu_list);
    put_number(LIMITS);
    for (int r = 0; r < LIMITS; r++) {
        struct rlimit rl;
        if (getrlimit(r, &rl) < 0)
            return -1;
        put_number(r);
        put_number((unsigned long long)rl.rlim_cur);
        put_number((unsigned long long)rl.rlim_max);
    }
    put_number((unsigned long long)nrun);
    for (int i = 0; i < nrun; i++)
        put(run_words[i]);
    size_t nenv = 0;
    for (char **e = environ; *e; e++)
        nenv++;
    put_number(nenv);
    for (char **e = environ; *e; e++)
        put(*e);
    return packet_full ? -1 : 0;
}

/* ---- the run ------------------------------------------------------------ */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t n = write(signal_pipe[1], &c, 1);
    (void)n;
    errno = saved;
}

static int send_stdio(int sock)
{
    int fds[3] = { 0, 1, 2 };
    for (int i = 0; i < 3; i++)
        if (fcntl(i, F_GETFD) < 0)
            return -1;          /* a closed stdio: a cold run keeps it closed */
    ssize_t n = send_with_fds(sock, packet, packet_len, fds, 3);
    return n == (ssize_t)packet_len ? 0 : -1;
}

static void forward_signals(int sock)
{
    unsigned char sigs[64];
    ssize_t n = read(signal_pipe[0], sigs, sizeof sigs);
    for (ssize_t i = 0; i < n; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "kill%c%d", 0, sigs[i]);
        send(sock, msg, (size_t)len + 1, MSG_NOSIGNAL);
    }
}

/* "started", "cold" REASON, "exit" STATUS: the run's status, or COLD. */
static int wait_for_end(int sock)
{
    int started = 0;
    static char reply[4096];
    for (;;) {
        struct pollfd p[2] = { { sock, POLLIN, 0 }, { signal_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return started ? STATUS_LOST : COLD;
        }
        if (p[1].revents & POLLIN)
            forward_signals(sock);
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        /* no room for SCM_RIGHTS: an fd sent to us is closed by the kernel */
        ssize_t n = recv(sock, reply, sizeof reply - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!started)
                return COLD;
            fprintf(stderr, "umlpy: the warm sandbox's guest kernel ended without a status\n");
            return STATUS_LOST;
        }
        reply[n] = 0;
        if (!strcmp(reply, "started"))
            started = 1;
        else if (!strcmp(reply, "cold") && !started)
            return COLD;
        else if (!strcmp(reply, "exit") && (size_t)n > strlen("exit") + 1)
            return atoi(reply + strlen("exit") + 1) & 0xff;
    }
}

static int warm_run(int argc, char **argv)
{
    const char *warm = getenv("UMLPY_WARM");
    if (warm && !strcmp(warm, "0"))
        return COLD;
    int dashes = -1;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            dashes = i;
            break;
        }
    if (dashes < 0 || dashes + 1 >= argc)
        return COLD;
    char dir[PATH_MAX], leaf[32];
    if (pool_socket(argv + 2, dashes - 2, dir, sizeof dir, leaf) < 0)
        return COLD;
    if (getenv("UMLPY_FRONT_SHOW")) {
        printf("%s/%s\n", dir, leaf);
        return 0;
    }
    struct sockaddr_un addr;
    if (has_terminal() || socket_address(dir, leaf, &addr) < 0)
        return COLD;
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return COLD;
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        build_request(argv + 2, argc - 2) < 0 || pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        close(sock);
        return COLD;
    }
    struct sigaction sa = { 0 }, saved[NFORWARDED];
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NFORWARDED; i++)
        sigaction(forwarded[i], &sa, &saved[i]);
    int status = send_stdio(sock) < 0 ? COLD : wait_for_end(sock);
    close(sock);
    if (status == COLD) {
        /* as we were: the cold run inherits our dispositions */
        for (int i = 0; i < NFORWARDED; i++)
            sigaction(forwarded[i], &saved[i], NULL);
        close(signal_pipe[0]);
        close(signal_pipe[1]);
    }
    return status;
}

/* umlpy-cli, beside this program (both are the same installation's). */
static void run_cold(char **argv)
{
    char self[PATH_MAX], cli[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        fprintf(stderr, "umlpy: cannot find where umlpy is installed: %s\n", strerror(errno));
        exit(STATUS_LOST);
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    snprintf(cli, sizeof cli, "%s/umlpy-cli", self);
    argv[0] = cli;
    execv(cli, argv);
    fprintf(stderr, "umlpy: %s: %s (umlpy's Python command line, installed with umlpy)\n",
            cli, strerror(errno));
    exit(STATUS_LOST);
}

int main(int argc, char **argv)
{
    if (argc > 3 && !strcmp(argv[1], "run")) {
        int status = warm_run(argc, argv);
        if (status != COLD) {
            fflush(stdout);
            return status;
        }
    }
    run_cold(argv);
}
