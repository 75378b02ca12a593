/* Where a new child's relative paths land: birth_cwd HOW (fork, vfork,
 * clone, clone-fs, thread, fork-exec), run in an empty directory anyone
 * may write.
 *
 * The child makes "d", changes into it, calls getppid (the test's marker:
 * a hooked call, where the guest kernel may be made to see the parent's
 * fork event only now) and creates "f" relative to its cwd.  The parent
 * then says where "f" is and what its own cwd is: a fork's or a vfork's
 * child has a copy of its parent's working directory, a thread and a
 * clone(CLONE_FS) child share it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char top[PATH_MAX];

static int exec_touch;      /* fork-exec: the file is made by touch, as dpkg's tar */

static int child(void *arg)
{
    (void)arg;
    if (mkdir("d", 0777) < 0 || chdir("d") < 0)
        return 2;
    syscall(SYS_getppid);
    if (exec_touch) {
        execl("/bin/touch", "touch", "f", (char *)NULL);
        return 4;
    }
    int fd = open("f", O_CREAT | O_WRONLY, 0644);
    if (fd < 0)
        return 3;
    close(fd);
    return 0;
}

static void *thread_main(void *arg)
{
    return (void *)(long)child(arg);
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "fork";
    if (!getcwd(top, sizeof top))
        return 1;
    int rc = 0;
    if (!strcmp(how, "thread")) {
        pthread_t t;
        void *ret;
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, &ret);
        rc = (int)(long)ret;
    } else {
        pid_t pid;
        static char stack[1 << 16];
        exec_touch = !strcmp(how, "fork-exec");
        if (!strcmp(how, "fork") || exec_touch)
            pid = fork();
        else if (!strcmp(how, "vfork"))
            pid = vfork();
        else
            pid = clone(child, stack + sizeof stack,
                        SIGCHLD | (!strcmp(how, "clone-fs") ? CLONE_FS : 0), NULL);
        if (pid == 0)
            _exit(child(NULL));
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            return 1;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 100;
    }
    char cwd[PATH_MAX], in_d[PATH_MAX + 8], at_top[PATH_MAX + 8];
    if (!getcwd(cwd, sizeof cwd))
        return 1;
    snprintf(in_d, sizeof in_d, "%s/d/f", top);
    snprintf(at_top, sizeof at_top, "%s/f", top);
    size_t n = strlen(top);
    const char *shown = !strcmp(cwd, top) ? "top" : !strncmp(cwd, top, n) ? cwd + n : cwd;
    struct stat st;
    printf("child: %d\nf in d: %s\nf at top: %s\nparent's cwd: %s\n", rc,
           stat(in_d, &st) == 0 ? "yes" : "no", stat(at_top, &st) == 0 ? "yes" : "no", shown);
    return 0;
}
