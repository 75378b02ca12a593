/* Two threads making calls at the same time, for the trace's per-thread
 * lines (tids) and its <unfinished ...> / <... resumed> pairs. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *work(void *arg)
{
    for (int i = 0; i < 50; i++) {
        (void)getppid();
        usleep(100);
    }
    return arg;
}

int main(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, work, NULL) != 0)
            return 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    (void)write(1, "threads done\n", 13);
    return 0;
}
