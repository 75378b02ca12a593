/* catfile FILE...: each file's bytes to stdout (a static cat for images
   that hold no shell). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char buf[4096];
    int status = 0;
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) {
            perror(argv[i]);
            status = 1;
            continue;
        }
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write(1, buf, n) != n)
                return 1;
        close(fd);
    }
    return status;
}
