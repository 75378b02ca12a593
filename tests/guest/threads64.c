/* 64 threads signalled one by one with tgkill (pthread_kill), a cancelled
 * thread, a robust mutex whose owner died, all checked by the main thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#define N 64
static pthread_barrier_t ready;
static volatile sig_atomic_t hits[N];
static __thread int my_index = -1;
static pthread_mutex_t robust;

static void on_usr1(int sig)
{
    if (my_index >= 0)
        hits[my_index]++;
}

static void *worker(void *arg)
{
    my_index = (int)(long)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_barrier_wait(&ready);
    while (!hits[my_index]) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* tgkill the neighbour too, to cross-signal between threads */
    return (void *)(long)syscall(SYS_gettid);
}

static void *sleeper(void *arg)
{
    for (;;)
        sleep(10);
    return NULL;
}

static void *dies_holding_lock(void *arg)
{
    pthread_mutex_lock(&robust);
    return NULL;    /* exits without unlocking */
}

int main(void)
{
    pthread_t t[N];
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_barrier_init(&ready, NULL, N + 1);
    for (long i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 2;
    pthread_barrier_wait(&ready);
    for (int i = 0; i < N; i++)
        pthread_kill(t[i], SIGUSR1);
    int distinct = 0, all_hit = 1;
    long tids[N];
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(t[i], &r);
        tids[i] = (long)r;
        if (!hits[i])
            all_hit = 0;
    }
    for (int i = 0; i < N; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= tids[i] == tids[j];
        distinct += !dup && tids[i] != getpid();
    }
    printf("threads signalled: %s, distinct tids: %d\n", all_hit ? "all" : "not all", distinct);

    pthread_t s;
    void *res;
    pthread_create(&s, NULL, sleeper, NULL);
    usleep(10000);
    pthread_cancel(s);
    pthread_join(s, &res);
    printf("cancelled: %s\n", res == PTHREAD_CANCELED ? "yes" : "no");

    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &ma);
    pthread_t d;
    pthread_create(&d, NULL, dies_holding_lock, NULL);
    pthread_join(d, NULL);
    int r = pthread_mutex_lock(&robust);
    printf("robust lock after owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&robust);
        pthread_mutex_unlock(&robust);
        printf("recovered: %s\n", pthread_mutex_lock(&robust) == 0 ? "yes" : "no");
    }
    return 0;
}
