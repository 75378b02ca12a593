/* Lists a directory whose host listing is the guest's (argv[1]) on fd N
 * while another thread keeps swapping fd N for a directory whose host
 * listing holds a name umlpy hides (argv[2], holding argv[3]): the listing
 * must never show that name.  Prints "leaked" or "ok". */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int plain, hiding, target = 100;
static volatile int done;

static void *swapper(void *arg)
{
    (void)arg;
    while (!done) {
        dup2(hiding, target);
        dup2(plain, target);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    plain = open(argv[1], O_RDONLY | O_DIRECTORY);
    hiding = open(argv[2], O_RDONLY | O_DIRECTORY);
    if (plain < 0 || hiding < 0 || dup2(plain, target) < 0) {
        perror("open");
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, swapper, NULL);
    int leaked = 0, tries = argc > 4 ? atoi(argv[4]) : 20000;
    char buf[32768];
    for (int i = 0; i < tries && !leaked; i++) {
        lseek(target, 0, SEEK_SET);
        long n = syscall(SYS_getdents64, target, buf, sizeof buf);
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            if (strcmp(d->d_name, argv[3]) == 0)
                leaked = 1;
            off += d->d_reclen;
        }
    }
    done = 1;
    pthread_join(t, NULL);
    puts(leaked ? "leaked" : "ok");
    return 0;
}
