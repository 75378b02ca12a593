/* The PATH search of a sandbox's first program, shared by the tracer's
 * spawn (tracer.c) and umlpy-init's exec in place (init.c, a warm
 * sandbox's first program): one rule, so a warm `umlpy run` finds, or
 * fails to find, exactly what a cold one does.  Header-only: init.c is a
 * static program of its own. */
#ifndef UMLPY_EXEC_SEARCH_H
#define UMLPY_EXEC_SEARCH_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

static const char *env_lookup(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* Whether path names something the caller can reach, after an execve of
 * it failed with EACCES: EACCES is also what a directory on the way that
 * it may not search gives, and there is nothing there for it.  Asked with
 * an O_PATH open, which stops at ptrace (never at the seccomp listener,
 * which nobody may be serving yet), so the guest kernel answers as for
 * any guest lookup. */
static int reachable(const char *path)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* execvpe without malloc (we are a child of a possibly threaded process).
 * PATH is searched as a shell does: a directory that cannot be searched
 * is skipped, so a missing program is ENOENT (127) whatever PATH begins
 * with, and EACCES (126) means a file was found that cannot be run. */
static int exec_search(const char *file, char **argv, char **envp)
{
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return errno;
    }
    const char *path = env_lookup(envp, "PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int best = ENOENT;
    char buf[PATH_MAX];
    size_t flen = strlen(file);
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        const char *dir = dlen ? p : ".";   /* an empty element is the cwd */
        size_t n = dlen ? dlen : 1;
        if (n + flen + 2 < sizeof buf) {
            memcpy(buf, dir, n);
            buf[n] = '/';
            memcpy(buf + n + 1, file, flen + 1);
            execve(buf, argv, envp);
            int e = errno;
            if (e == EACCES && !reachable(buf))
                e = ENOENT;
            if (e == EACCES || e == ENOEXEC || e == EPERM)
                best = e;
            else if (e != ENOENT && e != ENOTDIR && best == ENOENT)
                best = e;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return best;
}

#endif
