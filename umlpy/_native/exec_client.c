/* umlpy-exec: `umlpy exec NAME -- CMD` without Python's start-up (issue 14).

     umlpy-exec [-e K=V]... [-w DIR] [-u USER[:GROUP]] NAME [--] CMD [ARGS...]

   Options mean what they mean to `umlpy exec` (lifecycle/commands.py).
   With -t, -i or --tty (a terminal relay: client.py's work) it execs the
   `umlpy` command found on PATH with the same arguments.

   It speaks the control protocol (lifecycle/control.py, server.py's
   op_exec): one exec request, with fds 0, 1 and 2 attached, on the
   sandbox's control socket (<registry root>/NAME/control.sock, the root
   found as hostuser.registry_root() finds it, client_socket.h); then it forwards SIGINT,
   SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 as {"op":"signal"}
   messages until the daemon says "exited", and exits with that status.

   Strings go out as JSON.  A byte that is not part of valid UTF-8 goes as
   the lone surrogate U+DC00+byte: the daemon's os.fsencode (surrogateescape)
   turns it back into the same byte, as it does for the Python client,
   whose argv Python decoded that way.  No protocol change.

   Exit status: the command's (128+N for signal N); 125 for umlpy's own
   failures (usage, no such sandbox, not running, the daemon went away),
   127 when the command was not found (errno ENOENT), 126 for any other
   errno the daemon answers with.  Errors are one line on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_socket.h"

#define PROTOCOL_VERSION 1
#define MAX_MESSAGE (1 << 20)       /* control.py's MAX_MESSAGE */
#define MAX_FDS 4                   /* control.py's MAX_FDS */
#define MAX_ERROR 1024              /* of the daemon's error text we show */
#define MAX_DEPTH 32                /* of JSON values we skip over */
#define STATUS_UMLPY 125
#define STATUS_NOT_EXECUTABLE 126
#define STATUS_NOT_FOUND 127
#define USAGE "usage: umlpy-exec [-e K=V]... [-w DIR] [-u USER[:GROUP]] NAME [--] CMD [ARGS...]"

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
#define NFORWARDED (int)(sizeof forwarded_signals / sizeof forwarded_signals[0])

static const char *sandbox_name = "";
static char request[MAX_MESSAGE + 1];
static char answer_buf[MAX_MESSAGE + 1];

static void fail(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void fail(int status, const char *fmt, ...)
{
    char line[MAX_ERROR + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t ignored = write(2, line, (size_t)n);
    (void)ignored;
    exit(status);
}

static void usage_error(const char *what, const char *arg)
{
    fail(STATUS_UMLPY, "umlpy-exec: %s%s (" USAGE ")", what, arg ? arg : "");
}

/* ---- the command line (as commands.py's _split reads it) -------------- */

struct options {
    const char **env;       /* -e words, in order */
    int nenv;
    const char *workdir, *user;
    int tty;
    char **argv;            /* CMD [ARGS...] */
};

static int is_tty_flag(const char *word)
{
    if (!strcmp(word, "--tty") || !strcmp(word, "--interactive"))
        return 1;
    if (word[0] != '-' || !word[1])
        return 0;
    for (const char *p = word + 1; *p; p++)     /* -t, -i, -it, -ti: as _expand_short */
        if (*p != 'i' && *p != 't')
            return 0;
    return 1;
}

/* The value of a valued option: its inline "--key=value" or the next word. */
static const char *option_value(char **argv, int argc, int *i, const char *key)
{
    const char *eq = strchr(argv[*i], '=');
    if (argv[*i][1] == '-' && eq)
        return eq + 1;
    if (++*i >= argc)
        usage_error(key, " needs a value");
    return argv[*i];
}

static int option_is(const char *word, const char *key)
{
    size_t n = strlen(key);
    return !strncmp(word, key, n) && (word[n] == 0 || (key[1] == '-' && word[n] == '='));
}

static void parse_options(int argc, char **argv, struct options *o)
{
    o->env = calloc((size_t)argc, sizeof *o->env);
    if (!o->env)
        fail(STATUS_UMLPY, "umlpy-exec: out of memory");
    int i = 1;
    for (; i < argc; i++) {
        const char *word = argv[i];
        if (!strcmp(word, "--")) {
            i++;
            break;
        }
        if (!strcmp(word, "-h") || !strcmp(word, "--help")) {
            printf("%s\n\nRun CMD in the running sandbox NAME, with these files as its stdio; exit\n"
                   "with its status (125: umlpy's own failure, 126/127: CMD could not run).\n"
                   "-t, -i: `umlpy exec` (from PATH) does it.\n", USAGE);
            exit(fflush(stdout) ? STATUS_UMLPY : 0);
        }
        if (word[0] != '-' || !word[1])
            break;
        if (is_tty_flag(word))
            o->tty = 1;
        else if (option_is(word, "-e") || option_is(word, "--env"))
            o->env[o->nenv++] = option_value(argv, argc, &i, word);
        else if (option_is(word, "-w") || option_is(word, "--workdir"))
            o->workdir = option_value(argv, argc, &i, word);
        else if (option_is(word, "-u") || option_is(word, "--user"))
            o->user = option_value(argv, argc, &i, word);
        else
            usage_error("unknown option ", word);
    }
    if (argc - i < 2)
        usage_error(i < argc ? "no command given" : "a NAME and a CMD are needed", NULL);
    sandbox_name = argv[i++];
    if (!strcmp(argv[i], "--"))
        i++;
    if (i >= argc)
        usage_error("no command given", NULL);
    o->argv = argv + i;
}

/* registry.py's NAME_PATTERN: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
static int good_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 63 || name[0] == '.' || name[0] == '_' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- the request, in JSON ------------------------------------------------ */

static size_t request_len;

static void put(const char *data, size_t n)
{
    if (n > MAX_MESSAGE - request_len)
        fail(STATUS_UMLPY, "umlpy-exec: the request is too long (the arguments and "
             "environment take more than %d bytes as JSON)", MAX_MESSAGE);
    memcpy(request + request_len, data, n);
    request_len += n;
}

static void put_text(const char *text)
{
    put(text, strlen(text));
}

/* Length of the valid UTF-8 sequence at s (1 to 4), 0 if there is none
   (overlong forms, surrogates, beyond U+10FFFF, a cut sequence). */
static int utf8_length(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xbf;     /* the allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static void put_string(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    char esc[8];
    put("\"", 1);
    while (*s) {
        int n = utf8_length(s);
        if (n == 0) {                           /* a byte that is not UTF-8: surrogateescape */
            snprintf(esc, sizeof esc, "\\udc%02x", *s);
            put(esc, 6);
            n = 1;
        } else if (*s == '"' || *s == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*s;
            put(esc, 2);
        } else if (*s < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *s);
            put(esc, 6);
        } else
            put((const char *)s, (size_t)n);
        s += n;
    }
    put("\"", 1);
}

static void put_env_item(const char *item, int first)
{
    const char *eq = strchr(item, '=');
    size_t key_len = eq ? (size_t)(eq - item) : strlen(item);
    if (key_len == 0)
        usage_error("-e: expected KEY=VALUE, not ", item);
    char *key = strndup(item, key_len);
    if (!key)
        fail(STATUS_UMLPY, "umlpy-exec: out of memory");
    const char *value = eq ? eq + 1 : getenv(key);     /* -e KEY: this environment's */
    put_text(first ? "" : ",");
    put_string(key);
    put(":", 1);
    put_string(value ? value : "");
    free(key);
}

static void build_request(const struct options *o)
{
    char head[64];
    snprintf(head, sizeof head, "{\"v\":%d,\"op\":\"exec\",\"argv\":[", PROTOCOL_VERSION);
    put_text(head);
    for (char **a = o->argv; *a; a++) {
        if (a != o->argv)
            put(",", 1);
        put_string(*a);
    }
    put_text("],\"env\":{");
    for (int i = 0; i < o->nenv; i++)
        put_env_item(o->env[i], i == 0);
    put_text("},\"cwd\":");
    put_string(o->workdir && *o->workdir ? o->workdir : "/");
    char *user = strdup(o->user ? o->user : "");
    if (!user)
        fail(STATUS_UMLPY, "umlpy-exec: out of memory");
    char *colon = strchr(user, ':');
    if (colon)
        *colon = 0;
    put_text(",\"user\":");
    put_string(user);
    put_text(",\"group\":");
    put_string(colon ? colon + 1 : "");
    put_text(",\"tty\":false}");
    free(user);
}

/* ---- where the socket is (hostuser.registry_root, registry.Record) ------ */

static void find_registry(char *out, size_t size)
{
    const char *why = registry_root(out, size);
    if (why)
        fail(STATUS_UMLPY, "umlpy-exec: %s", why);
}

/* control.connect: a path too long for a sockaddr_un goes through an fd of
   its directory. */
static int connect_control(const char *record_dir)
{
    struct sockaddr_un addr;
    if (socket_address(record_dir, "control.sock", &addr) < 0)
        fail(STATUS_UMLPY, "umlpy-exec: the registry's path is too long");
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0)
        fail(STATUS_UMLPY, "umlpy-exec: socket: %s", strerror(errno));
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int saved = errno;
        close(sock);
        errno = saved;
        return -1;
    }
    return sock;
}

static void not_reachable(const char *record_dir)
{
    int why = errno;
    char record[PATH_MAX + 64];
    struct stat st;
    snprintf(record, sizeof record, "%s/record.json", record_dir);
    if (why == ENOENT || why == ECONNREFUSED || why == ENOTDIR) {
        if (stat(record, &st) < 0)
            fail(STATUS_UMLPY, "umlpy-exec: no sandbox named '%s' (see 'umlpy ls')", sandbox_name);
        fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s' is not running (umlpy start %s)",
             sandbox_name, sandbox_name);
    }
    fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': %s", sandbox_name, strerror(why));
}

/* ---- sending and receiving ---------------------------------------------------- */

static void send_request(int sock)
{
    int fds[3] = { 0, 1, 2 };
    ssize_t n = send_with_fds(sock, request, request_len, fds, 3);
    if (n < 0)
        fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': sending the request: %s", sandbox_name,
             strerror(errno));
}

/* One message into answer_buf, NUL-terminated; its length, 0 at the end
   of the connection.  Fds that come along (a terminal's: not ours) are
   closed. */
static size_t receive(int sock)
{
    union { struct cmsghdr align; char buf[CMSG_SPACE(MAX_FDS * sizeof(int))]; } control;
    struct iovec iov = { .iov_base = answer_buf, .iov_len = MAX_MESSAGE };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == ECONNRESET)
            return 0;
        fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': %s", sandbox_name, strerror(errno));
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            close(fd);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': a message from the daemon was truncated",
             sandbox_name);
    answer_buf[n] = 0;
    return (size_t)n;
}

static void send_signal(int sock, int sig)
{
    char msg[48];
    int n = snprintf(msg, sizeof msg, "{\"op\":\"signal\",\"signal\":%d}", sig);
    ssize_t ignored = send(sock, msg, (size_t)n, MSG_NOSIGNAL);    /* a gone daemon: its EOF says so */
    (void)ignored;
}

/* ---- the daemon's answers: flat JSON objects --------------------------------- */

struct answer {
    int ok;                 /* -1: absent */
    char event[16];
    int has_status, has_errno;
    long long status, err;
    char error[MAX_ERROR];
};

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Appends text of at most n bytes to out (bounded by size; cut short, not
   overrun). */
static void add(char *out, size_t size, size_t *len, const char *text, size_t n)
{
    if (!out || *len + n >= size)
        return;
    memcpy(out + *len, text, n);
    *len += n;
    out[*len] = 0;
}

/* A JSON string at p (after its '"'): decoded into out as one printable
   line (control characters and lone surrogates written as escapes, as
   errors.one_line does), if out is not NULL.  Returns the position after
   the closing quote, NULL if the string is malformed. */
static const char *read_string(const char *p, char *out, size_t size)
{
    size_t len = 0;
    if (out && size)
        out[0] = 0;
    char tmp[16];
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            return p;
        if (c < 0x20)      /* the end of the text, or a raw control character */
            return NULL;
        if (c != '\\') {
            tmp[0] = (char)c;
            add(out, size, &len, tmp, 1);
            continue;
        }
        unsigned cp;
        switch (*p++) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(p, &cp) < 0)
                return NULL;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
                unsigned low;
                if (hex4(p + 2, &low) == 0 && low >= 0xdc00 && low < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    p += 6;
                }
            }
            break;
        default:
            return NULL;
        }
        int n;
        if (cp < 0x20 || cp == 0x7f || (cp >= 0xd800 && cp < 0xe000))
            n = snprintf(tmp, sizeof tmp, cp == '\n' ? "\\n" : cp == '\t' ? "\\t" :
                         cp == '\r' ? "\\r" : cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
        else if (cp < 0x80)
            tmp[0] = (char)cp, n = 1;
        else if (cp < 0x800)
            tmp[0] = (char)(0xc0 | cp >> 6), tmp[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
        else if (cp < 0x10000)
            tmp[0] = (char)(0xe0 | cp >> 12), tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
            tmp[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
        else
            tmp[0] = (char)(0xf0 | cp >> 18), tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
            tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), tmp[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
        add(out, size, &len, tmp, (size_t)n);
    }
}

/* Any JSON value at p: the position after it, NULL if malformed. */
static const char *skip_value(const char *p, int depth)
{
    p = skip_space(p);
    if (depth > MAX_DEPTH)
        return NULL;
    if (*p == '"')
        return read_string(p + 1, NULL, 0);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_space(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = skip_space(p);
                if (*p != '"' || !(p = read_string(p + 1, NULL, 0)))
                    return NULL;
                p = skip_space(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = skip_value(p, depth + 1)))
                return NULL;
            p = skip_space(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    const char *start = p;
    while (*p && strchr("-+.eE0123456789truefalsn", *p))
        p++;
    return p == start ? NULL : p;
}

/* An integer value (a JSON null leaves *has at 0). */
static const char *read_integer(const char *p, long long *out, int *has)
{
    p = skip_space(p);
    if (!strncmp(p, "null", 4))
        return p + 4;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno)
        return NULL;
    *out = v;
    *has = 1;
    return end;
}

static int parse_answer(const char *text, struct answer *a)
{
    memset(a, 0, sizeof *a);
    a->ok = -1;
    const char *p = skip_space(text);
    if (*p++ != '{')
        return -1;
    p = skip_space(p);
    if (*p == '}')
        return 0;
    for (;;) {
        char key[16];
        p = skip_space(p);
        if (*p != '"' || !(p = read_string(p + 1, key, sizeof key)))
            return -1;
        p = skip_space(p);
        if (*p++ != ':')
            return -1;
        p = skip_space(p);
        if (!strcmp(key, "ok") && !strncmp(p, "true", 4))
            a->ok = 1, p += 4;
        else if (!strcmp(key, "ok") && !strncmp(p, "false", 5))
            a->ok = 0, p += 5;
        else if (!strcmp(key, "event") && *p == '"')
            p = read_string(p + 1, a->event, sizeof a->event);
        else if (!strcmp(key, "error") && *p == '"')
            p = read_string(p + 1, a->error, sizeof a->error);
        else if (!strcmp(key, "status"))
            p = read_integer(p, &a->status, &a->has_status);
        else if (!strcmp(key, "errno"))
            p = read_integer(p, &a->err, &a->has_errno);
        else
            p = skip_value(p, 0);
        if (!p)
            return -1;
        p = skip_space(p);
        if (*p == '}')
            return 0;
        if (*p++ != ',')
            return -1;
    }
}

/* ---- signals --------------------------------------------------------------- */

static volatile sig_atomic_t pending_signals;   /* a bit per forwarded signal */

static void on_signal(int sig)
{
    for (int i = 0; i < NFORWARDED; i++)
        if (forwarded_signals[i] == sig)
            pending_signals |= 1 << i;
}

/* Blocks the forwarded signals (they are taken only while waiting, in
   ppoll, so none is lost between a check and the wait) and catches them;
   *wait_mask is the mask to wait with.  A signal this process was started
   with ignored stays ignored (nohup, a background job of a script). */
static void catch_signals(sigset_t *wait_mask)
{
    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (int i = 0; i < NFORWARDED; i++)
        sigaddset(&forwarded, forwarded_signals[i]);
    if (sigprocmask(SIG_BLOCK, &forwarded, wait_mask) < 0)
        fail(STATUS_UMLPY, "umlpy-exec: sigprocmask: %s", strerror(errno));
    struct sigaction sa = { .sa_handler = on_signal, .sa_mask = forwarded };
    for (int i = 0; i < NFORWARDED; i++) {
        struct sigaction old;
        if (sigaction(forwarded_signals[i], NULL, &old) < 0)
            fail(STATUS_UMLPY, "umlpy-exec: sigaction: %s", strerror(errno));
        if (old.sa_handler == SIG_IGN)
            continue;
        if (sigaction(forwarded_signals[i], &sa, NULL) < 0)
            fail(STATUS_UMLPY, "umlpy-exec: sigaction: %s", strerror(errno));
        sigdelset(wait_mask, forwarded_signals[i]);
    }
}

static void forward_pending(int sock)
{
    int pending = pending_signals;      /* handlers run only inside ppoll */
    pending_signals = 0;
    for (int i = 0; i < NFORWARDED; i++)
        if (pending & (1 << i))
            send_signal(sock, forwarded_signals[i]);
}

/* ---- main ----------------------------------------------------------------------- */

/* A closed 0, 1 or 2 would be taken by the socket (and passed as stdio):
   /dev/null takes its place, as for any careful program. */
static void keep_stdio_open(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int null = open("/dev/null", O_RDWR);
        if (null != fd)
            exit(STATUS_UMLPY);     /* nowhere to say so */
    }
}

static void exec_python_client(char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args)
        fail(STATUS_UMLPY, "umlpy-exec: out of memory");
    args[0] = "umlpy";
    args[1] = "exec";
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    execvp("umlpy", args);
    fail(STATUS_UMLPY, "umlpy-exec: -t and -i are umlpy exec's: no umlpy command on PATH (%s)",
         strerror(errno));
}

int main(int argc, char **argv)
{
    keep_stdio_open();
    struct options o = { 0 };
    parse_options(argc, argv, &o);
    if (o.tty)
        exec_python_client(argv);
    if (!good_name(sandbox_name))
        fail(STATUS_UMLPY, "umlpy-exec: bad sandbox name '%s': letters, digits, '_', '.' and "
             "'-', at most 63, starting with a letter or digit", sandbox_name);
    build_request(&o);

    char record_dir[PATH_MAX];
    find_registry(record_dir, sizeof record_dir);
    if (append_path(record_dir, sizeof record_dir, sandbox_name) < 0)
        fail(STATUS_UMLPY, "umlpy-exec: the registry's path is too long");
    int sock = connect_control(record_dir);
    if (sock < 0)
        not_reachable(record_dir);

    sigset_t wait_mask;
    catch_signals(&wait_mask);
    send_request(sock);

    int started = 0;
    for (;;) {
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        if (ppoll(&pfd, 1, NULL, &wait_mask) < 0) {
            if (errno != EINTR)
                fail(STATUS_UMLPY, "umlpy-exec: ppoll: %s", strerror(errno));
            if (started)            /* before: kept for the process, once it runs */
                forward_pending(sock);
            continue;
        }
        if (!receive(sock))
            fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': the daemon went away%s", sandbox_name,
                 started ? " (the command may still run)" : "");
        struct answer a;
        if (parse_answer(answer_buf, &a) < 0)
            fail(STATUS_UMLPY, "umlpy-exec: sandbox '%s': the daemon's answer is not a JSON object",
                 sandbox_name);
        if (!strcmp(a.event, "exited"))
            exit(a.has_status && a.status >= 0 && a.status <= 255 ? (int)a.status : 255);
        if (a.ok == 0) {
            int status = !a.has_errno ? STATUS_UMLPY :
                a.err == ENOENT ? STATUS_NOT_FOUND : STATUS_NOT_EXECUTABLE;
            fail(status, "umlpy-exec: exec in '%s': %s", sandbox_name,
                 a.error[0] ? a.error : "the daemon refused");
        }
        if (!started && a.ok == 1 && !strcmp(a.event, "started")) {
            started = 1;
            forward_pending(sock);
        }
    }
}
