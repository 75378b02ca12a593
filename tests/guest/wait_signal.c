/* Say "ready", wait for a signal; exit 42 on SIGINT, 43 on SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static void on_int(int sig) { write(1, "got SIGINT\n", 11); _exit(42); }
static void on_term(int sig) { write(1, "got SIGTERM\n", 12); _exit(43); }

int main(void)
{
    signal(SIGINT, on_int);
    signal(SIGTERM, on_term);
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
