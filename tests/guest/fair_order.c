/* The order in which the guest kernel serves stopped threads:
 * fair_order CHILDREN CHILD_CALLS PARENT_CALLS.  The process forks a
 * parent (so that the parent is not the tracer's own child, which
 * waitpid looks at first), which forks CHILDREN children; each child
 * makes CHILD_CALLS getppid calls with a first argument of 0, the parent
 * PARENT_CALLS with 1 (the kernel ignores it; a hook of the test tells
 * them apart by it). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int children = atoi(argv[1]);
    long child_calls = atol(argv[2]), parent_calls = atol(argv[3]);
    if (fork() == 0) {
        for (int i = 0; i < children; i++)
            if (fork() == 0) {
                for (long k = 0; k < child_calls; k++)
                    syscall(SYS_getppid, 0);
                _exit(0);
            }
        usleep(100000);     /* the children are all making calls by now */
        for (long k = 0; k < parent_calls; k++)
            syscall(SYS_getppid, 1);
        while (wait(NULL) > 0)
            ;
        _exit(0);
    }
    wait(NULL);
    return 0;
}
