/* 16 threads share a counter under a mutex and meet at a barrier. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

#define NTHREADS 16
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static long results[NTHREADS];

static void *worker(void *arg)
{
    long id = (long)arg, sum = 0;
    for (long i = 0; i < 10000; i++) {
        sum += i * (id + 1);
        if (i % 1000 == 0) {
            pthread_mutex_lock(&lock);
            counter++;
            pthread_mutex_unlock(&lock);
        }
    }
    if (syscall(SYS_gettid) == getpid())
        return (void *)-1;      /* a thread must not be its own process */
    pthread_barrier_wait(&barrier);
    results[id] = sum;
    return NULL;
}

int main(void)
{
    pthread_t t[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 2;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        if (ret != NULL)
            return 3;
    }
    for (int i = 0; i < NTHREADS; i++)
        printf("thread %d sum %ld\n", i, results[i]);
    printf("counter %ld\n", counter);
    return 0;
}
