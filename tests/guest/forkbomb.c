#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
/* Fork until fork fails (at most 5000); every child waits for SIGKILL.
   Prints how many forks worked and the errno of the failure. */
int main(void){
  static pid_t kids[5000]; int n = 0; int err = 0;
  while (n < 5000) {
    pid_t p = fork();
    if (p < 0) { err = errno; break; }
    if (p == 0) { pause(); _exit(0); }
    kids[n++] = p;
  }
  printf("forked %d %s\n", n, err ? strerrorname_np(err) : "-");
  for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
  while (wait(NULL) > 0) ;
  return 0;
}
