#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* Allocate and touch 16 MiB chunks until malloc fails or 2 GiB. */
int main(void){
  size_t total = 0;
  while (total < (2UL << 30)) {
    char *p = malloc(16 << 20);
    if (!p) { printf("ENOMEM after %zu MiB\n", total >> 20); return 0; }
    memset(p, 1, 16 << 20);
    total += 16 << 20;
  }
  printf("got %zu MiB\n", total >> 20); return 0;
}
