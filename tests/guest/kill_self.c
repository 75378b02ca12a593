/* Print, then kill ourselves with the signal given in argv[1]. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int sig = argc > 1 ? atoi(argv[1]) : SIGTERM;
    printf("about to die by %d\n", sig);
    fflush(stdout);
    kill(getpid(), sig);
    pause();
    return 0;
}
