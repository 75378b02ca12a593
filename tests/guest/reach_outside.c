/* Try to reach a process by host pid (argv[1]) every way a process can;
 * print how each attempt failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sched.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    printf("%s: %s\n", what, r < 0 ? strerrorname_np(errno) : "SUCCEEDED");
}

int main(int argc, char **argv)
{
    pid_t pid = atoi(argv[1]);
    int gentle = argc > 2;      /* a target inside the sandbox: do not kill it */
    char buf[64], path[64];
    struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};

    show("kill 0", kill(pid, 0));
    if (!gentle) {
        show("kill KILL", kill(pid, SIGKILL));
        show("tgkill", syscall(SYS_tgkill, pid, pid, SIGKILL));
    }
    show("ptrace attach", ptrace(PTRACE_ATTACH, pid, 0, 0));
    show("ptrace seize", ptrace(PTRACE_SEIZE, pid, 0, 0));
    show("process_vm_readv", process_vm_readv(pid, &local, 1, &remote, 1, 0));
    show("process_vm_writev", process_vm_writev(pid, &local, 1, &remote, 1, 0));
    show("pidfd_open", syscall(SYS_pidfd_open, pid, 0));
    show("setpriority", setpriority(PRIO_PROCESS, pid, 19));
    show("sched_getaffinity", ({ cpu_set_t s; sched_getaffinity(pid, sizeof s, &s); }));
    show("getpgid", getpgid(pid));
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    show("open /proc/PID/status", open(path, O_RDONLY));
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    show("open /proc/PID/mem", open(path, O_RDWR));
    return 0;
}
