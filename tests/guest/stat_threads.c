/* Two threads, each pinned to a CPU of its own (argv[1], argv[2]), stat a
 * file argv[3] times at once: a guest the notification servers must serve
 * on both CPUs.  Prints how many stats succeeded. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static pthread_barrier_t start;
static long rounds;

struct job { int cpu; long ok; };

static void *run(void *arg)
{
    struct job *job = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(job->cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
    pthread_barrier_wait(&start);
    struct stat st;
    for (long i = 0; i < rounds; i++)
        job->ok += stat("/usr/lib/os-release", &st) == 0;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    rounds = atol(argv[3]);
    struct job jobs[2] = {{atoi(argv[1]), 0}, {atoi(argv[2]), 0}};
    pthread_t threads[2];
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, run, &jobs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("%ld\n", jobs[0].ok + jobs[1].ok);
    return 0;
}
