/* A program that exists only on the host: if it runs inside a sandbox whose
 * root is an image, the guest executed a host file. */
#include <stdio.h>
int main(void)
{
    printf("ESCAPE exec: the host program ran inside the sandbox\n");
    return 0;
}
