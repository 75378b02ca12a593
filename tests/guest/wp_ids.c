/* Process identity inside a pid namespace, run as its pid 1: getppid,
 * getpgrp, getsid, setsid, reparenting of an orphan, and kill(0, sig)
 * reaching exactly the caller's process group.  Prints "key: value".
 * Refuses to run unless it is pid 1 (it sends kill(-1)). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

static void say(const char *key, const char *fmt, long v)
{
    printf("%s: ", key);
    printf(fmt, v);
    putchar('\n');
    fflush(stdout);
}

static const char *yesno(int b) { return b ? "yes" : "no"; }

static void sayb(const char *key, int b)
{
    printf("%s: %s\n", key, yesno(b));
    fflush(stdout);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

static void read_byte(int fd)
{
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
}

static pid_t fork_flushed(void)
{
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        exit(99);
    }
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void)
{
    int st;
    /* kill(0) and kill(-1) below are only harmless inside a pid namespace
     * of our own: elsewhere they would signal the host. */
    if (getpid() != 1) {
        fprintf(stderr, "wp_ids: not pid 1 of a pid namespace; refusing to run\n");
        return 2;
    }
    say("pid", "%ld", getpid());
    say("ppid", "%ld", getppid());
    say("pgrp", "%ld", getpgrp());
    sayb("getpgid(0) == getpgrp()", getpgid(0) == getpgrp());
    long sid = getsid(0);
    say("sid", "%ld", sid);
    errno = 0;
    sayb("setsid as a group leader fails with EPERM", setsid() < 0 && errno == EPERM);

    /* a child: its parent is pid 1 and it starts in pid 1's group */
    int res[2];
    if (pipe(res) < 0)
        return 98;
    pid_t c = fork_flushed();
    if (c == 0) {
        char line[128];
        snprintf(line, sizeof line, "%d %d %d %d", getppid() == 1, getpgrp() == 1,
                 getsid(0) == sid, getpid() != 1);
        write(res[1], line, strlen(line));
        _exit(0);
    }
    close(res[1]);
    char buf[128] = "";
    ssize_t n = read(res[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(res[0]);
    waitpid(c, &st, 0);
    int a = 0, b = 0, s = 0, d = 0;
    sscanf(buf, "%d %d %d %d", &a, &b, &s, &d);
    sayb("child's getppid() is 1", a);
    sayb("child's getpgrp() is 1", b);
    sayb("child's getsid() is pid 1's", s);
    sayb("child's pid is not 1", d);

    /* setsid in a child: a new session and group led by the child */
    int go[2], rep[2];
    if (pipe(go) < 0 || pipe(rep) < 0)
        return 98;
    c = fork_flushed();
    if (c == 0) {
        close(go[1]);
        close(rep[0]);
        pid_t r = setsid();
        char line[64];
        snprintf(line, sizeof line, "%d %d %d", r == getpid(), getsid(0) == getpid(),
                 getpgrp() == getpid());
        write(rep[1], line, strlen(line));
        read_byte(go[0]);
        _exit(0);
    }
    close(go[0]);
    close(rep[1]);
    n = read(rep[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    a = b = s = 0;
    sscanf(buf, "%d %d %d", &a, &b, &s);
    sayb("setsid() in a child returns its pid", a);
    sayb("then getsid(0) == getpid()", b);
    sayb("then getpgrp() == getpid()", s);
    sayb("pid 1 sees getsid(child) == child", getsid(c) == c);
    sayb("pid 1 sees getpgid(child) == child", getpgid(c) == c);
    sayb("pid 1's own session unchanged", getsid(0) == sid);
    close(go[1]);
    close(rep[0]);
    waitpid(c, &st, 0);

    /* an orphan is re-parented to pid 1, which can reap it */
    c = fork_flushed();
    if (c == 0) {
        pid_t g = fork_flushed();
        if (g == 0) {
            for (int i = 0; i < 400 && getppid() != 1; i++)
                sleep_ms(5);
            _exit(getppid() == 1 ? 33 : 34);
        }
        _exit(0);
    }
    waitpid(c, &st, 0);
    pid_t r = waitpid(-1, &st, 0);
    sayb("orphaned grandchild reaped by pid 1", r > 1 && r != c);
    say("orphaned grandchild's status", "%ld", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* kill(0, SIGUSR1) from pid 1: pid 1 and a child in its group get it,
     * a child in another group does not */
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int ready[2], go_same[2], go_other[2], out_same[2], out_other[2];
    if (pipe(ready) < 0 || pipe(go_same) < 0 || pipe(go_other) < 0 || pipe(out_same) < 0 ||
        pipe(out_other) < 0)
        return 98;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork_flushed();
        if (kids[i] == 0) {
            int gofd = i ? go_other[0] : go_same[0], outfd = i ? out_other[1] : out_same[1];
            if (i)
                setpgid(0, 0);
            write(ready[1], "r", 1);
            read_byte(gofd);
            write(outfd, got_usr1 ? "y" : "n", 1);
            _exit(0);
        }
        if (i)
            setpgid(kids[i], kids[i]);
    }
    read_byte(ready[0]);
    read_byte(ready[0]);
    sayb("other child is in another group", getpgid(kids[1]) != getpgrp());
    got_usr1 = 0;
    int k = kill(0, SIGUSR1);
    sayb("kill(0, SIGUSR1) succeeded", k == 0);
    sayb("pid 1 got SIGUSR1", got_usr1);
    write(go_same[1], "g", 1);
    write(go_other[1], "g", 1);
    char y = '?';
    read(out_same[0], &y, 1);
    sayb("same-group child got SIGUSR1", y == 'y');
    y = '?';
    read(out_other[0], &y, 1);
    sayb("other-group child got SIGUSR1", y == 'y');
    for (int i = 0; i < 2; i++)
        waitpid(kids[i], &st, 0);

    /* from a child: kill(1, SIGUSR1) reaches pid 1 (it has a handler);
     * kill(-1, SIGUSR1) reaches every process but pid 1 and the caller */
    got_usr1 = 0;
    c = fork_flushed();
    if (c == 0)
        _exit(kill(1, SIGUSR1) == 0 ? 0 : 1);
    waitpid(c, &st, 0);
    for (int i = 0; i < 200 && !got_usr1; i++)
        sleep_ms(5);
    sayb("kill(1, SIGUSR1) from a child reached pid 1", got_usr1 && WIFEXITED(st) &&
         WEXITSTATUS(st) == 0);
    got_usr1 = 0;
    int witness_ready[2], witness_go[2], witness_out[2];
    if (pipe(witness_ready) < 0 || pipe(witness_go) < 0 || pipe(witness_out) < 0)
        return 98;
    pid_t w = fork_flushed();
    if (w == 0) {
        setpgid(0, 0);
        write(witness_ready[1], "r", 1);
        read_byte(witness_go[0]);
        write(witness_out[1], got_usr1 ? "y" : "n", 1);
        _exit(0);
    }
    read_byte(witness_ready[0]);
    c = fork_flushed();
    if (c == 0)
        _exit(kill(-1, SIGUSR1) == 0 ? 0 : 1);
    waitpid(c, &st, 0);
    sayb("kill(-1, SIGUSR1) from a child succeeded", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    write(witness_go[1], "g", 1);
    y = '?';
    read(witness_out[0], &y, 1);
    waitpid(w, &st, 0);
    sayb("kill(-1) reached a process in another group", y == 'y');
    sleep_ms(100);
    sayb("kill(-1) reached pid 1", got_usr1);
    return 0;
}
