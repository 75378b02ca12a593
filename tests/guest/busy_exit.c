/* A second thread loops on open("/etc/hostname") + close while main
   returns 0 after a few ms: the exit kills the thread in the middle of
   its calls, which the guest kernel must take as normal (issue 12). */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *opener(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = open("/etc/hostname", O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int ms = argc > 1 ? atoi(argv[1]) : 5;
    pthread_t t;
    pthread_create(&t, NULL, opener, NULL);
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}
