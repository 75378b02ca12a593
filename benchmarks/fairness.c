/* Fairness between a parent and its busy children (benchmarks/fairness.py).
 *
 *   fairness CHILDREN CHILD_CALLS PARENT_CALLS CHILD_OP PARENT_OP
 *
 * Forks CHILDREN children that each make CHILD_CALLS calls of CHILD_OP
 * (connect: a connect() to a closed port; socket: socket()+close(); open:
 * an open of a file of its own in /tmp, which the listener hands to
 * Python), then
 * the parent waits 300 ms and makes PARENT_CALLS rounds of PARENT_OP (pipe: pipe2()+close()
 * twice; socket; connect) and prints how long its own rounds took, then
 * how long until every child was reaped (ms). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void own_name(char *name, size_t room)
{
    snprintf(name, room, "/tmp/fairness-%d", (int)getpid());
}

static void op(const char *what)
{
    if (!strcmp(what, "pipe")) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            close(p[0]);
            close(p[1]);
        }
    } else if (!strcmp(what, "open")) {
        /* made by the guest: in the upper layer, so Python answers each open */
        char name[64];
        own_name(name, sizeof name);
        int fd = open(name, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    } else {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0 && !strcmp(what, "connect")) {
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            connect(s, (struct sockaddr *)&a, sizeof a);
        }
        if (s >= 0)
            close(s);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: fairness CHILDREN CHILD_CALLS PARENT_CALLS CHILD_OP PARENT_OP\n");
        return 2;
    }
    int children = atoi(argv[1]);
    long child_calls = atol(argv[2]), parent_calls = atol(argv[3]);
    double t0 = now_ms();
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (long k = 0; k < child_calls; k++)
                op(argv[4]);
            char name[64];
            own_name(name, sizeof name);
            unlink(name);
            _exit(0);
        }
        if (pid < 0)
            return 1;
    }
    double forked = now_ms();
    usleep(300000);     /* the children are all busy by now */
    double start = now_ms();
    for (long k = 0; k < parent_calls; k++)
        op(argv[5]);
    double parent_done = now_ms();
    char name[64];
    own_name(name, sizeof name);
    unlink(name);
    while (wait(NULL) > 0)
        ;
    printf("forks %.1f parent %.1f all %.1f\n", forked - t0, parent_done - start,
           now_ms() - t0);
    return 0;
}
