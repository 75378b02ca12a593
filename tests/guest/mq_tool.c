/* POSIX message queues for the mqueue mount tests (issue 13):
 *   mq_tool create NAME [MSG]  mq_open(O_CREAT) and, with MSG, mq_send it
 *   mq_tool open NAME          whether mq_open finds the queue
 *   mq_tool list NAME          getdents64 on a new queue's fd: no directory,
 *                              whatever its name ("/root") looks like */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    char name[256];
    snprintf(name, sizeof name, "/%s", argv[2]);
    if (!strcmp(argv[1], "create")) {
        mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0640, NULL);
        if (q == (mqd_t)-1) {
            printf("create %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        if (argc > 3 && mq_send(q, argv[3], strlen(argv[3]), 0) < 0) {
            printf("send %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        printf("created %s\n", argv[2]);
        return 0;
    }
    if (!strcmp(argv[1], "open")) {
        mqd_t q = mq_open(name, O_RDONLY);
        printf("open %s: %s\n", argv[2], q == (mqd_t)-1 ? strerror(errno) : "found");
        return q == (mqd_t)-1;
    }
    if (!strcmp(argv[1], "list")) {
        mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0600, NULL);
        char buf[4096];
        long n = q == (mqd_t)-1 ? -1 : syscall(SYS_getdents64, q, buf, sizeof buf);
        printf("list %s: %s\n", argv[2], n < 0 ? strerror(errno) : "listed");
        mq_unlink(name);
        return 0;
    }
    return 2;
}
