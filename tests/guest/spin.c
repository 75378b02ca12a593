/* Two processes spinning forever (a CPU-time limit must stop them). */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("spinning\n");
    fflush(stdout);
    fork();
    for (volatile unsigned long i = 0;; i++)
        ;
}
