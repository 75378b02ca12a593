/* Call getpid/getppid N times and print what they returned last. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long pid = 0, ppid = 0;
    for (int i = 0; i < n; i++) {
        pid = syscall(SYS_getpid);
        ppid = syscall(SYS_getppid);
    }
    struct utsname u;
    uname(&u);
    printf("pid %ld ppid %ld self %d nodename %s\n", pid, ppid, getpid(), u.nodename);
    return 0;
}
