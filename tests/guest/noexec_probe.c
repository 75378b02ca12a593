/* What a noexec mount refuses, for tests/test_noexec.py: run natively in
 * a private mount namespace with a real noexec mount and inside umlpy
 * with its own; the output must be the same line for line.
 *
 *   noexec_probe NOEXEC_DIR EXEC_DIR
 *
 * For each directory: copies /bin/true and the ELF loader into it, then
 * tries execve of the copy, the loader run on it (ld.so DIR/true), mmap
 * of it with PROT_EXEC, mprotect and pkey_mprotect adding PROT_EXEC to a
 * PROT_READ mapping of it, a #! script in it, a script elsewhere whose
 * interpreter is in it, and a program elsewhere whose ELF loader
 * (PT_INTERP) is in it.  Each line: "WHAT DIR-NAME: ok" or the errno's
 * name (or the exit status of a program run).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOADER "/lib64/ld-linux-x86-64.so.2"

static const char *errname(int e)
{
    switch (e) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOEXEC: return "ENOEXEC";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENODEV: return "ENODEV";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

static char *slurp(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(path);
        exit(2);
    }
    char *buf = malloc(st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0) {
            perror("read");
            exit(2);
        }
        got += n;
    }
    close(fd);
    *size = got;
    return buf;
}

static void put(const char *path, const char *data, size_t size, int mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size || fchmod(fd, mode) < 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

/* /bin/true with its PT_INTERP made relative: "./ld.so" (the cwd's) */
static void put_relative_interp(const char *path)
{
    size_t size;
    char *elf = slurp("/bin/true", &size);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
    int found = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr *ph = (Elf64_Phdr *)(elf + eh->e_phoff + i * eh->e_phentsize);
        if (ph->p_type == PT_INTERP && ph->p_filesz > 8) {
            memset(elf + ph->p_offset, 0, ph->p_filesz);
            memcpy(elf + ph->p_offset, "./ld.so", 7);
            found = 1;
        }
    }
    if (!found) {
        fprintf(stderr, "/bin/true has no PT_INTERP\n");
        exit(2);
    }
    put(path, elf, size, 0755);
    free(elf);
}

/* run argv[0] with cwd dir: "ok" (the exec succeeded and it exited 0),
 * the exec's errno, or "status N" */
static void run(const char *what, const char *name, const char *dir, char *const argv[])
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        perror("pipe");
        exit(2);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        if (dir && chdir(dir) < 0)
            _exit(3);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execv(argv[0], argv);
        int e = errno;
        if (write(pipefd[1], &e, sizeof e) < 0)
            _exit(4);
        _exit(5);
    }
    close(pipefd[1]);
    int e = 0, status;
    ssize_t n = read(pipefd[0], &e, sizeof e);
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    if (n == sizeof e)
        printf("%s %s: %s\n", what, name, errname(e));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        printf("%s %s: ok\n", what, name);
    else
        printf("%s %s: status %d\n", what, name,
               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* the permissions /proc/self/maps shows for the mapping at addr */
static const char *perms_at(void *addr)
{
    static char perms[8];
    char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    strcpy(perms, "none");
    if (!f)
        return perms;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, p) == 3 &&
            start <= (unsigned long)addr && (unsigned long)addr < end) {
            strcpy(perms, p);
            break;
        }
    }
    fclose(f);
    return perms;
}

static void report(const char *what, const char *name, int ok)
{
    printf("%s %s: %s\n", what, name, ok ? "ok" : errname(errno));
}

static void probe(const char *name, const char *dir, const char *other,
                  const char *truedata, size_t truesize, const char *lddata, size_t ldsize)
{
    char prog[4096], ld[4096], script[4096], viascript[4096], viainterp[4096];
    snprintf(prog, sizeof prog, "%s/true", dir);
    snprintf(ld, sizeof ld, "%s/ld.so", dir);
    snprintf(script, sizeof script, "%s/script", dir);
    snprintf(viascript, sizeof viascript, "%s/via-%s", other, name);
    snprintf(viainterp, sizeof viainterp, "%s/interp-%s", other, name);
    put(prog, truedata, truesize, 0755);
    put(ld, lddata, ldsize, 0755);
    put(script, "#!/bin/true\n", 12, 0755);
    char line[4200];
    int n = snprintf(line, sizeof line, "#!%s\n", prog);
    put(viascript, line, n, 0755);
    put_relative_interp(viainterp);

    char *a_prog[] = {prog, NULL};
    run("execve", name, NULL, a_prog);
    char *a_ld[] = {LOADER, prog, NULL};
    run("ld.so", name, NULL, a_ld);
    char *a_ownld[] = {ld, "/bin/true", NULL};
    run("own-ld.so", name, NULL, a_ownld);
    char *a_script[] = {script, NULL};
    run("script", name, NULL, a_script);
    char *a_via[] = {viascript, NULL};
    run("interpreter", name, NULL, a_via);
    char *a_interp[] = {viainterp, NULL};
    run("pt-interp", name, dir, a_interp);

    int fd = open(prog, O_RDONLY);
    if (fd < 0) {
        perror(prog);
        exit(2);
    }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    report("mmap-exec", name, m != MAP_FAILED);
    if (m != MAP_FAILED)
        munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    report("mmap-exec-shared", name, m != MAP_FAILED);
    if (m != MAP_FAILED)
        munmap(m, 4096);
    m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    report("mmap-read", name, m != MAP_FAILED);
    if (m != MAP_FAILED) {
        report("mprotect", name, mprotect(m, 4096, PROT_READ | PROT_EXEC) == 0);
        report("pkey_mprotect", name,
               syscall(SYS_pkey_mprotect, m, 4096, PROT_READ | PROT_EXEC, -1) == 0);
        report("mprotect-read", name, mprotect(m, 4096, PROT_READ) == 0);
        munmap(m, 4096);
    }
    /* an anonymous mapping beside a mapping of the file: the range
     * covers both */
    char *two = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two != MAP_FAILED &&
        mmap(two + 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED) {
        report("mprotect-both", name, mprotect(two, 8192, PROT_READ | PROT_EXEC) == 0);
        /* Linux changes the mappings before the refused one */
        printf("anon-part %s: %s\n", name, perms_at(two));
        munmap(two, 8192);
    }
    /* READ_IMPLIES_EXEC adds PROT_EXEC to PROT_READ, but never for a
     * file on a noexec mount (umlpy keeps the bit off the host in a
     * sandbox with noexec mounts: only the noexec side is compared) */
    if (strcmp(name, "noexec") == 0) {
        int persona = personality(0xffffffff);
        personality(persona | READ_IMPLIES_EXEC);
        m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        personality(persona);
        if (m == MAP_FAILED)
            report("read-implies-exec", name, 0);
        else {
            printf("read-implies-exec %s: %s\n", name, perms_at(m));
            munmap(m, 4096);
        }
    }
    /* unlinked, still mapped */
    m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    unlink(prog);
    if (m != MAP_FAILED) {
        report("mprotect-unlinked", name, mprotect(m, 4096, PROT_READ | PROT_EXEC) == 0);
        munmap(m, 4096);
    }
    close(fd);
    unlink(ld);
    unlink(script);
    unlink(viascript);
    unlink(viainterp);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: noexec_probe NOEXEC_DIR EXEC_DIR\n");
        return 2;
    }
    size_t truesize, ldsize;
    char *truedata = slurp("/bin/true", &truesize);
    char *lddata = slurp(LOADER, &ldsize);
    probe("noexec", argv[1], argv[2], truedata, truesize, lddata, ldsize);
    probe("exec", argv[2], argv[1], truedata, truesize, lddata, ldsize);
    return 0;
}
