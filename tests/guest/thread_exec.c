/* A non-leader thread calls execve while other threads run: Linux kills
 * the others and the exec'ing thread takes over the process's pid. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *spinner(void *arg)
{
    for (;;)
        usleep(1000);
    return NULL;
}

static void *execer(void *arg)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    usleep(20000);
    execl("/bin/sh", "sh", "-c", "echo exec from thread; [ $$ = $1 ] && echo same pid",
          "sh", pid, (char *)NULL);
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, spinner, NULL);
    pthread_create(&t[3], NULL, execer, NULL);
    for (;;)
        pause();
}
